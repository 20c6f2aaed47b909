"""The agent's MQTT link against a real mosquitto, with central played by a plain paho client."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from controller.clock import ManualClock
from controller.config import MqttSettings
from controller.link import AgentLink, Liveness, StatusReport, Verdict
from protocol import codec
from protocol import messages as m
from protocol.topics import Channel, parse_topic, site_filter, site_topic
from tests.infra import MosquittoBroker

WAIT_S = 15.0
T0 = datetime(2025, 3, 9, 19, 0, tzinfo=UTC)
M = TypeVar("M", bound=m.Message)


def eventually(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout} s")
        time.sleep(0.02)


class Inbox:
    """Messages in arrival order, with a wait for the first one that matches."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = threading.Condition()

    def put(self, item: Any) -> None:
        with self._changed:
            self.items.append(item)
            self._changed.notify_all()

    def expect(self, match: Callable[[Any], bool], what: str, timeout: float = WAIT_S) -> Any:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for item in self.items:
                    if match(item):
                        return item
                if not self._changed.wait(max(0.0, deadline - time.monotonic())):
                    raise AssertionError(f"no {what} within {timeout} s; got {self.items!r}"[:2000])

    def of(self, kind: type[M]) -> list[M]:
        with self._changed:
            return [i for i in self.items if isinstance(i, kind)]


class Handler:
    """The agent's side of the link: records what the link hands it; `fail_on` makes one kind raise."""

    def __init__(self, fail_on: type[m.Message] | None = None) -> None:
        self.inbox = Inbox()
        self.fail_on = fail_on

    def _got(self, message: m.Message) -> None:
        if self.fail_on is not None and isinstance(message, self.fail_on):
            raise RuntimeError("the handler broke")
        self.inbox.put(message)

    on_config = on_keys = on_revocations = on_snapshot = on_delta = on_command = on_ack = _got

    def expect(self, kind: type[M], where: Callable[[M], bool] = lambda _m: True) -> M:
        found: M = self.inbox.expect(lambda x: isinstance(x, kind) and where(x), kind.__name__)
        return found


class Central:
    """A paho client in central's place: publishes to the agent, watches everything the agent says."""

    def __init__(self, broker: MosquittoBroker, site: str) -> None:
        self.site = site
        self.heard = Inbox()  # (channel, message, retained)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"central-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe(site_filter(site), qos=1)
        assert subscribed.wait(WAIT_S)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        channel = parse_topic(msg.topic).channel
        try:
            message: Any = codec.decode_for_channel(msg.payload, channel)
        except codec.ProtocolError:
            message = bytes(msg.payload)
        self.heard.put((channel, message, bool(msg.retain)))

    def send(self, channel: Channel, message: m.Message | bytes, *, retain: bool = False) -> None:
        payload = message if isinstance(message, bytes) else codec.encode(message)
        self.client.publish(site_topic(self.site, channel), payload, qos=1, retain=retain).wait_for_publish(5)

    def expect(self, kind: type[M], where: Callable[[M], bool] = lambda _m: True) -> tuple[M, bool]:
        """The first message of this kind the agent sent that matches, and whether it came retained."""
        _channel, message, retained = self.heard.expect(
            lambda h: isinstance(h[1], kind) and where(h[1]), kind.__name__
        )
        return message, retained

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def site() -> str:
    return f"t{uuid.uuid4().hex[:10]}"  # the session broker keeps retained state: a fresh site per test


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


def settings_for(broker: MosquittoBroker, keepalive: int = 5) -> MqttSettings:
    return MqttSettings(host=broker.host, port=broker.port, keepalive=keepalive)


@pytest.fixture
def make_link(clock: ManualClock, site: str) -> Iterator[Callable[..., tuple[AgentLink, Handler]]]:
    links: list[AgentLink] = []

    def make(
        broker: MosquittoBroker, *, handler: Handler | None = None, keepalive: int = 5, start: bool = True
    ) -> tuple[AgentLink, Handler]:
        handler = handler or Handler()
        link = AgentLink(
            settings_for(broker, keepalive), site, "pi-1", handler, clock, software_version="1.2.3"
        )
        links.append(link)
        if start:
            link.start()
            assert link.wait_connected(WAIT_S)
        return link, handler

    yield make
    for link in links:
        link.stop()


