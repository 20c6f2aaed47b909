"""The pages every visitor sees: the landing page, the language switch and signing out.

The other resident pages live in their own modules (sign-in, enrolment, home) and are listed in
`routers()`, the one place that decides what is mounted.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from central.api.deps import DbSession
from central.models import Person
from central.web.pages import LANG_COOKIE, LANG_COOKIE_MAX_AGE, PREFIX, render
from central.web.session import Csrf, sign_out, signed_in_person_id
from protocol import i18n

router = APIRouter(prefix=PREFIX, include_in_schema=False)
HOME = f"{PREFIX}/hjem"
SIGN_IN = f"{PREFIX}/logg-inn"


def routers() -> list[APIRouter]:
    from central.web import enrol, home, qr, signin  # sign-in and enrolment (#5 item 5); home and QR (item 4)

    return [router, signin.router, enrol.router, home.router, qr.router]


@router.get("/", response_class=HTMLResponse)
def landing(request: Request, session: DbSession) -> Response:
    """Signed in: the home page (which sends an unfinished enrolment on to its next step); otherwise the
    invitation to sign in."""
    person_id = signed_in_person_id(request)
    person = session.get(Person, person_id) if person_id is not None else None
    if person is not None and not person.blocked:
        return RedirectResponse(HOME, status_code=303)
    return render(request, "landing.html")


def _safe_next(next_url: str) -> str:
    """Only our own pages: an open redirect would let a phishing link borrow our address."""
    return next_url if next_url.startswith(f"{PREFIX}/") and "//" not in next_url[1:] else f"{PREFIX}/"


@router.get("/sprak")
def choose_language(
    lang: Annotated[str, Query(max_length=8)],
    next_url: Annotated[str, Query(alias="next", max_length=300)] = "",
) -> Response:
    response = RedirectResponse(_safe_next(next_url), status_code=303)
    response.set_cookie(
        LANG_COOKIE,
        lang if lang in i18n.COMPLETE_LANGUAGES else i18n.DEFAULT_LANGUAGE,
        max_age=LANG_COOKIE_MAX_AGE,
        samesite="lax",
        httponly=True,
    )
    return response


@router.post("/logg-ut")
def log_out(request: Request, _: Csrf, next_url: Annotated[str, Form(alias="next")] = "") -> Response:
    sign_out(request)
    return RedirectResponse(_safe_next(next_url), status_code=303)
