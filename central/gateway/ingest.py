"""Agent → central: events, agent status, door state, command results and replica requests.

Two layers:
- pure checks (`check`): a message is accepted only if its topic is one of ours, its payload decodes
  strictly for that channel, and it speaks for the site (and door) in its topic: a site must not speak for
  another. Everything else is refused with a short reason that is counted and logged, never raised;
- plain database functions taking a Session (`store_events`, `apply_agent_status`, `apply_door_state`,
  `store_command_result`), testable without MQTT.

`IngestWorker` ties them together in one thread: it takes what paho received, commits it in batches
(every `batch_size` messages or `batch_window_s`), and only AFTER the commit acknowledges: an application
`Ack` to the site for every event now in the database (newly inserted or a duplicate committed earlier, so an
agent that resends gets its ack), and the MQTT PUBACK (manual ack), so the broker redelivers whatever central
had not committed when it stopped. Events go in with INSERT ... ON CONFLICT (event_id) DO NOTHING: exactly
once.

A database that is unreachable stalls the batch (retried with backoff, nothing acknowledged, so the broker's
Receive Maximum holds the agents back); a batch the database refuses (a constraint) is split and retried one
message at a time, and only the poisonous one is dropped (counted, never acknowledged to its agent).
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import structlog
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from central.checkin import CheckinRules, refusal
from central.db import utcnow
from central.models import (
    Agent,
    Alarm,
    AlarmSeverity,
    Booking,
    BookingStatus,
    Decision,
    Door,
    Event,
    EventKind,
    Person,
    Site,
)
from central.replica import LIVE_BOOKING_STATUSES, credential_ref, parse_ref
from central.services import audit, booking_changes, card_enrolment, checkin, replica_log
from central.services.errors import ConflictError, InvalidError, NotFoundError
from central.services.replica_log import insert_ignoring_duplicates
from protocol import codec
from protocol import messages as m
from protocol.topics import Channel, ParsedTopic, TopicError, parse_topic, site_filter, site_topic

log = structlog.get_logger(__name__)

INGEST_CHANNELS = (
    Channel.EVENT,
    Channel.STATUS,
    Channel.DOOR_STATE,
    Channel.REPLICA_REQUEST,
    Channel.COMMAND_RESULT,
)
SUBSCRIPTIONS = tuple(site_filter(None, channel) for channel in INGEST_CHANNELS)
ACK_CHUNK = 10_000  # Ack.event_ids max_length


# --- pure checks ------------------------------------------------------------------------------------------


class MessageRefusedError(ValueError):
    """A message central will not act on; `reason` is the counter key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def check(topic: str, payload: bytes) -> tuple[ParsedTopic, m.Message]:
    """The topic and decoded message; refused if the topic or payload is bad or speaks for another site."""
    try:
        parsed = parse_topic(topic)
    except TopicError as exc:
        raise MessageRefusedError("bad_topic", str(exc)) from None
    if parsed.channel not in INGEST_CHANNELS:
        raise MessageRefusedError(
            "wrong_direction", f"central does not take {parsed.channel.value!r} messages"
        )
    try:
        message = codec.decode_for_channel(payload, parsed.channel)
    except codec.ProtocolError as exc:
        raise MessageRefusedError(exc.reason.value, str(exc)) from None
    if NUL_ESCAPE in payload:
        message = without_nul(message)
    site = getattr(message, "site", None)
    if site != parsed.site:
        raise MessageRefusedError(
            "site_mismatch", f"message for site {site!r} on the topic of site {parsed.site!r}"
        )
    if isinstance(message, m.DoorState) and message.door != parsed.door:
        raise MessageRefusedError(
            "door_mismatch", f"state of door {message.door!r} on the topic of door {parsed.door!r}"
        )
    return parsed, message


NUL_ESCAPE = b"\\u0000"  # how JSON writes a NUL character inside a string (a raw NUL is not JSON)


def without_nul(message: m.Message) -> m.Message:
    """The message with every NUL character in its texts replaced by U+FFFD.

    PostgreSQL cannot store NUL in text; refusing such an event would leave it unacknowledged, and its agent
    would send it again for ever. A journaled event is a fact: keep it, with the one character it cannot hold
    marked as unreadable."""
    scrubbed = _scrub(msgspec.to_builtins(message))
    return msgspec.convert(scrubbed, type(message), strict=False)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


