"""What a signed-in resident may do today: where and when they may come, which doors they may open now, and
their bookings with the check-in window. The phone page ("Min nøkkel") shows this.

The rules are the agent's (controller/decide.py), computed from central's rows so the page never promises a
door the agent would refuse: a group opens the doors of its zones any time (`any_time`), or while the site
is open (meråpent or staffed hours, exceptions and holidays as in central.schedules) and within the group's
own weekly intervals if it has any; a live booking opens the site's entrances, the doors of the room's zone
and the room's own door from `BOOKING_MARGIN` before its start until that long after its end, for its
holder and its co-holders alike (a co-holder may check it in too, but only the holder extends or ends it).
A person who is blocked, a minor without a guardian's consent, or someone without a usable phone credential
gets the reason instead of a day.

Plain functions over the database with `now` passed in (an injectable clock); times out are UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from central.checkin import CheckinRules, window
from central.models import (
    AccessGroup,
    Booking,
    BookingCoHolder,
    BookingStatus,
    Door,
    DoorKind,
    GroupMember,
    Person,
    Room,
    Site,
    Zone,
)
from central.replica import LIVE_BOOKING_STATUSES, is_minor
from central.schedules import MIDNIGHT, HoursKind, Interval
from central.services.credentials import phone_refusal
from central.services.hours import site_schedule
from central.services.people import get_person
from protocol import messages as m

BOOKING_MARGIN = timedelta(minutes=15)  # the agent's DEFAULT_BOOKING_MARGIN (controller/decide.py)
_OSLO = ZoneInfo("Europe/Oslo")


@dataclass(frozen=True)
class DoorNow:
    slug: str
    name: str


@dataclass(frozen=True)
class BookingToday:
    """A booking the person holds or co-holds that touches today, with what they may do about it now."""

    id: int
    title: str
    room: str
    starts_at: datetime
    ends_at: datetime
    status: BookingStatus
    checkin_opens: datetime
    checkin_closes: datetime
    can_check_in: bool
    can_extend: bool
    can_end: bool
    is_holder: bool  # else a co-holder: may check in, not extend or end
    checkin_code: str | None = None  # typed at the site's kiosk; None once the booking is over


@dataclass(frozen=True)
class SiteToday:
    """One site in the person's day. `intervals` are when they may come (UTC, merged, within the site's
    local day); `zones` are the zone slugs a phone token for today must name (groups and bookings)."""

    slug: str
    name: str
    timezone: str
    intervals: tuple[Interval, ...]
    doors: tuple[DoorNow, ...]
    bookings: tuple[BookingToday, ...]
    zones: tuple[str, ...]

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class MyDay:
    """The person's day; `refusal` (then no sites) says why their phone cannot be a key at all."""

    person_id: int
    day: date
    refusal: m.Reason | None
    sites: tuple[SiteToday, ...]

    def site(self, slug: str) -> SiteToday | None:
        return next((s for s in self.sites if s.slug == slug), None)


def person_refusal(person: Person, now: datetime) -> m.Reason | None:
    """Why this person's phone opens nothing at all now, or None."""
    if person.blocked:
        return m.Reason.PERSON_BLOCKED
    if is_minor(person.birth_year, now.astimezone(_OSLO).year) and not person.guardian_consent:
        return m.Reason.CONSENT_MISSING
    return phone_refusal(person.credentials, now)


def my_day(session: Session, person_id: int, now: datetime, rules: CheckinRules) -> MyDay:
    """The person's access and bookings today (each site's own local day); NotFoundError if no such person."""
    if now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    person = get_person(session, person_id)
    today = now.astimezone(_OSLO).date()
    refusal = person_refusal(person, now)
    if refusal is not None:
        return MyDay(person.id, today, refusal, ())
    groups = _groups_of(session, person.id)
    bookings = _bookings_of(session, person.id, now)
    site_ids = {zone.site_id for group in groups for zone in group.zones}
    site_ids |= {booking.room.site_id for booking in bookings}
    sites = session.scalars(select(Site).where(Site.id.in_(site_ids)).order_by(Site.name)).all()
    days = [_site_today(session, person.id, site, groups, bookings, now, rules) for site in sites]
    shown = [d for d in days if d.intervals or d.bookings]
    shown.sort(key=lambda d: (not d.doors, d.intervals[0][0] if d.intervals else now, d.name))
    return MyDay(person.id, today, None, tuple(shown))


def _groups_of(session: Session, person_id: int) -> list[AccessGroup]:
    return list(
        session.scalars(
            select(AccessGroup)
            .join(GroupMember, GroupMember.group_id == AccessGroup.id)
            .where(GroupMember.person_id == person_id)
            .options(selectinload(AccessGroup.zones), selectinload(AccessGroup.intervals))
        )
    )


def _bookings_of(session: Session, person_id: int, now: datetime) -> list[Booking]:
    """Bookings the person holds or co-holds that end after yesterday and start before tomorrow (UTC,
    generously): each site's own local day is cut out of these later."""
    co_held = select(BookingCoHolder.booking_id).where(BookingCoHolder.person_id == person_id)
    return list(
        session.scalars(
            select(Booking)
            .where(
                or_(Booking.holder_id == person_id, Booking.id.in_(co_held)),
                Booking.ends_at > now - timedelta(days=2),
                Booking.starts_at < now + timedelta(days=2),
            )
            .options(selectinload(Booking.room).selectinload(Room.door))
            .order_by(Booking.starts_at, Booking.id)
        )
    )


