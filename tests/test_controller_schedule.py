"""The agent's opening hours: weekly hours, exceptions, holidays, DST, midnight; agreement with central."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from central.schedules import CLOSED_EVES, DayException, SiteSchedule, WeeklyHours, norwegian_holiday
from central.schedules import ExceptionKind as CentralExceptionKind
from central.schedules import HoursKind as CentralHoursKind
from controller.schedule import END_OF_DAY, Opening, ScheduleConfigError, SiteCalendar
from protocol import messages as m

OSLO = ZoneInfo("Europe/Oslo")
MERAAPENT, STAFFED = m.HoursKind.MERAAPENT, m.HoursKind.STAFFED
WEEKDAYS, WEEKEND = range(5), (5, 6)


def oslo(text: str) -> datetime:
    """A local Oslo wall-clock time as aware UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=OSLO).astimezone(UTC)


def hours(
    days: range | tuple[int, ...], opens: str, closes: str, kind: m.HoursKind = MERAAPENT
) -> list[m.Hours]:
    return [m.Hours(weekday=d, opens=time.fromisoformat(opens), closes=_end(closes), kind=kind) for d in days]


def _end(text: str) -> time:
    """ "24:00" as central sends it on the wire."""
    return END_OF_DAY if text == "24:00" else time.fromisoformat(text)


HEGGEDAL_HOURS = (
    hours(WEEKDAYS, "07:00", "21:00")
    + hours(WEEKEND, "10:00", "18:00")
    + hours(WEEKDAYS, "10:00", "15:00", STAFFED)
)
HEGGEDAL_EXCEPTIONS = [
    m.HoursException(day=date(2026, 11, 27), kind=m.ExceptionKind.CLOSED, note="Stengt for maling"),
    m.HoursException(
        day=date(2026, 11, 28),
        kind=m.ExceptionKind.SPECIAL_HOURS,
        opens=time(12),
        closes=time(16),
        note="Julemarked",
    ),
]
HEGGEDAL_HOLIDAYS = [
    date(2026, 12, 24),
    date(2026, 12, 25),
    date(2026, 12, 26),
    date(2026, 12, 31),
    date(2027, 1, 1),
]


def heggedal_config(**changes: Any) -> m.SiteConfig:
    """Heggedal innbyggertorg as central would send it (seed hours: weekdays 07-21, weekends 10-18)."""
    fields: dict[str, Any] = {
        "site": "heggedal",
        "name": "Heggedal innbyggertorg",
        "revision": 7,
        "issued_at": datetime(2026, 11, 1, tzinfo=UTC),
        "zones": [
            m.Zone(slug="torg", name="Torget"),
            m.Zone(slug="bibliotek", name="Biblioteket"),
            m.Zone(slug="moterom", name="Møterommene"),
        ],
        "doors": [
            m.Door(slug="hovedinngang", name="Hovedinngang", zone="torg", kind=m.DoorKind.ENTRANCE),
            m.Door(slug="bibliotek", name="Biblioteket", zone="bibliotek", kind=m.DoorKind.INTERNAL),
            m.Door(slug="motegang", name="Gang til møterommene", zone="moterom", kind=m.DoorKind.INTERNAL),
            m.Door(slug="moterom-1", name="Møterom 1", zone="moterom", kind=m.DoorKind.ROOM),
        ],
        "rooms": [
            m.Room(slug="moterom-1", name="Møterom 1", zone="moterom", door="moterom-1", capacity=12),
            m.Room(slug="grupperom", name="Grupperom", zone="moterom", capacity=6),
        ],
        "hours": HEGGEDAL_HOURS,
        "exceptions": HEGGEDAL_EXCEPTIONS,
        "public_holidays": HEGGEDAL_HOLIDAYS,
        "groups": [
            m.AccessGroup(slug="innbyggere", zones=["bibliotek", "torg"]),
            m.AccessGroup(
                slug="ungdom",
                zones=["bibliotek", "torg"],
                intervals=[m.Interval(weekday=d, starts=time(14), ends=time(20)) for d in WEEKDAYS],
            ),
            m.AccessGroup(slug="vaktmestere", zones=["bibliotek", "moterom", "torg"], any_time=True),
            m.AccessGroup(slug="ansatte", zones=["bibliotek", "moterom", "torg"], any_time=True),
        ],
    }
    fields.update(changes)
    return m.SiteConfig(**fields)


