"""API users and roles (admin only): create (the token is shown once, on the result page), change role,
deactivate or reactivate, replace the token, give a console password.

The same services as /api-users: the last active admin cannot be demoted or deactivated (the service
refuses, and its words are shown), and a token is never stored or shown again after its one page.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from central.api.deps import DbSession
from central.api.routers.admin import ApiUserIn, ApiUserPatch
from central.console.admin_forms import (
    PAGE_SIZE,
    Errors,
    FormError,
    FormText,
    Pager,
    form_error,
    found,
    offset_of,
    page_number,
    path_id,
    saving,
    validated,
)
from central.console.pages import PREFIX, redirect_with_notice, render
from central.console.session import AdminStaff, Csrf
from central.models import ApiRole, ApiUser
from central.services import api_users as service
from central.services.staff_sign_in import CONSOLE_ROLES, set_password

router = APIRouter(prefix=PREFIX, include_in_schema=False)
USERS = f"{PREFIX}/admin/brukere"


def user_url(user_id: int) -> str:
    return f"{USERS}/{user_id}"


def _users_page(
    request: Request,
    session: DbSession,
    side: str = "",
    errors: Errors | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    page = page_number(side)
    listed = service.list_users(session, limit=PAGE_SIZE, offset=offset_of(page))
    context: dict[str, Any] = {
        "active": "admin",
        "users": listed.items,
        "pager": Pager(page, listed.total),
        "roles": [r.value for r in ApiRole],
        "errors": errors or {},
        "values": values or {},
    }
    return render(request, "admin_users.html", context, status_code=422 if errors else 200)


@router.get("/admin/brukere")
def users_page(
    request: Request, session: DbSession, staff: AdminStaff, side: Annotated[str, Query()] = ""
) -> Response:
    return _users_page(request, session, side)


def _token_page(request: Request, user: ApiUser, token: str, *, created: bool) -> Response:
    """The one page that ever shows this token (no-store, like every console page)."""
    context = {"active": "admin", "user": user, "token": token, "created": created}
    return render(request, "admin_user_token.html", context)


@router.post("/admin/brukere")
def create_user(
    request: Request,
    session: DbSession,
    staff: AdminStaff,
    _: Csrf,
    username: FormText = "",
    role: FormText = "",
) -> Response:
    typed = {"username": username, "role": role}
    try:
        body = validated(ApiUserIn, {"username": username.strip(), "role": role})
        with saving(session, "username"):
            user, token = service.create_user(session, staff.username, body.username, body.role)
    except FormError as error:
        return _users_page(request, session, errors=error.errors, values=typed)
    return _token_page(request, user, token, created=True)


def _user_page(request: Request, session: DbSession, user_id: int, errors: Errors | None = None) -> Response:
    with found():
        user = service.get_user(session, user_id)
    context: dict[str, Any] = {
        "active": "admin",
        "user": user,
        "roles": [r.value for r in ApiRole],
        "console_role": user.role in CONSOLE_ROLES,
        "errors": errors or {},
    }
    return render(request, "admin_user.html", context, status_code=422 if errors else 200)


@router.get("/admin/brukere/{user_id}")
def user_page(request: Request, session: DbSession, staff: AdminStaff, user_id: str) -> Response:
    return _user_page(request, session, path_id(user_id))


def _load(session: DbSession, user_id: str) -> ApiUser:
    with found():
        return service.get_user(session, path_id(user_id))


@router.post("/admin/brukere/{user_id}/rolle")
def change_role(
    request: Request, session: DbSession, staff: AdminStaff, _: Csrf, user_id: str, role: FormText = ""
) -> Response:
    user = _load(session, user_id)
    try:
        body = validated(ApiUserPatch, {"role": role})
        with saving(session, "role"):
            service.update_user(session, staff.username, user.id, body.model_dump(exclude_unset=True))
    except FormError as error:
        return _user_page(request, session, user.id, error.errors)
    return redirect_with_notice(
        request, user_url(user.id), "console.admin.users.role_changed", username=user.username
    )


@router.post("/admin/brukere/{user_id}/aktiv")
def change_active(
    request: Request, session: DbSession, staff: AdminStaff, _: Csrf, user_id: str, active: FormText = ""
) -> Response:
    user = _load(session, user_id)
    try:
        if active not in {"yes", "no"}:
            raise form_error("active", "console.admin.error.stale_form")
        with saving(session, "active"):
            service.update_user(session, staff.username, user.id, {"active": active == "yes"})
    except FormError as error:
        return _user_page(request, session, user.id, error.errors)
    key = "console.admin.users.activated" if active == "yes" else "console.admin.users.deactivated"
    return redirect_with_notice(request, user_url(user.id), key, username=user.username)


@router.post("/admin/brukere/{user_id}/token")
def rotate_token(request: Request, session: DbSession, staff: AdminStaff, _: Csrf, user_id: str) -> Response:
    user = _load(session, user_id)
    user, token = service.rotate_token(session, staff.username, user.id)
    return _token_page(request, user, token, created=False)


@router.post("/admin/brukere/{user_id}/passord")
def give_password(
    request: Request,
    session: DbSession,
    staff: AdminStaff,
    _: Csrf,
    user_id: str,
    password: FormText = "",
    repeat: FormText = "",
) -> Response:
    """A console password for a caretaker or admin (typed twice), as `meraapent central staff-password`."""
    user = _load(session, user_id)
    try:
        if password != repeat:
            raise form_error("repeat", "console.admin.error.passwords_differ")
        with saving(session, "password", {"role": "password"}):
            set_password(session, staff.username, user.username, password)
    except FormError as error:
        return _user_page(request, session, user.id, error.errors)
    return redirect_with_notice(
        request, user_url(user.id), "console.admin.users.password_set", username=user.username
    )
