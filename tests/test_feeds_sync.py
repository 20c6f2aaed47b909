"""Syncing feeds into bookings, on SQLite and PostgreSQL: imports, changes between fetches, cancellations,
304s that cost nothing, failures that keep the last good bookings, and a poller one bad feed cannot stop."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from central.feeds.fetch import Fetched, HttpFetcher, Validators
from central.feeds.poller import FeedPoller
from central.feeds.service import feed_state
from central.feeds.sync import FULL_REFRESH, FeedSyncer
from central.models import ApiRole, BookingStatus
from tests.test_feeds_support import FeedWorld, feed_world, ical

SERIES = "sjakkveld-2030@booking.asker.example"


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[FeedWorld]:
    with feed_world(db_url, tmp_path) as world:
        yield world


def utc(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2030, month, day, hour, minute, tzinfo=UTC)


def test_a_room_feed_imports_a_weekly_series_and_a_304_changes_nothing(world: FeedWorld) -> None:
    feed_id = world.add_feed("/rom/moterom-1.ics", "weekly_oslo.ics")
    result = world.sync(feed_id)
    assert (result.outcome, result.created, result.cancelled, result.skipped) == ("imported", 6, 0, [])
    bookings = world.bookings(feed_id)
    assert [(b.starts_at, b.ends_at) for b in bookings] == [
        (utc(3, 5, 17), utc(3, 5, 19)),
        (utc(3, 20, 18), utc(3, 20, 20)),  # moved from Tuesday 19 March to Wednesday 19:00 Oslo time
        (utc(3, 26, 17), utc(3, 26, 19)),
        (utc(4, 2, 16), utc(4, 2, 18)),  # summer time: still 18:00 in Oslo
        (utc(4, 16, 16), utc(4, 16, 18)),  # 9 April was cancelled in the feed: never booked
        (utc(4, 23, 16), utc(4, 23, 18)),
    ]
    assert {(b.status, b.room.slug, b.holder_id, b.organisation) for b in bookings} == {
        (BookingStatus.CONFIRMED, "moterom-1", world.people["leder@sjakk.example"], None)
    }
    assert bookings[1].title == "Sjakkveld (flyttet til onsdag)"
    assert bookings[0].external_id == f"{SERIES}#20300305T170000Z"

    work, before = world.work_done(), world.snapshot(feed_id)
    again = world.sync(feed_id)
    assert again.outcome == "not_modified"
    assert world.server.statuses("/rom/moterom-1.ics") == [200, 304]
    assert world.server.requests[-1].if_none_match is not None
    assert world.work_done() == work  # no booking touched, nothing for the replicas
    assert world.snapshot(feed_id) == before
    assert world.feed(feed_id).last_ok_at == world.clock.now


def test_holders_come_from_organiser_or_attendee_addresses_else_the_organisers_name(world: FeedWorld) -> None:
    feed_id = world.add_feed("/google.ics", "utc_events.ics")
    world.sync(feed_id)
    kari = world.people["kari@example.no"]
    assert [(b.title, b.starts_at, b.holder_id, b.organisation) for b in world.bookings(feed_id)] == [
        ("Strikkekafé", utc(3, 6, 17), kari, None),
        ("Leksehjelp", utc(3, 7, 15), kari, None),  # organiser unknown; Kari is an attendee (KARI@...)
        ("Styremøte velforeningen", utc(3, 8, 10), None, "Holmen velforening"),
    ]


def test_the_other_attendees_become_co_holders_and_follow_the_calendar(world: FeedWorld) -> None:
    people = {}
    for name, email in (
        ("Per Hansen", "per@example.no"),
        ("Ola Berg", "ola@example.no"),
        ("Strikk A", "felles@strikk.example"),  # two people share this address: it names nobody
        ("Strikk B", "felles@strikk.example"),
    ):
        body = {"kind": "resident", "display_name": name, "email": email}
        people[name] = world.api.ok("POST", "/people", json=body)["id"]
    kari, leder = world.people["kari@example.no"], world.people["leder@sjakk.example"]
    per, ola = people["Per Hansen"], people["Ola Berg"]
    feed_id = world.add_feed("/outlook/moterom-1.ics", "attendees.ics")

    def people_on_bookings() -> list[tuple[str, int | None, list[int]]]:
        listed = world.api.ok("GET", f"/bookings?source=ical:{feed_id}")["items"]
        return [(b["title"], b["holder_id"], b["co_holder_ids"]) for b in listed]

    assert world.sync(feed_id).created == 2
    assert people_on_bookings() == [
        ("Styremøte Holmen strikkeklubb", kari, sorted([per, ola])),  # the organiser is listed once
        ("Sjakktrening", leder, [kari]),  # organiser unknown: the first attendee we know holds it
    ]

    without_ola = ical("attendees.ics").replace(b"mailto:ola@example.no", b"mailto:ola@ukjent.example")
    world.server.serve("/outlook/moterom-1.ics", without_ola)
    changed = world.sync(feed_id)
    assert (changed.outcome, changed.updated, changed.unchanged) == ("imported", 1, 1)
    assert people_on_bookings()[0] == ("Styremøte Holmen strikkeklubb", kari, [per])

    work = world.work_done()
    world.clock.now += FULL_REFRESH + timedelta(minutes=1)  # read it all again: nothing has changed
    again = world.sync(feed_id)
    assert (again.outcome, again.updated, again.unchanged) == ("imported", 0, 2)
    assert world.work_done() == work


def test_calendars_of_other_shapes_book_the_right_times(world: FeedWorld) -> None:
    expected = {
        "outlook_custom_tz.ics": ([utc(3, 20, 17), utc(4, 10, 16)], []),  # its own VTIMEZONE rules
        "floating.ics": ([utc(3, 8, 9), utc(4, 5, 8)], []),  # 10:00 in Oslo, winter and summer time
        "all_day.ics": ([utc(4, 6, 9)], ["'Stengt: påske' on 2030-04-18"]),
    }
    for calendar, (starts, skipped) in expected.items():
        feed_id = world.add_feed(f"/{calendar}", calendar)
        world.sync(feed_id)
        assert [b.starts_at for b in world.bookings(feed_id)] == starts, calendar
        summary = world.feed(feed_id).last_summary
        assert [s["event"] for s in summary["skipped"]] == skipped
        assert summary["skipped_total"] == len(skipped)


def add_site_feed(world: FeedWorld) -> int:
    """Holmen's whole calendar from the booking system: rooms by LOCATION, 'Storsalen (2. etg)' mapped."""
    room_map = {"Storsalen (2. etg)": "storsal"}
    return world.add_feed("/vega/holmen.ics", "site_v1.ics", room=None, room_map=room_map)


