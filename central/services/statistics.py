"""Statistics for the municipality: visits per day, hour and site, meråpent versus staffed hours, room use,
occupancy over the evening and denials by reason, for a site (or all sites) and a period of whole days.

What the numbers mean (the console page says the same in words):
- A *visit* is a granted entry through one of a site's entrance doors on the visitor's own right (reason
  `schedule` or `booking`); staff and caretakers (`any_time`), remote unlocks, exit buttons and fire release
  are not visits. Entries by the same card or phone at the same site at most 30 minutes apart are one visit.
  The visitor is told apart by the credential reference, never the person: retention (central.retention)
  replaces the reference by a stable pseudonym ("p:...") and drops the person, so an old visit counts exactly
  as it did when it was new.
- A visit is *meråpent*, *staffed* or *outside opening hours* by the site's schedule at its first entry
  (staffed wins where both kinds are set). In staffed hours the entrance often stands open, so only the
  people who badged in are counted then.
- *Occupancy* is an estimate: the agents count passages and exits locally but do not report them to central,
  so each visit is assumed to last DWELL (an hour): it counts in the quarter hour it starts and the three
  after.
- A period [first, end) is whole local days in each site's own time zone; days and hours are local wall-clock
  time, so the 23- and 25-hour days of the DST changes come out right (October's repeated 02 hour holds both).

The database does the counting (a window function finds the visits, GROUP BY counts them per site, UTC quarter
hour and kind of hours, on SQLite and PostgreSQL alike); Python only turns quarter hours into local days,
hours and occupancy, so the work here grows with sites × days, not with events.
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Index,
    Integer,
    MetaData,
    SQLColumnExpression,
    String,
    Table,
    and_,
    case,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from central.models import Booking, BookingStatus, Decision, Door, DoorKind, Event, EventKind, Room, Site
from central.schedules import DEFAULT_TIMEZONE, HoursKind, Interval, SiteSchedule
from central.services.errors import InvalidError
from central.services.hours import site_schedule
from protocol import i18n
from protocol.messages import Reason

VISIT_GAP = timedelta(minutes=30)  # entries closer than this by the same card are one visit
DWELL = timedelta(hours=1)  # how long a visit is assumed to last, for occupancy
QUARTER = timedelta(minutes=15)
QUARTERS_PER_DAY = 96
DEFAULT_DAYS = 30
MAX_DAYS = 366
VISIT_REASONS = (Reason.SCHEDULE, Reason.BOOKING)

_QUARTER_S = int(QUARTER.total_seconds())
_DAY_S = 86400
_DWELL_QUARTERS = int(DWELL / QUARTER)


class VisitKind(StrEnum):
    """The kind of hours a visit fell in."""

    MERAAPENT = "meraapent"
    STAFFED = "staffed"
    OUTSIDE = "outside"


# --- the question: which sites, which days ----------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Whole local days from `first` up to, not including, `end`."""

    first: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.first).days

    @property
    def last(self) -> date:
        return self.end - timedelta(days=1)

    def dates(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range(self.days)]

    def bounds(self, tz: ZoneInfo) -> tuple[datetime, datetime]:
        """The period as UTC instants: local midnight before `first` to local midnight before `end`."""
        start = datetime.combine(self.first, time(0), tzinfo=tz).astimezone(UTC)
        return start, datetime.combine(self.end, time(0), tzinfo=tz).astimezone(UTC)


def local_today(now: datetime) -> date:
    """Today's date where the sites are (Europe/Oslo), for the default period."""
    return now.astimezone(ZoneInfo(DEFAULT_TIMEZONE)).date()


def default_period(today: date) -> Period:
    """The last 30 days, today included."""
    return Period(today - timedelta(days=DEFAULT_DAYS - 1), today + timedelta(days=1))


