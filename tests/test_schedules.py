"""Opening hours decided in Europe/Oslo: weekdays, DST, holidays, exceptions, next change."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from central.schedules import (
    DayException,
    ExceptionKind,
    HoursKind,
    ScheduleChange,
    ScheduleError,
    SiteSchedule,
    WeeklyHours,
    norwegian_holiday,
)

OSLO = ZoneInfo("Europe/Oslo")


def oslo(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=OSLO)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def week(
    weekdays: tuple[str, str], weekend: tuple[str, str], staffed: tuple[str, str] | None = None
) -> list[WeeklyHours]:
    rows = [
        WeeklyHours(d, time.fromisoformat(weekdays[0]), time.fromisoformat(weekdays[1])) for d in range(5)
    ]
    rows += [WeeklyHours(d, time.fromisoformat(weekend[0]), time.fromisoformat(weekend[1])) for d in (5, 6)]
    if staffed:
        rows += [
            WeeklyHours(d, time.fromisoformat(staffed[0]), time.fromisoformat(staffed[1]), HoursKind.STAFFED)
            for d in range(5)
        ]
    return rows


ASKER = SiteSchedule(hours=tuple(week(("07:00", "22:00"), ("09:00", "20:00"), ("10:00", "16:00"))))


def test_open_exactly_within_weekday_hours() -> None:
    tuesday = (2025, 3, 4)
    assert not ASKER.is_open(oslo(*tuesday, 6, 59, 59))
    assert ASKER.is_open(oslo(*tuesday, 7, 0))
    assert ASKER.is_open(oslo(*tuesday, 21, 59, 59))
    assert not ASKER.is_open(oslo(*tuesday, 22, 0))
    assert ASKER.is_open(oslo(*tuesday, 12), HoursKind.STAFFED)
    assert not ASKER.is_open(oslo(*tuesday, 17), "staffed")
    assert not ASKER.is_open(oslo(2025, 3, 8, 12), HoursKind.STAFFED)  # Saturday: no staff


def test_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        ASKER.is_open(datetime(2025, 3, 4, 12))


def test_spring_forward_day_keeps_local_wall_clock_hours() -> None:
    # Sunday 30 March 2025: clocks go 02:00 CET -> 03:00 CEST. Saturday is still UTC+1.
    assert ASKER.open_intervals(date(2025, 3, 29)) == [(utc(2025, 3, 29, 8), utc(2025, 3, 29, 19))]
    assert ASKER.open_intervals(date(2025, 3, 30)) == [(utc(2025, 3, 30, 7), utc(2025, 3, 30, 18))]
    assert ASKER.is_open(utc(2025, 3, 30, 7, 0)) and not ASKER.is_open(utc(2025, 3, 30, 6, 59))


def test_fall_back_day_keeps_local_wall_clock_hours() -> None:
    # Sunday 26 October 2025: clocks go 03:00 CEST -> 02:00 CET.
    assert ASKER.open_intervals(date(2025, 10, 25)) == [(utc(2025, 10, 25, 7), utc(2025, 10, 25, 18))]
    assert ASKER.open_intervals(date(2025, 10, 26)) == [(utc(2025, 10, 26, 8), utc(2025, 10, 26, 19))]


def test_night_hours_over_the_clock_change_have_the_real_length() -> None:
    night = SiteSchedule(hours=(WeeklyHours(6, time(1), time(4)),))
    [(start, end)] = night.open_intervals(date(2025, 10, 26))
    assert end - start == timedelta(hours=4)  # 02:00-03:00 happens twice
    [(start, end)] = night.open_intervals(date(2025, 3, 30))
    assert end - start == timedelta(hours=2)  # 02:00-03:00 does not exist


@pytest.mark.parametrize(
    ("day", "name"),
    [
        (date(2025, 5, 17), "Grunnlovsdag"),
        (date(2025, 12, 24), "Julaften"),
        (date(2025, 12, 31), "Nyttårsaften"),
        (date(2025, 4, 17), "Skjærtorsdag"),
        (date(2025, 4, 18), "Langfredag"),
        (date(2025, 4, 20), "Første påskedag"),
        (date(2025, 4, 21), "Andre påskedag"),
        (date(2025, 12, 25), "Første juledag"),
    ],
)
def test_closed_on_holidays_and_eves(day: date, name: str) -> None:
    assert ASKER.open_intervals(day) == []
    assert not ASKER.is_open(datetime.combine(day, time(12), tzinfo=OSLO))
    assert (ASKER.closed_reason(day) or "").lower() == name.lower()


def test_easter_saturday_and_ordinary_sundays_are_open() -> None:
    assert ASKER.is_open(oslo(2025, 4, 19, 12))  # påskeaften is not a public holiday
    assert ASKER.is_open(oslo(2025, 3, 9, 12))  # an ordinary Sunday
    assert norwegian_holiday(date(2025, 3, 9)) is None


def test_site_that_stays_open_on_holidays() -> None:
    open_always = SiteSchedule(hours=ASKER.hours, closed_on_public_holidays=False)
    assert open_always.is_open(oslo(2025, 5, 17, 12))
    assert open_always.is_open(oslo(2025, 12, 24, 12))
    assert open_always.closed_reason(date(2025, 5, 17)) is None


def test_closed_exception_closes_both_kinds_with_its_note() -> None:
    wednesday = date(2025, 3, 5)
    schedule = SiteSchedule(
        hours=ASKER.hours, exceptions=(DayException(wednesday, ExceptionKind.CLOSED, note="Vannlekkasje"),)
    )
    assert schedule.open_intervals(wednesday) == []
    assert schedule.open_intervals(wednesday, HoursKind.STAFFED) == []
    assert schedule.closed_reason(wednesday) == "Vannlekkasje"
    assert schedule.is_open(oslo(2025, 3, 6, 12))  # the day after is normal


def test_special_hours_replace_the_week_and_beat_a_holiday() -> None:
    schedule = SiteSchedule(
        hours=ASKER.hours,
        exceptions=(
            DayException(date(2025, 12, 24), ExceptionKind.SPECIAL_HOURS, time(9), time(13)),
            DayException(date(2025, 3, 5), ExceptionKind.SPECIAL_HOURS, time(12), time(14)),
        ),
    )
    assert schedule.open_intervals(date(2025, 12, 24)) == [(utc(2025, 12, 24, 8), utc(2025, 12, 24, 12))]
    assert schedule.open_intervals(date(2025, 12, 24), HoursKind.STAFFED) == []
    assert schedule.is_open(oslo(2025, 3, 5, 12, 30))
    assert not schedule.is_open(oslo(2025, 3, 5, 8))
    assert schedule.is_open(oslo(2025, 3, 5, 11), HoursKind.STAFFED)  # staffed hours untouched


def test_several_intervals_a_day_merge_when_they_touch() -> None:
    split = SiteSchedule(
        hours=(
            WeeklyHours(0, time(7), time(12)),
            WeeklyHours(0, time(12), time(15)),
            WeeklyHours(0, time(17), time(22)),
        )
    )
    monday = date(2025, 3, 3)
    assert split.open_intervals(monday) == [
        (utc(2025, 3, 3, 6), utc(2025, 3, 3, 14)),
        (utc(2025, 3, 3, 16), utc(2025, 3, 3, 21)),
    ]
    assert not split.is_open(oslo(2025, 3, 3, 16))
    assert split.next_change(oslo(2025, 3, 3, 10)) == ScheduleChange(utc(2025, 3, 3, 14), opens=False)


def test_next_change_closes_tonight_or_opens_tomorrow() -> None:
    assert ASKER.next_change(oslo(2025, 3, 4, 12)) == ScheduleChange(utc(2025, 3, 4, 21), opens=False)
    assert ASKER.next_change(oslo(2025, 3, 7, 22, 30)) == ScheduleChange(utc(2025, 3, 8, 8), opens=True)
    at_closing = oslo(2025, 3, 4, 22)
    assert ASKER.next_change(at_closing) == ScheduleChange(utc(2025, 3, 5, 6), opens=True)


def test_next_change_skips_the_easter_holidays() -> None:
    # Wednesday evening before Easter: Thursday and Friday are holidays, Saturday opens at 09:00 CEST.
    assert ASKER.next_change(oslo(2025, 4, 16, 23)) == ScheduleChange(utc(2025, 4, 19, 7), opens=True)


def test_open_until_midnight_runs_into_the_next_day() -> None:
    late = SiteSchedule(hours=(WeeklyHours(4, time(18), time(0)), WeeklyHours(5, time(0), time(2))))
    assert late.is_open(oslo(2025, 3, 7, 23, 59))
    assert late.is_open(oslo(2025, 3, 8, 0, 30))
    assert late.next_change(oslo(2025, 3, 7, 20)) == ScheduleChange(
        oslo(2025, 3, 8, 2).astimezone(UTC), False
    )


def test_next_change_is_none_without_any_hours() -> None:
    assert SiteSchedule().next_change(oslo(2025, 3, 4, 12)) is None


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: WeeklyHours(7, time(8), time(9)), "weekday must be 0"),
        (lambda: WeeklyHours(0, time(22), time(7)), "not after opens"),
        (lambda: WeeklyHours(0, time(8), time(8)), "not after opens"),
        (lambda: WeeklyHours(0, time(8, tzinfo=UTC), time(9)), "without a timezone"),
        (
            lambda: DayException(date(2025, 1, 2), ExceptionKind.SPECIAL_HOURS, time(9)),
            "both opens and closes",
        ),
        (lambda: SiteSchedule(timezone="Europe/Asker"), "unknown timezone"),
    ],
)
def test_nonsense_hours_are_refused(make: object, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        make()  # type: ignore[operator]


def test_from_rows_accepts_database_shaped_objects() -> None:
    site = SimpleNamespace(timezone="Europe/Oslo", closed_on_public_holidays=True)
    hours = [SimpleNamespace(weekday=1, opens=time(7), closes=time(22), kind="meraapent")]
    exceptions = [
        SimpleNamespace(
            day=date(2025, 3, 11), kind="closed", opens=None, closes=None, hours_kind="meraapent", note="Kurs"
        )
    ]
    schedule = SiteSchedule.from_rows(site, hours, exceptions)
    assert schedule.is_open(oslo(2025, 3, 4, 12))
    assert not schedule.is_open(oslo(2025, 3, 11, 12))


instants = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=150, deadline=None)
@given(at=instants)
def test_is_open_and_next_change_agree(at: datetime) -> None:
    change = ASKER.next_change(at)
    assert change is not None and change.at > at
    now_open = ASKER.is_open(at)
    assert change.opens is not now_open
    assert ASKER.is_open(change.at) is change.opens
    assert ASKER.is_open(change.at - timedelta(microseconds=1)) is now_open
