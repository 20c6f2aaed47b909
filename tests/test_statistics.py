"""Statistics as the municipality reads them, on SQLite and PostgreSQL: visits per day, hour and site (one
card back within 30 minutes is one visit), meråpent versus staffed hours, occupancy over the evening, room
use, denials in words; right across the DST changes, and the same after retention pseudonymised the events."""

from __future__ import annotations

import csv
import io
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central.models import (
    Booking,
    BookingStatus,
    Decision,
    Door,
    DoorKind,
    Event,
    EventKind,
    OpeningException,
    OpeningHours,
    Room,
    Site,
    Zone,
)
from central.schedules import ExceptionKind, HoursKind
from central.services import statistics as st
from central.services.errors import InvalidError
from central.services.retention import pseudonymise_events
from protocol.messages import Reason

OSLO = ZoneInfo("Europe/Oslo")
MAY = st.Period(date(2025, 5, 5), date(2025, 5, 12))  # Monday 5 to Sunday 11 May 2025


def oslo(day: date, clock: str) -> datetime:
    return datetime.combine(day, time.fromisoformat(clock), tzinfo=OSLO).astimezone(UTC)


@dataclass
class World:
    holmen: Site
    tofte: Site
    session: Session

    def access(
        self,
        at: datetime,
        card: str | None = "c1",
        *,
        site: Site | None = None,
        door: str = "inngang",
        decision: Decision = Decision.GRANT,
        reason: Reason = Reason.SCHEDULE,
    ) -> Event:
        """An access event as ingest stores it (the card's reference; the person is not needed here)."""
        place = site or self.holmen
        event = Event(
            event_id=str(uuid.uuid4()),
            site_id=place.id,
            agent_client_id=f"agent-{place.slug}",
            agent_seq=self.session.scalar(select(func.count()).select_from(Event)) or 0,
            device_time=at,
            received_at=at,
            kind=EventKind.ACCESS,
            door_slug=door,
            credential_ref=card,
            decision=decision,
            reason=reason.value,
            data={"method": "card", "person_ref": None, "booking_ref": None},
        )
        self.session.add(event)
        return event

    def booking(
        self, room: str, starts: datetime, hours: float, status: BookingStatus, checked_in: bool
    ) -> None:
        room_row = self.session.scalars(select(Room).where(Room.slug == room)).one()
        self.session.add(
            Booking(
                room=room_row,
                starts_at=starts,
                ends_at=starts + timedelta(hours=hours),
                status=status,
                checked_in_at=starts if checked_in else None,
            )
        )


def _site(session: Session, slug: str, name: str) -> Site:
    """Meråpent 07-22 every day, staffed 10-16 on weekdays; an entrance, an inner door and a meeting room."""
    site = Site(slug=slug, name=name, closed_on_public_holidays=False)
    torg = Zone(site=site, slug="torg", name="Torg")
    moterom = Zone(site=site, slug="moterom", name="Møterom")
    Door(site=site, zone=torg, slug="inngang", name="Hovedinngang", kind=DoorKind.ENTRANCE)
    Door(site=site, zone=torg, slug="bibliotek", name="Bibliotek", kind=DoorKind.INTERNAL)
    room_door = Door(site=site, zone=moterom, slug="moterom", name="Møterom", kind=DoorKind.ROOM)
    Room(site=site, zone=moterom, door=room_door, slug=f"{slug}-moterom", name="=Møterom 1", capacity=10)
    for weekday in range(7):
        site.opening_hours.append(OpeningHours(weekday=weekday, opens=time(7), closes=time(22)))
    for weekday in range(5):
        site.opening_hours.append(
            OpeningHours(weekday=weekday, opens=time(10), closes=time(16), kind=HoursKind.STAFFED)
        )
    session.add(site)
    return site


@pytest.fixture
def world(session: Session) -> World:
    w = World(_site(session, "holmen", "Holmen"), _site(session, "tofte", "Tofte"), session)
    session.commit()
    return w


def day_totals(stats: st.VisitStatistics, site: str | None = None) -> dict[date, int]:
    return {d.day: d.visits.total for d in stats.per_day if site in (None, d.site) and d.visits.total}


def hour_totals(stats: st.VisitStatistics) -> dict[int, int]:
    return {hour: counts.total for hour, counts in st.visits_by_hour(stats) if counts.total}


