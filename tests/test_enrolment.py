"""Self-enrolment rules on the injectable clock, on SQLite and PostgreSQL: who may sign up (per-site age
limits, to the day of the birthday), what a sign-in stores (never the national identity number), the
agreement's versions, the PIN rules, and what finishing gives (phone credential, groups, the agent's view)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central.db import make_engine, session_factory
from central.models import (
    AccessGroup,
    AuditLog,
    Base,
    Credential,
    CredentialKind,
    Door,
    DoorKind,
    Person,
    PersonKind,
    ReplicaChange,
    Site,
    Zone,
)
from central.replica import build_snapshot
from central.services import card_enrolment, enrolment, terms
from central.services.enrolment import (
    AgeStatus,
    EnrolmentStep,
    Identity,
    PinProblem,
    SignUpOutcome,
    identity_from_claims,
    next_step,
    pin_problem,
    sign_up,
)
from central.services.errors import InvalidError
from tests.oidc_support import fodselsnummer

# 23:30 UTC on 14 March is already 15 March in Oslo: birthdays are counted on the site's local date.
NOW = datetime(2026, 3, 14, 23, 30, tzinfo=UTC)
TODAY = date(2026, 3, 15)
ISSUER = "https://idporten.example"
UID_KEY = b"k" * 32


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    engine = make_engine(db_url)
    Base.metadata.create_all(engine)  # the schema of the models (tests/test_migrations.py: = the migrations)
    with session_factory(engine)() as db:
        yield db
    engine.dispose()


def add_site(session: Session, slug: str, min_age: int = 18, min_age_with_consent: int = 15) -> Site:
    site = Site(slug=slug, name=slug.title(), min_age=min_age, min_age_with_consent=min_age_with_consent)
    torg = Zone(slug="torg", name="Torget")
    site.zones.append(torg)
    session.add(site)
    session.flush()
    session.add(Door(site=site, zone=torg, slug="inngang", name="Inngang", kind=DoorKind.ENTRANCE))
    session.flush()
    return site


def add_group(session: Session, slug: str, sites: list[Site], *, self_enrolment: bool = True) -> AccessGroup:
    group = AccessGroup(slug=slug, name=slug.title(), self_enrolment=self_enrolment)
    group.zones.extend(zone for site in sites for zone in site.zones)
    session.add(group)
    session.flush()
    return group


def born(years: int, days_after: int = 0) -> date:
    """The birth date of someone who turns `years` on TODAY + days_after (0: today is the birthday)."""
    return date(TODAY.year - years, TODAY.month, TODAY.day) + timedelta(days=days_after)


def identity(birth: date | None, subject: str = "s-1") -> Identity:
    return Identity(ISSUER, subject, "Kari Nordmann", birth, None if birth is None else birth.year)


def person_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Person)) or 0


# --- the age rule -----------------------------------------------------------------------------------------


SIGN_UP_CASES = [
    (born(18), SignUpOutcome.CREATED, AgeStatus.OK),  # 18 today
    (born(18, days_after=1), SignUpOutcome.CREATED, AgeStatus.NEEDS_CONSENT),  # 17, 18 tomorrow
    (born(17), SignUpOutcome.CREATED, AgeStatus.NEEDS_CONSENT),
    (born(16), SignUpOutcome.CREATED, AgeStatus.NEEDS_CONSENT),
    (born(15), SignUpOutcome.CREATED, AgeStatus.NEEDS_CONSENT),  # 15 today: the lowest age for signing up
    (born(15, days_after=1), SignUpOutcome.TOO_YOUNG, AgeStatus.TOO_YOUNG),  # 15 tomorrow: not yet
    (born(13), SignUpOutcome.TOO_YOUNG, AgeStatus.TOO_YOUNG),
]


def test_who_may_sign_up_is_decided_on_the_birthday_in_oslo(session: Session) -> None:
    add_site(session, "holmen")
    for index, (birth, outcome, status) in enumerate(SIGN_UP_CASES):
        before = person_count(session)
        result = sign_up(session, identity(birth, f"s-{index}"), NOW)
        assert result.outcome is outcome, birth
        assert person_count(session) == before + (outcome is SignUpOutcome.CREATED)  # too young: nothing kept
        person = Person(kind=PersonKind.RESIDENT, display_name="X", birth_date=birth, birth_year=birth.year)
        assert enrolment.person_age_status(session, person, NOW) is status, birth
        person.guardian_consent = True  # a recorded consent lifts the need for it, not the lowest age
        expected = AgeStatus.OK if status is AgeStatus.NEEDS_CONSENT else status
        assert enrolment.person_age_status(session, person, NOW) is expected, birth


def test_the_lowest_sign_up_age_and_the_highest_consent_age_of_all_sites_apply(session: Session) -> None:
    add_site(session, "holmen", min_age=18, min_age_with_consent=16)
    add_site(session, "tofte", min_age=16, min_age_with_consent=13)
    limits = enrolment.age_limits(session)
    assert (limits.sign_up_floor, limits.consent_below) == (13, 18)
    assert sign_up(session, identity(born(13), "s-13"), NOW).outcome is SignUpOutcome.CREATED
    assert sign_up(session, identity(born(12), "s-12"), NOW).outcome is SignUpOutcome.TOO_YOUNG


def test_a_sign_in_without_any_birth_date_stores_nothing(session: Session) -> None:
    add_site(session, "holmen")
    assert sign_up(session, identity(None), NOW).outcome is SignUpOutcome.AGE_UNKNOWN
    assert person_count(session) == 0


def test_the_replica_marks_consent_missing_per_site_until_a_guardian_consent(session: Session) -> None:
    holmen = add_site(session, "holmen", min_age=18)
    tofte = add_site(session, "tofte", min_age=16, min_age_with_consent=13)
    group = add_group(session, "innbyggere", [holmen, tofte])
    teen = Person(kind=PersonKind.RESIDENT, display_name="Sara", birth_date=born(16), birth_year=2010)
    adult_tomorrow = Person(
        kind=PersonKind.RESIDENT, display_name="Ola", birth_date=born(18, 1), birth_year=born(18, 1).year
    )
    for index, person in enumerate((teen, adult_tomorrow)):
        person.groups.append(group)
        uid_hash = hashlib.sha256(f"card-{index}".encode()).hexdigest()
        person.credentials.append(Credential(kind=CredentialKind.CARD, uid_hash=uid_hash, valid_from=NOW))
        session.add(person)
    session.flush()

    def missing(site: str, person: Person, at: datetime = NOW) -> bool:
        snapshot = {c.ref: c for c in build_snapshot(session, site, at).credentials}
        return snapshot[f"c{person.credentials[0].id}"].consent_missing

    assert missing("holmen", teen) and not missing("tofte", teen)  # 16: enough at Tofte, not at Holmen
    assert missing("holmen", adult_tomorrow)
    assert not missing("holmen", adult_tomorrow, NOW + timedelta(days=1))  # the birthday, to the day

    session.query(ReplicaChange).delete()
    enrolment.record_guardian_consent(session, "caretaker-kari", teen.id, NOW)
    assert not missing("holmen", teen)
    assert (teen.guardian_consent_at, teen.guardian_consent_by) == (NOW, "caretaker-kari")
    logged = session.scalars(select(ReplicaChange.credential_ref)).all()
    assert f"c{teen.credentials[0].id}" in logged  # the agents hear about it with the next delta
    enrolment.withdraw_guardian_consent(session, "caretaker-kari", teen.id, NOW)
    assert missing("holmen", teen)
    actions = session.scalars(select(AuditLog.action).where(AuditLog.entity_id == str(teen.id))).all()
    assert {"record_guardian_consent", "withdraw_guardian_consent"} <= set(actions)


# --- what a sign-in keeps ---------------------------------------------------------------------------------


def test_id_portens_pid_gives_the_birth_date_and_is_never_stored(session: Session) -> None:
    add_site(session, "holmen")
    pid = fodselsnummer(date(1990, 5, 1))
    claims = {"sub": "abc", "pid": pid}
    found = identity_from_claims(ISSUER, claims, TODAY)
    assert (found.birth_date, found.birth_year, found.display_name) == (date(1990, 5, 1), 1990, "Innbygger")
    result = sign_up(session, found, NOW)
    person = session.get(Person, result.person_id)
    assert person is not None
    stored = [str(getattr(person, column.key)) for column in Person.__table__.columns]
    audit = [str(row.detail) for row in session.scalars(select(AuditLog))]
    assert not any(pid in value for value in stored + audit)
    assert (person.oidc_issuer, person.oidc_subject, person.kind) == (ISSUER, "abc", PersonKind.RESIDENT)


@pytest.mark.parametrize(
    ("claims", "birth_date", "birth_year"),
    [
        ({"birthdate": "2001-07-04"}, date(2001, 7, 4), 2001),
        ({"birthdate": "2001"}, None, 2001),  # only the year released
        ({"birthdate": "0000-07-04"}, None, None),  # year withheld: no use for the age rule
        ({"birthdate": "2001-02-30"}, None, None),
        ({"birthdate": "2030-01-01"}, None, None),  # not born yet
        ({"pid": "01059003787"}, None, None),  # wrong check digit
        ({"pid": "01059003787", "birthdate": "1990-05-01"}, date(1990, 5, 1), 1990),
    ],
)
def test_birth_dates_from_other_providers_and_broken_numbers(
    claims: dict[str, str], birth_date: date | None, birth_year: int | None
) -> None:
    assert enrolment.birth_from_claims(claims, TODAY) == (birth_date, birth_year)


def test_a_d_number_gives_the_birth_date_too() -> None:
    ordinary = fodselsnummer(date(1985, 11, 3))
    d_digits = [int(c) for c in str(int(ordinary[0]) + 4) + ordinary[1:9]]
    weights1, weights2 = (3, 7, 6, 1, 8, 9, 4, 5, 2), (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
    k1 = (11 - sum(w * d for w, d in zip(weights1, d_digits, strict=True)) % 11) % 11
    k2 = (11 - sum(w * d for w, d in zip(weights2, [*d_digits, k1], strict=True)) % 11) % 11
    if 10 in (k1, k2):
        pytest.fail("pick another date: this D-number has no valid check digits")
    d_number = "".join(map(str, d_digits)) + f"{k1}{k2}"
    assert enrolment.birth_from_claims({"pid": d_number}, TODAY) == (date(1985, 11, 3), 1985)


def test_names_come_from_the_name_claims_and_a_missing_subject_is_refused() -> None:
    assert identity_from_claims(ISSUER, {"sub": "x", "name": " Kari N "}, TODAY).display_name == "Kari N"
    parts = {"sub": "x", "given_name": "Kari", "family_name": "Nordmann"}
    assert identity_from_claims(ISSUER, parts, TODAY).display_name == "Kari Nordmann"
    with pytest.raises(enrolment.IdentityError):
        identity_from_claims(ISSUER, {"name": "Nobody"}, TODAY)


def test_signing_in_again_finds_the_same_person_and_a_blocked_one_is_turned_away(session: Session) -> None:
    add_site(session, "holmen")
    first = sign_up(session, identity(born(30)), NOW)
    again = sign_up(session, identity(born(30)), NOW + timedelta(days=3))
    assert (again.outcome, again.person_id) == (SignUpOutcome.SIGNED_IN, first.person_id)
    other_provider = Identity("https://other.example", "s-1", "Kari", born(30), born(30).year)
    assert sign_up(session, other_provider, NOW).person_id != first.person_id
    person = session.get(Person, first.person_id)
    assert person is not None
    person.blocked = True
    assert sign_up(session, identity(born(30)), NOW).outcome is SignUpOutcome.BLOCKED


def test_a_birth_date_corrected_at_the_provider_reaches_the_age_rule(session: Session) -> None:
    add_site(session, "holmen")
    first = sign_up(session, identity(born(30)), NOW)
    sign_up(session, identity(born(16)), NOW)
    person = session.get(Person, first.person_id)
    assert person is not None and person.birth_date == born(16)
    assert enrolment.person_age_status(session, person, NOW) is AgeStatus.NEEDS_CONSENT


# --- the agreement ----------------------------------------------------------------------------------------


def test_a_new_agreement_version_must_be_accepted_again(session: Session) -> None:
    add_site(session, "holmen")
    person = session.get(Person, sign_up(session, identity(born(30)), NOW).person_id)
    assert person is not None
    assert next_step(session, person, NOW) is EnrolmentStep.TERMS
    terms.accept(session, person.id, terms.current_version(), NOW)
    terms.accept(session, person.id, terms.current_version(), NOW + timedelta(hours=1))  # keeps the first
    assert next_step(session, person, NOW) is EnrolmentStep.CARD
    assert next_step(session, person, NOW, terms_version="v2") is EnrolmentStep.TERMS
    accepted = terms.acceptance(session, person.id, terms.current_version())
    assert accepted is not None and accepted.accepted_at == NOW


def test_the_current_version_is_the_highest_one_written_in_every_language(tmp_path: Path) -> None:
    for name in ("v1.nb.md", "v1.en.md", "v2.nb.md", "v2.en.md", "v10.nb.md", "notes.md"):
        (tmp_path / name).write_text("## Avtale\n\nTekst.\n", "utf-8")
    assert terms.versions(tmp_path) == ("v1", "v2")  # v10 has no English text yet
    assert terms.current_version(tmp_path) == "v2"
    with pytest.raises(terms.TermsError):
        terms.current_version(tmp_path / "empty")


def test_the_shipped_agreement_says_what_the_brief_requires_in_both_languages() -> None:
    version = terms.current_version()
    norwegian = terms.terms_html(version, "nb", retention_days=30)
    english = terms.terms_html(version, "en", retention_days=30)
    for needed in ("Ikke slipp inn andre", "gjestene", "stenger", "sperret", "30 dager", "personvernombudet"):
        assert needed in norwegian
    for needed in ("let anyone else in", "guests", "closes", "blocked", "30 days", "data protection officer"):
        assert needed in english


def test_agreement_texts_are_escaped_so_a_file_cannot_inject_markup() -> None:
    html = terms.render_markdown('## Title <script>alert(1)</script>\n\n- **bold** & "quoted"\n  continued')
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<strong>bold</strong> &amp; &quot;quoted&quot;\ncontinued</li>" in html


# --- the PIN ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pin", "repeat", "problem"),
    [
        ("4826", "4826", None),
        ("482619", "482619", None),
        ("123", "123", PinProblem.FORMAT),
        ("1234567", "1234567", PinProblem.FORMAT),
        ("12a4", "12a4", PinProblem.FORMAT),
        ("4826", "4827", PinProblem.MISMATCH),
        ("0000", "0000", PinProblem.SAME_DIGITS),
        ("777777", "777777", PinProblem.SAME_DIGITS),
        ("1234", "1234", PinProblem.SEQUENCE),
        ("4321", "4321", PinProblem.SEQUENCE),
        ("567890", "567890", PinProblem.SEQUENCE),
        ("1990", "1990", PinProblem.BIRTH),
        ("0105", "0105", PinProblem.BIRTH),  # DDMM
        ("010590", "010590", PinProblem.BIRTH),  # DDMMYY
    ],
)
def test_trivial_pins_are_refused(pin: str, repeat: str, problem: PinProblem | None) -> None:
    assert pin_problem(pin, repeat, birth_date=date(1990, 5, 1), birth_year=1990) is problem


# --- from sign-in to the door -----------------------------------------------------------------------------


def test_the_steps_in_order_and_what_finishing_gives(session: Session) -> None:
    holmen = add_site(session, "holmen")
    residents = add_group(session, "innbyggere", [holmen])
    add_group(session, "ansatte", [holmen], self_enrolment=False)
    person = session.get(Person, sign_up(session, identity(born(30)), NOW).person_id)
    assert person is not None
    assert enrolment.pending_step_url(session, person, NOW) == "/min-nokkel/vilkar"
    terms.accept(session, person.id, terms.current_version(), NOW)
    assert next_step(session, person, NOW) is EnrolmentStep.CARD

    code, _ = card_enrolment.issue_card_code(session, person.id, NOW, uid_key=UID_KEY)
    claim = card_enrolment.claim_card_code(session, holmen.id, code, "a" * 64, NOW, uid_key=UID_KEY)
    assert claim.registered
    session.expire(person, ["credentials"])
    assert next_step(session, person, NOW) is EnrolmentStep.PIN
    assert build_snapshot(session, "holmen", NOW).credentials == []  # no group yet: the door does not know it

    enrolment.set_pin(session, person, "4826")
    assert next_step(session, person, NOW) is EnrolmentStep.DONE
    assert enrolment.complete(session, person, NOW) == ["innbyggere"]
    assert next_step(session, person, NOW) is None
    assert enrolment.pending_step_url(session, person, NOW) is None

    kinds = sorted(c.kind.value for c in person.credentials)
    assert kinds == ["card", "phone"] and person.enrolled_at == NOW
    assert [g.slug for g in person.groups] == [residents.slug]
    at_door = {c.kind.value: c for c in build_snapshot(session, "holmen", NOW).credentials}
    assert at_door["card"].pin_hash and at_door["card"].groups == ["innbyggere"]
    assert not at_door["card"].consent_missing
    steps = select(AuditLog.actor).where(AuditLog.action.in_(["sign_up", "complete_enrolment"]))
    actors = set(session.scalars(steps))
    assert actors == {f"resident:{person.id}"}


def test_someone_whose_age_falls_below_the_limits_is_stopped_at_the_age_step(session: Session) -> None:
    holmen = add_site(session, "holmen")
    person = session.get(Person, sign_up(session, identity(born(15)), NOW).person_id)
    assert person is not None
    terms.accept(session, person.id, terms.current_version(), NOW)
    assert next_step(session, person, NOW) is EnrolmentStep.CARD
    holmen.min_age_with_consent = 16  # the municipality raised the limit
    session.flush()
    assert next_step(session, person, NOW) is EnrolmentStep.AGE
    assert enrolment.pending_step_url(session, person, NOW) == "/min-nokkel/alder"


def test_age_limits_in_the_wrong_order_are_refused() -> None:
    with pytest.raises(InvalidError, match="min_age_with_consent"):
        enrolment.check_age_limits(Site(slug="x", name="X", min_age=15, min_age_with_consent=16))