def test_a_site_feed_maps_locations_to_rooms_and_follows_the_calendar_over_fetches(world: FeedWorld) -> None:
    feed_id = add_site_feed(world)
    first = world.sync(feed_id)
    assert (first.created, first.cancelled) == (4, 0)
    assert [(s.event, s.reason) for s in first.skipped] == [
        (
            "'Basket' at 2030-03-07 17:00 UTC",
            "no room matches LOCATION 'Gymsal' (add it to the feed's room_map)",
        )
    ]
    assert world.live(feed_id) == {
        "vega-1001": (utc(3, 5, 16), "moterom-1"),  # by the room's name
        "vega-1002": (utc(3, 6, 17), "storsal"),  # by the feed's room_map
        "vega-1004": (utc(3, 10, 11), "storsal"),  # the same, ignoring case
        "vega-1005": (utc(3, 11, 16), "moterom-1"),
    }

    world.server.serve("/vega/holmen.ics", ical("site_v2.ics"))  # the booking system changed four things
    second = world.sync(feed_id)
    assert (second.created, second.updated, second.unchanged, second.cancelled) == (2, 1, 1, 2)
    assert world.live(feed_id) == {
        "vega-1001": (utc(3, 5, 17), "moterom-1"),  # moved an hour later
        "vega-1002": (utc(3, 6, 17), "storsal"),
        "vega-1006@moterom-1": (utc(3, 12, 17), "moterom-1"),  # new, in two rooms at once
        "vega-1006@storsal": (utc(3, 12, 17), "storsal"),
    }
    status = {b.external_id: b.status for b in world.bookings(feed_id)}
    assert status["vega-1004"] is BookingStatus.CANCELLED  # removed from the feed
    assert status["vega-1005"] is BookingStatus.CANCELLED  # STATUS:CANCELLED in the feed


