"""A person's rights over their data (export and erasure on request) and the data inventory for the
municipality's DPIA: what central stores, why, for how long (from the retention settings) and where.

Export never includes secrets (card UID hashes, PIN hashes, code hashes, phone public keys' raw bytes are
not secret but not useful either: they are left out). Erasure deletes the person and everything that names
them, keeps their access events only pseudonymised (statistics), and tells the sites through the replica log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from central.config import Settings
from central.models import (
    AuditLog,
    Booking,
    BookingCoHolder,
    Credential,
    Event,
    IssuedToken,
    PhoneKey,
    Room,
    Site,
    TermsAcceptance,
)
from central.replica import credential_ref, person_ref
from central.services import audit, replica_log
from central.services.people import get_person
from central.services.retention import pseudonym_key, pseudonymise_events

_PERSON_FIELDS = (
    "id", "kind", "display_name", "email", "phone", "organisation", "birth_year", "birth_date",
    "guardian_consent", "guardian_consent_at", "guardian_consent_by", "blocked", "external_ref",
    "oidc_issuer", "oidc_subject", "enrolled_at", "created_at",
)  # fmt: skip
_CREDENTIAL_FIELDS = (
    "id",
    "kind",
    "status",
    "label",
    "valid_from",
    "valid_until",
    "created_at",
    "revoked_at",
)


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _fields(row: object, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: _plain(getattr(row, name, None)) for name in names}


def _about(person_id: int) -> ColumnElement[bool]:
    """Audit entries about the person, or made by them as a signed-in resident."""
    return or_(
        (AuditLog.entity == "person") & (AuditLog.entity_id == str(person_id)),
        AuditLog.actor == f"resident:{person_id}",
    )


def _their_events(person_id: int, credential_ids: list[int]) -> ColumnElement[bool]:
    refs = [credential_ref(c) for c in credential_ids]
    return or_(
        Event.person_id == person_id,
        Event.credential_ref.in_(refs),
        Event.data["person_ref"].as_string() == person_ref(person_id),
    )


def _bookings(session: Session, person_id: int) -> list[dict[str, Any]]:
    co_held = select(BookingCoHolder.booking_id).where(BookingCoHolder.person_id == person_id)
    rows = session.execute(
        select(Booking, Room.name, Site.slug)
        .join(Room, Room.id == Booking.room_id)
        .join(Site, Site.id == Room.site_id)
        .where(or_(Booking.holder_id == person_id, Booking.id.in_(co_held)))
        .order_by(Booking.starts_at, Booking.id)
    )
    return [
        {
            "id": b.id,
            "role": "holder" if b.holder_id == person_id else "co_holder",
            "site": site,
            "room": room,
            "title": b.title,
            "organisation": b.organisation,
            "starts_at": _plain(b.starts_at),
            "ends_at": _plain(b.ends_at),
            "status": _plain(b.status),
            "checked_in_at": _plain(b.checked_in_at),
        }
        for b, room, site in rows
    ]


def _events(session: Session, person_id: int, credential_ids: list[int]) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Event, Site.slug)
        .join(Site, Site.id == Event.site_id)
        .where(_their_events(person_id, credential_ids))
        .order_by(Event.device_time, Event.id)
    )
    names = ("event_id", "kind", "door_slug", "credential_ref", "decision", "reason", "device_time")
    return [{"site": site, **_fields(e, names)} for e, site in rows]


def export_person(session: Session, person_id: int) -> dict[str, Any]:
    """Everything central holds about one person, as JSON-able data (the right of access, GDPR art. 15)."""
    person = get_person(session, person_id)
    credentials = list(session.scalars(select(Credential).where(Credential.person_id == person_id)))
    credential_ids = [c.id for c in credentials]
    tokens = session.scalars(select(IssuedToken).where(IssuedToken.person_id == person_id))
    keys = session.scalars(select(PhoneKey).where(PhoneKey.person_id == person_id))
    terms = session.scalars(select(TermsAcceptance).where(TermsAcceptance.person_id == person_id))
    entries = session.scalars(select(AuditLog).where(_about(person_id)).order_by(AuditLog.at, AuditLog.id))
    return {
        "person": _fields(person, _PERSON_FIELDS),
        "credentials": [_fields(c, _CREDENTIAL_FIELDS) for c in credentials],
        "groups": [{"slug": g.slug, "name": g.name} for g in person.groups],
        "bookings": _bookings(session, person_id),
        "events": _events(session, person_id, credential_ids),
        "issued_tokens": [
            _fields(t, ("token_id", "booking_id", "issued_at", "expires_at", "revoked_at")) for t in tokens
        ],
        "phone_keys": [_fields(k, ("id", "label", "created_at", "last_used_at", "revoked_at")) for k in keys],
        "terms_acceptances": [_fields(t, ("version", "accepted_at")) for t in terms],
        "audit": [_fields(a, ("at", "actor", "action", "entity", "entity_id", "detail")) for a in entries],
    }


def erase_person(session: Session, settings: Settings, actor: str, person_id: int, now: datetime) -> int:
    """Erase a person on request (GDPR art. 17): their events are pseudonymised, the person, their
    credentials, tokens, keys and co-holdings deleted, their bookings kept without a holder; the sites drop
    their credentials with the next replica delta. Returns how many events were pseudonymised."""
    person = get_person(session, person_id)
    credential_ids = list(session.scalars(select(Credential.id).where(Credential.person_id == person_id)))
    events = pseudonymise_events(session, pseudonym_key(settings), _their_events(person_id, credential_ids))
    replica_log.record_person_change(session, person.id)
    session.delete(person)
    session.flush()
    audit.record(session, actor, "erase", "person", person_id, {"events_pseudonymised": events}).at = now
    session.expire_all()
    return events


@dataclass(frozen=True)
class DataKind:
    """One kind of data in the inventory."""

    kind: str
    stored_in: str  # table(s)
    what: str
    why: str
    kept: str
    where: str


def data_inventory(settings: Settings) -> list[DataKind]:
    """What central and the agents store about people, why, for how long and where (for the DPIA)."""
    central = "central database"
    return [
        DataKind(
            "person", "persons, group_members", "name, kind, e-mail, phone, organisation, birth year "
            "or date, guardian consent, blocked, external and sign-in (OIDC) ids",
            "to decide who may enter and to reach them about their access",
            "until the person is deleted or erased on request", central,
        ),
        DataKind(
            "credential", "credentials, phone_keys, card_enrolment_codes, issued_tokens",
            "keyed hash of the card UID, argon2 hash of the PIN, phone public keys, one-time code hashes, "
            "issued QR token ids", "to check a card, PIN or phone at the door",
            "until revoked and deleted, or the person is erased",
            f"{central}; agent replica (valid credentials only) while valid",
        ),
        DataKind(
            "identified access event", "events",
            "time, site, door, decision and reason with the person and card reference",
            "security (who opened which door) and the caretaker's follow-up of incidents",
            f"{settings.event_retention_days} days identified, then pseudonymised (kept for statistics)",
            f"{central}; agent journal until central acknowledges it",
        ),
        DataKind(
            "alarm", "alarms, alarm_notifications, noticed_alarms, notification_outbox",
            "door, kind, severity, times, who acknowledged and their comment; what was sent to the "
            "caretaker on call (site, door, kind, time: no names; addresses come from the settings)",
            "to act on forced or held-open doors and offline sites",
            f"{settings.alarm_retention_days} days, then deleted", central,
        ),
        DataKind(
            "booking", "bookings, booking_co_holders, webhook_outbox",
            "room, times, status, holder, co-holders, organisation, title, check-in time",
            "to let the booking's people in and to count room use",
            f"{settings.booking_retention_days} days after it ended, then without holder, co-holders, "
            "organisation and title (room, times and status kept for statistics)",
            f"{central}; agent replica while the booking is live",
        ),
        DataKind(
            "terms acceptance", "terms_acceptances", "which version of the agreement and when",
            "proof that the person accepted the meråpent agreement",
            "until the person is deleted or erased on request", central,
        ),
        DataKind(
            "audit", "audit_log", "who changed what and when (contact details only as '(changed)')",
            "accountability for every administrative change",
            f"{settings.audit_retention_days} days, then deleted", central,
        ),
    ]  # fmt: skip
