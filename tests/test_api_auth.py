"""Who may call what: bearer tokens, roles, and that no endpoint was left without a role check."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import select

from central.api import create_app
from central.config import Settings
from central.console import PREFIX as CONSOLE
from central.console.session import current_staff
from central.db import session_factory
from central.models import ApiRole, ApiUser
from central.web import PREFIX
from central.web.session import current_person
from tests.test_api_support import TOKENS, Api, FakeGateway, make_api, make_site, problem

PUBLIC = {"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect"}
# Resident pages are guarded by the signed-in session (central.web.session.current_person), not by API roles;
# these are the ones anybody may see: the landing page, the language switch, signing in and out.
PUBLIC_PAGES = {
    f"/min-nokkel/{page}" for page in ("", "sprak", "logg-ut", "logg-inn", "innlogget")
}
# Console pages are guarded by the signed-in caretaker or admin (central.console.session.current_staff);
# anybody may reach the way in: the start redirect, signing in and out, the language switch.
PUBLIC_CONSOLE_PAGES = {CONSOLE, *(f"{CONSOLE}/{page}" for page in ("", "sprak", "logg-ut", "logg-inn"))}


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    with make_api(db_url, tmp_path, gateway=FakeGateway()) as api:
        yield api


def _guards(dependant: Any) -> list[frozenset[ApiRole]]:
    found = []
    for dep in dependant.dependencies:
        roles = getattr(dep.call, "allowed_roles", None)
        if roles is not None:
            found.append(roles)
        found.extend(_guards(dep))
    return found


def test_every_route_except_docs_and_health_has_a_role_check(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, db_url=f"sqlite:///{tmp_path / 'x.db'}"))
    unguarded, checked, pages = [], 0, 0
    for context in iter_route_contexts(app.routes):
        path = context.path or ""
        if path in PUBLIC or path in PUBLIC_PAGES or path in PUBLIC_CONSOLE_PAGES:
            continue
        if path in (f"{PREFIX}/static", f"{CONSOLE}/static"):
            continue
        route = context.original_route
        assert isinstance(route, APIRoute), f"unexpected route {path}"
        if path.startswith(f"{CONSOLE}/"):
            pages += 1
            if not _needs(current_staff, route.dependant):
                unguarded.append(f"{sorted(route.methods or ())} {path} (no signed-in caretaker)")
            continue
        if path.startswith(f"{PREFIX}/"):
            pages += 1
            if not _needs(current_person, route.dependant):
                unguarded.append(f"{sorted(route.methods or ())} {path} (no signed-in resident)")
            continue
        checked += 1
        if not _guards(route.dependant):
            unguarded.append(f"{sorted(route.methods or ())} {path}")
    assert checked > 40 and pages > 3
    assert unguarded == []


def _needs(guard: Any, dependant: Any) -> bool:
    return any(dep.call is guard or _needs(guard, dep) for dep in dependant.dependencies)


def test_missing_unknown_or_deactivated_token_is_401_with_challenge(api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic YWRtaW46YWRtaW4="}):
        body = problem(api.get("/sites", role=None, headers=headers), 401)
        assert "token" in body["detail"]
    response = api.get("/sites", role=None, headers={"Authorization": "Bearer nope"})
    assert response.headers["www-authenticate"].startswith("Bearer")

    with session_factory(api.engine)() as session, session.begin():
        user = session.scalars(select(ApiUser).where(ApiUser.role == ApiRole.CARETAKER)).one()
        user.active = False
    problem(api.get("/sites", role=ApiRole.CARETAKER), 401)


def test_roles_decide_what_each_caller_may_do(api: Api) -> None:
    make_site(api)
    caretaker, integration = ApiRole.CARETAKER, ApiRole.BOOKING_INTEGRATION
    # caretaker: reads everything but admin things, manages people, cannot change the layout
    assert api.get("/sites/holmen/doors", role=caretaker).status_code == 200
    assert (
        api.post("/people", role=caretaker, json={"kind": "resident", "display_name": "Kari"}).status_code
        == 201
    )
    body = problem(api.post("/sites", role=caretaker, json={"slug": "x", "name": "X"}), 403)
    assert "caretaker" in body["detail"]
    problem(api.get("/api-users", role=caretaker), 403)
    problem(api.get("/audit-log", role=caretaker), 403)
    # the booking integration sees bookings and nothing else
    assert api.get("/bookings", role=integration).status_code == 200
    for url in ("/sites", "/people", "/events", "/alarms", "/credentials"):
        problem(api.get(url, role=integration), 403)
    problem(
        api.post("/sites/holmen/commands", role=integration, json={"action": "normal", "reason": "x"}), 403
    )
    # admin may do everything
    assert api.get("/api-users").status_code == 200


def test_last_used_is_recorded(api: Api) -> None:
    api.ok("GET", "/sites", role=ApiRole.CARETAKER)
    with session_factory(api.engine)() as session:
        user = session.scalars(select(ApiUser).where(ApiUser.role == ApiRole.CARETAKER)).one()
        assert user.last_used_at is not None


def test_api_users_get_their_token_once_and_it_works(api: Api) -> None:
    created = api.ok("POST", "/api-users", json={"username": "vega-import", "role": "booking_integration"})
    token = created["token"]
    assert len(token) >= 32
    headers = {"Authorization": f"Bearer {token}"}
    assert api.get("/bookings", role=None, headers=headers).status_code == 200
    listed = api.ok("GET", "/api-users")
    assert all("token" not in user and "token_hash" not in user for user in listed["items"])
    assert {u["username"] for u in listed["items"]} >= {"vega-import", "test-admin"}
    problem(api.post("/api-users", json={"username": "vega-import", "role": "caretaker"}), 409)

    rotated = api.ok("POST", f"/api-users/{created['id']}/rotate-token")
    problem(api.get("/bookings", role=None, headers=headers), 401)
    assert (
        api.get("/bookings", role=None, headers={"Authorization": f"Bearer {rotated['token']}"}).status_code
        == 200
    )

    api.ok("PATCH", f"/api-users/{created['id']}", json={"active": False})
    problem(api.get("/bookings", role=None, headers={"Authorization": f"Bearer {rotated['token']}"}), 401)


def test_the_last_active_admin_cannot_lock_everyone_out(api: Api) -> None:
    admin = next(u for u in api.ok("GET", "/api-users")["items"] if u["role"] == "admin")
    body = problem(api.patch(f"/api-users/{admin['id']}", json={"active": False}), 409)
    assert "last active admin" in body["detail"]
    problem(api.delete(f"/api-users/{admin['id']}"), 409)
    problem(api.patch(f"/api-users/{admin['id']}", json={"role": "caretaker"}), 409)


def test_health_needs_no_token_and_reports_database_and_gateway(api: Api) -> None:
    response = api.get("/health", role=None)
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "gateway": {"running": True, "connected": True},
    }
    assert api.gateway is not None
    api.gateway.connected = False
    assert api.get("/health", role=None).json()["status"] == "degraded"


def test_openapi_documents_problem_responses_and_bearer_auth(api: Api) -> None:
    schema = api.get("/openapi.json", role=None).json()
    assert "Problem" in schema["components"]["schemas"]
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    op = schema["paths"]["/sites/{site}/doors"]["post"]
    assert "application/problem+json" in op["responses"]["422"]["content"]
    assert api.get("/docs", role=None).status_code == 200


def test_tokens_in_the_table_are_only_hashes(api: Api) -> None:
    with session_factory(api.engine)() as session:
        stored = set(session.scalars(select(ApiUser.token_hash)))
    assert not stored & set(TOKENS.values())
