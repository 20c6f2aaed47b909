"""What the site agents reported: access events, alarms, and the agents themselves (read side).

Events and alarms are written by the gateway; the API only reads them, except that a caretaker
acknowledges an alarm (with a comment saying what was done).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from central.db import utcnow
from central.models import Agent, Alarm, AlarmSeverity, Decision, Door, Event, EventKind, Person
from central.services import audit
from central.services.errors import ConflictError, NotFoundError
from central.services.query import Slice, like_pattern, paginate
from central.services.sites import get_site


@dataclass(frozen=True)
class EventFilter:
    site: str | None = None
    door: str | None = None
    person_id: int | None = None
    person_name: str | None = None  # part of the person's name, any case (pseudonymised events never match)
    kind: EventKind | None = None
    decision: Decision | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_events(session: Session, flt: EventFilter, *, limit: int, offset: int) -> Slice[Event]:
    """Newest first (by device time: when it happened at the door, not when central heard of it)."""
    stmt = select(Event).options(joinedload(Event.site))
    if flt.site is not None:
        stmt = stmt.where(Event.site_id == get_site(session, flt.site).id)
    if flt.door is not None:
        stmt = stmt.where(Event.door_slug == flt.door)
    if flt.person_id is not None:
        stmt = stmt.where(Event.person_id == flt.person_id)
    if flt.person_name is not None:
        named = select(Person.id).where(Person.display_name.ilike(like_pattern(flt.person_name), escape="\\"))
        stmt = stmt.where(Event.person_id.in_(named))
    if flt.kind is not None:
        stmt = stmt.where(Event.kind == flt.kind)
    if flt.decision is not None:
        stmt = stmt.where(Event.decision == flt.decision)
    if flt.reason is not None:
        stmt = stmt.where(Event.reason == flt.reason)
    if flt.since is not None:
        stmt = stmt.where(Event.device_time >= flt.since)
    if flt.until is not None:
        stmt = stmt.where(Event.device_time < flt.until)
    return paginate(session, stmt.order_by(Event.device_time.desc(), Event.id.desc()), limit, offset)


def get_event(session: Session, event_id: int) -> Event:
    event = session.get(Event, event_id)
    if event is None:
        raise NotFoundError(f"event {event_id} does not exist")
    return event


@dataclass(frozen=True)
class AlarmFilter:
    site: str | None = None
    door: str | None = None
    kind: str | None = None
    severity: AlarmSeverity | None = None
    acknowledged: bool | None = None
    active: bool | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_alarms(session: Session, flt: AlarmFilter, *, limit: int, offset: int) -> Slice[Alarm]:
    """Newest first. `active` = not cleared at the door yet; `acknowledged` = a person has seen it."""
    stmt = select(Alarm).options(joinedload(Alarm.site), joinedload(Alarm.door))
    if flt.site is not None:
        site = get_site(session, flt.site)
        stmt = stmt.where(Alarm.site_id == site.id)
        if flt.door is not None:
            stmt = stmt.join(Door, Door.id == Alarm.door_id).where(Door.slug == flt.door)
    elif flt.door is not None:
        stmt = stmt.join(Door, Door.id == Alarm.door_id).where(Door.slug == flt.door)
    if flt.kind is not None:
        stmt = stmt.where(Alarm.kind == flt.kind)
    if flt.severity is not None:
        stmt = stmt.where(Alarm.severity == flt.severity)
    if flt.acknowledged is not None:
        column = Alarm.acknowledged_at
        stmt = stmt.where(column.is_not(None) if flt.acknowledged else column.is_(None))
    if flt.active is not None:
        stmt = stmt.where(Alarm.cleared_at.is_(None) if flt.active else Alarm.cleared_at.is_not(None))
    if flt.since is not None:
        stmt = stmt.where(Alarm.raised_at >= flt.since)
    if flt.until is not None:
        stmt = stmt.where(Alarm.raised_at < flt.until)
    return paginate(session, stmt.order_by(Alarm.raised_at.desc(), Alarm.id.desc()), limit, offset)


def get_alarm(session: Session, alarm_id: int) -> Alarm:
    alarm = session.get(Alarm, alarm_id)
    if alarm is None:
        raise NotFoundError(f"alarm {alarm_id} does not exist")
    return alarm


def acknowledge_alarm(
    session: Session, actor: str, alarm_id: int, comment: str, now: datetime | None = None
) -> Alarm:
    """Record that `actor` has seen the alarm and what they did; an alarm is acknowledged once, also when two
    caretakers press at the same moment (one conditional UPDATE: the second finds it taken)."""
    get_alarm(session, alarm_id)
    taken = session.execute(
        update(Alarm)
        .where(Alarm.id == alarm_id, Alarm.acknowledged_at.is_(None))
        .values(acknowledged_at=now or utcnow(), acknowledged_by=actor, comment=comment)
        .execution_options(synchronize_session=False)
    )
    alarm = get_alarm(session, alarm_id)
    session.refresh(alarm)
    if not getattr(taken, "rowcount", 0):
        raise ConflictError(
            f"alarm {alarm_id} was already acknowledged by {alarm.acknowledged_by} "
            f"at {alarm.acknowledged_at:%Y-%m-%d %H:%M} UTC"
        )
    audit.record(session, actor, "acknowledge", "alarm", alarm.id, {"comment": comment})
    return alarm


def list_agents(
    session: Session, *, limit: int, offset: int, site: str | None = None, online: bool | None = None
) -> Slice[Agent]:
    stmt = select(Agent).options(joinedload(Agent.site))
    if site is not None:
        stmt = stmt.where(Agent.site_id == get_site(session, site).id)
    if online is not None:
        stmt = stmt.where(Agent.online == online)
    return paginate(session, stmt.order_by(Agent.client_id), limit, offset)


def site_agent(session: Session, site_slug: str) -> Agent:
    site = get_site(session, site_slug)
    agent = session.scalars(select(Agent).where(Agent.site_id == site.id)).one_or_none()
    if agent is None:
        raise NotFoundError(f"no agent has reported from site '{site_slug}' yet")
    return agent
