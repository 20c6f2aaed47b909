"""/feeds as an admin sees it: configure feeds, sync one now, read its status (last error in plain words);
and `central serve` runs the poller."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from central.cli import app as cli
from central.feeds.poller import THREAD_NAME, FeedPoller
from central.models import ApiRole
from tests.test_api_support import fields_at_fault, problem
from tests.test_feeds_support import FeedWorld, feed_world, ical


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[FeedWorld]:
    with feed_world(db_url, tmp_path) as world:
        yield world


def test_admins_manage_feeds_and_nobody_else_may(world: FeedWorld) -> None:
    api = world.api
    url = world.server.serve("/rom.ics", ical("weekly_oslo.ics"))
    body = {"name": "Møterom 1", "url": url, "site": "holmen", "room": "moterom-1"}
    response = api.post("/feeds", json=body)
    assert response.status_code == 201, response.text
    feed = response.json()
    assert response.headers["location"] == f"/feeds/{feed['id']}"
    assert feed["source"] == f"ical:{feed['id']}" and feed["room"] == "moterom-1"
    assert (feed["resource_property"], feed["horizon_days"], feed["enabled"]) == ("LOCATION", 60, True)
    assert feed["status"]["state"] == "never_synced"
    assert feed["status"]["text"].startswith("Not read yet")

    site_feed = api.ok(
        "POST",
        "/feeds",
        json={
            "name": "Holmen (Vega)",
            "url": "webcal://vega.asker.example/holmen.ics",
            "site": "holmen",
            "resource_property": "x-vega-room",
            "room_map": {"Storsalen (2. etg)": "storsal"},
            "enabled": False,
        },
    )
    assert site_feed["room"] is None and site_feed["resource_property"] == "X-VEGA-ROOM"
    assert [f["id"] for f in api.ok("GET", "/feeds")["items"]] == [feed["id"], site_feed["id"]]
    assert [f["id"] for f in api.ok("GET", "/feeds?enabled=false")["items"]] == [site_feed["id"]]
    changed = api.ok("PATCH", f"/feeds/{site_feed['id']}", json={"room": "storsal", "name": "Storsal"})
    assert (changed["room"], changed["name"]) == ("storsal", "Storsal")
    assert api.ok("GET", f"/feeds/{site_feed['id']}") == changed

    for role in (ApiRole.CARETAKER, ApiRole.BOOKING_INTEGRATION):
        problem(api.get("/feeds", role=role), 403)
        problem(api.post(f"/feeds/{feed['id']}/sync", role=role), 403)
        problem(api.patch(f"/feeds/{feed['id']}", role=role, json={"enabled": False}), 403)

    assert api.delete(f"/feeds/{site_feed['id']}").status_code == 204
    problem(api.get(f"/feeds/{site_feed['id']}"), 404)
    entries = api.ok("GET", "/audit-log?entity=booking_feed")["items"]
    assert [e["action"] for e in entries] == ["delete", "update", "create", "create"]
    assert "vega.asker.example/holmen" not in str(entries)  # only the host is kept: the path may be secret


BAD_SETTINGS: list[tuple[dict[str, Any], str, str]] = [
    ({"url": "ftp://example.no/x.ics"}, "url", "must start with http://, https:// or webcal://"),
    ({"room": "gymsal"}, "room", "room 'gymsal' does not exist at site 'holmen'"),
    ({"site": "nowhere"}, "site", "site 'nowhere' does not exist"),
    ({"room": None, "room_map": {"Sal": "gym"}}, "room_map", "'Sal' points at room 'gym', which"),
    ({"resource_property": "LOCATION;X"}, "resource_property", "must be an iCalendar property name"),
    ({"horizon_days": 0}, "horizon_days", "must be at least 1"),
    ({"name": ""}, "name", "must not be empty"),
]


def test_bad_feed_settings_are_refused_in_plain_words(world: FeedWorld) -> None:
    body = {"name": "Rom", "url": "https://cal.example.no/rom.ics", "site": "holmen", "room": "moterom-1"}
    for changes, field, words in BAD_SETTINGS:
        refused = problem(world.api.post("/feeds", json=body | changes), 422)
        assert fields_at_fault(refused) == {field}
        assert words in refused["detail"]
    feed_id = world.api.ok("POST", "/feeds", json=body)["id"]
    for changes, field, words in BAD_SETTINGS:
        if field != "site":  # changing the site alone would orphan the room: tested below
            refused = problem(world.api.patch(f"/feeds/{feed_id}", json=changes), 422)
            assert fields_at_fault(refused) == {field} and words in refused["detail"]
    world.api.ok("POST", "/sites", json={"slug": "vollen", "name": "Vollen"})
    moved = problem(world.api.patch(f"/feeds/{feed_id}", json={"site": "vollen"}), 422)
    assert moved["detail"] == (
        "the feed books room 'moterom-1' of another site; give a room at 'vollen' or null"
    )
    moved_ok = world.api.ok("PATCH", f"/feeds/{feed_id}", json={"site": "vollen", "room": None})
    assert (moved_ok["site"], moved_ok["room"]) == ("vollen", None)


def test_sync_now_imports_and_the_status_tells_what_went_wrong(world: FeedWorld) -> None:
    api = world.api
    feed_id = world.add_feed("/private-9f/rom.ics", "weekly_oslo.ics")
    synced = api.ok("POST", f"/feeds/{feed_id}/sync")
    assert synced == {
        "feed_id": feed_id,
        "outcome": "imported",
        "created": 6,
        "updated": 0,
        "unchanged": 0,
        "cancelled": 0,
        "skipped": [],
    }
    status = api.ok("GET", f"/feeds/{feed_id}")["status"]
    assert status["state"] == "ok" and status["last_error"] is None
    assert status["text"] == (
        "OK. Last checked 2030-03-01 12:00 UTC; last import 2030-03-01 12:00 UTC: "
        "6 new, 0 changed, 0 cancelled, 0 skipped."
    )
    assert api.ok("POST", f"/feeds/{feed_id}/sync")["outcome"] == "not_modified"

    world.server.serve("/private-9f/rom.ics", b"", status=500)
    failed = problem(api.post(f"/feeds/{feed_id}/sync"), 502)
    error = f"127.0.0.1:{world.server.port} answered HTTP 500 Internal Server Error"
    error += " (an error on the calendar server)"
    assert failed["detail"] == f"booking feed {feed_id} was not synced: {error}; its bookings were kept"
    status = api.ok("GET", f"/feeds/{feed_id}")["status"]
    assert (status["state"], status["last_error"]) == ("failing", error)
    assert status["text"] == (
        f"Failing: the last attempt (2030-03-01 12:00 UTC) failed: {error}. "
        "The bookings from the last good import (2030-03-01 12:00 UTC) stay in force."
    )
    listed = api.ok("GET", "/bookings?site=holmen&room=moterom-1")["items"]
    assert [b["status"] for b in listed] == ["confirmed"] * 6
    from_feed = api.ok("GET", f"/bookings?source=ical:{feed_id}")["items"]
    assert [b["id"] for b in from_feed] == [b["id"] for b in listed]


def test_a_disabled_feed_is_not_synced(world: FeedWorld) -> None:
    feed_id = world.add_feed("/rom.ics", "weekly_oslo.ics", enabled=False)
    refused = problem(world.api.post(f"/feeds/{feed_id}/sync"), 409)
    assert refused["detail"] == f"booking feed {feed_id} is disabled; enable it first"
    assert world.api.ok("GET", f"/feeds/{feed_id}")["status"]["state"] == "disabled"
    assert world.server.requests == []
    problem(world.api.post("/feeds/999/sync"), 404)


def test_changing_what_a_feed_imports_reads_it_in_full_again(world: FeedWorld) -> None:
    feed_id = world.add_feed("/rom.ics", "weekly_oslo.ics")
    world.api.ok("POST", f"/feeds/{feed_id}/sync")
    world.api.ok("PATCH", f"/feeds/{feed_id}", json={"name": "Bare et nytt navn"})
    assert world.api.ok("POST", f"/feeds/{feed_id}/sync")["outcome"] == "not_modified"
    world.api.ok("PATCH", f"/feeds/{feed_id}", json={"room": "storsal"})
    moved = world.api.ok("POST", f"/feeds/{feed_id}/sync")
    assert (moved["outcome"], moved["updated"]) == ("imported", 6)
    assert world.server.statuses("/rom.ics") == [200, 304, 200]
    assert {room for _, room in world.live(feed_id).values()} == {"storsal"}


def test_deleting_a_feed_keeps_the_bookings_it_imported(world: FeedWorld) -> None:
    feed_id = world.add_feed("/rom.ics", "weekly_oslo.ics")
    world.api.ok("POST", f"/feeds/{feed_id}/sync")
    world.api.ok("DELETE", f"/feeds/{feed_id}")
    assert len(world.live(feed_id)) == 6


def test_central_serve_runs_the_feed_poller_beside_the_api(
    world: FeedWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def fake_run(api: Any, **_: Any) -> None:  # stands in for uvicorn: look at what serve started
        seen["poller_threads"] = [t for t in threading.enumerate() if t.name == THREAD_NAME]
        seen["syncer"] = api.state.feed_syncer

    monkeypatch.setattr("uvicorn.run", fake_run)
    started: list[FeedPoller] = []
    original_start = FeedPoller.start

    def remember(poller: FeedPoller) -> FeedPoller:
        started.append(poller)
        return original_start(poller)

    monkeypatch.setattr(FeedPoller, "start", remember)
    db_url = world.api.settings.db_url
    result = CliRunner().invoke(cli, ["serve", "--db", db_url, "--no-gateway", "--feed-poll-seconds", "60"])
    assert result.exit_code == 0, result.output
    (poller,) = started
    assert len(seen["poller_threads"]) == 1 and seen["syncer"] is poller.syncer
    assert poller.interval_s == 60 and not poller.running  # stopped when the server stopped
    too_often = CliRunner().invoke(cli, ["serve", "--db", db_url, "--feed-poll-seconds", "1"])
    assert too_often.exit_code == 2 and "--feed-poll-seconds" in too_often.output