_DAY_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class PeriodError(InvalidError):
    """A period or site the statistics cannot be for; `code` says which rule, for pages in other languages:
    bad_date, not_after, too_long or unknown_site."""

    def __init__(self, message: str, field: str, code: str) -> None:
        super().__init__(message, field)
        self.code = code


def _parse_day(value: str, name: str) -> date:
    shown = value if len(value) <= 20 else value[:20] + "..."
    if _DAY_FORMAT.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise PeriodError(f"{name}: {shown!r} is not a date like 2025-05-01", name, "bad_date")


def parse_period(first: str | None, end: str | None, today: date) -> Period:
    """The period [from, to) from query text; a missing end is 30 days from the other, both missing the last
    30 days. Refused with a one-line PeriodError: bad dates, `to` not after `from`, over MAX_DAYS days."""
    if not first and not end:
        return default_period(today)
    span = timedelta(days=DEFAULT_DAYS)
    if first:
        start = _parse_day(first, "from")
        stop = _parse_day(end, "to") if end else start + span
    else:
        stop = _parse_day(end or "", "to")
        start = stop - span
    if stop <= start:
        raise PeriodError(
            f"to ({stop}) must be after from ({start}): the period is from 'from' up to, not including, 'to'",
            "to",
            "not_after",
        )
    period = Period(start, stop)
    if period.days > MAX_DAYS:
        message = f"the period is {period.days} days long; at most {MAX_DAYS} days at a time"
        raise PeriodError(message, "to", "too_long")
    return period


@dataclass(frozen=True)
class SiteRef:
    id: int
    slug: str
    name: str
    timezone: str

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def select_sites(session: Session, slug: str | None) -> tuple[SiteRef, ...]:
    """The site named by `slug`, or every site (by name) when it is empty; an unknown one is refused."""
    stmt = select(Site.id, Site.slug, Site.name, Site.timezone).order_by(Site.name, Site.slug)
    if slug:
        stmt = stmt.where(Site.slug == slug)
    found = tuple(SiteRef(*row) for row in session.execute(stmt))
    if slug and not found:
        shown = slug if len(slug) <= 40 else slug[:40] + "..."
        raise PeriodError(f"site {shown!r} does not exist", "site", "unknown_site")
    return found


# --- what comes out ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VisitCounts:
    meraapent: int = 0
    staffed: int = 0
    outside: int = 0

    @property
    def total(self) -> int:
        return self.meraapent + self.staffed + self.outside

    def __add__(self, other: VisitCounts) -> VisitCounts:
        return VisitCounts(
            self.meraapent + other.meraapent, self.staffed + other.staffed, self.outside + other.outside
        )

    @classmethod
    def of(cls, counts: Mapping[VisitKind, int]) -> VisitCounts:
        return cls(*(counts.get(kind, 0) for kind in VisitKind))

    def get(self, kind: VisitKind) -> int:
        return int(getattr(self, kind.value))


@dataclass(frozen=True)
class DayVisits:
    day: date
    site: str
    visits: VisitCounts


@dataclass(frozen=True)
class HourVisits:
    site: str
    hour: int  # local hour of day, 0-23
    visits: VisitCounts


@dataclass(frozen=True)
class SiteVisits:
    site: str
    visits: VisitCounts


@dataclass(frozen=True)
class HoursUse:
    """Visits in one kind of hours, and how many hours of that kind the site was open in the period."""

    site: str
    kind: VisitKind
    visits: int
    open_hours: float | None  # None for "outside opening hours"

    @property
    def per_open_hour(self) -> float | None:
        return self.visits / self.open_hours if self.open_hours else None


@dataclass(frozen=True)
class Occupancy:
    """People estimated on site in the local quarter hour starting `at`: on an average day, and at most."""

    site: str | None  # None: all the selected sites together
    at: time
    average: float
    peak: int


