"""The kiosk's answers, decided by the agent from its replica on a manual clock: what is on today, check-in by
card, phone QR code or booking code, extend and end, and what the agent does about them (its replica, the
doors and the journal for central).

Heggedal on Monday 23 November 2026, meråpent until 21:00. Møterom 1 is booked by Sjakkklubben (Nora holds
it, Kari co-holds it) 18:00-20:00 and by Ola 20:30-21:00; Sofie has the group room 17:00-19:00.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from central.checkin import CheckinRules as CentralRules
from central.checkin import refusal as central_refusal
from central.models import BookingStatus as CentralStatus
from controller.agent import Agent, AgentSettings, Received
from controller.clock import ManualClock
from controller.inputs import CardPresented
from controller.kiosk_desk import CheckinRules, checkin_refusal, extend_choices
from controller.replica import Replica
from protocol import codec
from protocol import kiosk as k
from protocol import messages as m
from protocol.holder import present, proof_message, time_step
from protocol.keys import key_id
from protocol.token import TokenClaims, issue_token
from protocol.topics import Channel
from tests.test_controller_agent import ISSUER, KEY, FakeDoor, FakeSiteOutputs, card, signing_keys
from tests.test_controller_schedule import heggedal_config, oslo

NORA_UID = bytes.fromhex("04aa000000000001")
KARI_UID = bytes.fromhex("04aa000000000002")
OLA_UID = bytes.fromhex("04aa000000000003")
SOFIE_UID = bytes.fromhex("04aa000000000004")
PER_UID = bytes.fromhex("04aa000000000005")
VIDAR_UID = bytes.fromhex("04aa000000000006")
STRANGER_UID = bytes.fromhex("04aa0000000000ff")
RESIDENT, MEMBER = m.PersonKind.RESIDENT, m.PersonKind.ASSOCIATION_MEMBER

CREDENTIALS = [
    card("c1", "p-nora", MEMBER, "innbyggere", NORA_UID, pin=False),
    card("c2", "p-kari", RESIDENT, "innbyggere", KARI_UID, pin=False),
    card("c3", "p-ola", RESIDENT, "innbyggere", OLA_UID, pin=False),
    card("c4", "p-sofie", RESIDENT, "innbyggere", SOFIE_UID, pin=False),
    msgspec.structs.replace(
        card("c5", "p-per", RESIDENT, "innbyggere", PER_UID, pin=False), status=m.CredentialStatus.BLOCKED
    ),
    card("c6", "p-vidar", m.PersonKind.CARETAKER, "vaktmestere", VIDAR_UID, pin=False),
    m.Credential(ref="c7", person="p-nora", person_kind=MEMBER, kind=m.CredentialKind.PHONE, groups=[]),
]
STYREMOTE = m.Booking(
    ref="b1",
    room="moterom-1",
    holders=["p-nora", "p-kari"],
    starts_at=oslo("2026-11-23T18:00"),
    ends_at=oslo("2026-11-23T20:00"),
    title="Styremøte",
    code="482615",
    shown_as="Sjakkklubben",
)
OLAS_KVELD = m.Booking(
    ref="b2",
    room="moterom-1",
    holders=["p-ola"],
    starts_at=oslo("2026-11-23T20:30"),
    ends_at=oslo("2026-11-23T21:00"),
    code="111111",
    shown_as="Ola",
)
LEKSEHJELP = m.Booking(
    ref="b3",
    room="grupperom",
    holders=["p-sofie"],
    starts_at=oslo("2026-11-23T17:00"),
    ends_at=oslo("2026-11-23T19:00"),
    code="222222",
    shown_as="Sofie",
)
BEFORE_SIX = oslo("2026-11-23T17:50")


class Phone:
    """A resident's phone: a P-256 key that never leaves it, signing like WebCrypto's ECDSA/SHA-256."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())

    @property
    def public_raw(self) -> bytes:
        return self._key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)

    def show(self, token_text: str, at: datetime) -> str:
        step = time_step(at)
        r, s = decode_dss_signature(
            self._key.sign(proof_message(token_text, step), ec.ECDSA(hashes.SHA256()))
        )
        return present(token_text, step, r.to_bytes(32, "big") + s.to_bytes(32, "big"))


