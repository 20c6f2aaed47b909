"""Sites, zones, doors, rooms, opening hours and "open now" through the API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from central.db import session_factory
from central.models import AuditLog
from tests.test_api_support import Api, FakeGateway, fields_at_fault, make_api, make_site, problem


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    with make_api(db_url, tmp_path, gateway=FakeGateway()) as api:
        yield api


def test_site_crud_with_audit_trail(api: Api) -> None:
    response = api.post(
        "/sites",
        json={"slug": "holmen", "name": "Holmen innbyggertorg", "caretaker_phone": "+47 22 00 00 00"},
    )
    assert response.status_code == 201
    assert response.headers["location"] == "/sites/holmen"
    site = response.json()
    assert site["timezone"] == "Europe/Oslo" and site["closed_on_public_holidays"] is True

    changed = api.ok("PATCH", "/sites/holmen", json={"address": "Holmen senter", "caretaker_phone": None})
    assert changed["address"] == "Holmen senter" and changed["caretaker_phone"] is None
    assert api.ok("GET", "/sites/holmen")["address"] == "Holmen senter"

    api.ok("DELETE", "/sites/holmen")
    body = problem(api.get("/sites/holmen"), 404)
    assert body["detail"] == "site 'holmen' does not exist"

    with session_factory(api.engine)() as session:
        actions = session.execute(
            select(AuditLog.actor, AuditLog.action, AuditLog.entity_id).order_by(AuditLog.id)
        ).all()
    assert [tuple(a) for a in actions] == [
        ("test-admin", "create", "holmen"),
        ("test-admin", "update", "holmen"),
        ("test-admin", "delete", "holmen"),
    ]
    assert api.gateway is not None and api.gateway.pokes == 3


def test_duplicate_slugs_are_409_with_the_name(api: Api) -> None:
    make_site(api)
    body = problem(api.post("/sites", json={"slug": "holmen", "name": "Again"}), 409)
    assert "holmen" in body["detail"] and "already exists" in body["detail"]
    problem(api.post("/sites/holmen/zones", json={"slug": "torg", "name": "Torg"}), 409)
    problem(
        api.post(
            "/sites/holmen/doors",
            json={"slug": "hovedinngang", "name": "X", "zone": "torg", "kind": "entrance"},
        ),
        409,
    )
    # the same door slug at another site is fine
    api.ok("POST", "/sites", json={"slug": "tofte", "name": "Tofte"})
    api.ok("POST", "/sites/tofte/zones", json={"slug": "torg", "name": "Torg"})
    api.ok(
        "POST",
        "/sites/tofte/doors",
        json={"slug": "hovedinngang", "name": "Inngang", "zone": "torg", "kind": "entrance"},
    )


def test_bad_input_names_the_fields_in_plain_words(api: Api) -> None:
    body = problem(
        api.post("/sites", json={"slug": "Holmen Torg", "name": "", "timezone": "Mars/Olympus", "extra": 1}),
        422,
    )
    assert fields_at_fault(body) == {"slug", "name", "timezone", "extra"}
    messages = {e["field"]: e["message"] for e in body["errors"]}
    assert messages["slug"].startswith("must be a slug")
    assert messages["name"] == "must not be empty"
    assert "unknown timezone 'Mars/Olympus'" in messages["timezone"]
    assert messages["extra"] == "is not a known field"
    assert "slug: must be a slug" in body["detail"]

    body = problem(
        api.post("/sites", content=b"{not json", headers={"Content-Type": "application/json"}), 422
    )
    assert "not valid JSON" in body["errors"][0]["message"]
    body = problem(api.post("/sites", json=["a list"]), 422)
    body = problem(api.get("/sites?limit=501&offset=-1"), 422)
    assert {(e["field"], e["location"]) for e in body["errors"]} == {("limit", "query"), ("offset", "query")}
    problem(api.get("/sites/NOT_A_SLUG"), 422)
    problem(api.patch("/sites/holmen", json={"name": None}), 422)
    problem(api.get("/no/such/endpoint"), 404)
    problem(api.call("PUT", "/sites"), 405)


def test_doors_and_rooms_refer_to_zones_and_doors_of_their_site(api: Api) -> None:
    make_site(api)
    body = problem(
        api.post(
            "/sites/holmen/doors",
            json={"slug": "bakdor", "name": "Bakdør", "zone": "kjeller", "kind": "entrance"},
        ),
        422,
    )
    assert body["detail"] == "zone 'kjeller' does not exist at site 'holmen'"
    assert fields_at_fault(body) == {"zone"}
    body = problem(
        api.post(
            "/sites/holmen/doors",
            json={"slug": "bakdor", "name": "B", "zone": "torg", "kind": "entrance", "held_open_seconds": 1},
        ),
        422,
    )
    assert body["errors"][0] == {
        "field": "held_open_seconds",
        "location": "body",
        "message": "must be at least 5",
    }

    door = api.ok("PATCH", "/sites/holmen/doors/hovedinngang", json={"zone": "moterom", "unlock_seconds": 8})
    assert door["zone"] == "moterom" and door["unlock_seconds"] == 8
    room = api.ok("PATCH", "/sites/holmen/rooms/moterom-1", json={"door": None, "capacity": 12})
    assert room["door"] is None and room["capacity"] == 12
    problem(api.patch("/sites/holmen/rooms/moterom-1", json={"door": "ingen"}), 422)
    problem(api.get("/sites/holmen/doors/bakdor"), 404)


def test_deleting_something_in_use_is_refused_with_the_reason(api: Api) -> None:
    make_site(api)
    body = problem(api.delete("/sites/holmen/zones/moterom"), 409)
    assert "doors moterom-1" in body["detail"] and "rooms moterom-1" in body["detail"]
    api.ok(
        "POST",
        "/bookings",
        json={
            "site": "holmen",
            "room": "moterom-1",
            "starts_at": "2030-05-01T16:00:00Z",
            "ends_at": "2030-05-01T18:00:00Z",
        },
    )
    body = problem(api.delete("/sites/holmen/rooms/moterom-1"), 409)
    assert "1 booking" in body["detail"]
    body = problem(api.delete("/sites/holmen"), 409)
    assert "1 bookings" in body["detail"]
    api.ok("POST", "/access-groups", json={"slug": "innbyggere", "name": "Innbyggere"})
    api.ok("PUT", "/access-groups/innbyggere/zones", json={"zones": [{"site": "holmen", "zone": "torg"}]})
    api.ok("DELETE", "/sites/holmen/doors/hovedinngang")
    body = problem(api.delete("/sites/holmen/zones/torg"), 409)
    assert "innbyggere" in body["detail"]


def test_lists_are_paged_with_total(api: Api) -> None:
    for n in range(7):
        api.ok("POST", "/sites", json={"slug": f"site-{n}", "name": f"Site {n}"})
    page = api.ok("GET", "/sites?limit=3&offset=5")
    assert page["total"] == 7 and page["limit"] == 3 and page["offset"] == 5
    assert [s["slug"] for s in page["items"]] == ["site-5", "site-6"]
    assert api.ok("GET", "/sites")["limit"] == 50
    assert api.ok("GET", "/sites?name=SITE-3")["total"] == 1
    assert api.ok("GET", "/sites?name=%25")["total"] == 0  # LIKE wildcards are taken literally


def test_opening_hours_exceptions_and_open_now(api: Api) -> None:
    make_site(api)
    weekly = {"hours": [{"weekday": d, "opens": "07:00", "closes": "22:00"} for d in range(5)]}
    weekly["hours"].append({"weekday": 0, "opens": "10:00", "closes": "16:00", "kind": "staffed"})
    stored = api.ok("PUT", "/sites/holmen/opening-hours", json=weekly)
    assert len(stored["hours"]) == 6
    assert api.ok("GET", "/sites/holmen/opening-hours") == stored

    body = problem(
        api.put(
            "/sites/holmen/opening-hours",
            json={"hours": [{"weekday": 7, "opens": "22:00", "closes": "07:00"}]},
        ),
        422,
    )
    assert fields_at_fault(body) == {"hours.0.weekday"}
    body = problem(
        api.put(
            "/sites/holmen/opening-hours",
            json={"hours": [{"weekday": 1, "opens": "22:00", "closes": "07:00"}]},
        ),
        422,
    )
    assert "closes 07:00 is not after opens 22:00" in body["detail"]
    assert len(api.ok("GET", "/sites/holmen/opening-hours")["hours"]) == 6  # unchanged after the refusal

    # Monday 2030-05-06 20:00 in Oslo (UTC+2) is 18:00Z: open; it closes at 22:00 local = 20:00Z
    answer = api.ok("GET", "/sites/holmen/open-now?at=2030-05-06T18:00:00Z")
    assert answer["open"] is True and answer["local_time"] == "20:00:00"
    assert answer["next_change"] == {"at": "2030-05-06T20:00:00Z", "opens": False}
    staffed = api.ok("GET", "/sites/holmen/open-now?at=2030-05-06T18:00:00Z&kind=staffed")
    assert staffed["open"] is False

    closed = api.ok(
        "POST",
        "/sites/holmen/opening-exceptions",
        json={"day": "2030-05-06", "kind": "closed", "note": "Vannlekkasje"},
    )
    answer = api.ok("GET", "/sites/holmen/open-now?at=2030-05-06T18:00:00Z")
    assert answer["open"] is False and answer["closed_reason"] == "Vannlekkasje"
    # Ascension Day 2030 (Kristi himmelfartsdag) is 30 May, a Thursday
    assert (
        api.ok("GET", "/sites/holmen/open-now?at=2030-05-30T10:00:00Z")["closed_reason"]
        == "Kristi himmelfartsdag"
    )

    problem(
        api.post(
            "/sites/holmen/opening-exceptions",
            json={"day": "2030-05-07", "kind": "special_hours", "opens": "10:00"},
        ),
        422,
    )
    special = api.ok(
        "POST",
        "/sites/holmen/opening-exceptions",
        json={"day": "2030-05-07", "kind": "special_hours", "opens": "10:00", "closes": "12:00"},
    )
    listed = api.ok("GET", "/sites/holmen/opening-exceptions?from=2030-05-07")
    assert [e["id"] for e in listed["items"]] == [special["id"]]
    api.ok("DELETE", f"/sites/holmen/opening-exceptions/{closed['id']}")
    problem(api.get(f"/sites/holmen/opening-exceptions/{closed['id']}"), 404)
    problem(api.get("/sites/holmen/open-now?at=2030-05-06T18:00:00"), 422)  # no timezone