def test_an_event_that_comes_back_is_confirmed_again_but_staff_cancellations_stand(world: FeedWorld) -> None:
    feed_id = add_site_feed(world)
    world.sync(feed_id)
    korovelse = next(b.id for b in world.bookings(feed_id) if b.external_id == "vega-1002")
    world.api.ok("POST", f"/bookings/{korovelse}/cancel", role=ApiRole.CARETAKER)
    world.server.serve("/vega/holmen.ics", ical("site_v2.ics"))
    world.sync(feed_id)
    assert "vega-1004" not in world.live(feed_id)

    world.server.serve("/vega/holmen.ics", ical("site_v1.ics"))  # the booking system undid its changes
    back = world.sync(feed_id)
    assert set(world.live(feed_id)) == {"vega-1001", "vega-1004", "vega-1005"}  # 1006 gone again
    assert [(s.event, s.reason) for s in back.skipped][1:] == [
        (
            "'Korøvelse' at 2030-03-06 17:00 UTC",
            "staff cancelled its booking in central; the feed does not overrule that",
        )
    ]


def test_an_event_that_cannot_be_read_keeps_its_booking(world: FeedWorld) -> None:
    good = ical("one_broken_event.ics").replace(b"DTSTART:den 5. mars kl. 18", b"DTSTART:20300305T160000Z")
    feed_id = world.add_feed("/hand.ics", "one_broken_event.ics")
    world.server.serve("/hand.ics", good)
    world.sync(feed_id)
    assert set(world.live(feed_id)) == {"broken-1", "fine-1"}
    world.server.serve("/hand.ics", ical("one_broken_event.ics"))  # someone typed a date in words
    result = world.sync(feed_id)
    assert result.outcome == "imported" and result.cancelled == 0
    assert set(world.live(feed_id)) == {"broken-1", "fine-1"}
    assert result.skipped[0].reason.startswith("could not be read:")


BREAKAGES: list[tuple[dict[str, Any], str]] = [
    ({"status": 500}, "answered HTTP 500 Internal Server Error (an error on the calendar server)"),
    ({"delay_s": 30}, "no answer from 127.0.0.1:{port} within 0.5 s"),
    ({"body": ical("garbage.ics")}, "the feed is damaged: a line is not iCalendar"),
    ({"body": b"<html><body>Innlogging</body></html>"}, "not an iCalendar file but a web page"),
]


