"""The gateway as one object: the MQTT link, the ingest worker and the publisher, started and stopped
together.

`central serve` runs it inside the API process (FastAPI lifespan: `Gateway(settings, engine).start()` and
`.stop()`); `run_gateway(settings)` runs it alone until SIGINT/SIGTERM.
"""

from __future__ import annotations

import signal
import threading
from collections import Counter
from types import FrameType
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from sqlalchemy import Engine

from central.checkin import checkin_rules
from central.config import Settings
from central.db import ensure_migrated, make_engine, session_factory
from central.gateway import ingest, publisher
from central.gateway.ingest import Inbound, IngestWorker
from central.gateway.link import LinkDownError, LinkSettings, MqttLink, PublishRefusedError
from central.gateway.publisher import KeysProvider, Publisher
from central.keystore import KeystoreError, signing_keys_message
from protocol import codec
from protocol import messages as m
from protocol.topics import Channel, TopicError, parse_topic, site_topic

log = structlog.get_logger(__name__)

DEFAULT_CLIENT_ID = "central-gateway"
COMMAND_TIMEOUT_S = 5.0


class GatewayUnavailable(RuntimeError):  # noqa: N818 (the name the API layer catches)
    """The gateway cannot deliver now (not connected, or the broker refused); try again later."""


class Gateway:
    """Central's MQTT side: ingests what agents send, publishes what they need."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        keys_provider: KeysProvider | None = None,
        batch_size: int = 500,
        batch_window_s: float = 0.02,
        poll_s: float = 0.2,
        refresh_s: float = 5.0,
        keepalive_s: int = 15,
    ) -> None:
        self.settings = settings
        sessions = session_factory(engine)
        self.link = MqttLink(
            LinkSettings(
                host=settings.mqtt_host,
                port=settings.mqtt_port,
                client_id=client_id,
                username=settings.mqtt_username,
                password=settings.mqtt_secret(),
                ca_file=settings.mqtt_ca_file,
                keepalive_s=keepalive_s,
            ),
            subscriptions=(*ingest.SUBSCRIPTIONS, *publisher.SUBSCRIPTIONS),
            on_message=self._on_message,
            on_connected=self._on_connected,
            manual_ack=True,
        )
        self.publisher = Publisher(
            sessions,
            self.link,
            keys_provider=keys_provider if keys_provider is not None else default_keys_provider(settings),
            poll_s=poll_s,
            refresh_s=refresh_s,
            checkin=checkin_rules(settings),
        )
        self.ingest = IngestWorker(
            sessions,
            publish=self.link.publish,
            broker_ack=self.link.ack,
            on_replica_request=self.publisher.request_snapshot,
            uid_key=settings.uid_hash_key(),
            batch_size=batch_size,
            batch_window_s=batch_window_s,
            checkin_rules=checkin_rules(settings),
        )
        self._started = False
        self._commands: Counter[str] = Counter()  # "sent" / "failed", for metrics
        self._commands_lock = threading.Lock()  # publish_command runs in the API's worker threads

    def start(self) -> Gateway:
        if not self._started:
            self.ingest.start()
            self.publisher.start()
            self.link.start()
            self._started = True
        return self

    def stop(self) -> None:
        """Finish the batch in hand, then disconnect; the rest is redelivered to the persistent session."""
        if self._started:
            self.ingest.stop()
            self.publisher.stop()
            self.link.stop()
            self._started = False

    def poke(self) -> None:
        """Publish changed config, revocations and pending deltas now instead of at the next poll."""
        self.publisher.poke()

    def publish_command(self, cmd: m.Command) -> None:
        """Send a command to its site's agent (QoS 1, never retained); returns once the broker has it."""
        try:
            self.link.publish_and_wait(
                site_topic(cmd.site, Channel.COMMAND), codec.encode(cmd), timeout=COMMAND_TIMEOUT_S
            )
        except (LinkDownError, PublishRefusedError) as exc:
            self._count_command("failed")
            raise GatewayUnavailable(f"command not sent: {exc}") from None
        self._count_command("sent")
        log.info("gateway.command_sent", site=cmd.site, action=cmd.action, command_id=str(cmd.command_id))

    def status(self) -> dict[str, Any]:
        """For the health endpoint: connection, ingest counters, publisher counters."""
        return {
            "connected": self.link.connected,
            "broker": f"{self.settings.mqtt_host}:{self.settings.mqtt_port}",
            "connects": self.link.connects,
            "ingest": self.ingest.status(),
            "publisher": self.publisher.status(),
            "commands": self._command_counts(),
        }

    def _count_command(self, outcome: str) -> None:
        with self._commands_lock:
            self._commands[outcome] += 1

    def _command_counts(self) -> dict[str, int]:
        with self._commands_lock:
            return {"sent": self._commands["sent"], "failed": self._commands["failed"]}

    # --- paho network thread ---------------------------------------------------------------------------

    def _on_connected(self, session_present: bool) -> None:
        self.publisher.on_connected(session_present)

    def _on_message(self, message: mqtt.MQTTMessage) -> None:
        """Central's own retained state goes to the publisher (seed); everything else to ingest, which
        checks topic and payload in its own thread (this one is paho's, and every microsecond counts)."""
        topic = _safe_topic(message)
        if topic.endswith(_RETAINED_SUFFIXES):
            try:
                parsed = parse_topic(topic)
            except TopicError:
                parsed = None
            if parsed is not None and parsed.channel in publisher.RETAINED_CHANNELS:
                self.publisher.seed(parsed.channel, parsed.site, bytes(message.payload))
                self.link.ack(message.mid, message.qos)
                return
        self.ingest.submit(Inbound(topic, bytes(message.payload), message.mid, message.qos))


_RETAINED_SUFFIXES = tuple(f"/{channel.value}" for channel in publisher.RETAINED_CHANNELS)


def _safe_topic(message: mqtt.MQTTMessage) -> str:
    try:
        return message.topic
    except UnicodeDecodeError:
        return "<topic not UTF-8>"


def default_keys_provider(settings: Settings) -> KeysProvider:
    """The token verification keys from the keystore in the data directory (None while there is none)."""
    warned = False

    def provide() -> m.SigningKeys | None:
        nonlocal warned
        try:
            keys = signing_keys_message(settings)
        except (KeystoreError, OSError) as exc:
            log.warning("gateway.keys_unreadable", error=str(exc))
            return None
        if keys is None and not warned:
            log.warning("gateway.no_signing_key", detail="phone tokens cannot be verified until a key exists")
        warned = keys is None
        return keys

    return provide


def run_gateway(settings: Settings) -> None:
    """Run the gateway alone until SIGINT or SIGTERM (for `meraapent central gateway`)."""
    engine = make_engine(settings.db_url)
    ensure_migrated(engine)
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("gateway.stopping", signal=signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    gateway = Gateway(settings, engine).start()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        gateway.stop()
        engine.dispose()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