@pytest.fixture(scope="module")
def heggedal() -> SiteCalendar:
    return SiteCalendar.from_config(heggedal_config())


def test_a_monday_at_noon_is_staffed_inside_the_meraapent_day(heggedal: SiteCalendar) -> None:
    opening = heggedal.opening(oslo("2026-11-23T12:00"))
    assert opening == Opening(STAFFED, oslo("2026-11-23T07:00"), oslo("2026-11-23T21:00"))


def test_a_monday_afternoon_after_the_staff_left_is_meraapent(heggedal: SiteCalendar) -> None:
    opening = heggedal.opening(oslo("2026-11-23T16:30"))
    assert opening is not None and opening.kind is MERAAPENT
    assert opening.closes_at == oslo("2026-11-23T21:00")


def test_hours_are_half_open(heggedal: SiteCalendar) -> None:
    assert heggedal.is_open(oslo("2026-11-23T07:00"))
    assert not heggedal.is_open(oslo("2026-11-23T06:59:59"))
    assert heggedal.is_open(oslo("2026-11-23T20:59:59"))
    assert not heggedal.is_open(oslo("2026-11-23T21:00"))


def test_sunday_evening_at_heggedal_is_closed_until_monday_morning(heggedal: SiteCalendar) -> None:
    sunday_evening = oslo("2026-11-22T19:30")
    assert not heggedal.is_open(sunday_evening)
    assert heggedal.opening(sunday_evening) is None
    assert heggedal.next_opening(sunday_evening) == oslo("2026-11-23T07:00")


def test_while_open_the_next_opening_is_the_next_day(heggedal: SiteCalendar) -> None:
    assert heggedal.next_opening(oslo("2026-11-23T12:00")) == oslo("2026-11-24T07:00")


def test_christmas_is_closed_and_the_site_reopens_on_the_sunday(heggedal: SiteCalendar) -> None:
    christmas_day = oslo("2026-12-25T12:00")
    assert not heggedal.is_open(christmas_day)
    assert not heggedal.is_open(oslo("2026-12-24T12:00"))  # Christmas Eve: central sends it as closed
    assert heggedal.next_opening(christmas_day) == oslo("2026-12-27T10:00")


def test_holidays_count_only_when_the_site_closes_on_them() -> None:
    calendar = SiteCalendar.from_config(heggedal_config(closed_on_public_holidays=False))
    assert calendar.is_open(oslo("2026-12-25T12:00"))


def test_a_closed_exception_closes_the_whole_day_staffed_hours_too(heggedal: SiteCalendar) -> None:
    assert not heggedal.is_open(oslo("2026-11-27T12:00"))
    assert heggedal.next_opening(oslo("2026-11-27T08:00")) == oslo("2026-11-28T12:00")


def test_special_hours_replace_the_days_weekly_hours(heggedal: SiteCalendar) -> None:
    assert not heggedal.is_open(oslo("2026-11-28T11:00"))  # a Saturday normally open from 10
    assert heggedal.opening(oslo("2026-11-28T13:00")) == Opening(
        MERAAPENT, oslo("2026-11-28T12:00"), oslo("2026-11-28T16:00")
    )
    assert not heggedal.is_open(oslo("2026-11-28T17:00"))


