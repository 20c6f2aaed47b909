"""`meraapent sim fleet`: one measured run (create the sites, start the fleet, sync, tap while a
caretaker's card is blocked and unblocked) and the summary of what was measured.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from central.config import UID_HASH_KEY_FILE
from central.db import ensure_migrated, make_engine, session_factory, session_scope, utcnow
from central.models import Event
from central.services import credentials as credential_service
from hw_sim.fleet.coordinator import Fleet
from hw_sim.fleet.errors import FleetError
from hw_sim.fleet.plan import SITE_PREFIX, FleetPlan
from hw_sim.fleet.report import FleetReport, latency_figures
from hw_sim.fleet.sites import caretaker_credential, create_sites

ACTOR = "fleet-sim"


@dataclass(frozen=True)
class RunOptions:
    sites: int
    db_url: str | None = None
    data_dir: Path | None = None  # central's: the uid-hash key is read from its secrets
    mqtt_host: str | None = None
    mqtt_port: int | None = None
    taps_per_second: float = 20.0
    duration: float = 30.0
    residents: int = 5
    processes: int | None = None
    change_every: float = 5.0
    gateway: bool = False  # run central's gateway in this process (else one must be running)


def run(options: RunOptions, say: Callable[[str], None] = lambda _t: None) -> dict[str, Any]:
    """Create the sites, start the fleet, sync, tap and change for a while; returns what was measured."""
    if options.taps_per_second < 0 or options.duration <= 0 or options.change_every <= 0:
        raise ValueError("--taps-per-second must be ≥ 0, --duration and the change interval > 0")
    from central.config import load_settings
    from central.gateway import Gateway

    settings = load_settings(
        db_url=options.db_url,
        data_dir=options.data_dir,
        mqtt_host=options.mqtt_host,
        mqtt_port=options.mqtt_port,
    )
    plan = FleetPlan(options.sites, options.residents)
    engine = make_engine(settings.db_url)
    try:
        ensure_migrated(engine)
        sessions = session_factory(engine)
        uid_key = settings.uid_hash_key()
        with session_scope(sessions) as session:
            created = create_sites(session, plan, uid_key)
        say(f"fleet: {created} sites created, {plan.sites - created} already there")
        with contextlib.ExitStack() as stack:
            poke: Callable[[], None] = lambda: None  # noqa: E731
            if options.gateway:
                gateway = Gateway(settings, engine, client_id=f"central-fleet-{uuid.uuid4().hex[:6]}").start()
                stack.callback(gateway.stop)
                poke = gateway.poke
            broker = (settings.mqtt_host, settings.mqtt_port)
            key_file = settings.secrets_dir / UID_HASH_KEY_FILE
            fleet = stack.enter_context(
                Fleet(plan, broker, key_file, processes=options.processes, progress=say)
            )
            started = time.monotonic()
            sync_s = fleet.wait_synced(timeout=max(60.0, plan.sites * 0.2))
            all_synced_s = time.monotonic() - started
            say(f"fleet: all {plan.sites} agents synced in {all_synced_s:.1f} s")
            wall_start = utcnow() - timedelta(seconds=1)
            taps_started = time.monotonic()
            changes = _taps_and_changes(fleet, sessions, plan, uid_key, options, poke)
            taps_s = time.monotonic() - taps_started
            report = fleet.stop()
        with sessions() as session:
            stored = session.scalar(
                select(func.count())
                .select_from(Event)
                .where(Event.agent_client_id.like(f"{SITE_PREFIX}-%-sim"), Event.device_time >= wall_start)
            )
    finally:
        engine.dispose()
    return _summary(
        plan, created, fleet.processes, all_synced_s, sync_s, taps_s, report, changes, stored or 0
    )


Change = tuple[float, bool]  # (monotonic time of the commit, whether the card is granted afterwards)


def _taps_and_changes(
    fleet: Fleet,
    sessions: sessionmaker[Session],
    plan: FleetPlan,
    uid_key: bytes,
    options: RunOptions,
    poke: Callable[[], None],
) -> list[Change]:
    """Taps for the whole duration; meanwhile the last caretaker's card is blocked and unblocked in turn."""
    fleet.taps(options.taps_per_second, options.duration)
    changes: list[Change] = []
    end = time.monotonic() + options.duration
    next_change = time.monotonic() + options.change_every
    while time.monotonic() < end:
        fleet.pump_for(min(0.1, max(0.0, end - time.monotonic())))
        if time.monotonic() >= next_change:
            changes.append(toggle_block(sessions, plan.roaming, uid_key))
            poke()
            next_change += options.change_every
    if options.taps_per_second > 0:
        fleet.wait_taps(timeout=30.0)
    if changes:  # let the last change reach the agents before they stop (one that does not is "missed")
        refusing = 0 if changes[-1][1] else plan.sites
        with contextlib.suppress(FleetError):
            fleet.wait_refusing(plan.roaming, refusing, timeout=max(30.0, options.change_every))
    if changes and not changes[-1][1]:  # leave the card as it was found
        toggle_block(sessions, plan.roaming, uid_key)
        poke()
    return changes


def toggle_block(sessions: sessionmaker[Session], caretaker: int, uid_key: bytes) -> Change:
    """Block caretaker `caretaker`'s card through central's services, or unblock it if it is blocked."""
    with session_scope(sessions) as session:
        cid = caretaker_credential(session, caretaker, uid_key)
        credential = credential_service.get_credential(session, cid)
        granted = credential.status.value == "blocked"
        if granted:
            credential_service.unblock(session, ACTOR, cid)
        else:
            credential_service.block(session, ACTOR, cid)
    return time.monotonic(), granted


def _summary(
    plan: FleetPlan,
    created: int,
    processes: int,
    all_synced_s: float,
    sync_s: list[float],
    taps_s: float,
    report: FleetReport,
    changes: list[Change],
    stored: int,
) -> dict[str, Any]:
    reached: list[float] = []
    missed = 0
    for t0, granted in changes:
        for seconds in report.reached(plan.roaming, t0, granted):
            if seconds is None:
                missed += 1
            else:
                reached.append(seconds)
    sync = latency_figures(sync_s)
    acks = latency_figures([ms / 1000 for ms in report.ack_ms])
    propagation = latency_figures(reached)
    return {
        "sites": plan.sites,
        "sites_created": created,
        "processes": processes,
        "all_synced_s": round(all_synced_s, 2),
        "sync_p50_ms": sync["p50_ms"],
        "sync_max_ms": sync["max_ms"],
        "taps": report.taps,
        "taps_per_s": round(report.taps / taps_s, 1) if taps_s > 0 else 0.0,
        "granted": report.granted,
        "denied": report.denied,
        "duplicates_sent": report.duplicates_sent,
        "events_acked": report.acked,
        "events_unacked": report.unacked,
        "events_stored": stored,
        "ack_p50_ms": acks["p50_ms"],
        "ack_p99_ms": acks["p99_ms"],
        "changes": len(changes),
        "propagation_p50_ms": propagation["p50_ms"],
        "propagation_p99_ms": propagation["p99_ms"],
        "propagation_max_ms": propagation["max_ms"],
        "propagation_missed": missed,
        "worker_rss_mb": report.worker_rss_mb,
        "agent_counters": dict(report.counters),
    }