NORAS_PHONE = Phone()


def token(
    holder: str = "p-nora", *, site: str = "heggedal", phone: Phone | None = NORAS_PHONE, **kw: object
) -> str:
    claims = TokenClaims(
        issuer="asker",
        holder=holder,
        site=site,
        zones=("torg",),
        not_before=BEFORE_SIX - timedelta(hours=1),
        expires=BEFORE_SIX + timedelta(hours=6),
        holder_key=None if phone is None else phone.public_raw,
        **kw,  # type: ignore[arg-type]
    )
    return issue_token(claims, ISSUER, key_id(ISSUER))


class KioskLink:
    """What would go to central: every journaled event once, kiosk events included."""

    def __init__(self) -> None:
        self.connected = True
        self.events: list[m.JournaledEvent] = []

    def publish_event(self, payload: bytes) -> None:
        event = codec.decode_for_channel(payload, Channel.EVENT)
        assert isinstance(event, m.AccessEvent | m.AlarmEvent | m.SystemEvent | m.KioskEvent)
        if all(e.event_id != event.event_id for e in self.events):
            self.events.append(event)

    def publish_door_state(self, state: m.DoorState) -> None:
        pass

    def publish_command_result(self, result: m.CommandResult) -> None:
        pass

    def request_snapshot(self, have_seq: int | None, reason: str) -> None:
        pass

    def kiosk_events(self) -> list[m.KioskEvent]:
        return [e for e in self.events if isinstance(e, m.BookingCheckIn | m.BookingChange)]


class Torg:
    """The agent at Heggedal with the kiosk's requests answered on the test's thread."""

    def __init__(self, data_dir: Path, clock: ManualClock) -> None:
        self.clock = clock
        self.link = KioskLink()
        self.doors = {"hovedinngang": FakeDoor(), "moterom-1": FakeDoor()}
        settings = AgentSettings(site="heggedal", name="heggedal-pi", data_dir=data_dir, uid_hash_key=KEY)
        self.agent = Agent(settings, clock, dict(self.doors), site_hardware=FakeSiteOutputs(), link=self.link)

    def feed(self, *messages: m.Message) -> None:
        for message in messages:
            self.agent.submit(Received(message))
        self.agent.drain()
        self.agent.tick()

    def ask(self, request: k.Request) -> k.KioskReply:
        return self.agent.kiosk(request)

    def check_in(self, **fields: str) -> k.CheckInReply:
        """One of uid=, text= or code=, as the kiosk sends it."""
        method = {"uid": k.CheckInMethod.CARD, "text": k.CheckInMethod.QR, "code": k.CheckInMethod.CODE}
        reply = self.ask(k.CheckInRequest(method=method[next(iter(fields))], **fields))
        assert isinstance(reply, k.CheckInReply)
        return reply

    def tap(self, uid: bytes) -> k.CheckInReply:
        return self.check_in(uid=uid.hex())

    def change(self, request: k.ExtendRequest | k.EndRequest) -> k.ChangeReply:
        reply = self.ask(request)
        assert isinstance(reply, k.ChangeReply)
        return reply

    def today(self) -> k.TodayReply:
        reply = self.ask(k.TodayRequest())
        assert isinstance(reply, k.TodayReply)
        return reply

    def at(self, local: str) -> None:
        self.clock.set_wall(oslo(local))

    def booking(self, ref: str) -> m.Booking:
        found = self.agent.replica.booking(ref)
        assert found is not None
        return found


@pytest.fixture
def torg(tmp_path: Path) -> Iterator[Torg]:
    running = Torg(tmp_path / "agent", ManualClock(BEFORE_SIX))
    running.feed(
        heggedal_config(),
        signing_keys(),
        m.ReplicaSnapshot(
            site="heggedal",
            seq=10,
            generated_at=BEFORE_SIX,
            credentials=CREDENTIALS,
            bookings=[STYREMOTE, OLAS_KVELD, LEKSEHJELP],
        ),
    )
    yield running
    running.agent.close()


# --- the home screen ----------------------------------------------------------------------------------------


