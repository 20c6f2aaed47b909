"""A site's configuration as its agent needs it: zones, doors, rooms, hours, holidays and groups.

The agent decides every door alone, so the config has to carry everything central's schedule rules use
(`central.schedules`): weekly hours, date exceptions, and the public holidays (plus Christmas Eve and New
Year's Eve, which central treats as closed too) for the next `HOLIDAY_DAYS` days.

Revision: the builders here leave `revision` to the caller. The gateway gives each new CONTENT a revision
and republishes the retained message only when what an agent would notice has changed (see
`central.gateway.publisher`).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.checkin import CheckinRules
from central.models import (
    AccessGroup,
    Door,
    GroupScheduleInterval,
    GroupZone,
    HoursKind,
    IssuedToken,
    OpeningException,
    OpeningHours,
    Room,
    Site,
    Zone,
)
from central.replica import UnknownSiteError
from central.schedules import CLOSED_EVES, MIDNIGHT, ExceptionKind, norwegian_holiday
from protocol import messages as m

HOLIDAY_DAYS = 400
# The wire format wants opens < closes; central stores "until midnight" as 00:00.
END_OF_DAY = time(23, 59, 59, 999999)


def _wire_end(value: time) -> time:
    return END_OF_DAY if value == MIDNIGHT else value


def closed_days(today: date, days: int = HOLIDAY_DAYS) -> list[date]:
    """Public holidays and the closed eves from `today` for `days` days (Sundays are not holidays)."""
    found = []
    for offset in range(days):
        day = today + timedelta(days=offset)
        if norwegian_holiday(day) or (day.month, day.day) in CLOSED_EVES:
            found.append(day)
    return found


def _zones(session: Session, site_id: int) -> dict[int, Zone]:
    rows = session.execute(select(Zone).where(Zone.site_id == site_id).order_by(Zone.slug)).scalars()
    return {zone.id: zone for zone in rows}


def _doors(session: Session, site_id: int, zones: dict[int, Zone]) -> list[m.Door]:
    rows = session.execute(select(Door).where(Door.site_id == site_id).order_by(Door.slug)).scalars()
    return [
        m.Door(
            slug=d.slug,
            name=d.name,
            zone=zones[d.zone_id].slug,
            kind=m.DoorKind(d.kind.value),
            unlock_seconds=d.unlock_seconds,
            held_open_seconds=d.held_open_seconds,
            lock_type=m.LockType(d.lock_type.value),
        )
        for d in rows
    ]


def _rooms(session: Session, site_id: int, zones: dict[int, Zone]) -> list[m.Room]:
    door_slugs = dict(session.execute(select(Door.id, Door.slug).where(Door.site_id == site_id)).all())
    rows = session.execute(select(Room).where(Room.site_id == site_id).order_by(Room.slug)).scalars()
    return [
        m.Room(
            slug=r.slug,
            name=r.name,
            zone=zones[r.zone_id].slug,
            door=None if r.door_id is None else door_slugs.get(r.door_id),
            capacity=r.capacity,
        )
        for r in rows
    ]


def _hours(session: Session, site_id: int) -> list[m.Hours]:
    rows = session.execute(
        select(OpeningHours)
        .where(OpeningHours.site_id == site_id)
        .order_by(OpeningHours.kind, OpeningHours.weekday, OpeningHours.opens)
    ).scalars()
    return [
        m.Hours(weekday=h.weekday, opens=h.opens, closes=_wire_end(h.closes), kind=m.HoursKind(h.kind.value))
        for h in rows
    ]


def _exceptions(session: Session, site_id: int, today: date) -> list[m.HoursException]:
    """Closed days, and special meråpent hours (the agent runs doors, so special staffed hours stay here)."""
    rows = session.execute(
        select(OpeningException)
        .where(OpeningException.site_id == site_id, OpeningException.day >= today)
        .order_by(OpeningException.day, OpeningException.opens)
    ).scalars()
    found = []
    for e in rows:
        if e.kind is ExceptionKind.CLOSED:
            found.append(m.HoursException(day=e.day, kind=m.ExceptionKind.CLOSED, note=e.note))
        elif e.hours_kind is HoursKind.MERAAPENT and e.opens is not None and e.closes is not None:
            found.append(
                m.HoursException(
                    day=e.day,
                    kind=m.ExceptionKind.SPECIAL_HOURS,
                    opens=e.opens,
                    closes=_wire_end(e.closes),
                    note=e.note,
                )
            )
    return found


def _groups(session: Session, zones: dict[int, Zone]) -> list[m.AccessGroup]:
    """Groups with at least one zone at this site, with only this site's zones."""
    zone_rows = session.execute(
        select(GroupZone.group_id, GroupZone.zone_id).where(GroupZone.zone_id.in_(list(zones)))
    )
    zones_of: dict[int, list[str]] = {}
    for group_id, zone_id in zone_rows:
        zones_of.setdefault(group_id, []).append(zones[zone_id].slug)
    if not zones_of:
        return []
    groups = session.execute(
        select(AccessGroup).where(AccessGroup.id.in_(list(zones_of))).order_by(AccessGroup.slug)
    ).scalars()
    intervals: dict[int, list[m.Interval]] = {}
    interval_rows = session.execute(
        select(GroupScheduleInterval)
        .where(GroupScheduleInterval.group_id.in_(list(zones_of)))
        .order_by(GroupScheduleInterval.weekday, GroupScheduleInterval.starts)
    ).scalars()
    for i in interval_rows:
        intervals.setdefault(i.group_id, []).append(
            m.Interval(weekday=i.weekday, starts=i.starts, ends=_wire_end(i.ends))
        )
    return [
        m.AccessGroup(
            slug=g.slug, zones=sorted(zones_of[g.id]), any_time=g.any_time, intervals=intervals.get(g.id, [])
        )
        for g in groups
    ]


