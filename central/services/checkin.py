"""Check-in and no-show: the booking's state changes, with the replica and the audit log kept in step.

A no-show ends the booking's access at the site (its replica entry goes) and frees the room; it stays in
the database as NO_SHOW for the statistics. Both a check-in and a no-show are queued for the booking system
(webhook outbox) in the same transaction as the change.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.checkin import CheckinRefusal, CheckinRules, is_no_show, refusal, window
from central.models import Booking, BookingStatus, WebhookKind
from central.replica import parse_ref
from central.schedules import DEFAULT_TIMEZONE
from central.services import audit, replica_log
from central.services.bookings import get_booking
from central.services.errors import ConflictError
from central.webhooks.outbox import queue_booking_event
from protocol import messages as m

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
        queue_booking_event(session, WebhookKind.CHECKED_IN, booking, now)
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
        queue_booking_event(session, WebhookKind.NO_SHOW, booking, now)
    return released


def _named_on(booking: Booking, person_id: int | None) -> bool:
    """The person is the booking's holder or one of its co-holders."""
    if person_id is None:
        return False
    return person_id == booking.holder_id or any(p.id == person_id for p in booking.co_holders)


def check_in_on_entry(
    session: Session, site_id: int, event: m.AccessEvent, rules: CheckinRules
) -> Booking | None:
    """The first granted entry of the holder or a co-holder through the booked room's own door checks the
    booking in, if the room allows that (`Room.implicit_checkin`) and the check-in window is open at that
    moment (the agent's device time); otherwise nothing happens."""
    booking_id = parse_ref(event.booking_ref, "b")
    if event.decision is not m.Decision.GRANT or booking_id is None:
        return None
    booking = session.get(Booking, booking_id)
    if booking is None or booking.room.site_id != site_id or booking.room.door is None:
        return None
    if not _named_on(booking, parse_ref(event.person_ref, "p")):
        return None
    if not booking.room.implicit_checkin:
        return None
    if booking.room.door.slug != event.door or booking.status is not BookingStatus.CONFIRMED:
        return None
    if refusal(booking.status, booking.starts_at, event.device_time, rules) is not None:
        return None
    return check_in(session, f"agent {event.agent}", booking_id, event.device_time, via="entry", rules=rules)
