"""Registering a library card with a one-time code, without staff.

The person is signed in on their phone; the page shows an 8-digit code (`issue_card_code`, valid 10 minutes;
a new code voids the older ones). At a reader's keypad they type `*`, the code and `#`, then tap their card;
the agent sends the card's UID hash with the code and central registers the card for the code's person
(`claim_card_code`), so the card reaches the site's replica like any new card. The phone page polls
`card_code_status` to say "card registered".

Only the code's HMAC (under the UID-hash key) is stored, never the code. A code could be guessed (1 in 10^8
per try), so wrong codes are counted per site: after `WRONG_CODE_LIMIT` within `WRONG_CODE_WINDOW` the site
takes no claims for `LOCKOUT`, and a warning (without any code) is logged.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import structlog
from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.orm import Session

from central.models import (
    CardCodeFailure,
    CardEnrolmentCode,
    Credential,
    CredentialKind,
    CredentialStatus,
)
from central.replica import person_ref
from central.security import MIN_KEY_BYTES
from central.services import audit, replica_log
from central.services.errors import ConflictError, InvalidError, UnavailableError
from central.services.people import get_person

log = structlog.get_logger(__name__)

CODE_DIGITS = 8
CODE_TTL = timedelta(minutes=10)
WRONG_CODE_LIMIT = 5
WRONG_CODE_WINDOW = timedelta(minutes=10)
LOCKOUT = timedelta(minutes=10)
FAILURES_KEPT = timedelta(days=1)
CARD_LABEL = "registered with a one-time code"

_CODE = re.compile(r"[0-9]{8}")
_UID_HASH = re.compile(r"[0-9a-f]{64}")


class ClaimOutcome(StrEnum):
    REGISTERED = "registered"
    ALREADY_REGISTERED = "already_registered"  # the card was already this person's: the code is used up
    WRONG_CODE = "wrong_code"  # no live code matches (mistyped, used, expired or replaced by a newer one)
    CARD_TAKEN = "card_taken"  # the card is registered to someone else (or revoked): nothing changes
    LOCKED = "locked"  # too many wrong codes at this site lately: no claims for a while


@dataclass(frozen=True, slots=True)
class ClaimResult:
    outcome: ClaimOutcome
    person_id: int | None = None
    credential_id: int | None = None

    @property
    def registered(self) -> bool:
        return self.outcome in (ClaimOutcome.REGISTERED, ClaimOutcome.ALREADY_REGISTERED)


class CodeState(StrEnum):
    NONE = "none"  # no code was ever issued to this person
    PENDING = "pending"  # the latest code waits to be typed at a reader
    REGISTERED = "registered"  # the latest code registered a card
    EXPIRED = "expired"  # the latest code ran out unused


@dataclass(frozen=True, slots=True)
class CardCodeStatus:
    state: CodeState
    expires_at: datetime | None = None
    credential_id: int | None = None


def code_hash(code: str, key: bytes) -> str:
    """HMAC-SHA256 of the code as lowercase hex: what is stored and looked up instead of the code."""
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"UID hash key must be at least {MIN_KEY_BYTES} bytes, got {len(key)}")
    return hmac.new(key, code.encode("ascii"), hashlib.sha256).hexdigest()


def _live(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (CardEnrolmentCode.used_at.is_(None), CardEnrolmentCode.expires_at > now)


def issue_card_code(
    session: Session, person_id: int, now: datetime, *, uid_key: bytes
) -> tuple[str, datetime]:
    """A fresh 8-digit code for the person and when it expires; their older unused codes stop working.

    Show the code to the person once; it is not stored and cannot be read back.
    """
    person = get_person(session, person_id)
    if person.blocked:
        raise ConflictError("this person is blocked and cannot register a card")
    session.execute(
        update(CardEnrolmentCode)
        .where(CardEnrolmentCode.person_id == person.id, *_live(now))
        .values(expires_at=now)
        .execution_options(synchronize_session="fetch")
    )
    for _ in range(20):  # another person's live code with the same digits is a one-in-millions chance
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        digest = code_hash(code, uid_key)
        clash = select(CardEnrolmentCode.id).where(CardEnrolmentCode.code_hash == digest, *_live(now))
        if session.execute(clash.limit(1)).first() is None:
            break
    else:
        raise UnavailableError("no free one-time code could be found; try again")
    expires_at = now + CODE_TTL
    session.add(
        CardEnrolmentCode(person_id=person.id, code_hash=digest, created_at=now, expires_at=expires_at)
    )
    audit.record(
        session, person_ref(person.id), "issue_card_code", "person", person.id, {"expires_at": expires_at}
    )
    session.flush()
    return code, expires_at


def claim_card_code(
    session: Session, site_id: int, code: str, uid_hash: str, now: datetime, *, uid_key: bytes
) -> ClaimResult:
    """Register the card with `uid_hash` for the person whose live code `code` is (typed at site `site_id`).

    Refusals change nothing but the counters: a wrong code counts against the site, a card that is someone
    else's against the code.
    """
    if not _UID_HASH.fullmatch(uid_hash):
        raise InvalidError(
            "uid_hash must be 64 lowercase hex digits (HMAC-SHA256 of the card UID)", "uid_hash"
        )
    if _locked_until(session, site_id, now) is not None:
        log.info("card_code.claim_refused_locked", site_id=site_id)
        return ClaimResult(ClaimOutcome.LOCKED)
    row = None
    if _CODE.fullmatch(code):
        stmt = select(CardEnrolmentCode).where(
            CardEnrolmentCode.code_hash == code_hash(code, uid_key), *_live(now)
        )
        row = session.scalars(stmt.order_by(CardEnrolmentCode.id.desc()).limit(1).with_for_update()).first()
    if row is None:
        _wrong_code(session, site_id, now)
        return ClaimResult(ClaimOutcome.WRONG_CODE)
    existing = session.scalars(select(Credential).where(Credential.uid_hash == uid_hash)).one_or_none()
    if existing is not None:
        return _card_known(session, row, existing, site_id, now)
    credential = Credential(
        person_id=row.person_id,
        kind=CredentialKind.CARD,
        uid_hash=uid_hash,
        status=CredentialStatus.ACTIVE,
        label=CARD_LABEL,
        valid_from=now,
    )
    session.add(credential)
    session.flush()
    replica_log.record_credential_change(session, credential.id)
    _use(session, row, credential.id, site_id, now, "register_card_by_code")
    return ClaimResult(ClaimOutcome.REGISTERED, row.person_id, credential.id)


def _card_known(
    session: Session, row: CardEnrolmentCode, existing: Credential, site_id: int, now: datetime
) -> ClaimResult:
    if existing.person_id == row.person_id and existing.status is not CredentialStatus.REVOKED:
        _use(session, row, existing.id, site_id, now, "card_code_already_registered")
        return ClaimResult(ClaimOutcome.ALREADY_REGISTERED, row.person_id, existing.id)
    row.attempts += 1
    log.info("card_code.card_taken", site_id=site_id, person=row.person_id)
    return ClaimResult(ClaimOutcome.CARD_TAKEN, row.person_id)


def _use(
    session: Session, row: CardEnrolmentCode, credential_id: int, site_id: int, now: datetime, action: str
) -> None:
    row.used_at = now
    row.credential_id = credential_id
    detail = {"person": row.person_id, "site_id": site_id}
    audit.record(session, person_ref(row.person_id), action, "credential", credential_id, detail)
    session.flush()


def _wrong_code(session: Session, site_id: int, now: datetime) -> None:
    session.add(CardCodeFailure(site_id=site_id, at=now))
    session.execute(
        delete(CardCodeFailure)
        .where(CardCodeFailure.site_id == site_id, CardCodeFailure.at < now - FAILURES_KEPT)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    if _locked_until(session, site_id, now) is not None:
        log.warning(
            "card_code.too_many_wrong_codes",
            site_id=site_id,
            wrong_codes=WRONG_CODE_LIMIT,
            locked_minutes=LOCKOUT.total_seconds() / 60,
        )


def _locked_until(session: Session, site_id: int, now: datetime) -> datetime | None:
    """The end of the site's current lock-out, or None: a lock-out starts at the wrong code that is the
    `WRONG_CODE_LIMIT`th within `WRONG_CODE_WINDOW` (counting only wrong codes after the previous one)."""
    stmt = select(CardCodeFailure.at).where(
        CardCodeFailure.site_id == site_id, CardCodeFailure.at > now - WRONG_CODE_WINDOW - LOCKOUT
    )
    until: datetime | None = None
    recent: list[datetime] = []
    for at in sorted(session.scalars(stmt)):
        recent = [r for r in recent if at - r <= WRONG_CODE_WINDOW] + [at]
        if len(recent) >= WRONG_CODE_LIMIT:
            until, recent = at + LOCKOUT, []
    return until if until is not None and now < until else None


def card_code_status(session: Session, person_id: int, now: datetime) -> CardCodeStatus:
    """What became of the person's latest code, for the phone page ("card registered")."""
    stmt = select(CardEnrolmentCode).where(CardEnrolmentCode.person_id == person_id)
    row = session.scalars(stmt.order_by(CardEnrolmentCode.id.desc()).limit(1)).first()
    if row is None:
        return CardCodeStatus(CodeState.NONE)
    if row.used_at is not None:
        return CardCodeStatus(CodeState.REGISTERED, row.expires_at, row.credential_id)
    if row.expires_at <= now:
        return CardCodeStatus(CodeState.EXPIRED, row.expires_at)
    return CardCodeStatus(CodeState.PENDING, row.expires_at)
