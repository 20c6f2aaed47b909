"""What the kiosk says, as pure functions of the agent's replies: the screens only lay these words out.

Every outcome ends in plain words about what to do next. Times are the site's local wall-clock time
("18:00"), with the day in front only when it is not today; the texts come from the one catalogue
(protocol.i18n) under `kiosk.` keys, deny reasons under the shared `reason.` keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.core import UnknownLocaleError
from babel.dates import format_skeleton

from protocol.i18n import catalogue, text
from protocol.kiosk import (
    ChangeOutcome,
    ChangeReply,
    CheckInMethod,
    CheckInOutcome,
    CheckInReply,
    TodayReply,
)

DEFAULT_TIMEZONE = "Europe/Oslo"


def zone(name: str | None) -> ZoneInfo:
    """The site's timezone; Oslo when the agent named none we know."""
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


def clock(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%H:%M")


def moment(at: datetime, now: datetime, tz: ZoneInfo, lang: str) -> str:
    """ "18:00" today, "tir. 24. nov. 18:00" on another day."""
    local = at.astimezone(tz)
    if local.date() == now.astimezone(tz).date():
        return clock(at, tz)
    try:
        day = format_skeleton("MMMMEEEEd", local, locale=lang)
    except (UnknownLocaleError, ValueError):
        day = format_skeleton("MMMMEEEEd", local, locale="nb")
    return f"{day} {clock(at, tz)}"


@dataclass(frozen=True)
class Status:
    """The opening line on the home screen and how loud it is: "open", "closing" or "closed"."""

    line: str
    mood: str


def status(today: TodayReply, now: datetime, lang: str) -> Status:
    tz = zone(today.timezone)
    if today.open and today.closing_in_minutes is not None:
        return Status(text("kiosk.home.closing_in", lang, minutes=today.closing_in_minutes), "closing")
    if today.open:
        if today.closes_at is None:
            return Status(text("kiosk.home.open", lang), "open")
        return Status(
            text("kiosk.home.open_until", lang, time=moment(today.closes_at, now, tz, lang)), "open"
        )
    if today.opens_at is None:
        return Status(text("kiosk.home.closed", lang), "closed")
    return Status(text("kiosk.home.closed_opens", lang, time=moment(today.opens_at, now, tz, lang)), "closed")


@dataclass(frozen=True)
class Row:
    """One line of today's programme: when, where, who (organisation or first name, as the agent sent it)."""

    time: str
    room: str
    who: str


def programme(today: TodayReply, now: datetime) -> list[Row]:
    """Today's bookings not yet over, earliest first; only time, room and the name they are shown as."""
    tz = zone(today.timezone)
    found = [
        (booking.starts_at, room.name, booking)
        for room in today.rooms
        for booking in room.bookings
        if booking.ends_at > now
    ]
    found.sort(key=lambda item: (item[0], item[1]))
    return [
        Row(f"{clock(b.starts_at, tz)}–{clock(b.ends_at, tz)}", room_name, b.shown_as)
        for _, room_name, b in found
    ]


@dataclass(frozen=True)
class Words:
    """A result for the person at the kiosk: a heading, what we know, and what to do next."""

    heading: str
    lines: list[str] = field(default_factory=list)
    next_step: str = ""


def not_answering(lang: str, phone: str) -> Words:
    next_step = (
        text("kiosk.outcome.not_answering_call", lang, phone=phone)
        if phone
        else text("kiosk.outcome.not_answering_next", lang)
    )
    return Words(text("kiosk.outcome.not_answering", lang), [], next_step)


def check_in_words(
    reply: CheckInReply, method: CheckInMethod, now: datetime, tz: ZoneInfo, lang: str, phone: str
) -> Words:
    """The words for any check-in reply (the confirmation screen adds the booking itself)."""
    outcome = reply.outcome
    if outcome is CheckInOutcome.CHECKED_IN:
        return Words(text("kiosk.confirm.checked_in", lang))
    if outcome is CheckInOutcome.ALREADY_CHECKED_IN:
        return Words(text("kiosk.confirm.already", lang))
    if outcome is CheckInOutcome.TOO_EARLY:
        return _too_early(reply, now, tz, lang)
    if outcome is CheckInOutcome.TOO_LATE:
        heading = (
            text("kiosk.outcome.too_late", lang, closes=moment(reply.closes_at, now, tz, lang))
            if reply.closes_at is not None
            else text("kiosk.outcome.too_late_unknown", lang)
        )
        return Words(heading, [], text("kiosk.outcome.too_late_next", lang))
    if outcome is CheckInOutcome.NO_BOOKING:
        return Words(text("kiosk.outcome.no_booking", lang), [], text("kiosk.outcome.no_booking_next", lang))
    if outcome is CheckInOutcome.UNKNOWN:
        return _unknown(method, lang)
    if outcome is CheckInOutcome.REFUSED:
        return Words(_reason(reply.reason, lang), [], _ask_for_help(lang, phone))
    if outcome is CheckInOutcome.TOO_MANY_TRIES:
        next_step = text("kiosk.outcome.too_many_tries_next", lang)
        return Words(text("kiosk.outcome.too_many_tries", lang), [], next_step)
    return Words(text("kiosk.outcome.not_ready", lang), [], text("kiosk.outcome.not_ready_next", lang))


def _too_early(reply: CheckInReply, now: datetime, tz: ZoneInfo, lang: str) -> Words:
    next_step = text("kiosk.outcome.too_early_next", lang)
    if reply.opens_at is None:
        return Words(text("kiosk.outcome.too_early_unknown", lang), [], next_step)
    opens = moment(reply.opens_at, now, tz, lang)
    if reply.booking is None:
        return Words(text("kiosk.outcome.too_early_short", lang, opens=opens), [], next_step)
    start = moment(reply.booking.starts_at, now, tz, lang)
    return Words(text("kiosk.outcome.too_early", lang, start=start, opens=opens), [], next_step)


def _unknown(method: CheckInMethod, lang: str) -> Words:
    if method is CheckInMethod.CARD:
        return Words(text("kiosk.outcome.unknown_card", lang), [], text("kiosk.outcome.unknown_next", lang))
    if method is CheckInMethod.QR:
        return Words(text("kiosk.outcome.unknown_qr", lang), [], text("kiosk.outcome.unknown_next", lang))
    return Words(text("kiosk.outcome.unknown_code", lang), [], text("kiosk.outcome.unknown_code_next", lang))


def _reason(reason: str, lang: str) -> str:
    """The shared deny-reason text (the same words as at the door), or a plain refusal for one we lack."""
    key = f"reason.{reason}"
    return text(key, lang) if reason and key in catalogue() else text("kiosk.outcome.refused", lang)


def _ask_for_help(lang: str, phone: str) -> str:
    if phone:
        return text("kiosk.outcome.refused_call", lang, phone=phone)
    return text("kiosk.outcome.refused_help", lang)


def change_words(reply: ChangeReply, extending: bool, now: datetime, tz: ZoneInfo, lang: str) -> str:
    """One sentence after "extend" or "end now"."""
    outcome = reply.outcome
    if outcome is ChangeOutcome.ACCEPTED:
        if not extending:
            return text("kiosk.change.ended", lang)
        if reply.ends_at is None:
            return text("kiosk.change.extended_unknown", lang)
        return text("kiosk.change.extended", lang, time=moment(reply.ends_at, now, tz, lang))
    if outcome is ChangeOutcome.ROOM_TAKEN:
        if reply.until is None:
            return text("kiosk.change.room_taken", lang)
        return text("kiosk.change.room_taken_until", lang, time=moment(reply.until, now, tz, lang))
    if outcome is ChangeOutcome.NOT_ALLOWED:
        return text("kiosk.change.not_allowed", lang)
    return text("kiosk.change.session_expired", lang)


def extend_label(minutes: int, lang: str) -> str:
    """ "Forleng 30 min", "Forleng 2 t": whole hours from two hours on, minutes below."""
    if minutes >= 120 and minutes % 60 == 0:
        amount = text("kiosk.hours", lang, hours=minutes // 60)
    else:
        amount = text("kiosk.minutes", lang, minutes=minutes)
    return text("kiosk.confirm.extend", lang, amount=amount)


def help_text(today: TodayReply | None, lang: str) -> str:
    """The site's own help text: bokmål for Norwegian, English for every other language (bokmål if none)."""
    if today is None:
        return ""
    if lang in ("nb", "nn"):
        return today.help_text_nb or today.help_text_en
    return today.help_text_en or today.help_text_nb
