"""The kiosk's questions answered from the agent's replica: what is on today, check-in, extend and end.

The kiosk talks only to its agent (protocol/kiosk.py), so everything here is decided from what the agent
holds: the site config, the replica's credentials and bookings, the signing keys and revocations. Nothing
here reads a clock or writes anything: the agent gathers a `DeskContext` for each request (the replica only
read through it) and carries out the `Effect` an answer may name (change the booking in its replica, journal
the event for central).

Check-in rules are central's (central/checkin.py), re-implemented because the controller must not import
central; tests/test_kiosk_desk.py checks both agree. A successful check-in opens a short kiosk session (a
random id remembered for `session_seconds`) in which the same person may extend or end the booking.
"""

from __future__ import annotations

import math
import secrets
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo

from msgspec.structs import replace

from controller.decide import SiteView, card_refusal, phone_credential
from controller.uid import CardUidError, card_uid_hash
from protocol import kiosk as k
from protocol import messages as m
from protocol.holder import PRESENTATION_PREFIX, verify_presentation
from protocol.keys import PublicKeySet
from protocol.token import PREFIX as TOKEN_PREFIX
from protocol.token import TokenError, deny_reason

EXTEND_CHOICES = (30, 60, 120)  # minutes the kiosk offers
MAX_EXTENSION = timedelta(hours=4)  # central's limit for one extension (central/services/booking_changes.py)
WRONG_CODES_ALLOWED = 5
WRONG_CODE_WINDOW_S = 10 * 60.0
CODES_REST_S = 5 * 60.0
CODE_HORIZON = timedelta(days=14)  # a booking code is looked for among bookings up to this far ahead
MAX_SESSIONS = 64


# --- the check-in window (central/checkin.py) --------------------------------------------------------------


@dataclass(frozen=True)
class CheckinRules:
    opens_before: timedelta = timedelta(minutes=15)
    closes_after: timedelta = timedelta(minutes=15)

    def __post_init__(self) -> None:
        if self.opens_before < timedelta(0) or self.closes_after < timedelta(0):
            raise ValueError("the check-in window cannot open after the start or close before it")


class CheckinRefusal(StrEnum):
    TOO_EARLY = "too_early"
    TOO_LATE = "too_late"


def checkin_window(starts_at: datetime, rules: CheckinRules) -> tuple[datetime, datetime]:
    """[opens, closes): from `opens_before` the start until `closes_after` it."""
    return starts_at - rules.opens_before, starts_at + rules.closes_after


def checkin_refusal(
    status: m.BookingStatus, starts_at: datetime, now: datetime, rules: CheckinRules
) -> CheckinRefusal | None:
    """Why a live booking cannot be checked in now, or None (a booking already checked in stays so)."""
    if status is m.BookingStatus.CHECKED_IN:
        return None
    opens, closes = checkin_window(starts_at, rules)
    if now < opens:
        return CheckinRefusal.TOO_EARLY
    if now >= closes:
        return CheckinRefusal.TOO_LATE
    return None


# --- what the desk reads and what it asks the agent to do ---------------------------------------------------


class ReplicaReader(Protocol):
    """The parts of controller.replica.Replica the desk reads."""

    def card(self, uid_hash: str) -> m.Credential | None: ...

    def credentials_of(self, person_ref: str) -> list[m.Credential]: ...

    def bookings_for(self, person_ref: str, now: datetime, horizon: timedelta = ...) -> list[m.Booking]: ...

    def bookings_at(self, room: str, day_start: datetime, day_end: datetime) -> list[m.Booking]: ...

    def bookings_between(self, start: datetime, end: datetime) -> list[m.Booking]: ...

    def booking(self, ref: str) -> m.Booking | None: ...

    def is_revoked(self, token_id_hex: str) -> bool: ...


@dataclass(frozen=True)
class DeskContext:
    """Everything one answer depends on, gathered by the agent on its thread."""

    config: m.SiteConfig | None
    view: SiteView | None
    keys: PublicKeySet | None
    replica: ReplicaReader
    now: datetime
    mono: float  # monotonic seconds, for the sessions
    clock_trusted: bool = True
    central_online: bool = True
    closing_warned_for: datetime | None = None  # the closing the agent's last closing warning was about


@dataclass(frozen=True)
class CheckIn:
    """Check this booking in here and now: `booking` is as it is afterwards."""

    booking: m.Booking
    method: m.CheckInVia
    person: str | None


