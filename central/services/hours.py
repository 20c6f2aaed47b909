"""Opening hours (the weekly pattern), exceptions (closed days, special hours) and "is it open now?".

The weekly list is replaced as a whole (PUT), because hours are edited as one table and a partial update
would leave the week half old, half new. Validation is central.schedules' own, so the API accepts exactly
what the schedule logic can answer for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.db import utcnow
from central.models import OpeningException, OpeningHours, Site
from central.schedules import (
    DayException,
    ExceptionKind,
    HoursKind,
    ScheduleChange,
    SiteSchedule,
    WeeklyHours,
)
from central.services import audit
from central.services.errors import InvalidError, NotFoundError
from central.services.query import Slice, paginate
from central.services.sites import get_site


def _hours_of(session: Session, site: Site) -> list[OpeningHours]:
    return list(
        session.scalars(
            select(OpeningHours)
            .where(OpeningHours.site_id == site.id)
            .order_by(OpeningHours.kind, OpeningHours.weekday, OpeningHours.opens)
        )
    )


def list_hours(session: Session, site_slug: str) -> list[OpeningHours]:
    return _hours_of(session, get_site(session, site_slug))


def replace_hours(
    session: Session, actor: str, site_slug: str, hours: list[WeeklyHours]
) -> list[OpeningHours]:
    """Make `hours` the site's whole weekly pattern (both kinds)."""
    site = get_site(session, site_slug)
    for row in _hours_of(session, site):
        session.delete(row)
    session.flush()
    for item in hours:
        session.add(
            OpeningHours(
                site=site, weekday=item.weekday, opens=item.opens, closes=item.closes, kind=item.kind
            )
        )
    session.flush()
    audit.record(
        session,
        actor,
        "replace",
        "opening_hours",
        site_slug,
        {"hours": [f"{h.kind.value} {h.weekday} {h.opens:%H:%M}-{h.closes:%H:%M}" for h in hours]},
    )
    return _hours_of(session, site)


def list_exceptions(
    session: Session,
    site_slug: str,
    *,
    limit: int,
    offset: int,
    from_day: date | None = None,
    to_day: date | None = None,
) -> Slice[OpeningException]:
    site = get_site(session, site_slug)
    stmt = select(OpeningException).where(OpeningException.site_id == site.id)
    if from_day is not None:
        stmt = stmt.where(OpeningException.day >= from_day)
    if to_day is not None:
        stmt = stmt.where(OpeningException.day <= to_day)
    return paginate(session, stmt.order_by(OpeningException.day, OpeningException.id), limit, offset)


def get_exception(session: Session, site_slug: str, exception_id: int) -> OpeningException:
    site = get_site(session, site_slug)
    row = session.get(OpeningException, exception_id)
    if row is None or row.site_id != site.id:
        raise NotFoundError(f"opening exception {exception_id} does not exist at site '{site_slug}'")
    return row


def add_exception(session: Session, actor: str, site_slug: str, fields: dict[str, Any]) -> OpeningException:
    """Add a closed day or special hours; the same checks as the schedule logic (special hours need both
    times, closing after opening)."""
    site = get_site(session, site_slug)
    values = dict(fields)
    kind = ExceptionKind(values["kind"])
    if kind is ExceptionKind.CLOSED and (values.get("opens") is not None or values.get("closes") is not None):
        raise InvalidError("a closed day takes no opening times (leave out opens and closes)", "opens")
    DayException(
        day=values["day"],
        kind=kind,
        opens=values.get("opens"),
        closes=values.get("closes"),
        hours_kind=HoursKind(values.get("hours_kind", HoursKind.MERAAPENT)),
        note=values.get("note", ""),
    )
    row = OpeningException(site=site, **values)
    session.add(row)
    session.flush()
    audit.record(session, actor, "create", "opening_exception", row.id, {"site": site_slug, **values})
    return row


def delete_exception(session: Session, actor: str, site_slug: str, exception_id: int) -> None:
    row = get_exception(session, site_slug, exception_id)
    session.delete(row)
    session.flush()
    audit.record(session, actor, "delete", "opening_exception", exception_id, {"site": site_slug})


def site_schedule(session: Session, site: Site) -> SiteSchedule:
    exceptions = session.scalars(select(OpeningException).where(OpeningException.site_id == site.id)).all()
    return SiteSchedule.from_rows(site, _hours_of(session, site), exceptions)


@dataclass(frozen=True)
class OpenNow:
    """The answer to "is the site open (for this kind of hours) at `at`?", with when that changes."""

    site: str
    kind: HoursKind
    at: datetime
    open: bool
    next_change: ScheduleChange | None
    closed_reason: str | None
    local_time: time


def open_now(
    session: Session, site_slug: str, kind: HoursKind = HoursKind.MERAAPENT, at: datetime | None = None
) -> OpenNow:
    site = get_site(session, site_slug)
    schedule = site_schedule(session, site)
    moment = at or utcnow()
    local = moment.astimezone(schedule.tz)
    is_open = schedule.is_open(moment, kind)
    return OpenNow(
        site=site.slug,
        kind=kind,
        at=moment,
        open=is_open,
        next_change=schedule.next_change(moment, kind),
        closed_reason=None if is_open else schedule.closed_reason(local.date()),
        local_time=local.time().replace(microsecond=0),
    )
