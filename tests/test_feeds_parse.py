"""Reading real iCalendar files of different shapes: what becomes a booking, when (in UTC), and what not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from central.feeds.errors import FeedError
from central.feeds.parse import ParsedFeed, parse_feed, uid_key
from tests.test_feeds_support import NOW, ical

OSLO = ZoneInfo("Europe/Oslo")
SERIES = "sjakkveld-2030@booking.asker.example"


def parse(name: str, days: int = 60, **options: str) -> ParsedFeed:
    return parse_feed(ical(name), start=NOW, end=NOW + timedelta(days=days), tz=OSLO, **options)


def utc(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_weekly_series_keeps_local_time_across_dst_with_exception_move_and_cancellation() -> None:
    feed = parse("weekly_oslo.ics")
    by_key = {o.key: o for o in feed.occurrences}
    # 18:00 in Oslo is 17:00 UTC in winter time and 16:00 UTC after the switch on 31 March
    weekly = [o for o in feed.occurrences if not o.cancelled and "flyttet" not in o.title]
    assert [(o.starts_at, o.ends_at) for o in weekly] == [
        (utc(2030, 3, 5, 17), utc(2030, 3, 5, 19)),
        (utc(2030, 3, 26, 17), utc(2030, 3, 26, 19)),
        (utc(2030, 4, 2, 16), utc(2030, 4, 2, 18)),
        (utc(2030, 4, 16, 16), utc(2030, 4, 16, 18)),
        (utc(2030, 4, 23, 16), utc(2030, 4, 23, 18)),
    ]
    assert f"{SERIES}#20300312T170000Z" not in by_key  # EXDATE: no meeting that week
    moved = by_key[f"{SERIES}#20300319T170000Z"]  # identity stays with the original slot
    assert (moved.starts_at, moved.ends_at) == (utc(2030, 3, 20, 18), utc(2030, 3, 20, 20))
    assert moved.title == "Sjakkveld (flyttet til onsdag)"
    assert moved.organizer_email == "leder@sjakk.example"  # the moved occurrence inherits the organiser
    assert by_key[f"{SERIES}#20300409T160000Z"].cancelled
    assert not feed.skipped


def test_an_endless_series_is_expanded_only_as_far_as_the_window() -> None:
    assert len(parse("weekly_oslo.ics", days=60).occurrences) == 7
    assert len(parse("weekly_oslo.ics", days=20).occurrences) == 2  # 5 March and the one moved to 20 March
    assert len(parse("weekly_oslo.ics", days=366).occurrences) > 40


def test_utc_events_with_duration_and_organiser_or_attendee_addresses() -> None:
    events = parse("utc_events.ics").occurrences
    assert [(o.title, o.starts_at, o.ends_at) for o in events] == [
        ("Strikkekafé", utc(2030, 3, 6, 17), utc(2030, 3, 6, 19)),
        ("Leksehjelp", utc(2030, 3, 7, 15), utc(2030, 3, 7, 17)),  # DURATION:PT2H
        ("Styremøte velforeningen", utc(2030, 3, 8, 10), utc(2030, 3, 8, 11, 30)),
    ]
    assert events[0].key == "5f1c2a9e0b7d4c31@google.com"
    assert events[1].organizer_name == "Asker Røde Kors"
    assert events[1].attendee_emails == ("kari@example.no",)  # addresses compare in lower case


def test_outlook_custom_vtimezone_is_honoured_and_long_uids_become_stable_keys() -> None:
    events = parse("outlook_custom_tz.ics").occurrences
    assert [(o.title, o.starts_at) for o in events] == [
        ("Kor-øvelse", utc(2030, 3, 20, 17)),  # 18:00 at +01:00
        ("Kor-øvelse (vår)", utc(2030, 4, 10, 16)),  # 18:00 at +02:00 by the VTIMEZONE's own rules
    ]
    assert all(o.key.startswith("sha256:") and len(o.key) <= 110 for o in events)
    assert [o.key for o in events] == [o.key for o in parse("outlook_custom_tz.ics").occurrences]


def test_floating_times_are_read_as_oslo_time() -> None:
    events = parse("floating.ics").occurrences
    assert [o.starts_at for o in events] == [utc(2030, 3, 8, 9), utc(2030, 4, 5, 8)]  # 10:00 CET, 10:00 CEST


def test_all_day_events_are_skipped_and_named() -> None:
    feed = parse("all_day.ics")
    assert [o.title for o in feed.occurrences] == ["Dugnad"]
    assert [(s.event, s.reason) for s in feed.skipped] == [
        ("'Stengt: påske' on 2030-04-18", "all-day events are not imported (they give no times of day)")
    ]


def test_one_unreadable_event_is_skipped_and_the_rest_imported() -> None:
    feed = parse("one_broken_event.ics")
    assert [o.title for o in feed.occurrences] == ["Bokklubb"]
    assert feed.broken == {"broken-1"}
    (skipped,) = feed.skipped
    assert skipped.event == "'Ødelagt tidspunkt'"
    assert skipped.reason.startswith("could not be read:") and "den 5. mars kl. 18" in skipped.reason


def test_site_feed_events_carry_their_location() -> None:
    events = parse("site_v1.ics").occurrences
    assert [o.resources for o in events][:3] == [("Møterom 1",), ("Storsalen (2. etg)",), ("Gymsal",)]
    assert events[0].starts_at == utc(2030, 3, 5, 16)  # X-WR-TIMEZONE + TZID Europe/Oslo
    by_summary = parse("site_v1.ics", resource_property="SUMMARY").occurrences
    assert by_summary[0].resources == ("Styremøte Holmen vel",)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (ical("garbage.ics"), "the feed is damaged: a line is not iCalendar ('Dette er ikke iCalendar;"),
        (b"<!DOCTYPE html><html><body>Logg inn</body></html>", "not an iCalendar file but a web page"),
        (b"", "the feed is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not an iCalendar file (it does not start with BEGIN:VCALENDAR)"),
        (ical("weekly_oslo.ics")[:900], "the feed is cut off: it has no END:VCALENDAR"),
        (b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", "not valid iCalendar"),
    ],
)
def test_what_is_not_a_calendar_fails_with_one_clear_line(body: bytes, message: str) -> None:
    with pytest.raises(FeedError) as caught:
        parse_feed(body, start=NOW, end=NOW + timedelta(days=60), tz=OSLO)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_empty_calendar_is_a_valid_feed_with_nothing_booked() -> None:
    feed = parse_feed(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n", start=NOW, end=NOW, tz=OSLO)
    assert feed.occurrences == () and feed.skipped == ()


def test_uid_keys_are_the_uid_unless_too_long_or_unprintable() -> None:
    assert uid_key("vega-1001") == "vega-1001"
    assert uid_key("x" * 500) == uid_key("x" * 500) != uid_key("x" * 501)
    assert uid_key("a\x00b").startswith("sha256:")
