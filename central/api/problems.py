"""Problem details (RFC 9457) for every error the API returns, and the handlers that produce them.

Integrators get `application/problem+json` with a short `title`, a specific `detail` and, for bad input, a
list of the fields at fault in plain words. Internals (SQL, stack traces, secrets) never leave the server:
unexpected errors are logged here and answered with a bare 500 problem.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from central.api.routers.common import PATTERN_HINTS
from central.models import CrossSiteError
from central.schedules import ScheduleError
from central.security import CardUidError, PinFormatError
from central.services.errors import ConflictError, InvalidError, NotFoundError, ServiceError, UnavailableError

log = logging.getLogger("central.api")

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "urn:meraapent:problem:"


class FieldError(BaseModel):
    """One input field at fault: where it was (body, query, path, header), its name and what is wrong."""

    field: str
    location: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldError] | None = None


def problem_response(
    request: Request,
    status: int,
    detail: str | None = None,
    *,
    title: str | None = None,
    kind: str | None = None,
    errors: Sequence[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A problem+json response; `kind` names our own problem type, else `about:blank` with the HTTP title."""
    body = Problem(
        type=PROBLEM_BASE + kind if kind else "about:blank",
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        errors=list(errors) if errors is not None else None,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=dict(headers) if headers else None,
    )


# --- validation errors in plain words ---------------------------------------------------------------------


def _expected(ctx: Mapping[str, Any]) -> str:
    return str(ctx.get("expected", "")).replace("'", "")


def _message(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    simple = {
        "missing": "is required",
        "int_parsing": "must be a whole number",
        "int_type": "must be a whole number",
        "int_from_float": "must be a whole number",
        "float_parsing": "must be a number",
        "bool_parsing": "must be true or false",
        "bool_type": "must be true or false",
        "string_type": "must be text",
        "list_type": "must be a list",
        "dict_type": "must be a JSON object",
        "model_type": "must be a JSON object",
        "model_attributes_type": "must be a JSON object",
        "extra_forbidden": "is not a known field",
        "timezone_aware": "must include a timezone, e.g. 2025-05-01T18:00:00+02:00 or 2025-05-01T16:00:00Z",
        "datetime_parsing": "must be a date and time like 2025-05-01T16:00:00Z",
        "datetime_type": "must be a date and time like 2025-05-01T16:00:00Z",
        "datetime_from_date_parsing": "must be a date and time like 2025-05-01T16:00:00Z",
        "date_parsing": "must be a date like 2025-05-01",
        "date_type": "must be a date like 2025-05-01",
        "date_from_datetime_parsing": "must be a date like 2025-05-01",
        "date_from_datetime_inexact": "must be a date like 2025-05-01 (no time of day)",
        "time_parsing": "must be a time of day like 07:30",
        "time_type": "must be a time of day like 07:30",
        "uuid_parsing": "must be a UUID",
        "uuid_type": "must be a UUID",
    }
    if kind in simple:
        return simple[kind]
    if kind == "json_invalid":
        return f"the request body is not valid JSON ({ctx.get('error', 'syntax error')})"
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return "must not be empty" if n == 1 else f"must be at least {n} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} item(s)"
    if kind == "string_pattern_mismatch":
        return PATTERN_HINTS.get(str(ctx.get("pattern")), "has the wrong format")
    bounds = {
        "greater_than_equal": ("must be at least", "ge"),
        "greater_than": ("must be greater than", "gt"),
        "less_than_equal": ("must be at most", "le"),
        "less_than": ("must be less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"{words} {ctx.get(key)}"
    if kind in ("enum", "literal_error"):
        return f"must be one of: {_expected(ctx)}"
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", error.get("msg", "is not valid")))
    return str(error.get("msg", "is not valid"))


_LOCATIONS = {"body", "query", "path", "header", "cookie"}


def field_errors(errors: Sequence[Any]) -> list[FieldError]:
    """Pydantic/FastAPI validation errors as (field, location, message) in plain words."""
    result = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        location = loc[0] if loc and loc[0] in _LOCATIONS else "body"
        path = loc[1:] if loc and loc[0] in _LOCATIONS else loc
        # Discriminated unions and function validators add loc parts that are not field names.
        path = [p for p in path if not p.startswith("function-")]
        name = ".".join(path) if path else f"({location})"
        result.append(FieldError(field=name, location=location, message=_message(error)))
    return result


def _join(errors: Sequence[FieldError]) -> str:
    shown = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return shown + more


# --- handlers ---------------------------------------------------------------------------------------------


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = field_errors(exc.errors())
    return problem_response(
        request, 422, _join(errors), title="Invalid input", kind="invalid-input", errors=errors
    )


async def http_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    if status == 404 and detail == HTTPStatus.NOT_FOUND.phrase:
        detail = f"there is no endpoint at {request.url.path}"
    elif status == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    elif detail == HTTPStatus(status).phrase:
        detail = None
    return problem_response(request, status, detail, headers=exc.headers)


async def _service(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    if isinstance(exc, NotFoundError):
        return problem_response(request, 404, str(exc), kind="not-found")
    if isinstance(exc, ConflictError):
        return problem_response(request, 409, str(exc), kind="conflict")
    if isinstance(exc, UnavailableError):
        return problem_response(request, 503, str(exc), kind="unavailable", headers={"Retry-After": "5"})
    field = exc.field if isinstance(exc, InvalidError) else None
    errors = [FieldError(field=field, location="body", message=str(exc))] if field else None
    return problem_response(
        request, 422, str(exc), title="Invalid input", kind="invalid-input", errors=errors
    )


async def _domain_value(request: Request, exc: Exception) -> Response:
    """ValueErrors our own domain code raises with a message meant for people."""
    return problem_response(request, 422, str(exc), title="Invalid input", kind="invalid-input")


async def _integrity(request: Request, exc: Exception) -> Response:
    log.info("integrity error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return problem_response(
        request,
        409,
        "the change conflicts with existing data (a duplicate, or something still in use)",
        kind="conflict",
    )


async def _data(request: Request, exc: Exception) -> Response:
    log.info("data error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return problem_response(
        request,
        422,
        "a value is out of range or cannot be stored",
        title="Invalid input",
        kind="invalid-input",
    )


async def _operational(request: Request, exc: Exception) -> Response:
    log.error("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return problem_response(
        request,
        503,
        "the database is not reachable right now",
        kind="unavailable",
        headers={"Retry-After": "5"},
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(request, 500, "an unexpected error happened; it has been logged")


def install(app: FastAPI) -> None:
    """Register the problem handlers on `app`."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, http_problem)
    app.add_exception_handler(ServiceError, _service)
    for cls in (ScheduleError, PinFormatError, CardUidError, CrossSiteError):
        app.add_exception_handler(cls, _domain_value)
    app.add_exception_handler(IntegrityError, _integrity)
    app.add_exception_handler(DataError, _data)
    app.add_exception_handler(OperationalError, _operational)
    app.add_exception_handler(Exception, _unexpected)