def test_special_meraapent_hours_leave_staffed_hours_as_central_does() -> None:
    exception = m.HoursException(
        day=date(2026, 11, 23), kind=m.ExceptionKind.SPECIAL_HOURS, opens=time(8), closes=time(12)
    )
    calendar = SiteCalendar.from_config(heggedal_config(exceptions=[exception]))
    assert calendar.opening(oslo("2026-11-23T14:00")) == Opening(
        STAFFED, oslo("2026-11-23T08:00"), oslo("2026-11-23T15:00")
    )
    assert not calendar.is_open(oslo("2026-11-23T16:00"))


def test_special_hours_open_a_public_holiday() -> None:
    exception = m.HoursException(
        day=date(2026, 12, 26), kind=m.ExceptionKind.SPECIAL_HOURS, opens=time(12), closes=time(15)
    )
    calendar = SiteCalendar.from_config(heggedal_config(exceptions=[exception]))
    assert calendar.is_open(oslo("2026-12-26T13:00"))


def test_the_spring_dst_sunday_uses_summer_time(heggedal: SiteCalendar) -> None:
    # 29 March 2026: clocks go from 02:00 to 03:00; weekend hours 10-18 are 08:00-16:00 UTC that day.
    opening = heggedal.opening(datetime(2026, 3, 29, 9, 0, tzinfo=UTC))
    assert opening == Opening(
        MERAAPENT, datetime(2026, 3, 29, 8, 0, tzinfo=UTC), datetime(2026, 3, 29, 16, 0, tzinfo=UTC)
    )
    assert not heggedal.is_open(datetime(2026, 3, 29, 16, 30, tzinfo=UTC))  # 18:30 local
    assert heggedal.opening(
        datetime(2026, 3, 28, 9, 30, tzinfo=UTC)
    ) == Opening(  # the Saturday before: +01:00
        MERAAPENT, datetime(2026, 3, 28, 9, 0, tzinfo=UTC), datetime(2026, 3, 28, 17, 0, tzinfo=UTC)
    )


def test_a_whole_day_on_the_autumn_dst_sunday_lasts_25_hours() -> None:
    calendar = SiteCalendar.from_config(heggedal_config(hours=hours((6,), "00:00", "24:00"), exceptions=[]))
    opening = calendar.opening(datetime(2026, 10, 25, 12, tzinfo=UTC))
    assert opening is not None
    assert opening.opens_at == datetime(2026, 10, 24, 22, tzinfo=UTC)
    assert opening.closes_at == datetime(2026, 10, 25, 23, tzinfo=UTC)
    assert opening.closes_at - opening.opens_at == timedelta(hours=25)


def test_closing_at_midnight_is_the_end_of_the_day_and_joins_the_night_after() -> None:
    late = hours((4,), "07:00", "24:00") + hours((5,), "00:00", "02:00") + hours((5,), "10:00", "18:00")
    calendar = SiteCalendar.from_config(heggedal_config(hours=late, exceptions=[]))
    friday_late = oslo("2026-11-20T23:30")
    assert calendar.opening(friday_late) == Opening(
        MERAAPENT, oslo("2026-11-20T07:00"), oslo("2026-11-21T02:00")
    )
    assert calendar.is_open(oslo("2026-11-20T23:59:59.999999"))
    assert calendar.is_open(oslo("2026-11-21T00:00"))
    assert not calendar.is_open(oslo("2026-11-21T02:00"))


def test_friday_until_midnight_then_closed_closes_at_midnight() -> None:
    calendar = SiteCalendar.from_config(heggedal_config(hours=hours((4,), "07:00", "24:00"), exceptions=[]))
    opening = calendar.opening(oslo("2026-11-20T23:59:59"))
    assert opening is not None and opening.closes_at == oslo("2026-11-21T00:00")
    assert not calendar.is_open(oslo("2026-11-21T00:00"))


def test_a_site_open_round_the_clock_closes_at_its_next_closed_day() -> None:
    always = hours(range(7), "00:00", "24:00")
    closed = m.HoursException(day=date(2026, 12, 3), kind=m.ExceptionKind.CLOSED)
    calendar = SiteCalendar.from_config(
        heggedal_config(hours=always, exceptions=[closed], public_holidays=[])
    )
    opening = calendar.opening(oslo("2026-11-23T12:00"))
    assert opening is not None and opening.closes_at == oslo("2026-12-03T00:00")
    assert calendar.next_opening(oslo("2026-11-23T12:00")) == oslo("2026-12-04T00:00")