@dataclass(frozen=True)
class Change:
    """Extend or end this booking: `booking` has its new end."""

    booking: m.Booking
    change: m.BookingChangeKind
    person: str | None


Effect = CheckIn | Change


@dataclass(frozen=True)
class Answer:
    reply: k.KioskReply
    effect: Effect | None = None


@dataclass
class _Session:
    booking: str
    person: str | None
    expires: float


@dataclass(frozen=True)
class _Who:
    """Who identified themselves at the kiosk: a person, or a refusal; `bookings` are the candidates."""

    person: str | None = None
    bookings: tuple[m.Booking, ...] = ()
    outcome: k.CheckInOutcome | None = None  # set when the answer is already known (unknown, refused)
    reason: m.Reason | None = None


_VIA = {k.CheckInMethod.CARD: m.CheckInVia.CARD, k.CheckInMethod.QR: m.CheckInVia.QR}


class KioskDesk:
    """Answers kiosk requests; holds only the open kiosk sessions between them."""

    def __init__(
        self,
        uid_hash_key: bytes,
        *,
        rules: CheckinRules | None = None,
        session_seconds: float = 120.0,
        new_session_id: Callable[[], str] = lambda: secrets.token_urlsafe(24),
    ) -> None:
        self._uid_key = uid_hash_key
        self.rules = rules or CheckinRules()
        self.session_seconds = session_seconds
        self._new_session_id = new_session_id
        self._sessions: dict[str, _Session] = {}
        self._wrong_codes: deque[float] = deque(maxlen=WRONG_CODES_ALLOWED)

    def answer(self, request: k.Request, ctx: DeskContext) -> Answer:
        self._forget_expired(ctx.mono)
        if isinstance(request, k.TodayRequest):
            return Answer(today(ctx))
        if isinstance(request, k.CheckInRequest):
            return self._check_in(request, ctx)
        if isinstance(request, k.ExtendRequest):
            return self._extend(request, ctx)
        return self._end(request, ctx)

    # --- check-in ------------------------------------------------------------------------------------------

    def _check_in(self, request: k.CheckInRequest, ctx: DeskContext) -> Answer:
        if ctx.view is None or ctx.config is None:
            return Answer(k.CheckInReply(outcome=k.CheckInOutcome.NOT_READY))
        if not ctx.clock_trusted:  # a window cannot be judged on a clock that says 1970
            return _refused(m.Reason.CLOCK_UNSET)
        if request.method is k.CheckInMethod.CARD:
            who = self._card_holder(request.uid or "", ctx)
        elif request.method is k.CheckInMethod.QR:
            who = _qr_holder(request.text or "", ctx)
        else:
            if self._codes_resting(ctx.mono):
                return Answer(k.CheckInReply(outcome=k.CheckInOutcome.TOO_MANY_TRIES))
            who = _code_booking(request.code or "", ctx)
            if who.outcome is k.CheckInOutcome.UNKNOWN:
                self._wrong_codes.append(ctx.mono)
        if who.outcome is not None:
            return Answer(k.CheckInReply(outcome=who.outcome, reason=who.reason.value if who.reason else ""))
        via = _VIA.get(request.method, m.CheckInVia.CODE)
        return self._check_in_booking(who, via, ctx)

    def _card_holder(self, uid_hex: str, ctx: DeskContext) -> _Who:
        try:
            credential = ctx.replica.card(card_uid_hash(bytes.fromhex(uid_hex), self._uid_key))
        except (CardUidError, ValueError):
            credential = None
        if credential is None:
            return _Who(outcome=k.CheckInOutcome.UNKNOWN)
        return _person(credential, ctx)

    def _check_in_booking(self, who: _Who, via: m.CheckInVia, ctx: DeskContext) -> Answer:
        outcome, booking = pick_booking(who.bookings, ctx.now, self.rules)
        if booking is None:
            return Answer(k.CheckInReply(outcome=outcome))
        opens, closes = checkin_window(booking.starts_at, self.rules)
        if outcome not in (k.CheckInOutcome.CHECKED_IN, k.CheckInOutcome.ALREADY_CHECKED_IN):
            card = booking_card(booking, ctx.config)
            return Answer(k.CheckInReply(outcome=outcome, booking=card, opens_at=opens, closes_at=closes))
        effect, holder = None, may_change(booking, who.person)
        if outcome is k.CheckInOutcome.CHECKED_IN:
            booking = replace(booking, status=m.BookingStatus.CHECKED_IN)
            effect = CheckIn(booking, via, who.person)
        reply = k.CheckInReply(
            outcome=outcome,
            booking=booking_card(booking, ctx.config),
            opens_at=opens,
            closes_at=closes,
            session=self._open_session(booking.ref, who.person, ctx.mono),
            extend_minutes=extend_choices(booking, ctx.replica, ctx.now) if holder else [],
            can_end=holder and can_end(booking, ctx.now),
        )
        return Answer(reply, effect)

    # --- extend and end ------------------------------------------------------------------------------------

    def _extend(self, request: k.ExtendRequest, ctx: DeskContext) -> Answer:
        found = self._session_booking(request.session, ctx)
        if isinstance(found, k.ChangeReply):
            return Answer(found)
        session, booking = found
        new_end = booking.ends_at + timedelta(minutes=request.minutes)
        free_until = room_free_until(booking, ctx.replica)
        if new_end - booking.ends_at > MAX_EXTENSION:
            return Answer(k.ChangeReply(outcome=k.ChangeOutcome.NOT_ALLOWED, ends_at=booking.ends_at))
        if new_end > free_until:
            until = max(free_until, booking.ends_at)
            return Answer(
                k.ChangeReply(outcome=k.ChangeOutcome.ROOM_TAKEN, ends_at=booking.ends_at, until=until)
            )
        changed = replace(booking, ends_at=new_end)
        reply = k.ChangeReply(outcome=k.ChangeOutcome.ACCEPTED, ends_at=new_end)
        return Answer(reply, Change(changed, m.BookingChangeKind.EXTEND, session.person))

    def _end(self, request: k.EndRequest, ctx: DeskContext) -> Answer:
        found = self._session_booking(request.session, ctx)
        if isinstance(found, k.ChangeReply):
            return Answer(found)
        session, booking = found
        if not can_end(booking, ctx.now):  # not started yet: that is a cancellation, not for the kiosk
            return Answer(k.ChangeReply(outcome=k.ChangeOutcome.NOT_ALLOWED, ends_at=booking.ends_at))
        changed = replace(booking, ends_at=ctx.now)
        reply = k.ChangeReply(outcome=k.ChangeOutcome.ACCEPTED, ends_at=ctx.now)
        return Answer(reply, Change(changed, m.BookingChangeKind.END, session.person))

    def _session_booking(
        self, session_id: str, ctx: DeskContext
    ) -> tuple[_Session, m.Booking] | k.ChangeReply:
        session = self._sessions.get(session_id)
        if session is None:
            return k.ChangeReply(outcome=k.ChangeOutcome.SESSION_EXPIRED)
        session.expires = ctx.mono + self.session_seconds  # in use: keep it while the person decides
        booking = ctx.replica.booking(session.booking)
        if booking is None or not ctx.clock_trusted or booking.ends_at <= ctx.now:
            return k.ChangeReply(outcome=k.ChangeOutcome.NOT_ALLOWED)
        if not may_change(booking, session.person):
            return k.ChangeReply(outcome=k.ChangeOutcome.NOT_ALLOWED)
        return session, booking

    # --- sessions ------------------------------------------------------------------------------------------

    def _open_session(self, booking: str, person: str | None, mono: float) -> str:
        if len(self._sessions) >= MAX_SESSIONS:  # the oldest goes: a kiosk serves one person at a time
            del self._sessions[min(self._sessions, key=lambda s: self._sessions[s].expires)]
        session_id = self._new_session_id()
        self._sessions[session_id] = _Session(booking, person, mono + self.session_seconds)
        return session_id

    def _codes_resting(self, mono: float) -> bool:
        """Six digits are a million codes: after WRONG_CODES_ALLOWED wrong ones within WRONG_CODE_WINDOW_S,
        typed codes are refused for CODES_REST_S (cards and QR codes still work), so guessing someone's code
        at the kiosk takes years, not an evening."""
        if len(self._wrong_codes) < WRONG_CODES_ALLOWED:
            return False
        first, last = self._wrong_codes[0], self._wrong_codes[-1]
        return last - first <= WRONG_CODE_WINDOW_S and mono - last < CODES_REST_S

    def _forget_expired(self, mono: float) -> None:
        for session_id in [s for s, session in self._sessions.items() if session.expires <= mono]:
            del self._sessions[session_id]


