"""A card revoked in central is refused at every site: per-agent propagation time across a fleet.

`python -m bench.propagation [--sites 1000] [--processes P] [--sqlite]` starts a throwaway PostgreSQL
cluster (or a SQLite file) and a private mosquitto, creates the fleet's sites (hw_sim.fleet.create_sites),
runs central's gateway in this process with its production settings (as `meraapent central serve` does) and
the simulated agents in worker processes (hw_sim.fleet.Fleet). Once every agent is synced it revokes the
first caretaker's card, and then blocks the second caretaker's card, through central's service layer, each
followed by the gateway poke the API does after a change. Measured per agent and change: from the commit to
the moment that agent's replica refuses the card (it decides the card again after every replica change;
CLOCK_MONOTONIC is system-wide, so times from the worker processes compare with ours).

Prints one JSON line; the goal is p99 ≤ 1 s at 1,000 agents. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.orm import Session, sessionmaker

from central.config import UID_HASH_KEY_FILE, Settings
from central.db import make_engine, migrate, session_factory, session_scope
from central.gateway import Gateway
from central.services import credentials as credential_service
from hw_sim.fleet import Fleet, FleetPlan, FleetReport, caretaker_credential, create_sites, latency_figures

GOAL_P99_S = 1.0
SYNC_TIMEOUT_S = 900.0
REFUSAL_TIMEOUT_S = 120.0


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def change(
    sessions: sessionmaker[Session], caretaker: int, uid_key: bytes, action: Callable[..., object]
) -> tuple[float, float]:
    """Revoke or block a caretaker's card; returns (monotonic time of the commit, seconds the call took)."""
    started = time.monotonic()
    with session_scope(sessions) as session:
        action(session, "bench", caretaker_credential(session, caretaker, uid_key))
    committed = time.monotonic()
    return committed, committed - started


def measure(
    url: str, sites: int, processes: int | None, tmp: Path, broker: tuple[str, int]
) -> dict[str, Any]:
    plan = FleetPlan(sites)
    settings = Settings(data_dir=tmp / "central", db_url=url, mqtt_host=broker[0], mqtt_port=broker[1])
    migrate(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    uid_key = settings.uid_hash_key()
    started = time.monotonic()
    with session_scope(sessions) as session:
        create_sites(session, plan, uid_key)
    say(f"propagation: {sites} sites created in {time.monotonic() - started:.1f} s")
    gateway = Gateway(
        settings, engine, client_id=f"central-bench-{uuid.uuid4().hex[:6]}", keys_provider=lambda: None
    )
    gateway.start()
    try:
        key_file = settings.secrets_dir / UID_HASH_KEY_FILE
        with Fleet(plan, broker, key_file, processes=processes, progress=say) as fleet:
            started = time.monotonic()
            sync_s = fleet.wait_synced(SYNC_TIMEOUT_S)
            all_synced_s = time.monotonic() - started
            say(f"propagation: all {sites} agents synced in {all_synced_s:.1f} s")
            changes = []
            for caretaker, action in ((1, credential_service.revoke), (2, credential_service.block)):
                committed, took = change(sessions, caretaker, uid_key, action)
                gateway.poke()
                fleet.wait_refusing(caretaker, sites, REFUSAL_TIMEOUT_S)
                after = time.monotonic() - committed
                say(f"propagation: card {caretaker} refused by every agent after {after:.2f} s")
                changes.append((caretaker, committed, took))
            report = fleet.stop()
            processes = fleet.processes
    finally:
        gateway.stop()
        engine.dispose()
    return summary(plan, report, changes, sync_s, all_synced_s, processes)


def summary(
    plan: FleetPlan,
    report: FleetReport,
    changes: list[tuple[int, float, float]],
    sync_s: list[float],
    all_synced_s: float,
    processes: int | None,
) -> dict[str, Any]:
    reached: list[float] = []
    missed = 0
    for caretaker, committed, _took in changes:
        for seconds in report.reached(caretaker, committed, granted=False):
            if seconds is None:
                missed += 1
            else:
                reached.append(seconds)
    figures = latency_figures(reached)
    sync = latency_figures(sync_s)
    return {
        "bench": "propagation",
        "sites": plan.sites,
        **figures,
        "goal_p99_1s": missed == 0 and figures["p99_ms"] <= GOAL_P99_S * 1000,
        "changes": ["revoke", "block"],
        "refusals_measured": len(reached),
        "refusals_missed": missed,
        "change_commit_ms": [round(took * 1000, 1) for _c, _t, took in changes],
        "all_synced_s": round(all_synced_s, 1),
        "sync_p50_ms": sync["p50_ms"],
        "sync_max_ms": sync["max_ms"],
        "fleet_processes": processes,
        "fleet_worker_rss_mb": report.worker_rss_mb,
        "agent_counters": dict(report.counters),
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--processes", type=int, help="fleet worker processes (default: one per 500 sites)")
    parser.add_argument("--sqlite", action="store_true", help="central on SQLite instead of PostgreSQL")
    args = parser.parse_args()
    if args.sites < 1:
        parser.error("--sites must be at least 1")
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(30),
    )
    from tests.infra import running_mosquitto, running_postgres_cluster

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-propagation-")))
        broker = stack.enter_context(running_mosquitto())
        if args.sqlite:
            url = f"sqlite:///{tmp / 'central.db'}"
        else:
            url = stack.enter_context(running_postgres_cluster()).create_database("bench")
        result = measure(url, args.sites, args.processes, tmp, (broker.host, broker.port))
    result["database"] = "sqlite" if args.sqlite else "postgresql"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
