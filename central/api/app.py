"""The FastAPI application: routers, problem handlers, the per-request session, the gateway's lifetime.

`create_app(settings)` is all a caller needs; tests pass their own engine and a fake gateway. Endpoints are
plain `def` functions (run in the thread pool) on a sync SQLAlchemy session: one code path for SQLite and
PostgreSQL.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text

from central import console, metrics, web
from central.api import problems
from central.api.routers import admin, bookings, commands, credentials, events, groups, people, sites, tokens
from central.api.routers import feeds as ical_feeds
from central.api.routers import notifications as alarm_notifications
from central.api.routers import privacy as privacy_inventory
from central.api.routers import statistics as statistics_csv
from central.api.routers import webhooks as booking_webhooks
from central.config import Settings
from central.db import make_engine, session_factory

log = logging.getLogger("central.api")

API_TITLE = "Meråpent central"
API_VERSION = "1"
DESCRIPTION = """Central authorisation service for meråpent (self-service) hours at Asker's innbyggertorg.

Authenticate with `Authorization: Bearer <token>`. Roles: **admin** (everything), **caretaker** (read
everything but API users and the audit log; act on doors and alarms; manage people, cards and bookings),
**booking_integration** (bookings only), **monitoring** (`GET /metrics` for Prometheus, nothing else;
admin may scrape too). Errors are RFC 9457 problem details (`application/problem+json`).
Lists take `limit` (1–500, default 50) and `offset` and return `{items, total, limit, offset}`.
"""

_PROBLEM_STATUSES = {
    "401": "Missing, unknown or deactivated API token",
    "403": "The caller's role may not do this",
    "404": "Not found",
    "409": "Conflicts with existing data",
    "422": "Invalid input (the fields at fault are listed in `errors`)",
    "503": "A part central depends on is unavailable",
}


def create_app(
    settings: Settings,
    engine: Engine | None = None,
    gateway: Any = None,
    *,
    start_gateway: bool = False,
) -> FastAPI:
    """The API for `settings`. Without `engine` one is made (and disposed at shutdown). With
    `start_gateway` and no `gateway`, the MQTT gateway runs for the app's lifetime."""
    own_engine = engine is None
    db = engine if engine is not None else make_engine(settings.db_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started = None
        if app.state.gateway is None and start_gateway:
            from central.gateway.service import Gateway

            started = Gateway(settings, db).start()
            app.state.gateway = started
        try:
            yield
        finally:
            if started is not None:
                started.stop()
                app.state.gateway = None
            if own_engine:
                db.dispose()

    app = FastAPI(
        title=API_TITLE,
        version=API_VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = db
    app.state.session_factory = session_factory(db)
    app.state.gateway = gateway
    problems.install(app)
    for module in (sites, people, credentials, tokens, groups, bookings, events, commands, admin, ical_feeds):
        app.include_router(module.router)
    app.include_router(booking_webhooks.router)
    app.include_router(alarm_notifications.router)
    app.include_router(privacy_inventory.router)
    app.include_router(statistics_csv.router)
    web.install(app, settings)
    console.install(app)
    app.add_api_route("/health", health, methods=["GET"], tags=["health"], summary="Is central working?")
    metrics.install(app)  # last: its middleware is then the outermost and sees every response
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def health(request: Request) -> JSONResponse:
    """No authentication (for load balancers and monitoring): database reachable, gateway state.

    503 when the database cannot be reached; a disconnected gateway only degrades the status, because the
    API keeps working without it (except for commands).
    """
    database_ok = True
    try:
        with request.app.state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure here means "not reachable" to the caller
        log.warning("health: database not reachable: %s", type(exc).__name__)
        database_ok = False
    gateway = request.app.state.gateway
    gateway_status: dict[str, Any] = {"running": gateway is not None}
    if gateway is not None:
        try:  # only the connection state: this endpoint needs no token, so it tells nothing more
            gateway_status["connected"] = bool(gateway.status().get("connected"))
        except Exception as exc:
            log.warning("health: gateway status failed: %s", type(exc).__name__)
            gateway_status["connected"] = False
    gateway_ok = gateway is None or bool(gateway_status.get("connected"))
    status = "ok" if database_ok and gateway_ok else "degraded" if database_ok else "unavailable"
    body = {"status": status, "database": "ok" if database_ok else "unreachable", "gateway": gateway_status}
    return JSONResponse(body, status_code=200 if database_ok else 503)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, with our problem responses documented on every operation."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = problems.Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(components["Problem"].pop("$defs", {}))
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if path == "/health":
                continue
            for status, description in _PROBLEM_STATUSES.items():
                responses.setdefault(status, {"description": description, "content": problem})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    app.openapi_schema = schema
    return schema
