"""Bookings overview: a site's rooms and their bookings on one day (today unless chosen), with status, and
cancelling a live booking with a reason (caretakers and admins, as in the API).

The holder is shown by first name or organisation only, and the check-in code not at all: the page is
often on a shared screen at the desk, and the code is the holder's key to the room.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from central.api.deps import DbSession
from central.console.admin_forms import (
    FormError,
    FormText,
    ReasonIn,
    found,
    local_today,
    path_id,
    saving,
    validated,
)
from central.console.pages import PREFIX, Now, redirect_with_notice, render
from central.console.session import Csrf, Staff
from central.models import Booking, Site
from central.replica import LIVE_BOOKING_STATUSES
from central.services import bookings, sites
from central.services.bookings import BookingFilter

router = APIRouter(prefix=PREFIX, include_in_schema=False)
BOOKINGS = f"{PREFIX}/admin/bookinger"
MAX_ROWS = 500

# Each status with a symbol and a tone, so the state is never told by colour alone.
STATUS_LOOK = {
    "confirmed": ("muted", "○"),
    "checked_in": ("ok", "✓"),
    "no_show": ("bad", "✕"),
    "cancelled": ("muted", "⊘"),
    "completed": ("ok", "✔"),
}


def overview_url(site: str, day: date) -> str:
    return f"{BOOKINGS}?{urlencode({'site': site, 'dag': day.isoformat()})}"


def holder_shown(booking: Booking) -> str:
    """The organisation, else the holder's first name: enough for staff to greet them, no more."""
    if booking.organisation:
        return booking.organisation
    if booking.holder is not None and booking.holder.display_name.strip():
        return booking.holder.display_name.split()[0]
    return ""


def _chosen_day(text: str, now: datetime) -> date:
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        return local_today(now)
    return day if date(2000, 1, 1) <= day <= date(2199, 12, 31) else local_today(now)


def _overview(
    request: Request,
    session: DbSession,
    site_slug: str,
    day_text: str,
    now: datetime,
    errors: dict[str, Any] | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    every_site = sites.list_sites(session, limit=MAX_ROWS, offset=0).items
    site = next((s for s in every_site if s.slug == site_slug), every_site[0] if every_site else None)
    day = _chosen_day(day_text, now)
    context: dict[str, Any] = {
        "active": "admin",
        "sites": every_site,
        "site": site,
        "day": day,
        "rooms": _rooms_with_bookings(session, site, day) if site is not None else [],
        "errors": errors or {},
        "values": values or {},
        "look": STATUS_LOOK,
        "live": {s.value for s in LIVE_BOOKING_STATUSES},
        "holder": holder_shown,
        "tz": site.timezone if site is not None else "Europe/Oslo",
    }
    return render(request, "admin_bookings.html", context, status_code=422 if errors else 200)


def _rooms_with_bookings(session: DbSession, site: Site, day: date) -> list[dict[str, Any]]:
    found_bookings = bookings.list_bookings(
        session, BookingFilter(site=site.slug, day=day), limit=MAX_ROWS, offset=0
    )
    by_room: dict[int, list[Booking]] = defaultdict(list)
    for booking in found_bookings.items:
        by_room[booking.room_id].append(booking)
    rooms = sites.list_rooms(session, site.slug, limit=MAX_ROWS, offset=0).items
    return [{"room": room, "bookings": by_room.get(room.id, [])} for room in rooms]


@router.get("/admin/bookinger")
def overview(
    request: Request,
    session: DbSession,
    staff: Staff,
    now: Now,
    site: Annotated[str, Query()] = "",
    dag: Annotated[str, Query()] = "",
) -> Response:
    return _overview(request, session, site[:100], dag[:20], now)


@router.post("/admin/bookinger/{booking_id}/avlys")
def cancel(
    request: Request,
    session: DbSession,
    staff: Staff,
    now: Now,
    _: Csrf,
    booking_id: str,
    reason: FormText = "",
) -> Response:
    """Cancel with a reason, kept in the audit trail (as POST /bookings/{id}/cancel)."""
    with found():
        booking = bookings.get_booking(session, path_id(booking_id))
    number, site_slug = booking.id, booking.room.site.slug
    day = booking.starts_at.astimezone(ZoneInfo(booking.room.site.timezone)).date()
    try:
        why = validated(ReasonIn, {"reason": reason}, {"reason": f"reason-{number}"}).reason
        with saving(session, f"reason-{number}"):
            bookings.cancel_booking(session, staff.username, number, reason=why)
    except FormError as error:
        typed = {f"reason-{number}": reason}
        return _overview(request, session, site_slug, day.isoformat(), now, dict(error.errors), typed)
    return redirect_with_notice(
        request, overview_url(site_slug, day), "console.admin.booking.cancelled", number=number
    )
