"""The gateway against a real mosquitto and a real database, with a fake site agent on the other side."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from central import keystore
from central.config import Settings
from central.gateway import Gateway, GatewayUnavailable
from central.gateway.link import LinkSettings, MqttLink, PublishRefusedError
from central.gateway.publisher import content_hash
from central.models import Agent, Credential, CredentialStatus, Door, DoorKind, Event, Zone
from central.replica import build_snapshot
from central.services import replica_log
from central.services.site_config import build_site_config
from protocol import codec
from protocol import messages as m
from protocol.topics import RULES, Channel, Direction, site_filter, site_topic
from tests.infra import LOOPBACK, MosquittoBroker, free_port, mosquitto_config, port_accepts
from tests.test_ingest import access
from tests.test_replica import Agent as Replica
from tests.test_replica import World, build_world, card_of

WAIT_S = 15.0
M = TypeVar("M", bound=m.Message)


class FakeAgent:
    """A site agent as the gateway sees it: publishes on its site's topics, collects what comes back."""

    def __init__(self, broker: MosquittoBroker, site: str = "nord", *, will: bool = False) -> None:
        self.site, self.name = site, f"agent-{site}"
        self.received: list[tuple[Channel, m.Message, bool]] = []  # channel, message, retained
        self._changed = threading.Condition()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{self.name}-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5
        )
        if will:
            gone = m.AgentStatus(site=site, agent=self.name, online=False, at=datetime.now(UTC))
            self.client.will_set(site_topic(site, Channel.STATUS), codec.encode(gone), qos=1, retain=True)
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self._subscribed = threading.Event()
        self.client.on_subscribe = lambda *_args: self._subscribed.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self._subscribed.wait(WAIT_S)

    def _on_connect(self, client: mqtt.Client, *_args: Any) -> None:
        """Subscribe on every connect: after a broker restart the agent's session may be gone."""
        to_agent = [c for c, rule in RULES.items() if rule.direction is Direction.TO_AGENT]
        client.subscribe([(site_filter(self.site, c), 1) for c in to_agent])

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        channel = Channel(msg.topic.split("/", 4)[4])
        with self._changed:
            self.received.append((channel, codec.decode_for_channel(msg.payload, channel), bool(msg.retain)))
            self._changed.notify_all()

    def send(self, channel: Channel, message: m.Message | bytes, *, retain: bool = False) -> None:
        payload = message if isinstance(message, bytes) else codec.encode(message)
        door = "inngang" if channel is Channel.DOOR_STATE else None
        self.client.publish(
            site_topic(self.site, channel, door), payload, qos=1, retain=retain
        ).wait_for_publish(5)

    def expect(
        self, kind: type[M], where: Callable[[M], bool] = lambda _msg: True, timeout: float = WAIT_S
    ) -> M:
        """The first message of this type that satisfies `where`, waiting for it if need be."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for _channel, msg, _retained in self.received:
                    if isinstance(msg, kind) and where(msg):
                        return msg
                if not self._changed.wait(deadline - time.monotonic()):
                    raise AssertionError(f"no {kind.__name__} arrived within {timeout} s")

    def acked(self) -> list[uuid.UUID]:
        with self._changed:
            return [i for _c, msg, _r in self.received if isinstance(msg, m.Ack) for i in msg.event_ids]

    def wait_acked(self, ids: set[uuid.UUID], timeout: float = WAIT_S) -> None:
        self.expect(m.Ack, lambda _a: ids <= set(self.acked()), timeout)

    def close(self, *, with_will: bool = False) -> None:
        if with_will:  # MQTT 5 reason 4: the broker publishes the Last Will as if the connection had died
            self.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4))
        else:
            self.client.disconnect()
        self.client.loop_stop()


def eventually(condition: Callable[[], bool], timeout: float = WAIT_S, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(0.05)


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> World:
    with sessions() as session:
        w = build_world(session)
        session.commit()
        return w


@pytest.fixture
def start_gateway(
    engine: Engine, private_mosquitto: MosquittoBroker, tmp_path: Path
) -> Iterator[Callable[[], Gateway]]:
    """Start a gateway (same client id every time, so a second one takes over the persistent session)."""
    settings = Settings(
        data_dir=tmp_path,
        mqtt_host=private_mosquitto.host,
        mqtt_port=private_mosquitto.port,
    )
    running: list[Gateway] = []

    def start() -> Gateway:
        gateway = Gateway(settings, engine, client_id="central-test", poll_s=0.05, refresh_s=0.3)
        running.append(gateway.start())
        assert gateway.link.wait_connected(WAIT_S)
        return gateway

    yield start
    for gateway in running:
        gateway.stop()


@pytest.fixture
def agent(private_mosquitto: MosquittoBroker) -> Iterator[FakeAgent]:
    fake = FakeAgent(private_mosquitto)
    yield fake
    fake.close()


def stored_event_ids(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return list(session.execute(select(Event.event_id)).scalars())


# --- events -----------------------------------------------------------------------------------------------


def test_events_land_once_and_are_acknowledged(
    start_gateway: Callable[[], Gateway], agent: FakeAgent, sessions: sessionmaker[Session], world: World
) -> None:
    start_gateway()
    events = [access(seq=i) for i in range(30)]
    for event in events:
        agent.send(Channel.EVENT, event)
    ids = {e.event_id for e in events}
    agent.wait_acked(ids)
    for event in events[:10]:  # as if the agent had lost those acks: it resends, and is acked again
        agent.send(Channel.EVENT, event)
    eventually(lambda: len([i for i in agent.acked() if i in ids]) == 40, what="acks for resent events too")
    assert sorted(stored_event_ids(sessions)) == sorted(str(i) for i in ids)


def test_events_sent_while_central_and_broker_were_down_land_once(
    start_gateway: Callable[[], Gateway],
    agent: FakeAgent,
    private_mosquitto: MosquittoBroker,
    sessions: sessionmaker[Session],
    world: World,
) -> None:
    first = start_gateway()
    early = [access(seq=i) for i in range(5)]
    for event in early:
        agent.send(Channel.EVENT, event)
    agent.wait_acked({e.event_id for e in early})
    first.stop()
    queued = [access(seq=10 + i) for i in range(5)]
    for event in queued:  # the broker keeps them for central's persistent session...
        agent.send(Channel.EVENT, event)
    private_mosquitto.restart()  # ...also across a broker restart
    agent.close()
    agent = FakeAgent(private_mosquitto)
    second = start_gateway()
    eventually(lambda: len(stored_event_ids(sessions)) == 10, what="queued events stored")
    private_mosquitto.restart()  # the running gateway reconnects on its own
    eventually(lambda: second.link.connected and second.link.connects >= 2, what="reconnect")
    for event in early + queued:  # an agent that lost its acks resends everything
        agent.send(Channel.EVENT, event)
    agent.wait_acked({e.event_id for e in early + queued})
    assert sorted(stored_event_ids(sessions)) == sorted(str(e.event_id) for e in early + queued)
    agent.close()


def test_a_long_outage_of_central_loses_no_event_the_broker_queued(
    start_gateway: Callable[[], Gateway], agent: FakeAgent, sessions: sessionmaker[Session], world: World
) -> None:
    """More events than mosquitto queues per client by default (1000) wait for central; all of them land."""
    start_gateway().stop()  # central's persistent session exists, central is down
    burst = [access(seq=i) for i in range(2500)]
    pending = [
        agent.client.publish(site_topic(agent.site, Channel.EVENT), codec.encode(event), qos=1)
        for event in burst
    ]
    for info in pending:
        info.wait_for_publish(WAIT_S)
    start_gateway()
    agent.wait_acked({e.event_id for e in burst}, timeout=60)
    assert sorted(stored_event_ids(sessions)) == sorted(str(e.event_id) for e in burst)


def test_a_silently_dead_connection_is_noticed_and_replaced(
    engine: Engine,
    private_mosquitto: MosquittoBroker,
    tmp_path: Path,
    sessions: sessionmaker[Session],
    world: World,
) -> None:
    settings = Settings(data_dir=tmp_path, mqtt_host=private_mosquitto.host, mqtt_port=private_mosquitto.port)
    gateway = Gateway(settings, engine, client_id="central-keepalive", keepalive_s=1).start()
    broker_pid = private_mosquitto._process.pid  # type: ignore[union-attr]
    try:
        assert gateway.link.wait_connected(WAIT_S)
        os.kill(broker_pid, signal.SIGSTOP)  # the TCP connection stays up, but nothing answers any more
        try:
            eventually(lambda: not gateway.link.connected, what="keepalive notices the silent broker")
        finally:
            os.kill(broker_pid, signal.SIGCONT)
        eventually(lambda: gateway.link.connected, what="reconnected without a restart")
        agent = FakeAgent(private_mosquitto)
        event = access()
        agent.send(Channel.EVENT, event)
        agent.wait_acked({event.event_id})
        agent.close()
    finally:
        gateway.stop()


def test_malformed_and_cross_site_messages_are_counted_and_ingest_goes_on(
    start_gateway: Callable[[], Gateway], agent: FakeAgent, sessions: sessionmaker[Session], world: World
) -> None:
    gateway = start_gateway()
    agent.send(Channel.EVENT, b'{"type": "access_event", "v": 1, "site": "nord"}')
    agent.send(Channel.EVENT, b"\x00\x01 not json")
    agent.send(Channel.EVENT, access(site="sor"))  # nord speaking for sor
    good = access()
    agent.send(Channel.EVENT, good)
    agent.wait_acked({good.event_id})
    assert stored_event_ids(sessions) == [str(good.event_id)]
    assert {k: v for k, v in gateway.status()["ingest"]["refused"].items()} == {
        "invalid": 1,
        "not_json": 1,
        "site_mismatch": 1,
    }


def test_last_will_marks_the_agent_offline(
    start_gateway: Callable[[], Gateway],
    private_mosquitto: MosquittoBroker,
    sessions: sessionmaker[Session],
    world: World,
) -> None:
    start_gateway()
    agent = FakeAgent(private_mosquitto, will=True)
    online = m.AgentStatus(site="nord", agent=agent.name, online=True, at=datetime.now(UTC), replica_seq=3)
    agent.send(Channel.STATUS, online, retain=True)

    def agent_online() -> bool | None:
        with sessions() as session:
            return session.execute(select(Agent.online)).scalar_one_or_none()

    eventually(lambda: agent_online() is True, what="agent online")
    agent.close(with_will=True)
    eventually(lambda: agent_online() is False, what="agent offline after its Last Will")


def test_door_state_updates_the_door(
    start_gateway: Callable[[], Gateway], agent: FakeAgent, sessions: sessionmaker[Session], world: World
) -> None:
    start_gateway()
    now = datetime.now(UTC)
    state = m.DoorState(
        site="nord", door="inngang", state=m.DoorStateName.FORCED_OPEN, since=now, device_time=now
    )
    agent.send(Channel.DOOR_STATE, state, retain=True)

    def door_state() -> str | None:
        with sessions() as session:
            return session.execute(select(Door.last_state).where(Door.site_id == world.nord.id)).scalar_one()

    eventually(lambda: door_state() == "forced_open", what="door state stored")


# --- retained state ---------------------------------------------------------------------------------------


def test_site_config_is_retained_and_republished_only_when_it_changes(
    start_gateway: Callable[[], Gateway],
    private_mosquitto: MosquittoBroker,
    sessions: sessionmaker[Session],
    world: World,
) -> None:
    first = start_gateway()
    eventually(lambda: first.publisher.state_published == 4, what="config and revocations of both sites")
    late = FakeAgent(private_mosquitto)  # subscribes after the gateway published: gets the retained copy
    config = late.expect(m.SiteConfig)
    assert [d.slug for d in config.doors] == ["inngang"] and config.revision > 0
    assert any(retained for channel, _msg, retained in late.received if channel is Channel.CONFIG)
    late.expect(m.Revocations)

    first.stop()
    second = start_gateway()  # reads its retained config back: nothing changed, nothing republished
    time.sleep(1.0)
    assert second.publisher.state_published == 0

    with sessions() as session, session.begin():
        torg = session.execute(
            select(Zone).where(Zone.site_id == world.nord.id, Zone.slug == "torg")
        ).scalar_one()
        session.add(
            Door(site_id=world.nord.id, zone=torg, slug="bakdor", name="Bakdør", kind=DoorKind.INTERNAL)
        )
    second.poke()
    newer = late.expect(m.SiteConfig, lambda c: len(c.doors) == 2)
    assert newer.revision > config.revision
    late.close()


def test_signing_keys_are_published_and_follow_a_rotation(
    start_gateway: Callable[[], Gateway], agent: FakeAgent, tmp_path: Path, world: World
) -> None:
    first_kid = keystore.generate_key(tmp_path)  # the gateway's data directory
    gateway = start_gateway()
    keys = agent.expect(m.SigningKeys)
    assert [(k.kid, k.active) for k in keys.keys] == [(first_kid, True)]
    second_kid = keystore.rotate_key(tmp_path)
    gateway.poke()
    rotated = agent.expect(m.SigningKeys, lambda k: len(k.keys) == 2)
    assert {(k.kid, k.active) for k in rotated.keys} == {(second_kid, True), (first_kid, False)}


def test_content_hash_ignores_revision_and_issue_time(sessions: sessionmaker[Session], world: World) -> None:
    with sessions() as session:
        a = build_site_config(session, "nord", datetime.now(UTC), revision=1)
        b = build_site_config(session, "nord", datetime.now(UTC), revision=2)
        c = build_site_config(session, "sor", datetime.now(UTC), revision=1)
    assert content_hash(a) == content_hash(b) != content_hash(c)


# --- replica ----------------------------------------------------------------------------------------------


def test_snapshot_on_request_then_deltas_that_continue_it(
    start_gateway: Callable[[], Gateway], agent: FakeAgent, sessions: sessionmaker[Session], world: World
) -> None:
    gateway = start_gateway()
    agent.send(Channel.REPLICA_REQUEST, m.ReplicaRequest(site="nord", agent=agent.name, reason="first boot"))
    snapshot = agent.expect(m.ReplicaSnapshot)
    replica = Replica()
    replica.load(snapshot)
    assert not any(
        retained for channel, _m, retained in agent.received if channel is Channel.REPLICA_SNAPSHOT
    )

    for name in ("kari", "emil"):
        with sessions() as session, session.begin():
            person = session.get(type(world.people[name]), world.people[name].id)
            assert person is not None
            person.blocked = True
            replica_log.record_person_change(session, person.id)
        gateway.poke()
    last = agent.expect(m.ReplicaDelta, lambda d: d.seq >= snapshot.seq + 2)
    for delta in [msg for c, msg, _r in agent.received if isinstance(msg, m.ReplicaDelta)]:
        replica.apply(delta)  # asserts prev_seq continuity
    assert replica.seq == last.seq
    kari = f"c{card_of(world.people['kari']).id}"
    assert replica.credentials[kari].status is m.CredentialStatus.BLOCKED
    with sessions() as session:
        assert replica.same_as(build_snapshot(session, "nord"))
    eventually(lambda: replica_log_all_published(sessions), what="every change marked published")


def test_a_change_at_every_site_reaches_each_agent_in_batches_and_split_deltas(
    start_gateway: Callable[[], Gateway],
    agent: FakeAgent,
    private_mosquitto: MosquittoBroker,
    sessions: sessionmaker[Session],
    world: World,
) -> None:
    """Sites batched one at a time and one log entry per delta: every path of the batched builder runs."""
    gateway = start_gateway()
    gateway.publisher.delta_sites = 1
    gateway.publisher.delta_max_changes = 1
    sor = FakeAgent(private_mosquitto, "sor")
    try:
        replicas: dict[str, tuple[FakeAgent, Replica]] = {}
        for fake in (agent, sor):
            fake.send(
                Channel.REPLICA_REQUEST, m.ReplicaRequest(site=fake.site, agent=fake.name, reason="boot")
            )
            replicas[fake.site] = (fake, Replica())
            replicas[fake.site][1].load(fake.expect(m.ReplicaSnapshot))
        siri, kari = card_of(world.people["siri"]).id, card_of(world.people["kari"]).id
        with sessions() as session, session.begin():
            for cid in (siri, kari):
                credential = session.get(Credential, cid)
                assert credential is not None
                credential.status = CredentialStatus.BLOCKED
            replica_log.record_credential_changes(session, [siri, kari])  # two entries at each site
        gateway.poke()
        for site, (fake, replica) in replicas.items():
            fake.expect(m.ReplicaDelta, seq_at_least(replica.seq + 2))
            deltas = [msg for _c, msg, _r in fake.received if isinstance(msg, m.ReplicaDelta)]
            assert len(deltas) == 2  # one entry each
            for delta in deltas:
                replica.apply(delta)  # asserts prev_seq continuity
            assert replica.credentials[f"c{siri}"].status is m.CredentialStatus.BLOCKED
            with sessions() as session:
                assert replica.same_as(build_snapshot(session, site))
        assert f"c{kari}" not in replicas["sor"][1].credentials
        eventually(lambda: replica_log_all_published(sessions), what="every change marked published")
    finally:
        sor.close()


def seq_at_least(seq: int) -> Callable[[m.ReplicaDelta], bool]:
    return lambda delta: delta.seq >= seq


def replica_log_all_published(sessions: sessionmaker[Session]) -> bool:
    with sessions() as session:
        return not replica_log.pending_sites(session)


# --- commands ---------------------------------------------------------------------------------------------


def command(site: str = "nord") -> m.Command:
    now = datetime.now(UTC)
    return m.Command(
        command_id=uuid.uuid4(),
        site=site,
        action=m.Action.UNLOCK,
        nonce=uuid.uuid4().hex,
        issued_at=now,
        expires_at=now.replace(year=now.year + 1),
        issued_by="vaktmester",
        reason="Låst ute",
        door="inngang",
        duration_seconds=10,
    )


def test_commands_reach_the_agent_and_are_not_retained(
    start_gateway: Callable[[], Gateway],
    agent: FakeAgent,
    private_mosquitto: MosquittoBroker,
    sessions: sessionmaker[Session],
    world: World,
) -> None:
    gateway = start_gateway()
    sent = command()
    gateway.publish_command(sent)
    assert agent.expect(m.Command) == sent
    result = m.CommandResult(
        command_id=sent.command_id, site="nord", outcome=m.CommandOutcome.DONE, at=datetime.now(UTC)
    )
    agent.send(Channel.COMMAND_RESULT, result)
    eventually(lambda: str(sent.command_id) in stored_event_ids(sessions), what="command result stored")

    late = FakeAgent(private_mosquitto)
    late.expect(m.SiteConfig)
    assert not any(isinstance(msg, m.Command) for _c, msg, _r in late.received)
    late.close()

    private_mosquitto.stop()
    eventually(lambda: not gateway.link.connected, what="gateway notices the broker is gone")
    with pytest.raises(GatewayUnavailable):
        gateway.publish_command(command())
    private_mosquitto.start()


def test_a_publish_the_broker_denies_is_reported_not_ignored(tmp_path: Path) -> None:
    """An ACL that lets central read but not write: the PUBACK says 135 and the caller hears about it."""
    port = free_port()
    (tmp_path / "acl").write_text("topic read #\n")
    config = tmp_path / "mosquitto.conf"
    config.write_text(mosquitto_config(port, tmp_path) + f"\nacl_file {tmp_path / 'acl'}\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(config)], stderr=subprocess.DEVNULL)
    link = MqttLink(LinkSettings(host=LOOPBACK, port=port, client_id="central-denied"))
    try:
        eventually(lambda: port_accepts(LOOPBACK, port), what="broker up")
        link.start()
        assert link.wait_connected(WAIT_S)
        with pytest.raises(PublishRefusedError) as refused:
            link.publish_and_wait(site_topic("nord", Channel.COMMAND), codec.encode(command()))
        assert refused.value.reason.value == 135
    finally:
        link.stop()
        broker.terminate()
        broker.wait(10)
