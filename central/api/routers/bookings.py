"""/bookings: room bookings; the booking system's integration imports them by (source, external_id)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import AfterValidator, Field, StringConstraints

from central.api.auth import BookingCaller, Staff
from central.api.deps import AppSettings, DbSession
from central.api.paging import Page, Paging, page_of
from central.api.routers.common import (
    MAX_ID,
    Id,
    Input,
    Line,
    Name,
    Output,
    Patch,
    PathId,
    Ref,
    Slug,
    UtcDateTime,
)
from central.checkin import checkin_rules
from central.db import utcnow
from central.models import Booking, BookingStatus
from central.services import booking_changes, checkin
from central.services import bookings as service

router = APIRouter(prefix="/bookings", tags=["bookings"])

SOURCE_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,31}$"
Source = Annotated[
    str,
    StringConstraints(pattern=SOURCE_PATTERN, max_length=32),
    Field(description="Where the booking comes from, e.g. 'vega' (lowercase, digits, '.', '_', '-')."),
]
# Listing may also name a calendar feed's own source ("ical:<feed id>", central.feeds), which integrations
# cannot write into.
SourceFilter = Annotated[
    str,
    StringConstraints(pattern=r"^([a-z0-9][a-z0-9_.-]{0,31}|ical:[0-9]{1,12})$", max_length=32),
    Field(description="Where the booking comes from: an integration's source, or ical:<feed id>."),
]
Day = Annotated[date, Field(ge=date(2000, 1, 1), le=date(2199, 12, 31))]


def _distinct(ids: list[int]) -> list[int]:
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"names person {', '.join(map(str, repeated))} more than once")
    return ids


CoHolderIds = Annotated[
    list[Id],
    Field(
        max_length=service.MAX_CO_HOLDERS,
        description="People besides the holder who may open the room and check it in (not extend or end it).",
    ),
    AfterValidator(_distinct),
]


class BookingIn(Input):
    site: Slug
    room: Slug
    starts_at: UtcDateTime
    ends_at: UtcDateTime
    holder_id: Id | None = Field(default=None, description="The person who may open the room.")
    co_holder_ids: CoHolderIds = Field(default_factory=list)
    organisation: Name | None = None
    title: Line = ""
    status: BookingStatus = BookingStatus.CONFIRMED
    source: Source = service.MANUAL_SOURCE
    external_id: Ref | None = None


class BookingPatch(Patch):
    nullable = frozenset({"holder_id", "organisation", "external_id"})

    site: Slug | None = None
    room: Slug | None = None
    starts_at: UtcDateTime | None = None
    ends_at: UtcDateTime | None = None
    holder_id: Id | None = None
    co_holder_ids: CoHolderIds | None = Field(default=None, description="The whole new list ([] for none).")
    organisation: Name | None = None
    title: Line | None = None
    status: BookingStatus | None = None
    source: Source | None = None
    external_id: Ref | None = None


class ExternalBookingIn(Input):
    """The booking as the booking system has it now; sending it again changes nothing."""

    source: Source
    external_id: Ref
    site: Slug
    room: Slug
    starts_at: UtcDateTime
    ends_at: UtcDateTime
    holder_id: Id | None = None
    co_holder_ids: CoHolderIds = Field(default_factory=list)
    organisation: Name | None = None
    title: Line = ""
    status: BookingStatus | None = Field(default=None, description="Left out: confirmed when new, else kept.")


class ExternalRef(Input):
    source: Source
    external_id: Ref


class ExtensionIn(Input):
    ends_at: UtcDateTime = Field(description="The new end (UTC); at most 4 hours after the current end.")


class BookingOut(Output):
    id: int
    site: str
    room: str
    starts_at: datetime
    ends_at: datetime
    holder_id: int | None
    co_holder_ids: list[int]
    organisation: str | None
    title: str
    status: BookingStatus
    source: str
    external_id: str | None
    checked_in_at: datetime | None
    checkin_code: str | None = Field(
        description="Six digits the holder may type at the site's kiosk to check in."
    )
    created_at: datetime


def _booking(booking: Booking) -> BookingOut:
    return BookingOut(
        id=booking.id,
        site=booking.room.site.slug,
        room=booking.room.slug,
        starts_at=booking.starts_at,
        ends_at=booking.ends_at,
        holder_id=booking.holder_id,
        co_holder_ids=sorted(p.id for p in booking.co_holders),
        organisation=booking.organisation,
        title=booking.title,
        status=booking.status,
        source=booking.source,
        external_id=booking.external_id,
        checked_in_at=booking.checked_in_at,
        checkin_code=booking.checkin_code,
        created_at=booking.created_at,
    )


@router.get("", summary="List bookings")
def list_bookings(
    session: DbSession,
    _: BookingCaller,
    paging: Paging,
    site: Slug | None = None,
    room: Annotated[Slug | None, Query(description="Needs `site` too.")] = None,
    day: Annotated[Day | None, Query(description="Bookings overlapping this local (Oslo) date.")] = None,
    status: BookingStatus | None = None,
    source: SourceFilter | None = None,
    external_id: Annotated[Ref | None, Query()] = None,
    holder_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Page[BookingOut]:
    flt = service.BookingFilter(
        site=site,
        room=room,
        day=day,
        status=status,
        source=source,
        external_id=external_id,
        holder_id=holder_id,
    )
    return page_of(service.list_bookings(session, flt, limit=paging.limit, offset=paging.offset), _booking)


@router.post("", status_code=201, summary="Create a booking")
def create_booking(
    session: DbSession, user: BookingCaller, body: BookingIn, response: Response
) -> BookingOut:
    booking = service.create_booking(session, user.username, body.model_dump())
    response.headers["Location"] = f"/bookings/{booking.id}"
    return _booking(booking)


@router.put(
    "/external",
    summary="Create or update a booking by its id in the booking system (idempotent)",
    responses={200: {"description": "Updated (or unchanged)"}, 201: {"description": "Created"}},
)
def upsert_external(
    session: DbSession, user: BookingCaller, body: ExternalBookingIn, response: Response
) -> BookingOut:
    fields: dict[str, Any] = body.model_dump(exclude={"source", "external_id"})
    if fields["status"] is None:
        del fields["status"]
    booking, created = service.upsert_external(session, user.username, body.source, body.external_id, fields)
    response.status_code = 201 if created else 200
    return _booking(booking)


@router.post("/external/cancel", summary="Cancel a booking by its id in the booking system (idempotent)")
def cancel_external(session: DbSession, user: BookingCaller, body: ExternalRef) -> BookingOut:
    return _booking(service.cancel_external(session, user.username, body.source, body.external_id))


@router.get("/{booking_id}", summary="Get a booking")
def get_booking(session: DbSession, _: BookingCaller, booking_id: PathId) -> BookingOut:
    return _booking(service.get_booking(session, booking_id))


@router.patch("/{booking_id}", summary="Change a booking (move, retime, check in...)")
def update_booking(
    session: DbSession, user: BookingCaller, booking_id: PathId, body: BookingPatch
) -> BookingOut:
    changes = body.model_dump(exclude_unset=True)
    return _booking(service.update_booking(session, user.username, booking_id, changes))


@router.post("/{booking_id}/cancel", summary="Cancel a booking (idempotent)")
def cancel_booking(session: DbSession, user: BookingCaller, booking_id: PathId) -> BookingOut:
    return _booking(service.cancel_booking(session, user.username, booking_id))


@router.post(
    "/{booking_id}/check-in",
    summary="Check a booking in (by default from 15 min before its start to 15 min after; idempotent)",
    responses={409: {"description": "Outside the check-in window, cancelled or released as a no-show"}},
)
def check_in_booking(
    session: DbSession, user: BookingCaller, settings: AppSettings, booking_id: PathId
) -> BookingOut:
    rules = checkin_rules(settings)
    return _booking(checkin.check_in(session, user.username, booking_id, utcnow(), via="api", rules=rules))


@router.post(
    "/{booking_id}/extend",
    summary="Extend a booking that is not over yet, if the room is free until the new end",
    responses={409: {"description": "The room is booked in between, or the booking is over or cancelled"}},
)
def extend_booking(
    session: DbSession, user: BookingCaller, booking_id: PathId, body: ExtensionIn
) -> BookingOut:
    return _booking(
        booking_changes.extend_booking(session, user.username, booking_id, body.ends_at, utcnow())
    )


@router.post(
    "/{booking_id}/end",
    summary="End a booking that has started now (access ends, the room is free)",
    responses={409: {"description": "The booking has not started (cancel it instead), or is over"}},
)
def end_booking(session: DbSession, user: BookingCaller, booking_id: PathId) -> BookingOut:
    return _booking(booking_changes.end_booking_early(session, user.username, booking_id, utcnow()))


@router.delete("/{booking_id}", status_code=204, summary="Delete a booking entered by mistake")
def delete_booking(session: DbSession, user: Staff, booking_id: PathId) -> None:
    service.delete_booking(session, user.username, booking_id)