@pytest.fixture
def central(mosquitto: MosquittoBroker, site: str) -> Iterator[Central]:
    c = Central(mosquitto, site)
    yield c
    c.close()


def command(site: str, **changes: Any) -> m.Command:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "command_id": uuid.uuid4(),
        "site": site,
        "action": m.Action.UNLOCK,
        "nonce": uuid.uuid4().hex,
        "issued_at": now,
        "expires_at": now + timedelta(seconds=30),
        "issued_by": "Kari",
        "reason": "locked out",
        "door": "hovedinngang",
        "duration_seconds": 5,
    }
    return m.Command(**(fields | changes))


def door_state(site: str, state: m.DoorStateName, door: str = "hovedinngang") -> m.DoorState:
    return m.DoorState(site=site, door=door, state=state, since=T0, device_time=T0)


def die_without_disconnect(link: AgentLink) -> None:
    """The agent process is gone: its network loop stops and its socket closes without a DISCONNECT."""
    link.client.loop_stop()
    sock = link.client.socket()
    assert isinstance(sock, socket.socket)
    sock.close()


# --- presence ---------------------------------------------------------------------------------------------


def test_the_agent_is_online_while_connected_and_its_will_says_offline_when_it_dies(
    mosquitto: MosquittoBroker,
    make_link: Callable[..., tuple[AgentLink, Handler]],
    site: str,
    clock: ManualClock,
) -> None:
    link, _handler = make_link(mosquitto)
    assert link.publish_status(StatusReport(replica_seq=42, config_revision=3, outbox_pending=2)).wait(WAIT_S)
    central = Central(mosquitto, site)  # arrives later: gets the retained status
    try:
        status, retained = central.expect(m.AgentStatus, lambda s: s.replica_seq == 42)
        assert retained and status.online and status.agent == "pi-1" and status.software_version == "1.2.3"
        assert (status.at, status.config_revision, status.outbox_pending) == (T0, 3, 2)
        die_without_disconnect(link)
        gone, _retained = central.expect(m.AgentStatus, lambda s: not s.online)
        assert gone.at == T0  # the Last Will, made when the agent connected
    finally:
        central.close()
    late = Central(mosquitto, site)
    try:
        assert late.expect(m.AgentStatus) == (gone, True)  # retained: a caretaker opening the app sees it
    finally:
        late.close()


def test_a_clean_stop_says_offline_itself(
    mosquitto: MosquittoBroker,
    make_link: Callable[..., tuple[AgentLink, Handler]],
    central: Central,
    clock: ManualClock,
) -> None:
    link, _handler = make_link(mosquitto)
    central.expect(m.AgentStatus, lambda s: s.online)
    clock.advance(3600)
    link.stop()
    offline, _retained = central.expect(m.AgentStatus, lambda s: not s.online)
    assert offline.at == T0 + timedelta(hours=1)  # published at stop, not the Last Will of an hour ago


# --- from central -----------------------------------------------------------------------------------------


def test_everything_central_sends_reaches_the_handler(
    mosquitto: MosquittoBroker,
    make_link: Callable[..., tuple[AgentLink, Handler]],
    central: Central,
    site: str,
) -> None:
    config = m.SiteConfig(site=site, name="Heggedal", revision=7, issued_at=T0)
    central.send(Channel.CONFIG, config, retain=True)  # before the agent is there: retained
    link, handler = make_link(mosquitto)
    assert handler.expect(m.SiteConfig) == config
    messages: list[tuple[Channel, m.Message]] = [
        (Channel.KEYS, m.SigningKeys(issuer="asker", issued_at=T0, keys=[])),
        (Channel.REVOCATIONS, m.Revocations(site=site, revision=1, issued_at=T0)),
        (Channel.REPLICA_SNAPSHOT, m.ReplicaSnapshot(site=site, seq=5, generated_at=T0)),
        (Channel.REPLICA_DELTA, m.ReplicaDelta(site=site, seq=6, prev_seq=5, generated_at=T0)),
        (Channel.COMMAND, command(site)),
        (Channel.ACK, m.Ack(site=site, event_ids=[uuid.uuid4()])),
    ]
    for channel, message in messages:
        central.send(channel, message)
    for _channel, message in messages:
        assert handler.expect(type(message)) == message
    assert link.stats()["received"] == {"config": 1} | {channel.value: 1 for channel, _msg in messages}
    assert link.stats()["refused"] == {}


