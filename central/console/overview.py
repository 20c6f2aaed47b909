"""Oversikt: every site, its agent, its open alarms and its doors, live.

The page is complete without JavaScript (a reload shows the state now); overview.js keeps it current from a
server-sent event stream. The stream polls the database, not the gateway, because central may run the
gateway in another process: a cheap fingerprint query each second, and the whole (small) view, in words,
only when the fingerprint moved and the words changed. A comment line every 15 s keeps proxies from closing
an idle stream; `retry:` tells EventSource how soon to come back after a break.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from central.api.deps import DbSession
from central.console.door_view import AgentRow, DoorRow, EventRow, Overview, OverviewRows, SiteRow, overview
from central.console.pages import PREFIX, Now, render, request_now
from central.console.session import Staff
from central.models import Agent, Alarm, Door, Event, Site, Zone
from central.services.staff_sign_in import active_staff
from central.web.pages import page_language

router = APIRouter(prefix=PREFIX, include_in_schema=False)

OVERVIEW = f"{PREFIX}/oversikt"
LIVE = f"{OVERVIEW}/live"
POLL_S = 1.0  # app.state.overview_poll_s overrides (tests)
HEARTBEAT_S = 15.0  # app.state.overview_heartbeat_s overrides (tests)
RETRY_MS = 3000
LAST_EVENT_WINDOW = timedelta(days=30)  # older "last events" are not worth an unindexed look back


# --- reading the database ----------------------------------------------------------------------------------


def load_rows(session: Session, now: datetime) -> OverviewRows:
    """Everything the overview shows, in a handful of queries."""
    sites = tuple(
        SiteRow(slug, name, timezone)
        for slug, name, timezone in session.execute(
            select(Site.slug, Site.name, Site.timezone).order_by(Site.name)
        )
    )
    agents = {
        slug: AgentRow(online, seen, version, _pending(status))
        for slug, online, seen, version, status in session.execute(
            select(
                Site.slug, Agent.online, Agent.last_seen_at, Agent.software_version, Agent.last_status
            ).join(Site, Site.id == Agent.site_id)
        )
    }
    doors = tuple(
        DoorRow(site, slug, name, state, at)
        for site, slug, name, state, at in session.execute(
            select(Site.slug, Door.slug, Door.name, Door.last_state, Door.last_state_at)
            .join(Site, Site.id == Door.site_id)
            .join(Zone, Zone.id == Door.zone_id)
            .order_by(Site.name, Zone.name, Door.name)
        )
    )
    return OverviewRows(
        sites=sites,
        agents=agents,
        doors=doors,
        last_events=last_events(session, now - LAST_EVENT_WINDOW),
        open_alarms={
            slug: count
            for slug, count in session.execute(
                select(Site.slug, func.count(Alarm.id))
                .join(Site, Site.id == Alarm.site_id)
                .where(Alarm.acknowledged_at.is_(None))  # open = no person has seen to it yet, as on Alarmer
                .group_by(Site.slug)
            )
        },
    )


def _pending(status: dict[str, Any] | None) -> int | None:
    value = (status or {}).get("outbox_pending")
    return value if isinstance(value, int) else None


def last_events(session: Session, since: datetime) -> dict[tuple[str, str | None], EventRow]:
    """The newest event of each door (and each site's own, door None) received since `since`."""
    newest = (
        select(func.max(Event.id))
        .where(Event.received_at >= since)
        .group_by(Event.site_id, Event.door_slug)
        .scalar_subquery()
    )
    rows = session.execute(
        select(
            Site.slug,
            Event.door_slug,
            Event.device_time,
            Event.kind,
            Event.decision,
            Event.reason,
            Event.data,
        )
        .join(Site, Site.id == Event.site_id)
        .where(Event.id.in_(newest))
    )
    found: dict[tuple[str, str | None], EventRow] = {}
    for site, door, at, kind, decision, reason, data in rows:
        data = data if isinstance(data, dict) else {}
        raised = data.get("raised")
        found[(site, door)] = EventRow(
            site=site,
            door=door,
            at=at,
            kind=str(kind),
            decision=None if decision is None else str(decision),
            reason=reason,
            raised=raised if isinstance(raised, bool) else None,
            detail=str(data.get("detail") or ""),
        )
    return found


def fingerprint(session: Session) -> Hashable:
    """Changes whenever something the overview shows may have changed (cheap: no event rows are read)."""
    events = session.execute(select(func.max(Event.id))).scalar()
    alarms = session.execute(
        select(
            func.max(Alarm.id),
            func.max(Alarm.cleared_at),
            func.max(Alarm.acknowledged_at),
            func.count(Alarm.id).filter(Alarm.acknowledged_at.is_(None)),
        )
    ).one()
    doors = session.execute(
        select(Door.id, Door.name, Door.last_state, Door.last_state_at).order_by(Door.id)
    ).all()
    agents = session.execute(
        select(Agent.site_id, Agent.online, Agent.last_seen_at, Agent.software_version).order_by(
            Agent.site_id
        )
    ).all()
    sites = session.execute(select(Site.id, Site.name).order_by(Site.id)).all()
    return (
        events,
        tuple(alarms),
        tuple(map(tuple, doors)),
        tuple(map(tuple, agents)),
        tuple(map(tuple, sites)),
    )


def view_json(view: Overview) -> str:
    return json.dumps(asdict(view), ensure_ascii=False, separators=(",", ":"))


# --- the page ----------------------------------------------------------------------------------------------


def commands_possible(gateway: Any) -> bool:
    """Whether this central can hand a command to the sites now (its gateway runs and is connected)."""
    if gateway is None:
        return False
    try:
        return bool(gateway.status().get("connected"))
    except Exception:  # a gateway that cannot even say how it is cannot send either
        return False


@router.get("/oversikt")
def overview_page(request: Request, session: DbSession, staff: Staff, now: Now) -> Response:
    view = overview(load_rows(session, now), page_language(request), now)
    context = {
        "active": "overview",
        "view": view,
        "live_url": LIVE,
        "commands_possible": commands_possible(request.app.state.gateway),
    }
    return render(request, "overview.html", context)


# --- the live stream ---------------------------------------------------------------------------------------


@router.get("/oversikt/live")
def live(request: Request, staff: Staff) -> Response:
    """The overview as server-sent events: the whole view in words whenever it changed.

    Staff only; without a signed-in staff member the answer is the redirect to the sign-in page, which is
    not an event stream, so EventSource stops asking."""
    sessions: sessionmaker[Session] = request.app.state.session_factory
    lang = page_language(request)

    def poll(last: Hashable | None) -> tuple[Hashable | None, str | None]:
        """(fingerprint, view) from a short session of its own; view None if unchanged; (None, None) once
        the staff member may no longer use the console."""
        with sessions() as polled:
            if active_staff(polled, staff.id) is None:
                return None, None
            mark = fingerprint(polled)
            if mark == last:
                return mark, None
            now = request_now(request)
            return mark, view_json(overview(load_rows(polled, now), lang, now))

    return StreamingResponse(
        stream(request, poll),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def stream(
    request: Request, poll: Callable[[Hashable | None], tuple[Hashable | None, str | None]]
) -> AsyncIterator[str]:
    poll_s = float(getattr(request.app.state, "overview_poll_s", POLL_S))
    heartbeat_s = float(getattr(request.app.state, "overview_heartbeat_s", HEARTBEAT_S))
    yield f"retry: {RETRY_MS}\n\n"
    mark: Hashable | None = None
    sent: str | None = None
    quiet_since = time.monotonic()
    while not await request.is_disconnected():
        mark, payload = await anyio.to_thread.run_sync(poll, mark)
        if mark is None:
            return  # signed out or deactivated: EventSource reconnects and is sent to sign in
        if payload is not None and payload != sent:
            sent = payload
            quiet_since = time.monotonic()
            yield f"event: overview\ndata: {payload}\n\n"
        elif time.monotonic() - quiet_since >= heartbeat_s:
            quiet_since = time.monotonic()
            yield ": still here\n\n"
        await anyio.sleep(poll_s)
