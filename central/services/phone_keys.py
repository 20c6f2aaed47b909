"""Phone keys and the holder-bound QR tickets made for them (protocol/holder.py says why and how).

A phone registers the public half of a P-256 key pair it made with WebCrypto (the private half cannot leave
the browser). For a site, central then issues a short-lived token bound to that key (the cnf claim) and
naming the zones the person may use there today: the *ticket*. The phone signs each 30-second time step
over the ticket's proof context, and central turns token + step + signature into the QR text.

The token text is never stored or logged. Central keeps what it keeps for any token (an IssuedToken row, so
it can be revoked), and the phone's session keeps a `TicketRef` (token id, phone key id, zones: nothing
secret). Ed25519 signatures and canonical CBOR are deterministic, so the token is signed again from those
facts whenever the phone asks for a QR code; after a key rotation it comes out different, the proof no
longer matches, and the phone fetches a new ticket.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central.keystore import load_public_keys
from central.models import MAX_PHONE_KEYS, IssuedToken, PhoneKey
from central.replica import person_ref
from central.services import audit, tokens
from central.services.errors import ConflictError, InvalidError
from central.services.people import get_person
from central.services.sites import get_site
from protocol.holder import TIME_STEP_SECONDS, present, proof_context, verify_presentation
from protocol.token import TokenClaims, TokenError, compressed_p256

TICKET_LIFETIME = timedelta(minutes=10)
LABEL_CHARS = 200


class PhoneKeyRevokedError(ConflictError):
    """This phone's key was withdrawn (or pushed out by newer phones): the phone must make a new one."""


class TicketError(ConflictError):
    """The ticket cannot make a QR code any more (expired, revoked, signed with a rotated key, or the proof
    does not fit it): the phone should fetch a new ticket."""


@dataclass(frozen=True)
class TicketRef:
    """What the phone's session remembers of its ticket: enough to sign the same token again, no secret."""

    site: str
    token_id: str
    key_id: int
    zones: tuple[str, ...]

    def to_session(self) -> dict[str, Any]:
        zones = list(self.zones)
        return {"site": self.site, "token_id": self.token_id, "key_id": self.key_id, "zones": zones}

    @classmethod
    def from_session(cls, data: object) -> TicketRef | None:
        if not isinstance(data, Mapping):
            return None
        try:
            return cls(str(data["site"]), str(data["token_id"]), int(data["key_id"]), tuple(data["zones"]))
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Ticket:
    ref: TicketRef
    context: bytes  # protocol.holder.proof_context of the token: what the phone signs, with the step
    not_before: datetime
    expires_at: datetime
    step_seconds: int = TIME_STEP_SECONDS


