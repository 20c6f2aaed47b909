"""Helpers for the API tests (no tests here): a migrated database, one API user per role, a test client.

Each API test module builds its `api` fixture with `make_api`. PIN hashing uses cheap argon2 parameters in
every test (tests/conftest.py): the production ones cost ~50 ms a hash and test nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from central.api import create_app
from central.config import Settings
from central.db import make_engine, migrate, session_factory, session_scope
from central.models import ApiRole, ApiUser
from central.security import api_token_hash
from protocol import messages as m

TOKENS = {
    ApiRole.ADMIN: "admin-token-for-tests-0123456789",
    ApiRole.CARETAKER: "caretaker-token-for-tests-0123456789",
    ApiRole.BOOKING_INTEGRATION: "booking-token-for-tests-0123456789",
}
PROBLEM = "application/problem+json"


@dataclass
class FakeGateway:
    """Stands in for central.gateway.service.Gateway: remembers commands, or refuses them when down."""

    connected: bool = True
    commands: list[m.Command] = field(default_factory=list)
    pokes: int = 0

    def publish_command(self, cmd: m.Command) -> None:
        from central.gateway.service import GatewayUnavailable

        if not self.connected:
            raise GatewayUnavailable("not connected to the broker")
        self.commands.append(cmd)

    def poke(self) -> None:
        self.pokes += 1

    def status(self) -> dict[str, Any]:
        return {"connected": self.connected}


@dataclass
class Api:
    client: TestClient
    settings: Settings
    engine: Engine
    gateway: FakeGateway | None

    def call(
        self, method: str, url: str, role: ApiRole | None = ApiRole.ADMIN, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if role is not None:
            headers["Authorization"] = f"Bearer {TOKENS[role]}"
        response: httpx.Response = self.client.request(method, url, headers=headers, **kwargs)
        return response

    def get(self, url: str, role: ApiRole | None = ApiRole.ADMIN, **kwargs: Any) -> httpx.Response:
        return self.call("GET", url, role, **kwargs)

    def post(self, url: str, role: ApiRole | None = ApiRole.ADMIN, **kwargs: Any) -> httpx.Response:
        return self.call("POST", url, role, **kwargs)

    def put(self, url: str, role: ApiRole | None = ApiRole.ADMIN, **kwargs: Any) -> httpx.Response:
        return self.call("PUT", url, role, **kwargs)

    def patch(self, url: str, role: ApiRole | None = ApiRole.ADMIN, **kwargs: Any) -> httpx.Response:
        return self.call("PATCH", url, role, **kwargs)

    def delete(self, url: str, role: ApiRole | None = ApiRole.ADMIN, **kwargs: Any) -> httpx.Response:
        return self.call("DELETE", url, role, **kwargs)

    def ok(self, method: str, url: str, role: ApiRole = ApiRole.ADMIN, **kwargs: Any) -> Any:
        """Call and insist on a 2xx; returns the JSON body (None for 204)."""
        response = self.call(method, url, role, **kwargs)
        assert response.is_success, f"{method} {url} -> {response.status_code}: {response.text}"
        return None if response.status_code == 204 else response.json()


def add_api_users(engine: Engine) -> None:
    with session_scope(session_factory(engine)) as session:
        for role, token in TOKENS.items():
            session.add(
                ApiUser(
                    username=f"test-{role.value.replace('_', '-')}",
                    role=role,
                    token_hash=api_token_hash(token),
                )
            )


@contextmanager
def make_api(
    db_url: str, tmp_path: Path, gateway: FakeGateway | None = None
) -> Iterator[Api]:
    migrate(db_url)
    engine = make_engine(db_url)
    add_api_users(engine)
    settings = Settings(data_dir=tmp_path / "data", db_url=db_url)
    app = create_app(settings, engine=engine, gateway=gateway)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield Api(client=client, settings=settings, engine=engine, gateway=gateway)
    finally:
        engine.dispose()


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert `response` is a problem+json with `status`; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers["content-type"]
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    return body


def fields_at_fault(body: dict[str, Any]) -> set[str]:
    return {error["field"] for error in body.get("errors", [])}


def make_site(api: Api, slug: str = "holmen") -> None:
    """A small site: zones torg and moterom, an entrance and a room door, one room, weekday hours."""
    api.ok("POST", "/sites", json={"slug": slug, "name": f"{slug.title()} innbyggertorg"})
    for zone in ("torg", "moterom"):
        api.ok("POST", f"/sites/{slug}/zones", json={"slug": zone, "name": zone.title()})
    api.ok(
        "POST",
        f"/sites/{slug}/doors",
        json={"slug": "hovedinngang", "name": "Hovedinngang", "zone": "torg", "kind": "entrance"},
    )
    api.ok(
        "POST",
        f"/sites/{slug}/doors",
        json={"slug": "moterom-1", "name": "Møterom 1", "zone": "moterom", "kind": "room"},
    )
    api.ok(
        "POST",
        f"/sites/{slug}/rooms",
        json={
            "slug": "moterom-1",
            "name": "Møterom 1",
            "zone": "moterom",
            "door": "moterom-1",
            "capacity": 10,
        },
    )