def test_a_card_back_within_30_minutes_is_one_visit_and_only_own_entrance_grants_count(world: World) -> None:
    monday = MAY.first
    world.access(oslo(monday, "18:00"))
    world.access(oslo(monday, "18:20"))  # back within 30 minutes: the same visit
    world.access(oslo(monday, "18:55"))  # 35 minutes after the last entry: a new visit
    world.access(oslo(monday, "18:10"), "c2")
    world.access(oslo(monday, "18:12"), "c3", decision=Decision.DENY, reason=Reason.WRONG_PIN)
    world.access(oslo(monday, "18:13"), "c3", door="moterom", reason=Reason.BOOKING)  # a room door
    world.access(oslo(monday, "18:14"), "c4", reason=Reason.ANY_TIME)  # the caretaker
    world.access(oslo(monday, "18:15"), None, reason=Reason.EXIT_REQUEST)  # the exit button
    world.access(oslo(monday, "18:16"), "c5", reason=Reason.BOOKING)  # a booking holder: a visitor
    world.access(oslo(monday, "18:17"), "c1", site=world.tofte)  # the same card at another site
    world.session.commit()

    stats = st.visit_statistics(world.session, st.select_sites(world.session, None), MAY)

    assert day_totals(stats, "holmen") == {monday: 4}
    assert day_totals(stats, "tofte") == {monday: 1}
    assert hour_totals(stats) == {18: 5}
    assert {s.site: s.visits.total for s in stats.per_site} == {"holmen": 4, "tofte": 1}
    assert len(stats.per_day) == 7 * 2  # every day of every site, zeros included
    only_holmen = st.visit_statistics(world.session, st.select_sites(world.session, "holmen"), MAY)
    assert [s.site for s in only_holmen.per_site] == ["holmen"]


def test_visits_are_meraapent_staffed_or_outside_hours_by_the_schedule_at_that_moment(world: World) -> None:
    monday, saturday = MAY.first, date(2025, 5, 10)
    world.access(oslo(monday, "09:59"), "a")  # meråpent before the staff come
    world.access(oslo(monday, "10:00"), "b")  # staffed from 10:00 sharp
    world.access(oslo(monday, "15:59"), "c")
    world.access(oslo(monday, "16:00"), "d")  # meråpent again
    world.access(oslo(monday, "22:00"), "e", reason=Reason.BOOKING)  # closed: an evening booking
    world.access(oslo(saturday, "12:00"), "f")  # no staff on Saturdays
    world.session.add(
        OpeningException(site=world.holmen, day=date(2025, 5, 7), kind=ExceptionKind.CLOSED, note="Stengt")
    )
    world.access(oslo(date(2025, 5, 7), "12:00"), "g", reason=Reason.BOOKING)  # closed all day
    world.session.commit()

    stats = st.visit_statistics(world.session, st.select_sites(world.session, "holmen"), MAY)

    by_kind = {u.kind: u for u in st.hours_by_kind(stats)}
    assert (by_kind[st.VisitKind.MERAAPENT].visits, by_kind[st.VisitKind.STAFFED].visits) == (3, 2)
    assert by_kind[st.VisitKind.OUTSIDE].visits == 2
    # Open hours: 6 days of 07-22 minus staffed 10-16 on 4 weekdays (Wednesday closed): 6*15 - 4*6
    assert by_kind[st.VisitKind.MERAAPENT].open_hours == 66.0
    assert by_kind[st.VisitKind.STAFFED].open_hours == 24.0
    assert by_kind[st.VisitKind.OUTSIDE].open_hours is None
    assert by_kind[st.VisitKind.MERAAPENT].per_open_hour == pytest.approx(3 / 66)
    monday_row = next(d for d in stats.per_day if d.day == monday)
    assert monday_row.visits == st.VisitCounts(meraapent=2, staffed=2, outside=1)


def test_hours_and_days_are_local_across_both_dst_changes(world: World) -> None:
    spring, autumn = date(2025, 3, 30), date(2025, 10, 26)  # 23 and 25 hours long in Oslo
    utc = UTC
    world.access(datetime(2025, 3, 30, 0, 30, tzinfo=utc), "a")  # 01:30 CET
    world.access(datetime(2025, 3, 30, 1, 30, tzinfo=utc), "b")  # 03:30 CEST: 02:xx never happened
    world.access(datetime(2025, 3, 29, 5, 30, tzinfo=utc), "c")  # 06:30 CET Saturday: before opening
    world.access(datetime(2025, 3, 30, 5, 30, tzinfo=utc), "d")  # 07:30 CEST Sunday: meråpent
    world.access(datetime(2025, 3, 30, 22, 30, tzinfo=utc), "e")  # 00:30 CEST on Monday 31 March
    world.access(datetime(2025, 10, 26, 0, 30, tzinfo=utc), "f")  # 02:30 CEST
    world.access(datetime(2025, 10, 26, 1, 30, tzinfo=utc), "g")  # 02:30 CET, the hour again
    world.access(datetime(2025, 10, 26, 22, 30, tzinfo=utc), "h")  # 23:30 CET, still Sunday
    world.session.commit()
    sites = st.select_sites(world.session, "holmen")

    march = st.visit_statistics(world.session, sites, st.Period(date(2025, 3, 29), date(2025, 4, 1)))
    assert day_totals(march) == {date(2025, 3, 29): 1, spring: 3, date(2025, 3, 31): 1}
    assert hour_totals(march) == {0: 1, 1: 1, 3: 1, 6: 1, 7: 1}
    assert {d.day: d.visits.meraapent for d in march.per_day if d.visits.meraapent} == {spring: 1}

    october = st.visit_statistics(world.session, sites, st.Period(autumn, autumn + timedelta(days=1)))
    assert day_totals(october) == {autumn: 3}
    assert hour_totals(october) == {2: 2, 23: 1}