def test_the_home_screen_shows_the_site_its_hours_and_whats_on_without_naming_anyone(torg: Torg) -> None:
    today = torg.today()
    assert (today.site, today.name, today.timezone) == ("heggedal", "Heggedal innbyggertorg", "Europe/Oslo")
    assert today.open and today.closes_at == oslo("2026-11-23T21:00") and today.opens_at is None
    assert today.closing_in_minutes is None and today.central_online
    shown = {room.slug: [(b.shown_as, b.starts_at) for b in room.bookings] for room in today.rooms}
    assert shown == {
        "moterom-1": [("Sjakkklubben", STYREMOTE.starts_at), ("Ola", OLAS_KVELD.starts_at)],
        "grupperom": [("Sofie", LEKSEHJELP.starts_at)],
    }
    line = k.encode(today)
    assert b"p-nora" not in line and b"482615" not in line  # no people refs, no codes on the screen


def test_the_closing_countdown_starts_with_the_agents_first_closing_warning(torg: Torg) -> None:
    torg.at("2026-11-23T20:44:00")
    torg.feed()
    assert torg.today().closing_in_minutes is None
    torg.at("2026-11-23T20:45:30")
    torg.clock.advance(1)
    torg.agent.tick()
    assert torg.today().closing_in_minutes == 15
    torg.clock.advance(120)
    assert torg.today().closing_in_minutes == 13


def test_on_a_closed_sunday_the_screen_says_when_it_opens_and_that_central_is_away(torg: Torg) -> None:
    torg.at("2026-11-22T19:30")
    torg.link.connected = False
    today = torg.today()
    assert not today.open and today.closes_at is None
    assert today.opens_at == oslo("2026-11-23T07:00")
    assert not today.central_online


def test_an_agent_without_configuration_says_so(tmp_path: Path) -> None:
    bare = Torg(tmp_path / "bare", ManualClock(BEFORE_SIX))
    try:
        assert isinstance(bare.ask(k.TodayRequest()), k.ErrorReply)
        assert bare.tap(NORA_UID).outcome is k.CheckInOutcome.NOT_READY
    finally:
        bare.agent.close()


# --- check-in -----------------------------------------------------------------------------------------------


def test_nora_taps_her_card_and_is_checked_in_with_the_way_to_her_room(torg: Torg) -> None:
    reply = torg.tap(NORA_UID)
    assert reply.outcome is k.CheckInOutcome.CHECKED_IN
    assert reply.booking == k.BookingCard(
        ref="b1",
        room="moterom-1",
        room_name="Møterom 1",
        starts_at=STYREMOTE.starts_at,
        ends_at=STYREMOTE.ends_at,
        zone_name="Møterommene",
        door="moterom-1",
        door_name="Møterom 1",
        title="Styremøte",
    )
    assert (reply.opens_at, reply.closes_at) == (oslo("2026-11-23T17:45"), oslo("2026-11-23T18:15"))
    assert reply.session is not None
    assert reply.extend_minutes == [30]  # Ola has the room from 20:30
    assert not reply.can_end  # it has not started
    assert torg.booking("b1").status is m.BookingStatus.CHECKED_IN
    [event] = torg.link.kiosk_events()
    assert isinstance(event, m.BookingCheckIn)
    assert (event.booking, event.person, event.method) == ("b1", "p-nora", m.CheckInVia.CARD)
    assert event.device_time == BEFORE_SIX


def test_a_second_tap_says_already_checked_in_and_journals_nothing_more(torg: Torg) -> None:
    torg.tap(NORA_UID)
    again = torg.tap(NORA_UID)
    assert again.outcome is k.CheckInOutcome.ALREADY_CHECKED_IN
    assert again.booking is not None and again.booking.ref == "b1" and again.session is not None
    assert len(torg.link.kiosk_events()) == 1


def test_a_co_holder_checks_the_booking_in_but_only_the_holder_extends_or_ends_it(torg: Torg) -> None:
    torg.at("2026-11-23T18:05")
    kari = torg.tap(KARI_UID)
    assert kari.outcome is k.CheckInOutcome.CHECKED_IN and kari.booking is not None
    assert kari.booking.ref == "b1" and kari.session is not None
    assert (kari.extend_minutes, kari.can_end) == ([], False)
    refused = torg.change(k.ExtendRequest(session=kari.session, minutes=30))
    assert refused.outcome is k.ChangeOutcome.NOT_ALLOWED
    [event] = torg.link.kiosk_events()
    assert isinstance(event, m.BookingCheckIn) and event.person == "p-kari"
    nora = torg.tap(NORA_UID)
    assert nora.outcome is k.CheckInOutcome.ALREADY_CHECKED_IN
    assert (nora.extend_minutes, nora.can_end) == ([30], True)


