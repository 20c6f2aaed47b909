"""Who is signed in to the console, and the checks every console page and form makes.

The console shares the signed session cookie of central's web pages; it keeps the staff member's id there
and looks them up on every request, so a deactivated or demoted user is out at their next click. Signing in
replaces the whole session (no fixation). Forms carry the session's CSRF token like the resident pages.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Form, Request

from central.api.deps import DbSession
from central.services.staff_sign_in import StaffUser, active_staff
from central.web.session import CSRF

STAFF_ID = "staff_id"
STAFF_NAME = "staff_name"
STAFF_ROLE = "staff_role"


class StaffSignInRequired(Exception):  # noqa: N818 (a redirect to the sign-in page)
    """The page needs a signed-in caretaker or admin."""


class StaffCsrfRejected(Exception):  # noqa: N818
    """A console form came without this session's token (stale page, or another site posting)."""


class AdminOnly(Exception):  # noqa: N818
    """A caretaker asked for an admin's page."""


def remember(request: Request, staff: StaffUser) -> None:
    request.session.clear()
    request.session.update(
        {
            STAFF_ID: staff.id,
            STAFF_NAME: staff.username,
            STAFF_ROLE: staff.role.value,
            CSRF: secrets.token_urlsafe(24),
        }
    )


def forget(request: Request) -> None:
    request.session.clear()


def signed_in_staff(request: Request) -> StaffUser | None:
    """Who the cookie says is signed in (for the page header; `current_staff` checks the database)."""
    from central.models import ApiRole

    staff_id, name, role = (request.session.get(k) for k in (STAFF_ID, STAFF_NAME, STAFF_ROLE))
    if not isinstance(staff_id, int) or not isinstance(name, str) or role not in {r.value for r in ApiRole}:
        return None
    return StaffUser(id=staff_id, username=name, role=ApiRole(role))


def current_staff(request: Request, session: DbSession) -> StaffUser:
    claimed = signed_in_staff(request)
    staff = active_staff(session, claimed.id) if claimed is not None else None
    if staff is None:
        forget(request)
        raise StaffSignInRequired
    if staff != claimed:  # role changed meanwhile: the header must say what the user may do now
        request.session[STAFF_ROLE] = staff.role.value
    return staff


def current_admin(staff: Annotated[StaffUser, Depends(current_staff)]) -> StaffUser:
    if not staff.is_admin:
        raise AdminOnly
    return staff


def require_csrf(request: Request, csrf: Annotated[str, Form()] = "") -> None:
    expected = request.session.get(CSRF)
    if not isinstance(expected, str) or not secrets.compare_digest(expected, csrf):
        raise StaffCsrfRejected


def require_csrf_header(request: Request) -> None:
    expected = request.session.get(CSRF)
    given = request.headers.get("x-csrf-token", "")
    if not isinstance(expected, str) or not secrets.compare_digest(expected, given):
        raise StaffCsrfRejected


Staff = Annotated[StaffUser, Depends(current_staff)]
AdminStaff = Annotated[StaffUser, Depends(current_admin)]
Csrf = Annotated[None, Depends(require_csrf)]
CsrfHeader = Annotated[None, Depends(require_csrf_header)]
