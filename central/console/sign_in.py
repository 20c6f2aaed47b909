"""Signing in to and out of the console, and the language switch."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from central.api.deps import DbSession
from central.console.pages import HOME, PREFIX, SIGN_IN, Now, local_time, redirect_with_notice, render
from central.console.session import Csrf, forget, remember, signed_in_staff
from central.services.staff_sign_in import SignInRefused, sign_in
from central.web.pages import LANG_COOKIE, LANG_COOKIE_MAX_AGE
from protocol import i18n

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def safe_next(next_url: str) -> str:
    """Only console pages: an open redirect would let a phishing link borrow our address."""
    ok = next_url.startswith(f"{PREFIX}/") and "//" not in next_url and "\\" not in next_url
    return next_url if ok and not next_url.startswith((f"{PREFIX}/static", SIGN_IN)) else HOME


@router.get("")
@router.get("/")
def start(request: Request) -> Response:
    return RedirectResponse(HOME if signed_in_staff(request) else SIGN_IN, status_code=303)


@router.get("/logg-inn")
def sign_in_page(
    request: Request, next_url: Annotated[str, Query(alias="next", max_length=300)] = ""
) -> Response:
    return render(request, "sign_in.html", {"next": safe_next(next_url), "username": ""})


@router.post("/logg-inn")
def sign_in_form(
    request: Request,
    session: DbSession,
    now: Now,
    _: Csrf,
    username: Annotated[str, Form(max_length=100)] = "",
    password: Annotated[str, Form(max_length=400)] = "",
    next_url: Annotated[str, Form(alias="next", max_length=300)] = "",
) -> Response:
    try:
        staff = sign_in(session, username.strip(), password, now)
    except SignInRefused as refused:
        until = local_time(refused.locked_until, fmt="%H:%M")
        error = ("console.sign_in.locked", {"until": until}) if until else ("console.sign_in.wrong", {})
        context = {"next": safe_next(next_url), "username": username.strip(), "error": error}
        return render(request, "sign_in.html", context, status_code=401)
    remember(request, staff)
    return RedirectResponse(safe_next(next_url), status_code=303)


@router.post("/logg-ut")
def sign_out(request: Request, _: Csrf) -> Response:
    forget(request)
    return redirect_with_notice(request, SIGN_IN, "console.sign_in.signed_out")


@router.get("/sprak")
def choose_language(
    lang: Annotated[str, Query(max_length=8)],
    next_url: Annotated[str, Query(alias="next", max_length=300)] = "",
) -> Response:
    response = RedirectResponse(safe_next(next_url), status_code=303)
    chosen = lang if lang in i18n.COMPLETE_LANGUAGES else i18n.DEFAULT_LANGUAGE
    response.set_cookie(LANG_COOKIE, chosen, max_age=LANG_COOKIE_MAX_AGE, samesite="lax", httponly=True)
    return response