def test_no_hours_means_never_open() -> None:
    calendar = SiteCalendar.from_config(heggedal_config(hours=[], exceptions=[]))
    assert not calendar.is_open(oslo("2026-11-23T12:00"))
    assert calendar.next_opening(oslo("2026-11-23T12:00")) is None


def test_next_opening_looks_two_weeks_ahead_only() -> None:
    # Three Mondays closed by exception: the next opening is three weeks away, past the horizon.
    closed = [
        m.HoursException(day=date(2026, 11, 23) + timedelta(weeks=n), kind=m.ExceptionKind.CLOSED)
        for n in range(3)
    ]
    calendar = SiteCalendar.from_config(
        heggedal_config(hours=hours((0,), "07:00", "21:00"), exceptions=closed)
    )
    assert calendar.next_opening(oslo("2026-11-22T12:00")) is None
    assert calendar.next_opening(oslo("2026-12-07T22:00")) == oslo("2026-12-14T07:00")


def _group(config: m.SiteConfig, slug: str) -> m.AccessGroup:
    return next(g for g in config.groups if g.slug == slug)


def test_group_intervals_are_local_weekday_times(heggedal: SiteCalendar) -> None:
    ungdom = _group(heggedal_config(), "ungdom")
    assert not heggedal.group_allows(ungdom, oslo("2026-11-23T13:00"))  # open, before the interval
    assert heggedal.group_allows(ungdom, oslo("2026-11-23T14:00"))
    assert not heggedal.group_allows(ungdom, oslo("2026-11-23T20:30"))  # open until 21, interval ends at 20
    assert not heggedal.group_allows(ungdom, oslo("2026-11-22T12:00"))  # Sunday: open, no interval


def test_a_group_without_intervals_follows_the_opening_hours(heggedal: SiteCalendar) -> None:
    innbyggere = _group(heggedal_config(), "innbyggere")
    assert heggedal.group_allows(innbyggere, oslo("2026-11-22T12:00"))
    assert not heggedal.group_allows(innbyggere, oslo("2026-11-22T19:30"))


def test_an_any_time_group_is_allowed_at_three_in_the_night(heggedal: SiteCalendar) -> None:
    vaktmestere = _group(heggedal_config(), "vaktmestere")
    assert heggedal.group_allows(vaktmestere, oslo("2026-12-25T03:00"))


def test_a_group_interval_until_midnight_includes_the_last_microsecond() -> None:
    night = m.AccessGroup(
        slug="natt", zones=["torg"], intervals=[m.Interval(weekday=4, starts=time(20), ends=END_OF_DAY)]
    )
    calendar = SiteCalendar.from_config(heggedal_config(hours=hours((4,), "07:00", "24:00"), exceptions=[]))
    assert calendar.group_allows(night, oslo("2026-11-20T23:59:59.999999"))
    assert not calendar.group_allows(night, oslo("2026-11-20T19:59"))


def test_an_unknown_timezone_is_a_clear_config_error() -> None:
    with pytest.raises(ScheduleConfigError, match="unknown timezone 'Europe/Atlantis'"):
        SiteCalendar.from_config(heggedal_config(timezone="Europe/Atlantis"))


def test_special_hours_without_times_are_a_clear_config_error() -> None:
    broken = m.HoursException(day=date(2026, 11, 28), kind=m.ExceptionKind.SPECIAL_HOURS, opens=time(12))
    with pytest.raises(ScheduleConfigError, match="special hours on 2026-11-28"):
        SiteCalendar.from_config(heggedal_config(exceptions=[broken]))


def test_a_naive_time_is_refused(heggedal: SiteCalendar) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        heggedal.is_open(datetime(2026, 11, 23, 12))