# --- database functions -----------------------------------------------------------------------------------


def site_ids(session: Session) -> dict[str, int]:
    return dict(session.execute(select(Site.slug, Site.id)).all())


def _existing_persons(session: Session, events: Iterable[m.AgentEvent]) -> set[int]:
    wanted = {
        pid
        for e in events
        if isinstance(e, m.AccessEvent) and (pid := parse_ref(e.person_ref, "p")) is not None
    }
    if not wanted:
        return set()
    return set(session.execute(select(Person.id).where(Person.id.in_(wanted))).scalars())


def _event_row(e: m.AgentEvent, site_id: int, persons: set[int], received_at: datetime) -> dict[str, Any]:
    row: dict[str, Any] = {
        "event_id": str(e.event_id),
        "site_id": site_id,
        "agent_client_id": e.agent,
        "agent_seq": e.seq,
        "device_time": e.device_time,
        "received_at": received_at,
        "door_slug": e.door,
        "credential_ref": None,
        "person_id": None,
        "decision": None,
    }
    if isinstance(e, m.AccessEvent):
        pid = parse_ref(e.person_ref, "p")
        row.update(
            kind=EventKind.ACCESS,
            credential_ref=e.credential_ref,
            person_id=pid if pid in persons else None,
            decision=Decision(e.decision.value),
            reason=e.reason.value,
            data={"method": e.method.value, "person_ref": e.person_ref, "booking_ref": e.booking_ref},
        )
    elif isinstance(e, m.AlarmEvent):
        row.update(
            kind=EventKind.ALARM,
            reason=e.kind.value,
            data={"severity": e.severity.value, "raised": e.raised, "detail": e.detail},
        )
    else:
        row.update(kind=EventKind.SYSTEM, reason=e.kind, data={"detail": e.detail})
    return row


def store_events(
    session: Session,
    events: Sequence[m.AgentEvent],
    site_id_of: Mapping[str, int],
    received_at: datetime,
    rules: CheckinRules | None = None,
) -> set[str]:
    """Insert the events not yet stored (idempotent on event_id); returns the ids inserted now.

    Alarm events inserted now also raise or clear Alarm rows; a granted entry may check a booking in
    (within `rules`' window, default 15/15 min); a duplicate changes nothing.
    """
    unique = list({str(e.event_id): e for e in events}.values())
    if not unique:
        return set()
    persons = _existing_persons(session, unique)
    rows = [_event_row(e, site_id_of[e.site], persons, received_at) for e in unique]
    if session.get_bind().dialect.name == "postgresql":
        inserted = _insert_events_postgresql(session, rows)
    else:
        stmt = insert_ignoring_duplicates(session, Event, ["event_id"]).returning(Event.event_id)
        inserted = set(session.execute(stmt, rows).scalars())
    for e in unique:
        if str(e.event_id) not in inserted:
            continue
        if isinstance(e, m.AlarmEvent):
            _apply_alarm(session, site_id_of[e.site], e)
        elif isinstance(e, m.AccessEvent) and e.booking_ref is not None:
            checkin.check_in_on_entry(session, site_id_of[e.site], e, rules or CheckinRules())
    return inserted


# PostgreSQL gets the whole batch as ONE json parameter (encoded by msgspec) unpacked by json_to_recordset:
# a short statement parsed once, instead of a VALUES list with thousands of placeholders (4x faster at 500).
_EVENT_COLUMNS = {
    "event_id": "varchar",
    "site_id": "integer",
    "agent_client_id": "varchar",
    "agent_seq": "bigint",
    "device_time": "timestamptz",
    "received_at": "timestamptz",
    "kind": "varchar",
    "door_slug": "varchar",
    "credential_ref": "varchar",
    "person_id": "integer",
    "decision": "varchar",
    "reason": "varchar",
    "data": "json",
}
_COLUMN_LIST = ", ".join(_EVENT_COLUMNS)
_RECORDSET = ", ".join(f"{column} {kind}" for column, kind in _EVENT_COLUMNS.items())
# Only the constants above go into the SQL text; the events travel as the bound parameter.
_INSERT_EVENTS_POSTGRESQL = text(
    f"INSERT INTO events ({_COLUMN_LIST}) SELECT {_COLUMN_LIST} "  # noqa: S608
    f"FROM json_to_recordset(CAST(:rows AS json)) AS r({_RECORDSET}) "
    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)
