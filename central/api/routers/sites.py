"""/sites: sites and their zones, doors, rooms, opening hours, exceptions and "open now"."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query, Response
from pydantic import AfterValidator, Field, StringConstraints

from central.api.auth import Admin, Staff
from central.api.deps import DbSession
from central.api.paging import Page, Paging, page_of
from central.api.routers.common import (
    Input,
    Line,
    LocalTime,
    Name,
    Output,
    Patch,
    PathId,
    PathSlug,
    Phone,
    Ref,
    SearchText,
    Slug,
    Text,
    UtcDateTime,
    set_fields,
)
from central.models import Door, DoorKind, LockType, OpeningException, Room, Site, Zone
from central.schedules import DEFAULT_TIMEZONE, ExceptionKind, HoursKind, WeeklyHours
from central.services import hours as hours_service
from central.services import sites as service
from central.services.enrolment import check_age_limits

router = APIRouter(prefix="/sites", tags=["sites"])

MAX_HOURS_ROWS = 100


def _zone_name(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone '{value}' (use an IANA name such as Europe/Oslo)") from None
    return value


TimeZone = Annotated[
    str,
    StringConstraints(max_length=64, pattern=r"^[A-Za-z_]+(/[A-Za-z_+-]+){0,2}$"),
    AfterValidator(_zone_name),
]
Day = Annotated[date, Field(ge=date(2000, 1, 1), le=date(2199, 12, 31))]
MinAge = Annotated[int, Field(ge=0, le=100, description="Younger needs a guardian's recorded consent.")]
MinAgeWithConsent = Annotated[
    int, Field(ge=0, le=100, description="Younger cannot sign up alone, not even with consent (≤ min_age).")
]


# --- sites ------------------------------------------------------------------------------------------------


class SiteIn(Input):
    slug: Slug
    name: Name
    address: Line = ""
    timezone: TimeZone = DEFAULT_TIMEZONE
    closed_on_public_holidays: bool = True
    contact_phone: Phone | None = None
    caretaker_phone: Phone | None = None
    help_text_nb: Text = ""
    help_text_en: Text = ""
    min_age: MinAge = 18
    min_age_with_consent: MinAgeWithConsent = 15


class SitePatch(Patch):
    nullable = frozenset({"contact_phone", "caretaker_phone"})

    name: Name | None = None
    address: Line | None = None
    timezone: TimeZone | None = None
    closed_on_public_holidays: bool | None = None
    contact_phone: Phone | None = None
    caretaker_phone: Phone | None = None
    help_text_nb: Text | None = None
    help_text_en: Text | None = None
    min_age: MinAge | None = None
    min_age_with_consent: MinAgeWithConsent | None = None


class SiteOut(Output):
    id: int
    slug: str
    name: str
    address: str
    timezone: str
    closed_on_public_holidays: bool
    contact_phone: str | None
    caretaker_phone: str | None
    help_text_nb: str
    help_text_en: str
    min_age: int
    min_age_with_consent: int
    created_at: datetime


def _site(site: Site) -> SiteOut:
    return SiteOut.model_validate(site)


@router.get("", summary="List sites")
def list_sites(
    session: DbSession, _: Staff, paging: Paging, name: Annotated[SearchText | None, Query()] = None
) -> Page[SiteOut]:
    return page_of(service.list_sites(session, limit=paging.limit, offset=paging.offset, name=name), _site)


@router.post("", status_code=201, summary="Create a site")
def create_site(session: DbSession, user: Admin, body: SiteIn, response: Response) -> SiteOut:
    site = service.create_site(session, user.username, body.model_dump())
    check_age_limits(site)
    response.headers["Location"] = f"/sites/{site.slug}"
    return _site(site)


@router.get("/{site}", summary="Get a site")
def get_site(session: DbSession, _: Staff, site: PathSlug) -> SiteOut:
    return _site(service.get_site(session, site))


@router.patch("/{site}", summary="Change a site (its slug is fixed)")
def update_site(session: DbSession, user: Admin, site: PathSlug, body: SitePatch) -> SiteOut:
    return _site(check_age_limits(service.update_site(session, user.username, site, set_fields(body))))


@router.delete("/{site}", status_code=204, summary="Delete a site with no history")
def delete_site(session: DbSession, user: Admin, site: PathSlug) -> None:
    service.delete_site(session, user.username, site)


# --- zones ------------------------------------------------------------------------------------------------


class ZoneIn(Input):
    slug: Slug
    name: Name


class ZonePatch(Patch):
    name: Name | None = None


class ZoneOut(Output):
    id: int
    slug: str
    name: str


def _zone(zone: Zone) -> ZoneOut:
    return ZoneOut.model_validate(zone)


@router.get("/{site}/zones", summary="List a site's zones", tags=["zones"])
def list_zones(session: DbSession, _: Staff, site: PathSlug, paging: Paging) -> Page[ZoneOut]:
    return page_of(service.list_zones(session, site, limit=paging.limit, offset=paging.offset), _zone)


@router.post("/{site}/zones", status_code=201, summary="Create a zone", tags=["zones"])
def create_zone(session: DbSession, user: Admin, site: PathSlug, body: ZoneIn) -> ZoneOut:
    return _zone(service.create_zone(session, user.username, site, body.slug, body.name))


@router.get("/{site}/zones/{zone}", summary="Get a zone", tags=["zones"])
def get_zone(session: DbSession, _: Staff, site: PathSlug, zone: PathSlug) -> ZoneOut:
    return _zone(service.get_zone(session, service.get_site(session, site), zone))


@router.patch("/{site}/zones/{zone}", summary="Rename a zone", tags=["zones"])
def update_zone(session: DbSession, user: Admin, site: PathSlug, zone: PathSlug, body: ZonePatch) -> ZoneOut:
    return _zone(service.update_zone(session, user.username, site, zone, set_fields(body)))


@router.delete("/{site}/zones/{zone}", status_code=204, summary="Delete an unused zone", tags=["zones"])
def delete_zone(session: DbSession, user: Admin, site: PathSlug, zone: PathSlug) -> None:
    service.delete_zone(session, user.username, site, zone)


# --- doors ------------------------------------------------------------------------------------------------

UnlockSeconds = Annotated[int, Field(ge=1, le=300, description="How long a granted door stays unlocked.")]
HeldOpenSeconds = Annotated[int, Field(ge=5, le=3600, description="Open longer than this raises an alarm.")]


class DoorIn(Input):
    slug: Slug
    name: Name
    zone: Slug = Field(description="The zone the door leads into.")
    kind: DoorKind
    unlock_seconds: UnlockSeconds = 5
    held_open_seconds: HeldOpenSeconds = 30
    lock_type: LockType = LockType.FAIL_SECURE


class DoorPatch(Patch):
    name: Name | None = None
    zone: Slug | None = None
    kind: DoorKind | None = None
    unlock_seconds: UnlockSeconds | None = None
    held_open_seconds: HeldOpenSeconds | None = None
    lock_type: LockType | None = None


class DoorOut(Output):
    id: int
    slug: str
    name: str
    zone: str
    kind: DoorKind
    unlock_seconds: int
    held_open_seconds: int
    lock_type: LockType
    last_state: str | None
    last_state_at: datetime | None


def _door(door: Door) -> DoorOut:
    return DoorOut(
        id=door.id,
        slug=door.slug,
        name=door.name,
        zone=door.zone.slug,
        kind=door.kind,
        unlock_seconds=door.unlock_seconds,
        held_open_seconds=door.held_open_seconds,
        lock_type=door.lock_type,
        last_state=door.last_state,
        last_state_at=door.last_state_at,
    )


@router.get("/{site}/doors", summary="List a site's doors", tags=["doors"])
def list_doors(session: DbSession, _: Staff, site: PathSlug, paging: Paging) -> Page[DoorOut]:
    return page_of(service.list_doors(session, site, limit=paging.limit, offset=paging.offset), _door)


@router.post("/{site}/doors", status_code=201, summary="Create a door", tags=["doors"])
def create_door(session: DbSession, user: Admin, site: PathSlug, body: DoorIn) -> DoorOut:
    return _door(service.create_door(session, user.username, site, body.model_dump()))


@router.get("/{site}/doors/{door}", summary="Get a door with its last known state", tags=["doors"])
def get_door(session: DbSession, _: Staff, site: PathSlug, door: PathSlug) -> DoorOut:
    return _door(service.get_door(session, service.get_site(session, site), door))


@router.patch("/{site}/doors/{door}", summary="Change a door", tags=["doors"])
def update_door(session: DbSession, user: Admin, site: PathSlug, door: PathSlug, body: DoorPatch) -> DoorOut:
    return _door(service.update_door(session, user.username, site, door, set_fields(body)))


@router.delete("/{site}/doors/{door}", status_code=204, summary="Delete a door", tags=["doors"])
def delete_door(session: DbSession, user: Admin, site: PathSlug, door: PathSlug) -> None:
    service.delete_door(session, user.username, site, door)


# --- rooms ------------------------------------------------------------------------------------------------

Capacity = Annotated[int, Field(ge=0, le=10_000)]


class RoomIn(Input):
    slug: Slug
    name: Name
    zone: Slug
    door: Slug | None = Field(default=None, description="The room's own door, if it has one.")
    capacity: Capacity = 0
    calendar_resource: Ref | None = Field(default=None, description="The room's id in the booking system.")
    implicit_checkin: bool = Field(default=True, description="The holder's entry checks the booking in.")


class RoomPatch(Patch):
    nullable = frozenset({"door", "calendar_resource"})

    name: Name | None = None
    zone: Slug | None = None
    door: Slug | None = None
    capacity: Capacity | None = None
    calendar_resource: Ref | None = None
    implicit_checkin: bool | None = None


class RoomOut(Output):
    id: int
    slug: str
    name: str
    zone: str
    door: str | None
    capacity: int
    calendar_resource: str | None
    implicit_checkin: bool


def _room(room: Room) -> RoomOut:
    return RoomOut(
        id=room.id,
        slug=room.slug,
        name=room.name,
        zone=room.zone.slug,
        door=room.door.slug if room.door is not None else None,
        capacity=room.capacity,
        calendar_resource=room.calendar_resource,
        implicit_checkin=room.implicit_checkin,
    )


@router.get("/{site}/rooms", summary="List a site's bookable rooms", tags=["rooms"])
def list_rooms(session: DbSession, _: Staff, site: PathSlug, paging: Paging) -> Page[RoomOut]:
    return page_of(service.list_rooms(session, site, limit=paging.limit, offset=paging.offset), _room)


@router.post("/{site}/rooms", status_code=201, summary="Create a room", tags=["rooms"])
def create_room(session: DbSession, user: Admin, site: PathSlug, body: RoomIn) -> RoomOut:
    return _room(service.create_room(session, user.username, site, body.model_dump()))


@router.get("/{site}/rooms/{room}", summary="Get a room", tags=["rooms"])
def get_room(session: DbSession, _: Staff, site: PathSlug, room: PathSlug) -> RoomOut:
    return _room(service.get_room(session, service.get_site(session, site), room))


@router.patch("/{site}/rooms/{room}", summary="Change a room", tags=["rooms"])
def update_room(session: DbSession, user: Admin, site: PathSlug, room: PathSlug, body: RoomPatch) -> RoomOut:
    return _room(service.update_room(session, user.username, site, room, set_fields(body)))


@router.delete(
    "/{site}/rooms/{room}", status_code=204, summary="Delete a room with no bookings", tags=["rooms"]
)
def delete_room(session: DbSession, user: Admin, site: PathSlug, room: PathSlug) -> None:
    service.delete_room(session, user.username, site, room)


# --- opening hours ----------------------------------------------------------------------------------------


class HoursItem(Input):
    weekday: int = Field(ge=0, le=6, description="0 = Monday ... 6 = Sunday.")
    opens: LocalTime
    closes: LocalTime = Field(description="Local time; 00:00 means midnight at the end of the day.")
    kind: HoursKind = HoursKind.MERAAPENT


class WeeklyHoursBody(Input):
    """The whole weekly pattern of a site; several intervals per weekday and kind are allowed."""

    hours: list[HoursItem] = Field(max_length=MAX_HOURS_ROWS)


@router.get("/{site}/opening-hours", summary="The site's weekly opening hours", tags=["opening hours"])
def get_hours(session: DbSession, _: Staff, site: PathSlug) -> WeeklyHoursBody:
    rows = hours_service.list_hours(session, site)
    return WeeklyHoursBody(
        hours=[HoursItem(weekday=h.weekday, opens=h.opens, closes=h.closes, kind=h.kind) for h in rows]
    )


@router.put("/{site}/opening-hours", summary="Replace the weekly opening hours", tags=["opening hours"])
def put_hours(session: DbSession, user: Admin, site: PathSlug, body: WeeklyHoursBody) -> WeeklyHoursBody:
    wanted = [WeeklyHours(h.weekday, h.opens, h.closes, h.kind) for h in body.hours]
    rows = hours_service.replace_hours(session, user.username, site, wanted)
    return WeeklyHoursBody(
        hours=[HoursItem(weekday=h.weekday, opens=h.opens, closes=h.closes, kind=h.kind) for h in rows]
    )


class ExceptionIn(Input):
    day: Day
    kind: ExceptionKind
    opens: LocalTime | None = None
    closes: LocalTime | None = None
    hours_kind: HoursKind = HoursKind.MERAAPENT
    note: Line = ""


class ExceptionOut(Output):
    id: int
    day: date
    kind: ExceptionKind
    opens: time | None
    closes: time | None
    hours_kind: HoursKind
    note: str


def _exception(row: OpeningException) -> ExceptionOut:
    return ExceptionOut.model_validate(row)


@router.get("/{site}/opening-exceptions", summary="Closed days and special hours", tags=["opening hours"])
def list_exceptions(
    session: DbSession,
    _: Staff,
    site: PathSlug,
    paging: Paging,
    from_day: Annotated[Day | None, Query(alias="from")] = None,
    to_day: Annotated[Day | None, Query(alias="to")] = None,
) -> Page[ExceptionOut]:
    found = hours_service.list_exceptions(
        session, site, limit=paging.limit, offset=paging.offset, from_day=from_day, to_day=to_day
    )
    return page_of(found, _exception)


@router.post(
    "/{site}/opening-exceptions",
    status_code=201,
    summary="Add a closed day or special hours",
    tags=["opening hours"],
)
def add_exception(session: DbSession, user: Admin, site: PathSlug, body: ExceptionIn) -> ExceptionOut:
    return _exception(hours_service.add_exception(session, user.username, site, body.model_dump()))


@router.get("/{site}/opening-exceptions/{exception_id}", summary="Get an exception", tags=["opening hours"])
def get_exception(session: DbSession, _: Staff, site: PathSlug, exception_id: PathId) -> ExceptionOut:
    return _exception(hours_service.get_exception(session, site, exception_id))


@router.delete(
    "/{site}/opening-exceptions/{exception_id}",
    status_code=204,
    summary="Remove an exception",
    tags=["opening hours"],
)
def delete_exception(session: DbSession, user: Admin, site: PathSlug, exception_id: PathId) -> None:
    hours_service.delete_exception(session, user.username, site, exception_id)


class ChangeOut(Output):
    at: datetime
    opens: bool


class OpenNowOut(Output):
    site: str
    kind: HoursKind
    at: datetime
    local_time: time
    open: bool
    closed_reason: str | None = Field(
        description="Why the whole day is closed (holiday, exception), if it is."
    )
    next_change: ChangeOut | None = Field(description="When the site next opens or closes (UTC).")


@router.get("/{site}/open-now", summary="Is the site open (meråpent or staffed) now?", tags=["opening hours"])
def open_now(
    session: DbSession,
    _: Staff,
    site: PathSlug,
    kind: HoursKind = HoursKind.MERAAPENT,
    at: Annotated[UtcDateTime | None, Query(description="Ask about another moment (UTC).")] = None,
) -> OpenNowOut:
    answer = hours_service.open_now(session, site, kind, at)
    change = answer.next_change
    return OpenNowOut(
        site=answer.site,
        kind=answer.kind,
        at=answer.at,
        local_time=answer.local_time,
        open=answer.open,
        closed_reason=answer.closed_reason,
        next_change=None if change is None else ChangeOut(at=change.at, opens=change.opens),
    )