@pytest.mark.parametrize(
    ("local", "outcome"),
    [
        ("2026-11-23T17:44:59", k.CheckInOutcome.TOO_EARLY),
        ("2026-11-23T17:45:00", k.CheckInOutcome.CHECKED_IN),
        ("2026-11-23T18:14:59", k.CheckInOutcome.CHECKED_IN),
        ("2026-11-23T18:15:00", k.CheckInOutcome.TOO_LATE),
    ],
)
def test_the_check_in_window_runs_from_15_minutes_before_to_15_after_the_start(
    torg: Torg, local: str, outcome: k.CheckInOutcome
) -> None:
    torg.at(local)
    reply = torg.check_in(code="482615")
    assert reply.outcome is outcome
    assert reply.booking is not None and reply.booking.ref == "b1"
    assert reply.opens_at == oslo("2026-11-23T17:45")
    assert (reply.session is not None) == (outcome is k.CheckInOutcome.CHECKED_IN)
    checked_in = [e for e in torg.link.kiosk_events() if isinstance(e, m.BookingCheckIn)]
    assert [(e.booking, e.method, e.person) for e in checked_in] == (
        [("b1", m.CheckInVia.CODE, None)] if outcome is k.CheckInOutcome.CHECKED_IN else []
    )


def test_too_early_says_when_check_in_opens(torg: Torg) -> None:
    reply = torg.tap(OLA_UID)
    assert reply.outcome is k.CheckInOutcome.TOO_EARLY
    assert reply.opens_at == oslo("2026-11-23T20:15") and reply.booking is not None
    assert reply.booking.ref == "b2" and reply.session is None
    assert torg.booking("b2").status is m.BookingStatus.CONFIRMED


def test_too_late_once_the_window_has_closed_even_while_the_booking_runs(torg: Torg) -> None:
    reply = torg.tap(SOFIE_UID)
    assert reply.outcome is k.CheckInOutcome.TOO_LATE
    assert reply.closes_at == oslo("2026-11-23T17:15") and reply.session is None
    assert torg.link.kiosk_events() == []


def test_who_has_nothing_here_is_told_so_and_strangers_are_unknown(torg: Torg) -> None:
    assert torg.tap(VIDAR_UID).outcome is k.CheckInOutcome.NO_BOOKING
    assert torg.tap(STRANGER_UID).outcome is k.CheckInOutcome.UNKNOWN
    assert torg.check_in(code="000000").outcome is k.CheckInOutcome.UNKNOWN
    blocked = torg.tap(PER_UID)
    assert (blocked.outcome, blocked.reason) == (k.CheckInOutcome.REFUSED, "credential_blocked")
    assert torg.link.kiosk_events() == []


def test_on_an_unset_clock_nothing_is_checked_in(torg: Torg) -> None:
    torg.clock.set_wall(datetime(1970, 1, 1, 0, 5, tzinfo=UTC))
    reply = torg.check_in(code="482615")
    assert (reply.outcome, reply.reason) == (k.CheckInOutcome.REFUSED, "clock_unset")