def test_garbage_and_other_sites_messages_are_counted_and_dropped(
    mosquitto: MosquittoBroker,
    make_link: Callable[..., tuple[AgentLink, Handler]],
    central: Central,
    site: str,
) -> None:
    stale = command(site)
    central.send(Channel.COMMAND, stale, retain=True)  # a retained command would replay on every reconnect
    link, handler = make_link(mosquitto, handler=Handler(fail_on=m.Revocations))
    central.send(Channel.COMMAND, b"\x00\x01 not json")
    central.send(Channel.COMMAND, b'{"type": "command", "v": 1, "site": "x"}')
    central.send(Channel.COMMAND, command("holmen"))  # another site's command on this site's topic
    central.send(Channel.COMMAND, m.Ack(site=site, event_ids=[]))  # the wrong kind for the channel
    central.send(Channel.ACK, m.Ack(site="holmen", event_ids=[]))
    central.send(Channel.REVOCATIONS, m.Revocations(site=site, revision=1, issued_at=T0))  # handler fails
    good = command(site)
    central.send(Channel.COMMAND, good)
    assert handler.expect(m.Command) == good
    eventually(lambda: sum(link.stats()["refused"].values()) == 7, "all refusals counted")
    assert link.stats()["refused"] == {
        "retained": 1,
        "not_json": 1,
        "invalid": 1,
        "site_mismatch": 2,
        "wrong_type": 1,
        "handler_failed": 1,
    }
    assert handler.inbox.items == [good]
    central.send(Channel.COMMAND, b"", retain=True)  # clear the retained command


def test_what_central_sent_while_the_agent_was_away_arrives_when_it_is_back(
    mosquitto: MosquittoBroker,
    make_link: Callable[..., tuple[AgentLink, Handler]],
    central: Central,
    site: str,
) -> None:
    first, _handler = make_link(mosquitto)
    first.stop()
    ack = m.Ack(site=site, event_ids=[uuid.uuid4()])
    central.send(Channel.ACK, ack)  # the broker keeps it in the agent's persistent session
    _link, handler = make_link(mosquitto)
    assert handler.expect(m.Ack) == ack


# --- to central -------------------------------------------------------------------------------------------


def test_events_results_requests_and_retained_door_state_reach_central(
    mosquitto: MosquittoBroker,
    make_link: Callable[..., tuple[AgentLink, Handler]],
    central: Central,
    site: str,
) -> None:
    link, _handler = make_link(mosquitto)
    event = m.SystemEvent(
        event_id=uuid.uuid4(), site=site, agent="pi-1", seq=1, device_time=T0, kind="started"
    )
    assert link.publish_event(codec.encode(event)).wait(WAIT_S)
    assert central.expect(m.SystemEvent) == (event, False)
    result = m.CommandResult(command_id=uuid.uuid4(), site=site, outcome=m.CommandOutcome.DONE, at=T0)
    assert link.publish_command_result(result).wait(WAIT_S)
    assert central.expect(m.CommandResult) == (result, False)
    assert link.request_snapshot(12, "gap").wait(WAIT_S)
    request, _retained = central.expect(m.ReplicaRequest)
    assert (request.site, request.agent, request.have_seq, request.reason) == (site, "pi-1", 12, "gap")
    state = door_state(site, m.DoorStateName.HELD_OPEN)
    assert link.publish_door_state(state).wait(WAIT_S)
    late = Central(mosquitto, site)
    try:
        assert late.expect(m.DoorState) == (state, True)
    finally:
        late.close()
    with pytest.raises(ValueError, match="speaks for site"):
        link.publish_door_state(door_state("holmen", m.DoorStateName.OPEN))