def test_an_entry_just_before_the_period_joins_the_visit_instead_of_starting_one(world: World) -> None:
    world.access(oslo(MAY.first - timedelta(days=1), "23:50"))
    world.access(oslo(MAY.first, "00:10"))  # the same visit, which began before the period
    world.access(oslo(MAY.first, "00:15"), "c2")
    world.session.commit()
    stats = st.visit_statistics(world.session, st.select_sites(world.session, "holmen"), MAY)
    assert day_totals(stats) == {MAY.first: 1}


def test_pseudonymised_events_count_exactly_as_before(world: World) -> None:
    for day in MAY.dates():
        for n, clock in enumerate(("17:00", "17:20", "18:00", "19:30", "19:45")):
            world.access(oslo(day, clock), f"card-{n // 2}")  # card-0 twice in 20 min
        world.access(oslo(day, "20:00"), "card-9", decision=Decision.DENY, reason=Reason.OUTSIDE_SCHEDULE)
    world.session.commit()
    before = st.statistics(world.session, None, MAY)

    changed = pseudonymise_events(world.session, b"k" * 32)
    world.session.commit()

    assert changed == 7 * 6
    refs = world.session.scalars(select(Event.credential_ref).distinct()).all()
    assert all(ref is not None and ref.startswith("p:") for ref in refs)
    assert st.statistics(world.session, None, MAY) == before
    assert sum(d.visits.total for d in before.visits.per_day) == 7 * 4


def test_occupancy_over_the_evening_assumes_each_visit_stays_an_hour(world: World) -> None:
    monday, tuesday = MAY.first, date(2025, 5, 6)
    for card in ("a", "b"):
        world.access(oslo(monday, "18:05"), card)
    world.access(oslo(monday, "18:40"), "c")
    world.access(oslo(tuesday, "18:00"), "a")
    world.access(oslo(monday, "18:05"), "t", site=world.tofte)
    world.session.commit()

    stats = st.visit_statistics(world.session, st.select_sites(world.session, None), MAY)

    holmen = {o.at: o for o in stats.occupancy if o.site == "holmen"}
    levels = {at.strftime("%H:%M"): (o.peak, round(o.average, 3)) for at, o in holmen.items() if o.peak}
    assert levels == {
        "18:00": (2, round(3 / 7, 3)),
        "18:15": (2, round(3 / 7, 3)),
        "18:30": (3, round(4 / 7, 3)),
        "18:45": (3, round(4 / 7, 3)),
        "19:00": (1, round(1 / 7, 3)),
        "19:15": (1, round(1 / 7, 3)),
    }
    together = {o.at.strftime("%H:%M"): o.peak for o in stats.occupancy_total if o.peak}
    assert together["18:00"] == 3 and together["19:15"] == 1 and "19:30" not in together
    assert len(stats.occupancy_total) == 96


def test_rooms_show_booked_and_used_hours_check_ins_no_shows_and_cancellations(world: World) -> None:
    room = "holmen-moterom"
    world.booking(room, oslo(MAY.first, "18:00"), 2, BookingStatus.COMPLETED, checked_in=True)
    world.booking(room, oslo(date(2025, 5, 6), "18:00"), 1.5, BookingStatus.CHECKED_IN, checked_in=True)
    world.booking(room, oslo(date(2025, 5, 7), "18:00"), 1, BookingStatus.NO_SHOW, checked_in=False)
    world.booking(room, oslo(date(2025, 5, 8), "18:00"), 3, BookingStatus.CANCELLED, checked_in=False)
    world.booking(room, oslo(date(2025, 5, 9), "18:00"), 1, BookingStatus.CONFIRMED, checked_in=False)
    world.booking(room, oslo(MAY.end, "18:00"), 1, BookingStatus.CONFIRMED, checked_in=False)  # after
    world.session.commit()

    rooms = st.room_use(world.session, st.select_sites(world.session, None), MAY)

    use = {r.room: r for r in rooms}
    assert use[room] == st.RoomUse(
        site="holmen",
        room=room,
        room_name="=Møterom 1",
        bookings=4,
        booked_hours=5.5,
        checked_in=2,
        used_hours=3.5,
        no_shows=1,
        cancelled=1,
    )
    assert use[room].no_show_share == pytest.approx(1 / 3)
    assert use["tofte-moterom"].bookings == 0 and use["tofte-moterom"].no_show_share is None