# --- the agent agrees with central on every instant ------------------------------------------------------

_FIRST_DAY = date(2026, 1, 1)
_DAYS = 730
_CLOSED_DAYS = [
    d
    for d in (_FIRST_DAY + timedelta(days=n) for n in range(_DAYS + 10))
    if norwegian_holiday(d) or (d.month, d.day) in CLOSED_EVES
]
_quarter_hours = st.integers(0, 95).map(lambda q: time(q // 4, 15 * (q % 4)))


@st.composite
def _weekly(draw: st.DrawFn) -> tuple[int, time, time, m.HoursKind]:
    opens = draw(_quarter_hours)
    later = [t for t in (time(h, mi) for h in range(24) for mi in (0, 15, 30, 45)) if t > opens]
    closes = draw(st.sampled_from([*later, time(0)]))  # 00:00 = until midnight, central's way
    return draw(st.integers(0, 6)), opens, closes, draw(st.sampled_from(list(m.HoursKind)))


@st.composite
def _exception(draw: st.DrawFn) -> tuple[date, bool, time, time]:
    day = _FIRST_DAY + timedelta(days=draw(st.integers(0, _DAYS)))
    opens = draw(_quarter_hours)
    closes = draw(st.sampled_from([t for t in (time(h) for h in range(24)) if t > opens] + [time(0)]))
    return day, draw(st.booleans()), opens, closes


@settings(max_examples=150, deadline=None)
@given(
    weekly=st.lists(_weekly(), max_size=8),
    exceptions=st.lists(_exception(), max_size=4, unique_by=lambda e: e[0]),
    holidays_closed=st.booleans(),
    instants=st.lists(st.integers(0, _DAYS * 24 * 60), min_size=1, max_size=20),
)
def test_the_agent_and_central_agree_whether_the_site_is_open(
    weekly: list[tuple[int, time, time, m.HoursKind]],
    exceptions: list[tuple[date, bool, time, time]],
    holidays_closed: bool,
    instants: list[int],
) -> None:
    central = SiteSchedule(
        hours=tuple(WeeklyHours(d, o, c, CentralHoursKind(k.value)) for d, o, c, k in weekly),
        exceptions=tuple(
            DayException(day, CentralExceptionKind.CLOSED)
            if closed
            else DayException(day, CentralExceptionKind.SPECIAL_HOURS, o, c)
            for day, closed, o, c in exceptions
        ),
        closed_on_public_holidays=holidays_closed,
    )
    wire_end = {time(0): END_OF_DAY}
    config = heggedal_config(
        hours=[m.Hours(weekday=d, opens=o, closes=wire_end.get(c, c), kind=k) for d, o, c, k in weekly],
        exceptions=[
            m.HoursException(day=day, kind=m.ExceptionKind.CLOSED)
            if closed
            else m.HoursException(
                day=day, kind=m.ExceptionKind.SPECIAL_HOURS, opens=o, closes=wire_end.get(c, c)
            )
            for day, closed, o, c in exceptions
        ],
        closed_on_public_holidays=holidays_closed,
        public_holidays=_CLOSED_DAYS if holidays_closed else [],
    )
    agent = SiteCalendar.from_config(config)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for minutes in instants:
        at = start + timedelta(minutes=minutes)
        expected = central.is_open(at, CentralHoursKind.MERAAPENT) or central.is_open(
            at, CentralHoursKind.STAFFED
        )
        assert agent.is_open(at) is expected, at
        opening = agent.opening(at)
        assert (opening is not None) is expected
        if opening is not None:
            assert opening.opens_at <= at < opening.closes_at
            assert agent.is_open(opening.closes_at - timedelta(microseconds=1))
        if opening is None:
            changes = (central.next_change(at, kind, horizon_days=14) for kind in CentralHoursKind)
            found = [c.at for c in changes if c is not None]
            if found and min(found) - at <= timedelta(days=13):
                assert agent.next_opening(at) == min(found)