def build_site_config(
    session: Session, site_slug: str, now: datetime, revision: int = 0, *, checkin: CheckinRules | None = None
) -> m.SiteConfig:
    """The site's configuration as of `now`; `revision` is the caller's (see the module docstring);
    `checkin` is central's check-in window (default 15/15 minutes), which the site's kiosk applies too."""
    checkin = checkin or CheckinRules()
    site = session.execute(select(Site).where(Site.slug == site_slug)).scalar_one_or_none()
    if site is None:
        raise UnknownSiteError(f"site {site_slug!r} does not exist")
    today = now.astimezone(ZoneInfo(site.timezone)).date()
    zones = _zones(session, site.id)
    return m.SiteConfig(
        site=site.slug,
        name=site.name,
        revision=revision,
        issued_at=now,
        timezone=site.timezone,
        zones=[m.Zone(slug=z.slug, name=z.name) for z in zones.values()],
        doors=_doors(session, site.id, zones),
        rooms=_rooms(session, site.id, zones),
        hours=_hours(session, site.id),
        exceptions=_exceptions(session, site.id, today),
        closed_on_public_holidays=site.closed_on_public_holidays,
        public_holidays=closed_days(today) if site.closed_on_public_holidays else [],
        groups=_groups(session, zones),
        contact_phone=site.contact_phone or "",
        caretaker_phone=site.caretaker_phone or "",
        help_text_nb=site.help_text_nb,
        help_text_en=site.help_text_en,
        checkin_opens_minutes=_minutes(checkin.opens_before),
        checkin_closes_minutes=_minutes(checkin.closes_after),
    )


def _minutes(span: timedelta) -> int:
    return int(span.total_seconds() // 60)


def build_revocations(session: Session, site_slug: str, now: datetime, revision: int = 0) -> m.Revocations:
    """Phone tokens for this site revoked before they expire (expired ones need no list)."""
    site_id = session.execute(select(Site.id).where(Site.slug == site_slug)).scalar_one_or_none()
    if site_id is None:
        raise UnknownSiteError(f"site {site_slug!r} does not exist")
    rows = session.execute(
        select(IssuedToken.token_id, IssuedToken.expires_at)
        .where(
            IssuedToken.site_id == site_id,
            IssuedToken.revoked_at.is_not(None),
            IssuedToken.expires_at > now,
        )
        .order_by(IssuedToken.token_id)
    )
    return m.Revocations(
        site=site_slug,
        revision=revision,
        issued_at=now,
        tokens=[m.RevokedToken(token_id=token_id, expires_at=expires) for token_id, expires in rows],
    )