def test_denials_are_counted_by_reason_at_every_door_and_said_in_words(world: World) -> None:
    deny = Decision.DENY
    for _ in range(3):
        world.access(oslo(MAY.first, "20:00"), "x", decision=deny, reason=Reason.WRONG_PIN)
    world.access(oslo(MAY.first, "20:01"), "x", door="moterom", decision=deny, reason=Reason.NO_BOOKING)
    world.access(oslo(MAY.first, "20:02"), "y", site=world.tofte, decision=deny, reason=Reason.WRONG_PIN)
    world.access(oslo(MAY.end, "20:02"), "y", decision=deny, reason=Reason.WRONG_PIN)  # after the period
    world.session.commit()
    sites = st.select_sites(world.session, None)

    rows = st.denials(world.session, sites, MAY, "nb")
    english = st.denials(world.session, sites, MAY, "en")

    assert [(d.site, d.reason, d.count) for d in rows] == [
        ("holmen", "wrong_pin", 3),
        ("holmen", "no_booking", 1),
        ("tofte", "wrong_pin", 1),
    ]
    assert (rows[0].words, english[0].words) == ("Feil PIN-kode.", "Wrong PIN.")
    assert [(d.reason, d.count) for d in st.denials_by_reason(rows)] == [("wrong_pin", 4), ("no_booking", 1)]


def test_bad_periods_and_unknown_sites_are_refused_in_one_line(world: World) -> None:
    today = date(2025, 5, 20)
    assert st.parse_period(None, None, today) == st.Period(date(2025, 4, 21), date(2025, 5, 21))
    assert st.parse_period("2025-05-01", None, today) == st.Period(date(2025, 5, 1), date(2025, 5, 31))
    assert st.parse_period(None, "2025-05-31", today).days == 30
    cases = {
        ("2025-05-10", "2025-05-01"): "to (2025-05-01) must be after from (2025-05-10)",
        ("2025-05-10", "2025-05-10"): "must be after from",
        ("2024-01-01", "2025-05-01"): "the period is 486 days long; at most 366 days",
        ("2025-02-30", None): "from: '2025-02-30' is not a date like 2025-05-01",
        ("1.5.2025", None): "from: '1.5.2025' is not a date",
        (None, "20250501"): "to: '20250501' is not a date",
    }
    for (first, end), message in cases.items():
        with pytest.raises(InvalidError, match=re.escape(message)) as caught:
            st.parse_period(first, end, today)
        assert "\n" not in str(caught.value)
    with pytest.raises(InvalidError, match="site 'nowhere' does not exist"):
        st.select_sites(world.session, "nowhere")


def read_csv(file: st.CsvFile) -> list[list[str]]:
    text = file.content.decode("utf-8")
    assert text.startswith("\ufeff") and "\r\n" in text
    return list(csv.reader(io.StringIO(text[1:]), delimiter=";"))


def test_csv_files_open_in_norwegian_excel_with_semicolons_decimal_commas_and_a_bom(world: World) -> None:
    world.access(oslo(MAY.first, "18:00"))
    world.booking("holmen-moterom", oslo(MAY.first, "18:00"), 1.5, BookingStatus.NO_SHOW, checked_in=False)
    world.session.commit()

    per_day = st.csv_export(world.session, "visits-per-day", "holmen", MAY)
    rooms = st.csv_export(world.session, "rooms", None, MAY, "en")

    assert per_day.filename == "meraapent-visits-per-day-holmen-2025-05-05-2025-05-11.csv"
    rows = read_csv(per_day)
    assert rows[0] == ["Dato", "Sted", "Besøk", "Meråpent", "Betjent", "Utenfor åpningstid"]
    assert rows[1] == ["2025-05-05", "Holmen", "1", "1", "0", "0"] and len(rows) == 1 + 7
    assert rooms.filename == "meraapent-rooms-all-sites-2025-05-05-2025-05-11.csv"
    room_rows = read_csv(rooms)
    assert room_rows[0][:3] == ["Site", "Room", "Bookings"]
    assert room_rows[1] == ["Holmen", "'=Møterom 1", "1", "1,50", "0", "0,00", "1", "0", "1,00"]
    with pytest.raises(InvalidError, match="no statistics table 'visits'; there are: visits-per-day, visits"):
        st.csv_export(world.session, "visits", None, MAY)
