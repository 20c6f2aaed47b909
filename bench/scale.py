"""1,000 sites against one central on PostgreSQL: revocation propagation, event ingestion, API latency under
load and memory, in one run (`make scale`).

`python -m bench.scale [--sites 1000] [--api-rates 50,100,250,500] [--api-seconds 30] [--api-connections 64]
[--api-processes 1] [--ingest-rate 6000] [--ingest-seconds 10] ...` starts a throwaway PostgreSQL cluster and
a private mosquitto (the demo configuration), creates the fleet's sites (hw_sim.fleet.create_sites) and four
weeks of history (past events and alarms), and runs central as an operator does: `meraapent central serve`
in its own process (API, MQTT gateway and background jobs; one uvicorn process, since `serve` has no worker
option; `--api-processes N` adds N-1 `serve --no-gateway` processes that the load generator spreads its
connections over, as a load balancer would). The simulated agents (hw_sim.fleet) connect through mosquitto
and sync. Then, in turn:

(a) propagation: through the API a caretaker's card is revoked, the other caretaker's card blocked, unblocked
    and blocked again; measured per agent and refusal from the moment the POST leaves to the moment that
    agent's replica refuses the card (CLOCK_MONOTONIC is system-wide, so the agents' times compare);
(b) ingestion: the whole fleet taps at the offered rate (random agents: every site sends); measured from the
    first tap to the moment the last event is committed (counted in central's database), i.e. with the
    backlog drained;
(c) API latency: an open-loop load generator in its own process (bench.scale_load) sends a caretakers' mix
    at fixed rates, step after step, while every agent stays connected and the fleet taps a little in the
    background; latency runs from each request's scheduled moment to its answer's last byte. Last, because
    an overloaded central may need a while to recover (`recovered_after_s`);
(d) memory: peak resident memory of central's processes and of mosquitto (VmHWM) and the sampled peak of
    PostgreSQL's private memory.
At the end every tap of the run must be stored exactly once (`goals.exactly_once`).

Prints one JSON line ({"bench": "scale", ...}) with the goals: propagation p99 ≤ 1 s, ingestion ≥ 5,000
events/s, API p99 ≤ 100 ms at 500 requests/s with every request answered and no server error. Progress goes
to stderr. On the 2-core build machine it takes about ten minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bench.scale_central import (
    CentralServer,
    MemoryWatch,
    central_server,
    cpu_seconds,
    load_targets,
    pid_running,
    postmaster_pid,
    seed_history,
    staff_token,
)
from bench.scale_load import WRITE_SHARE
from central.config import UID_HASH_KEY_FILE, Settings
from central.db import make_engine, migrate, session_factory, session_scope
from central.models import Event, EventKind
from hw_sim.broker import MosquittoBroker
from hw_sim.fleet import Fleet, FleetPlan, FleetReport, caretaker_credential, create_sites, latency_figures

GOAL_PROPAGATION_P99_S = 1.0
GOAL_EVENTS_PER_S = 5000
GOAL_API_P99_MS = 100.0
GOAL_API_RATE = 500.0
SYNC_TIMEOUT_S = 900.0
REFUSAL_TIMEOUT_S = 120.0
COMMIT_TIMEOUT_S = 300.0
RECOVERY_TIMEOUT_S = 60.0

Say = Callable[[str], None]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ScaleOptions:
    sites: int = 1000
    api_rates: tuple[float, ...] = (50.0, 100.0, 250.0, GOAL_API_RATE)  # steps, each for api_seconds
    api_seconds: float = 30.0
    api_connections: int = 64
    api_processes: int = 1  # more: extra `central serve --no-gateway` processes behind the generator
    write_share: float = WRITE_SHARE
    background_taps: float = 20.0  # a second, across the fleet, while the API is loaded
    ingest_rate: float = 6000.0
    ingest_seconds: float = 10.0
    history_events: int = 200_000
    alarms_per_site: int = 3
    processes: int | None = None


@dataclass
class Run:
    """What one run works with."""

    options: ScaleOptions
    sessions: sessionmaker[Session]
    uid_key: bytes
    centrals: list[CentralServer]  # the first runs the gateway
    fleet: Fleet
    token: str
    tmp: Path
    watch: MemoryWatch
    say: Say

    @property
    def central(self) -> CentralServer:
        return self.centrals[0]


Change = tuple[str, int, float, float]  # (action, caretaker, monotonic time the POST left, its duration)


def measure(
    options: ScaleOptions,
    url: str,
    broker: MosquittoBroker,
    tmp: Path,
    postmaster: int | None = None,
    say: Say = say,
) -> dict[str, Any]:
    """One run against the (empty) database at `url` and the broker; the figures as a dict. `postmaster`:
    PostgreSQL's process, whose memory is watched with its backends'."""
    broker_at = (broker.host, broker.port)
    settings = Settings(data_dir=tmp / "central", db_url=url, mqtt_host=broker.host, mqtt_port=broker.port)
    plan = FleetPlan(options.sites)
    migrate(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    uid_key = settings.uid_hash_key()
    try:
        with session_scope(sessions) as session:
            create_sites(session, plan, uid_key)
            token = staff_token(session)
        watermark = seed_history(engine, options.history_events, options.alarms_per_site, datetime.now(UTC))
        with sessions() as session:
            load_targets(session).dump(tmp / "targets.json")
        say(f"scale: {options.sites} sites and {options.history_events} past events in the database")
        with contextlib.ExitStack() as stack:
            centrals = [
                stack.enter_context(central_server(url, settings.data_dir, broker_at, log, gateway=n == 0))
                for n, log in enumerate(central_logs(tmp, options.api_processes))
            ]
            watch = MemoryWatch(
                lambda: [c.pid for c in centrals], pid_running(str(broker.config_path)), postmaster
            )
            key_file = settings.secrets_dir / UID_HASH_KEY_FILE
            fleet = stack.enter_context(
                Fleet(plan, broker_at, key_file, processes=options.processes, progress=say)
            )
            run = Run(options, sessions, uid_key, centrals, fleet, token, tmp, watch, say)
            result = _phases(run, watermark)
    finally:
        engine.dispose()
    result["options"] = asdict(options)
    return result


def central_logs(tmp: Path, count: int) -> list[Path]:
    return [tmp / f"central-{n}.log" for n in range(count)]


def _phases(run: Run, watermark: int) -> dict[str, Any]:
    """Sync, then the three loads in order of harm: ingestion before the API steps, which may overload
    central; the events tapped meanwhile must all be stored in the end."""
    run.watch.start()
    started = time.monotonic()
    sync_s = run.fleet.wait_synced(SYNC_TIMEOUT_S)
    all_synced_s = time.monotonic() - started
    run.say(f"scale: all {run.options.sites} agents synced in {all_synced_s:.1f} s")
    changes = propagate(run)
    ingest = ingestion(run, watermark)
    api = [api_load(run, rate) for rate in run.options.api_rates]
    try:
        wait_committed(run, watermark, run.fleet.taps_sent())
    except RuntimeError as exc:  # counted below as events the agents still hold
        run.say(f"scale: {exc}")
    memory = run.watch.figures()
    report = run.fleet.stop()
    memory["fleet_worker_rss_mb"] = report.worker_rss_mb
    stored = stored_events(run.sessions, watermark)
    return summary(run, changes, report, api, ingest, memory, stored, sync_s, all_synced_s)


# --- (a) propagation ----------------------------------------------------------------------------------------


def propagate(run: Run) -> list[Change]:
    """Revoke caretaker 1's card; block, unblock and block again caretaker 2's, each through the API and
    each waited for until every agent has it."""
    with run.sessions() as session:
        cards = {k: caretaker_credential(session, k, run.uid_key) for k in (1, 2)}
    changes: list[Change] = []
    for action, caretaker in (("revoke", 1), ("block", 2), ("unblock", 2), ("block", 2)):
        sent = time.monotonic()
        run.central.call("POST", f"/credentials/{cards[caretaker]}/{action}", run.token)
        took = time.monotonic() - sent
        refusing = 0 if action == "unblock" else run.options.sites
        run.fleet.wait_refusing(caretaker, refusing, REFUSAL_TIMEOUT_S)
        everywhere = time.monotonic() - sent
        run.say(f"scale: {action} of card {caretaker} reached every agent after {everywhere:.2f} s")
        changes.append((action, caretaker, sent, took))
    return changes


def propagation_figures(changes: list[Change], report: FleetReport) -> dict[str, Any]:
    reached: list[float] = []
    missed = 0
    for action, caretaker, sent, _took in changes:
        if action == "unblock":
            continue
        for seconds in report.reached(caretaker, sent, granted=False):
            if seconds is None:
                missed += 1
            else:
                reached.append(seconds)
    return {
        **latency_figures(reached),
        "refusals_measured": len(reached),
        "refusals_missed": missed,
        "changes": [action for action, *_ in changes],
        "api_call_ms": [round(took * 1000, 1) for *_x, took in changes],
    }


# --- (b) API latency ----------------------------------------------------------------------------------------


def api_load(run: Run, rate: float) -> dict[str, Any]:
    """The load generator in its own process at a fixed rate, the fleet tapping in the background."""
    o = run.options
    token_file = run.tmp / "staff-token"
    token_file.touch(mode=0o600)
    token_file.write_text(run.token)
    ports = ",".join(str(c.port) for c in run.centrals)
    cmd = [
        sys.executable, "-m", "bench.scale_load", "--ports", ports,
        "--token-file", str(token_file), "--targets-file", str(run.tmp / "targets.json"),
        "--rate", str(rate), "--duration", str(o.api_seconds),
        "--connections", str(o.api_connections), "--write-share", str(o.write_share),
    ]  # fmt: skip
    run.say(f"scale: {rate:g} requests/s for {o.api_seconds:g} s against central")
    if o.background_taps > 0:
        run.fleet.taps(o.background_taps, o.api_seconds)
    cpu_before = [cpu_seconds(c.pid) for c in run.centrals]
    load = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        while load.poll() is None:
            run.fleet.pump_for(0.2)
        out, _err = load.communicate()
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    if load.returncode != 0 or not out.strip():
        raise RuntimeError(f"the load generator failed (exit {load.returncode})")
    if o.background_taps > 0:
        run.fleet.wait_taps(60.0)
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    used = [cpu_seconds(c.pid) - before for c, before in zip(run.centrals, cpu_before, strict=True)]
    result["central_cpu_s"] = round(sum(used), 1)
    answered = result["answered"]
    result["central_cpu_ms_per_request"] = round(sum(used) * 1000 / answered, 1) if answered else None
    result["load_average_1m"] = round(os.getloadavg()[0], 2)
    result["central_restarted_after"] = revive(run)
    run.say(
        f"scale: API p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms at {result['achieved_rate']}/s"
        f" ({result['server_errors']} server errors, {result['no_answer']} without answer)"
    )
    return result


def revive(run: Run) -> bool:
    """Wait for every central process to answer /health again; restart one that does not within
    RECOVERY_TIMEOUT_S (stuck after an overload: see docs/benchmarks.md), so the next step and the final
    exactly-once check meet a working central. Whether one had to be restarted."""
    restarted = False
    for central in run.centrals:
        if central.wait_answering(RECOVERY_TIMEOUT_S) is None:
            run.say(f"scale: central (port {central.port}) stuck for {RECOVERY_TIMEOUT_S:g} s: restarting it")
            run.watch.sample()  # its peak memory, before it is gone
            central.restart()
            restarted = True
    return restarted


# --- (c) ingestion ------------------------------------------------------------------------------------------


def committed(sessions: sessionmaker[Session], after_id: int) -> int:
    """Access events central has committed since the watermark (the run's own)."""
    with sessions() as session:
        return int(
            session.scalar(
                select(func.count()).where(Event.id > after_id, Event.kind == EventKind.ACCESS)
            )
            or 0
        )


def wait_committed(run: Run, after_id: int, expected: int, timeout: float = COMMIT_TIMEOUT_S) -> float:
    """Wait until central has committed `expected` events since the watermark; returns when (monotonic)."""
    deadline = time.monotonic() + timeout
    while (count := committed(run.sessions, after_id)) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {count} of {expected} events committed within {timeout:g} s")
        run.fleet.pump_for(0.05)
    return time.monotonic()


def ingestion(run: Run, watermark: int) -> dict[str, Any]:
    """Every agent taps for a while at the offered rate; from the first tap to the last event committed."""
    o = run.options
    before = run.fleet.taps_sent()
    cpu_before = cpu_seconds(run.central.pid)
    started = time.monotonic()
    run.say(f"scale: the fleet taps {o.ingest_rate:g}/s for {o.ingest_seconds:g} s")
    run.fleet.taps(o.ingest_rate, o.ingest_seconds)  # all agents, at random
    run.fleet.wait_taps(o.ingest_seconds + 120)
    offered_s = time.monotonic() - started  # the workers' taps took at least ingest_seconds
    taps = run.fleet.taps_sent() - before
    drained = wait_committed(run, watermark, run.fleet.taps_sent())
    seconds = drained - started
    run.say(f"scale: {taps} events committed in {seconds:.1f} s ({taps / seconds:.0f}/s)")
    with run.sessions() as session:
        sending = session.scalar(
            select(func.count(func.distinct(Event.site_id))).where(
                Event.id > watermark, Event.kind == EventKind.ACCESS
            )
        )
    return {
        "events": taps,
        "sent_per_s": round(taps / offered_s),
        "committed_per_s": round(taps / seconds),
        "first_tap_to_last_commit_s": round(seconds, 2),
        "backlog_drain_s": round(drained - started - offered_s, 2),
        "sites_sending": sending,
        "central_cpu_s": round(cpu_seconds(run.central.pid) - cpu_before, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def stored_events(sessions: sessionmaker[Session], after_id: int) -> tuple[int, int]:
    """(rows, distinct event ids) of the run's events."""
    with sessions() as session:
        rows = session.execute(
            select(func.count(), func.count(func.distinct(Event.event_id))).where(Event.id > after_id)
        ).one()
    return int(rows[0]), int(rows[1])


# --- the result ---------------------------------------------------------------------------------------------


def summary(
    run: Run,
    changes: list[Change],
    report: FleetReport,
    api: list[dict[str, Any]],
    ingest: dict[str, Any],
    memory: dict[str, Any],
    stored: tuple[int, int],
    sync_s: list[float],
    all_synced_s: float,
) -> dict[str, Any]:
    o = run.options
    propagation = propagation_figures(changes, report)
    rows, distinct = stored
    ingest |= {
        "run_taps": report.taps,
        "run_events_stored": rows,
        "duplicates_in_db": rows - distinct,
        "duplicates_sent": report.duplicates_sent,
        "acked": report.acked,
        "unacked": report.unacked,
        "ack_p99_ms": latency_figures([ms / 1000 for ms in report.ack_ms])["p99_ms"],
    }
    at_goal = [step for step in api if step["target_rate"] >= GOAL_API_RATE]
    return {
        "bench": "scale",
        "sites": o.sites,
        "database": "postgresql",
        "api_processes": o.api_processes,
        "central_restarts": sum(c.restarts for c in run.centrals),
        "all_synced_s": round(all_synced_s, 1),
        "sync_p50_ms": latency_figures(sync_s)["p50_ms"],
        "propagation": propagation,
        "api": api,
        "ingest": ingest,
        "memory": memory,
        "goals": {
            "propagation_p99_1s": propagation["refusals_missed"] == 0
            and propagation["p99_ms"] <= GOAL_PROPAGATION_P99_S * 1000,
            "ingest_5000_per_s": ingest["committed_per_s"] >= GOAL_EVENTS_PER_S,
            "api_p99_100ms_at_500": bool(at_goal) and all(api_step_ok(step) for step in at_goal),
            "exactly_once": rows == distinct == report.taps and report.unacked == 0,
        },
        "agent_counters": dict(report.counters),
        "fleet_processes": run.fleet.processes,
        "cpus": os.cpu_count(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


def api_step_ok(step: dict[str, Any]) -> bool:
    """p99 within the goal, the rate held (2 % slack for start and end) and every request answered well."""
    return bool(
        step["p99_ms"] <= GOAL_API_P99_MS
        and step["achieved_rate"] >= 0.98 * step["target_rate"]
        and step["server_errors"] == 0
        and step["no_answer"] == 0
    )


@contextlib.contextmanager
def _throwaway() -> Iterator[tuple[str, MosquittoBroker, Path, int | None]]:
    from tests.infra import running_mosquitto, running_postgres_cluster

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-scale-")))
        broker = stack.enter_context(running_mosquitto())
        cluster = stack.enter_context(running_postgres_cluster())
        yield cluster.create_database("scale"), broker, tmp, postmaster_pid(cluster.data_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    d = ScaleOptions()
    parser.add_argument("--sites", type=int, default=d.sites)
    parser.add_argument(
        "--api-rates",
        default=",".join(f"{r:g}" for r in d.api_rates),
        help="requests a second, comma-separated steps (each for --api-seconds)",
    )
    parser.add_argument("--api-processes", type=int, default=d.api_processes)
    parser.add_argument("--api-seconds", type=float, default=d.api_seconds)
    parser.add_argument("--api-connections", type=int, default=d.api_connections)
    parser.add_argument("--write-share", type=float, default=d.write_share, help="block + unblock share")
    parser.add_argument("--background-taps", type=float, default=d.background_taps)
    parser.add_argument("--ingest-rate", type=float, default=d.ingest_rate, help="taps a second offered")
    parser.add_argument("--ingest-seconds", type=float, default=d.ingest_seconds)
    parser.add_argument("--history-events", type=int, default=d.history_events)
    parser.add_argument("--alarms-per-site", type=int, default=d.alarms_per_site)
    parser.add_argument("--processes", type=int, help="fleet worker processes (default: one per 500 sites)")
    args = parser.parse_args()
    given = vars(args)
    given["api_rates"] = tuple(float(r) for r in args.api_rates.split(","))
    options = ScaleOptions(**given)
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(30),
    )
    with _throwaway() as (url, broker, tmp, postmaster):
        result = measure(options, url, broker, tmp, postmaster)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
