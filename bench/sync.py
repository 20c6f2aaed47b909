"""A fresh agent's full sync of a big site: from its snapshot request to its replica applied and ready.

`python -m bench.sync [--credentials 100000] [--runs 3] [--sqlite]` fills a throwaway PostgreSQL cluster (or
a SQLite file) with one site whose residents all have a card (keyed UID hash and PIN hash, as in
production), runs central's gateway in this process and a private mosquitto, then starts a real agent
(controller.runtime.start on MockFactory pins, empty data directory, so its replica file is new) once per
run. Measured: from the moment the agent's snapshot request reaches the broker (seen by an observing
client) to the agent's replica holding the snapshot (central builds and encodes it, the broker carries
it, the agent decodes it and writes its SQLite replica in one transaction). Then a resident's card is
tapped: the agent must know it (asking for the PIN). Afterwards the parts are timed alone, on the same data:
central building the snapshot, encoding and checking it (the publisher decodes what it sends), the agent
decoding it and applying it to a new replica file; the rest of the end-to-end time is the broker, the
sockets and the threads. One JSON line with the median of the runs; the goal is ≤ 5 s at 100,000
credentials. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, insert, text

from bench.replica import PIN_HASH
from central.config import UID_HASH_KEY_FILE, Settings
from central.db import make_engine, migrate, session_factory
from central.gateway import Gateway
from central.gateway.publisher import validated
from central.models import (
    AccessGroup,
    Credential,
    CredentialKind,
    Door,
    DoorKind,
    GroupMember,
    GroupZone,
    HoursKind,
    OpeningHours,
    Person,
    PersonKind,
    Site,
    Zone,
)
from central.replica import build_snapshot
from central.security import card_uid_hash
from controller.replica import Replica
from protocol import codec
from protocol import messages as m
from protocol.topics import Channel, site_topic

SITE = "bench-torg"
DOOR = "hovedinngang"
CHUNK = 10_000
GOAL_S = 5.0
SYNC_TIMEOUT_S = 120.0
RUN_GAP_S = 2.5  # central sends a site at most one snapshot every 2 s
TAPPED = 7


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def card_uid(number: int) -> bytes:
    return (0x04 << 48 | number).to_bytes(7, "big")


def populate(engine: Engine, count: int, uid_key: bytes) -> None:
    """One site with a door and meråpent hours, one group, `count` residents with a card each."""
    now = datetime.now(UTC)
    with session_factory(engine)() as session, session.begin():
        site = Site(slug=SITE, name="Bench innbyggertorg")
        zone = Zone(slug="torg", name="Torget")
        site.zones.append(zone)
        group = AccessGroup(slug="innbyggere", name="Innbyggere")
        session.add_all([site, group])
        session.flush()
        session.add(Door(site=site, zone=zone, slug=DOOR, name="Hovedinngang", kind=DoorKind.ENTRANCE))
        opens, closes = clock_time(7), clock_time(22)
        session.add_all(
            OpeningHours(site=site, weekday=d, opens=opens, closes=closes, kind=HoursKind.MERAAPENT)
            for d in range(7)
        )
        session.execute(insert(GroupZone).values(group_id=group.id, zone_id=zone.id))
        for start in range(1, count + 1, CHUNK):
            ids = range(start, min(start + CHUNK, count + 1))
            session.execute(
                insert(Person),
                [{"id": i, "kind": PersonKind.RESIDENT, "display_name": f"Innbygger {i}"} for i in ids],
            )
            session.execute(insert(GroupMember), [{"group_id": group.id, "person_id": i} for i in ids])
            session.execute(
                insert(Credential),
                [
                    {
                        "id": i,
                        "person_id": i,
                        "kind": CredentialKind.CARD,
                        "uid_hash": card_uid_hash(card_uid(i), uid_key),
                        "pin_hash": PIN_HASH,
                        "valid_from": now - timedelta(days=1),
                    }
                    for i in ids
                ],
            )
        if engine.dialect.name == "postgresql":  # explicit ids: move the sequences past them
            for table in ("persons", "credentials"):
                session.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {count})"))
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")


class RequestWatcher:
    """Notes when the site's snapshot request passes the broker (a client of its own, like a monitor)."""

    def __init__(self, host: str, port: int) -> None:
        self.seen: list[float] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"bench-sync-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5
        )
        self.client.on_message = lambda *_a: self.seen.append(time.monotonic())
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.connect(host, port)
        self.client.subscribe(site_topic(SITE, Channel.REPLICA_REQUEST), qos=1)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("the request watcher's subscription was not confirmed")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def agent_config(root: Path, name: str, key_file: Path, broker: tuple[str, int]) -> Path:
    path = root / f"{name}.toml"
    path.write_text(
        f"""
[agent]
site = "{SITE}"
name = "{name}"
data_dir = "{root / name}"
uid_hash_key_file = "{key_file}"

[mqtt]
host = "{broker[0]}"
port = {broker[1]}

[[doors]]
slug = "{DOOR}"
relay = "GPIO17"
lock_type = "fail_secure"
contact = "GPIO27"
exit_button = "GPIO22"
reader = "pcsc:No Such Reader"
""",
        encoding="utf-8",
    )
    return path