_json = msgspec.json.Encoder()


def _insert_events_postgresql(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    payload = _json.encode(rows).decode()
    return set(session.execute(_INSERT_EVENTS_POSTGRESQL, {"rows": payload}).scalars())


def _door_id(session: Session, site_id: int, slug: str | None) -> int | None:
    if slug is None:
        return None
    stmt = select(Door.id).where(Door.site_id == site_id, Door.slug == slug)
    return session.execute(stmt).scalar_one_or_none()


def _apply_alarm(session: Session, site_id: int, e: m.AlarmEvent) -> None:
    door_id = _door_id(session, site_id, e.door)
    if e.raised:
        session.add(
            Alarm(
                site_id=site_id,
                door_id=door_id,
                kind=e.kind.value,
                severity=AlarmSeverity(e.severity.value),
                raised_at=e.device_time,
                detail=e.detail,
                event_id=str(e.event_id),
            )
        )
        return
    door_match = Alarm.door_id.is_(None) if door_id is None else Alarm.door_id == door_id
    session.execute(
        update(Alarm)
        .where(Alarm.site_id == site_id, Alarm.kind == e.kind.value, door_match, Alarm.cleared_at.is_(None))
        .values(cleared_at=e.device_time)
        .execution_options(synchronize_session=False)
    )


def apply_agent_status(session: Session, site_id: int, status: m.AgentStatus, received_at: datetime) -> Agent:
    """Create or update the site's Agent row. `last_seen_at` is when central heard it: a Last Will's `at`
    is the time the will was registered, not the time the agent went away."""
    agent = session.execute(select(Agent).where(Agent.site_id == site_id)).scalar_one_or_none()
    if agent is None:
        agent = Agent(site_id=site_id, client_id=status.agent)
        session.add(agent)
    agent.client_id = status.agent
    agent.online = status.online
    agent.last_seen_at = received_at
    agent.last_status = msgspec.to_builtins(status)
    if status.replica_seq is not None:
        agent.replica_seq_applied = status.replica_seq
    if status.software_version:
        agent.software_version = status.software_version[:64]
    return agent


def apply_door_state(session: Session, site_id: int, state: m.DoorState) -> bool:
    """Record a door's last state; False if the site has no such door."""
    result = session.execute(
        update(Door)
        .where(Door.site_id == site_id, Door.slug == state.door)
        .values(last_state=state.state.value, last_state_at=state.since)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def store_command_result(
    session: Session, site_id: int, result: m.CommandResult, received_at: datetime
) -> bool:
    """Keep a command's outcome as a system event (its id is the command id); False if already stored."""
    agent = session.execute(select(Agent.client_id).where(Agent.site_id == site_id)).scalar_one_or_none()
    row = {
        "event_id": str(result.command_id),
        "site_id": site_id,
        "agent_client_id": agent or "",
        "agent_seq": 0,
        "device_time": result.at,
        "received_at": received_at,
        "kind": EventKind.SYSTEM,
        "door_slug": None,
        "credential_ref": None,
        "person_id": None,
        "decision": None,
        "reason": f"command_{result.outcome.value}",
        "data": {
            "command_id": str(result.command_id),
            "outcome": result.outcome.value,
            "reason": result.reason,
            "deny_reason": None if result.deny_reason is None else result.deny_reason.value,
        },
    }
    stmt = insert_ignoring_duplicates(session, Event, ["event_id"]).returning(Event.event_id)
    return session.execute(stmt, [row]).first() is not None


_ActedOn = m.CardEnrolment | m.BookingCheckIn | m.BookingChange  # journaled events central acts on


def _claim_event(
    session: Session,
    site_id: int,
    e: _ActedOn,
    received_at: datetime,
    *,
    reason: str,
    door: str | None = None,
    person_id: int | None = None,
) -> bool:
    """Store a journaled event that central acts on as a system event, once: False when it was stored
    before (a resend), so the caller does nothing twice. `_settle_event` records what came of it."""
    row = {
        "event_id": str(e.event_id),
        "site_id": site_id,
        "agent_client_id": e.agent,
        "agent_seq": e.seq,
        "device_time": e.device_time,
        "received_at": received_at,
        "kind": EventKind.SYSTEM,
        "door_slug": door,
        "credential_ref": None,
        "person_id": person_id,
        "decision": None,
        "reason": reason,
        "data": {},
    }
    stmt = insert_ignoring_duplicates(session, Event, ["event_id"]).returning(Event.event_id)
    return session.execute(stmt, [row]).first() is not None


def _settle_event(session: Session, e: _ActedOn, **values: Any) -> None:
    session.execute(
        update(Event)
        .where(Event.event_id == str(e.event_id))
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def store_card_enrolment(
    session: Session, site_id: int, e: m.CardEnrolment, received_at: datetime, uid_key: bytes | None
) -> bool:
    """Register the tapped card if its one-time code is good, and keep the outcome as an event for the
    caretaker (never the code). Exactly once: a resent enrolment finds its event and changes nothing (False).
    Codes are judged by central's clock (`received_at`), not the agent's."""
    if not _claim_event(session, site_id, e, received_at, reason="card_enrolment", door=e.door):
        return False
    if uid_key is None:
        outcome, person_id, credential_id = "unavailable", None, None
    else:
        result = card_enrolment.claim_card_code(
            session, site_id, e.code, e.uid_hash, received_at, uid_key=uid_key
        )
        outcome, person_id, credential_id = result.outcome.value, result.person_id, result.credential_id
    ref = None if credential_id is None else credential_ref(credential_id)
    _settle_event(
        session,
        e,
        reason=f"card_enrolment_{outcome}",
        person_id=person_id,
        credential_ref=ref,
        data={"outcome": outcome, "agent_seq": e.seq},
    )
    log.info("ingest.card_enrolment", site=e.site, door=e.door, outcome=outcome, credential=ref)
    return True


def store_kiosk_event(
    session: Session,
    site_id: int,
    e: m.BookingCheckIn | m.BookingChange,
    received_at: datetime,
    rules: CheckinRules,
) -> bool:
    """Apply a check-in, extension or early end made at the site's kiosk, exactly once (a resent event
    finds its row and changes nothing: False). The agent decided it from its replica, maybe while central
    was unreachable, so it is judged as of the agent's `device_time`. What central refuses (the room was
    booked meanwhile, the booking was cancelled) is kept as a system event for the caretaker, and the
    booking goes into the site's next replica delta so the agent takes back what it did."""
    what = "check_in" if isinstance(e, m.BookingCheckIn) else e.change.value
    person_id = parse_ref(e.person, "p")
    if person_id is not None and session.get(Person, person_id) is None:
        person_id = None
    if not _claim_event(session, site_id, e, received_at, reason=f"kiosk_{what}", person_id=person_id):
        return False
    data: dict[str, Any] = {"booking_ref": e.booking, "agent_seq": e.seq}
    if isinstance(e, m.BookingCheckIn):
        data["method"] = e.method.value
    else:
        data["ends_at"] = e.ends_at.isoformat()
    booking_id = parse_ref(e.booking, "b")
    kind, reason = (EventKind.CHECKIN if what == "check_in" else EventKind.SYSTEM), f"kiosk_{what}"
    try:
        booking = _kiosk_booking(session, site_id, booking_id)
        data["restored"] = _apply_kiosk_event(session, booking, e, rules)
        data["outcome"] = "done"
    except (ConflictError, InvalidError, NotFoundError) as exc:  # for the caretaker's event list
        kind, reason = EventKind.SYSTEM, f"kiosk_{what}_refused"
        data.update(outcome="refused", detail=str(exc)[:300])
        if booking_id is not None and not isinstance(exc, _OtherSiteError):
            replica_log.record_booking_change(session, booking_id)  # the agent's replica is put right
    _settle_event(session, e, kind=kind, reason=reason, data=data)
    log.info("ingest.kiosk", site=e.site, booking=e.booking, what=what, outcome=data["outcome"])
    return True


class _OtherSiteError(NotFoundError):
    """A kiosk named a booking of another site: refused, and that site's replica is none of its business."""


def _kiosk_booking(session: Session, site_id: int, booking_id: int | None) -> Booking:
    booking = None if booking_id is None else session.get(Booking, booking_id)
    if booking is None:
        raise NotFoundError(f"booking {booking_id} does not exist")
    if booking.room.site_id != site_id:
        raise _OtherSiteError(f"booking {booking_id} is not at this site")
    return booking


def _apply_kiosk_event(
    session: Session, booking: Booking, e: m.BookingCheckIn | m.BookingChange, rules: CheckinRules
) -> bool:
    """Carry the kiosk's change out; True if a booking released as a no-show had to be restored first."""
    actor = f"kiosk:{e.site}"
    if isinstance(e, m.BookingChange):
        if e.person is not None and parse_ref(e.person, "p") != booking.holder_id:
            raise ConflictError(f"only the holder of booking {booking.id} may extend or end it")
        if e.change is m.BookingChangeKind.EXTEND:
            booking_changes.extend_booking(session, actor, booking.id, e.ends_at, e.device_time)
        else:
            booking_changes.end_booking_early(session, actor, booking.id, e.device_time)
        return False
    restored = _restore_no_show(session, booking, e.device_time, rules, actor)
    checkin.check_in(session, actor, booking.id, e.device_time, via="kiosk", rules=rules)
    return restored


def _restore_no_show(
    session: Session, booking: Booking, checked_in_at: datetime, rules: CheckinRules, actor: str
) -> bool:
    """A check-in made inside the window reached central only after the no-show sweep released the booking
    (the site was offline): the booking is confirmed again so the check-in counts, unless the room was
    booked again meanwhile."""
    if booking.status is not BookingStatus.NO_SHOW:
        return False
    if refusal(BookingStatus.CONFIRMED, booking.starts_at, checked_in_at, rules) is not None:
        return False  # too late by the agent's own clock too: check_in refuses it as a no-show
    taken = session.scalars(
        select(Booking.id).where(
            Booking.room_id == booking.room_id,
            Booking.id != booking.id,
            Booking.status.in_(LIVE_BOOKING_STATUSES),
            Booking.starts_at < booking.ends_at,
            Booking.ends_at > booking.starts_at,
        )
    ).first()
    if taken is not None:
        raise ConflictError(
            f"booking {booking.id} was released as a no-show and its room booked again (booking {taken})"
        )
    booking.status = BookingStatus.CONFIRMED
    session.flush()
    audit.record(session, actor, "restore_no_show", "booking", booking.id, {"checked_in_at": checked_in_at})
    return True


# --- the worker -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message as paho handed it over; acknowledged to the broker once it is dealt with."""

    topic: str
    payload: bytes
    mid: int
    qos: int


@dataclass(slots=True)
class _Accepted:
    item: Inbound
    topic: ParsedTopic
    message: m.Message


Publish = Callable[[str, bytes], object]
Acks = dict[str, list[uuid.UUID]]  # site -> ids of events now committed
Refusal = tuple[Inbound, str, str]  # message, reason (counter key), detail for the log
Committed = tuple[Acks, list[Refusal]]
BrokerAck = Callable[[int, int], None]
ReplicaRequestHandler = Callable[[m.ReplicaRequest], None]


class IngestWorker:
    """Turns received messages into committed rows, in batches, in its own thread."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        publish: Publish,
        broker_ack: BrokerAck,
        on_replica_request: ReplicaRequestHandler | None = None,
        uid_key: bytes | None = None,
        batch_size: int = 500,
        batch_window_s: float = 0.02,
        checkin_rules: CheckinRules | None = None,
    ) -> None:
        self._sessions = sessions
        self._checkin_rules = checkin_rules or CheckinRules()
        self._publish = publish
        self._broker_ack = broker_ack
        self._on_replica_request = on_replica_request
        self._uid_key = uid_key  # one-time card codes are HMACs under it; without it no card is registered
        self.batch_size = batch_size
        self.batch_window_s = batch_window_s
        self._queue: queue.SimpleQueue[Inbound | None] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._site_ids: dict[str, int] = {}
        self._site_ids_loaded_at = 0.0
        self.refused: Counter[str] = Counter()
        self.received: Counter[str] = Counter()  # by channel ("unknown" if the topic is not ours)
        self.events_inserted = 0
        self.events_duplicate = 0
        self.messages_done = 0
        self.last_commit_at: datetime | None = None

    # --- thread plumbing ---------------------------------------------------------------------------------

    def submit(self, item: Inbound) -> None:
        """Hand over a received message (called in paho's network thread: must be quick)."""
        self._queue.put(item)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="gateway-ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand and stop; what is still queued stays unacknowledged (redelivered)."""
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    def status(self) -> dict[str, Any]:
        return {
            "events_inserted": self.events_inserted,
            "events_duplicate": self.events_duplicate,
            "messages_done": self.messages_done,
            "refused": dict(self.refused),
            "received": dict(self.received),
            "backlog": self.backlog,
            "last_commit_at": self.last_commit_at.isoformat() if self.last_commit_at else None,
        }

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._next_batch()
            if batch:
                try:
                    self.process(batch)
                except Exception as exc:  # a bug must not end ingestion
                    log.error("ingest.batch_failed", error=f"{type(exc).__name__}: {exc}", size=len(batch))
                    self.refused["internal_error"] += len(batch)
                    # Release the broker's in-flight window; the agents resend what got no Ack.
                    for item in batch:
                        self._broker_ack(item.mid, item.qos)

    def _next_batch(self) -> list[Inbound]:
        first = self._queue.get()
        if first is None:
            return []
        batch = [first]
        deadline = time.monotonic() + self.batch_window_s
        while len(batch) < self.batch_size:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # let the loop see the stop after this batch
                break
            batch.append(item)
        return batch

    # --- one batch ---------------------------------------------------------------------------------------

    def process(self, batch: Sequence[Inbound]) -> None:
        """Check, commit and acknowledge one batch (public so tests can drive it without a thread)."""
        accepted: list[_Accepted] = []
        for item in batch:
            try:
                parsed, message = check(item.topic, item.payload)
            except MessageRefusedError as exc:
                self.received[_channel_of(item.topic)] += 1
                self._refuse(item, exc.reason, str(exc))
                continue
            self.received[parsed.channel.value] += 1
            accepted.append(_Accepted(item, parsed, message))
        outcome = self._commit_with_retry(accepted)
        if outcome is None:  # stopping while the database is away: leave it all to redelivery
            return
        acks, refusals = outcome
        for item, reason, detail in refusals:
            self._refuse(item, reason, detail)
        for site, event_ids in acks.items():
            self._send_ack(site, event_ids)
        for item in batch:
            self._broker_ack(item.mid, item.qos)
        self.messages_done += len(batch)

    def _refuse(self, item: Inbound, reason: str, detail: str) -> None:
        self.refused[reason] += 1
        log.warning("ingest.refused", reason=reason, topic=item.topic[:200], detail=detail[:300])

    def _load_sites(self, wanted: set[str]) -> None:
        """Site slug -> id, reloaded (at most once a second) when a message names a site not known yet."""
        if wanted - self._site_ids.keys() and time.monotonic() - self._site_ids_loaded_at > 1.0:
            with self._sessions() as session:
                self._site_ids = site_ids(session)
            self._site_ids_loaded_at = time.monotonic()

    def _commit_with_retry(self, accepted: list[_Accepted]) -> Committed | None:
        delay = 0.5
        while True:
            try:
                return self._commit(accepted)
            except (OperationalError, InterfaceError) as exc:
                if self._stop.is_set():
                    return None
                log.warning("ingest.database_unavailable", error=_db_error(exc), retry_in_s=delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 10.0)
            except SQLAlchemyError as exc:
                log.warning("ingest.batch_refused_by_database", error=_db_error(exc), size=len(accepted))
                return self._commit_one_by_one(accepted)

    def _commit(self, accepted: Sequence[_Accepted]) -> Committed:
        """One transaction for the batch; refusals are counted by the caller, after the commit."""
        self._load_sites({a.topic.site for a in accepted})
        refusals: list[Refusal] = []
        known = []
        for a in accepted:
            if a.topic.site in self._site_ids:
                known.append(a)
            else:
                refusals.append((a.item, "unknown_site", f"no site {a.topic.site!r} in the database"))
        received_at = utcnow()
        with self._sessions() as session, session.begin():
            acks, requests, inserted = self._apply(session, known, received_at, refusals)
        self.last_commit_at = received_at
        self.events_inserted += inserted
        self.events_duplicate += sum(map(len, acks.values())) - inserted
        for request in requests:
            self._dispatch_request(request)
        return acks, refusals

    def _commit_one_by_one(self, accepted: Sequence[_Accepted]) -> Committed:
        """After the database refused a batch: each message alone, so only the poisonous one is lost."""
        acks: Acks = {}
        refusals: list[Refusal] = []
        for a in accepted:
            try:
                one_acks, one_refusals = self._commit([a])
            except SQLAlchemyError as exc:
                refusals.append((a.item, "db_error", _db_error(exc)))
                continue
            refusals += one_refusals
            for site, ids in one_acks.items():
                acks.setdefault(site, []).extend(ids)
        return acks, refusals

    def _apply(
        self, session: Session, accepted: Sequence[_Accepted], received_at: datetime, refusals: list[Refusal]
    ) -> tuple[Acks, list[m.ReplicaRequest], int]:
        events: list[m.AgentEvent] = []
        requests: list[m.ReplicaRequest] = []
        enrolments: list[m.CardEnrolment] = []
        kiosk: list[m.KioskEvent] = []
        enrolled = 0
        for a in accepted:
            msg, site_id = a.message, self._site_ids[a.topic.site]
            if isinstance(msg, m.AccessEvent | m.AlarmEvent | m.SystemEvent):
                events.append(msg)
            elif isinstance(msg, m.AgentStatus):
                apply_agent_status(session, site_id, msg, received_at)
            elif isinstance(msg, m.DoorState):
                if not apply_door_state(session, site_id, msg):
                    refusals.append((a.item, "unknown_door", f"no door {msg.door!r} at site {msg.site!r}"))
            elif isinstance(msg, m.CommandResult):
                store_command_result(session, site_id, msg, received_at)
                log.info(
                    "ingest.command_result",
                    site=msg.site,
                    command_id=str(msg.command_id),
                    outcome=msg.outcome,
                )
            elif isinstance(msg, m.ReplicaRequest):
                requests.append(msg)
            elif isinstance(msg, m.CardEnrolment):
                enrolled += store_card_enrolment(session, site_id, msg, received_at, self._uid_key)
                enrolments.append(msg)
            elif isinstance(msg, m.BookingCheckIn | m.BookingChange):
                enrolled += store_kiosk_event(session, site_id, msg, received_at, self._checkin_rules)
                kiosk.append(msg)
        inserted = store_events(session, events, self._site_ids, received_at, self._checkin_rules)
        acks: Acks = {}
        for e in {e.event_id: e for e in [*events, *enrolments, *kiosk]}.values():
            acks.setdefault(e.site, []).append(e.event_id)
        return acks, requests, len(inserted) + enrolled

    def _dispatch_request(self, request: m.ReplicaRequest) -> None:
        log.info("ingest.replica_request", site=request.site, agent=request.agent, have_seq=request.have_seq)
        if self._on_replica_request is not None:
            self._on_replica_request(request)

    def _send_ack(self, site: str, event_ids: list[uuid.UUID]) -> None:
        unique = list(dict.fromkeys(event_ids))
        for start in range(0, len(unique), ACK_CHUNK):
            ack = m.Ack(site=site, event_ids=unique[start : start + ACK_CHUNK])
            self._publish(site_topic(site, Channel.ACK), codec.encode(ack))


def _channel_of(topic: str) -> str:
    """The channel a refused message came on, for counting (parsed again only for refusals)."""
    try:
        return parse_topic(topic).channel.value
    except TopicError:
        return "unknown"


def _db_error(exc: SQLAlchemyError) -> str:
    """A one-line reason without the SQL statement and its parameters (they may hold hashes)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc.orig).__name__}: {str(exc.orig).splitlines()[0][:200]}"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
