"""Room bookings, mostly imported from the municipality's booking system (Vega) by an integration.

`(source, external_id)` is a booking's identity in the system it came from, which makes imports idempotent:
`upsert_external` creates or updates, `cancel_external` cancels, and repeating either changes nothing.
A live booking lets its holder and its named co-holders (`co_holder_ids`, each a person other than the
holder) into the room's site, so every change is logged for the replica, including the people a change
takes off the booking.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from central.db import utcnow
from central.models import Booking, BookingStatus, Person, Room
from central.replica import LIVE_BOOKING_STATUSES
from central.schedules import DEFAULT_TIMEZONE
from central.services import audit, replica_log
from central.services.errors import ConflictError, InvalidError, NotFoundError
from central.services.query import Slice, changed_fields, paginate
from central.services.sites import get_site, room_for_field

MANUAL_SOURCE = "manual"
MAX_CO_HOLDERS = 20
CHECKIN_CODE_SPACE = 1_000_000  # six digits


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
    stmt = stmt.options(selectinload(Booking.co_holders))  # one query for the page's co-holders, not one each
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
    co_holder_ids = out.pop("co_holder_ids", None)
    if co_holder_ids is not None:
        out["co_holders"] = _co_holders(session, list(co_holder_ids))
    _check_holder_not_co_holder(out, current)
    starts = out.get("starts_at", current.starts_at if current else None)
    ends = out.get("ends_at", current.ends_at if current else None)
    if starts is not None and ends is not None and ends <= starts:
        raise InvalidError("ends_at must be after starts_at", "ends_at")
    if out.get("status") is BookingStatus.CHECKED_IN and (current is None or current.checked_in_at is None):
        out["checked_in_at"] = utcnow()
    return out


def _co_holders(session: Session, ids: list[int]) -> list[Person]:
    """The people `co_holder_ids` names, in id order; InvalidError if too many, repeated or unknown."""
    if len(ids) > MAX_CO_HOLDERS:
        raise InvalidError(
            f"a booking has at most {MAX_CO_HOLDERS} co-holders, not {len(ids)}", "co_holder_ids"
        )
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise InvalidError(f"co_holder_ids names person {_listed(repeated)} more than once", "co_holder_ids")
    people = (
        list(session.scalars(select(Person).where(Person.id.in_(ids)).order_by(Person.id))) if ids else []
    )
    missing = sorted(set(ids) - {p.id for p in people})
    if missing:
        named = f"person {missing[0]} does" if len(missing) == 1 else f"persons {_listed(missing)} do"
        raise InvalidError(f"{named} not exist", "co_holder_ids")
    return people


def _listed(ids: list[int]) -> str:
    return ", ".join(map(str, ids))


def _check_holder_not_co_holder(out: dict[str, Any], current: Booking | None) -> None:
    """The holder is named once: as the holder, not also among the co-holders."""
    holder_id = out.get("holder_id", current.holder_id if current else None)
    if holder_id is None:
        return
    if "co_holders" in out:
        if any(p.id == holder_id for p in out["co_holders"]):
            raise InvalidError(
                f"person {holder_id} is the holder, so cannot be a co-holder too", "co_holder_ids"
            )
    elif current is not None and any(p.id == holder_id for p in current.co_holders):
        message = f"person {holder_id} is a co-holder of booking {current.id}; take them out of co_holder_ids"
        raise InvalidError(f"{message} to make them the holder", "holder_id")


def _apply(booking: Booking, values: dict[str, Any]) -> tuple[dict[str, Any], set[int]]:
    """Apply resolved values to an existing booking: (what changed, the people it no longer names)."""
    values = dict(values)
    co_holders: list[Person] | None = values.pop("co_holders", None)
    before = _people(booking)
    diff = changed_fields(booking, values)
    if co_holders is not None and {p.id for p in co_holders} != {p.id for p in booking.co_holders}:
        booking.co_holders = co_holders
        diff["co_holder_ids"] = [p.id for p in co_holders]
    return diff, before - _people(booking)


def _people(booking: Booking) -> set[int]:
    """The holder and co-holders: everyone the booking lets in."""
    ids = {p.id for p in booking.co_holders}
    return ids if booking.holder_id is None else ids | {booking.holder_id}


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


def _logged(
    session: Session,
    actor: str,
    action: str,
    booking: Booking,
    detail: dict[str, Any],
    former: set[int] | None = None,
) -> None:
    """Log the change for the replica (with `former`: people it took off the booking) and the audit trail."""
    session.flush()
    replica_log.record_booking_change(session, booking.id, former_holder_ids=former or ())
    audit.record(session, actor, action, "booking", booking.id, detail)


def new_checkin_code(session: Session, site_id: int, now: datetime) -> str:
    """A six-digit check-in code no other live booking at the site has (typed at the site's kiosk)."""
    while True:
        code = f"{secrets.randbelow(CHECKIN_CODE_SPACE):06d}"
        clash = session.scalars(
            select(Booking.id)
            .join(Room, Room.id == Booking.room_id)
            .where(
                Room.site_id == site_id,
                Booking.checkin_code == code,
                Booking.status.in_(LIVE_BOOKING_STATUSES),
                Booking.ends_at > now,
            )
            .limit(1)
        ).first()
        if clash is None:
            return code


def _give_code(session: Session, booking: Booking, former_site_id: int | None = None) -> None:
    """A booking gets its code when created, and a new one when it moves to another site."""
    site_id = booking.room.site_id
    if booking.checkin_code is None or (former_site_id is not None and former_site_id != site_id):
        booking.checkin_code = new_checkin_code(session, site_id, utcnow())


def create_booking(session: Session, actor: str, fields: dict[str, Any]) -> Booking:
    values = _resolve(session, fields, None)
    values.setdefault("source", MANUAL_SOURCE)
    _check_identity(session, values["source"], values.get("external_id"), None)
    booking = Booking(**values)
    _give_code(session, booking)
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
    site_id = booking.room.site_id
    diff, former = _apply(booking, values)
    _give_code(session, booking, site_id)
    if diff:
        _logged(session, actor, "update", booking, diff, former)
    return booking


def cancel_booking(session: Session, actor: str, booking_id: int, *, reason: str = "") -> Booking:
    """Cancel (idempotent); `reason` (a caretaker's, from the console) goes into the audit row."""
    booking = get_booking(session, booking_id)
    if booking.status is not BookingStatus.CANCELLED:
        booking.status = BookingStatus.CANCELLED
        _logged(session, actor, "cancel", booking, {"reason": reason} if reason else {})
    return booking


def delete_booking(session: Session, actor: str, booking_id: int) -> None:
    """Remove a booking entered by mistake (imported ones are cancelled instead, to keep statistics)."""
    booking = get_booking(session, booking_id)
    people = _people(booking)
    session.delete(booking)
    session.flush()
    replica_log.record_booking_change(session, booking_id, former_holder_ids=people)
    audit.record(session, actor, "delete", "booking", booking_id)


def _find_external(session: Session, source: str, external_id: str) -> Booking | None:
    return session.scalars(
        select(Booking).where(Booking.source == source, Booking.external_id == external_id)
    ).one_or_none()


def upsert_external(
    session: Session, actor: str, source: str, external_id: str, fields: dict[str, Any]
) -> tuple[Booking, bool]:
    """Create or update the booking `(source, external_id)`; returns it and whether it was created.

    Sending the same booking again changes nothing (no replica entry, no audit row). An end changed here
    (extended, or ended early) stands while the booking system keeps sending the end it had; when it sends
    a new end, that one wins.
    """
    booking = _find_external(session, source, external_id)
    if booking is None:
        values = _resolve(session, fields, None)
        values["source_ends_at"] = values.get("ends_at")
        booking = Booking(source=source, external_id=external_id, **values)
        _give_code(session, booking)
        session.add(booking)
        _logged(session, actor, "import", booking, {"source": source, "external_id": external_id})
        return booking, True
    fields = _keep_local_end(booking, fields)
    site_id = booking.room.site_id
    diff, former = _apply(booking, _resolve(session, fields, booking))
    _give_code(session, booking, site_id)
    if diff:
        _logged(session, actor, "import_update", booking, diff, former)
    return booking, False


def _keep_local_end(booking: Booking, fields: dict[str, Any]) -> dict[str, Any]:
    sent = fields.get("ends_at")
    if sent is None:
        return fields
    if booking.source_ends_at is not None and sent == booking.source_ends_at:
        return {**fields, "ends_at": booking.ends_at}
    booking.source_ends_at = sent
    return fields


def cancel_external(session: Session, actor: str, source: str, external_id: str) -> Booking:
    booking = _find_external(session, source, external_id)
    if booking is None:
        raise NotFoundError(f"booking '{external_id}' from source '{source}' does not exist")
    return cancel_booking(session, actor, booking.id)
