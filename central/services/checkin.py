"""Check-in and no-show: the booking's state changes, with the replica and the audit log kept in step.

A no-show ends the booking's access at the site (its replica entry goes) and frees the room; it stays in
the database as NO_SHOW for the statistics.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.checkin import CheckinRefusal, CheckinRules, is_no_show, refusal, window
from central.models import Booking, BookingStatus
from central.schedules import DEFAULT_TIMEZONE
from central.services import audit, replica_log
from central.services.bookings import get_booking
from central.services.errors import ConflictError

SITE_TIME = ZoneInfo(DEFAULT_TIMEZONE)  # times in messages are the torg's wall clock

EXPLANATION = {
    CheckinRefusal.CANCELLED: "the booking was cancelled",
    CheckinRefusal.NO_SHOW: "the booking was released as a no-show",
    CheckinRefusal.COMPLETED: "the booking is over",
    CheckinRefusal.TOO_EARLY: "check-in opens at {opens:%H:%M}",
    CheckinRefusal.TOO_LATE: "check-in closed at {closes:%H:%M}",
}


class CheckinError(ConflictError):
    def __init__(self, reason: CheckinRefusal, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_in(
    session: Session, actor: str, booking_id: int, now: datetime, *, via: str, rules: CheckinRules
) -> Booking:
    """Check the booking in (again: no change), or raise CheckinError saying why not and when it could."""
    booking = get_booking(session, booking_id)
    why = refusal(booking.status, booking.starts_at, now, rules)
    if why is not None:
        opens, closes = (t.astimezone(SITE_TIME) for t in window(booking.starts_at, rules))
        detail = EXPLANATION[why].format(opens=opens, closes=closes)
        raise CheckinError(why, f"booking {booking_id} cannot be checked in: {detail}")
    if booking.status is BookingStatus.CONFIRMED:
        booking.status = BookingStatus.CHECKED_IN
        booking.checked_in_at = now
        session.flush()
        replica_log.record_booking_change(session, booking.id)
        audit.record(session, actor, "check_in", "booking", booking.id, {"via": via})
    return booking


def sweep_no_shows(session: Session, now: datetime, rules: CheckinRules) -> list[Booking]:
    """Release every confirmed booking whose check-in window has closed; returns them."""
    latest_start = now - rules.closes_after
    candidates = session.scalars(
        select(Booking).where(Booking.status == BookingStatus.CONFIRMED, Booking.starts_at <= latest_start)
    ).all()
    released = [b for b in candidates if is_no_show(b.status, b.starts_at, now, rules)]
    for booking in released:
        booking.status = BookingStatus.NO_SHOW
        session.flush()
        replica_log.record_booking_change(session, booking.id)
        audit.record(session, "no-show sweep", "no_show", "booking", booking.id, {})
    return released
