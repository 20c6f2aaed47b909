"""Central's MQTT connection: MQTT 5, persistent session, QoS 1, automatic reconnect.

What this wrapper adds to paho-mqtt (2.x, callback API version 2):
- a persistent session (clean_start False + session expiry): while central is down the broker keeps the
  agents' events for it, and delivers them when it is back;
- TCP_NODELAY on every socket (without it a request/response costs 40–90 ms instead of < 1 ms);
- reconnect with backoff for ever, also after a silently dead connection (keepalive: paho drops a connection
  whose PINGRESP does not come, and the loop reconnects);
- `publish_and_wait`, which waits for the PUBACK and refuses a publish the broker denied (reason ≥ 128,
  e.g. 135 "not authorised" from an ACL);
- optional manual acknowledgement of received messages, so the broker redelivers what central received but
  had not yet committed when it stopped.

Callbacks run in paho's network thread; they must be quick and must not raise (paho would stop its loop),
so every callback given to the link is guarded. Payloads are never logged: they may carry PIN hashes.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

log = structlog.get_logger(__name__)

QOS = 1


class LinkDownError(RuntimeError):
    """Not connected to the broker, or no PUBACK in time: the message may not have arrived."""


class PublishRefusedError(RuntimeError):
    """The broker answered the publish with a failure reason code (e.g. 135, not authorised)."""

    def __init__(self, topic: str, reason: ReasonCode) -> None:
        super().__init__(f"broker refused publish to {topic}: {reason.getName()} ({reason.value})")
        self.reason = reason


@dataclass(frozen=True)
class LinkSettings:
    host: str
    port: int
    client_id: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # TLS, verifying the broker against this CA (e.g. the one `meraapent central mqtt-ca` made); None: plain.
    ca_file: Path | None = None
    keepalive_s: int = 15
    session_expiry_s: int = 24 * 3600
    # How many QoS 1 messages the broker may have in flight to us (MQTT 5 Receive Maximum).
    receive_maximum: int = 2000
    reconnect_min_s: int = 1
    reconnect_max_s: int = 30


MessageHandler = Callable[[mqtt.MQTTMessage], None]


class MqttLink:
    """One MQTT 5 client that stays connected; subscriptions are (re)made on every connect."""

    def __init__(
        self,
        settings: LinkSettings,
        *,
        subscriptions: Sequence[str] = (),
        on_message: MessageHandler | None = None,
        on_connected: Callable[[bool], None] | None = None,  # after the subscriptions are confirmed
        manual_ack: bool = False,
    ) -> None:
        self.settings = settings
        self._subscriptions = list(subscriptions)
        self._on_message = on_message
        self._on_connected = on_connected
        self._connected = threading.Event()
        self._refused: dict[int, ReasonCode] = {}  # mid -> failure reason of its last PUBACK
        self._subscribe_mid: int | None = None
        self.connects = 0
        self.client = self._make_client(manual_ack)

    def _make_client(self, manual_ack: bool) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=manual_ack,
        )
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.ca_file is not None:
            client.tls_set(ca_certs=str(s.ca_file))  # also checks the broker's name against its certificate
        client.reconnect_delay_set(s.reconnect_min_s, s.reconnect_max_s)
        client.on_socket_open = _set_nodelay
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_publish = self._handle_publish
        client.on_subscribe = self._handle_subscribe
        client.on_message = self._handle_message
        return client

    # --- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background and keep reconnecting until `stop`."""
        s = self.settings
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = s.session_expiry_s
        props.ReceiveMaximum = s.receive_maximum
        self.client.connect_async(s.host, s.port, s.keepalive_s, clean_start=False, properties=props)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        self._connected.clear()

    @property
    def connected(self) -> bool:
        """Connected, and the subscriptions are in place (nothing sent to us from now on is missed)."""
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    # --- publishing --------------------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> mqtt.MQTTMessageInfo:
        """Queue a QoS 1 publish; paho sends it now or after the next reconnect."""
        return self.client.publish(topic, payload, qos=QOS, retain=retain)

    def publish_and_wait(
        self, topic: str, payload: bytes, *, retain: bool = False, timeout: float = 10.0
    ) -> None:
        """Publish and return once the broker acknowledged it; else LinkDownError or PublishRefusedError."""
        if not self.connected:
            raise LinkDownError(f"not connected to the broker at {self.settings.host}:{self.settings.port}")
        info = self.publish(topic, payload, retain=retain)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as exc:
            raise LinkDownError(f"publish to {topic} failed: {exc}") from None
        if not info.is_published():
            raise LinkDownError(f"no PUBACK for {topic} within {timeout:g} s")
        reason = self._refused.pop(info.mid, None)
        if reason is not None:
            raise PublishRefusedError(topic, reason)

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a received message (manual_ack mode): the broker may now forget it."""
        if qos > 0:
            self.client.ack(mid, qos)

    # --- paho callbacks (network thread) -----------------------------------------------------------------

    def _handle_connect(
        self, client: mqtt.Client, _userdata: Any, flags: mqtt.ConnectFlags, reason: ReasonCode, _props: Any
    ) -> None:
        if reason.is_failure:
            log.warning("mqtt.connect_refused", reason=reason.getName(), code=reason.value)
            return
        self.connects += 1
        log.info(
            "mqtt.connected",
            broker=f"{self.settings.host}:{self.settings.port}",
            client_id=self.settings.client_id,
            session_present=flags.session_present,
        )
        if self._subscriptions:  # ready once the broker confirmed them (_handle_subscribe)
            _rc, self._subscribe_mid = client.subscribe(
                [(topic, SubscribeOptions(qos=QOS)) for topic in self._subscriptions]
            )
        else:
            self._ready(flags.session_present)

    def _handle_subscribe(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reasons: list[ReasonCode], _props: Any
    ) -> None:
        refused = [
            (topic, r.getName())
            for topic, r in zip(self._subscriptions, reasons, strict=False)
            if r.is_failure
        ]
        if refused:
            log.error("mqtt.subscribe_refused", refused=refused)
        if mid == self._subscribe_mid:
            self._ready(True)

    def _ready(self, session_present: bool) -> None:
        self._connected.set()
        if self._on_connected is not None:
            _guarded("on_connected", self._on_connected, session_present)

    def _handle_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: ReasonCode, _props: Any
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected:
            log.warning("mqtt.disconnected", reason=reason.getName(), code=reason.value)

    def _handle_publish(
        self, _client: mqtt.Client, _userdata: Any, mid: int, reason: ReasonCode, _props: Any
    ) -> None:
        if reason.is_failure:
            self._refused[mid] = reason
            log.warning("mqtt.publish_refused", mid=mid, reason=reason.getName(), code=reason.value)
        else:
            self._refused.pop(mid, None)

    def _handle_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self._on_message is not None:
            _guarded("on_message", self._on_message, message)


def _guarded(name: str, callback: Callable[..., None], *args: Any) -> None:
    """Run a callback in paho's thread; an exception is logged, never allowed to stop the network loop."""
    try:
        callback(*args)
    except Exception as exc:
        log.error("mqtt.callback_failed", callback=name, error=f"{type(exc).__name__}: {exc}")


def _set_nodelay(_client: mqtt.Client, _userdata: Any, sock: Any) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError) as exc:  # e.g. a websocket wrapper
        log.warning("mqtt.nodelay_failed", error=str(exc))
