"""Credentials: library cards (with an optional PIN) and phones.

A card's UID is never stored: only its keyed hash (central.security.card_uid_hash with the installation's
key), and the PIN only as an argon2 hash. Nothing here returns either hash to a caller. Revoking is final
(a revoked card stays revoked; register it again to reuse it); blocking is reversible.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.db import utcnow
from central.models import Credential, CredentialKind, CredentialStatus, Person
from central.security import card_uid_hash, hash_pin
from central.services import audit, replica_log
from central.services.errors import ConflictError, InvalidError, NotFoundError
from central.services.people import get_person
from central.services.query import Slice, changed_fields, paginate
from protocol import messages as m


def get_credential(session: Session, credential_id: int) -> Credential:
    credential = session.get(Credential, credential_id)
    if credential is None:
        raise NotFoundError(f"credential {credential_id} does not exist")
    return credential


def list_credentials(
    session: Session,
    *,
    limit: int,
    offset: int,
    person_id: int | None = None,
    kind: CredentialKind | None = None,
    status: CredentialStatus | None = None,
) -> Slice[Credential]:
    stmt = select(Credential)
    if person_id is not None:
        stmt = stmt.where(Credential.person_id == person_id)
    if kind is not None:
        stmt = stmt.where(Credential.kind == kind)
    if status is not None:
        stmt = stmt.where(Credential.status == status)
    return paginate(session, stmt.order_by(Credential.id), limit, offset)


def _check_validity(valid_from: datetime | None, valid_until: datetime | None) -> None:
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        raise InvalidError("valid_until must be after valid_from", "valid_until")


def _changed(session: Session, actor: str, action: str, credential: Credential, **detail: Any) -> None:
    session.flush()
    replica_log.record_credential_change(session, credential.id)
    audit.record(
        session, actor, action, "credential", credential.id, {"person": credential.person_id, **detail}
    )


def register_card(
    session: Session,
    actor: str,
    person_id: int,
    *,
    uid: str,
    uid_key: bytes,
    pin: str | None = None,
    label: str = "",
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
) -> Credential:
    """Register a card for a person: only the keyed UID hash and the argon2 PIN hash are stored."""
    person = get_person(session, person_id)
    _check_validity(valid_from, valid_until)
    uid_hash = card_uid_hash(uid, uid_key)
    clash = session.scalars(select(Credential).where(Credential.uid_hash == uid_hash)).one_or_none()
    if clash is not None:
        raise ConflictError(
            f"this card is already registered (credential {clash.id} of person {clash.person_id}, "
            f"status {clash.status.value})"
        )
    credential = Credential(
        person=person,
        kind=CredentialKind.CARD,
        uid_hash=uid_hash,
        pin_hash=None if pin is None else hash_pin(pin),
        label=label,
        valid_from=valid_from or utcnow(),
        valid_until=valid_until,
    )
    session.add(credential)
    _changed(session, actor, "register_card", credential, label=label, pin=pin is not None)
    return credential


def register_phone(
    session: Session,
    actor: str,
    person_id: int,
    *,
    label: str = "",
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
) -> Credential:
    """A phone credential: the person may be issued signed tokens (QR codes) for visits."""
    person = get_person(session, person_id)
    _check_validity(valid_from, valid_until)
    credential = Credential(
        person=person,
        kind=CredentialKind.PHONE,
        label=label,
        valid_from=valid_from or utcnow(),
        valid_until=valid_until,
    )
    session.add(credential)
    _changed(session, actor, "register_phone", credential, label=label)
    return credential


def update_credential(
    session: Session, actor: str, credential_id: int, changes: dict[str, Any]
) -> Credential:
    """Change label or validity window."""
    credential = get_credential(session, credential_id)
    _check_validity(
        changes.get("valid_from", credential.valid_from), changes.get("valid_until", credential.valid_until)
    )
    diff = changed_fields(credential, changes)
    if diff:
        _changed(session, actor, "update", credential, **diff)
    return credential


def _require_live(credential: Credential, doing: str) -> None:
    if credential.status is CredentialStatus.REVOKED:
        raise ConflictError(
            f"credential {credential.id} is revoked and cannot be {doing}; register a new one"
        )


def set_pin(session: Session, actor: str, credential_id: int, pin: str | None) -> Credential:
    """Set a new PIN (or none) on a card; also clears the count of wrong PIN attempts."""
    credential = get_credential(session, credential_id)
    if credential.kind is not CredentialKind.CARD:
        raise ConflictError(f"credential {credential_id} is a {credential.kind.value}; only cards have a PIN")
    _require_live(credential, "given a new PIN")
    credential.pin_hash = None if pin is None else hash_pin(pin)
    credential.failed_pin_count = 0
    _changed(session, actor, "reset_pin" if pin is not None else "remove_pin", credential)
    return credential


def block(session: Session, actor: str, credential_id: int) -> Credential:
    credential = get_credential(session, credential_id)
    _require_live(credential, "blocked")
    if credential.status is not CredentialStatus.BLOCKED:
        credential.status = CredentialStatus.BLOCKED
        _changed(session, actor, "block", credential)
    return credential


def unblock(session: Session, actor: str, credential_id: int) -> Credential:
    credential = get_credential(session, credential_id)
    _require_live(credential, "unblocked")
    if credential.status is not CredentialStatus.ACTIVE:
        credential.status = CredentialStatus.ACTIVE
        credential.failed_pin_count = 0
        _changed(session, actor, "unblock", credential)
    return credential


def revoke(session: Session, actor: str, credential_id: int) -> Credential:
    """Revoke for good (lost or stolen card). Revoking twice changes nothing."""
    credential = get_credential(session, credential_id)
    if credential.status is not CredentialStatus.REVOKED:
        credential.status = CredentialStatus.REVOKED
        credential.revoked_at = utcnow()
        _changed(session, actor, "revoke", credential)
    return credential


def lookup_card(session: Session, uid: str, uid_key: bytes) -> tuple[Credential, Person]:
    """The card credential with this UID (compared by keyed hash), and its holder."""
    uid_hash = card_uid_hash(uid, uid_key)
    credential = session.scalars(select(Credential).where(Credential.uid_hash == uid_hash)).one_or_none()
    if credential is None:
        raise NotFoundError("no credential is registered for this card")
    return credential, credential.person


def phone_refusal(credentials: Iterable[Credential], now: datetime) -> m.Reason | None:
    """None if one of the person's phone credentials is usable at `now`, else why none is (the first
    phone's reason; `unknown_credential` when they have no phone credential at all)."""
    reasons = []
    for phone in (c for c in credentials if c.kind is CredentialKind.PHONE):
        if phone.status is CredentialStatus.REVOKED:
            reasons.append(m.Reason.CREDENTIAL_REVOKED)
        elif phone.status is CredentialStatus.BLOCKED:
            reasons.append(m.Reason.CREDENTIAL_BLOCKED)
        elif now < phone.valid_from:
            reasons.append(m.Reason.CREDENTIAL_NOT_YET_VALID)
        elif phone.valid_until is not None and now >= phone.valid_until:
            reasons.append(m.Reason.CREDENTIAL_EXPIRED)
        else:
            return None
    return reasons[0] if reasons else m.Reason.UNKNOWN_CREDENTIAL