def test_nora_checks_in_with_the_qr_code_her_phone_shows(torg: Torg) -> None:
    reply = torg.check_in(text=NORAS_PHONE.show(token(), BEFORE_SIX))
    assert reply.outcome is k.CheckInOutcome.CHECKED_IN and reply.booking is not None
    [event] = torg.link.kiosk_events()
    assert isinstance(event, m.BookingCheckIn) and (event.person, event.method) == ("p-nora", m.CheckInVia.QR)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (lambda: NORAS_PHONE.show(token(), BEFORE_SIX - timedelta(minutes=5)), "phone_proof_stale"),
        (lambda: token(), "phone_proof_missing"),
        (lambda: NORAS_PHONE.show(token(site="holmen"), BEFORE_SIX), "token_wrong_site"),
        (lambda: NORAS_PHONE.show(token(token_id=bytes.fromhex("dead0001")), BEFORE_SIX), "token_revoked"),
        (lambda: "MA2:NOT-A-CODE", "token_invalid"),
        (lambda: "hello", "token_invalid"),
    ],
    ids=["screenshot", "no-proof", "wrong-site", "revoked", "garbled", "not-a-token"],
)
def test_a_qr_code_the_doors_would_refuse_is_refused_with_their_reason(
    torg: Torg, text: object, reason: str
) -> None:
    torg.feed(
        m.Revocations(
            site="heggedal",
            revision=1,
            issued_at=BEFORE_SIX,
            tokens=[m.RevokedToken(token_id="dead0001", expires_at=BEFORE_SIX + timedelta(days=1))],
        )
    )
    assert callable(text)
    reply = torg.check_in(text=text())
    assert (reply.outcome, reply.reason) == (k.CheckInOutcome.REFUSED, reason)
    assert torg.link.kiosk_events() == []


def test_a_phone_code_of_someone_without_a_phone_key_here_is_unknown(torg: Torg) -> None:
    reply = torg.check_in(text=NORAS_PHONE.show(token("p-ola"), BEFORE_SIX))
    assert reply.outcome is k.CheckInOutcome.UNKNOWN


# --- extend and end -----------------------------------------------------------------------------------------


def test_extend_up_to_the_next_booking_and_no_further(torg: Torg) -> None:
    torg.at("2026-11-23T18:05")
    session = torg.tap(NORA_UID).session
    assert session is not None
    taken = torg.change(k.ExtendRequest(session=session, minutes=60))
    assert (taken.outcome, taken.until) == (k.ChangeOutcome.ROOM_TAKEN, OLAS_KVELD.starts_at)
    done = torg.change(k.ExtendRequest(session=session, minutes=30))
    assert (done.outcome, done.ends_at) == (k.ChangeOutcome.ACCEPTED, oslo("2026-11-23T20:30"))
    assert torg.booking("b1").ends_at == oslo("2026-11-23T20:30")
    again = torg.change(k.ExtendRequest(session=session, minutes=30))
    assert (again.outcome, again.until) == (k.ChangeOutcome.ROOM_TAKEN, OLAS_KVELD.starts_at)
    change = torg.link.kiosk_events()[-1]
    assert isinstance(change, m.BookingChange)
    assert (change.booking, change.change, change.ends_at, change.person) == (
        "b1",
        m.BookingChangeKind.EXTEND,
        oslo("2026-11-23T20:30"),
        "p-nora",
    )


def test_extension_choices_are_30_60_or_120_minutes_as_far_as_the_room_is_free(tmp_path: Path) -> None:
    with Replica(tmp_path / "r.db", site="heggedal") as replica:
        evening = STYREMOTE.ends_at

        def choices(next_start: datetime | None) -> list[int]:
            others = (
                []
                if next_start is None
                else [
                    msgspec.structs.replace(
                        OLAS_KVELD, starts_at=next_start, ends_at=next_start + timedelta(hours=1)
                    )
                ]
            )
            replica.apply_snapshot(
                m.ReplicaSnapshot(site="heggedal", seq=1, generated_at=evening, bookings=[STYREMOTE, *others])
            )
            return extend_choices(STYREMOTE, replica, BEFORE_SIX)

        assert choices(None) == [30, 60, 120]
        assert choices(evening + timedelta(minutes=90)) == [30, 60]
        assert choices(evening + timedelta(minutes=45)) == [30]
        assert choices(evening + timedelta(minutes=29)) == []
        assert choices(evening) == []
        assert extend_choices(STYREMOTE, replica, evening) == []  # over: nothing to extend


