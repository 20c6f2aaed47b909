"""The decision engine at Heggedal: every reason a card or phone token can get, in realistic situations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.decide import (
    BUILD_DATE,
    ClockPolicy,
    SiteConfigError,
    SiteView,
    UnknownDoorError,
    Verdict,
    clock_trusted,
    decide_card,
    decide_phone_holder,
    decide_token,
    denied,
)
from controller.pin import PinEntry, PinOutcome
from protocol import messages as m
from protocol.holder import present, proof_message, time_step
from protocol.keys import PublicKeySet, PublishedKey, key_id
from protocol.token import TokenClaims, issue_token
from tests.test_controller_schedule import heggedal_config, oslo

GRANT, DENY = m.Decision.GRANT, m.Decision.DENY
R = m.Reason
PIN_HASH = (
    "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"  # decide only asks whether there is one
)

VIEW = SiteView.from_config(heggedal_config())

MONDAY_NOON = oslo("2026-11-23T12:00")
MONDAY_LATE = oslo("2026-11-23T20:30")  # open until 21:00
SUNDAY_EVENING = oslo("2026-11-22T19:30")  # weekends close at 18:00
TUESDAY_NIGHT = oslo("2026-11-24T03:00")
BOOT_WITHOUT_NETWORK = datetime(1970, 1, 1, 0, 0, 12, tzinfo=UTC)


def card(
    ref: str, person: str, kind: m.PersonKind = m.PersonKind.RESIDENT, *groups: str, **kw: Any
) -> m.Credential:
    fields: dict[str, Any] = {
        "valid_from": datetime(2026, 1, 5, 9, tzinfo=UTC),  # central always stamps valid_from
        "uid_hash": "ab" * 32,
    }
    fields.update(kw)
    return m.Credential(
        ref=ref, person=person, person_kind=kind, kind=m.CredentialKind.CARD, groups=list(groups), **fields
    )


OLA = card("c2", "p-ola", m.PersonKind.RESIDENT, "innbyggere")
KARI = card("c1", "p-kari", m.PersonKind.RESIDENT, "innbyggere", pin_hash=PIN_HASH)
SARA = card("c3", "p-sara", m.PersonKind.RESIDENT, "ungdom")
EMIL = card("c4", "p-emil", m.PersonKind.RESIDENT, "innbyggere", consent_missing=True)
PER = card("c5", "p-per", m.PersonKind.RESIDENT, "innbyggere", status=m.CredentialStatus.BLOCKED)
VIDAR = card("c6", "p-vidar", m.PersonKind.CARETAKER, "vaktmestere")
SIRI = card("c7", "p-siri", m.PersonKind.STAFF, "ansatte", pin_hash=PIN_HASH)
NORA = card("c8", "p-nora", m.PersonKind.ASSOCIATION_MEMBER)  # no groups: she comes for her bookings
NEW_CARD = card("c9", "p-amina", m.PersonKind.RESIDENT, "innbyggere", valid_from=oslo("2026-11-24T00:00"))
OLD_CARD = card("c10", "p-amina", m.PersonKind.RESIDENT, "innbyggere", valid_until=oslo("2026-11-01T00:00"))
VISITOR = card("c11", "p-kim", m.PersonKind.RESIDENT, "holmen-innbyggere")  # a group of another site

SJAKK = m.Booking(
    ref="b17",
    room="moterom-1",
    holders=["p-nora"],
    starts_at=oslo("2026-11-22T19:00"),
    ends_at=oslo("2026-11-22T20:30"),
    title="Sjakkveld",
)
GRUPPE = m.Booking(
    ref="b18",
    room="grupperom",
    holders=["p-nora", "p-ola"],
    starts_at=oslo("2026-11-23T17:00"),
    ends_at=oslo("2026-11-23T18:00"),
    status=m.BookingStatus.CHECKED_IN,
)

ISSUER_KEY = Ed25519PrivateKey.generate()
KEYS = PublicKeySet([PublishedKey(ISSUER_KEY.public_key())])
STRANGER_KEY = Ed25519PrivateKey.generate()
TOKEN_FROM, TOKEN_UNTIL = oslo("2026-11-22T18:00"), oslo("2026-11-22T21:00")


def token(
    *,
    doors: tuple[str, ...] = ("hovedinngang",),
    zones: tuple[str, ...] = (),
    site: str = "heggedal",
    booking: str | None = None,
    not_before: datetime = TOKEN_FROM,
    expires: datetime = TOKEN_UNTIL,
    key: Ed25519PrivateKey = ISSUER_KEY,
    token_id: bytes = bytes.fromhex("0102030405060708"),
    holder_key: bytes | None = None,
) -> str:
    claims = TokenClaims(
        issuer="asker",
        holder="p-jonas",
        site=site,
        not_before=not_before,
        expires=expires,
        doors=doors,
        zones=zones,
        booking=booking,
        token_id=token_id,
        holder_key=holder_key,
    )
    return issue_token(claims, key, key_id(key))


PHONE_KEY = ec.generate_private_key(ec.SECP256R1())
PHONE_PUBLIC = PHONE_KEY.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
OTHER_PHONE_KEY = ec.generate_private_key(ec.SECP256R1())


def phone_code(text: str, at: datetime, key: ec.EllipticCurvePrivateKey = PHONE_KEY) -> str:
    """What the phone page shows at `at`: the token and the phone's signature of the time step (r || s)."""
    step = time_step(at)
    r, s = decode_dss_signature(key.sign(proof_message(text, step), ec.ECDSA(hashes.SHA256())))
    return present(text, step, r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def tamper(text: str) -> str:
    """The same token with one character of the signature changed."""
    last = "0" if text[-2] != "0" else "1"
    return text[:-2] + last + text[-1]


def scan(text: str, now: datetime = SUNDAY_EVENING, door: str = "hovedinngang", **kw: Any) -> Verdict:
    return decide_token(VIEW, door, text, KEYS, kw.pop("revoked", frozenset()), now, **kw)


def tap(credential: m.Credential | None, now: datetime, door: str = "hovedinngang", **kw: Any) -> Verdict:
    kw.setdefault("pin_ok", None)
    return decide_card(VIEW, door, credential, [SJAKK, GRUPPE], now, **kw)


def pin_timed_out() -> Verdict:
    """Kari taps, is asked for her PIN, types two digits and walks off; she comes back 20 s later."""
    entry = PinEntry()
    assert tap(KARI, MONDAY_NOON).needs_pin
    entry.start(KARI.ref, "hovedinngang", now=100.0)
    entry.key("4", 101.0)
    entry.key("2", 102.0)
    assert entry.key("7", 122.0).outcome is PinOutcome.TIMED_OUT
    return denied(R.PIN_TIMEOUT, KARI)


@dataclass(frozen=True)
class Case:
    name: str
    run: Callable[[], Verdict]
    decision: m.Decision
    reason: m.Reason


CASES = [
    # cards: grants
    Case("resident on a monday at noon", lambda: tap(OLA, MONDAY_NOON), GRANT, R.SCHEDULE),
    Case("caretaker at 03:00", lambda: tap(VIDAR, TUESDAY_NIGHT), GRANT, R.ANY_TIME),
    Case(
        "caretaker on christmas day",
        lambda: tap(VIDAR, oslo("2026-12-25T08:00"), "motegang"),
        GRANT,
        R.ANY_TIME,
    ),
    Case("resident with PIN, right PIN", lambda: tap(KARI, MONDAY_NOON, pin_ok=True), GRANT, R.SCHEDULE),
    Case(
        "booking holder 10 min early",
        lambda: tap(NORA, oslo("2026-11-22T18:50"), "moterom-1"),
        GRANT,
        R.BOOKING,
    ),
    Case("booking holder at the entrance", lambda: tap(NORA, oslo("2026-11-22T18:50")), GRANT, R.BOOKING),
    Case(
        "booking holder at the corridor",
        lambda: tap(NORA, oslo("2026-11-22T20:40"), "motegang"),
        GRANT,
        R.BOOKING,
    ),
    Case("checked-in group room", lambda: tap(NORA, oslo("2026-11-23T17:30"), "motegang"), GRANT, R.BOOKING),
    # cards: denials
    Case("unknown card", lambda: tap(None, MONDAY_NOON), DENY, R.UNKNOWN_CREDENTIAL),
    Case(
        "lock-down, even staff", lambda: tap(SIRI, MONDAY_NOON, pin_ok=True, lockdown=True), DENY, R.LOCKDOWN
    ),
    Case("blocked resident", lambda: tap(PER, MONDAY_NOON), DENY, R.CREDENTIAL_BLOCKED),
    Case("card valid from tomorrow", lambda: tap(NEW_CARD, MONDAY_NOON), DENY, R.CREDENTIAL_NOT_YET_VALID),
    Case("card expired", lambda: tap(OLD_CARD, MONDAY_NOON), DENY, R.CREDENTIAL_EXPIRED),
    Case("minor without consent", lambda: tap(EMIL, MONDAY_NOON), DENY, R.CONSENT_MISSING),
    Case("card locked after wrong PINs", lambda: tap(KARI, MONDAY_NOON, pin_locked=True), DENY, R.PIN_LOCKED),
    Case("wrong PIN", lambda: tap(KARI, MONDAY_NOON, pin_ok=False), DENY, R.WRONG_PIN),
    Case("PIN entry timed out", pin_timed_out, DENY, R.PIN_TIMEOUT),
    Case("resident on a sunday evening", lambda: tap(OLA, SUNDAY_EVENING), DENY, R.SITE_CLOSED),
    Case("resident on christmas day", lambda: tap(OLA, oslo("2026-12-25T12:00")), DENY, R.SITE_CLOSED),
    Case("youth group after 20:00", lambda: tap(SARA, MONDAY_LATE, "bibliotek"), DENY, R.OUTSIDE_SCHEDULE),
    Case("resident at a meeting room", lambda: tap(OLA, MONDAY_NOON, "moterom-1"), DENY, R.NO_BOOKING),
    Case("holder 20 min early", lambda: tap(NORA, oslo("2026-11-22T18:40"), "moterom-1"), DENY, R.NO_BOOKING),
    Case("resident in the corridor", lambda: tap(SARA, MONDAY_NOON, "motegang"), DENY, R.NO_ACCESS_TO_ZONE),
    Case("corridor, booked for 17:00", lambda: tap(OLA, MONDAY_NOON, "motegang"), DENY, R.NO_BOOKING),
    Case("another site's group", lambda: tap(VISITOR, MONDAY_NOON), DENY, R.NO_ACCESS_TO_ZONE),
    Case(
        "resident, clock at 1970",
        lambda: tap(OLA, BOOT_WITHOUT_NETWORK, clock_trusted=False),
        DENY,
        R.CLOCK_UNSET,
    ),
    Case(
        "caretaker, clock at 1970, deny_all",
        lambda: tap(VIDAR, BOOT_WITHOUT_NETWORK, clock_trusted=False, clock_policy=ClockPolicy.DENY_ALL),
        DENY,
        R.CLOCK_UNSET,
    ),
    Case(
        "caretaker, clock at 1970, staff_only",
        lambda: tap(VIDAR, BOOT_WITHOUT_NETWORK, clock_trusted=False),
        GRANT,
        R.ANY_TIME,
    ),
    # phone tokens
    Case("token on a sunday evening", lambda: scan(token()), GRANT, R.SCHEDULE),
    Case(
        "booking token for the meeting rooms",
        lambda: scan(token(doors=(), zones=("moterom",), booking="b17"), door="moterom-1"),
        GRANT,
        R.BOOKING,
    ),
    Case("token expired", lambda: scan(token(), now=oslo("2026-11-22T21:05")), DENY, R.TOKEN_EXPIRED),
    Case("token too early", lambda: scan(token(), now=oslo("2026-11-22T17:00")), DENY, R.TOKEN_NOT_YET_VALID),
    Case("token from a stranger's key", lambda: scan(token(key=STRANGER_KEY)), DENY, R.TOKEN_UNKNOWN_KEY),
    Case("token with a changed signature", lambda: scan(tamper(token())), DENY, R.TOKEN_INVALID),
    Case("a library barcode", lambda: scan("03010012345678"), DENY, R.TOKEN_INVALID),
    Case("token for holmen", lambda: scan(token(site="holmen")), DENY, R.TOKEN_WRONG_SITE),
    Case(
        "token for another door",
        lambda: scan(token(doors=("bibliotek",)), door="moterom-1"),
        DENY,
        R.TOKEN_WRONG_DOOR,
    ),
    Case(
        "revoked token",
        lambda: scan(token(), revoked=frozenset({"0102030405060708"})),
        DENY,
        R.TOKEN_REVOKED,
    ),
    Case("token during lock-down", lambda: scan(token(), lockdown=True), DENY, R.LOCKDOWN),
    Case(
        "token, clock at 1970",
        lambda: scan(token(), now=BOOT_WITHOUT_NETWORK, clock_trusted=False),
        DENY,
        R.CLOCK_UNSET,
    ),
    Case("token, clock not trusted", lambda: scan(token(), clock_trusted=False), DENY, R.CLOCK_UNSET),
    Case(
        "phone-bound token shown without the phone's proof",
        lambda: scan(token(holder_key=PHONE_PUBLIC)),
        DENY,
        R.PHONE_PROOF_MISSING,
    ),
    Case(
        "screenshot of a phone-bound code, two minutes old",
        lambda: scan(phone_code(token(holder_key=PHONE_PUBLIC), SUNDAY_EVENING - timedelta(minutes=2))),
        DENY,
        R.PHONE_PROOF_STALE,
    ),
    Case(
        "phone-bound code signed by another phone",
        lambda: scan(phone_code(token(holder_key=PHONE_PUBLIC), SUNDAY_EVENING, OTHER_PHONE_KEY)),
        DENY,
        R.PHONE_PROOF_INVALID,
    ),
]

# Reasons the engine never gives: other parts of the agent decide these (door buttons, fire, remote unlock),
# and central folds a blocked person into a blocked credential and leaves revoked credentials out.
NOT_FROM_THE_ENGINE = {
    R.REMOTE_UNLOCK,
    R.EXIT_REQUEST,
    R.FIRE_RELEASE,
    R.PERSON_BLOCKED,
    R.CREDENTIAL_REVOKED,
}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decision(case: Case) -> None:
    verdict = case.run()
    assert (verdict.decision, verdict.reason) == (case.decision, case.reason)
    assert verdict.granted is (case.decision is GRANT)
    assert not verdict.needs_pin


def test_every_reason_the_engine_can_give_has_a_case() -> None:
    assert {c.reason for c in CASES} == set(m.Reason) - NOT_FROM_THE_ENGINE


# --- details a caretaker or the statistics rely on --------------------------------------------------------


def test_a_verdict_names_the_card_and_the_person() -> None:
    verdict = tap(OLA, SUNDAY_EVENING)
    assert (verdict.credential_ref, verdict.person_ref, verdict.booking_ref) == ("c2", "p-ola", None)


def test_a_booking_grant_names_the_booking() -> None:
    assert tap(NORA, oslo("2026-11-22T18:50"), "moterom-1").booking_ref == "b17"


def test_a_card_with_a_pin_asks_for_it_before_opening() -> None:
    verdict = tap(KARI, MONDAY_NOON)
    assert verdict == Verdict(DENY, R.SCHEDULE, "c1", "p-kari", needs_pin=True)
    assert not verdict.granted


def test_a_card_with_a_pin_is_not_asked_for_it_when_it_would_be_refused_anyway() -> None:
    verdict = tap(KARI, SUNDAY_EVENING)
    assert (verdict.reason, verdict.needs_pin) == (R.SITE_CLOSED, False)


def test_a_card_without_a_pin_opens_with_the_card_alone_whatever_pin_ok_says() -> None:
    assert tap(OLA, MONDAY_NOON, pin_ok=False).granted


def test_staff_with_a_pin_on_an_unset_clock_still_need_the_pin() -> None:
    asked = tap(SIRI, BOOT_WITHOUT_NETWORK, clock_trusted=False)
    assert (asked.reason, asked.needs_pin) == (R.ANY_TIME, True)
    assert tap(SIRI, BOOT_WITHOUT_NETWORK, clock_trusted=False, pin_ok=True).granted


def test_normal_clock_policy_decides_with_the_time_given_ignoring_validity() -> None:
    # 1970-01-01 was a Thursday; 01:00 in Oslo Heggedal is closed. valid_from (2026) is not held against her.
    verdict = tap(OLA, BOOT_WITHOUT_NETWORK, clock_trusted=False, clock_policy=ClockPolicy.NORMAL)
    assert verdict.reason is R.SITE_CLOSED
    day = datetime(1970, 1, 1, 11, tzinfo=UTC)
    assert tap(OLA, day, clock_trusted=False, clock_policy=ClockPolicy.NORMAL).granted


def test_a_resident_on_an_unset_clock_is_refused_even_inside_opening_hours() -> None:
    assert tap(OLA, MONDAY_NOON, clock_trusted=False).reason is R.CLOCK_UNSET


def test_the_booking_margin_holds_on_both_sides() -> None:
    assert tap(NORA, oslo("2026-11-22T18:45"), "moterom-1").granted
    assert tap(NORA, oslo("2026-11-22T20:45"), "moterom-1").granted
    assert tap(NORA, oslo("2026-11-22T20:46"), "moterom-1").reason is R.NO_BOOKING
    narrow = tap(NORA, oslo("2026-11-22T18:50"), "moterom-1", booking_margin=timedelta(minutes=5))
    assert narrow.reason is R.NO_BOOKING


def test_a_booking_opens_neither_another_zone_nor_another_persons_door() -> None:
    assert tap(NORA, oslo("2026-11-22T19:10"), "bibliotek").reason is R.NO_ACCESS_TO_ZONE
    someone_else = card("c12", "p-lise", m.PersonKind.RESIDENT)
    assert tap(someone_else, oslo("2026-11-22T19:10"), "moterom-1").reason is R.NO_BOOKING
    assert tap(someone_else, oslo("2026-11-22T19:10")).reason is R.NO_ACCESS_TO_ZONE


def test_a_booking_without_an_own_door_opens_the_corridor_of_its_zone() -> None:
    assert tap(OLA, oslo("2026-11-23T16:50"), "motegang").reason is R.BOOKING
    assert tap(OLA, oslo("2026-11-23T16:50"), "moterom-1").reason is R.BOOKING  # same zone


def test_blocked_beats_a_booking() -> None:
    blocked_nora = card("c8", "p-nora", m.PersonKind.ASSOCIATION_MEMBER, status=m.CredentialStatus.BLOCKED)
    assert tap(blocked_nora, oslo("2026-11-22T19:10"), "moterom-1").reason is R.CREDENTIAL_BLOCKED


def test_an_unknown_door_is_a_programming_error() -> None:
    with pytest.raises(UnknownDoorError, match="heggedal has no door 'bakdor'") as caught:
        tap(OLA, MONDAY_NOON, "bakdor")
    assert isinstance(caught.value, KeyError)
    with pytest.raises(KeyError):
        scan(token(), door="bakdor")


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        tap(OLA, datetime(2026, 11, 23, 12))


def test_a_token_verdict_names_the_token_the_holder_and_the_booking() -> None:
    verdict = scan(token(doors=(), zones=("moterom",), booking="b17"), door="motegang")
    assert (verdict.credential_ref, verdict.person_ref, verdict.booking_ref) == (
        "0102030405060708",
        "p-jonas",
        "b17",
    )


def test_a_token_is_honoured_within_the_clock_skew() -> None:
    assert scan(token(), now=oslo("2026-11-22T21:00:30")).granted
    assert scan(token(), now=oslo("2026-11-22T17:59:30")).granted
    assert not scan(token(), now=oslo("2026-11-22T21:00:30"), skew=timedelta(0)).granted


def test_a_token_scanned_in_lower_case_with_a_newline_still_works() -> None:
    assert scan(token().lower() + "\r\n").granted


def test_clock_trusted_compares_with_the_build_date() -> None:
    assert date(2026, 11, 23) == BUILD_DATE
    assert not clock_trusted(BOOT_WITHOUT_NETWORK, BUILD_DATE)
    assert not clock_trusted(datetime(2026, 11, 22, 23, 59, tzinfo=UTC), BUILD_DATE)
    assert clock_trusted(datetime(2026, 11, 23, 0, 0, tzinfo=UTC), BUILD_DATE)


# --- config faults are clear one-line errors ----------------------------------------------------------------


def test_a_door_in_an_unknown_zone_is_refused() -> None:
    doors = [m.Door(slug="hovedinngang", name="Hovedinngang", zone="kafe", kind=m.DoorKind.ENTRANCE)]
    with pytest.raises(SiteConfigError, match="door hovedinngang names zone 'kafe'"):
        SiteView.from_config(heggedal_config(doors=doors, rooms=[]))


def test_a_door_listed_twice_is_refused() -> None:
    door = m.Door(slug="hovedinngang", name="Hovedinngang", zone="torg", kind=m.DoorKind.ENTRANCE)
    with pytest.raises(SiteConfigError, match="door 'hovedinngang' appears twice"):
        SiteView.from_config(heggedal_config(doors=[door, door], rooms=[]))


def test_a_room_behind_an_unknown_door_is_refused() -> None:
    room = m.Room(slug="kjokken", name="Kjøkken", zone="moterom", door="kjokkendor")
    with pytest.raises(SiteConfigError, match="room kjokken names door 'kjokkendor'"):
        SiteView.from_config(heggedal_config(rooms=[room]))


def test_an_unknown_timezone_is_refused() -> None:
    with pytest.raises(SiteConfigError, match="heggedal: unknown timezone 'Europe/Atlantis'"):
        SiteView.from_config(heggedal_config(timezone="Europe/Atlantis"))


def test_a_group_for_an_unknown_zone_is_refused() -> None:
    group = m.AccessGroup(slug="innbyggere", zones=["kafe"])
    with pytest.raises(SiteConfigError, match="group innbyggere names zone 'kafe'"):
        SiteView.from_config(heggedal_config(groups=[group]))


# --- properties ---------------------------------------------------------------------------------------------

_DOORS = sorted(VIEW.doors)
_GROUPS = [*sorted(VIEW.groups), "holmen-innbyggere"]
_START = datetime(2026, 1, 1, tzinfo=UTC)
_minutes = st.integers(0, 2 * 365 * 24 * 60)
_rarely = st.integers(0, 4).map(lambda n: n == 0)  # the refusing flags, true one time in five
_around = st.integers(-3 * 24 * 60, 3 * 24 * 60).map(lambda n: timedelta(minutes=n))


@st.composite
def _credentials(draw: st.DrawFn, now: datetime) -> m.Credential:
    """A card whose validity window, when it has one, starts or ends within days of `now`."""
    valid_from = draw(st.none() | _around.map(lambda d: now + d))
    valid_until = draw(st.none() | _around.map(lambda d: now + d))
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        valid_until = valid_from + timedelta(minutes=1)
    return card(
        "c1",
        "p1",
        draw(st.sampled_from(list(m.PersonKind))),
        *draw(st.lists(st.sampled_from(_GROUPS), max_size=3, unique=True)),
        status=m.CredentialStatus.BLOCKED if draw(_rarely) else m.CredentialStatus.ACTIVE,
        valid_from=valid_from,
        valid_until=valid_until,
        consent_missing=draw(_rarely),
        pin_hash=draw(st.sampled_from([None, PIN_HASH])),
    )


@st.composite
def _bookings(draw: st.DrawFn, now: datetime) -> list[m.Booking]:
    found = []
    for n in range(draw(st.integers(0, 3))):
        # Often just inside or outside the 15-minute margin before the start.
        starts = now + timedelta(minutes=draw(st.integers(-300, 300) | st.integers(13, 17)))
        found.append(
            m.Booking(
                ref=f"b{n}",
                room=draw(st.sampled_from(["moterom-1", "grupperom"])),
                holders=draw(st.sampled_from([["p1"], ["p2"], ["p2", "p1"]])),
                starts_at=starts,
                ends_at=starts + timedelta(minutes=draw(st.integers(15, 240))),
                status=draw(st.sampled_from(list(m.BookingStatus))),
            )
        )
    return found


Situation = tuple[m.Credential, str, datetime, list[m.Booking], dict[str, Any]]


@st.composite
def _situations(draw: st.DrawFn) -> Situation:
    now = _START + timedelta(minutes=draw(_minutes), seconds=draw(st.integers(0, 59)))
    options: dict[str, Any] = {
        "pin_ok": draw(st.sampled_from([None, True, True, False])),
        "clock_trusted": not draw(_rarely),
        "clock_policy": draw(st.sampled_from(list(ClockPolicy))),
        "lockdown": draw(_rarely),
        "pin_locked": draw(_rarely),
    }
    return draw(_credentials(now)), draw(st.sampled_from(_DOORS)), now, draw(_bookings(now)), options


@settings(max_examples=400, deadline=None)
@given(_situations())
def test_every_grant_is_justified(
    situation: Situation,
) -> None:
    credential, door, now, bookings, options = situation
    verdict = decide_card(VIEW, door, credential, bookings, now, **options)
    if verdict.needs_pin:
        assert verdict.decision is DENY and credential.pin_hash is not None and options["pin_ok"] is None
    if not verdict.granted:
        return
    assert credential.status is m.CredentialStatus.ACTIVE
    assert not (options["lockdown"] or options["pin_locked"] or credential.consent_missing)
    assert credential.pin_hash is None or options["pin_ok"] is True
    zone = VIEW.doors[door].zone
    groups = [VIEW.groups[g] for g in credential.groups if g in VIEW.groups and zone in VIEW.groups[g].zones]
    if options["clock_trusted"] or options["clock_policy"] is ClockPolicy.NORMAL:
        if options["clock_trusted"]:
            assert credential.valid_from is None or credential.valid_from <= now
            assert credential.valid_until is None or now < credential.valid_until
        if verdict.reason is R.ANY_TIME:
            assert any(g.any_time for g in groups)
        elif verdict.reason is R.SCHEDULE:
            assert any(VIEW.calendar.group_allows(g, now) for g in groups)
        else:
            booking = next(b for b in bookings if b.ref == verdict.booking_ref)
            assert "p1" in booking.holders
            assert booking.starts_at - timedelta(minutes=15) <= now <= booking.ends_at + timedelta(minutes=15)
    else:
        assert options["clock_policy"] is ClockPolicy.STAFF_ONLY
        assert credential.person_kind in {m.PersonKind.STAFF, m.PersonKind.CARETAKER}
        assert verdict.reason is R.ANY_TIME and groups


@settings(max_examples=200, deadline=None)
@given(_situations())
def test_a_blocked_card_never_opens(
    situation: Situation,
) -> None:
    credential, door, now, bookings, options = situation
    blocked = msgspec.structs.replace(credential, status=m.CredentialStatus.BLOCKED)
    for pin_ok in (None, True, False):
        verdict = decide_card(VIEW, door, blocked, bookings, now, **{**options, "pin_ok": pin_ok})
        assert (verdict.decision, verdict.reason) == (
            DENY,
            R.CREDENTIAL_BLOCKED,
        ) or verdict.reason is R.LOCKDOWN


def phone(ref: str, person: str, *groups: str, **kw: Any) -> m.Credential:
    kw.setdefault("valid_from", datetime(2026, 1, 5, 9, tzinfo=UTC))
    return m.Credential(
        ref=ref,
        person=person,
        person_kind=m.PersonKind.RESIDENT,
        kind=m.CredentialKind.PHONE,
        groups=list(groups),
        **kw,
    )


def test_a_phone_holder_is_judged_by_the_same_rules_as_their_card_but_without_a_pin() -> None:
    ola_phone = phone("ph2", "p-ola", "innbyggere")
    assert decide_phone_holder(VIEW, "hovedinngang", [OLA, ola_phone], [], MONDAY_LATE).granted
    closed = decide_phone_holder(VIEW, "hovedinngang", [ola_phone], [], SUNDAY_EVENING)
    assert (closed.granted, closed.reason) == (False, m.Reason.SITE_CLOSED)


def test_a_phone_holder_without_a_phone_credential_or_with_a_blocked_one_is_refused() -> None:
    assert (
        decide_phone_holder(VIEW, "hovedinngang", [OLA], [], MONDAY_LATE).reason
        is m.Reason.UNKNOWN_CREDENTIAL
    )
    blocked = phone("ph5", "p-per", "innbyggere", status=m.CredentialStatus.BLOCKED)
    assert decide_phone_holder(VIEW, "hovedinngang", [blocked], [], MONDAY_LATE).reason is (
        m.Reason.CREDENTIAL_BLOCKED
    )


def test_a_phone_holder_gets_into_their_booked_room_and_never_on_an_unset_clock() -> None:
    nora_phone = phone("ph8", "p-nora")
    assert decide_phone_holder(VIEW, "moterom-1", [nora_phone], [SJAKK], SUNDAY_EVENING).reason is (
        m.Reason.BOOKING
    )
    unset = decide_phone_holder(
        VIEW, "hovedinngang", [nora_phone], [SJAKK], BOOT_WITHOUT_NETWORK, clock_trusted=False
    )
    assert unset.reason is m.Reason.CLOCK_UNSET
