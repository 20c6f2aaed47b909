"""The agent's MQTT connection to central: MQTT 5, persistent session, QoS 1, and never silently dead.

What the agent needs from the link, beyond what paho-mqtt (2.x, callback API version 2) does by itself:
- a persistent session (clean_start False + session expiry), so acks, deltas and commands sent while the
  agent was away are delivered when it is back;
- presence: the Last Will is the retained AgentStatus with ``online`` false; every connect publishes it with
  ``online`` true (and the latest door states), and a clean ``stop`` publishes ``online`` false itself;
- every to-agent channel of the site (re)subscribed at QoS 1 on every connect, in case the broker lost the
  session; ``connected`` is only true once the broker confirmed the subscriptions;
- strict input: a payload is decoded for its channel (protocol.codec) and must be for this site; anything
  else is counted by reason, logged without its payload and dropped. A retained message on a channel that is
  never retained (a command replayed to every new subscriber) is refused too;
- a watchdog besides paho's keepalive: when nothing was heard from the broker for a keepalive interval it
  sends a probe (an UNSUBSCRIBE, answered by the broker, seen by nobody else), and when still nothing came
  after twice the interval it shuts the socket down, so paho reconnects (back-off 1 s to 30 s) without an
  agent restart;
- TCP_NODELAY on the socket (without it a round trip costs 40-90 ms instead of < 1 ms).

Events are the caller's: it keeps each one in its journal until central's Ack, and resends the pending ones
from ``on_connected``. So ``publish_event`` hands nothing to paho while the link is down (paho would only
pile them up in memory); it returns a handle that says so.

Callbacks (the handler's methods, ``on_connected``) run on paho's network thread: they must be quick (queue
the work) and an exception in one is logged and counted, never allowed to stop the network loop. Timestamps
come from the injected clock; the watchdog measures real time, because it watches a real socket.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from controller.clock import Clock
from controller.config import MqttSettings
from protocol import codec
from protocol import messages as m
from protocol.topics import (
    RULES,
    SITE_ROOT,
    Channel,
    Direction,
    TopicError,
    parse_topic,
    site_filter,
    site_topic,
)

log = structlog.get_logger(__name__)

QOS = 1
TO_AGENT: tuple[Channel, ...] = tuple(c for c, rule in RULES.items() if rule.direction is Direction.TO_AGENT)
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30
MAX_QUEUED = 10_000  # publishes paho may hold (in memory) at once; beyond that a publish is not accepted
STOP_PUBLISH_WAIT_S = 2.0


class LinkHandler(Protocol):
    """What the agent does with each kind of message from central; called on paho's thread, keep it short."""

    def on_config(self, config: m.SiteConfig) -> None: ...
    def on_keys(self, keys: m.SigningKeys) -> None: ...
    def on_revocations(self, revocations: m.Revocations) -> None: ...
    def on_snapshot(self, snapshot: m.ReplicaSnapshot) -> None: ...
    def on_delta(self, delta: m.ReplicaDelta) -> None: ...
    def on_command(self, command: m.Command) -> None: ...
    def on_ack(self, ack: m.Ack) -> None: ...


_HANDLER_METHOD: dict[type[m.Message], str] = {
    m.SiteConfig: "on_config",
    m.SigningKeys: "on_keys",
    m.Revocations: "on_revocations",
    m.ReplicaSnapshot: "on_snapshot",
    m.ReplicaDelta: "on_delta",
    m.Command: "on_command",
    m.Ack: "on_ack",
}


@dataclass(frozen=True, slots=True)
class StatusReport:
    """The figures the retained AgentStatus carries besides presence."""

    replica_seq: int | None = None
    config_revision: int | None = None
    outbox_pending: int = 0
    clock_ok: bool = True


