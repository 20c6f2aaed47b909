"""My account: a signed-in caretaker or admin changes their own console password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from central.api.deps import DbSession
from central.console.pages import PREFIX, Now, redirect_with_notice, render
from central.console.session import Csrf, Staff
from central.services import staff_sign_in
from central.services.errors import InvalidError

router = APIRouter(prefix=PREFIX, include_in_schema=False)
ACCOUNT = f"{PREFIX}/meg"


@router.get("/meg")
def account_page(request: Request, staff: Staff) -> Response:
    return render(request, "account.html", {"error": None})


@router.post("/meg/passord")
def change_password(
    request: Request,
    session: DbSession,
    staff: Staff,
    now: Now,
    _: Csrf,
    current: Annotated[str, Form(max_length=400)] = "",
    new: Annotated[str, Form(max_length=400)] = "",
    repeat: Annotated[str, Form(max_length=400)] = "",
) -> Response:
    error = _password_change_error(session, staff.username, current, new, repeat, now)
    if error is not None:
        return render(request, "account.html", {"error": error}, status_code=422)
    return redirect_with_notice(request, ACCOUNT, "console.account.changed")


def _password_change_error(
    session: DbSession, username: str, current: str, new: str, repeat: str, now: Now
) -> tuple[str, str] | None:
    """(field, message key) of what is wrong, or None once the new password is set."""
    try:
        staff_sign_in.sign_in(session, username, current, now)
    except staff_sign_in.SignInRefused:
        return "current", "console.account.wrong_current"
    if new != repeat:
        return "repeat", "console.account.not_the_same"
    try:
        staff_sign_in.set_password(session, username, username, new)
    except InvalidError:
        return "new", "console.account.too_weak"
    return None
