"""When is a site open? Pure schedule arithmetic, decided in the site's local time (Europe/Oslo).

Inputs are plain dataclasses (not ORM rows) so the same logic can run anywhere, e.g. on a site controller.
All datetimes going in and out are timezone-aware; results are UTC. Rules for one local day and one kind of
hours (meråpent or staffed), first match wins:

1. a `closed` exception for the day: closed all day (both kinds);
2. `special_hours` exceptions for the day and kind: exactly those intervals;
3. a Norwegian public holiday, or Christmas Eve / New Year's Eve, when the site closes on holidays: closed;
4. the weekly hours for that weekday and kind (several intervals per day allowed; overlaps merge).

An interval closing at 00:00 means "until midnight at the end of the day". Intervals are half-open
[opens, closes), so a door that opens at 07:00 is open at 07:00:00 and closed at 22:00:00.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

DEFAULT_TIMEZONE = "Europe/Oslo"
MIDNIGHT = time(0)
# Not public holidays by law, but Norwegian libraries and service centres close on them in practice.
CLOSED_EVES: dict[tuple[int, int], str] = {(12, 24): "Julaften", (12, 31): "Nyttårsaften"}

Interval = tuple[datetime, datetime]


class HoursKind(StrEnum):
    """Meråpent: self-service without staff. Staffed: the ordinary opening hours with staff present."""

    MERAAPENT = "meraapent"
    STAFFED = "staffed"


class ExceptionKind(StrEnum):
    CLOSED = "closed"
    SPECIAL_HOURS = "special_hours"


class ScheduleError(ValueError):
    """Opening hours that make no sense (closing before opening, weekday out of range...)."""


def _check_interval(opens: time, closes: time, what: str) -> None:
    if opens.tzinfo is not None or closes.tzinfo is not None:
        raise ScheduleError(f"{what}: give local wall-clock times without a timezone")
    if closes != MIDNIGHT and closes <= opens:
        raise ScheduleError(f"{what}: closes {closes:%H:%M} is not after opens {opens:%H:%M}")


@dataclass(frozen=True)
class WeeklyHours:
    """One opening interval on a weekday (0 = Monday ... 6 = Sunday), local wall-clock time."""

    weekday: int
    opens: time
    closes: time
    kind: HoursKind = HoursKind.MERAAPENT

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise ScheduleError(f"weekday must be 0 (Monday) to 6 (Sunday), got {self.weekday}")
        object.__setattr__(self, "kind", HoursKind(self.kind))
        _check_interval(self.opens, self.closes, f"weekday {self.weekday}")


@dataclass(frozen=True)
class DayException:
    """A date that differs from the weekly pattern: closed, or open with special hours."""

    day: date
    kind: ExceptionKind
    opens: time | None = None
    closes: time | None = None
    hours_kind: HoursKind = HoursKind.MERAAPENT
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", ExceptionKind(self.kind))
        object.__setattr__(self, "hours_kind", HoursKind(self.hours_kind))
        if self.kind is ExceptionKind.SPECIAL_HOURS:
            if self.opens is None or self.closes is None:
                raise ScheduleError(f"special hours on {self.day}: both opens and closes are needed")
            _check_interval(self.opens, self.closes, f"special hours on {self.day}")


@dataclass(frozen=True)
class ScheduleChange:
    """The next moment the state flips: at `at` (UTC) the site opens (`opens=True`) or closes."""

    at: datetime
    opens: bool


# Read-only protocols, so ORM rows (whose enum attributes are str subclasses) fit as well as plain objects.
class HoursRow(Protocol):
    @property
    def weekday(self) -> int: ...
    @property
    def opens(self) -> time: ...
    @property
    def closes(self) -> time: ...
    @property
    def kind(self) -> str: ...


class ExceptionRow(Protocol):
    @property
    def day(self) -> date: ...
    @property
    def kind(self) -> str: ...
    @property
    def opens(self) -> time | None: ...
    @property
    def closes(self) -> time | None: ...
    @property
    def hours_kind(self) -> str: ...
    @property
    def note(self) -> str: ...


class SiteRow(Protocol):
    @property
    def timezone(self) -> str: ...
    @property
    def closed_on_public_holidays(self) -> bool: ...


@functools.lru_cache(maxsize=64)
def _norwegian_holidays(year: int) -> dict[date, str]:
    return dict(holidays.country_holidays("NO", years=year, language="no"))


def norwegian_holiday(day: date) -> str | None:
    """The name (bokmål) of the Norwegian public holiday on `day`, if any. Sundays do not count."""
    return _norwegian_holidays(day.year).get(day)


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()} refused: give a timezone-aware (UTC) datetime")


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


@dataclass(frozen=True)
class SiteSchedule:
    """A site's opening hours, exceptions and holiday rule; answers open/closed questions in UTC."""

    hours: tuple[WeeklyHours, ...] = ()
    exceptions: tuple[DayException, ...] = ()
    closed_on_public_holidays: bool = True
    timezone: str = DEFAULT_TIMEZONE

    def __post_init__(self) -> None:
        object.__setattr__(self, "hours", tuple(self.hours))
        object.__setattr__(self, "exceptions", tuple(self.exceptions))
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(f"unknown timezone {self.timezone!r}") from None

    @classmethod
    def from_rows(
        cls, site: SiteRow, hours: Iterable[HoursRow], exceptions: Iterable[ExceptionRow] = ()
    ) -> SiteSchedule:
        """Build from anything shaped like the database rows (ORM objects included)."""
        return cls(
            hours=tuple(WeeklyHours(h.weekday, h.opens, h.closes, HoursKind(h.kind)) for h in hours),
            exceptions=tuple(
                DayException(e.day, ExceptionKind(e.kind), e.opens, e.closes, HoursKind(e.hours_kind), e.note)
                for e in exceptions
            ),
            closed_on_public_holidays=site.closed_on_public_holidays,
            timezone=site.timezone,
        )

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def closed_reason(self, day: date) -> str | None:
        """Why the site is closed all day on `day` (exception note, holiday name), or None."""
        for exc in self.exceptions:
            if exc.day == day and exc.kind is ExceptionKind.CLOSED:
                return exc.note or "Stengt"
        if self.closed_on_public_holidays:
            return norwegian_holiday(day) or CLOSED_EVES.get((day.month, day.day))
        return None

    def _local_intervals(self, day: date, kind: HoursKind) -> list[tuple[time, time]]:
        if any(e.day == day and e.kind is ExceptionKind.CLOSED for e in self.exceptions):
            return []
        special = [
            (e.opens, e.closes)
            for e in self.exceptions
            if e.day == day and e.kind is ExceptionKind.SPECIAL_HOURS and e.hours_kind is kind
        ]
        if special:
            return [(o, c) for o, c in special if o is not None and c is not None]
        if self.closed_reason(day) is not None:
            return []
        return [(h.opens, h.closes) for h in self.hours if h.weekday == day.weekday() and h.kind is kind]

    def open_intervals(self, day: date, kind: HoursKind | str = HoursKind.MERAAPENT) -> list[Interval]:
        """The open intervals on local date `day` as sorted, merged (start_utc, end_utc) pairs."""
        tz, kind = self.tz, HoursKind(kind)
        result = []
        for opens, closes in self._local_intervals(day, kind):
            end_day = day + timedelta(days=1) if closes == MIDNIGHT else day
            start = datetime.combine(day, opens, tzinfo=tz).astimezone(UTC)
            end = datetime.combine(end_day, closes, tzinfo=tz).astimezone(UTC)
            result.append((start, end))
        return _merge(result)

    def is_open(self, at: datetime, kind: HoursKind | str = HoursKind.MERAAPENT) -> bool:
        """Whether the site is open for `kind` at the instant `at`."""
        _require_aware(at)
        day = at.astimezone(self.tz).date()
        return any(start <= at < end for start, end in self.open_intervals(day, kind))

    def next_change(
        self, at: datetime, kind: HoursKind | str = HoursKind.MERAAPENT, horizon_days: int = 400
    ) -> ScheduleChange | None:
        """The first moment strictly after `at` when the site opens or closes; None if nothing changes
        within `horizon_days` (e.g. no hours at all)."""
        _require_aware(at)
        first = at.astimezone(self.tz).date()
        for horizon in sorted({min(8, horizon_days), horizon_days}):
            change = self._next_change_within(at, first, horizon, HoursKind(kind))
            if change is not None:
                return change
        return None

    def _next_change_within(
        self, at: datetime, first: date, horizon: int, kind: HoursKind
    ) -> ScheduleChange | None:
        last = first + timedelta(days=horizon)
        # Boundaries after the start of the last day may be artefacts of cutting the window there.
        limit = datetime.combine(last, MIDNIGHT, tzinfo=self.tz).astimezone(UTC)
        days = (first + timedelta(days=n) for n in range(horizon + 1))
        for start, end in _merge(i for d in days for i in self.open_intervals(d, kind)):
            if end <= at:
                continue
            change = ScheduleChange(start, True) if start > at else ScheduleChange(end, False)
            return change if change.at <= limit else None
        return None
