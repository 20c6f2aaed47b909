"""Event ingest throughput: agent events committed exactly once through the gateway, per database.

`python -m bench.ingest [--events N]` starts its own mosquitto and databases (a SQLite file and a throwaway
PostgreSQL cluster), then for each database: a fake agent (`mosquitto_pub -l`, QoS 1) publishes N access
events plus 5 % resent duplicates; the clock stops when the agent has received central's `Ack` for every
event, i.e. when all are committed. The same N messages through bare mosquitto_pub → mosquitto_sub give the
broker's own rate on this machine for comparison. Prints one JSON line; the goal is ≥ 5,000 events/s into
PostgreSQL.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from central.config import Settings
from central.db import make_engine, migrate, session_factory
from central.gateway import Gateway
from central.models import Door, DoorKind, Event, Site, Zone
from protocol import codec
from protocol import messages as m
from protocol.topics import Channel, site_topic

SITE = "bench-torg"
DUPLICATE_SHARE = 0.05
TIMEOUT_S = 120.0


def event_lines(count: int) -> tuple[list[bytes], set[uuid.UUID]]:
    """N distinct access events as JSON lines, with 5 % of them sent a second time, shuffled in."""
    start = datetime.now(UTC)
    events = [
        m.AccessEvent(
            event_id=uuid.uuid4(),
            site=SITE,
            agent=f"agent-{SITE}",
            seq=i,
            device_time=start + timedelta(milliseconds=i),
            door="inngang",
            decision=m.Decision.GRANT,
            reason=m.Reason.SCHEDULE,
            method=m.Method.CARD_PIN,
            credential_ref=f"c{i % 5000 + 1}",
            person_ref=f"p{i % 5000 + 1}",
        )
        for i in range(count)
    ]
    lines = [codec.encode(e) for e in events]
    rng = random.Random(42)
    resent = rng.sample(range(count), int(count * DUPLICATE_SHARE))
    for index in resent:  # resent a little later than the original, as an agent would
        lines.insert(min(len(lines), index + rng.randint(1, 500)), lines[index])
    return lines, {e.event_id for e in events}


class AckWatcher:
    """The agent's side of the acknowledgement: which event ids central has confirmed."""

    def __init__(self, host: str, port: int, wanted: set[uuid.UUID]) -> None:
        self.wanted = wanted
        self.acked: set[uuid.UUID] = set()
        self.done = threading.Event()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="bench-agent-acks", protocol=mqtt.MQTTv5
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.connect(host, port)
        self.client.subscribe(site_topic(SITE, Channel.ACK), qos=1)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("ack subscription not confirmed")

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.acked.update(codec.decode(msg.payload, m.Ack).event_ids)
        if self.wanted <= self.acked:
            self.done.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def prepare(url: str) -> None:
    migrate(url)
    engine = make_engine(url)
    with session_factory(engine)() as session, session.begin():
        site = Site(slug=SITE, name="Bench innbyggertorg")
        zone = Zone(slug="torg", name="Torget")
        site.zones.append(zone)
        session.add(site)
        session.flush()
        session.add(Door(site=site, zone=zone, slug="inngang", name="Inngang", kind=DoorKind.ENTRANCE))
    engine.dispose()


def publish_lines(host: str, port: int, topic: str, path: Path) -> None:
    with path.open("rb") as lines:
        subprocess.run(
            ["mosquitto_pub", "-h", host, "-p", str(port), "-q", "1", "-t", topic, "-l", "-i", "bench-agent"],
            stdin=lines,
            check=True,
        )


