"""A fleet of lightweight simulated site agents against one central and one broker, for load and latency.

No one can put a thousand Raspberry Pis on a desk, yet central must serve a country's worth of sites. Each
simulated agent here is a real MQTT 5 client (its own client id, a Last Will, its site's topics) holding its
own credential replica (controller.replica.Replica in memory: the snapshot and delta semantics of a Pi) and
deciding card taps with controller.decide.decide_card against its site config. Its decisions reach central
as access events that central acknowledges. What it leaves out is the hardware: no GPIO, no pcscd, and no
thread per agent.

The parts, top down:
- `run` (what `meraapent sim fleet` does): create the sites, start the workers, wait until every agent
  is synced, drive taps and changes (a caretaker's card blocked and unblocked), and say what was measured;
- `Fleet`: the coordinator. It starts `python -m hw_sim.fleet` worker processes and talks to them in JSON
  lines (commands on stdin; progress, transitions and a final report on stdout);
- `Worker`: many agents in one process, all driven by one selector loop through paho's external-loop API
  (socket callbacks, loop_read / loop_write / loop_misc);
- `SimAgent`: one agent;
- `FleetPlan` and `create_sites`: the sites fleet-0001, fleet-0002 ... in central's database, each with two
  zones and doors, meråpent hours, a residents' group and residents with cards (PIN 1234), plus caretakers
  whose cards open every fleet site at any time. Their card UIDs follow from the plan (`card_uid`), so a
  worker knows which cards exist without asking central.

Every agent watches the caretakers' cards: after each change to its replica or config it decides them again
and notes the monotonic time whenever the verdict flips. CLOCK_MONOTONIC is system-wide on Linux, so a
coordinator that notes when it committed a revoke can tell how long the refusal took to reach each agent.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import queue
import random
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from central.config import UID_HASH_KEY_FILE
from central.db import ensure_migrated, make_engine, session_factory, session_scope, utcnow
from central.models import (
    AccessGroup,
    Credential,
    CredentialKind,
    Door,
    DoorKind,
    Event,
    GroupMember,
    GroupZone,
    HoursKind,
    LockType,
    OpeningHours,
    Person,
    PersonKind,
    Site,
    Zone,
)
from central.security import card_uid_hash as central_uid_hash
from central.security import hash_pin
from central.services import credentials as credential_service
from central.services import replica_log
from controller.decide import SiteConfigError, SiteView, decide_card
from controller.link import TO_AGENT
from controller.replica import DeltaResult, Replica, ReplicaError
from controller.uid import card_uid_hash
from protocol import codec
from protocol import messages as m
from protocol.topics import RULES, Channel, Direction, TopicError, parse_topic, site_filter, site_topic

log = structlog.get_logger("hw_sim.fleet")

# --- the plan: which sites, people and cards ------------------------------------------------------------

SITE_PREFIX = "fleet"
ENTRANCE = "hovedinngang"
ZONES = (("torg", "Torget"), ("bibliotek", "Biblioteket"))
DOORS = (
    (ENTRANCE, "Hovedinngang", "torg", DoorKind.ENTRANCE, LockType.FAIL_SECURE),
    ("bibliotek", "Biblioteket", "bibliotek", DoorKind.INTERNAL, LockType.FAIL_SAFE),
)
OPENS, CLOSES = clock_time(7), clock_time(22)
ROAMING_GROUP = "fleet-vaktmestere"
FLEET_PIN = "1234"  # simulated residents type it right most of the time (WRONG_PIN_SHARE)
CARD_MARK = b"\xf1\xee"  # first bytes of every fleet card UID: never a real card's
UNKNOWN_MARK = b"\xf1\xef"  # cards nobody registered
INSERT_CHUNK = 500  # sites per bulk insert
SOFTWARE = "fleet-sim"


@dataclass(frozen=True)
class FleetPlan:
    """How many sites, residents per site and caretakers (whose cards open every fleet site)."""

    sites: int
    residents: int = 5
    roaming: int = 2

    def __post_init__(self) -> None:
        for name, value, top in (("sites", self.sites, 99_999), ("residents", self.residents, 1000)):
            if not 1 <= value <= top:
                raise ValueError(f"{name} must be 1–{top}, got {value}")
        if not 1 <= self.roaming <= 100:
            raise ValueError(f"roaming caretakers must be 1–100, got {self.roaming}")

    @property
    def slugs(self) -> list[str]:
        return [site_slug(i) for i in range(1, self.sites + 1)]


def site_slug(index: int) -> str:
    return f"{SITE_PREFIX}-{index:04d}"


def agent_name(site: str) -> str:
    return f"{site}-sim"


def card_uid(site_index: int, person: int) -> bytes:
    """Resident `person` of site `site_index` (site 0: the caretakers); 7 bytes like a MIFARE UID."""
    return CARD_MARK + site_index.to_bytes(3, "big") + person.to_bytes(2, "big")


def roaming_uid(caretaker: int) -> bytes:
    return card_uid(0, caretaker)


def create_sites(session: Session, plan: FleetPlan, uid_key: bytes, now: datetime | None = None) -> int:
    """Add the plan's sites that are missing (with their layout, hours, group, residents and cards) and the
    caretakers, in the caller's transaction; returns how many sites were created.

    Bulk inserts through the models, without replica-log entries for the residents: their cards are
    eligible only at sites that did not exist before, whose agents start from a snapshot anyway.
    """
    now = now or utcnow()
    existing = set(session.scalars(select(Site.slug).where(Site.slug.like(f"{SITE_PREFIX}-%"))))
    missing = [(i, slug) for i, slug in enumerate(plan.slugs, 1) if slug not in existing]
    roaming_group = _caretakers(session, plan, uid_key, now)
    pin_hash = hash_pin(FLEET_PIN) if missing else ""
    for start in range(0, len(missing), INSERT_CHUNK):
        _insert_sites(session, missing[start : start + INSERT_CHUNK], plan, uid_key, pin_hash, roaming_group)
    return len(missing)


def _caretakers(session: Session, plan: FleetPlan, uid_key: bytes, now: datetime) -> int:
    """The any-time group and its caretakers with their cards (created once); returns the group id."""
    group = session.scalars(select(AccessGroup).where(AccessGroup.slug == ROAMING_GROUP)).one_or_none()
    if group is None:
        group = AccessGroup(
            slug=ROAMING_GROUP, name="Vaktmestere (fleet)", description="Simulated caretakers", any_time=True
        )
        session.add(group)
        session.flush()
    created: list[int] = []
    for k in range(1, plan.roaming + 1):
        ref = f"fleet:vaktmester:{k}"
        if session.scalars(select(Person.id).where(Person.external_ref == ref)).first() is not None:
            continue
        person = Person(kind=PersonKind.CARETAKER, display_name=f"Vaktmester {k} (fleet)", external_ref=ref)
        person.credentials.append(
            Credential(
                kind=CredentialKind.CARD,
                uid_hash=central_uid_hash(roaming_uid(k), uid_key),
                label="Nøkkelkort (fleet)",
                valid_from=now - timedelta(days=1),
            )
        )
        group.members.append(person)
        session.flush()
        created.extend(c.id for c in person.credentials)
    replica_log.record_credential_changes(session, created)  # existing fleet sites learn of new caretakers
    return group.id


def _insert_sites(
    session: Session,
    chunk: Sequence[tuple[int, str]],
    plan: FleetPlan,
    uid_key: bytes,
    pin_hash: str,
    roaming_group: int,
) -> None:
    sites = _returning(
        session,
        Site,
        [{"slug": slug, "name": f"Fleet {i:04d} innbyggertorg", "address": "Simulert"} for i, slug in chunk],
    )
    site_ids = [sites[slug] for _i, slug in chunk]
    zone_rows = [{"site_id": s, "slug": z, "name": name} for s in site_ids for z, name in ZONES]
    zone_ids = (
        session.execute(insert(Zone).returning(Zone.id, sort_by_parameter_order=True), zone_rows)
        .scalars()
        .all()
    )
    zone_of = {(row["site_id"], row["slug"]): zid for row, zid in zip(zone_rows, zone_ids, strict=True)}
    session.execute(
        insert(Door),
        [
            {
                "site_id": s,
                "zone_id": zone_of[(s, zone)],
                "slug": slug,
                "name": name,
                "kind": kind,
                "lock_type": lt,
            }
            for s in site_ids
            for slug, name, zone, kind, lt in DOORS
        ],
    )
    session.execute(
        insert(OpeningHours),
        [
            {"site_id": s, "weekday": d, "opens": OPENS, "closes": CLOSES, "kind": HoursKind.MERAAPENT}
            for s in site_ids
            for d in range(7)
        ],
    )
    groups = _returning(
        session, AccessGroup, [{"slug": slug, "name": f"Innbyggere {slug}"} for _i, slug in chunk]
    )
    session.execute(
        insert(GroupZone),
        [
            {"group_id": groups[slug], "zone_id": zone_of[(sites[slug], z)]}
            for _i, slug in chunk
            for z, _n in ZONES
        ]
        + [{"group_id": roaming_group, "zone_id": zone_of[(s, "torg")]} for s in site_ids],
    )
    people = [(i, slug, j) for i, slug in chunk for j in range(1, plan.residents + 1)]
    person_ids = (
        session.execute(
            insert(Person).returning(Person.id, sort_by_parameter_order=True),
            [
                {
                    "kind": PersonKind.RESIDENT,
                    "display_name": f"Innbygger {j} ({slug})",
                    "external_ref": f"fleet:{slug}:{j}",
                }
                for _i, slug, j in people
            ],
        )
        .scalars()
        .all()
    )
    session.execute(
        insert(GroupMember),
        [
            {"group_id": groups[slug], "person_id": pid}
            for (_i, slug, _j), pid in zip(people, person_ids, strict=True)
        ],
    )
    valid_from = utcnow() - timedelta(days=1)
    session.execute(
        insert(Credential),
        [
            {
                "person_id": pid,
                "kind": CredentialKind.CARD,
                "uid_hash": central_uid_hash(card_uid(i, j), uid_key),
                "pin_hash": pin_hash,
                "label": "Lånekort (fleet)",
                "valid_from": valid_from,
            }
            for (i, _slug, j), pid in zip(people, person_ids, strict=True)
        ],
    )


def _returning(
    session: Session, model: type[Site] | type[AccessGroup], rows: list[dict[str, Any]]
) -> dict[str, int]:
    """Insert rows that have a slug; slug -> new id."""
    ids = (
        session.execute(insert(model).returning(model.id, sort_by_parameter_order=True), rows).scalars().all()
    )
    return {row["slug"]: rid for row, rid in zip(rows, ids, strict=True)}


def caretaker_credential(session: Session, caretaker: int, uid_key: bytes) -> int:
    """The credential id of caretaker `caretaker`'s card (to revoke or block it through the services)."""
    credential, _person = credential_service.lookup_card(session, roaming_uid(caretaker).hex(), uid_key)
    return credential.id


