"""Access groups: who may enter which zones when. Caretakers add and remove members (as in the API); the
zones a group grants and its weekly schedule are the admin's, and caretakers see them read-only."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from central.api.deps import DbSession
from central.console.admin_forms import (
    PAGE_SIZE,
    Errors,
    FormError,
    FormList,
    FormText,
    Pager,
    form_error,
    found,
    offset_of,
    page_number,
    path_id,
    saving,
    search_text,
    week_rows,
)
from central.console.pages import PREFIX, redirect_with_notice, render
from central.console.session import AdminStaff, Csrf, Staff
from central.models import Site
from central.schedules import ScheduleError
from central.services import groups as service
from central.services import people, sites
from central.services.staff_sign_in import StaffUser

router = APIRouter(prefix=PREFIX, include_in_schema=False)
GROUPS = f"{PREFIX}/admin/grupper"
MAX_SITES = 500
BLANK_ROWS = 3


def group_url(slug: str) -> str:
    return f"{GROUPS}/{slug}"


@router.get("/admin/grupper")
def groups_page(
    request: Request, session: DbSession, staff: Staff, side: Annotated[str, Query()] = ""
) -> Response:
    page = page_number(side)
    listed = service.list_groups(session, limit=PAGE_SIZE, offset=offset_of(page))
    context = {"active": "admin", "groups": listed.items, "pager": Pager(page, listed.total)}
    return render(request, "admin_groups.html", context)


def _group_page(
    request: Request,
    session: DbSession,
    staff: StaffUser,
    slug: str,
    *,
    q: str = "",
    side: str = "",
    errors: Errors | None = None,
    typed_rows: list[dict[str, str]] | None = None,
) -> Response:
    with found():
        group = service.get_group(session, slug)
    page = page_number(side)
    members = service.list_members(session, slug, limit=PAGE_SIZE, offset=offset_of(page))
    query = search_text(q)
    candidates = people.list_people(session, limit=10, offset=0, name=query).items if query else []
    granted = {z.id for z in group.zones}
    rows = typed_rows if typed_rows is not None else _interval_rows(service.group_intervals(session, slug))
    context: dict[str, Any] = {
        "active": "admin",
        "group": group,
        "zones": service.group_zones(session, slug),
        "all_sites": _sites_with_zones(session),
        "granted": granted,
        "rows": rows,
        "members": members.items,
        "already": {p.id for p in candidates if any(g.id == group.id for g in p.groups)},
        "pager": Pager(page, members.total),
        "pager_query": urlencode({"q": query}) + "&" if query else "",
        "query": query or "",
        "candidates": candidates,
        "errors": errors or {},
        "is_admin": staff.is_admin,
    }
    return render(request, "admin_group.html", context, status_code=422 if errors else 200)


def _sites_with_zones(session: DbSession) -> list[Site]:
    return [s for s in sites.list_sites(session, limit=MAX_SITES, offset=0).items if s.zones]


def _interval_rows(intervals: list[Any]) -> list[dict[str, str]]:
    """The editor's rows: the group's intervals, then a few empty ones to add to."""
    rows = [
        {"weekday": str(i.weekday), "starts": f"{i.starts:%H:%M}", "ends": f"{i.ends:%H:%M}"}
        for i in intervals
    ]
    return rows + [{"weekday": "0", "starts": "", "ends": ""} for _ in range(BLANK_ROWS)]


@router.get("/admin/grupper/{slug}")
def group_page(
    request: Request,
    session: DbSession,
    staff: Staff,
    slug: str,
    q: Annotated[str, Query()] = "",
    side: Annotated[str, Query()] = "",
) -> Response:
    return _group_page(request, session, staff, slug, q=q, side=side)


@router.post("/admin/grupper/{slug}/soner")
def replace_zones(
    request: Request, session: DbSession, staff: AdminStaff, _: Csrf, slug: str, zone: FormList = None
) -> Response:
    """Admin: the zones the group grants, ticked among every site's zones (PUT /access-groups/{g}/zones)."""
    refs = []
    for ticked in zone or []:
        site, _sep, name = ticked.partition("/")
        refs.append(service.ZoneRef(site=site, zone=name))
    try:
        with found():
            service.get_group(session, slug)
        with saving(session, "zones"):
            service.replace_zones(session, staff.username, slug, refs)
    except FormError as error:
        return _group_page(request, session, staff, slug, errors=error.errors)
    return redirect_with_notice(request, group_url(slug), "console.admin.group.zones_saved")


@router.post("/admin/grupper/{slug}/tider")
def replace_intervals(
    request: Request,
    session: DbSession,
    staff: AdminStaff,
    _: Csrf,
    slug: str,
    weekday: FormList = None,
    starts: FormList = None,
    ends: FormList = None,
    remove: FormList = None,
) -> Response:
    """Admin: the group's own weekly schedule as a whole (as PUT /access-groups/{g}/intervals); emptying
    it makes the members follow the sites' meråpent hours."""
    days, froms, tos = weekday or [], starts or [], ends or []
    typed = [{"weekday": d, "starts": s, "ends": e} for d, s, e in zip(days, froms, tos, strict=False)]
    try:
        with found():
            service.get_group(session, slug)
        wanted = []
        for row in week_rows("interval", days, froms, tos, remove=remove or []):
            try:
                wanted.append(service.Interval(row.weekday, row.starts, row.ends))
            except ScheduleError:
                raise form_error(
                    f"interval-ends-{row.index}", "console.admin.error.ends_after_starts"
                ) from None
        with saving(session, "interval-form"):
            service.replace_intervals(session, staff.username, slug, wanted)
    except FormError as error:
        return _group_page(request, session, staff, slug, errors=error.errors, typed_rows=typed)
    return redirect_with_notice(request, group_url(slug), "console.admin.group.schedule_saved")


@router.post("/admin/grupper/{slug}/medlemmer")
def add_member(
    request: Request,
    session: DbSession,
    staff: Staff,
    _: Csrf,
    slug: str,
    person: FormText = "",
) -> Response:
    try:
        with found():
            service.get_group(session, slug)
        person_id = int(person) if person.isascii() and person.isdigit() and len(person) < 10 else 0
        if not person_id:
            raise form_error("member", "console.admin.error.stale_form")
        with saving(session, "member"):
            added = service.add_member(session, staff.username, slug, person_id)
            name = people.get_person(session, person_id).display_name
    except FormError as error:
        return _group_page(request, session, staff, slug, errors=error.errors)
    key = "console.admin.group.member_added" if added else "console.admin.group.already_member"
    return redirect_with_notice(request, group_url(slug), key, name=name)


@router.post("/admin/grupper/{slug}/medlemmer/{person_id}/fjern")
def remove_member(
    request: Request, session: DbSession, staff: Staff, _: Csrf, slug: str, person_id: str
) -> Response:
    member = path_id(person_id)
    try:
        with found():
            service.get_group(session, slug)
        with saving(session, "member"):
            name = people.get_person(session, member).display_name
            service.remove_member(session, staff.username, slug, member)
    except FormError as error:
        return _group_page(request, session, staff, slug, errors=error.errors)
    return redirect_with_notice(request, group_url(slug), "console.admin.group.member_removed", name=name)
