"""Room bookings, mostly imported from the municipality's booking system (Vega) by an integration.

`(source, external_id)` is a booking's identity in the system it came from, which makes imports idempotent:
`upsert_external` creates or updates, `cancel_external` cancels, and repeating either changes nothing.
A live booking lets its holder into the room's site, so every change is logged for the replica.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.db import utcnow
from central.models import Booking, BookingStatus, Person, Room
from central.schedules import DEFAULT_TIMEZONE
from central.services import audit, replica_log
from central.services.errors import ConflictError, InvalidError, NotFoundError
from central.services.query import Slice, changed_fields, paginate
from central.services.sites import get_site, room_for_field

MANUAL_SOURCE = "manual"


@dataclass(frozen=True)
class BookingFilter:
    site: str | None = None
    room: str | None = None
    day: date | None = None
    status: BookingStatus | None = None
    source: str | None = None
    external_id: str | None = None
    holder_id: int | None = None


def get_booking(session: Session, booking_id: int) -> Booking:
    booking = session.get(Booking, booking_id)
    if booking is None:
        raise NotFoundError(f"booking {booking_id} does not exist")
    return booking


def _local_day_bounds(day: date) -> tuple[datetime, datetime]:
    tz = ZoneInfo(DEFAULT_TIMEZONE)
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return start, end


def list_bookings(session: Session, flt: BookingFilter, *, limit: int, offset: int) -> Slice[Booking]:
    """Bookings matching the filter, by start time; `day` (Europe/Oslo) matches bookings overlapping it."""
    stmt = select(Booking).join(Room, Room.id == Booking.room_id)
    if flt.site is not None:
        site = get_site(session, flt.site)
        stmt = stmt.where(Room.site_id == site.id)
        if flt.room is not None:
            stmt = stmt.where(Room.slug == flt.room)
    elif flt.room is not None:
        raise InvalidError("filtering by room needs the site too (room slugs are per site)", "room")
    if flt.day is not None:
        start, end = _local_day_bounds(flt.day)
        stmt = stmt.where(Booking.starts_at < end, Booking.ends_at > start)
    if flt.status is not None:
        stmt = stmt.where(Booking.status == flt.status)
    if flt.source is not None:
        stmt = stmt.where(Booking.source == flt.source)
    if flt.external_id is not None:
        stmt = stmt.where(Booking.external_id == flt.external_id)
    if flt.holder_id is not None:
        stmt = stmt.where(Booking.holder_id == flt.holder_id)
    return paginate(session, stmt.order_by(Booking.starts_at, Booking.id), limit, offset)


def _resolve(session: Session, values: dict[str, Any], current: Booking | None) -> dict[str, Any]:
    """Turn site/room slugs into a room and check holder and times; returns the column values."""
    out = dict(values)
    site_slug = out.pop("site", None)
    room_slug = out.pop("room", None)
    if room_slug is not None or site_slug is not None:
        if site_slug is None and current is not None:
            site_slug = current.room.site.slug
        if room_slug is None and current is not None:
            room_slug = current.room.slug
        if site_slug is None or room_slug is None:
            raise InvalidError("a booking needs both site and room", "room" if room_slug is None else "site")
        try:
            site = get_site(session, site_slug)
        except NotFoundError as exc:
            raise InvalidError(str(exc), "site") from None
        out["room"] = room_for_field(session, site, room_slug)
    holder_id = out.get("holder_id")
    if holder_id is not None and session.get(Person, holder_id) is None:
        raise InvalidError(f"person {holder_id} does not exist", "holder_id")
    starts = out.get("starts_at", current.starts_at if current else None)
    ends = out.get("ends_at", current.ends_at if current else None)
    if starts is not None and ends is not None and ends <= starts:
        raise InvalidError("ends_at must be after starts_at", "ends_at")
    if out.get("status") is BookingStatus.CHECKED_IN and (current is None or current.checked_in_at is None):
        out["checked_in_at"] = utcnow()
    return out


def _check_identity(session: Session, source: str, external_id: str | None, booking_id: int | None) -> None:
    if external_id is None:
        return
    clash = session.scalars(
        select(Booking.id).where(Booking.source == source, Booking.external_id == external_id)
    ).one_or_none()
    if clash is not None and clash != booking_id:
        raise ConflictError(
            f"booking '{external_id}' from source '{source}' already exists (booking {clash})"
        )


def _logged(session: Session, actor: str, action: str, booking: Booking, detail: dict[str, Any]) -> None:
    session.flush()
    replica_log.record_booking_change(session, booking.id)
    audit.record(session, actor, action, "booking", booking.id, detail)


def create_booking(session: Session, actor: str, fields: dict[str, Any]) -> Booking:
    values = _resolve(session, fields, None)
    values.setdefault("source", MANUAL_SOURCE)
    _check_identity(session, values["source"], values.get("external_id"), None)
    booking = Booking(**values)
    session.add(booking)
    _logged(session, actor, "create", booking, dict(fields))
    return booking


def update_booking(session: Session, actor: str, booking_id: int, changes: dict[str, Any]) -> Booking:
    booking = get_booking(session, booking_id)
    values = _resolve(session, changes, booking)
    if "source" in values or "external_id" in values:
        _check_identity(
            session,
            values.get("source", booking.source),
            values.get("external_id", booking.external_id),
            booking.id,
        )
    diff = changed_fields(booking, values)
    if diff:
        _logged(session, actor, "update", booking, diff)
    return booking


def cancel_booking(session: Session, actor: str, booking_id: int) -> Booking:
    booking = get_booking(session, booking_id)
    if booking.status is not BookingStatus.CANCELLED:
        booking.status = BookingStatus.CANCELLED
        _logged(session, actor, "cancel", booking, {})
    return booking


def delete_booking(session: Session, actor: str, booking_id: int) -> None:
    """Remove a booking entered by mistake (imported ones are cancelled instead, to keep statistics)."""
    booking = get_booking(session, booking_id)
    session.delete(booking)
    session.flush()
    replica_log.record_booking_change(session, booking_id)
    audit.record(session, actor, "delete", "booking", booking_id)


def _find_external(session: Session, source: str, external_id: str) -> Booking | None:
    return session.scalars(
        select(Booking).where(Booking.source == source, Booking.external_id == external_id)
    ).one_or_none()


def upsert_external(
    session: Session, actor: str, source: str, external_id: str, fields: dict[str, Any]
) -> tuple[Booking, bool]:
    """Create or update the booking `(source, external_id)`; returns it and whether it was created.

    Sending the same booking again changes nothing (no replica entry, no audit row).
    """
    booking = _find_external(session, source, external_id)
    if booking is None:
        values = _resolve(session, fields, None)
        booking = Booking(source=source, external_id=external_id, **values)
        session.add(booking)
        _logged(session, actor, "import", booking, {"source": source, "external_id": external_id})
        return booking, True
    diff = changed_fields(booking, _resolve(session, fields, booking))
    if diff:
        _logged(session, actor, "import_update", booking, diff)
    return booking, False


def cancel_external(session: Session, actor: str, source: str, external_id: str) -> Booking:
    booking = _find_external(session, source, external_id)
    if booking is None:
        raise NotFoundError(f"booking '{external_id}' from source '{source}' does not exist")
    return cancel_booking(session, actor, booking.id)