def through_gateway(
    url: str, host: str, port: int, lines: list[bytes], ids: set[uuid.UUID], tmp: Path
) -> dict[str, Any]:
    prepare(url)
    engine = make_engine(url, pool_size=4) if url.startswith("postgresql") else make_engine(url)
    settings = Settings(data_dir=tmp, db_url=url, mqtt_host=host, mqtt_port=port)
    gateway = Gateway(
        settings, engine, client_id=f"central-bench-{uuid.uuid4().hex[:6]}", keys_provider=lambda: None
    )
    gateway.start()
    if not gateway.link.wait_connected(10):
        raise RuntimeError("gateway did not connect")
    watcher = AckWatcher(host, port, ids)
    path = tmp / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    try:
        started = time.perf_counter()
        publish_lines(host, port, site_topic(SITE, Channel.EVENT), path)
        if not watcher.done.wait(TIMEOUT_S):
            raise RuntimeError(
                f"only {len(watcher.acked)} of {len(ids)} events acknowledged in {TIMEOUT_S} s"
            )
        elapsed = time.perf_counter() - started
    finally:
        watcher.close()
        gateway.stop()
    with session_factory(engine)() as session:
        rows = session.execute(select(func.count(), func.count(func.distinct(Event.event_id)))).one()
    engine.dispose()
    return {
        "events_per_s": round(len(ids) / elapsed),
        "rows": rows[0],
        "duplicates_in_db": rows[0] - rows[1],
        "duplicates_sent": len(lines) - len(ids),
    }


def raw_mqtt(host: str, port: int, lines: list[bytes], tmp: Path) -> float:
    """Messages per second from mosquitto_pub to mosquitto_sub (QoS 1) on the same broker."""
    topic = site_topic("bench-raw", Channel.EVENT)
    path = tmp / "raw.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    sub = subprocess.Popen(
        ["mosquitto_sub", "-h", host, "-p", str(port), "-q", "1", "-t", topic, "-C", str(len(lines))],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)  # let the subscription settle
    started = time.perf_counter()
    publish_lines(host, port, topic, path)
    sub.wait(TIMEOUT_S)
    return len(lines) / (time.perf_counter() - started)


# Central's broker takes the bursts of all sites: mosquitto's default of 1,000 queued messages per client
# would drop QoS 1 messages as soon as central falls behind (agents resend them, but the rate would lie).
BROKER_EXTRA = "\nmax_queued_messages 1000000\n"


@contextlib.contextmanager
def broker(tmp: Path) -> Iterator[tuple[str, int]]:
    """mosquitto with the demo configuration (deploy/mosquitto/demo.conf) plus BROKER_EXTRA."""
    from tests.infra import LOOPBACK, free_port, mosquitto_config, port_accepts

    port, data_dir = free_port(), tmp / "mosquitto"
    data_dir.mkdir()
    config = data_dir / "mosquitto.conf"
    config.write_text(mosquitto_config(port, data_dir) + BROKER_EXTRA)
    process = subprocess.Popen(
        ["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while not port_accepts(LOOPBACK, port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mosquitto did not start; see {data_dir / 'mosquitto.log'}")
            time.sleep(0.02)
        yield LOOPBACK, port
    finally:
        process.terminate()
        process.wait(10)


@contextlib.contextmanager
def postgresql() -> Iterator[str]:
    from tests.infra import running_postgres_cluster

    with running_postgres_cluster() as cluster:
        yield cluster.create_database("bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--no-postgresql", action="store_true")
    args = parser.parse_args()
    if shutil.which("mosquitto_pub") is None:
        raise SystemExit("mosquitto_pub not found: install mosquitto-clients (scripts/bootstrap.sh)")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))  # warnings and worse only
    lines, ids = event_lines(args.events)
    result: dict[str, Any] = {"bench": "ingest", "events": args.events}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-ingest-")))
        host, port = stack.enter_context(broker(tmp))
        result["raw_mqtt_msgs_per_s"] = round(raw_mqtt(host, port, lines, tmp))
        sqlite = through_gateway(f"sqlite:///{tmp / 'central.db'}", host, port, lines, ids, tmp)
        result["sqlite_events_per_s"] = sqlite["events_per_s"]
        duplicates = sqlite["duplicates_in_db"]
        rows_ok = sqlite["rows"] == args.events
        if not args.no_postgresql:
            pg = through_gateway(stack.enter_context(postgresql()), host, port, lines, ids, tmp)
            result["postgresql_events_per_s"] = pg["events_per_s"]
            duplicates += pg["duplicates_in_db"]
            rows_ok = rows_ok and pg["rows"] == args.events
        result["duplicates_sent"] = sqlite["duplicates_sent"]
    result["duplicates_in_db"] = duplicates
    result["all_events_stored"] = rows_ok
    result["goal_postgresql_5000"] = result.get("postgresql_events_per_s", 0) >= 5000
    result["cpus"] = os.cpu_count()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