class PublishHandle:
    """What became of one publish.

    ``accepted``: handed to the client (sent now, or after a reconnect); ``published``: the broker
    acknowledged it (PUBACK); ``refused``: the broker said no (e.g. an ACL), with its reason.
    """

    def __init__(self, mid: int | None = None, *, accepted: bool = False) -> None:
        self.mid = mid
        self.accepted = accepted
        self.refused: str | None = None
        self._done = threading.Event()

    @property
    def published(self) -> bool:
        return self._done.is_set() and self.refused is None

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the PUBACK; True if the broker took the message."""
        return self.accepted and self._done.wait(timeout) and self.refused is None

    def _complete(self, reason: ReasonCode) -> None:
        if reason.is_failure:
            self.refused = f"{reason.getName()} ({reason.value})"
        self._done.set()


def not_sent() -> PublishHandle:
    return PublishHandle(None, accepted=False)


class Verdict(Enum):
    FINE = "fine"
    PROBE = "probe"
    DEAD = "dead"


class Liveness:
    """Pure: from when the broker was last heard, decide whether to probe it or give the connection up."""

    def __init__(self, keepalive_s: float, now: float) -> None:
        self.keepalive_s = keepalive_s
        self._heard = now
        self._probed: float | None = None
        self._lock = threading.Lock()

    def heard(self, now: float) -> None:
        with self._lock:
            self._heard, self._probed = now, None

    def probed(self, now: float) -> None:
        with self._lock:
            self._probed = now

    def verdict(self, now: float) -> Verdict:
        with self._lock:
            silent = now - self._heard
            if silent >= 2 * self.keepalive_s:
                return Verdict.DEAD
            if silent >= self.keepalive_s and self._probed is None:
                return Verdict.PROBE
            return Verdict.FINE


class AgentLink:
    def __init__(
        self,
        settings: MqttSettings,
        site: str,
        agent: str,
        handler: LinkHandler,
        clock: Clock,
        *,
        software_version: str = "",
        on_connected: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.site, self.agent = site, agent
        self.handler = handler
        self.clock = clock
        self.software_version = software_version
        self.on_connected = on_connected  # after every (re)connect, once subscribed: resend pending events
        self.client_id = f"meraapent-{site}-{agent}"
        self._status_topic = site_topic(site, Channel.STATUS)
        self._status = StatusReport()
        self._door_states: dict[str, m.DoorState] = {}
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._subscribe_mid: int | None = None
        self._lock = threading.Lock()  # guards the counters and publish bookkeeping; never held into paho
        self._handles: dict[int, PublishHandle] = {}
        self._early_acks: dict[int, ReasonCode] = {}
        self._received: Counter[str] = Counter()
        self._refused: Counter[str] = Counter()
        self.connects = 0
        self.forced_reconnects = 0
        self._liveness = Liveness(settings.keepalive, time.monotonic())
        self._watchdog: threading.Thread | None = None
        self.client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.max_queued_messages_set(MAX_QUEUED)
        if self.settings.tls is not None:
            ca = self.settings.tls.ca_file
            client.tls_set(ca_certs=None if ca is None else str(ca))
        client.on_pre_connect = self._handle_pre_connect
        client.on_socket_open = _set_nodelay
        client.on_connect = self._handle_connect
        client.on_connect_fail = self._handle_connect_fail
        client.on_disconnect = self._handle_disconnect
        client.on_subscribe = self._handle_subscribe
        client.on_unsubscribe = self._handle_unsubscribe
        client.on_publish = self._handle_publish
        client.on_message = self._handle_message
        return client

    # --- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background and stay connected until `stop`; the first connect may come later."""
        s = self.settings
        if s.username is not None:
            self.client.username_pw_set(s.username, s.password())
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = s.session_expiry
        self.client.connect_async(s.host, s.port, s.keepalive, clean_start=False, properties=props)
        self.client.loop_start()
        self._watchdog = threading.Thread(target=self._watch, name="mqtt-watchdog", daemon=True)
        self._watchdog.start()

    def stop(self) -> None:
        """Say goodbye (retained status offline), disconnect cleanly and end the threads."""
        self._stopping.set()
        if self._watchdog is not None:
            self._watchdog.join()
        if self._connected.is_set():
            self._send(self._status_topic, self._status_message(online=False), retain=True).wait(
                STOP_PUBLISH_WAIT_S
            )
        self.client.disconnect()
        self.client.loop_stop()
        self._connected.clear()

    @property
    def connected(self) -> bool:
        """Connected and subscribed: nothing central sends from now on is missed."""
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def stats(self) -> dict[str, Any]:
        """Counters for the agent's status page and tests: connects, received and refused by reason."""
        with self._lock:
            return {
                "connects": self.connects,
                "forced_reconnects": self.forced_reconnects,
                "received": dict(self._received),
                "refused": dict(self._refused),
                "pending_publishes": len(self._handles),
            }

    @property
    def pending_publishes(self) -> int:
        """Publishes handed to paho and not yet acknowledged: a resend loop can wait while this is high."""
        with self._lock:
            return len(self._handles)

    # --- outgoing ----------------------------------------------------------------------------------------

    def publish_event(self, event_payload: bytes) -> PublishHandle:
        """An encoded event, QoS 1, not retained. Not sent while the link is down: the journal keeps it."""
        if not self.connected:
            return not_sent()
        return self._send(site_topic(self.site, Channel.EVENT), event_payload, retain=False)

    def publish_door_state(self, state: m.DoorState) -> PublishHandle:
        """Retained; the latest state of each door is published again on every reconnect."""
        self._require_own_site(state.site)
        with self._lock:
            self._door_states[state.door] = state
        if not self.connected:
            return not_sent()
        return self._send(
            site_topic(self.site, Channel.DOOR_STATE, state.door), codec.encode(state), retain=True
        )

    def publish_status(self, report: StatusReport) -> PublishHandle:
        """Retained AgentStatus (online) with these figures; they are kept for the next reconnect as well."""
        with self._lock:
            self._status = report
        if not self.connected:
            return not_sent()
        return self._send(self._status_topic, self._status_message(online=True), retain=True)

    def publish_command_result(self, result: m.CommandResult) -> PublishHandle:
        """QoS 1, not retained; while the link is down paho keeps it and sends it after the reconnect."""
        self._require_own_site(result.site)
        return self._send(site_topic(self.site, Channel.COMMAND_RESULT), codec.encode(result), retain=False)

    def request_snapshot(self, have_seq: int | None, reason: str) -> PublishHandle:
        """Ask central for a full replica snapshot. Not sent while the link is down: ask again on connect."""
        if not self.connected:
            return not_sent()
        request = m.ReplicaRequest(site=self.site, agent=self.agent, have_seq=have_seq, reason=reason[:300])
        return self._send(site_topic(self.site, Channel.REPLICA_REQUEST), codec.encode(request), retain=False)

    def _require_own_site(self, site: str) -> None:
        if site != self.site:
            raise ValueError(f"this link speaks for site {self.site!r}, not {site!r}")

    def _status_message(self, *, online: bool) -> bytes:
        with self._lock:
            report = self._status
        status = m.AgentStatus(
            site=self.site,
            agent=self.agent,
            online=online,
            at=self.clock.now(),
            software_version=self.software_version,
            replica_seq=report.replica_seq,
            config_revision=report.config_revision,
            outbox_pending=report.outbox_pending,
            clock_ok=report.clock_ok,
        )
        return codec.encode(status)

    def _send(self, topic: str, payload: bytes, *, retain: bool) -> PublishHandle:
        info = self.client.publish(topic, payload, qos=QOS, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            log.warning("mqtt.publish_not_queued", topic=topic, error=mqtt.error_string(info.rc))
            return not_sent()
        handle = PublishHandle(info.mid, accepted=True)
        with self._lock:  # the PUBACK may have come before we get here
            early = self._early_acks.pop(info.mid, None)
            if early is None:
                self._handles[info.mid] = handle
        if early is not None:
            handle._complete(early)
        return handle

    # --- paho callbacks (network thread) -----------------------------------------------------------------

    def _handle_pre_connect(self, client: mqtt.Client, _userdata: Any) -> None:
        """Before every (re)connect: the Last Will carries the latest figures."""
        client.will_set(self._status_topic, self._status_message(online=False), qos=QOS, retain=True)

    def _handle_connect(
        self, client: mqtt.Client, _userdata: Any, flags: mqtt.ConnectFlags, reason: ReasonCode, _props: Any
    ) -> None:
        if reason.is_failure:
            log.error(
                "mqtt.connect_refused", reason=reason.getName(), code=reason.value, client_id=self.client_id
            )
            return
        self._liveness.heard(time.monotonic())
        with self._lock:
            self.connects += 1
        log.info(
            "mqtt.connected",
            broker=f"{self.settings.host}:{self.settings.port}",
            client_id=self.client_id,
            session_present=flags.session_present,
        )
        _rc, self._subscribe_mid = client.subscribe(
            [(site_filter(self.site, channel), SubscribeOptions(qos=QOS)) for channel in TO_AGENT]
        )

    def _handle_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        log.info("mqtt.connect_failed", broker=f"{self.settings.host}:{self.settings.port}")

    def _handle_subscribe(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reasons: list[ReasonCode], _props: Any
    ) -> None:
        self._liveness.heard(time.monotonic())
        if mid != self._subscribe_mid:
            return
        refused = [c.value for c, r in zip(TO_AGENT, reasons, strict=False) if r.is_failure]
        if refused:
            log.error("mqtt.subscribe_refused", channels=refused)
        self._announce()
        self._connected.set()
        if self.on_connected is not None:
            self._guarded("on_connected", self.on_connected)

    def _announce(self) -> None:
        """Online, and the latest door states. Sent only now, after paho has resent what was in flight when
        the last connection dropped: a stale retained door state must not overwrite the current one."""
        with self._lock:
            doors = list(self._door_states.values())
        self._send(self._status_topic, self._status_message(online=True), retain=True)
        for state in doors:
            self._send(
                site_topic(self.site, Channel.DOOR_STATE, state.door), codec.encode(state), retain=True
            )

    def _handle_unsubscribe(self, _client: mqtt.Client, _userdata: Any, *_args: Any) -> None:
        self._liveness.heard(time.monotonic())  # the watchdog's probe was answered

    def _handle_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected and not self._stopping.is_set():
            log.warning("mqtt.disconnected", reason=reason.getName(), code=reason.value)

    def _handle_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reason: ReasonCode, _props: Any
    ) -> None:
        self._liveness.heard(time.monotonic())
        if reason.is_failure:
            log.warning("mqtt.publish_refused", mid=mid, reason=reason.getName(), code=reason.value)
        with self._lock:
            handle = self._handles.pop(mid, None)
            if handle is None:
                self._early_acks[mid] = reason
        if handle is not None:
            handle._complete(reason)

    def _handle_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._liveness.heard(time.monotonic())
        accepted = self._accept(msg)
        if accepted is None:
            return
        channel, message = accepted
        with self._lock:
            self._received[channel.value] += 1
        method = getattr(self.handler, _HANDLER_METHOD[type(message)])
        if not self._guarded(method.__name__, method, message):
            self._refuse("handler_failed", msg.topic, f"{type(message).__name__} not handled")

    def _accept(self, msg: mqtt.MQTTMessage) -> tuple[Channel, m.Message] | None:
        """The message if it is for us, on a to-agent channel, as the contract says; else None (counted)."""
        try:
            topic = parse_topic(msg.topic)
        except TopicError as exc:
            self._refuse("bad_topic", msg.topic, str(exc))
            return None
        if topic.site != self.site:
            self._refuse("site_mismatch", msg.topic, f"topic is for site {topic.site!r}")
            return None
        rule = RULES[topic.channel]
        if rule.direction is not Direction.TO_AGENT:
            self._refuse("wrong_direction", msg.topic, f"{topic.channel.value} is agent to central")
            return None
        if msg.retain and not rule.retained:
            self._refuse("retained", msg.topic, f"{topic.channel.value} must never be retained")
            return None
        try:
            message = codec.decode_for_channel(msg.payload, topic.channel)
        except codec.ProtocolError as exc:
            self._refuse(exc.reason.value, msg.topic, str(exc))
            return None
        site = getattr(message, "site", self.site)  # signing keys belong to the issuer, not to a site
        if site != self.site:
            self._refuse("site_mismatch", msg.topic, f"message is for site {site!r}")
            return None
        return topic.channel, message

    def _refuse(self, reason: str, topic: str, detail: str) -> None:
        """Count and log a refused message; never its payload (it may carry PIN hashes)."""
        with self._lock:
            self._refused[reason] += 1
        log.warning("mqtt.message_refused", reason=reason, topic=topic[:200], detail=detail[:300])

    def _guarded(self, name: str, callback: Callable[..., None], *args: Any) -> bool:
        try:
            callback(*args)
        except Exception as exc:
            log.error("mqtt.callback_failed", callback=name, error=f"{type(exc).__name__}: {exc}"[:300])
            return False
        return True

    # --- watchdog ----------------------------------------------------------------------------------------

    def _watch(self) -> None:
        tick = min(1.0, self.settings.keepalive / 4)
        while not self._stopping.wait(tick):
            if not self._connected.is_set():
                continue
            now = time.monotonic()
            verdict = self._liveness.verdict(now)
            if verdict is Verdict.PROBE:
                self._liveness.probed(now)
                self.client.unsubscribe(f"{SITE_ROOT}/{self.site}/probe")
            elif verdict is Verdict.DEAD:
                self._force_reconnect(now)

    def _force_reconnect(self, now: float) -> None:
        """Shut the socket down under paho's feet: its loop sees a lost connection and reconnects."""
        log.warning("mqtt.connection_dead", silent_s=2 * self.settings.keepalive, client_id=self.client_id)
        with self._lock:
            self.forced_reconnects += 1
        self._liveness.heard(now)  # one shutdown per silence, not one per tick
        self._connected.clear()
        sock = self.client.socket()
        if isinstance(sock, socket.socket):  # an SSL socket is one too
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _set_nodelay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError) as exc:  # e.g. a websocket wrapper
        log.warning("mqtt.nodelay_failed", error=str(exc))
