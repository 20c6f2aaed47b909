"""`meraapent kiosk --demo`: the kiosk against a FakeLink playing a small torg, with bookings around now.

Try the codes below on the keypad (or the card with UID 04a1b2c3d4e5f6 from a virtual reader). The phone
numbers are made up.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from kiosk.link import FakeLink
from protocol.kiosk import BookingCard, BookingToday, CheckInOutcome, CheckInReply, RoomToday, TodayReply

SITE = "heggedal"
TIMEZONE = ZoneInfo("Europe/Oslo")
OPENS, CLOSES = time(7, 0), time(22, 0)
DEMO_CARD = "04a1b2c3d4e5f6"
DEMO_CODES = {
    "123456": "checked in (Verkstedet, can extend and end)",
    "111111": "too early",
    "222222": "too late",
    "333333": "refused (person blocked)",
    "444444": "no booking today",
}


def demo_link(clock: Callable[[], datetime]) -> FakeLink:
    now = clock()
    start = _half_hour(now)
    return FakeLink(lambda: _today(clock()), check_ins=_check_ins(start), clock=clock)


def _half_hour(at: datetime) -> datetime:
    return at.replace(minute=0 if at.minute < 30 else 30, second=0, microsecond=0)


def _today(now: datetime) -> TodayReply:
    local = now.astimezone(TIMEZONE)
    opens = datetime.combine(local.date(), OPENS, TIMEZONE)
    closes = datetime.combine(local.date(), CLOSES, TIMEZONE)
    is_open = opens <= local < closes
    if local >= closes:
        opens += timedelta(days=1)
    left = (closes - local).total_seconds() / 60
    warning = next((m for m in (5, 15) if is_open and left <= m), None)
    start = _half_hour(now)
    return TodayReply(
        site=SITE,
        name="Heggedal innbyggertorg",
        timezone=TIMEZONE.key,
        now=now,
        open=is_open,
        closes_at=closes if is_open else None,
        opens_at=None if is_open else opens,
        closing_in_minutes=warning,
        rooms=[
            _room("moterom-1", "Møterom 1", [(start - timedelta(hours=1), 2, "Sjakkklubben")]),
            _room(
                "verksted", "Verkstedet", [(start, 1, "Kari"), (start + timedelta(hours=2), 2, "Heggedal IL")]
            ),
            _room("storsal", "Storsalen", [(start + timedelta(hours=1), 3, "Seniordans")]),
        ],
        contact_phone="12 34 56 78",
        caretaker_phone="98 76 54 32",
        help_text_nb="Toalettene er i 1. etasje. Husk å slå av lyset når du går.",
        help_text_en="The toilets are on the ground floor. Please switch off the lights when you leave.",
    )


def _room(slug: str, name: str, bookings: list[tuple[datetime, int, str]]) -> RoomToday:
    return RoomToday(
        slug=slug,
        name=name,
        bookings=[
            BookingToday(starts_at=s, ends_at=s + timedelta(hours=h), shown_as=who) for s, h, who in bookings
        ],
    )


def _check_ins(start: datetime) -> dict[str, CheckInReply]:
    verksted = BookingCard(
        ref="demo-1", room="verksted", room_name="Verkstedet", starts_at=start,
        ends_at=start + timedelta(hours=1), zone_name="Andre etasje, til venstre", door="verksted",
        door_name="Verkstedet",
    )  # fmt: skip
    later = start + timedelta(hours=3)
    return {
        DEMO_CARD: CheckInReply(
            outcome=CheckInOutcome.CHECKED_IN, booking=verksted, session="demo-session-card",
            extend_minutes=[30], can_end=True,
        ),
        "123456": CheckInReply(
            outcome=CheckInOutcome.CHECKED_IN, booking=verksted, session="demo-session-code",
            extend_minutes=[30, 60, 120], can_end=True,
        ),
        "111111": CheckInReply(
            outcome=CheckInOutcome.TOO_EARLY, opens_at=later - timedelta(minutes=15),
            booking=BookingCard(
                ref="demo-2", room="storsal", room_name="Storsalen", starts_at=later,
                ends_at=later + timedelta(hours=2), zone_name="Første etasje",
            ),
        ),
        "222222": CheckInReply(outcome=CheckInOutcome.TOO_LATE, closes_at=start - timedelta(minutes=15)),
        "333333": CheckInReply(outcome=CheckInOutcome.REFUSED, reason="person_blocked"),
        "444444": CheckInReply(outcome=CheckInOutcome.NO_BOOKING),
    }  # fmt: skip