def test_ending_early_frees_the_room_and_her_card_no_longer_opens_it(torg: Torg) -> None:
    torg.at("2026-11-23T18:05")
    reply = torg.tap(NORA_UID)
    assert reply.can_end and reply.session is not None
    torg.at("2026-11-23T19:00")
    torg.feed()
    torg.agent.submit(CardPresented("moterom-1", NORA_UID))
    torg.agent.drain()
    assert torg.doors["moterom-1"].is_unlocked  # her booking opens the room
    torg.clock.advance(10)
    torg.agent.tick()
    ended = torg.change(k.EndRequest(session=reply.session))
    assert (ended.outcome, ended.ends_at) == (k.ChangeOutcome.ACCEPTED, torg.clock.now())
    assert torg.booking("b1").ends_at == torg.clock.now()
    torg.clock.advance(1)
    torg.agent.submit(CardPresented("moterom-1", NORA_UID))
    torg.agent.drain()
    assert not torg.doors["moterom-1"].is_unlocked
    access = [e for e in torg.link.events if isinstance(e, m.AccessEvent)]
    assert [e.reason for e in access] == [m.Reason.BOOKING, m.Reason.NO_BOOKING]
    change = torg.link.kiosk_events()[-1]
    assert isinstance(change, m.BookingChange) and change.change is m.BookingChangeKind.END


def test_a_booking_that_has_not_started_cannot_be_ended_from_the_kiosk(torg: Torg) -> None:
    session = torg.tap(NORA_UID).session
    assert session is not None
    refused = torg.change(k.EndRequest(session=session))
    assert refused.outcome is k.ChangeOutcome.NOT_ALLOWED
    assert torg.booking("b1").ends_at == STYREMOTE.ends_at


def test_a_session_lasts_two_minutes_and_an_unknown_one_is_expired(torg: Torg) -> None:
    session = torg.tap(NORA_UID).session
    assert session is not None
    torg.clock.advance(121)
    expired = torg.change(k.ExtendRequest(session=session, minutes=30))
    assert expired.outcome is k.ChangeOutcome.SESSION_EXPIRED
    made_up = torg.change(k.EndRequest(session="x" * 32))
    assert made_up.outcome is k.ChangeOutcome.SESSION_EXPIRED
    assert torg.booking("b1").ends_at == STYREMOTE.ends_at


# --- the agent's rules are central's ------------------------------------------------------------------------

START = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
OFFSETS_S = [-16 * 60, -15 * 60 - 1, -15 * 60, -60, 0, 60, 15 * 60 - 1, 15 * 60, 15 * 60 + 1, 3 * 3600]


@pytest.mark.parametrize("status", [m.BookingStatus.CONFIRMED, m.BookingStatus.CHECKED_IN])
@pytest.mark.parametrize(("before", "after"), [(15, 15), (0, 30), (30, 0), (10, 5)])
def test_the_agent_and_central_agree_on_every_check_in_window(
    status: m.BookingStatus, before: int, after: int
) -> None:
    ours = CheckinRules(timedelta(minutes=before), timedelta(minutes=after))
    theirs = CentralRules(timedelta(minutes=before), timedelta(minutes=after))
    for offset in OFFSETS_S:
        now = START + timedelta(seconds=offset)
        mine = checkin_refusal(status, START, now, ours)
        central = central_refusal(CentralStatus(status.value), START, now, theirs)
        assert (mine.value if mine else None) == (central.value if central else None), (offset, before, after)


def test_after_five_wrong_codes_typed_codes_rest_for_five_minutes_but_cards_still_work(torg: Torg) -> None:
    torg.at("2026-11-23T17:50")
    for wrong in ("000001", "000002", "000003", "000004", "000005"):
        assert torg.check_in(code=wrong).outcome is k.CheckInOutcome.UNKNOWN
    assert torg.check_in(code="482615").outcome is k.CheckInOutcome.TOO_MANY_TRIES  # even the right one
    torg.clock.advance(4 * 60)
    assert torg.check_in(code="482615").outcome is k.CheckInOutcome.TOO_MANY_TRIES
    assert torg.tap(NORA_UID).outcome is k.CheckInOutcome.CHECKED_IN  # her card is no guess
    torg.clock.advance(60)
    assert torg.check_in(code="482615").outcome is k.CheckInOutcome.ALREADY_CHECKED_IN


def test_the_kiosk_uses_the_check_in_window_central_publishes(torg: Torg) -> None:
    torg.at("2026-11-23T17:20")  # 40 minutes before the 18:00 meeting: too early with the default window
    assert torg.check_in(code="482615").outcome is k.CheckInOutcome.TOO_EARLY
    wider = heggedal_config(revision=8, checkin_opens_minutes=60)
    torg.feed(wider)
    assert torg.check_in(code="482615").outcome is k.CheckInOutcome.CHECKED_IN