def eventually(condition: Callable[[], bool], what: str, timeout: float = SYNC_TIMEOUT_S) -> float:
    """Poll until `condition` holds; returns the monotonic time it was first seen to."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"sync bench: {what} not within {timeout:g} s")
        time.sleep(0.002)
    return time.monotonic()


def one_sync(config_path: Path, watcher: RequestWatcher) -> tuple[float, bool]:
    """Start a fresh agent; (seconds from its snapshot request to the replica applied, tap decided)."""
    from gpiozero.pins.mock import MockFactory

    from controller.config import load_config
    from controller.inputs import CardPresented
    from controller.runtime import start

    seen_before = len(watcher.seen)
    running = start(load_config(config_path), factory=MockFactory())
    stop = threading.Event()
    loop = threading.Thread(target=running.agent.run, args=(stop,), name="agent", daemon=True)
    loop.start()
    try:
        agent = running.agent
        eventually(lambda: len(watcher.seen) > seen_before, "the snapshot request")
        requested = watcher.seen[seen_before]
        applied = eventually(lambda: agent.replica.seq is not None, "the replica")
        agent.submit(CardPresented(DOOR, card_uid(TAPPED)))
        eventually(lambda: agent.awaiting_pin(DOOR), "the tap of a known card (PIN asked)", timeout=5)
        return applied - requested, agent.replica.count() > 0
    finally:
        stop.set()
        loop.join(10)
        running.close()


def parts(engine: Engine, tmp: Path) -> dict[str, float]:
    """The steps of a sync, each timed alone (seconds; the snapshot's size in MB)."""
    timed: dict[str, float] = {}

    def clock(name: str, started: float) -> None:
        timed[name] = round(time.perf_counter() - started, 3)

    started = time.perf_counter()
    with session_factory(engine)() as session:
        snapshot = build_snapshot(session, SITE)
    clock("central_build_s", started)
    started = time.perf_counter()
    payload = validated(snapshot)
    clock("central_encode_check_s", started)
    started = time.perf_counter()
    received = codec.decode(payload, m.ReplicaSnapshot)
    clock("agent_decode_s", started)
    with Replica(tmp / "parts-replica.db", site=SITE) as replica:
        started = time.perf_counter()
        replica.apply_snapshot(received)
        clock("agent_apply_s", started)
    timed["snapshot_mb"] = round(len(payload) / 1e6, 1)
    return timed


def measure(url: str, count: int, runs: int, tmp: Path, broker: tuple[str, int]) -> dict[str, Any]:
    settings = Settings(data_dir=tmp / "central", db_url=url, mqtt_host=broker[0], mqtt_port=broker[1])
    migrate(url)
    engine = make_engine(url)
    started = time.monotonic()
    populate(engine, count, settings.uid_hash_key())
    say(f"sync: {count} credentials written in {time.monotonic() - started:.1f} s")
    gateway = Gateway(
        settings, engine, client_id=f"central-bench-{uuid.uuid4().hex[:6]}", keys_provider=lambda: None
    )
    gateway.start()
    watcher = RequestWatcher(*broker)
    times: list[float] = []
    try:
        if not gateway.link.wait_connected(10):
            raise SystemExit("sync bench: the gateway did not connect to the broker")
        time.sleep(1.0)  # let central publish the site's retained config first, as in a running system
        for n in range(runs):
            path = agent_config(tmp, f"bench-pi-{n}", settings.secrets_dir / UID_HASH_KEY_FILE, broker)
            seconds, _known = one_sync(path, watcher)
            times.append(seconds)
            say(f"sync: run {n + 1}: {seconds:.2f} s")
            time.sleep(RUN_GAP_S)
    finally:
        watcher.close()
        gateway.stop()
    try:
        timed = parts(engine, tmp)
    finally:
        engine.dispose()
    median = statistics.median(times)
    return {
        "bench": "sync",
        "credentials": count,
        "runs": runs,
        "sync_s": round(median, 3),
        "sync_max_s": round(max(times), 3),
        "goal_5s": median <= GOAL_S,
        **timed,
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--credentials", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sqlite", action="store_true", help="central on SQLite instead of PostgreSQL")
    args = parser.parse_args()
    if args.credentials < TAPPED or args.runs < 1:
        parser.error(f"--credentials must be at least {TAPPED} and --runs at least 1")
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(30),
    )
    from tests.infra import running_mosquitto, running_postgres_cluster

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-sync-")))
        broker = stack.enter_context(running_mosquitto())
        if args.sqlite:
            url = f"sqlite:///{tmp / 'central.db'}"
        else:
            url = stack.enter_context(running_postgres_cluster()).create_database("bench")
        result = measure(url, args.credentials, args.runs, tmp, (broker.host, broker.port))
    result["database"] = "sqlite" if args.sqlite else "postgresql"
    print(json.dumps(result))


if __name__ == "__main__":
    main()
