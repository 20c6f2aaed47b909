"""Rendering the console: Jinja2 templates with the catalogue, the staff member, security headers, errors.

Every page gets `t` (the catalogue in the page's language), `lang`, `csrf`, `staff` and `prefix`, so
templates never build texts themselves. Errors under /drift are pages in the staff member's language, never
JSON and never a traceback; the API keeps its problem details.
"""

from __future__ import annotations

import inspect
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import RequestResponseEndpoint

from central.web.pages import CONTENT_SECURITY_POLICY, Now, page_language, request_now, translator
from protocol import i18n

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
PREFIX = "/drift"
SIGN_IN = f"{PREFIX}/logg-inn"
HOME = f"{PREFIX}/oversikt"
OSLO = ZoneInfo("Europe/Oslo")

templates = Jinja2Templates(directory=HERE / "templates")

__all__ = ["HOME", "PREFIX", "SIGN_IN", "Now", "local_time", "render", "request_now"]


def local_time(value: datetime | None, zone: str | ZoneInfo = OSLO, fmt: str = "%d.%m.%Y %H:%M") -> str:
    """A UTC time as staff read it: in the site's zone, day first; empty for None."""
    if value is None:
        return ""
    tz = ZoneInfo(zone) if isinstance(zone, str) else zone
    return value.astimezone(tz).strftime(fmt)


templates.env.filters["local"] = local_time


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, *, status_code: int = 200
) -> HTMLResponse:
    from central.console.session import signed_in_staff  # session → pages one-way at import time
    from central.web.session import csrf_token

    lang = page_language(request)
    values: dict[str, Any] = {
        "lang": lang,
        "t": translator(lang),
        "languages": {code: i18n.LANGUAGE_NAMES[code] for code in i18n.COMPLETE_LANGUAGES},
        "csrf": csrf_token(request),
        "staff": signed_in_staff(request),
        "prefix": PREFIX,
        "active": "",
        "notice": pop_notice(request),
    }
    values.update(context or {})
    return templates.TemplateResponse(request, template, values, status_code=status_code)


def redirect_with_notice(request: Request, url: str, notice_key: str, **values: object) -> RedirectResponse:
    """After a form: back to a page (303) with a one-line notice shown once there (post/redirect/get)."""
    request.session["console_notice"] = {"key": notice_key, "values": {k: str(v) for k, v in values.items()}}
    return RedirectResponse(url, status_code=303)


def pop_notice(request: Request) -> dict[str, Any] | None:
    notice = request.session.pop("console_notice", None)
    return notice if isinstance(notice, dict) else None


def message_page(request: Request, message_key: str, *, status_code: int, **values: object) -> HTMLResponse:
    return render(request, "console_message.html", {"message_key": message_key, "values": values},
                  status_code=status_code)


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
    """Sign-in redirects, CSRF refusals, admin-only pages and 404s under /drift as pages."""
    from central.console.session import AdminOnly, StaffCsrfRejected, StaffSignInRequired

    async def sign_in_required(request: Request, exc: Exception) -> Response:
        # Back to the page after signing in; not to a form's target, nor to the overview's event stream.
        is_page = request.method == "GET" and "text/event-stream" not in request.headers.get("accept", "")
        target = request.url.path if is_page else HOME
        return RedirectResponse(f"{SIGN_IN}?next={target}", status_code=303)

    async def csrf_rejected(request: Request, exc: Exception) -> Response:
        return message_page(request, "console.error.session_expired", status_code=403)

    async def admin_only(request: Request, exc: Exception) -> Response:
        return message_page(request, "console.error.admin_only", status_code=403)

    app.add_exception_handler(StaffSignInRequired, sign_in_required)
    app.add_exception_handler(StaffCsrfRejected, csrf_rejected)
    app.add_exception_handler(AdminOnly, admin_only)
    inner = app.exception_handlers[StarletteHTTPException]

    async def http_error(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith(PREFIX) and isinstance(exc, StarletteHTTPException):
            if exc.status_code == 404:
                return message_page(request, "console.error.not_found", status_code=404)
            if exc.status_code == 405:
                return message_page(request, "console.error.not_found", status_code=405)
        response = inner(request, exc)
        return await response if inspect.isawaitable(response) else response

    app.add_exception_handler(StarletteHTTPException, http_error)
    api_validation = app.exception_handlers[RequestValidationError]

    async def invalid_input(request: Request, exc: Exception) -> Response:
        """A form or query a page cannot take (a field far too long, a malformed number in the URL): a page
        saying so, not the API's problem JSON."""
        if request.url.path.startswith(PREFIX):
            return message_page(request, "console.error.bad_input", status_code=422)
        response = api_validation(request, exc)
        return await response if inspect.isawaitable(response) else response

    app.add_exception_handler(RequestValidationError, invalid_input)