def test_a_failing_feed_keeps_its_last_good_bookings_and_says_why(world: FeedWorld) -> None:
    path = "/private-7c1d/moterom.ics"
    feed_id = world.add_feed(path, "weekly_oslo.ics")
    world.sync(feed_id)
    good = world.live(feed_id)
    assert len(good) == 6
    imported_at = world.clock.now

    for breakage, error in BREAKAGES:
        options = dict(breakage)
        world.server.serve(path, options.pop("body", ical("utc_events.ics")), **options)
        world.clock.now += timedelta(minutes=5)
        with structlog.testing.capture_logs() as logs:
            result = world.sync(feed_id)
        expected = error.format(port=world.server.port)
        assert result.outcome == "failed" and result.error is not None and expected in result.error
        assert world.live(feed_id) == good  # the last good bookings stay in force
        feed = world.feed(feed_id)
        assert (feed.last_error, feed.last_error_at) == (result.error, world.clock.now)
        assert feed.last_synced_at == imported_at
        (logged,) = [entry for entry in logs if entry["event"] == "feeds.sync_failed"]
        assert logged["feed"] == feed_id and logged["error"] == result.error
        assert logged["log_level"] == "warning" and "private-7c1d" not in str(logs)

    world.server.serve(path, ical("weekly_oslo.ics"))  # repaired
    world.clock.now += timedelta(minutes=5)
    assert world.sync(feed_id).outcome == "not_modified"  # the same calendar as the last good import
    assert world.live(feed_id) == good
    repaired = world.feed(feed_id)
    assert (feed_state(repaired), repaired.last_error) == ("ok", None)
    assert repaired.last_error_at == world.clock.now - timedelta(minutes=5)  # when it last failed


def test_the_window_moves_on_even_when_the_server_says_not_modified(world: FeedWorld) -> None:
    feed_id = world.add_feed("/rom.ics", "weekly_oslo.ics")
    world.sync(feed_id)
    assert max(start for start, _ in world.live(feed_id).values()) == utc(4, 23, 16)
    world.clock.now += FULL_REFRESH + timedelta(days=1)
    result = world.sync(feed_id)
    assert result.outcome == "imported"
    assert world.server.requests[-1].if_none_match is None  # asked for all of it, not "changed since?"
    assert max(start for start, _ in world.live(feed_id).values()) == utc(4, 30, 16)  # the next Tuesday


class _ExplodingFetcher:
    """The real fetcher, except that one address makes it crash as a bug would."""

    def __init__(self, bad_path: str) -> None:
        self.real = HttpFetcher(timeout_s=0.5)
        self.bad_path = bad_path

    def __call__(self, url: str, validators: Validators) -> Fetched:
        if url.endswith(self.bad_path):
            raise RuntimeError("a bug")
        return self.real(url, validators)


def test_one_broken_feed_never_stops_the_others(world: FeedWorld) -> None:
    failing = world.add_feed("/a.ics", "weekly_oslo.ics")
    world.server.serve("/a.ics", b"", status=503)
    garbage = world.add_feed("/b.ics", "garbage.ics")
    crashing = world.add_feed("/c.ics", "utc_events.ics")
    good = world.add_feed("/d.ics", "weekly_oslo.ics", room="storsal")
    disabled = world.add_feed("/e.ics", "floating.ics", enabled=False)
    syncer = FeedSyncer(world.sessions, fetcher=_ExplodingFetcher("/c.ics"), clock=world.clock)

    with structlog.testing.capture_logs() as logs:
        results = FeedPoller(syncer).poll_once()
    assert [(r.feed_id, r.outcome) for r in results] == [
        (failing, "failed"),
        (garbage, "failed"),
        (crashing, "failed"),
        (good, "imported"),
    ]
    assert len(world.live(good)) == 6 and world.bookings(disabled) == []
    assert world.feed(crashing).last_error == "the import failed unexpectedly (details in the server log)"
    assert any(e["event"] == "feeds.sync_crashed" and e["feed"] == crashing for e in logs)
    assert "answered HTTP 503" in str(world.feed(failing).last_error)


def test_the_poller_thread_polls_until_stopped(world: FeedWorld) -> None:
    feed_id = world.add_feed("/rom.ics", "weekly_oslo.ics")
    poller = FeedPoller(world.syncer, interval_s=3600).start()
    try:
        deadline = time.monotonic() + 20
        while poller.rounds == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert poller.running and poller.rounds == 1
    finally:
        poller.stop()
    assert not poller.running
    assert len(world.live(feed_id)) == 6
    with pytest.raises(ValueError, match="must be positive"):
        FeedPoller(world.syncer, interval_s=0)
