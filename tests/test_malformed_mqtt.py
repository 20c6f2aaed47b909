"""Oversized, malformed, mistyped, cross-site and retained MQTT messages, over a real mosquitto.

Central's gateway and the site agent each get a bad message of every kind on the topics they listen to.
Each must be refused and counted by its reason (the gateway's `status()["ingest"]["refused"]`, the agent
link's `stats()["refused"]`), nothing of it stored or executed, and the next good message must still go
through: one hostile or broken peer must not take down the side that listens to it.

The broker itself takes a payload of any size here (deploy/mosquitto/demo.conf sets no max_packet_size,
mosquitto's default is the protocol's 256 MB), so the size limits that count are the codec's, per message
type (protocol/messages.py `max_bytes`: 64 KiB for an event, 8 MiB for a replica delta).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import Engine, select

from central.config import Settings
from central.db import make_engine, migrate, session_factory
from central.gateway import Gateway
from central.models import Event
from controller.agent import Agent, AgentSettings
from controller.clock import ManualClock
from controller.config import MqttSettings
from controller.link import AgentLink
from protocol import codec
from protocol import messages as m
from protocol.topics import SITE_ROOT, Channel, site_topic
from tests.infra import MosquittoBroker
from tests.test_controller_agent import KEY, FakeDoor
from tests.test_controller_link import Central, eventually
from tests.test_gateway import FakeAgent
from tests.test_ingest import access
from tests.test_replica import build_world

WAIT_S = 15.0
MONDAY_EVENING = datetime.fromisoformat("2026-11-23T19:30:00+00:00")


def edited(message: m.Message, **changes: object) -> bytes:
    doc = json.loads(codec.encode(message))
    doc.update(changes)
    return json.dumps(doc).encode()


def without(message: m.Message, field: str) -> bytes:
    doc = json.loads(codec.encode(message))
    del doc[field]
    return json.dumps(doc).encode()


# --- central's gateway -------------------------------------------------------------------------------------


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'central.db'}"
    migrate(url)
    engine = make_engine(url)
    with session_factory(engine)() as session:
        build_world(session)  # sites nord and sor, nord's door "inngang"
        session.commit()
    yield engine
    engine.dispose()


@pytest.fixture
def gateway(engine: Engine, private_mosquitto: MosquittoBroker, tmp_path: Path) -> Iterator[Gateway]:
    settings = Settings(data_dir=tmp_path, mqtt_host=private_mosquitto.host, mqtt_port=private_mosquitto.port)
    running = Gateway(settings, engine, client_id="central-malformed", poll_s=0.05, refresh_s=0.3).start()
    assert running.link.wait_connected(WAIT_S)
    yield running
    running.stop()


@pytest.fixture
def nord(private_mosquitto: MosquittoBroker) -> Iterator[FakeAgent]:
    agent = FakeAgent(private_mosquitto, "nord")
    yield agent
    agent.close()


def refused(gateway: Gateway) -> dict[str, int]:
    counts: dict[str, int] = gateway.status()["ingest"]["refused"]
    return counts


def stored(engine: Engine) -> list[str]:
    with session_factory(engine)() as session:
        return list(session.execute(select(Event.event_id)).scalars())


def publish(agent: FakeAgent, topic: str, payload: bytes, *, retain: bool = False) -> None:
    agent.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)


EVENT_TOPIC = site_topic("nord", Channel.EVENT)
DOOR_TOPIC = site_topic("nord", Channel.DOOR_STATE, "inngang")


def hostile_messages() -> list[tuple[str, str, bytes, str]]:
    """(what, topic, payload, the gateway's refusal reason): each one a broken or hostile agent could send."""
    event = access()
    state = m.DoorState(
        site="nord",
        door="inngang",
        state=m.DoorStateName.OPEN,
        since=MONDAY_EVENING,
        device_time=MONDAY_EVENING,
    )
    return [
        ("an event padded over 64 KiB", EVENT_TOPIC, codec.encode(event) + b" " * 65_536, "too_large"),
        ("a megabyte of garbage", EVENT_TOPIC, b"{" + b"x" * 2**20, "too_large"),
        ("not JSON", EVENT_TOPIC, b"\x00\x01 not json", "not_json"),
        ("msgpack instead of JSON", EVENT_TOPIC, msgspec.msgpack.encode(event), "not_json"),
        ("an empty payload", EVENT_TOPIC, b"", "not_json"),
        ("a JSON array", EVENT_TOPIC, b"[1, 2, 3]", "no_type"),
        ("no type", EVENT_TOPIC, without(event, "type"), "no_type"),
        ("an unknown type", EVENT_TOPIC, edited(event, type="open_sesame"), "unknown_type"),
        (
            "an ack on the event topic",
            EVENT_TOPIC,
            codec.encode(m.Ack(site="nord", event_ids=[])),
            "wrong_type",
        ),
        ("schema version 2", EVENT_TOPIC, edited(event, v=2), "unsupported_version"),
        ("a number as text", EVENT_TOPIC, edited(event, seq="seven"), "invalid"),
        ("a decision nobody knows", EVENT_TOPIC, edited(event, decision="maybe"), "invalid"),
        ("an unknown field", EVENT_TOPIC, edited(event, door_override=True), "invalid"),
        ("a field missing", EVENT_TOPIC, without(event, "event_id"), "invalid"),
        ("a time without zone", EVENT_TOPIC, edited(event, device_time="2026-11-23T19:30:00"), "invalid"),
        ("a nested bomb", EVENT_TOPIC, b'{"type":"access_event","v":1,"site":' + b"[" * 50_000, "not_json"),
        ("nord speaking for sor", EVENT_TOPIC, codec.encode(access(site="sor")), "site_mismatch"),
        (
            "another door's state on this door's topic",
            DOOR_TOPIC,
            codec.encode(msgspec.structs.replace(state, door="bakdor")),
            "door_mismatch",
        ),
        (
            "a site central does not know",
            site_topic("ukjent", Channel.EVENT),
            codec.encode(access(site="ukjent")),
            "unknown_site",
        ),
        ("a topic outside the layout", f"{SITE_ROOT}/NORD/event", codec.encode(event), "bad_topic"),
    ]


def test_every_malformed_message_is_refused_by_its_reason_and_the_next_good_one_lands(
    gateway: Gateway, nord: FakeAgent, engine: Engine
) -> None:
    hostile = hostile_messages()
    for _what, topic, payload, _reason in hostile:
        publish(nord, topic, payload)
    good = access()
    nord.send(Channel.EVENT, good)
    nord.wait_acked({good.event_id})
    expected: dict[str, int] = {}
    for _what, _topic, _payload, reason in hostile:
        expected[reason] = expected.get(reason, 0) + 1
    eventually(lambda: sum(refused(gateway).values()) >= len(hostile), "every refusal counted")
    assert refused(gateway) == expected
    assert stored(engine) == [str(good.event_id)]
    assert gateway.link.connected and gateway.status()["ingest"]["backlog"] == 0
    assert nord.acked() == [good.event_id]  # nothing refused was acknowledged to the agent


def test_a_retained_event_replayed_to_central_on_reconnect_is_stored_once(
    engine: Engine, private_mosquitto: MosquittoBroker, nord: FakeAgent, tmp_path: Path
) -> None:
    """Events must never be retained; if a broken agent does it anyway, the broker replays the event to
    central on every new subscription. Central's exactly-once insert keeps it one event."""
    settings = Settings(data_dir=tmp_path, mqtt_host=private_mosquitto.host, mqtt_port=private_mosquitto.port)
    event = access()
    first = Gateway(settings, engine, client_id="central-a", poll_s=0.05, refresh_s=0.3).start()
    try:
        assert first.link.wait_connected(WAIT_S)
        nord.send(Channel.EVENT, event, retain=True)
        nord.wait_acked({event.event_id})
    finally:
        first.stop()
    second = Gateway(settings, engine, client_id="central-b", poll_s=0.05, refresh_s=0.3).start()
    try:  # a new session subscribes afresh, and the broker hands it the retained copy
        assert second.link.wait_connected(WAIT_S)
        eventually(lambda: second.status()["ingest"]["messages_done"] >= 1, "the replayed event handled")
        assert second.status()["ingest"]["events_duplicate"] == 1
    finally:
        second.stop()
    assert stored(engine) == [str(event.event_id)]
    publish(nord, EVENT_TOPIC, b"", retain=True)  # clear it


# --- the site agent ----------------------------------------------------------------------------------------


class RunningAgent:
    """The real agent and its MQTT link, on fake door hardware; central is a plain paho client."""

    def __init__(self, broker: MosquittoBroker, site: str, data_dir: Path, clock: ManualClock) -> None:
        self.door = FakeDoor()
        settings = AgentSettings(site=site, name=f"{site}-pi", data_dir=data_dir, uid_hash_key=KEY)
        self.agent = Agent(settings, clock, {"hovedinngang": self.door})
        self.link = AgentLink(
            MqttSettings(host=broker.host, port=broker.port, keepalive=5),
            site,
            f"{site}-pi",
            self.agent,
            clock,
            on_connected=self.agent.on_connected,
        )
        self.agent.link = self.link
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.agent.run, args=(self.stop,), daemon=True)
        self.thread.start()
        self.link.start()
        assert self.link.wait_connected(WAIT_S)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.link.stop()
        self.agent.close()


