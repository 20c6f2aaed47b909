"""schemathesis against central's OpenAPI: no request, however odd, gets a server error from any operation.

schemathesis (4.32.5) reads the OpenAPI document central serves and, for every operation, generates requests
that fit the schema and requests that break it (wrong types, values out of range, missing and extra fields,
odd strings), sends them to the application in-process (ASGI) with an admin token, and checks
`not_a_server_error`. Half the path parameters name records that exist (the site holmen, person 1, booking 1,
...), so the operations get past "not found" into their real work; the other half are random.

Every operation starts from the same seeded SQLite database (restored before each one), so an operation's
outcome does not depend on what the operations before it deleted. `make test` sends a handful of requests
per operation; `make attacks` (MERAAPENT_FULL=1) a hundred generated ones each plus schemathesis' coverage
phase (boundary values for every parameter), and prints the totals (hw_sim/attacks.py).

schemathesis' own `pytest.from_fixture` cannot be used with pytest 9 (it sets `request.node._nodeid`, which
pytest's nodes no longer have), so the schema is loaded from the OpenAPI document at import time and each
case is sent to the module's app with `call_and_validate(app=...)`.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.case import Case
from sqlalchemy import select

from central.api import create_app
from central.config import Settings
from central.db import session_factory, session_scope
from central.keystore import generate_key
from central.models import (
    Agent,
    Alarm,
    AlarmSeverity,
    ApiRole,
    Decision,
    Door,
    Event,
    EventKind,
    IssuedToken,
    Site,
)
from hw_sim.attacks import full_run, write_report
from tests.test_api_support import TOKENS, Api, FakeGateway, make_api, make_site
from tests.test_feeds_support import feed_server, ical

SHORT_EXAMPLES, FULL_EXAMPLES = 4, 100
KNOWN_SHARE = 0.5  # of the path parameters that name an existing record
T0 = datetime(2030, 5, 6, 18, 0, tzinfo=UTC)


def openapi_document() -> dict[str, Any]:
    """Central's OpenAPI document (building the app writes a session key to its data directory: a temporary
    one, removed at once)."""
    data_dir = Path(tempfile.mkdtemp(prefix="meraapent-openapi-"))
    try:
        document: dict[str, Any] = create_app(Settings(data_dir=data_dir, db_url="sqlite://")).openapi()
        return document
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


KNOWN: dict[str, list[Any]] = {
    "site": ["holmen"],
    "zone": ["torg", "moterom"],
    "door": ["hovedinngang", "moterom-1"],
    "room": ["moterom-1"],
    "exception_id": [1],
    "person_id": [1, 2],
    "credential_id": [1, 2],
    "group": ["innbyggere"],
    "token_id": ["a1a2a3a4a5a6a7a8"],  # the seeded token's id is set to this
    "booking_id": [1],
    "event_id": [1],
    "alarm_id": [1],
    "user_id": [1, 2, 3],
    "feed_id": [1],
    "table": ["visits-per-day", "denials"],
}


def config() -> SchemathesisConfig:
    full = full_run()
    fixed_seed = {} if full else {"seed": 8}  # `make test` sends the same requests every time
    return SchemathesisConfig.from_dict(
        fixed_seed
        | {
            "headers": {"Authorization": f"Bearer {TOKENS[ApiRole.ADMIN]}"},
            "generation": {"mode": "all", "max-examples": FULL_EXAMPLES if full else SHORT_EXAMPLES},
            "phases": {"coverage": {"enabled": full}, "stateful": {"enabled": False}},
            "dictionaries": {name: {"values": values} for name, values in KNOWN.items()},
            "parameters": {
                f"path.{name}": {"dictionary": name, "probability": KNOWN_SHARE} for name in KNOWN
            },
        }
    )


SCHEMA = schemathesis.openapi.from_dict(openapi_document(), config=config())
TALLY: Counter[str] = Counter()
OPERATIONS: set[str] = set()


# --- the seeded database, restored before every operation --------------------------------------------------


def seed(api: Api, feed_url: str) -> None:
    """One of everything the path parameters can name (see KNOWN), made as an admin would."""
    make_site(api)
    api.ok("POST", "/sites/holmen/opening-exceptions", json={"day": "2030-12-24", "kind": "closed"})
    kari = api.ok("POST", "/people", json={"kind": "resident", "display_name": "Kari"})["id"]
    api.ok("POST", "/people", json={"kind": "volunteer", "display_name": "Jonas"})
    api.ok("POST", f"/people/{kari}/cards", json={"uid": "04a1b2c3d4e5f6", "pin": "2468"})
    api.ok("POST", f"/people/{kari}/phones", json={"label": "Mobil"})
    api.ok("POST", "/access-groups", json={"slug": "innbyggere", "name": "Innbyggere"})
    api.ok("PUT", "/access-groups/innbyggere/zones", json={"zones": [{"site": "holmen", "zone": "torg"}]})
    api.ok("PUT", f"/access-groups/innbyggere/members/{kari}")
    generate_key(api.settings.data_dir)
    body = {"site": "holmen", "doors": ["hovedinngang"], "minutes": 60}
    issued = api.ok("POST", f"/people/{kari}/tokens", json=body)["token_id"]
    api.ok(
        "POST",
        "/bookings",
        json={"site": "holmen", "room": "moterom-1", "holder_id": kari, "starts_at": "2030-05-06T16:00:00Z",
              "ends_at": "2030-05-06T18:00:00Z"},
    )  # fmt: skip
    feed = {"name": "Møterom", "url": feed_url, "site": "holmen", "room": "moterom-1"}
    api.ok("POST", "/feeds", json=feed)  # served on loopback: a sync never leaves the machine
    with session_scope(session_factory(api.engine)) as session:
        site = session.scalars(select(Site).where(Site.slug == "holmen")).one()
        door = session.scalars(select(Door).where(Door.slug == "hovedinngang")).one()
        session.add(
            Event(event_id=str(uuid.uuid4()), site=site, agent_client_id="agent-holmen", agent_seq=1,
                  device_time=T0, kind=EventKind.ACCESS, door_slug="hovedinngang", decision=Decision.DENY,
                  reason="wrong_pin", data={"method": "card_pin"})
        )  # fmt: skip
        session.add(
            Alarm(site=site, door=door, kind="forced_open", severity=AlarmSeverity.CRITICAL, raised_at=T0)
        )
        session.add(
            Agent(site=site, client_id="agent-holmen", online=True, last_seen_at=T0 - timedelta(hours=1))
        )
        token = session.scalars(select(IssuedToken).where(IssuedToken.token_id == issued)).one()
        token.token_id = KNOWN["token_id"][0]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Api, Path]]:
    root = tmp_path_factory.mktemp("schemathesis")
    database = root / "central.db"
    with feed_server() as feeds, make_api(f"sqlite:///{database}", root, gateway=FakeGateway()) as api:
        seed(api, feeds.serve("/rom.ics", ical("weekly_oslo.ics")))
        template = root / "seeded.db"
        api.engine.dispose()
        with sqlite3.connect(database) as source, sqlite3.connect(template) as copy:
            source.backup(copy)
        yield api, template
    write_report(
        {
            "kind": "api",
            "name": "schemathesis, admin token, SQLite",
            "operations": len(OPERATIONS),
            "requests": sum(n for key, n in TALLY.items() if key.isdigit()),
            "server_errors": sum(n for key, n in TALLY.items() if key.startswith("5")),
            "by_status": dict(TALLY),
        }
    )


@pytest.fixture
def api(seeded: tuple[Api, Path]) -> Api:
    """The app on the seeded database as it was before any operation ran."""
    app_api, template = seeded
    app_api.engine.dispose()
    database = app_api.engine.url.database
    assert database is not None
    with sqlite3.connect(template) as source, sqlite3.connect(database) as target:
        source.backup(target)
    return app_api


@SCHEMA.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # `api` is restored per operation
def test_no_request_gets_a_server_error(case: Case[Any], api: Api) -> None:
    OPERATIONS.add(case.operation.label)
    response = case.call_and_validate(app=api.client.app, checks=[not_a_server_error])
    TALLY[str(response.status_code)] += 1