def _local_day(day: date, tz: ZoneInfo) -> Interval:
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return start, end


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        elif start < end:
            merged.append((start, end))
    return merged


def _intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    return _merge((max(s1, s2), min(e1, e2)) for s1, e1 in a for s2, e2 in b if max(s1, s2) < min(e1, e2))


def _group_local_intervals(group: AccessGroup, day: date, tz: ZoneInfo) -> list[Interval]:
    """The group's own intervals on `day` in UTC (00:00 as an end means the end of the day)."""
    found = []
    for interval in group.intervals:
        if interval.weekday != day.weekday():
            continue
        end_day = day + timedelta(days=1) if interval.ends == MIDNIGHT else day
        start = datetime.combine(day, interval.starts, tzinfo=tz).astimezone(UTC)
        found.append((start, datetime.combine(end_day, interval.ends, tzinfo=tz).astimezone(UTC)))
    return found


def _in_force(group: AccessGroup, open_spans: Sequence[Interval], day: date, tz: ZoneInfo) -> list[Interval]:
    """When the group lets its members in on `day`: all day, the site's opening, or that cut to its own."""
    if group.any_time:
        return [_local_day(day, tz)]
    if not group.intervals:
        return list(open_spans)
    return _intersect(open_spans, _group_local_intervals(group, day, tz))


def _booking_window(booking: Booking) -> Interval:
    return booking.starts_at - BOOKING_MARGIN, booking.ends_at + BOOKING_MARGIN


def _booking_opens(booking: Booking, door: Door) -> bool:
    """The agent's `SiteView.booking_opens`: an entrance, a door of the room's zone, or its own door."""
    room = booking.room
    return door.kind is DoorKind.ENTRANCE or door.zone_id == room.zone_id or room.door_id == door.id


def _site_today(
    session: Session,
    person_id: int,
    site: Site,
    groups: Sequence[AccessGroup],
    bookings: Sequence[Booking],
    now: datetime,
    rules: CheckinRules,
) -> SiteToday:
    schedule = site_schedule(session, site)
    tz = schedule.tz
    day = now.astimezone(tz).date()
    day_span = _local_day(day, tz)
    open_spans = _merge(i for kind in HoursKind for i in schedule.open_intervals(day, kind))
    site_groups = [g for g in groups if any(z.site_id == site.id for z in g.zones)]
    group_spans = {g.id: _in_force(g, open_spans, day, tz) for g in site_groups}
    here = [b for b in bookings if b.room.site_id == site.id]
    live = [b for b in here if b.status in LIVE_BOOKING_STATUSES]
    spans = [s for g in site_groups for s in group_spans[g.id]] + [_booking_window(b) for b in live]
    intervals = _intersect(_merge(spans), [day_span])
    doors = session.scalars(select(Door).where(Door.site_id == site.id).order_by(Door.name)).all()
    open_now = [
        DoorNow(d.slug, d.name) for d in doors if _door_open_now(d, site_groups, group_spans, live, now)
    ]
    today = [b for b in here if b.starts_at < day_span[1] and b.ends_at > day_span[0]]
    return SiteToday(
        slug=site.slug,
        name=site.name,
        timezone=site.timezone,
        intervals=tuple(intervals),
        doors=tuple(open_now),
        bookings=tuple(_booking_today(b, now, rules, b.holder_id == person_id) for b in today),
        zones=_token_zones(session, site, site_groups, [b for b in live if b in today], doors),
    )


def _door_open_now(
    door: Door,
    groups: Sequence[AccessGroup],
    spans: dict[int, list[Interval]],
    live: Sequence[Booking],
    now: datetime,
) -> bool:
    for group in groups:
        if any(z.id == door.zone_id for z in group.zones) and any(s <= now < e for s, e in spans[group.id]):
            return True
    for booking in live:
        start, end = _booking_window(booking)
        if start <= now <= end and _booking_opens(booking, door):
            return True
    return False


def _token_zones(
    session: Session,
    site: Site,
    groups: Sequence[AccessGroup],
    bookings: Sequence[Booking],
    doors: Sequence[Door],
) -> tuple[str, ...]:
    """The zones a phone token for today names: the groups' zones here, and every zone with a door on the
    path to a booked room (its zone, its own door's zone, the entrances' zones)."""
    zone_ids = {z.id for g in groups for z in g.zones if z.site_id == site.id}
    for booking in bookings:
        zone_ids |= {d.zone_id for d in doors if _booking_opens(booking, d)}
        zone_ids.add(booking.room.zone_id)
    if not zone_ids:
        return ()
    slugs = session.scalars(select(Zone.slug).where(Zone.id.in_(zone_ids)).order_by(Zone.slug))
    return tuple(slugs)


def _booking_today(booking: Booking, now: datetime, rules: CheckinRules, is_holder: bool) -> BookingToday:
    """What the person may do about the booking now; extending and ending it are the holder's alone."""
    opens, closes = window(booking.starts_at, rules)
    live = booking.status in LIVE_BOOKING_STATUSES and now < booking.ends_at
    return BookingToday(
        id=booking.id,
        title=booking.title,
        room=booking.room.name,
        starts_at=booking.starts_at,
        ends_at=booking.ends_at,
        status=booking.status,
        checkin_opens=opens,
        checkin_closes=closes,
        can_check_in=booking.status is BookingStatus.CONFIRMED and opens <= now < closes,
        can_extend=is_holder and live and now >= opens,
        can_end=is_holder and live and booking.starts_at < now,
        is_holder=is_holder,
        checkin_code=booking.checkin_code if live else None,
    )