@dataclass(frozen=True)
class RoomUse:
    site: str
    room: str
    room_name: str
    bookings: int  # not cancelled
    booked_hours: float
    checked_in: int
    used_hours: float  # booked hours of the bookings that were checked in
    no_shows: int
    cancelled: int

    @property
    def no_show_share(self) -> float | None:
        decided = self.checked_in + self.no_shows
        return self.no_shows / decided if decided else None


@dataclass(frozen=True)
class Denials:
    site: str
    reason: str
    words: str  # the reason as people read it, from the catalogue
    count: int


@dataclass(frozen=True)
class VisitStatistics:
    per_day: tuple[DayVisits, ...]  # every (day, site), zeros included
    per_hour: tuple[HourVisits, ...]  # every (site, hour)
    per_site: tuple[SiteVisits, ...]
    hours: tuple[HoursUse, ...]  # every (site, kind)
    occupancy: tuple[Occupancy, ...]  # every (site, quarter hour)
    occupancy_total: tuple[Occupancy, ...]  # the sites together, per quarter hour


@dataclass(frozen=True)
class Statistics:
    sites: tuple[SiteRef, ...]
    period: Period
    visits: VisitStatistics
    rooms: tuple[RoomUse, ...]
    denials: tuple[Denials, ...]


# --- portable SQL pieces ----------------------------------------------------------------------------------


class epoch_seconds(FunctionElement[int]):  # noqa: N801 (a SQL function, named like one)
    """Whole seconds since 1970 of a UTC timestamp column, in each database's own words."""

    type = BigInteger()
    inherit_cache = True
    name = "epoch_seconds"


@compiles(epoch_seconds, "sqlite")
def _epoch_sqlite(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(strftime('%s', {compiler.process(element.clauses, **kw)}) AS INTEGER)"


@compiles(epoch_seconds, "postgresql")
def _epoch_postgresql(element: epoch_seconds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})) AS BIGINT)"


def _number(value: int) -> ColumnElement[int]:
    """A constant written into the SQL, so SELECT and GROUP BY hold the very same expression."""
    return literal_column(str(int(value)), BigInteger)


