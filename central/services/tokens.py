"""Phone tokens: signed QR codes that let a person through named doors or zones of one site for a while.

A token is signed with the active key from central.keystore and verified offline by the site agent, so
central only remembers what it issued (IssuedToken) in order to revoke a token before it expires; the
gateway publishes the revocation list. The token text itself is returned once and never stored or logged.

A token for a resident's own phone is bound to it: `TokenRequest.holder_key` is the phone's P-256 public key
(the phone page sends what WebCrypto exports) and goes into the token's cnf claim. The agent then wants a
fresh signature of the phone with the code (protocol/holder.py) and judges the holder by their own rules;
`Issued.proof_context` is what the page needs to make those signatures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.db import utcnow
from central.keystore import KeystoreError, load_signing_key
from central.models import Booking, Credential, CredentialKind, CredentialStatus, IssuedToken, Site
from central.replica import booking_ref, person_ref
from central.services import audit
from central.services.errors import ConflictError, InvalidError, NotFoundError, UnavailableError
from central.services.people import get_person
from central.services.query import Slice, paginate
from central.services.sites import door_for_field, get_site, zone_for_field
from protocol.holder import proof_context
from protocol.token import TokenClaims, compressed_p256, issue_token


@dataclass(frozen=True)
class TokenRequest:
    site: str
    minutes: int
    doors: Sequence[str] = ()
    zones: Sequence[str] = ()
    booking_id: int | None = None
    starts_at: datetime | None = None
    holder_key: bytes | None = None  # the phone's P-256 public key (33 or 65 bytes): binds the token to it


@dataclass(frozen=True)
class Issued:
    """The record kept, the claims signed, and the text for the QR code (shown once)."""

    record: IssuedToken
    claims: TokenClaims
    text: str

    @property
    def proof_context(self) -> bytes | None:
        """For a phone-bound token, the bytes the phone page signs (with each 30-s step appended)."""
        return None if self.claims.holder_key is None else proof_context(self.text)


def _has_active_phone(session: Session, person_id: int, at: datetime) -> bool:
    phones = session.scalars(
        select(Credential).where(
            Credential.person_id == person_id,
            Credential.kind == CredentialKind.PHONE,
            Credential.status == CredentialStatus.ACTIVE,
        )
    )
    return any(c.valid_from <= at and (c.valid_until is None or at < c.valid_until) for c in phones)


def _booking_at_site(session: Session, booking_id: int, site_id: int, person_id: int) -> Booking:
    booking = session.get(Booking, booking_id)
    if booking is None:
        raise InvalidError(f"booking {booking_id} does not exist", "booking_id")
    if booking.room.site_id != site_id:
        raise InvalidError(f"booking {booking_id} is for another site", "booking_id")
    if booking.holder_id != person_id and all(p.id != person_id for p in booking.co_holders):
        raise InvalidError(
            f"booking {booking_id} is not held or co-held by person {person_id}", "booking_id"
        )
    return booking


def issue(
    session: Session, actor: str, person_id: int, request: TokenRequest, *, data_dir: Path, issuer: str
) -> Issued:
    """Check the person, site, doors/zones and booking, sign a token and remember it."""
    person = get_person(session, person_id)
    now = utcnow()
    if person.blocked:
        raise ConflictError(f"person {person_id} is blocked; unblock them before issuing a token")
    if not _has_active_phone(session, person.id, now):
        raise ConflictError(
            f"person {person_id} has no active phone credential; "
            f"register one with POST /people/{person_id}/phones"
        )
    site = get_site(session, request.site)
    for index, slug in enumerate(request.doors):
        door_for_field(session, site, slug, f"doors.{index}")
    for index, slug in enumerate(request.zones):
        zone_for_field(session, site, slug, f"zones.{index}")
    if not request.doors and not request.zones:
        raise InvalidError("a token must name at least one door or zone", "doors")
    holder_key = _holder_key(request.holder_key)
    booking = None
    if request.booking_id is not None:
        booking = _booking_at_site(session, request.booking_id, site.id, person.id)
    starts = request.starts_at or now
    claims = TokenClaims(
        issuer=issuer,
        holder=person_ref(person.id),
        site=site.slug,
        not_before=starts,
        expires=starts + timedelta(minutes=request.minutes),
        doors=tuple(request.doors),
        zones=tuple(request.zones),
        booking=None if booking is None else booking_ref(booking.id),
        holder_key=holder_key,
    )
    text = sign(claims, data_dir)
    detail = {"doors": list(request.doors), "zones": list(request.zones), "expires_at": claims.expires}
    record = remember(
        session,
        actor,
        person.id,
        site,
        claims,
        now,
        booking_id=None if booking is None else booking.id,
        **detail,
    )
    return Issued(record=record, claims=claims, text=text)


def sign(claims: TokenClaims, data_dir: Path) -> str:
    """The token text for `claims`, signed with central's active key; UnavailableError without one."""
    try:
        key = load_signing_key(data_dir)
    except KeystoreError as exc:
        raise UnavailableError(f"phone tokens cannot be signed: {exc}") from None
    return issue_token(claims, key.private_key, key.kid)


def remember(
    session: Session,
    actor: str,
    person_id: int,
    site: Site,
    claims: TokenClaims,
    now: datetime,
    *,
    booking_id: int | None = None,
    **detail: Any,
) -> IssuedToken:
    """Keep what was issued (never the text: only its id, so it can be revoked) and audit it."""
    record = IssuedToken(
        person_id=person_id,
        site=site,
        booking_id=booking_id,
        token_id=claims.token_id_hex,
        issued_at=now,
        expires_at=claims.expires,
    )
    session.add(record)
    session.flush()
    audit.record(
        session,
        actor,
        "issue_token",
        "person",
        person_id,
        {
            "token_id": claims.token_id_hex,
            "site": site.slug,
            **detail,
            "phone_bound": claims.holder_key is not None,
        },
    )
    return record


def _holder_key(point: bytes | None) -> bytes | None:
    if point is None:
        return None
    try:
        return compressed_p256(point)
    except ValueError as exc:
        raise InvalidError(str(exc), "holder_key") from None


def list_tokens(session: Session, person_id: int, *, limit: int, offset: int) -> Slice[IssuedToken]:
    get_person(session, person_id)
    stmt = select(IssuedToken).where(IssuedToken.person_id == person_id)
    return paginate(
        session, stmt.order_by(IssuedToken.issued_at.desc(), IssuedToken.id.desc()), limit, offset
    )


def get_token(session: Session, token_id: str) -> IssuedToken:
    record = session.scalars(select(IssuedToken).where(IssuedToken.token_id == token_id)).one_or_none()
    if record is None:
        raise NotFoundError(f"token {token_id} was not issued here")
    return record


def revoke(session: Session, actor: str, token_id: str) -> IssuedToken:
    """Revoke a token before it expires (the gateway sends the new revocation list); idempotent."""
    record = get_token(session, token_id)
    if record.revoked_at is None:
        record.revoked_at = utcnow()
        session.flush()
        audit.record(session, actor, "revoke_token", "person", record.person_id, {"token_id": token_id})
    return record