# First match wins: Edge and Samsung's browser also say "Chrome/", Chrome also says "Safari/".
_BROWSERS = (
    ("Edg/", "Edge"),
    ("Firefox/", "Firefox"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Mac OS X", "Mac"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def phone_label(user_agent: str) -> str:
    """ "Chrome · Android": enough for a person to tell their phones apart, nothing that identifies them."""
    browser = next((name for token, name in _BROWSERS if token in user_agent), "")
    system = next((name for token, name in _SYSTEMS if token in user_agent), "")
    label = " · ".join(part for part in (browser, system) if part)
    return label or re.sub(r"[^\w .;/()-]", "", user_agent)[:40] or "?"


def register_key(session: Session, person_id: int, public_key: bytes, label: str, now: datetime) -> PhoneKey:
    """Remember this phone's public key for the person (again: the same row). InvalidError for something
    that is not a P-256 point; PhoneKeyRevokedError for a key that was withdrawn. A sixth phone retires the
    person's least recently used key."""
    person = get_person(session, person_id)
    try:
        point = compressed_p256(public_key)
    except ValueError as exc:
        raise InvalidError(str(exc), "public_key") from None
    existing = session.scalars(
        select(PhoneKey).where(PhoneKey.person_id == person.id, PhoneKey.public_key == point)
    ).one_or_none()
    if existing is not None:
        if existing.revoked_at is not None:
            raise PhoneKeyRevokedError("this phone key was withdrawn; make a new one")
        return existing
    _retire_extra_keys(session, person.id, now)
    key = PhoneKey(person_id=person.id, public_key=point, label=label[:LABEL_CHARS], created_at=now)
    session.add(key)
    session.flush()
    audit.record(session, f"resident:{person.id}", "register_phone_key", "person", person.id, {"key": key.id})
    return key


def _retire_extra_keys(session: Session, person_id: int, now: datetime) -> None:
    active = list(
        session.scalars(
            select(PhoneKey)
            .where(PhoneKey.person_id == person_id, PhoneKey.revoked_at.is_(None))
            .order_by(func.coalesce(PhoneKey.last_used_at, PhoneKey.created_at), PhoneKey.id)
        )
    )
    for key in active[: max(0, len(active) - MAX_PHONE_KEYS + 1)]:
        key.revoked_at = now
        actor = f"resident:{person_id}"
        audit.record(session, actor, "retire_phone_key", "person", person_id, {"key": key.id})


def usable_key(session: Session, person_id: int, key_id: int) -> PhoneKey:
    """The person's phone key `key_id`; PhoneKeyRevokedError if it is withdrawn or not theirs."""
    key = session.get(PhoneKey, key_id)
    if key is None or key.person_id != person_id or key.revoked_at is not None:
        raise PhoneKeyRevokedError("this phone's key is not registered (any more)")
    return key


def _claims(
    issuer: str, person_id: int, ref: TicketRef, key: PhoneKey, nbf: datetime, exp: datetime
) -> TokenClaims:
    return TokenClaims(
        issuer=issuer,
        holder=person_ref(person_id),
        site=ref.site,
        not_before=nbf,
        expires=exp,
        zones=ref.zones,
        token_id=bytes.fromhex(ref.token_id),
        holder_key=key.public_key,
    )


def issue_ticket(
    session: Session,
    person_id: int,
    key_id: int,
    site_slug: str,
    zones: tuple[str, ...],
    now: datetime,
    *,
    data_dir: Path,
    issuer: str,
    lifetime: timedelta = TICKET_LIFETIME,
) -> Ticket:
    """A token for `site_slug` naming `zones`, bound to the phone key, valid from `now` for `lifetime`;
    remembered as an IssuedToken (revocable like any token). The caller decides the zones (my_access)."""
    if not zones:
        raise InvalidError("a ticket must name at least one zone", "site")
    key = usable_key(session, person_id, key_id)
    site = get_site(session, site_slug)
    claims = TokenClaims(
        issuer=issuer,
        holder=person_ref(person_id),
        site=site.slug,
        not_before=now,
        expires=now + lifetime,
        zones=zones,
        holder_key=key.public_key,
    )
    text = tokens.sign(claims, data_dir)
    tokens.remember(
        session,
        f"resident:{person_id}",
        person_id,
        site,
        claims,
        claims.not_before,
        zones=list(zones),
        phone_key=key.id,
    )
    key.last_used_at = now
    ref = TicketRef(site.slug, claims.token_id_hex, key.id, claims.zones)
    return Ticket(ref, proof_context(text), claims.not_before, claims.expires)


def present_ticket(
    session: Session,
    person_id: int,
    ref: TicketRef,
    step: int,
    signature: bytes,
    now: datetime,
    *,
    data_dir: Path,
    issuer: str,
) -> str:
    """The QR text for the phone's proof of `step`, checked as a door would check it at `now`.

    InvalidError for a step or signature of the wrong shape; TicketError when the ticket is over or the
    proof does not fit it (stale step, another key, another token); PhoneKeyRevokedError for a withdrawn key.
    """
    key = usable_key(session, person_id, ref.key_id)
    record = session.scalars(select(IssuedToken).where(IssuedToken.token_id == ref.token_id)).one_or_none()
    if record is None or record.person_id != person_id or record.revoked_at is not None:
        raise TicketError("this ticket was not issued to you or has been revoked")
    if record.expires_at <= now:
        raise TicketError("this ticket has expired")
    text = tokens.sign(_claims(issuer, person_id, ref, key, record.issued_at, record.expires_at), data_dir)
    try:
        shown = present(text, step, signature)
    except ValueError as exc:
        raise InvalidError(str(exc), "signature") from None
    try:
        verify_presentation(shown, load_public_keys(data_dir), now)
    except TokenError as exc:
        raise TicketError(f"the code would be refused at the door ({exc.reason.value})") from None
    return shown
