"""Rendering: Jinja2 templates with the catalogue, the page language, security headers and error pages.

Every page gets `t` (the catalogue in the page's language), `lang`, `csrf` and `person` (or None), so
templates never build texts themselves. Errors on resident pages are pages in the resident's language, not
JSON and never a traceback.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import RequestResponseEndpoint

from central.db import utcnow
from protocol import i18n

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
PREFIX = "/min-nokkel"
LANG_COOKIE = "lang"
LANG_COOKIE_MAX_AGE = 365 * 24 * 3600

templates = Jinja2Templates(directory=HERE / "templates")

# Scripts and styles only from our own origin: no inline script, so an injected <script> cannot run.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def request_now(request: Request) -> datetime:
    """Now, from `app.state.clock` when a test or a simulation set one, else the wall clock."""
    clock: Callable[[], datetime] | None = getattr(request.app.state, "clock", None)
    return clock() if clock is not None else utcnow()


Now = Annotated[datetime, Depends(request_now)]


def page_language(request: Request) -> str:
    """The resident's choice (cookie), else what the browser asks for, else bokmål."""
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in i18n.COMPLETE_LANGUAGES:
        return chosen
    return i18n.from_accept_language(request.headers.get("accept-language"))


def translator(lang: str) -> Any:
    def t(key: str, **values: object) -> str:
        return i18n.text(key, lang, **values)

    return t


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> HTMLResponse:
    from central.web.session import csrf_token  # here to keep session → pages one-way at import time

    lang = page_language(request)
    values: dict[str, Any] = {
        "lang": lang,
        "t": translator(lang),
        "languages": {code: i18n.LANGUAGE_NAMES[code] for code in i18n.COMPLETE_LANGUAGES},
        "csrf": csrf_token(request),
        "person": None,
        "prefix": PREFIX,
    }
    values.update(context or {})
    return templates.TemplateResponse(request, template, values, status_code=status_code)


def message_page(request: Request, message_key: str, *, status_code: int, **values: object) -> HTMLResponse:
    """A page that says one thing (from the catalogue) and offers the way back."""
    context = {"message_key": message_key, "values": values}
    return render(request, "message.html", context, status_code=status_code)


async def security_headers(request: Request, call_next: RequestResponseEndpoint) -> Response:
    response = await call_next(request)
    if request.url.path.startswith(PREFIX):
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.url.path.startswith(f"{PREFIX}/static"):
            response.headers.setdefault("Cache-Control", "no-store")
    return response


def install_error_pages(app: FastAPI) -> None:
    """Sign-in redirects, CSRF refusals and 404s under /min-nokkel as pages; the API keeps its problems."""
    from central.api import problems
    from central.web.session import CsrfRejected, SignInRequired

    async def sign_in_required(request: Request, exc: Exception) -> Response:
        return RedirectResponse(f"{PREFIX}/", status_code=303)

    async def csrf_rejected(request: Request, exc: Exception) -> Response:
        return message_page(request, "error.session_expired", status_code=403)

    app.add_exception_handler(SignInRequired, sign_in_required)
    app.add_exception_handler(CsrfRejected, csrf_rejected)
    api_http_handler = app.exception_handlers.get(StarletteHTTPException, problems.http_problem)

    async def http_error(request: Request, exc: Exception) -> Response:
        on_page = request.url.path.startswith(PREFIX)
        if on_page and isinstance(exc, StarletteHTTPException) and exc.status_code == 404:
            return message_page(request, "error.not_found", status_code=404)
        response = api_http_handler(request, exc)
        return await response if inspect.isawaitable(response) else response

    app.add_exception_handler(StarletteHTTPException, http_error)