# --- who is at the kiosk ------------------------------------------------------------------------------------


def _refused(reason: m.Reason) -> Answer:
    return Answer(k.CheckInReply(outcome=k.CheckInOutcome.REFUSED, reason=reason.value))


def _person(credential: m.Credential, ctx: DeskContext) -> _Who:
    refusal = card_refusal(credential, ctx.now, clock_trusted=True, lockdown=False, pin_locked=False)
    if refusal is not None:
        return _Who(credential.person, outcome=k.CheckInOutcome.REFUSED, reason=refusal)
    horizon = _day_end(ctx) - ctx.now
    return _Who(credential.person, tuple(ctx.replica.bookings_for(credential.person, ctx.now, horizon)))


def _qr_holder(text: str, ctx: DeskContext) -> _Who:
    """The holder of a phone QR code, verified as the doors verify it (controller/decide.py): the token's
    signature and validity, the phone's fresh proof for a bound token, this site, the revocation list, and
    for a bound token the holder's own phone credential. The kiosk is no door, so no door or zone is asked."""
    if not text.upper().startswith((TOKEN_PREFIX, PRESENTATION_PREFIX)):
        return _Who(outcome=k.CheckInOutcome.REFUSED, reason=m.Reason.TOKEN_INVALID)
    if ctx.keys is None:
        return _Who(outcome=k.CheckInOutcome.REFUSED, reason=m.Reason.TOKEN_UNKNOWN_KEY)
    try:
        claims = verify_presentation(text, ctx.keys, ctx.now)
    except TokenError as exc:
        return _Who(outcome=k.CheckInOutcome.REFUSED, reason=deny_reason(exc.reason))
    assert ctx.view is not None
    if claims.site != ctx.view.site:
        return _Who(outcome=k.CheckInOutcome.REFUSED, reason=m.Reason.TOKEN_WRONG_SITE)
    if ctx.replica.is_revoked(claims.token_id_hex):
        return _Who(outcome=k.CheckInOutcome.REFUSED, reason=m.Reason.TOKEN_REVOKED)
    if claims.holder_key is not None:  # a proof of who is here: judged by their own phone credential
        credential = phone_credential(ctx.replica.credentials_of(claims.holder))
        if credential is None:
            return _Who(outcome=k.CheckInOutcome.UNKNOWN)
        return _person(credential, ctx)
    horizon = _day_end(ctx) - ctx.now
    return _Who(claims.holder, tuple(ctx.replica.bookings_for(claims.holder, ctx.now, horizon)))


