"""When a booking may be checked in, and when it has become a no-show: pure rules, time passed in.

A booking is checked in at the kiosk, by phone, or by its holder's first entry to the booked room. The
window runs from `opens_before` the start to `closes_after` it; a booking still only confirmed when the
window has closed is a no-show: its access ends and the room is free again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from central.config import Settings
from central.models import BookingStatus


@dataclass(frozen=True)
class CheckinRules:
    opens_before: timedelta = timedelta(minutes=15)
    closes_after: timedelta = timedelta(minutes=15)

    def __post_init__(self) -> None:
        if self.opens_before < timedelta(0) or self.closes_after < timedelta(0):
            raise ValueError("the check-in window cannot open after the start or close before it")


def checkin_rules(settings: Settings) -> CheckinRules:
    """The window configured for this installation (MERAAPENT_CHECKIN_OPENS/CLOSES_MINUTES)."""
    return CheckinRules(
        opens_before=timedelta(minutes=settings.checkin_opens_minutes),
        closes_after=timedelta(minutes=settings.checkin_closes_minutes),
    )


class CheckinRefusal(StrEnum):
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"
    COMPLETED = "completed"
    TOO_EARLY = "too_early"
    TOO_LATE = "too_late"


def window(starts_at: datetime, rules: CheckinRules) -> tuple[datetime, datetime]:
    return starts_at - rules.opens_before, starts_at + rules.closes_after


def refusal(
    status: BookingStatus, starts_at: datetime, now: datetime, rules: CheckinRules
) -> CheckinRefusal | None:
    """Why the booking cannot be checked in now, or None (a booking already checked in stays so)."""
    if status is BookingStatus.CHECKED_IN:
        return None
    if status is not BookingStatus.CONFIRMED:
        return CheckinRefusal(status.value)
    opens, closes = window(starts_at, rules)
    if now < opens:
        return CheckinRefusal.TOO_EARLY
    if now >= closes:
        return CheckinRefusal.TOO_LATE
    return None


def is_no_show(status: BookingStatus, starts_at: datetime, now: datetime, rules: CheckinRules) -> bool:
    return status is BookingStatus.CONFIRMED and now >= window(starts_at, rules)[1]