@pytest.fixture
def site() -> str:
    return f"t{uuid.uuid4().hex[:10]}"  # the session broker keeps retained messages: a site of our own


def command_results(central: Central) -> list[m.CommandResult]:
    return [
        message
        for _channel, message, _retained in list(central.heard.items)
        if isinstance(message, m.CommandResult)
    ]


def unlock(site: str, now: datetime, **changes: object) -> m.Command:
    values: dict[str, object] = {
        "command_id": uuid.uuid4(),
        "site": site,
        "action": m.Action.UNLOCK,
        "nonce": uuid.uuid4().hex,
        "issued_at": now,
        "expires_at": now + timedelta(seconds=30),
        "issued_by": "vaktmester",
        "reason": "test",
        "door": "hovedinngang",
        "duration_seconds": 5,
    }
    return m.Command(**(values | changes))  # type: ignore[arg-type]


def test_the_agent_refuses_malformed_stale_and_replayed_messages_and_still_obeys_a_good_one(
    mosquitto: MosquittoBroker, site: str, tmp_path: Path
) -> None:
    clock = ManualClock(MONDAY_EVENING)
    now = clock.now()
    central = Central(mosquitto, site)
    central.send(Channel.COMMAND, unlock(site, now), retain=True)  # waiting for the agent: replayed to it
    running = RunningAgent(mosquitto, site, tmp_path / "agent", clock)
    try:
        snapshot = m.ReplicaSnapshot(site=site, seq=10, generated_at=now)
        delta = m.ReplicaDelta(site=site, seq=11, prev_seq=10, generated_at=now)
        twice = unlock(site, now)
        stale = unlock(site, now - timedelta(minutes=2))
        sent: list[tuple[Channel, m.Message | bytes]] = [
            (Channel.COMMAND, b"\x00\x01 not json"),
            (Channel.COMMAND, edited(unlock(site, now), action="open_all_doors")),
            (Channel.COMMAND, edited(unlock(site, now), also="everything")),
            (Channel.COMMAND, unlock("holmen", now)),  # another site's command on this site's topic
            (Channel.COMMAND, m.Ack(site=site, event_ids=[])),
            (Channel.REPLICA_DELTA, b"{" + b" " * (8 * 2**20)),  # over a delta's 8 MiB
            (Channel.REPLICA_DELTA, edited(delta, seq=9)),  # seq before prev_seq
            (Channel.REPLICA_DELTA, m.ReplicaDelta(site="holmen", seq=11, prev_seq=10, generated_at=now)),
            (Channel.REPLICA_SNAPSHOT, snapshot),
            (Channel.REPLICA_DELTA, delta),
            (Channel.REPLICA_DELTA, delta),  # replayed: stale, ignored
            (
                Channel.REPLICA_DELTA,
                m.ReplicaDelta(site=site, seq=31, prev_seq=30, generated_at=now),
            ),  # a gap
            (Channel.COMMAND, twice),
            (Channel.COMMAND, twice),  # replayed
            (Channel.COMMAND, stale),
        ]
        for channel, message in sent:
            central.send(channel, message)
        central.expect(m.CommandResult, lambda r: r.command_id == stale.command_id)
        clock.advance(6)  # the one unlock that was done runs out
        eventually(lambda: not running.door.is_unlocked, "the door locks again")
        last = unlock(site, clock.now())
        central.send(Channel.COMMAND, last)
        central.expect(m.CommandResult, lambda r: r.command_id == last.command_id)
        assert running.link.stats()["refused"] == {
            "retained": 1,
            "not_json": 1,
            "invalid": 3,
            "site_mismatch": 2,
            "wrong_type": 1,
            "too_large": 1,
        }
        outcomes = [(r.outcome, r.reason.split(":")[0]) for r in command_results(central)]
        assert outcomes == [
            (m.CommandOutcome.DONE, ""),
            (m.CommandOutcome.REFUSED, "replayed"),
            (m.CommandOutcome.REFUSED, "expired"),
            (m.CommandOutcome.DONE, ""),
        ]
        assert running.door.unlocked.count(True) == 2  # the first copy and the last command, nothing else
        assert running.agent.replica.seq == 11
        request, _retained = central.expect(m.ReplicaRequest, lambda r: r.have_seq == 11)
        assert "gap" in request.reason
        assert running.thread.is_alive()
    finally:
        running.close()
        central.send(Channel.COMMAND, b"", retain=True)
        central.close()
