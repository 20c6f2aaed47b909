"""Self-enrolment: from a first sign-in to a resident who can come in the same evening, without staff.

The steps, in order: accept the meråpent agreement → the age rule → register a library card (a one-time
code typed at a reader, central.services.card_enrolment) → set a PIN → done (a phone credential and
membership of every access group marked `self_enrolment`). `next_step` says which step is pending; the pages
follow it, so a step can never be skipped by typing another address.

The age rule has per-site limits: under a site's `min_age` (default 18) a guardian's consent must be recorded
by staff before the door opens (the replica marks the credential consent_missing until then); under the
lowest `min_age_with_consent` of all sites (default 15) nobody can sign up on their own. Only what the rule
needs is kept: the birth date (from the provider's `birthdate`, or computed from ID-porten's `pid`, which is
never stored), never the national identity number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from stdnum.exceptions import ValidationError
from stdnum.no import fodselsnummer

from central.models import AccessGroup, Credential, CredentialKind, CredentialStatus, Person, PersonKind, Site
from central.replica import age_on
from central.services import audit, credentials, groups, replica_log, terms
from central.services.errors import ConflictError, InvalidError
from central.services.people import get_person

log = structlog.get_logger(__name__)

OSLO = ZoneInfo("Europe/Oslo")
DEFAULT_MIN_AGE = 18
DEFAULT_MIN_AGE_WITH_CONSENT = 15
PIN_MIN_DIGITS = 4
PIN_MAX_DIGITS = 6
NAME_MAX = 200
UNNAMED = "Innbygger"  # providers such as ID-porten give no name; staff see this instead
PHONE_LABEL = "self-enrolment"

_PIN = re.compile(rf"[0-9]{{{PIN_MIN_DIGITS},{PIN_MAX_DIGITS}}}")
_BIRTHDATE = re.compile(r"([0-9]{4})(?:-([0-9]{2})-([0-9]{2}))?")


def actor_of(person_id: int) -> str:
    """How the audit trail names a resident acting on their own behalf."""
    return f"resident:{person_id}"


def local_today(now: datetime) -> date:
    return now.astimezone(OSLO).date()


# --- the age rule ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgeLimits:
    """The limits of all sites together: self-enrolment gives access at every site of its groups."""

    sign_up_floor: int  # the lowest min_age_with_consent: younger cannot sign up on their own
    consent_below: int  # the highest min_age: younger needs a guardian's consent (at some site at least)


class AgeStatus(StrEnum):
    OK = "ok"
    NEEDS_CONSENT = "needs_consent"  # may enrol; the doors open once staff have recorded a guardian's consent
    TOO_YOUNG = "too_young"
    UNKNOWN = "unknown"  # the provider told us no birth date: the rule cannot be applied


def age_limits(session: Session) -> AgeLimits:
    floor, highest = session.execute(
        select(func.min(Site.min_age_with_consent), func.max(Site.min_age))
    ).one()
    return AgeLimits(
        sign_up_floor=DEFAULT_MIN_AGE_WITH_CONSENT if floor is None else int(floor),
        consent_below=DEFAULT_MIN_AGE if highest is None else int(highest),
    )


def check_age_limits(site: Site) -> Site:
    """Refuse limits in the wrong order (the request's transaction is rolled back)."""
    if site.min_age_with_consent > site.min_age:
        raise InvalidError(
            f"min_age_with_consent ({site.min_age_with_consent}) must not be above min_age ({site.min_age})",
            "min_age_with_consent",
        )
    return site


def age_status(age: int | None, limits: AgeLimits, guardian_consent: bool) -> AgeStatus:
    if age is None:
        return AgeStatus.UNKNOWN
    if age < limits.sign_up_floor:
        return AgeStatus.TOO_YOUNG
    if age < limits.consent_below and not guardian_consent:
        return AgeStatus.NEEDS_CONSENT
    return AgeStatus.OK


def person_age_status(session: Session, person: Person, now: datetime) -> AgeStatus:
    age = age_on(local_today(now), person.birth_date, person.birth_year)
    return age_status(age, age_limits(session), person.guardian_consent)


# --- the steps -------------------------------------------------------------------------------------------


class EnrolmentStep(StrEnum):
    TERMS = "terms"
    AGE = "age"
    CARD = "card"
    PIN = "pin"
    DONE = "done"


def live_credentials(person: Person, kind: CredentialKind) -> list[Credential]:
    return [c for c in person.credentials if c.kind is kind and c.status is not CredentialStatus.REVOKED]


def next_step(
    session: Session, person: Person, now: datetime, *, terms_version: str | None = None
) -> EnrolmentStep | None:
    """The step the person must take next, or None when they are enrolled and have accepted the current
    agreement. A new agreement version, or age limits raised above the person's age, apply to enrolled
    residents too."""
    version = terms_version or terms.current_version()
    if not terms.has_accepted(session, person.id, version):
        return EnrolmentStep.TERMS
    age = person_age_status(session, person, now)
    # Someone staff registered without a birth date was vetted by staff (the agents treat them as adults);
    # someone who signed up here always has one, so UNKNOWN for them means the rule cannot be applied.
    if age is AgeStatus.TOO_YOUNG or (age is AgeStatus.UNKNOWN and person.oidc_subject is not None):
        return EnrolmentStep.AGE
    if person.enrolled_at is not None:
        return None
    cards = live_credentials(person, CredentialKind.CARD)
    if not cards:
        return EnrolmentStep.CARD
    if any(card.pin_hash is None for card in cards):
        return EnrolmentStep.PIN
    return EnrolmentStep.DONE


# The pages of the steps (central.web.enrol serves them); kept here so the home page needs only this module.
STEP_PATHS = {
    EnrolmentStep.TERMS: "/min-nokkel/vilkar",
    EnrolmentStep.AGE: "/min-nokkel/alder",
    EnrolmentStep.CARD: "/min-nokkel/kort",
    EnrolmentStep.PIN: "/min-nokkel/pin",
    EnrolmentStep.DONE: "/min-nokkel/ferdig",
}


def pending_step_url(session: Session, person: Person, now: datetime) -> str | None:
    """Where a signed-in resident must go before anything else (None: nowhere, show them what they asked)."""
    step = next_step(session, person, now)
    return None if step is None else STEP_PATHS[step]


# --- who signed in ---------------------------------------------------------------------------------------


class IdentityError(ValueError):
    """The provider's answer names nobody (no subject)."""


@dataclass(frozen=True, slots=True)
class Identity:
    """What central keeps of a sign-in: the provider's id for the person, a name, and the birth date."""

    issuer: str
    subject: str
    display_name: str
    birth_date: date | None
    birth_year: int | None


def _claim(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    return value.strip() if isinstance(value, str) else ""


def display_name_of(claims: Mapping[str, Any]) -> str:
    name = _claim(claims, "name") or " ".join(
        part for part in (_claim(claims, "given_name"), _claim(claims, "family_name")) if part
    )
    return (name or UNNAMED)[:NAME_MAX]


def birth_from_claims(claims: Mapping[str, Any], today: date) -> tuple[date | None, int | None]:
    """(birth date, birth year) from ID-porten's `pid` (fødselsnummer or D-number; only the date is kept) or
    the standard `birthdate` ("YYYY-MM-DD", or "YYYY" when only the year is released); (None, None) if
    neither gives a plausible date."""
    pid = _claim(claims, "pid")
    if pid:
        try:
            born = fodselsnummer.get_birth_date(fodselsnummer.validate(pid))
        except ValidationError:
            log.info("signin.pid_unusable")  # never log the number itself
        else:
            return (born, born.year) if born <= today else (None, None)
    match = _BIRTHDATE.fullmatch(_claim(claims, "birthdate"))
    if match is None or int(match[1]) < 1900 or int(match[1]) > today.year:
        return None, None
    year = int(match[1])
    if match[2] is None:
        return None, year
    try:
        born = date(year, int(match[2]), int(match[3]))
    except ValueError:
        return None, None
    return (born, year) if born <= today else (None, None)


def identity_from_claims(issuer: str, claims: Mapping[str, Any], today: date) -> Identity:
    subject = _claim(claims, "sub")
    if not subject or len(subject) > 128:
        raise IdentityError("the provider's answer has no usable subject (sub)")
    born, year = birth_from_claims(claims, today)
    return Identity(issuer, subject, display_name_of(claims), born, year)


class SignUpOutcome(StrEnum):
    CREATED = "created"
    SIGNED_IN = "signed_in"
    TOO_YOUNG = "too_young"
    AGE_UNKNOWN = "age_unknown"
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class SignUpResult:
    outcome: SignUpOutcome
    person_id: int | None = None

    @property
    def signed_in(self) -> bool:
        return self.outcome in (SignUpOutcome.CREATED, SignUpOutcome.SIGNED_IN)


def sign_up(session: Session, identity: Identity, now: datetime) -> SignUpResult:
    """The person behind a sign-in: found by (issuer, subject), or created as a resident.

    Someone too young to sign up, or whose age the provider does not tell, is not stored at all: central has
    no purpose for a child's data it will not use (data minimisation), and they may try again when older.
    """
    stmt = select(Person).where(
        Person.oidc_issuer == identity.issuer, Person.oidc_subject == identity.subject
    )
    person = session.scalars(stmt).one_or_none()
    if person is not None:
        if person.blocked:
            return SignUpResult(SignUpOutcome.BLOCKED, person.id)
        _update_birth(session, person, identity)
        return SignUpResult(SignUpOutcome.SIGNED_IN, person.id)
    age = age_on(local_today(now), identity.birth_date, identity.birth_year)
    status = age_status(age, age_limits(session), guardian_consent=False)
    if status is AgeStatus.UNKNOWN:
        return SignUpResult(SignUpOutcome.AGE_UNKNOWN)
    if status is AgeStatus.TOO_YOUNG:
        return SignUpResult(SignUpOutcome.TOO_YOUNG)
    person = Person(
        kind=PersonKind.RESIDENT,
        display_name=identity.display_name,
        birth_date=identity.birth_date,
        birth_year=identity.birth_year,
        oidc_issuer=identity.issuer,
        oidc_subject=identity.subject,
        created_at=now,
    )
    session.add(person)
    session.flush()
    audit.record(session, actor_of(person.id), "sign_up", "person", person.id, {"issuer": identity.issuer})
    return SignUpResult(SignUpOutcome.CREATED, person.id)


def _update_birth(session: Session, person: Person, identity: Identity) -> None:
    """The provider is the source of the birth date: a correction there reaches the age rule here."""
    if identity.birth_year is None or (person.birth_date, person.birth_year) == (
        identity.birth_date,
        identity.birth_year,
    ):
        return
    person.birth_date, person.birth_year = identity.birth_date, identity.birth_year
    session.flush()
    replica_log.record_person_change(session, person.id)
    audit.record(session, actor_of(person.id), "update", "person", person.id, {"birth_date": "(changed)"})


# --- PIN -------------------------------------------------------------------------------------------------


class PinProblem(StrEnum):
    FORMAT = "format"  # not 4–6 digits
    MISMATCH = "mismatch"  # the two entries differ
    SAME_DIGITS = "same_digits"  # 0000, 111111
    SEQUENCE = "sequence"  # 1234, 4321, 7890, 654321
    BIRTH = "birth"  # the birth year, or the birth date as DDMM / DDMMYY


def _is_run(digits: list[int]) -> bool:
    steps = {(b - a) % 10 for a, b in pairwise(digits)}
    return steps in ({1}, {9})


def pin_problem(
    pin: str, repeat: str, *, birth_date: date | None, birth_year: int | None
) -> PinProblem | None:
    """Why this PIN is refused, or None. The first problem found, in the order the person should fix them."""
    if not _PIN.fullmatch(pin):
        return PinProblem.FORMAT
    if pin != repeat:
        return PinProblem.MISMATCH
    digits = [int(d) for d in pin]
    if len(set(digits)) == 1:
        return PinProblem.SAME_DIGITS
    if _is_run(digits):
        return PinProblem.SEQUENCE
    birth = set() if birth_year is None else {f"{birth_year:04d}"}
    if birth_date is not None:
        birth |= {f"{birth_date:%Y}", f"{birth_date:%d%m}", f"{birth_date:%d%m%y}"}
    if pin in birth:
        return PinProblem.BIRTH
    return None


def set_pin(session: Session, person: Person, pin: str) -> list[Credential]:
    """The PIN on every live card of the person (argon2 hashes; the agents get them with the next delta)."""
    cards = live_credentials(person, CredentialKind.CARD)
    if not cards:
        raise ConflictError(f"person {person.id} has no card to give a PIN")
    return [credentials.set_pin(session, actor_of(person.id), card.id, pin) for card in cards]


# --- done ------------------------------------------------------------------------------------------------


def self_enrolment_groups(session: Session) -> list[AccessGroup]:
    stmt = select(AccessGroup).where(AccessGroup.self_enrolment.is_(True)).order_by(AccessGroup.slug)
    return list(session.scalars(stmt))


def complete(session: Session, person: Person, now: datetime) -> list[str]:
    """Finish enrolment: a phone credential (for the QR code and Open), membership of every self-enrolment
    group; returns the slugs of the groups joined. Until a minor's guardian consent is recorded the agents
    still refuse them (consent_missing)."""
    actor = actor_of(person.id)
    if not live_credentials(person, CredentialKind.PHONE):
        credentials.register_phone(session, actor, person.id, label=PHONE_LABEL, valid_from=now)
    joined = [
        g.slug for g in self_enrolment_groups(session) if groups.add_member(session, actor, g.slug, person.id)
    ]
    if not joined and person.enrolled_at is None:
        log.warning("enrolment.no_self_enrolment_groups", person=person.id)
    person.enrolled_at = now
    session.flush()
    audit.record(session, actor, "complete_enrolment", "person", person.id, {"groups": joined})
    return joined


# --- guardian consent (recorded by staff) ----------------------------------------------------------------


def record_guardian_consent(session: Session, actor: str, person_id: int, now: datetime) -> Person:
    """A guardian agreed (in person, to staff): the minor's cards open doors from the next replica delta."""
    person = get_person(session, person_id)
    person.guardian_consent = True
    person.guardian_consent_at = now
    person.guardian_consent_by = actor
    session.flush()
    replica_log.record_person_change(session, person.id)
    audit.record(session, actor, "record_guardian_consent", "person", person.id)
    return person


def withdraw_guardian_consent(session: Session, actor: str, person_id: int, now: datetime) -> Person:
    """The guardian withdrew their consent: the minor is refused again (the audit trail keeps the history)."""
    person = get_person(session, person_id)
    person.guardian_consent = False
    person.guardian_consent_at = None
    person.guardian_consent_by = None
    session.flush()
    replica_log.record_person_change(session, person.id)
    audit.record(session, actor, "withdraw_guardian_consent", "person", person.id, {"at": now})
    return person