def _code_booking(code: str, ctx: DeskContext) -> _Who:
    """The booking with this six-digit code (codes are unique among a site's live bookings)."""
    start = _day_start(ctx)
    found = [b for b in ctx.replica.bookings_between(start, ctx.now + CODE_HORIZON) if b.code == code]
    if not found:
        return _Who(outcome=k.CheckInOutcome.UNKNOWN)
    return _Who(None, (found[0],))


def pick_booking(
    bookings: Sequence[m.Booking], now: datetime, rules: CheckinRules
) -> tuple[k.CheckInOutcome, m.Booking | None]:
    """Which of a person's bookings the kiosk is about, and what it says: the first whose check-in window is
    open, else one checked in and running, else the next one (too early), else one whose window closed
    (too late), else no booking."""
    ordered = sorted(bookings, key=lambda b: (b.starts_at, b.ref))

    def stage(b: m.Booking) -> k.CheckInOutcome:
        if b.ends_at <= now:
            return k.CheckInOutcome.TOO_LATE
        if b.status is m.BookingStatus.CHECKED_IN:
            return k.CheckInOutcome.ALREADY_CHECKED_IN
        why = checkin_refusal(b.status, b.starts_at, now, rules)
        if why is None:
            return k.CheckInOutcome.CHECKED_IN
        return k.CheckInOutcome.TOO_EARLY if why is CheckinRefusal.TOO_EARLY else k.CheckInOutcome.TOO_LATE

    stages = [(stage(b), b) for b in ordered]
    for outcome in _PREFERENCE:
        found = next((b for s, b in stages if s is outcome), None)
        if found is not None:
            return outcome, found
    return k.CheckInOutcome.NO_BOOKING, None


_PREFERENCE = (
    k.CheckInOutcome.CHECKED_IN,
    k.CheckInOutcome.ALREADY_CHECKED_IN,
    k.CheckInOutcome.TOO_EARLY,
    k.CheckInOutcome.TOO_LATE,
)


# --- what the kiosk shows -----------------------------------------------------------------------------------


