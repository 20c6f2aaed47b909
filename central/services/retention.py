"""Apply retention (central.retention) to the database with set-based statements, so a million due events
take a handful of UPDATEs, not a million ORM loads.

Idempotent: what is already pseudonymised, deleted or cleared is not due any more, so a second run counts
zeros. A run that changed something is audited with its counts only (never with personal data).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    ColumnElement,
    MetaData,
    String,
    Table,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from central.config import Settings, read_or_create_secret
from central.models import REF, Alarm, AuditLog, Booking, BookingCoHolder, Event
from central.retention import (
    PSEUDONYM_KEY_BYTES,
    PSEUDONYM_KEY_FILE,
    PSEUDONYM_PREFIX,
    Cutoffs,
    cutoffs,
    pseudonym,
)
from central.services import audit

ACTOR = "system:retention"


@dataclass(frozen=True)
class RetentionReport:
    events_pseudonymised: int = 0
    alarms_deleted: int = 0
    bookings_cleared: int = 0
    audit_deleted: int = 0

    @property
    def changed(self) -> bool:
        return any(asdict(self).values())

    def summary(self) -> str:
        return (
            f"Retention: {self.events_pseudonymised} events pseudonymised, {self.alarms_deleted} alarms "
            f"deleted, {self.bookings_cleared} bookings cleared, {self.audit_deleted} audit entries deleted"
        )


def pseudonym_key(settings: Settings) -> bytes:
    """The HMAC key for event pseudonyms; made on first use and kept so pseudonyms stay stable."""
    return read_or_create_secret(settings.secrets_dir / PSEUDONYM_KEY_FILE, PSEUDONYM_KEY_BYTES)


def _count(result: object) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


# An access event's data names the person and the booking (wire references "p42", "b7"): identifying too.
_REFS_IN_DATA = ("person_ref", "booking_ref")


def _identified() -> ColumnElement[bool]:
    """Events still naming a person (directly, in their data, or by a real credential reference)."""
    return or_(
        Event.person_id.is_not(None),
        Event.credential_ref.is_not(None) & Event.credential_ref.not_like(PSEUDONYM_PREFIX + "%"),
        *(Event.data[key].as_string().is_not(None) for key in _REFS_IN_DATA),
    )


def _data_without_refs(session: Session) -> ColumnElement[Any]:
    """The event's data minus the person and booking references, in the database's own JSON dialect."""
    if session.get_bind().dialect.name == "postgresql":
        removed = " - ".join(f"'{key}'" for key in _REFS_IN_DATA)
        return literal_column(f"(events.data::jsonb - {removed})::json", JSON)
    return func.json_remove(Event.data, *(f"$.{key}" for key in _REFS_IN_DATA))


# Filled per run with (reference, pseudonym) so one UPDATE rewrites every due event in a single pass: one
# UPDATE per reference would scan the events table once per card.
_PSEUDONYMS = Table(
    "retention_pseudonyms",
    MetaData(),
    Column("old", String(REF), primary_key=True),
    Column("new", String(REF), nullable=False),
    prefixes=["TEMPORARY"],
)


def pseudonymise_events(session: Session, key: bytes, *conditions: ColumnElement[bool]) -> int:
    """Drop person_id and replace credential_ref by its pseudonym on the identified events matching.

    Set-based: a count, the distinct references (one per card, a few thousand at most) and one UPDATE.
    """
    due = [_identified(), *conditions]
    count = session.scalar(select(func.count()).select_from(Event).where(*due)) or 0
    if not count:
        return 0
    refs = session.scalars(
        select(Event.credential_ref)
        .distinct()
        .where(*due, Event.credential_ref.not_like(PSEUDONYM_PREFIX + "%"))
    ).all()
    pairs = [{"old": r, "new": pseudonym(key, r)} for r in refs if r is not None]
    connection = session.connection()
    _PSEUDONYMS.create(connection)  # a failure rolls the transaction back, and the table with it
    if pairs:
        connection.execute(insert(_PSEUDONYMS), pairs)
    pseudonym_of = select(_PSEUDONYMS.c.new).where(_PSEUDONYMS.c.old == Event.credential_ref)
    session.execute(
        update(Event)
        .where(*due)
        .values(
            credential_ref=func.coalesce(pseudonym_of.scalar_subquery(), Event.credential_ref),
            person_id=None,
            data=_data_without_refs(session),
        )
        .execution_options(synchronize_session=False)
    )
    _PSEUDONYMS.drop(connection)
    return int(count)


def _clear_bookings(session: Session, cutoff: datetime) -> int:
    ended = Booking.ends_at < cutoff
    named = select(BookingCoHolder.booking_id).join(Booking, Booking.id == BookingCoHolder.booking_id)
    co_held = set(session.scalars(named.where(ended)).all())
    session.execute(
        delete(BookingCoHolder)
        .where(BookingCoHolder.booking_id.in_(select(Booking.id).where(ended)))
        .execution_options(synchronize_session=False)
    )
    personal = or_(Booking.holder_id.is_not(None), Booking.organisation.is_not(None), Booking.title != "")
    ids = set(session.scalars(select(Booking.id).where(ended, personal)).all())
    session.execute(
        update(Booking)
        .where(ended, personal)
        .values(holder_id=None, organisation=None, title="", checkin_code=None)
        .execution_options(synchronize_session=False)
    )
    return len(ids | co_held)


def apply_retention(session: Session, settings: Settings, now: datetime) -> RetentionReport:
    """Pseudonymise, delete and clear whatever retention makes due at `now`; audit the counts."""
    due: Cutoffs = cutoffs(settings, now)
    report = RetentionReport(
        events_pseudonymised=pseudonymise_events(
            session, pseudonym_key(settings), Event.device_time < due.events
        ),
        alarms_deleted=_count(
            session.execute(
                delete(Alarm).where(Alarm.raised_at < due.alarms).execution_options(synchronize_session=False)
            )
        ),
        bookings_cleared=_clear_bookings(session, due.bookings),
        audit_deleted=_count(
            session.execute(
                delete(AuditLog).where(AuditLog.at < due.audit).execution_options(synchronize_session=False)
            )
        ),
    )
    if report.changed:
        audit.record(session, ACTOR, "retention", "retention", None, asdict(report)).at = now
    session.flush()
    session.expire_all()
    return report
