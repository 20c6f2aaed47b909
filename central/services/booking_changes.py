"""Extending a booking while the room is free, and ending it early: what the holder may change about a
booking that is in use. Called by the API (staff, the booking integration) and by the phone page (actor
"resident:<person id>", after it has checked that the person holds the booking); no HTTP here.

Each change goes to the site's replica (the holder's access follows the new end), the audit log, and the
webhook outbox for the booking system, all in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.models import Booking, BookingStatus, Room, WebhookKind
from central.replica import LIVE_BOOKING_STATUSES
from central.services import audit, replica_log
from central.services.bookings import get_booking
from central.services.errors import ConflictError, InvalidError
from central.webhooks.outbox import queue_booking_event

MAX_EXTENSION = timedelta(hours=4)

_NOT_LIVE = {
    BookingStatus.CANCELLED: "was cancelled",
    BookingStatus.NO_SHOW: "was released as a no-show",
    BookingStatus.COMPLETED: "is over",
}


def _local(booking: Booking, moment: datetime) -> str:
    """A time as the people at the torg read it: HH:MM, or 'd.m. HH:MM' on another day than the booking's."""
    tz = ZoneInfo(booking.room.site.timezone)
    local = moment.astimezone(tz)
    same_day = local.date() == booking.starts_at.astimezone(tz).date()
    return f"{local:%H:%M}" if same_day else f"{local.day}.{local.month}. {local:%H:%M}"


def _live(booking: Booking, now: datetime) -> Booking:
    """The booking if it is confirmed or checked in and not over yet; ConflictError saying why not."""
    why = _NOT_LIVE.get(booking.status)
    if why is None and booking.ends_at <= now:
        why = f"ended at {_local(booking, booking.ends_at)}"
    if why is not None:
        raise ConflictError(f"booking {booking.id} {why}")
    return booking


def _next_in_room(session: Session, booking: Booking, until: datetime) -> Booking | None:
    """The first other live booking of the same room between this one's end and `until`."""
    return session.scalars(
        select(Booking)
        .where(
            Booking.room_id == booking.room_id,
            Booking.id != booking.id,
            Booking.status.in_(LIVE_BOOKING_STATUSES),
            Booking.starts_at < until,
            Booking.ends_at > booking.ends_at,
        )
        .order_by(Booking.starts_at, Booking.id)
        .limit(1)
    ).first()


def extend_booking(
    session: Session,
    actor: str,
    booking_id: int,
    new_end: datetime,
    now: datetime,
    *,
    max_extension: timedelta = MAX_EXTENSION,
) -> Booking:
    """Move the end of a live booking to `new_end` if the room is free until then.

    InvalidError (field `ends_at`) if `new_end` is not later than the current end or extends it by more
    than `max_extension`; ConflictError if the booking is not live or the room is booked in between.
    """
    if new_end.tzinfo is None:
        raise InvalidError("ends_at needs a timezone (UTC, e.g. 2026-11-23T20:00:00Z)", "ends_at")
    booking = _live(get_booking(session, booking_id), now)
    old_end = booking.ends_at
    if new_end <= old_end:
        raise InvalidError(
            f"the new end must be after the booking's end at {_local(booking, old_end)}", "ends_at"
        )
    if new_end - old_end > max_extension:
        hours = max_extension / timedelta(hours=1)
        raise InvalidError(f"a booking can be extended by at most {hours:g} hours at a time", "ends_at")
    # Two extensions of the same room at once must not both find it free: the room row serialises them
    # (PostgreSQL; SQLite has one writer anyway).
    session.get(Room, booking.room_id, with_for_update=True)
    taken = _next_in_room(session, booking, new_end)
    if taken is not None:
        taken_at = _local(booking, taken.starts_at)
        hint = f"; it can be extended to {taken_at} at the latest" if taken.starts_at > old_end else ""
        raise ConflictError(
            f"room '{booking.room.slug}' is booked from {taken_at} (booking {taken.id}){hint}"
        )
    _remember_source_end(booking)
    booking.ends_at = new_end
    _record(session, actor, booking, WebhookKind.EXTENDED, "extend", old_end, now)
    return booking


def end_booking_early(session: Session, actor: str, booking_id: int, now: datetime) -> Booking:
    """End a booking that has started now: its access ends at the site, the room is free; the status stays
    (checked in, or confirmed and then judged by the no-show rule) for the statistics.

    ConflictError if the booking is not live, or has not started yet (that is a cancellation).
    """
    booking = _live(get_booking(session, booking_id), now)
    if booking.starts_at >= now:
        raise ConflictError(
            f"booking {booking.id} has not started yet (it starts at {_local(booking, booking.starts_at)}); "
            "cancel it instead"
        )
    old_end = booking.ends_at
    _remember_source_end(booking)
    booking.ends_at = now
    _record(session, actor, booking, WebhookKind.ENDED_EARLY, "end_early", old_end, now)
    return booking


def _remember_source_end(booking: Booking) -> None:
    """Keep what the booking system said before we change the end, so its next import does not undo us."""
    if booking.source_ends_at is None and booking.external_id is not None:
        booking.source_ends_at = booking.ends_at


def _record(
    session: Session,
    actor: str,
    booking: Booking,
    kind: WebhookKind,
    action: str,
    old_end: datetime,
    now: datetime,
) -> None:
    session.flush()
    replica_log.record_booking_change(session, booking.id)
    audit.record(session, actor, action, "booking", booking.id, {"from": old_end, "to": booking.ends_at})
    queue_booking_event(session, kind, booking, now, previous_ends_at=old_end)