def booking_card(booking: m.Booking, config: m.SiteConfig | None) -> k.BookingCard:
    """The booking with the way to it: the room, its zone and the room's own door."""
    rooms = {r.slug: r for r in config.rooms} if config else {}
    zones = {z.slug: z.name for z in config.zones} if config else {}
    doors = {d.slug: d.name for d in config.doors} if config else {}
    room = rooms.get(booking.room)
    room_name = room.name if room else booking.room
    door = room.door if room else None
    return k.BookingCard(
        ref=booking.ref,
        room=booking.room,
        room_name=room_name,
        starts_at=booking.starts_at,
        ends_at=booking.ends_at,
        zone_name=zones.get(room.zone, room_name) if room else room_name,
        door=door,
        door_name=doors.get(door) if door else None,
        title=booking.title,
    )


def may_change(booking: m.Booking, person: str | None) -> bool:
    """Extending and ending are the holder's (central names the holder first), as on the phone page; a
    co-holder may check in only. The booking's code stands for its holder: it is shown to the holder only."""
    return person is None or (bool(booking.holders) and booking.holders[0] == person)


def room_free_until(booking: m.Booking, replica: ReplicaReader) -> datetime:
    """How far the booking could run on: the start of the room's next booking, at most MAX_EXTENSION."""
    limit = booking.ends_at + MAX_EXTENSION
    others = [b for b in replica.bookings_at(booking.room, booking.ends_at, limit) if b.ref != booking.ref]
    return min([b.starts_at for b in others] + [limit])


def extend_choices(booking: m.Booking, replica: ReplicaReader, now: datetime) -> list[int]:
    """The extensions the kiosk offers: those of 30, 60 and 120 minutes the room's next booking allows."""
    if booking.ends_at <= now:
        return []
    free_until = room_free_until(booking, replica)
    return [n for n in EXTEND_CHOICES if booking.ends_at + timedelta(minutes=n) <= free_until]


def can_end(booking: m.Booking, now: datetime) -> bool:
    """Started and not over (ending one that has not started would be a cancellation)."""
    return booking.starts_at < now < booking.ends_at


def today(ctx: DeskContext) -> k.TodayReply | k.ErrorReply:
    """The home screen: the site, whether and until when it is open, and what is on in each room."""
    if ctx.config is None or ctx.view is None:
        return k.ErrorReply(message="the agent has no site configuration yet")
    config, calendar, now = ctx.config, ctx.view.calendar, ctx.now
    opening = calendar.opening(now)
    closing_in = None
    if opening is not None and ctx.closing_warned_for == opening.closes_at and now < opening.closes_at:
        closing_in = math.ceil((opening.closes_at - now) / timedelta(minutes=1))
    day_end = _day_end(ctx)
    rooms = [
        k.RoomToday(
            slug=room.slug,
            name=room.name,
            bookings=[_shown(b) for b in ctx.replica.bookings_at(room.slug, now, day_end)],
        )
        for room in config.rooms
    ]
    return k.TodayReply(
        site=config.site,
        name=config.name,
        timezone=config.timezone,
        now=now,
        open=opening is not None,
        closes_at=opening.closes_at if opening else None,
        opens_at=None if opening else calendar.next_opening(now),
        closing_in_minutes=closing_in,
        rooms=rooms,
        contact_phone=config.contact_phone,
        caretaker_phone=config.caretaker_phone,
        help_text_nb=config.help_text_nb,
        help_text_en=config.help_text_en,
        central_online=ctx.central_online,
    )


def _shown(booking: m.Booking) -> k.BookingToday:
    """A booking as anyone may see it: never the holders, only what central chose to show."""
    return k.BookingToday(
        starts_at=booking.starts_at,
        ends_at=booking.ends_at,
        shown_as=booking.shown_as,
        title=booking.title,
        status=booking.status,
    )


def _tz(ctx: DeskContext) -> ZoneInfo:
    return ctx.view.calendar.tz if ctx.view is not None else ZoneInfo("Europe/Oslo")


def _day_start(ctx: DeskContext) -> datetime:
    local = ctx.now.astimezone(_tz(ctx))
    return datetime.combine(local.date(), time(0), tzinfo=_tz(ctx))


def _day_end(ctx: DeskContext) -> datetime:
    """The next local midnight: 'today' at the torg is its own calendar day."""
    local = ctx.now.astimezone(_tz(ctx))
    return datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=_tz(ctx))
