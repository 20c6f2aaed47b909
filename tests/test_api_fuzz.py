"""No input produces a 500: odd JSON, odd types, NUL characters, huge numbers, on both databases.

A quick stand-in for the schemathesis run: hypothesis sends arbitrary JSON to a handful of write endpoints
and a list of known troublemakers to the rest; every answer must be a success or a 4xx problem.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_api_support import PROBLEM, Api, FakeGateway, make_api, make_site

NASTY_VALUES: list[Any] = [
    None, True, -1, 0, 2**31, 2**63, 10**30, 1e308, -1e308, "", " ", "\x00", "a\x00b", "\ud800", "é" * 5000,
    "../../etc/passwd", "%", "_", "'; DROP TABLE sites; --", [], {}, [None], {"a": {"b": {"c": []}}},
    "2030-13-45T25:61:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "24:00", "07:00+01:00",
]  # fmt: skip

WRITE_ENDPOINTS = [
    ("POST", "/sites"),
    ("PATCH", "/sites/holmen"),
    ("POST", "/sites/holmen/doors"),
    ("POST", "/sites/holmen/rooms"),
    ("PUT", "/sites/holmen/opening-hours"),
    ("POST", "/sites/holmen/opening-exceptions"),
    ("POST", "/people"),
    ("POST", "/people/1/cards"),
    ("POST", "/credentials/lookup"),
    ("PUT", "/bookings/external"),
    ("POST", "/bookings"),
    ("PATCH", "/bookings/1"),
    ("POST", "/sites/holmen/commands"),
    ("PUT", "/access-groups/innbyggere/zones"),
    ("PUT", "/access-groups/innbyggere/intervals"),
    ("POST", "/api-users"),
    ("POST", "/people/1/tokens"),
    ("POST", "/alarms/1/acknowledge"),
]

FIELDS = [
    "slug", "name", "zone", "door", "kind", "uid", "pin", "site", "room", "starts_at", "ends_at", "timezone",
    "hours", "day", "opens", "closes", "action", "reason", "duration_seconds", "source", "external_id",
    "holder_id", "display_name", "birth_year", "capacity", "zones", "intervals", "username", "role",
    "doors", "minutes", "booking_id", "comment", "label", "valid_from", "valid_until",
]  # fmt: skip

QUERIES = [
    "/sites?limit=0", "/sites?limit=99999999999999999999", "/sites?offset=99999999999999999999",
    "/sites?name=%00", "/people?name=%25%00", "/people/99999999999999999999", "/people/-1",
    "/events?since=not-a-date", "/events?since=2030-01-01T00:00:00", "/events?person_id=4294967296",
    "/bookings?day=0000-00-00", "/bookings?holder_id=abc", "/sites/holmen/open-now?at=9999-12-31T23:59:59Z",
    "/sites/holmen/open-now?kind=party", "/sites/%00/doors", "/sites/" + "a" * 500,
    "/alarms?kind=%00", "/audit-log?actor=%00", "/credentials?person_id=0",
]  # fmt: skip


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    with make_api(db_url, tmp_path, gateway=FakeGateway()) as api:
        make_site(api)
        api.ok("POST", "/people", json={"kind": "resident", "display_name": "Kari"})
        api.ok("POST", "/access-groups", json={"slug": "innbyggere", "name": "Innbyggere"})
        api.ok(
            "POST",
            "/bookings",
            json={
                "site": "holmen",
                "room": "moterom-1",
                "starts_at": "2030-05-06T16:00:00Z",
                "ends_at": "2030-05-06T18:00:00Z",
            },
        )
        yield api


def send(api: Api, method: str, url: str, body: Any) -> Any:
    """JSON with ASCII escapes, so lone surrogates travel as \\ud800 the way a client could send them."""
    return api.call(method, url, content=json.dumps(body), headers={"Content-Type": "application/json"})


def assert_handled(response: Any, what: str) -> None:
    assert response.status_code < 500, f"{what} -> {response.status_code}: {response.text}"
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith(PROBLEM), what


def test_known_troublemakers_in_every_field(api: Api) -> None:
    for method, url in WRITE_ENDPOINTS:
        for value in NASTY_VALUES:
            for body in ({name: value for name in FIELDS}, value):
                response = send(api, method, url, body)
                assert_handled(response, f"{method} {url} {body!r:.80}")


def test_odd_query_strings_and_paths(api: Api) -> None:
    for url in QUERIES:
        assert_handled(api.get(url), url)


def test_raw_bodies_that_are_not_json(api: Api) -> None:
    for raw in (b"", b"{", b"\xff\xfe", b"null", b'{"slug": "a"' * 1000, b"[" * 5000 + b"]" * 5000):
        response = api.call("POST", "/sites", content=raw, headers={"Content-Type": "application/json"})
        assert_handled(response, repr(raw[:40]))
    assert_handled(
        api.call("POST", "/sites", content=b"slug=x", headers={"Content-Type": "text/plain"}), "form"
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.fixed_dictionaries({}, optional={name: json_values for name in FIELDS}) | json_values


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(endpoint=st.sampled_from(WRITE_ENDPOINTS), body=bodies)
def test_arbitrary_json_never_breaks_the_server(api: Api, endpoint: tuple[str, str], body: Any) -> None:
    method, url = endpoint
    assert_handled(send(api, method, url, body), f"{method} {url} {body!r:.200}")


def test_unexpected_errors_are_a_bare_500_problem_and_races_a_409(api: Api) -> None:
    from sqlalchemy.exc import IntegrityError

    app = api.client.app

    def broken() -> None:
        raise RuntimeError("SELECT secret FROM internals")

    def racing() -> None:
        raise IntegrityError("INSERT INTO sites ...", {}, Exception("duplicate key uq_sites_slug"))

    app.add_api_route("/test-broken", broken)  # type: ignore[attr-defined]
    app.add_api_route("/test-racing", racing)  # type: ignore[attr-defined]
    response = api.get("/test-broken")
    assert response.status_code == 500 and response.headers["content-type"].startswith(PROBLEM)
    assert "secret" not in response.text and "internals" not in response.text
    response = api.get("/test-racing")
    assert response.status_code == 409 and "uq_sites_slug" not in response.text
