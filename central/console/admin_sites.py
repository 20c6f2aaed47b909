"""A site's opening hours (weekly staffed and meråpent intervals), exceptions (closed days, special hours)
and rooms. Admin edits (as in the API); caretakers see the same page read-only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from central.api.deps import DbSession
from central.api.routers.sites import ExceptionIn, RoomIn, RoomPatch
from central.console.admin_forms import (
    PAGE_SIZE,
    Errors,
    FormError,
    FormList,
    FormText,
    Message,
    Pager,
    form_error,
    found,
    local_today,
    offset_of,
    page_number,
    path_id,
    saving,
    validated,
    week_rows,
)
from central.console.pages import PREFIX, Now, redirect_with_notice, render
from central.console.session import AdminStaff, Csrf, Staff
from central.models import OpeningHours, Site
from central.schedules import ExceptionKind, HoursKind, ScheduleError, WeeklyHours
from central.services import hours, sites
from central.services.staff_sign_in import StaffUser

router = APIRouter(prefix=PREFIX, include_in_schema=False)
SITES = f"{PREFIX}/admin/steder"
MAX_ROWS = 500
BLANK_ROWS = 4


def site_url(slug: str, part: str = "") -> str:
    return f"{SITES}/{slug}{part}"


@router.get("/admin/steder")
def sites_page(
    request: Request, session: DbSession, staff: Staff, side: Annotated[str, Query()] = ""
) -> Response:
    page = page_number(side)
    listed = sites.list_sites(session, limit=PAGE_SIZE, offset=offset_of(page))
    return render(
        request,
        "admin_sites.html",
        {"active": "admin", "sites": listed.items, "pager": Pager(page, listed.total)},
    )


def _site_page(
    request: Request,
    session: DbSession,
    staff: StaffUser,
    slug: str,
    now: datetime,
    *,
    side: str = "",
    errors: Errors | None = None,
    values: dict[str, str] | None = None,
    typed_rows: list[dict[str, str]] | None = None,
) -> Response:
    with found():
        site = sites.get_site(session, slug)
    weekly = hours.list_hours(session, slug)
    page = page_number(side)
    upcoming = hours.list_exceptions(
        session, slug, limit=PAGE_SIZE, offset=offset_of(page), from_day=local_today(now)
    )
    context: dict[str, Any] = {
        "active": "admin",
        "site": site,
        "week": _week_summary(weekly),
        "rows": typed_rows if typed_rows is not None else _hours_rows(weekly),
        "hours_kinds": [k.value for k in HoursKind],
        "exceptions": upcoming.items,
        "pager": Pager(page, upcoming.total),
        "rooms": sites.list_rooms(session, slug, limit=MAX_ROWS, offset=0).items,
        "zones": sites.list_zones(session, slug, limit=MAX_ROWS, offset=0).items,
        "doors": sites.list_doors(session, slug, limit=MAX_ROWS, offset=0).items,
        "errors": errors or {},
        "hours_open": any(name.startswith("hours-") for name in errors or {}),
        "values": values or {},
        "is_admin": staff.is_admin,
    }
    return render(request, "admin_site.html", context, status_code=422 if errors else 200)


def _week_summary(weekly: list[OpeningHours]) -> list[dict[str, Any]]:
    """Per weekday, its staffed and meråpent intervals as text ('07:00–22:00'), for reading at a glance."""
    days: list[dict[str, Any]] = [{"weekday": d, **{k.value: [] for k in HoursKind}} for d in range(7)]
    for row in weekly:
        days[row.weekday][HoursKind(row.kind).value].append(f"{row.opens:%H:%M}–{row.closes:%H:%M}")
    return days


def _hours_rows(weekly: list[OpeningHours]) -> list[dict[str, str]]:
    rows = [
        {
            "weekday": str(h.weekday),
            "kind": HoursKind(h.kind).value,
            "starts": f"{h.opens:%H:%M}",
            "ends": f"{h.closes:%H:%M}",
        }
        for h in weekly
    ]
    blank = {"weekday": "0", "kind": HoursKind.MERAAPENT.value, "starts": "", "ends": ""}
    return rows + [dict(blank) for _ in range(BLANK_ROWS)]


@router.get("/admin/steder/{slug}")
def site_page(
    request: Request,
    session: DbSession,
    staff: Staff,
    now: Now,
    slug: str,
    side: Annotated[str, Query()] = "",
) -> Response:
    return _site_page(request, session, staff, slug, now, side=side)


def _site(session: DbSession, slug: str) -> Site:
    with found():
        return sites.get_site(session, slug)


# --- weekly hours -----------------------------------------------------------------------------------------


@router.post("/admin/steder/{slug}/apningstider")
def replace_hours(
    request: Request,
    session: DbSession,
    staff: AdminStaff,
    now: Now,
    _: Csrf,
    slug: str,
    weekday: FormList = None,
    kind: FormList = None,
    starts: FormList = None,
    ends: FormList = None,
    remove: FormList = None,
) -> Response:
    """The whole weekly pattern, both kinds (as PUT /sites/{s}/opening-hours)."""
    _site(session, slug)
    days, kinds, froms, tos = weekday or [], kind or [], starts or [], ends or []
    typed = [
        {"weekday": d, "kind": k, "starts": s, "ends": e}
        for d, k, s, e in zip(days, kinds, froms, tos, strict=False)
    ]
    try:
        wanted = []
        for row in week_rows("hours", days, froms, tos, kinds, remove or []):
            if row.kind not in {k.value for k in HoursKind}:
                raise form_error(f"hours-kind-{row.index}", "console.admin.error.stale_form")
            try:
                wanted.append(WeeklyHours(row.weekday, row.starts, row.ends, HoursKind(row.kind)))
            except ScheduleError:
                raise form_error(f"hours-ends-{row.index}", "console.admin.error.ends_after_starts") from None
        with saving(session, "hours-form"):
            hours.replace_hours(session, staff.username, slug, wanted)
    except FormError as error:
        return _site_page(request, session, staff, slug, now, errors=error.errors, typed_rows=typed)
    return redirect_with_notice(request, site_url(slug, "#hours"), "console.admin.site.hours_saved")


# --- exceptions -------------------------------------------------------------------------------------------


@router.post("/admin/steder/{slug}/unntak")
def add_exception(
    request: Request,
    session: DbSession,
    staff: AdminStaff,
    now: Now,
    _: Csrf,
    slug: str,
    kind: FormText = "",
    day: FormText = "",
    hours_kind: FormText = "",
    opens: FormText = "",
    closes: FormText = "",
    note: FormText = "",
) -> Response:
    """A closed day (both kinds of hours) or special hours on a date (POST /sites/{s}/opening-exceptions)."""
    _site(session, slug)
    form = "closed" if kind == ExceptionKind.CLOSED.value else "special"
    typed = {"day": day, "hours_kind": hours_kind, "opens": opens, "closes": closes, "note": note}
    values = {f"{form}-{k}": v for k, v in typed.items()}
    fields = {k: f"{form}-{k}" for k in typed}
    data: dict[str, Any] = {"kind": kind, "day": day.strip(), "note": note}
    if form == "special":
        data |= {"hours_kind": hours_kind, "opens": opens.strip(), "closes": closes.strip()}
    try:
        needed = ("day", "opens", "closes") if form == "special" else ("day",)
        missing = [f"{form}-{k}" for k in needed if not typed[k].strip()]
        if missing:
            raise FormError({name: Message("console.admin.error.required") for name in missing})
        body = validated(ExceptionIn, data, fields)
        with saving(session, f"{form}-closes" if form == "special" else f"{form}-day", fields):
            hours.add_exception(session, staff.username, slug, body.model_dump())
    except FormError as error:
        return _site_page(request, session, staff, slug, now, errors=error.errors, values=values)
    return redirect_with_notice(
        request, site_url(slug, "#exceptions"), "console.admin.site.exception_added", day=day
    )


@router.post("/admin/steder/{slug}/unntak/{exception_id}/slett")
def delete_exception(
    request: Request, session: DbSession, staff: AdminStaff, now: Now, _: Csrf, slug: str, exception_id: str
) -> Response:
    number = path_id(exception_id)
    with found():
        row = hours.get_exception(session, slug, number)
    day = f"{row.day:%d.%m.%Y}"
    try:
        with saving(session, f"exception-{number}"):
            hours.delete_exception(session, staff.username, slug, number)
    except FormError as error:
        return _site_page(request, session, staff, slug, now, errors=error.errors)
    return redirect_with_notice(
        request, site_url(slug, "#exceptions"), "console.admin.site.exception_deleted", day=day
    )


# --- rooms ------------------------------------------------------------------------------------------------


@router.post("/admin/steder/{slug}/rom")
def add_room(
    request: Request,
    session: DbSession,
    staff: AdminStaff,
    now: Now,
    _: Csrf,
    slug: str,
    room_slug: FormText = "",
    name: FormText = "",
    zone: FormText = "",
    door: FormText = "",
    capacity: FormText = "",
    implicit_checkin: FormText = "",
) -> Response:
    _site(session, slug)
    typed = {
        "room_slug": room_slug,
        "room_name": name,
        "room_zone": zone,
        "room_door": door,
        "room_capacity": capacity,
    }
    fields = {
        "slug": "room_slug",
        "name": "room_name",
        "zone": "room_zone",
        "door": "room_door",
        "capacity": "room_capacity",
    }
    data = {
        "slug": room_slug.strip(),
        "name": name,
        "zone": zone,
        "door": door or None,
        "capacity": capacity.strip() or "0",
        "implicit_checkin": implicit_checkin == "yes",
    }
    try:
        body = validated(RoomIn, data, fields)
        with saving(session, "room_slug", fields):
            room = sites.create_room(session, staff.username, slug, body.model_dump())
    except FormError as error:
        return _site_page(request, session, staff, slug, now, errors=error.errors, values=typed)
    return redirect_with_notice(
        request, site_url(slug, "#rooms"), "console.admin.site.room_added", room=room.name
    )


@router.post("/admin/steder/{slug}/rom/{room}")
def change_room(
    request: Request,
    session: DbSession,
    staff: AdminStaff,
    now: Now,
    _: Csrf,
    slug: str,
    room: str,
    door: FormText = "",
    capacity: FormText = "",
    implicit_checkin: FormText = "",
) -> Response:
    """Capacity, implicit check-in and the room's own door (as PATCH /sites/{s}/rooms/{r})."""
    with found():
        current = sites.get_room(session, _site(session, slug), room)
    fields = {"capacity": f"capacity-{current.id}", "door": f"door-{current.id}"}
    data = {"door": door or None, "capacity": capacity.strip(), "implicit_checkin": implicit_checkin == "yes"}
    try:
        body = validated(RoomPatch, data, fields)
        with saving(session, f"capacity-{current.id}", fields):
            sites.update_room(session, staff.username, slug, room, body.model_dump(exclude_unset=True))
    except FormError as error:
        return _site_page(request, session, staff, slug, now, errors=error.errors)
    return redirect_with_notice(
        request, site_url(slug, "#rooms"), "console.admin.site.room_saved", room=current.name
    )
