"""The administration start page: the areas, and what the signed-in role may do in each."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from central.console.pages import PREFIX, render
from central.console.session import Staff

router = APIRouter(prefix=PREFIX, include_in_schema=False)

# (path, name key, what-it-is key, admin only)
AREAS = (
    ("/admin/personer", "console.admin.people.title", "console.admin.index.people", False),
    ("/admin/grupper", "console.admin.groups.title", "console.admin.index.groups", False),
    ("/admin/steder", "console.admin.sites.title", "console.admin.index.sites", False),
    ("/admin/bookinger", "console.admin.bookings.title", "console.admin.index.bookings", False),
    ("/admin/brukere", "console.admin.users.title", "console.admin.index.users", True),
    ("/admin/logg", "console.admin.audit.title", "console.admin.index.audit", True),
)


@router.get("/admin")
def admin_index(request: Request, staff: Staff) -> Response:
    areas = [area for area in AREAS if staff.is_admin or not area[3]]
    return render(
        request, "admin_index.html", {"active": "admin", "areas": areas, "is_admin": staff.is_admin}
    )


def admin_routers() -> list[APIRouter]:
    """Every administration page's router (central.console.routes mounts them)."""
    from central.console import (
        admin_audit,
        admin_bookings,
        admin_groups,
        admin_people,
        admin_sites,
        admin_users,
    )

    return [
        router,
        admin_people.router,
        admin_groups.router,
        admin_sites.router,
        admin_bookings.router,
        admin_users.router,
        admin_audit.router,
    ]
