"""One lightweight simulated site agent (SimAgent): an MQTT 5 client with its own replica, deciding taps
as the real agent does, with no hardware and no thread of its own; Tally sums what agents did.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from controller.decide import SiteConfigError, SiteView, decide_card
from controller.link import TO_AGENT
from controller.replica import DeltaResult, Replica, ReplicaError
from controller.uid import card_uid_hash
from hw_sim.fleet.plan import ENTRANCE, UNKNOWN_MARK, FleetPlan, agent_name, card_uid, roaming_uid, site_slug
from protocol import codec
from protocol import messages as m
from protocol.topics import RULES, Channel, Direction, TopicError, parse_topic, site_filter, site_topic

log = structlog.get_logger("hw_sim.fleet")

QOS = 1
KEEPALIVE_S = 30
RESEND_AFTER_S = 30.0  # an event central has not acknowledged is published again, as the real outbox does
RESYNC_AFTER_S = 15.0  # a snapshot request that got no answer is repeated
RECONNECT_AFTER_S = 1.0
WRONG_PIN_SHARE = 0.05
ROAMING_TAP_SHARE = 0.10
UNKNOWN_TAP_SHARE = 0.05
SOFTWARE = "fleet-sim"


@dataclass(slots=True)
class _Pending:
    """An event published and not yet acknowledged by central."""

    first_sent: float
    last_sent: float
    payload: bytes


@dataclass
class Tally:
    """What a worker's agents did, summed; `ack_latencies` in seconds (publish → central's Ack)."""

    taps: int = 0
    granted: int = 0
    denied: int = 0
    duplicates_sent: int = 0
    acked: int = 0
    synced: int = 0
    flips: int = 0  # verdict changes of watched cards, so the worker recounts only when there were some
    ack_latencies: list[float] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)


class SimAgent:
    """One site agent without hardware. Lives in its worker's loop thread: nothing here is thread-safe."""

    def __init__(self, index: int, plan: FleetPlan, uid_key: bytes, tally: Tally) -> None:
        self.index = index
        self.site = site_slug(index)
        self.name = agent_name(self.site)
        self.uid_key = uid_key
        self.plan = plan
        self.tally = tally
        self.replica = Replica(Path(":memory:"), site=self.site)
        self.view: SiteView | None = None
        self.connected = False
        self.stopping = False
        self.reconnect_at: float | None = None
        self.asked_at: float | None = None  # first snapshot request
        self.last_ask: float | None = None
        self.synced_at: float | None = None
        self.seq = 0
        self.pending: dict[uuid.UUID, _Pending] = {}
        self.watched = [card_uid_hash(roaming_uid(k), uid_key) for k in range(1, plan.roaming + 1)]
        self.granting: list[bool | None] = [None] * plan.roaming
        self.transitions: list[tuple[float, int, bool]] = []  # (monotonic, caretaker index 0.., granted)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.name, protocol=mqtt.MQTTv5)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    @property
    def synced(self) -> bool:
        return self.synced_at is not None

    # --- connection -------------------------------------------------------------------------------------

    def connect(self, host: str, port: int, keepalive: int = KEEPALIVE_S) -> None:
        """Open the connection (CONNECT goes out from the worker's loop). A fleet run always starts from a
        snapshot, so the session is clean: a persistent one would leave a stale session per site behind."""
        self.client.will_set(self._status_topic, self._status(online=False), qos=QOS, retain=True)
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 0
        self.client.connect(host, port, keepalive, clean_start=True, properties=props)

    def reconnect(self, now: float) -> None:
        self.reconnect_at = None
        try:
            self.client.reconnect()
        except OSError as exc:
            self.tally.counters["reconnect_failed"] += 1
            log.warning("fleet.reconnect_failed", site=self.site, error=str(exc))
            self.reconnect_at = now + RECONNECT_AFTER_S

    def say_goodbye(self) -> None:
        """Retained status offline, then DISCONNECT (the broker then drops the Last Will)."""
        self.stopping = True
        if self.connected:
            self._publish(self._status_topic, self._status(online=False), retain=True)
        self.client.disconnect()

    @property
    def _status_topic(self) -> str:
        return site_topic(self.site, Channel.STATUS)

    def _status(self, *, online: bool) -> bytes:
        config = self.replica.config()
        status = m.AgentStatus(
            site=self.site,
            agent=self.name,
            online=online,
            at=datetime.now(UTC),
            software_version=SOFTWARE,
            replica_seq=self.replica.seq,
            config_revision=config.revision if config else None,
            outbox_pending=len(self.pending),
        )
        return codec.encode(status)

    def _publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=QOS, retain=retain)

    def _on_connect(
        self, client: mqtt.Client, _u: Any, _flags: mqtt.ConnectFlags, reason: ReasonCode, _p: Any
    ) -> None:
        if reason.is_failure:
            self.tally.counters["connect_refused"] += 1
            log.warning("fleet.connect_refused", site=self.site, reason=reason.getName())
            return
        client.subscribe([(site_filter(self.site, ch), SubscribeOptions(qos=QOS)) for ch in TO_AGENT])

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, _reasons: list[ReasonCode], _p: Any) -> None:
        """Subscribed: online, ask for a snapshot (a clean session missed every delta), resend events."""
        self.connected = True
        self._publish(self._status_topic, self._status(online=True), retain=True)
        self.ask_snapshot(time.monotonic(), "fleet agent connected")
        for pending in self.pending.values():
            self._publish(site_topic(self.site, Channel.EVENT), pending.payload)
            pending.last_sent = time.monotonic()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self.connected = False
        if not self.stopping:
            self.tally.counters["disconnects"] += 1
            log.warning("fleet.disconnected", site=self.site, reason=reason.getName())
            self.reconnect_at = time.monotonic() + RECONNECT_AFTER_S

    def ask_snapshot(self, now: float, reason: str) -> None:
        request = m.ReplicaRequest(site=self.site, agent=self.name, have_seq=self.replica.seq, reason=reason)
        self._publish(site_topic(self.site, Channel.REPLICA_REQUEST), codec.encode(request))
        self.last_ask = now
        if self.asked_at is None:
            self.asked_at = now

    def housekeeping(self, now: float) -> None:
        """Once a second: keepalive, reconnect, a repeated snapshot request, resends."""
        if self.reconnect_at is not None and now >= self.reconnect_at:
            self.reconnect(now)
        self.client.loop_misc()
        if not self.connected:
            return
        if not self.synced and self.last_ask is not None and now - self.last_ask >= RESYNC_AFTER_S:
            self.ask_snapshot(now, "no snapshot yet")
        for pending in self.pending.values():
            if now - pending.last_sent >= RESEND_AFTER_S:
                self._publish(site_topic(self.site, Channel.EVENT), pending.payload)
                pending.last_sent = now

    # --- what central sends -----------------------------------------------------------------------------

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        message = self._accept(msg)
        if message is None:
            return
        try:
            self._handle(message)
        except (ReplicaError, ValueError) as exc:  # one bad message must not stop the worker's loop
            self.tally.counters["handler_failed"] += 1
            log.error("fleet.message_failed", site=self.site, kind=type(message).__name__, error=str(exc))

    def _accept(self, msg: mqtt.MQTTMessage) -> m.Message | None:
        """The message if it is for this site, on a to-agent channel, as the contract says; else counted."""
        try:
            topic = parse_topic(msg.topic)
            rule = RULES[topic.channel]
            if topic.site != self.site or rule.direction is not Direction.TO_AGENT:
                raise TopicError("not a to-agent topic of this site")
            if msg.retain and not rule.retained:
                raise TopicError(f"{topic.channel.value} must never be retained")
            message = codec.decode_for_channel(msg.payload, topic.channel)
        except (TopicError, UnicodeDecodeError, codec.ProtocolError) as exc:
            self.tally.counters["refused"] += 1
            log.warning("fleet.message_refused", site=self.site, detail=str(exc)[:200])
            return None
        if getattr(message, "site", self.site) != self.site:
            self.tally.counters["refused"] += 1
            return None
        return message

    def _handle(self, message: m.Message) -> None:
        if isinstance(message, m.SiteConfig):
            if self.replica.save_config(message):
                try:
                    self.view = SiteView.from_config(message)
                except SiteConfigError as exc:
                    self.tally.counters["config_unusable"] += 1
                    log.error("fleet.config_unusable", site=self.site, error=str(exc))
                self._settled()
        elif isinstance(message, m.SigningKeys):
            self.replica.save_keys(message)
        elif isinstance(message, m.Revocations):
            self.replica.save_revocations(message)
        elif isinstance(message, m.ReplicaSnapshot):
            self.replica.apply_snapshot(message)
            self._settled()
        elif isinstance(message, m.ReplicaDelta):
            result = self.replica.apply_delta(message)
            if result is DeltaResult.GAP:
                self.tally.counters["replica_gaps"] += 1
                self.ask_snapshot(
                    time.monotonic(), f"gap: have {self.replica.seq}, delta after {message.prev_seq}"
                )
            elif result is DeltaResult.APPLIED:
                self._settled()
        elif isinstance(message, m.Ack):
            self._acknowledged(message.event_ids)
        elif isinstance(message, m.Command):
            self._refuse_command(message)

    def _settled(self) -> None:
        """Replica or config changed: synced yet? Then decide the caretakers' cards again."""
        now = time.monotonic()
        if self.view is None or self.replica.seq is None:
            return
        if self.synced_at is None:
            self.synced_at = now
            self.tally.synced += 1
        if ENTRANCE not in self.view.doors:
            return
        wall = datetime.now(UTC)
        for k, uid_hash in enumerate(self.watched):
            verdict = decide_card(self.view, ENTRANCE, self.replica.card(uid_hash), [], wall, pin_ok=None)
            if verdict.granted != self.granting[k]:
                self.granting[k] = verdict.granted
                self.transitions.append((now, k, verdict.granted))
                self.tally.flips += 1

    def _acknowledged(self, event_ids: Sequence[uuid.UUID]) -> None:
        now = time.monotonic()
        for event_id in event_ids:
            pending = self.pending.pop(event_id, None)
            if pending is not None:
                self.tally.acked += 1
                self.tally.ack_latencies.append(now - pending.first_sent)

    def _refuse_command(self, command: m.Command) -> None:
        """A simulated agent has no doors to drive; it says so rather than leaving the caretaker waiting."""
        result = m.CommandResult(
            command_id=command.command_id,
            site=self.site,
            outcome=m.CommandOutcome.REFUSED,
            at=datetime.now(UTC),
            reason="simulated fleet agent: no doors to drive",
        )
        self._publish(site_topic(self.site, Channel.COMMAND_RESULT), codec.encode(result))

    # --- a card tap -------------------------------------------------------------------------------------

    def tap(self, rng: random.Random, duplicate_share: float) -> bool:
        """Someone taps a card at one of the doors: mostly a resident, sometimes a caretaker or a stranger.
        Decided as the real agent does, journaled in memory until acknowledged, published as an event."""
        if self.view is None or not self.connected or not self.view.doors:
            return False
        door = rng.choice(sorted(self.view.doors))
        roll = rng.random()
        if roll < ROAMING_TAP_SHARE:
            uid = roaming_uid(rng.randint(1, self.plan.roaming))
        elif roll < ROAMING_TAP_SHARE + UNKNOWN_TAP_SHARE:
            uid = UNKNOWN_MARK + rng.randbytes(5)
        else:
            uid = card_uid(self.index, rng.randint(1, self.plan.residents))
        credential = self.replica.card(card_uid_hash(uid, self.uid_key))
        now = datetime.now(UTC)
        bookings = self.replica.bookings_for(credential.person, now) if credential else []
        method, pin_ok = m.Method.CARD, None
        if credential is not None and credential.pin_hash is not None:
            method, pin_ok = m.Method.CARD_PIN, rng.random() >= WRONG_PIN_SHARE
        verdict = decide_card(self.view, door, credential, bookings, now, pin_ok=pin_ok)
        self.seq += 1
        event = m.AccessEvent(
            event_id=uuid.uuid4(),
            site=self.site,
            agent=self.name,
            seq=self.seq,
            device_time=now,
            door=door,
            decision=verdict.decision,
            reason=verdict.reason,
            method=method,
            credential_ref=verdict.credential_ref,
            person_ref=verdict.person_ref,
            booking_ref=verdict.booking_ref,
        )
        payload = codec.encode(event)
        mono = time.monotonic()
        self.pending[event.event_id] = _Pending(mono, mono, payload)
        topic = site_topic(self.site, Channel.EVENT)
        self._publish(topic, payload)
        if rng.random() < duplicate_share:  # as an agent that missed the ack and sends it again
            self._publish(topic, payload)
            self.tally.duplicates_sent += 1
        self.tally.taps += 1
        if verdict.granted:
            self.tally.granted += 1
        else:
            self.tally.denied += 1
        return True

    def summary(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "asked_at": self.asked_at,
            "synced_at": self.synced_at,
            "transitions": [[round(t, 6), k, g] for t, k, g in self.transitions],
        }
