"""/events, /alarms and /agents: what the sites reported (read-only, except acknowledging alarms)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import Field, StringConstraints

from central.api.auth import Staff
from central.api.deps import DbSession
from central.api.paging import Page, Paging, page_of
from central.api.routers.common import (
    MAX_ID,
    TEXT_PATTERN,
    Input,
    Output,
    PathId,
    PathSlug,
    Slug,
    UtcDateTime,
)
from central.models import Agent, Alarm, AlarmSeverity, Decision, Event, EventKind
from central.services import events as service
from protocol.messages import Reason

router = APIRouter(tags=["events"])

Since = Annotated[UtcDateTime | None, Query(description="From this moment (inclusive, UTC).")]
Until = Annotated[UtcDateTime | None, Query(description="Up to this moment (exclusive, UTC).")]


class EventOut(Output):
    id: int
    event_id: str
    site: str
    agent: str
    agent_seq: int
    device_time: datetime
    received_at: datetime
    kind: EventKind
    door: str | None
    credential_ref: str | None
    person_id: int | None
    decision: Decision | None
    reason: str | None
    data: dict[str, Any]


def _event(event: Event) -> EventOut:
    return EventOut(
        id=event.id,
        event_id=event.event_id,
        site=event.site.slug,
        agent=event.agent_client_id,
        agent_seq=event.agent_seq,
        device_time=event.device_time,
        received_at=event.received_at,
        kind=event.kind,
        door=event.door_slug,
        credential_ref=event.credential_ref,
        person_id=event.person_id,
        decision=event.decision,
        reason=event.reason,
        data=event.data or {},
    )


@router.get("/events", summary="Access, door and system events, newest first", tags=["events"])
def list_events(
    session: DbSession,
    _: Staff,
    paging: Paging,
    site: Slug | None = None,
    door: Slug | None = None,
    person_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    kind: EventKind | None = None,
    decision: Decision | None = None,
    reason: Reason | None = None,
    since: Since = None,
    until: Until = None,
) -> Page[EventOut]:
    flt = service.EventFilter(
        site=site,
        door=door,
        person_id=person_id,
        kind=kind,
        decision=decision,
        reason=None if reason is None else reason.value,
        since=since,
        until=until,
    )
    return page_of(service.list_events(session, flt, limit=paging.limit, offset=paging.offset), _event)


@router.get("/events/{event_id}", summary="Get an event", tags=["events"])
def get_event(session: DbSession, _: Staff, event_id: PathId) -> EventOut:
    return _event(service.get_event(session, event_id))


# --- alarms -----------------------------------------------------------------------------------------------


class AlarmOut(Output):
    id: int
    site: str
    door: str | None
    kind: str
    severity: AlarmSeverity
    raised_at: datetime
    cleared_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    comment: str = Field(description="The caretaker's comment when acknowledging.")
    detail: str = Field(description="What the site agent said when it raised the alarm.")


def _alarm(alarm: Alarm) -> AlarmOut:
    return AlarmOut(
        id=alarm.id,
        site=alarm.site.slug,
        door=alarm.door.slug if alarm.door is not None else None,
        kind=alarm.kind,
        severity=alarm.severity,
        raised_at=alarm.raised_at,
        cleared_at=alarm.cleared_at,
        acknowledged_at=alarm.acknowledged_at,
        acknowledged_by=alarm.acknowledged_by,
        comment=alarm.comment,
        detail=alarm.detail,
    )


@router.get("/alarms", summary="Alarms, newest first", tags=["alarms"])
def list_alarms(
    session: DbSession,
    _: Staff,
    paging: Paging,
    site: Slug | None = None,
    door: Slug | None = None,
    kind: Annotated[str | None, Query(pattern=r"^[a-z0-9_]{1,64}$", description="e.g. forced_open")] = None,
    severity: AlarmSeverity | None = None,
    acknowledged: Annotated[bool | None, Query(description="true: seen by a person; false: not yet.")] = None,
    active: Annotated[bool | None, Query(description="true: not cleared at the door yet.")] = None,
    since: Since = None,
    until: Until = None,
) -> Page[AlarmOut]:
    flt = service.AlarmFilter(
        site=site,
        door=door,
        kind=kind,
        severity=severity,
        acknowledged=acknowledged,
        active=active,
        since=since,
        until=until,
    )
    return page_of(service.list_alarms(session, flt, limit=paging.limit, offset=paging.offset), _alarm)


@router.get("/alarms/{alarm_id}", summary="Get an alarm", tags=["alarms"])
def get_alarm(session: DbSession, _: Staff, alarm_id: PathId) -> AlarmOut:
    return _alarm(service.get_alarm(session, alarm_id))


class AcknowledgeIn(Input):
    comment: Annotated[
        str,
        StringConstraints(strip_whitespace=True, max_length=2000, pattern=TEXT_PATTERN),
        Field(description="What was seen or done (e.g. 'door closed, nobody there')."),
    ] = ""


@router.post("/alarms/{alarm_id}/acknowledge", summary="Acknowledge an alarm with a comment", tags=["alarms"])
def acknowledge(session: DbSession, user: Staff, alarm_id: PathId, body: AcknowledgeIn) -> AlarmOut:
    return _alarm(service.acknowledge_alarm(session, user.username, alarm_id, body.comment))


# --- agents -----------------------------------------------------------------------------------------------


class AgentOut(Output):
    site: str
    client_id: str
    online: bool
    last_seen_at: datetime | None
    software_version: str | None
    replica_seq_applied: int
    last_status: dict[str, Any] | None


def _agent(agent: Agent) -> AgentOut:
    return AgentOut(
        site=agent.site.slug,
        client_id=agent.client_id,
        online=agent.online,
        last_seen_at=agent.last_seen_at,
        software_version=agent.software_version,
        replica_seq_applied=agent.replica_seq_applied,
        last_status=agent.last_status,
    )


@router.get(
    "/agents", summary="Site agents with their online state and when they were last heard", tags=["agents"]
)
def list_agents(
    session: DbSession, _: Staff, paging: Paging, site: Slug | None = None, online: bool | None = None
) -> Page[AgentOut]:
    found = service.list_agents(session, limit=paging.limit, offset=paging.offset, site=site, online=online)
    return page_of(found, _agent)


@router.get("/sites/{site}/agent", summary="The agent of one site", tags=["agents"])
def site_agent(session: DbSession, _: Staff, site: PathSlug) -> AgentOut:
    return _agent(service.site_agent(session, site))