# The site's hours as UTC epoch intervals, one row per (site, UTC day) piece, filled per call: classifying
# visits is then an equality join plus a range check, the same on both databases.
_HOURS = Table(
    "statistics_hours",
    MetaData(),
    Column("site_id", Integer, nullable=False),
    Column("day", BigInteger, nullable=False),
    Column("starts", BigInteger, nullable=False),
    Column("ends", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    prefixes=["TEMPORARY"],
)
_HOURS_INDEX = Index("ix_statistics_hours_site_day", _HOURS.c.site_id, _HOURS.c.day)

Window = tuple[list[int], datetime, datetime]


def _windows(sites: Sequence[SiteRef], period: Period) -> list[Window]:
    """The period in UTC per time zone (usually one: Europe/Oslo), with the ids of the sites in it."""
    by_zone: dict[str, list[int]] = defaultdict(list)
    for site in sites:
        by_zone[site.timezone].append(site.id)
    return [(ids, *period.bounds(ZoneInfo(zone))) for zone, ids in by_zone.items()]


def _within(
    site_id: SQLColumnExpression[int],
    at: SQLColumnExpression[datetime],
    windows: Sequence[Window],
    lead: timedelta,
) -> ColumnElement[bool]:
    return or_(*(and_(site_id.in_(ids), at >= start - lead, at < end) for ids, start, end in windows))


# --- the site's hours -------------------------------------------------------------------------------------


def _subtract(intervals: Iterable[Interval], taken: Sequence[Interval]) -> list[Interval]:
    result = []
    for start, end in intervals:
        for t_start, t_end in taken:
            if t_end <= start or t_start >= end:
                continue
            if t_start > start:
                result.append((start, t_start))
            start = max(start, t_end)
        if start < end:
            result.append((start, end))
    return result


def _kind_intervals(schedule: SiteSchedule, day: date) -> list[tuple[datetime, datetime, VisitKind]]:
    """The day's staffed and meråpent intervals (UTC), not overlapping: staffed wins where both are set."""
    staffed = schedule.open_intervals(day, HoursKind.STAFFED)
    meraapent = _subtract(schedule.open_intervals(day, HoursKind.MERAAPENT), staffed)
    return [
        *((s, e, VisitKind.STAFFED) for s, e in staffed),
        *((s, e, VisitKind.MERAAPENT) for s, e in meraapent),
    ]


KindIntervals = dict[date, list[tuple[datetime, datetime, VisitKind]]]


def _site_hours(schedule: SiteSchedule, period: Period) -> KindIntervals:
    """The kind intervals of each day of the period and of the day before (for the visits' look-back)."""
    days = [period.first - timedelta(days=1), *period.dates()]
    return {day: _kind_intervals(schedule, day) for day in days}


def _hours_rows(site: SiteRef, hours: KindIntervals) -> list[dict[str, Any]]:
    """Rows for _HOURS, cut at UTC midnight so the join can match on (site, UTC day)."""
    rows = []
    for intervals in hours.values():
        for start, end, kind in intervals:
            lo, hi = int(start.timestamp()), int(end.timestamp())
            while lo < hi:
                cut = min(hi, (lo // _DAY_S + 1) * _DAY_S)
                rows.append(dict(site_id=site.id, day=lo // _DAY_S, starts=lo, ends=cut, kind=kind))
                lo = cut
    return rows


def _open_hours(hours: KindIntervals, period: Period) -> dict[VisitKind, float]:
    total: dict[VisitKind, float] = defaultdict(float)
    for day in period.dates():
        for start, end, kind in hours[day]:
            total[kind] += (end - start).total_seconds() / 3600
    return total


# --- visits -----------------------------------------------------------------------------------------------


def _visit_quarters(session: Session, windows: Sequence[Window]) -> list[tuple[int, int, str | None, int]]:
    """(site id, UTC quarter-hour number, kind of hours or None, visits) for the visits in `windows`."""
    t = epoch_seconds(Event.device_time)
    entries = (
        select(
            Event.site_id.label("site_id"),
            t.label("t"),
            func.lag(t)
            .over(partition_by=(Event.site_id, Event.credential_ref), order_by=Event.device_time)
            .label("prev"),
        )
        .join(Door, and_(Door.site_id == Event.site_id, Door.slug == Event.door_slug))
        .where(
            Door.kind == DoorKind.ENTRANCE,
            Event.kind == EventKind.ACCESS,
            Event.decision == Decision.GRANT,
            Event.reason.in_([r.value for r in VISIT_REASONS]),
            Event.credential_ref.is_not(None),
            _within(Event.site_id, Event.device_time, windows, VISIT_GAP),
        )
        .cte("entries")
    )
    gap = _number(int(VISIT_GAP.total_seconds()))
    visits = (
        select(entries.c.site_id, entries.c.t)
        .where(or_(entries.c.prev.is_(None), entries.c.t - entries.c.prev > gap))
        .cte("visits")
    )
    quarter = visits.c.t // _number(_QUARTER_S)
    hours = and_(
        _HOURS.c.site_id == visits.c.site_id,
        _HOURS.c.day == visits.c.t // _number(_DAY_S),
        visits.c.t >= _HOURS.c.starts,
        visits.c.t < _HOURS.c.ends,
    )
    stmt = (
        select(visits.c.site_id, quarter, _HOURS.c.kind, func.count())
        .select_from(visits.outerjoin(_HOURS, hours))
        .group_by(visits.c.site_id, quarter, _HOURS.c.kind)
    )
    return [(int(s), int(q), k, int(n)) for s, q, k, n in session.execute(stmt)]


def _fill_hours(session: Session, rows: list[dict[str, Any]]) -> None:
    """A fresh _HOURS for this connection (a leftover from an interrupted call is emptied first)."""
    connection = session.connection()
    connection.execute(CreateTable(_HOURS, if_not_exists=True))
    connection.execute(CreateIndex(_HOURS_INDEX, if_not_exists=True))  # else SQLite scans it per visit
    connection.execute(delete(_HOURS))
    if rows:
        connection.execute(insert(_HOURS), rows)


def _local_quarter(quarter: int, tz: ZoneInfo) -> tuple[date, int]:
    """The local day and quarter of that day (0-95) a UTC quarter-hour number falls in."""
    local = datetime.fromtimestamp(quarter * _QUARTER_S, tz)
    return local.date(), (local.hour * 60 + local.minute) // 15


def _occupancy_levels(starts: Mapping[int, int], tz: ZoneInfo, period: Period) -> dict[tuple[date, int], int]:
    """People present per (local day, quarter): each visit stays DWELL. A repeated local quarter (October's
    DST change) keeps the higher of its two values: occupancy is a level, not a count."""
    level: dict[int, int] = defaultdict(int)
    for quarter, n in starts.items():
        for k in range(_DWELL_QUARTERS):
            level[quarter + k] += n
    result: dict[tuple[date, int], int] = {}
    for quarter, n in level.items():
        key = _local_quarter(quarter, tz)
        if period.first <= key[0] < period.end:
            result[key] = max(result.get(key, 0), n)
    return result


def _occupancy_rows(site: str | None, levels: Mapping[tuple[date, int], int], days: int) -> list[Occupancy]:
    total = [0] * QUARTERS_PER_DAY
    peak = [0] * QUARTERS_PER_DAY
    for (_, q), n in levels.items():
        total[q] += n
        peak[q] = max(peak[q], n)
    return [
        Occupancy(site, time(q // 4, q % 4 * 15), total[q] / days, peak[q]) for q in range(QUARTERS_PER_DAY)
    ]


Tally = dict[tuple[Any, ...], dict[VisitKind, int]]


def _tally(
    rows: Iterable[tuple[int, int, str | None, int]], sites: Sequence[SiteRef], period: Period
) -> tuple[Tally, Tally, dict[int, dict[int, int]]]:
    """Visits per (day, site id) and (site id, hour) by kind, and visit starts per site id and UTC quarter."""
    tz = {site.id: site.tz for site in sites}
    per_day: Tally = defaultdict(lambda: defaultdict(int))
    per_hour: Tally = defaultdict(lambda: defaultdict(int))
    starts: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for site_id, quarter, kind, n in rows:
        starts[site_id][quarter] += n
        day, q = _local_quarter(quarter, tz[site_id])
        if not period.first <= day < period.end:
            continue  # the look-back before the period: only there to join entries into visits
        visit_kind = VisitKind(kind) if kind else VisitKind.OUTSIDE
        per_day[day, site_id][visit_kind] += n
        per_hour[site_id, q // 4][visit_kind] += n
    return per_day, per_hour, starts


def _hours_use(site: SiteRef, visits: VisitCounts, hours: KindIntervals, period: Period) -> list[HoursUse]:
    open_hours = _open_hours(hours, period)
    return [
        HoursUse(
            site.slug,
            kind,
            visits.get(kind),
            None if kind is VisitKind.OUTSIDE else round(open_hours.get(kind, 0.0), 2),
        )
        for kind in VisitKind
    ]


def visit_statistics(session: Session, sites: Sequence[SiteRef], period: Period) -> VisitStatistics:
    """Visits per day, hour and site, by kind of hours, and the occupancy they make (see the module doc)."""
    hours = {s.id: _site_hours(site_schedule(session, session.get_one(Site, s.id)), period) for s in sites}
    _fill_hours(session, [row for s in sites for row in _hours_rows(s, hours[s.id])])
    rows = _visit_quarters(session, _windows(sites, period)) if sites else []
    session.connection().execute(delete(_HOURS))
    per_day, per_hour, starts = _tally(rows, sites, period)

    occupancy: list[Occupancy] = []
    together: dict[tuple[date, int], int] = defaultdict(int)
    for site in sites:
        levels = _occupancy_levels(starts[site.id], site.tz, period)
        occupancy += _occupancy_rows(site.slug, levels, period.days)
        for key, n in levels.items():
            together[key] += n
    days = [
        DayVisits(d, s.slug, VisitCounts.of(per_day.get((d, s.id), {})))
        for d in period.dates()
        for s in sites
    ]
    totals = {s.slug: sum((d.visits for d in days if d.site == s.slug), VisitCounts()) for s in sites}
    return VisitStatistics(
        per_day=tuple(days),
        per_hour=tuple(
            HourVisits(s.slug, h, VisitCounts.of(per_hour.get((s.id, h), {})))
            for s in sites
            for h in range(24)
        ),
        per_site=tuple(SiteVisits(slug, counts) for slug, counts in totals.items()),
        hours=tuple(use for s in sites for use in _hours_use(s, totals[s.slug], hours[s.id], period)),
        occupancy=tuple(occupancy),
        occupancy_total=tuple(_occupancy_rows(None, together, period.days)),
    )


# --- rooms and denials ------------------------------------------------------------------------------------


def room_use(session: Session, sites: Sequence[SiteRef], period: Period) -> tuple[RoomUse, ...]:
    """Per room, the bookings starting in the period: booked and used hours, check-ins, no-shows, cancelled.

    Checked in means the booking was checked in at some point (it may be completed since); retention clears
    who held a booking but keeps its room, times and status, so old bookings still count.
    """
    if not sites:
        return ()
    slug_of = {site.id: site.slug for site in sites}
    rooms = session.execute(
        select(Room.id, Room.site_id, Room.slug, Room.name)
        .where(Room.site_id.in_(slug_of))
        .order_by(Room.site_id, Room.name, Room.slug)
    ).all()
    seconds = epoch_seconds(Booking.ends_at) - epoch_seconds(Booking.starts_at)
    checked_in = Booking.checked_in_at.is_not(None)
    stmt = (
        select(
            Booking.room_id,
            Booking.status,
            func.count(),
            func.sum(seconds),
            func.sum(case((checked_in, 1), else_=0)),
            func.sum(case((checked_in, seconds), else_=0)),
        )
        .join(Room, Room.id == Booking.room_id)
        .where(_within(Room.site_id, Booking.starts_at, _windows(sites, period), timedelta(0)))
        .group_by(Booking.room_id, Booking.status)
    )
    tally: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for room_id, status, count, total_s, checked, checked_s in session.execute(stmt):
        row = tally[room_id]
        if status == BookingStatus.CANCELLED:
            row["cancelled"] += count
            continue
        row["bookings"] += count
        row["seconds"] += float(total_s or 0)
        row["checked_in"] += int(checked or 0)
        row["used_seconds"] += float(checked_s or 0)
        row["no_shows"] += count if status == BookingStatus.NO_SHOW else 0
    return tuple(
        RoomUse(
            site=slug_of[site_id],
            room=slug,
            room_name=name,
            bookings=int(tally[room_id]["bookings"]),
            booked_hours=round(tally[room_id]["seconds"] / 3600, 2),
            checked_in=int(tally[room_id]["checked_in"]),
            used_hours=round(tally[room_id]["used_seconds"] / 3600, 2),
            no_shows=int(tally[room_id]["no_shows"]),
            cancelled=int(tally[room_id]["cancelled"]),
        )
        for room_id, site_id, slug, name in rooms
    )


def reason_words(reason: str, lang: str) -> str:
    """A deny reason as people read it (the same words the door and the phone show); unknown ones as is."""
    try:
        return i18n.text(f"reason.{reason}", lang)
    except KeyError:
        return reason


def denials(session: Session, sites: Sequence[SiteRef], period: Period, lang: str) -> tuple[Denials, ...]:
    """Refused attempts at any door per site and reason, most frequent first."""
    if not sites:
        return ()
    slug_of = {site.id: site.slug for site in sites}
    count = func.count()
    stmt = (
        select(Event.site_id, Event.reason, count)
        .where(
            Event.kind == EventKind.ACCESS,
            Event.decision == Decision.DENY,
            _within(Event.site_id, Event.device_time, _windows(sites, period), timedelta(0)),
        )
        .group_by(Event.site_id, Event.reason)
    )
    rows = [
        Denials(slug_of[site_id], reason or "", reason_words(reason or "", lang), int(n))
        for site_id, reason, n in session.execute(stmt)
    ]
    order = {slug: n for n, slug in enumerate(slug_of.values())}
    return tuple(sorted(rows, key=lambda d: (order[d.site], -d.count, d.reason)))


def statistics(session: Session, site: str | None, period: Period, lang: str = "nb") -> Statistics:
    """Everything the statistics page shows, for `site` (a slug; empty or None: all sites)."""
    sites = select_sites(session, site)
    return Statistics(
        sites=sites,
        period=period,
        visits=visit_statistics(session, sites, period),
        rooms=room_use(session, sites, period),
        denials=denials(session, sites, period, lang),
    )


# --- sums for charts (all selected sites together) --------------------------------------------------------


def visits_by_day(stats: VisitStatistics) -> list[tuple[date, VisitCounts]]:
    totals: dict[date, VisitCounts] = {}
    for row in stats.per_day:
        totals[row.day] = totals.get(row.day, VisitCounts()) + row.visits
    return sorted(totals.items())


def visits_by_hour(stats: VisitStatistics) -> list[tuple[int, VisitCounts]]:
    totals = {hour: VisitCounts() for hour in range(24)}
    for row in stats.per_hour:
        totals[row.hour] = totals[row.hour] + row.visits
    return sorted(totals.items())


def hours_by_kind(stats: VisitStatistics) -> list[HoursUse]:
    """Visits and open hours per kind of hours, the sites added up."""
    result = []
    for kind in VisitKind:
        rows = [row for row in stats.hours if row.kind is kind]
        hours = None if kind is VisitKind.OUTSIDE else round(sum(row.open_hours or 0.0 for row in rows), 2)
        result.append(HoursUse("", kind, sum(row.visits for row in rows), hours))
    return result


def denials_by_reason(rows: Sequence[Denials]) -> list[Denials]:
    """Denials per reason, the sites added up, most frequent first."""
    totals: dict[str, Denials] = {}
    for row in rows:
        seen = totals.get(row.reason)
        totals[row.reason] = Denials("", row.reason, row.words, row.count + (seen.count if seen else 0))
    return sorted(totals.values(), key=lambda d: (-d.count, d.reason))


# --- CSV for the municipality -----------------------------------------------------------------------------


class CsvTable(StrEnum):
    VISITS_PER_DAY = "visits-per-day"
    VISITS_PER_HOUR = "visits-per-hour"
    MERAAPENT_STAFFED = "meraapent-staffed"
    ROOMS = "rooms"
    OCCUPANCY = "occupancy"
    DENIALS = "denials"


@dataclass(frozen=True)
class CsvFile:
    filename: str
    content: bytes

    MEDIA_TYPE = "text/csv; charset=utf-8"

    @property
    def disposition(self) -> str:
        return f'attachment; filename="{self.filename}"'


# Excel as set up in Norway reads a .csv opened by double-click with the list separator of the locale, which
# is ';' (the comma is the decimal sign there), and as Windows-1252 unless the file starts with a UTF-8 BOM.
# So: ';' between fields, decimal commas, a BOM for æøå, CRLF line ends (RFC 4180), ISO dates (Excel reads
# 2025-05-01 as a date). LibreOffice and scripts (Python's csv with delimiter=';', R's read.csv2) read it too.
CSV_DELIMITER = ";"
CSV_BOM = "\ufeff"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _decimal(value: float | None, places: int = 2) -> str:
    return "" if value is None else f"{value:.{places}f}".replace(".", ",")


def _text(value: str) -> str:
    """A name typed by someone, made safe from spreadsheet formula injection ('=HYPERLINK(...)')."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def csv_filename(table: CsvTable, site: str | None, period: Period, lang: str) -> str:
    where = site or i18n.text("console.statistics.csv.all_sites", lang)
    return f"meraapent-{table.value}-{where}-{period.first.isoformat()}-{period.last.isoformat()}.csv"


def _csv_rows(
    session: Session, table: CsvTable, sites: Sequence[SiteRef], period: Period, lang: str
) -> tuple[list[str], list[list[str]]]:
    def t(key: str) -> str:
        return i18n.text(f"console.statistics.csv.{key}", lang)

    name = {site.slug: _text(site.name) for site in sites}
    counts = [t("visits"), t("meraapent"), t("staffed"), t("outside")]

    def numbers(c: VisitCounts) -> list[str]:
        return [str(c.total), str(c.meraapent), str(c.staffed), str(c.outside)]

    if table is CsvTable.ROOMS:
        header = [t("site"), t("room"), t("bookings"), t("booked_hours"), t("checked_in"), t("used_hours")]
        header += [t("no_shows"), t("cancelled"), t("no_show_share")]
        return header, [
            [
                *(name[r.site], _text(r.room_name), str(r.bookings), _decimal(r.booked_hours)),
                *(str(r.checked_in), _decimal(r.used_hours), str(r.no_shows), str(r.cancelled)),
                _decimal(r.no_show_share),
            ]
            for r in room_use(session, sites, period)
        ]
    if table is CsvTable.DENIALS:
        header = [t("site"), t("reason"), t("reason_code"), t("count")]
        rows = denials(session, sites, period, lang)
        return header, [[name[d.site], d.words, d.reason, str(d.count)] for d in rows]
    visits = visit_statistics(session, sites, period)
    if table is CsvTable.VISITS_PER_DAY:
        return [t("day"), t("site"), *counts], [
            [d.day.isoformat(), name[d.site], *numbers(d.visits)] for d in visits.per_day
        ]
    if table is CsvTable.VISITS_PER_HOUR:
        return [t("site"), t("hour"), *counts], [
            [name[h.site], f"{h.hour:02d}:00", *numbers(h.visits)] for h in visits.per_hour
        ]
    if table is CsvTable.MERAAPENT_STAFFED:
        header = [t("site"), t("kind"), t("visits"), t("open_hours"), t("per_open_hour")]
        return header, [
            [
                *(name[u.site], i18n.text(f"console.statistics.kind.{u.kind.value}", lang), str(u.visits)),
                *(_decimal(u.open_hours), _decimal(u.per_open_hour)),
            ]
            for u in visits.hours
        ]
    header = [t("site"), t("time"), t("average"), t("peak")]
    return header, [
        [name[o.site or ""], f"{o.at:%H:%M}", _decimal(o.average), str(o.peak)] for o in visits.occupancy
    ]


def csv_export(session: Session, table: str, site: str | None, period: Period, lang: str = "nb") -> CsvFile:
    """One table as a CSV file for Norwegian Excel (see CSV_DELIMITER), one row per site and day, hour,
    kind of hours, room, quarter hour or reason; an unknown table is refused with the ones there are."""
    try:
        which = CsvTable(table)
    except ValueError:
        known = ", ".join(t.value for t in CsvTable)
        message = f"there is no statistics table {table[:40]!r}; there are: {known}"
        raise InvalidError(message, "table") from None
    sites = select_sites(session, site)
    header, rows = _csv_rows(session, which, sites, period, lang)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=CSV_DELIMITER, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return CsvFile(csv_filename(which, site, period, lang), (CSV_BOM + out.getvalue()).encode("utf-8"))