def test_while_down_events_stay_with_the_caller(
    mosquitto: MosquittoBroker, make_link: Callable[..., tuple[AgentLink, Handler]], site: str
) -> None:
    link, _handler = make_link(mosquitto, start=False)
    handle = link.publish_event(b"{}")
    assert not handle.accepted and not handle.wait(0.1)
    assert not link.request_snapshot(None, "first boot").accepted
    assert not link.publish_door_state(door_state(site, m.DoorStateName.LOCKED)).accepted


# --- staying connected ------------------------------------------------------------------------------------


def test_after_a_broker_crash_it_reconnects_resubscribes_and_says_online_again(
    private_mosquitto: MosquittoBroker, make_link: Callable[..., tuple[AgentLink, Handler]], site: str
) -> None:
    link, handler = make_link(private_mosquitto, start=False)
    connects: list[int] = []
    link.on_connected = lambda: connects.append(1)
    link.start()
    assert link.wait_connected(WAIT_S)
    link.publish_door_state(door_state(site, m.DoorStateName.LOCKED))
    open_now = door_state(site, m.DoorStateName.OPEN)
    private_mosquitto.kill()  # retained state and sessions since the last autosave are lost
    eventually(lambda: not link.connected, "the link notices the broker is gone")
    link.publish_door_state(open_now)  # the door moved while the broker was down
    private_mosquitto.start()
    eventually(lambda: link.connected and len(connects) == 2, "reconnected")
    eventually(lambda: link.pending_publishes == 0, "status and door state acknowledged")
    central = Central(private_mosquitto, site)
    try:
        status, retained = central.expect(m.AgentStatus)
        assert status.online and retained
        assert central.expect(m.DoorState) == (open_now, True)
        cmd = command(site)
        central.send(Channel.COMMAND, cmd)  # the subscriptions were made again on the fresh broker
        assert handler.expect(m.Command) == cmd
    finally:
        central.close()


def test_a_silently_dead_broker_is_noticed_and_the_link_recovers_without_a_restart(
    private_mosquitto: MosquittoBroker, make_link: Callable[..., tuple[AgentLink, Handler]], site: str
) -> None:
    link, handler = make_link(private_mosquitto, keepalive=1)
    broker_pid = private_mosquitto._process.pid  # type: ignore[union-attr]
    os.kill(broker_pid, signal.SIGSTOP)  # the TCP connection stays up, but nothing answers any more
    try:
        eventually(lambda: not link.connected, "the silent connection is given up")
    finally:
        os.kill(broker_pid, signal.SIGCONT)
    eventually(lambda: link.connected and link.stats()["connects"] >= 2, "reconnected")
    eventually(lambda: link.pending_publishes == 0, "online status acknowledged")
    central = Central(private_mosquitto, site)
    try:
        cmd = command(site)
        central.send(Channel.COMMAND, cmd)
        assert handler.expect(m.Command) == cmd
    finally:
        central.close()
    late = Central(private_mosquitto, site)
    try:  # the old connection's Last Will came before the new connection said online
        status, retained = late.expect(m.AgentStatus)
        assert status.online and retained
    finally:
        late.close()


def test_the_watchdog_probes_a_quiet_broker_then_gives_the_connection_up() -> None:
    alive = Liveness(keepalive_s=15, now=100.0)
    assert alive.verdict(114.9) is Verdict.FINE
    assert alive.verdict(115.0) is Verdict.PROBE
    alive.probed(115.0)
    assert alive.verdict(129.0) is Verdict.FINE  # probe sent, waiting for the answer
    alive.heard(120.0)  # the broker answered
    assert alive.verdict(134.9) is Verdict.FINE
    assert alive.verdict(135.0) is Verdict.PROBE
    alive.probed(135.0)
    assert alive.verdict(149.9) is Verdict.FINE
    assert alive.verdict(150.0) is Verdict.DEAD  # nothing heard for twice the keepalive
