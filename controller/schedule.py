"""When is the site open? The agent's copy of central's opening-hours rules, fed by the site config.

Pure: no clock is read here, every question takes `now` (timezone-aware). Hours are local wall-clock times in
the site's timezone; answers are UTC. Rules for one local day and one kind of hours, first match wins (the
same as central.schedules, so central and the agent agree on every instant):

1. a `closed` exception for the day: closed all day (both kinds);
2. `special_hours` exceptions for the day: exactly those intervals replace the weekly meråpent hours
   (central sends special meråpent hours only; staffed hours stay weekly);
3. a date in `public_holidays` when `closed_on_public_holidays`: closed;
4. the weekly hours for that weekday and kind.

Intervals are half-open [opens, closes). Central sends "until midnight" as 23:59:59.999999 because the wire
format wants opens < closes; that is read as the end of the day, so an evening open until midnight and a night
open from 00:00 join into one opening. The site is open when either kind of hours is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from protocol import messages as m

END_OF_DAY = time(23, 59, 59, 999999)
LOOKAHEAD_DAYS = 14
_CACHE_DAYS = 64  # local days kept converted to UTC; a few weeks around "now" is all the agent asks about

_Span = tuple[datetime, datetime]


class ScheduleConfigError(ValueError):
    """Hours in the site config that cannot be used (unknown timezone, special hours without times)."""


@dataclass(frozen=True, slots=True)
class Opening:
    """The opening the site is in: `opens_at`/`closes_at` (UTC) bound the whole uninterrupted open period;
    `kind` is staffed when staff are on duty at that moment, else meråpent."""

    kind: m.HoursKind
    opens_at: datetime
    closes_at: datetime


def _require_aware(now: datetime) -> None:
    if now.utcoffset() is None:
        raise ValueError(f"naive datetime {now.isoformat()} refused: give a timezone-aware (UTC) datetime")


def _merge(spans: Iterable[_Span]) -> list[_Span]:
    merged: list[_Span] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def in_local_interval(moment: time, starts: time, ends: time) -> bool:
    """Whether a local wall-clock time lies in [starts, ends), with 23:59:59.999999 meaning end of day."""
    return starts <= moment and (moment < ends or ends == END_OF_DAY)


class SiteCalendar:
    """A site's opening hours, exceptions and holidays, answering open/closed questions for an instant."""

    __slots__ = ("_cache", "_closed", "_holidays", "_special", "_weekly", "tz")

    def __init__(
        self,
        tz: ZoneInfo,
        weekly: dict[tuple[int, m.HoursKind], list[tuple[time, time]]],
        closed: frozenset[date],
        special: dict[date, list[tuple[time, time]]],
        holidays: frozenset[date],
    ) -> None:
        self.tz = tz
        self._weekly = weekly
        self._closed = closed
        self._special = special
        self._holidays = holidays
        self._cache: dict[date, tuple[tuple[datetime, datetime, m.HoursKind], ...]] = {}

    @classmethod
    def from_config(cls, config: m.SiteConfig) -> SiteCalendar:
        """Precompute the lookups once per config; ScheduleConfigError for hours that cannot be used."""
        try:
            tz = ZoneInfo(config.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleConfigError(f"site {config.site}: unknown timezone {config.timezone!r}") from None
        weekly: dict[tuple[int, m.HoursKind], list[tuple[time, time]]] = {}
        for hours in config.hours:
            weekly.setdefault((hours.weekday, hours.kind), []).append((hours.opens, hours.closes))
        special: dict[date, list[tuple[time, time]]] = {}
        closed = set()
        for exc in config.exceptions:
            if exc.kind is m.ExceptionKind.CLOSED:
                closed.add(exc.day)
                continue
            if exc.opens is None or exc.closes is None or not exc.opens < exc.closes:
                raise ScheduleConfigError(
                    f"site {config.site}: special hours on {exc.day} need opens before closes"
                )
            special.setdefault(exc.day, []).append((exc.opens, exc.closes))
        holidays = frozenset(config.public_holidays) if config.closed_on_public_holidays else frozenset()
        return cls(tz, weekly, frozenset(closed), special, holidays)

    # --- one local day --------------------------------------------------------------------------------------

    def _local_hours(self, day: date, kind: m.HoursKind) -> list[tuple[time, time]]:
        if day in self._closed:
            return []
        if kind is m.HoursKind.MERAAPENT and day in self._special:
            return self._special[day]
        if day in self._holidays:
            return []
        return self._weekly.get((day.weekday(), kind), [])

    def _utc(self, day: date, local: time) -> datetime:
        if local == END_OF_DAY:
            day, local = day + timedelta(days=1), time(0)
        # fold=0: a time skipped by the spring change counts from the old offset, a repeated one is the first.
        return datetime.combine(day, local, tzinfo=self.tz).astimezone(UTC)

    def day_intervals(self, day: date) -> tuple[tuple[datetime, datetime, m.HoursKind], ...]:
        """The open intervals of local date `day` as (start UTC, end UTC, kind), sorted, both kinds."""
        found = self._cache.get(day)
        if found is None:
            intervals = []
            for kind in m.HoursKind:
                for opens, closes in self._local_hours(day, kind):
                    start, end = self._utc(day, opens), self._utc(day, closes)
                    if start < end:  # an interval inside the spring gap has no length
                        intervals.append((start, end, kind))
            found = tuple(sorted(intervals))
            if len(self._cache) >= _CACHE_DAYS:
                self._cache.clear()
            self._cache[day] = found
        return found

    def _spans(self, first: date, last: date) -> list[_Span]:
        days = (first + timedelta(days=n) for n in range((last - first).days + 1))
        return _merge((start, end) for day in days for start, end, _ in self.day_intervals(day))

    def _local_midnight(self, day: date) -> datetime:
        return datetime.combine(day, time(0), tzinfo=self.tz).astimezone(UTC)

    # --- questions ------------------------------------------------------------------------------------------

    def opening(self, now: datetime) -> Opening | None:
        """The opening `now` falls in, or None when the site is closed."""
        _require_aware(now)
        today = now.astimezone(self.tz).date()
        kinds = {kind for start, end, kind in self.day_intervals(today) if start <= now < end}
        if not kinds:
            return None
        kind = m.HoursKind.STAFFED if m.HoursKind.STAFFED in kinds else m.HoursKind.MERAAPENT
        span = self._span_around(now, today)
        return Opening(kind, span[0], span[1])

    def _span_around(self, now: datetime, today: date) -> _Span:
        """The merged open span containing `now`, widened day by day while it runs into the window's edge."""
        back, ahead = 1, 1
        while True:
            first, last = today - timedelta(days=back), today + timedelta(days=ahead)
            span = next(s for s in self._spans(first, last) if s[0] <= now < s[1])
            widen_back = span[0] <= self._local_midnight(first) and back < LOOKAHEAD_DAYS
            widen_ahead = span[1] >= self._local_midnight(last + timedelta(days=1)) and ahead < LOOKAHEAD_DAYS
            if not (widen_back or widen_ahead):
                return span
            back, ahead = back + widen_back, ahead + widen_ahead

    def is_open(self, now: datetime) -> bool:
        """Whether the site is open (meråpent or staffed) at the instant `now`."""
        _require_aware(now)
        # An interval ends at the latest at the next local midnight, so only today's can hold `now`.
        today = now.astimezone(self.tz).date()
        return any(start <= now < end for start, end, _ in self.day_intervals(today))

    def next_opening(self, now: datetime) -> datetime | None:
        """The next moment strictly after `now` at which the site opens, within 14 days; else None."""
        _require_aware(now)
        today = now.astimezone(self.tz).date()
        spans = self._spans(today - timedelta(days=1), today + timedelta(days=LOOKAHEAD_DAYS))
        return next((start for start, _ in spans if start > now), None)

    def in_group_intervals(self, group: m.AccessGroup, now: datetime) -> bool:
        """Whether `now` (local wall clock) is in one of the group's intervals; True when it has none."""
        if not group.intervals:
            return True
        local = now.astimezone(self.tz)
        weekday, moment = local.weekday(), local.time()
        return any(
            i.weekday == weekday and in_local_interval(moment, i.starts, i.ends) for i in group.intervals
        )

    def group_allows(self, group: m.AccessGroup, now: datetime) -> bool:
        """Whether the group's schedule lets its members in now: any_time groups always; others while the
        site is open and, if the group has intervals, within one of them (local time)."""
        _require_aware(now)
        if group.any_time:
            return True
        return self.is_open(now) and self.in_group_intervals(group, now)