# --- one simulated agent ----------------------------------------------------------------------------------

QOS = 1
KEEPALIVE_S = 30
RESEND_AFTER_S = 30.0  # an event central has not acknowledged is published again, as the real outbox does
RESYNC_AFTER_S = 15.0  # a snapshot request that got no answer is repeated
RECONNECT_AFTER_S = 1.0
WRONG_PIN_SHARE = 0.05
ROAMING_TAP_SHARE = 0.10
UNKNOWN_TAP_SHARE = 0.05


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


# --- many agents in one process ---------------------------------------------------------------------------

CONNECTS_PER_STEP = 50  # new connections per loop step: the broker's accept queue is not flooded
HOUSEKEEPING_S = 1.0
PROGRESS_S = 1.0
REFUSING_EVERY_S = 0.05
DRAIN_S = 15.0  # at stop: how long to wait for central to acknowledge the last events
GOODBYE_S = 5.0

Emit = Callable[[dict[str, Any]], None]


class FleetError(RuntimeError):
    """The fleet cannot run (broker unreachable, too few file descriptors, a worker died)."""


class Worker:
    """Agents `first` .. `first + count - 1` of a plan, on one selector loop in the calling thread.

    Commands (`command`, or JSON lines on the control file descriptor): {"cmd": "taps", "rate": R,
    "duration": S} taps R times a second at random synced agents for S seconds; {"cmd": "stop"} ends the
    run. What it says (`emit`): progress, "synced" once every agent is, "refusing" (how many agents refuse
    each caretaker's card) when that changes, "taps_done", and a final "report".
    """

    def __init__(
        self,
        plan: FleetPlan,
        first: int,
        count: int,
        uid_key: bytes,
        broker: tuple[str, int],
        emit: Emit,
        *,
        duplicate_share: float = 0.05,
        seed: int | None = None,
    ) -> None:
        _ensure_file_limit(count + 64)
        self.plan = plan
        self.broker = broker
        self.emit = emit
        self.duplicate_share = duplicate_share
        self.rng = random.Random(seed)  # noqa: S311 (who taps where: simulation, not security)
        self.tally = Tally()
        self.selector = selectors.DefaultSelector()
        self.agents = [SimAgent(i, plan, uid_key, self.tally) for i in range(first, first + count)]
        for agent in self.agents:
            self._attach(agent)
        self._to_connect = list(self.agents)
        self._stop = False
        self._control = b""
        self._tap_rate = 0.0
        self._next_tap = 0.0
        self._taps_end = 0.0
        self._taps_started = 0
        self._housekeeping_due = 0.0
        self._progress_due = 0.0
        self._synced_said = False
        self._flips_said = 0
        self._refusing_due = 0.0

    # --- paho's external loop: sockets in our selector ------------------------------------------------

    def _attach(self, agent: SimAgent) -> None:
        def opened(_c: mqtt.Client, _u: Any, sock: Any) -> None:
            self.selector.register(sock, selectors.EVENT_READ, agent)

        def closed(_c: mqtt.Client, _u: Any, sock: Any) -> None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(sock)

        def want_write(_c: mqtt.Client, _u: Any, sock: Any) -> None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, agent)

        def written(_c: mqtt.Client, _u: Any, sock: Any) -> None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.modify(sock, selectors.EVENT_READ, agent)

        agent.client.on_socket_open = opened
        agent.client.on_socket_close = closed
        agent.client.on_socket_register_write = want_write
        agent.client.on_socket_unregister_write = written

    def watch_control(self, fd: int) -> None:
        """Read commands as JSON lines from `fd` (a worker process's stdin); end of file means stop."""
        os.set_blocking(fd, False)
        self.selector.register(fd, selectors.EVENT_READ, None)

    # --- the loop ---------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Connect, serve until told to stop, say goodbye; returns (and emits) the report."""
        while not self._stop:
            self.step()
        return self._finish()

    def step(self, max_wait: float = 0.2) -> None:
        now = time.monotonic()
        self._connect_some()
        for key, events in self.selector.select(self._wait(now, max_wait)):
            if key.data is None:
                self._read_control(key.fd)
                continue
            client = key.data.client
            if events & selectors.EVENT_READ:
                client.loop_read()
            if events & selectors.EVENT_WRITE:
                client.loop_write()
        now = time.monotonic()
        self._tap_due(now)
        if now >= self._housekeeping_due:
            self._housekeeping_due = now + HOUSEKEEPING_S
            for agent in self.agents:
                agent.housekeeping(now)
        self._report_progress(now)

    def _wait(self, now: float, max_wait: float) -> float:
        due = min(self._housekeeping_due, self._progress_due, now + max_wait)
        if self._tap_rate > 0:
            due = min(due, self._next_tap)
        if self._to_connect:
            due = now
        return max(0.0, due - now)

    def _connect_some(self) -> None:
        batch, self._to_connect = self._to_connect[:CONNECTS_PER_STEP], self._to_connect[CONNECTS_PER_STEP:]
        host, port = self.broker
        for agent in batch:
            try:
                agent.connect(host, port)
            except OSError as exc:
                raise FleetError(f"cannot connect to the broker at {host}:{port}: {exc}") from None

    def command(self, cmd: dict[str, Any]) -> None:
        kind = cmd.get("cmd")
        if kind == "stop":
            self._stop = True
        elif kind == "taps":
            rate, duration = float(cmd["rate"]), float(cmd["duration"])
            now = time.monotonic()
            self._tap_rate, self._next_tap, self._taps_end = rate, now, now + duration
            self._taps_started = self.tally.taps
        else:
            log.warning("fleet.unknown_command", command=str(kind)[:40])

    def _read_control(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not data:  # the coordinator went away: stop
            self.selector.unregister(fd)
            self._stop = True
            return
        self._control += data
        *lines, self._control = self._control.split(b"\n")
        for line in lines:
            if line.strip():
                try:
                    self.command(json.loads(line))
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("fleet.bad_command", error=str(exc)[:200])

    def _tap_due(self, now: float) -> None:
        if self._tap_rate <= 0:
            return
        if now >= self._taps_end:
            self._tap_rate = 0.0
            self.emit({"type": "taps_done", "taps": self.tally.taps - self._taps_started})
            return
        ready = [a for a in self.agents if a.synced and a.connected]
        while now >= self._next_tap and ready:
            self.rng.choice(ready).tap(self.rng, self.duplicate_share)
            self._next_tap += 1.0 / self._tap_rate
        if not ready:
            self._next_tap = now + 0.1

    # --- what the worker says ---------------------------------------------------------------------------

    def _report_progress(self, now: float) -> None:
        if self.tally.flips != self._flips_said and now >= self._refusing_due:
            self._flips_said, self._refusing_due = self.tally.flips, now + REFUSING_EVERY_S
            counts = [sum(1 for a in self.agents if a.granting[k] is False) for k in range(self.plan.roaming)]
            self.emit({"type": "refusing", "counts": counts})
        if self.tally.synced == len(self.agents) and not self._synced_said:
            self._synced_said = True
            self.emit({"type": "synced", "agents": self.tally.synced, "sync_s": _sync_seconds(self.agents)})
        if now >= self._progress_due:
            self._progress_due = now + PROGRESS_S
            connected = sum(1 for a in self.agents if a.connected)
            self.emit({"type": "progress", "connected": connected, "synced": self.tally.synced})

    def _finish(self) -> dict[str, Any]:
        """Wait a little for the last acks, say goodbye (retained offline status), then report."""
        self._tap_rate = 0.0
        deadline = time.monotonic() + DRAIN_S
        while any(a.pending for a in self.agents if a.connected) and time.monotonic() < deadline:
            self.step(0.05)
        for agent in self.agents:
            agent.say_goodbye()
        deadline = time.monotonic() + GOODBYE_S
        while any(a.client.socket() is not None for a in self.agents) and time.monotonic() < deadline:
            self.step(0.05)
        report = self.report()
        self.emit(report)
        return report

    def report(self) -> dict[str, Any]:
        t = self.tally
        return {
            "type": "report",
            "agents": [a.summary() for a in self.agents],
            "taps": t.taps,
            "granted": t.granted,
            "denied": t.denied,
            "duplicates_sent": t.duplicates_sent,
            "acked": t.acked,
            "unacked": sum(len(a.pending) for a in self.agents),
            "ack_ms": [round(s * 1000, 2) for s in t.ack_latencies],
            "counters": dict(t.counters),
            "rss_mb": _rss_mb(),
        }


def _rss_mb() -> float:
    """This process's resident memory (Linux), to tell what a thousand agents cost."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0.0
    kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return round(kb / 1024, 1)


def _sync_seconds(agents: Sequence[SimAgent]) -> list[float]:
    return [
        round(a.synced_at - a.asked_at, 4)
        for a in agents
        if a.synced_at is not None and a.asked_at is not None
    ]


def _ensure_file_limit(needed: int) -> None:
    """One socket per agent: raise the soft limit on open files as far as needed (and allowed)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise FleetError(f"{needed} open files needed, the limit is {hard}: run fewer agents per process")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def worker_main(argv: Sequence[str] | None = None) -> int:
    """`python -m hw_sim.fleet`: one worker process, commanded on stdin, reporting on stdout."""
    parser = argparse.ArgumentParser(description="One process of simulated fleet agents (see hw_sim.fleet).")
    parser.add_argument("--sites", type=int, required=True)
    parser.add_argument("--residents", type=int, default=5)
    parser.add_argument("--roaming", type=int, default=2)
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--mqtt-host", default="127.0.0.1")
    parser.add_argument("--mqtt-port", type=int, default=1883)
    parser.add_argument("--key-file", type=Path, required=True, help="central's uid-hash key (hex text)")
    parser.add_argument("--duplicate-share", type=float, default=0.05)
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(30),
    )

    def emit(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    try:
        uid_key = read_key(args.key_file)
        plan = FleetPlan(args.sites, args.residents, args.roaming)
        worker = Worker(
            plan,
            args.first,
            args.count,
            uid_key,
            (args.mqtt_host, args.mqtt_port),
            emit,
            duplicate_share=args.duplicate_share,
            seed=args.seed,
        )
        worker.watch_control(sys.stdin.fileno())
        worker.run()
    except (FleetError, ValueError, OSError) as exc:
        print(f"error: fleet worker: {exc}", file=sys.stderr)
        return 1
    return 0


def read_key(path: Path) -> bytes:
    """The uid-hash key as central keeps it (hex text, see central.config.read_or_create_secret)."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except ValueError:
        raise FleetError(f"{path} does not hold a hex key") from None


# --- the coordinator --------------------------------------------------------------------------------------

AGENTS_PER_PROCESS = 500


def default_processes(sites: int) -> int:
    """One process per 500 agents (on a 2-core machine more would only compete with central)."""
    return max(1, -(-sites // AGENTS_PER_PROCESS))


@dataclass
class _WorkerState:
    process: subprocess.Popen[str]
    first: int
    count: int
    synced: dict[str, Any] | None = None
    refusing: list[int] = field(default_factory=list)
    progress: dict[str, Any] = field(default_factory=dict)
    taps_done: bool = False
    report: dict[str, Any] | None = None
    ended: bool = False


class Fleet:
    """Worker processes for a plan's agents, and what they say. Use as a context manager: the workers
    are ended (by their own process handles) whatever happens."""

    def __init__(
        self,
        plan: FleetPlan,
        broker: tuple[str, int],
        key_file: Path,
        *,
        processes: int | None = None,
        duplicate_share: float = 0.05,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        if processes is not None and processes < 1:
            raise ValueError(f"a fleet needs at least one worker process, not {processes}")
        self.plan = plan
        self.broker = broker
        self.key_file = key_file
        self.processes = min(processes or default_processes(plan.sites), plan.sites)
        self.duplicate_share = duplicate_share
        self.say = progress or (lambda _text: None)
        self.workers: list[_WorkerState] = []
        self._inbox: queue.Queue[tuple[int, dict[str, Any] | None]] = queue.Queue()
        self._last_progress = 0.0

    def __enter__(self) -> Fleet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        host, port = self.broker
        try:
            socket.create_connection(self.broker, timeout=5).close()
        except OSError as exc:
            raise FleetError(f"cannot reach the broker at {host}:{port}: {exc.strerror or exc}") from None
        per, extra = divmod(self.plan.sites, self.processes)
        first = 1
        for n in range(self.processes):
            count = per + (1 if n < extra else 0)
            self.workers.append(_WorkerState(self._spawn(first, count, n), first, count))
            threading.Thread(target=self._read, args=(n,), name=f"fleet-worker-{n}", daemon=True).start()
            first += count

    def _spawn(self, first: int, count: int, n: int) -> subprocess.Popen[str]:
        host, port = self.broker
        p = self.plan
        cmd = [
            sys.executable, "-m", "hw_sim.fleet",
            "--sites", str(p.sites), "--residents", str(p.residents), "--roaming", str(p.roaming),
            "--first", str(first), "--count", str(count),
            "--mqtt-host", host, "--mqtt-port", str(port),
            "--key-file", str(self.key_file),
            "--duplicate-share", str(self.duplicate_share), "--seed", str(n),
        ]  # fmt: skip
        return subprocess.Popen(  # noqa: S603 (this interpreter, our own module, numbers and paths)
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    def _read(self, n: int) -> None:
        stdout = self.workers[n].process.stdout
        assert stdout is not None
        for line in stdout:
            try:
                self._inbox.put((n, json.loads(line)))
            except ValueError:
                self._inbox.put((n, {"type": "noise", "line": line[:200]}))
        self._inbox.put((n, None))

    def _send(self, cmd: dict[str, Any]) -> None:
        for w in self.workers:
            if not w.ended and w.process.stdin is not None:
                with contextlib.suppress(BrokenPipeError, OSError):
                    w.process.stdin.write(json.dumps(cmd) + "\n")
                    w.process.stdin.flush()

    def _pump(self, timeout: float) -> None:
        """Take in what one worker said (waiting up to `timeout`); a dead worker is a FleetError."""
        try:
            n, said = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return
        w = self.workers[n]
        if said is None:
            w.ended = True
            if w.report is None:
                code = w.process.wait(10)
                raise FleetError(
                    f"fleet worker {n} ended without a report (exit code {code}); see its stderr"
                )
            return
        kind = said.get("type")
        if kind == "progress":
            w.progress = said
            self._say_progress()
        elif kind == "synced":
            w.synced = said
        elif kind == "refusing":
            w.refusing = said["counts"]
        elif kind == "taps_done":
            w.taps_done = True
        elif kind == "report":
            w.report = said

    def _say_progress(self) -> None:
        now = time.monotonic()
        if now - self._last_progress < 2.0:
            return
        self._last_progress = now
        connected = sum(w.progress.get("connected", 0) for w in self.workers)
        synced = sum(w.progress.get("synced", 0) for w in self.workers)
        self.say(f"fleet: {connected} of {self.plan.sites} agents connected, {synced} synced")

    def _until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise FleetError(f"{what}: not within {timeout:g} s")
            self._pump(min(left, 0.1))

    def wait_synced(self, timeout: float) -> list[float]:
        """Wait until every agent has its config and replica; returns each agent's request → synced time."""
        self._until(
            lambda: all(w.synced is not None for w in self.workers),
            timeout,
            "agents synced (is central's gateway running on this database and broker?)",
        )
        return [s for w in self.workers if w.synced for s in w.synced["sync_s"]]

    def refusing(self, caretaker: int) -> int:
        """How many agents refuse caretaker `caretaker`'s card (1-based) right now."""
        return sum(w.refusing[caretaker - 1] for w in self.workers if len(w.refusing) >= caretaker)

    def wait_refusing(self, caretaker: int, count: int, timeout: float) -> None:
        self._until(lambda: self.refusing(caretaker) == count, timeout, f"{count} agents refusing the card")

    def taps(self, rate: float, duration: float) -> None:
        """Start taps at `rate` a second across the fleet for `duration` seconds (returns at once)."""
        for w in self.workers:
            w.taps_done = False
        share = rate / len(self.workers)
        self._send({"cmd": "taps", "rate": share, "duration": duration})

    def wait_taps(self, timeout: float) -> None:
        self._until(lambda: all(w.taps_done for w in self.workers), timeout, "taps finished")

    def pump_for(self, seconds: float) -> None:
        """Keep listening to the workers for a while (their progress must not pile up)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._pump(min(left, 0.1))

    def stop(self, timeout: float = 60.0) -> FleetReport:
        """Tell the workers to stop and collect their reports."""
        self._send({"cmd": "stop"})
        self._until(lambda: all(w.report is not None for w in self.workers), timeout, "fleet reports")
        for w in self.workers:
            w.process.wait(timeout)
        return FleetReport.merge([w.report for w in self.workers if w.report is not None])

    def close(self) -> None:
        for w in self.workers:
            if w.process.poll() is None:
                w.process.terminate()
                try:
                    w.process.wait(10)
                except subprocess.TimeoutExpired:
                    w.process.kill()
                    w.process.wait()
            for pipe in (w.process.stdin, w.process.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()


@dataclass
class FleetReport:
    """The workers' reports merged: per-agent timings and the fleet's tap and event figures."""

    agents: list[dict[str, Any]]
    taps: int
    granted: int
    denied: int
    duplicates_sent: int
    acked: int
    unacked: int
    ack_ms: list[float]
    counters: Counter[str]
    worker_rss_mb: list[float] = field(default_factory=list)

    @classmethod
    def merge(cls, reports: Sequence[dict[str, Any]]) -> FleetReport:
        counters: Counter[str] = Counter()
        for r in reports:
            counters.update(r["counters"])
        return cls(
            agents=[a for r in reports for a in r["agents"]],
            taps=sum(r["taps"] for r in reports),
            granted=sum(r["granted"] for r in reports),
            denied=sum(r["denied"] for r in reports),
            duplicates_sent=sum(r["duplicates_sent"] for r in reports),
            acked=sum(r["acked"] for r in reports),
            unacked=sum(r["unacked"] for r in reports),
            ack_ms=sorted(ms for r in reports for ms in r["ack_ms"]),
            counters=counters,
            worker_rss_mb=[r.get("rss_mb", 0.0) for r in reports],
        )

    def reached(self, caretaker: int, since: float, granted: bool) -> list[float | None]:
        """Per agent: seconds from `since` (monotonic) until its verdict on caretaker `caretaker`'s card
        (1-based) became `granted`; None where it never did."""
        found: list[float | None] = []
        for agent in self.agents:
            times = [
                t for t, k, g in agent["transitions"] if k == caretaker - 1 and g == granted and t >= since
            ]
            found.append(min(times) - since if times else None)
        return found


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) by nearest rank of already sorted values; 0 for none."""
    if not values:
        return 0.0
    rank = max(1, min(len(values), math.ceil(q / 100 * len(values))))
    return values[rank - 1]


def latency_figures(seconds: Sequence[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50_ms": round(percentile(ordered, 50) * 1000, 1),
        "p99_ms": round(percentile(ordered, 99) * 1000, 1),
        "max_ms": round((ordered[-1] if ordered else 0.0) * 1000, 1),
    }


# --- `meraapent sim fleet` --------------------------------------------------------------------------------

ACTOR = "fleet-sim"


@dataclass(frozen=True)
class RunOptions:
    sites: int
    db_url: str | None = None
    data_dir: Path | None = None  # central's: the uid-hash key is read from its secrets
    mqtt_host: str | None = None
    mqtt_port: int | None = None
    taps_per_second: float = 20.0
    duration: float = 30.0
    residents: int = 5
    processes: int | None = None
    change_every: float = 5.0
    gateway: bool = False  # run central's gateway in this process (else one must be running)


def run(options: RunOptions, say: Callable[[str], None] = lambda _t: None) -> dict[str, Any]:
    """Create the sites, start the fleet, sync, tap and change for a while; returns what was measured."""
    if options.taps_per_second < 0 or options.duration <= 0 or options.change_every <= 0:
        raise ValueError("--taps-per-second must be ≥ 0, --duration and the change interval > 0")
    from central.config import load_settings
    from central.gateway import Gateway

    settings = load_settings(
        db_url=options.db_url,
        data_dir=options.data_dir,
        mqtt_host=options.mqtt_host,
        mqtt_port=options.mqtt_port,
    )
    plan = FleetPlan(options.sites, options.residents)
    engine = make_engine(settings.db_url)
    try:
        ensure_migrated(engine)
        sessions = session_factory(engine)
        uid_key = settings.uid_hash_key()
        with session_scope(sessions) as session:
            created = create_sites(session, plan, uid_key)
        say(f"fleet: {created} sites created, {plan.sites - created} already there")
        with contextlib.ExitStack() as stack:
            poke: Callable[[], None] = lambda: None  # noqa: E731
            if options.gateway:
                gateway = Gateway(settings, engine, client_id=f"central-fleet-{uuid.uuid4().hex[:6]}").start()
                stack.callback(gateway.stop)
                poke = gateway.poke
            broker = (settings.mqtt_host, settings.mqtt_port)
            key_file = settings.secrets_dir / UID_HASH_KEY_FILE
            fleet = stack.enter_context(
                Fleet(plan, broker, key_file, processes=options.processes, progress=say)
            )
            started = time.monotonic()
            sync_s = fleet.wait_synced(timeout=max(60.0, plan.sites * 0.2))
            all_synced_s = time.monotonic() - started
            say(f"fleet: all {plan.sites} agents synced in {all_synced_s:.1f} s")
            wall_start = utcnow() - timedelta(seconds=1)
            taps_started = time.monotonic()
            changes = _taps_and_changes(fleet, sessions, plan, uid_key, options, poke)
            taps_s = time.monotonic() - taps_started
            report = fleet.stop()
        with sessions() as session:
            stored = session.scalar(
                select(func.count())
                .select_from(Event)
                .where(Event.agent_client_id.like(f"{SITE_PREFIX}-%-sim"), Event.device_time >= wall_start)
            )
    finally:
        engine.dispose()
    return _summary(
        plan, created, fleet.processes, all_synced_s, sync_s, taps_s, report, changes, stored or 0
    )


Change = tuple[float, bool]  # (monotonic time of the commit, whether the card is granted afterwards)


def _taps_and_changes(
    fleet: Fleet,
    sessions: sessionmaker[Session],
    plan: FleetPlan,
    uid_key: bytes,
    options: RunOptions,
    poke: Callable[[], None],
) -> list[Change]:
    """Taps for the whole duration; meanwhile the last caretaker's card is blocked and unblocked in turn."""
    fleet.taps(options.taps_per_second, options.duration)
    changes: list[Change] = []
    end = time.monotonic() + options.duration
    next_change = time.monotonic() + options.change_every
    while time.monotonic() < end:
        fleet.pump_for(min(0.1, max(0.0, end - time.monotonic())))
        if time.monotonic() >= next_change:
            changes.append(toggle_block(sessions, plan.roaming, uid_key))
            poke()
            next_change += options.change_every
    if options.taps_per_second > 0:
        fleet.wait_taps(timeout=30.0)
    if changes:  # let the last change reach the agents before they stop (one that does not is "missed")
        refusing = 0 if changes[-1][1] else plan.sites
        with contextlib.suppress(FleetError):
            fleet.wait_refusing(plan.roaming, refusing, timeout=max(30.0, options.change_every))
    if changes and not changes[-1][1]:  # leave the card as it was found
        toggle_block(sessions, plan.roaming, uid_key)
        poke()
    return changes


def toggle_block(sessions: sessionmaker[Session], caretaker: int, uid_key: bytes) -> Change:
    """Block caretaker `caretaker`'s card through central's services, or unblock it if it is blocked."""
    with session_scope(sessions) as session:
        cid = caretaker_credential(session, caretaker, uid_key)
        credential = credential_service.get_credential(session, cid)
        granted = credential.status.value == "blocked"
        if granted:
            credential_service.unblock(session, ACTOR, cid)
        else:
            credential_service.block(session, ACTOR, cid)
    return time.monotonic(), granted


def _summary(
    plan: FleetPlan,
    created: int,
    processes: int,
    all_synced_s: float,
    sync_s: list[float],
    taps_s: float,
    report: FleetReport,
    changes: list[Change],
    stored: int,
) -> dict[str, Any]:
    reached: list[float] = []
    missed = 0
    for t0, granted in changes:
        for seconds in report.reached(plan.roaming, t0, granted):
            if seconds is None:
                missed += 1
            else:
                reached.append(seconds)
    sync = latency_figures(sync_s)
    acks = latency_figures([ms / 1000 for ms in report.ack_ms])
    propagation = latency_figures(reached)
    return {
        "sites": plan.sites,
        "sites_created": created,
        "processes": processes,
        "all_synced_s": round(all_synced_s, 2),
        "sync_p50_ms": sync["p50_ms"],
        "sync_max_ms": sync["max_ms"],
        "taps": report.taps,
        "taps_per_s": round(report.taps / taps_s, 1) if taps_s > 0 else 0.0,
        "granted": report.granted,
        "denied": report.denied,
        "duplicates_sent": report.duplicates_sent,
        "events_acked": report.acked,
        "events_unacked": report.unacked,
        "events_stored": stored,
        "ack_p50_ms": acks["p50_ms"],
        "ack_p99_ms": acks["p99_ms"],
        "changes": len(changes),
        "propagation_p50_ms": propagation["p50_ms"],
        "propagation_p99_ms": propagation["p99_ms"],
        "propagation_max_ms": propagation["max_ms"],
        "propagation_missed": missed,
        "worker_rss_mb": report.worker_rss_mb,
        "agent_counters": dict(report.counters),
    }


if __name__ == "__main__":
    sys.exit(worker_main())
