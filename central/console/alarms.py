"""Alarms: what needs a caretaker now, acknowledging it with what was done, and the history of handled ones.

Open alarms (not acknowledged yet, cleared at the door or not) come first, newest first: a forced door that
closed again still needs a person to say what they found. Acknowledging takes a one-line comment and goes
through central.services.events.acknowledge_alarm, which stamps who and when and writes the audit entry, so
the page and the API do exactly the same. An alarm is acknowledged once: a second try (another caretaker a
moment later, or a reload) says who did it and changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from central.api.deps import DbSession
from central.console.events import (
    ALARM_KINDS,
    CONTROL,
    MAX_ID,
    PAGE_SIZE,
    SitePlace,
    Translate,
    alarm_kind_words,
    pager,
    read_choice,
    read_page,
    read_period,
    request_translator,
    site_places,
    words,
    zone_of,
)
from central.console.pages import PREFIX, Now, local_time, redirect_with_notice, render
from central.console.session import Csrf, Staff
from central.models import Alarm, AlarmNotification, AlarmSeverity, Event
from central.services import events as service
from central.services.errors import ConflictError, NotFoundError

router = APIRouter(prefix=PREFIX, include_in_schema=False)
ALARMS = f"{PREFIX}/alarmer"
OPEN_SHOWN = 50
MAX_COMMENT = 300
# Severity is told by a word and a symbol as well as the colour (WCAG 1.4.1).
SEVERITY_LOOK = {"critical": ("bad", "‼"), "warning": ("warn", "!"), "info": ("muted", "i")}
STATES = ("open", "acknowledged", "all")
FIELDS = ("site", "severity", "kind", "state", "from", "to", "page")


@dataclass(frozen=True)
class AlarmRow:
    id: int
    severity: str
    look: str  # badge class
    symbol: str
    site: str
    door: str  # empty for the whole site (an agent offline)
    kind: str  # in words
    raised: str  # in the site's time
    cleared: str  # in the site's time; empty while still active
    acknowledged_at: str
    acknowledged_by: str
    comment: str  # the caretaker's, once acknowledged
    detail: str  # what the agent said, while not acknowledged
    repeats: int  # repeats the notifier folded into this alarm's notification


def repeat_counts(session: Session, alarm_ids: Sequence[int]) -> dict[int, int]:
    """How many later alarms of the same door and kind were folded into each alarm's notification."""
    if not alarm_ids:
        return {}
    stmt = select(AlarmNotification.alarm_id, AlarmNotification.repeats).where(
        AlarmNotification.alarm_id.in_(alarm_ids), AlarmNotification.repeats > 0
    )
    return {alarm_id: repeats for alarm_id, repeats in session.execute(stmt)}


def alarm_rows(session: Session, t: Translate, alarms: Sequence[Alarm]) -> list[AlarmRow]:
    repeats = repeat_counts(session, [a.id for a in alarms])
    return [alarm_row(t, a, repeats.get(a.id, 0)) for a in alarms]


def alarm_row(t: Translate, alarm: Alarm, repeats: int = 0) -> AlarmRow:
    zone = alarm.site.timezone
    severity = alarm.severity.value
    look, symbol = SEVERITY_LOOK.get(severity, ("muted", "?"))
    return AlarmRow(
        id=alarm.id,
        severity=words(t, f"console.severity.{severity}", severity),
        look=look,
        symbol=symbol,
        site=alarm.site.name,
        door=alarm.door.name if alarm.door is not None else "",
        kind=alarm_kind_words(t, alarm.kind),
        raised=local_time(alarm.raised_at, zone),
        cleared=local_time(alarm.cleared_at, zone),
        acknowledged_at=local_time(alarm.acknowledged_at, zone),
        acknowledged_by=alarm.acknowledged_by or "",
        comment=alarm.comment,
        detail=alarm.detail,
        repeats=repeats,
    )


def comment_error(comment: str) -> str | None:
    """The message key for a comment that will not do: a caretaker says in one line what they did."""
    if not comment:
        return "console.alarms.error.comment_required"
    if len(comment) > MAX_COMMENT:
        return "console.alarms.error.comment_too_long"
    if CONTROL.search(comment):
        return "console.alarms.error.comment_one_line"
    return None


# --- the history search -------------------------------------------------------------------------------------


@dataclass
class AlarmSearch:
    values: dict[str, str]
    flt: service.AlarmFilter = field(default_factory=service.AlarmFilter)
    page: int = 1
    errors: dict[str, str] = field(default_factory=dict)


def read_alarm_search(params: Mapping[str, str], sites: Mapping[str, SitePlace]) -> AlarmSearch:
    """The history's filters; without a state it shows what has been handled (acknowledged)."""
    values = {name: params.get(name, "").strip() for name in FIELDS}
    values["state"] = values["state"] or "acknowledged"
    errors: dict[str, str] = {}
    site = read_choice(params, "site", sites, errors, "console.events.filter.error.unknown_site")
    severity = read_choice(params, "severity", {s.value for s in AlarmSeverity}, errors)
    kind = read_choice(params, "kind", ALARM_KINDS, errors)
    state = read_choice(values, "state", STATES, errors) or "acknowledged"
    since, until = read_period(params, zone_of(sites, site), errors)
    page = read_page(params, errors)
    flt = service.AlarmFilter(
        site=site,
        kind=kind,
        severity=AlarmSeverity(severity) if severity else None,
        acknowledged={"open": False, "acknowledged": True}.get(state),
        since=since,
        until=until,
    )
    return AlarmSearch(values=values, flt=flt, page=page, errors=errors)


# --- pages --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AckProblem:
    """Why an acknowledgement did not happen: a comment that will not do, or someone was first."""

    alarm_id: int
    comment: str = ""
    error: str | None = None  # message key for the comment field
    already: dict[str, str] | None = None  # who acknowledged it, and when (site time)


@router.get("/alarmer")
def alarms_page(request: Request, session: DbSession, staff: Staff) -> Response:
    return _list_page(request, session)


def _list_page(
    request: Request, session: Session, problem: AckProblem | None = None, status_code: int = 200
) -> Response:
    t = request_translator(request)
    sites = site_places(session)
    search = read_alarm_search(request.query_params, sites)
    unacknowledged = service.AlarmFilter(acknowledged=False)
    open_now = service.list_alarms(session, unacknowledged, limit=OPEN_SHOWN, offset=0)
    context: dict[str, Any] = {
        "active": "alarms",
        "sites": sites,
        "search": search,
        "open_rows": alarm_rows(session, t, open_now.items),
        "open_total": open_now.total,
        "kinds": ALARM_KINDS,
        "severities": [s.value for s in AlarmSeverity],
        "states": STATES,
        "history": [],
        "pager": None,
        "problem": problem,
    }
    if search.errors:
        return render(request, "alarms.html", context, status_code=max(status_code, 422))
    history = service.list_alarms(session, search.flt, limit=PAGE_SIZE, offset=(search.page - 1) * PAGE_SIZE)
    context["history"] = alarm_rows(session, t, history.items)
    context["pager"] = pager(ALARMS, search.values, search.page, history.total)
    return render(request, "alarms.html", context, status_code=status_code)


def _alarm_or_404(session: Session, alarm_id: int) -> Alarm:
    if not 1 <= alarm_id <= MAX_ID:
        raise HTTPException(404)
    try:
        return service.get_alarm(session, alarm_id)
    except NotFoundError as missing:
        raise HTTPException(404) from missing


@router.get("/alarmer/{alarm_id:int}")
def alarm_page(request: Request, session: DbSession, staff: Staff, alarm_id: int) -> Response:
    return _detail_page(request, session, _alarm_or_404(session, alarm_id))


def _detail_page(
    request: Request,
    session: Session,
    alarm: Alarm,
    problem: AckProblem | None = None,
    status_code: int = 200,
) -> Response:
    t = request_translator(request)
    event = None
    if alarm.event_id is not None:
        event = session.scalars(select(Event).where(Event.event_id == alarm.event_id)).one_or_none()
    zone = alarm.site.timezone
    context = {
        "active": "alarms",
        "alarm": alarm_row(t, alarm, repeat_counts(session, [alarm.id]).get(alarm.id, 0)),
        "acknowledged": alarm.acknowledged_at is not None,
        "event": event,
        "event_when": local_time(event.device_time, zone, "%d.%m.%Y %H:%M:%S") if event else "",
        "event_detail": str((event.data or {}).get("detail") or "") if event else "",
        "problem": problem,
    }
    return render(request, "alarm.html", context, status_code=status_code)


@router.post("/alarmer/{alarm_id:int}/kvitter")
def acknowledge(
    request: Request,
    session: DbSession,
    staff: Staff,
    now: Now,
    _: Csrf,
    alarm_id: int,
    comment: Annotated[str, Form()] = "",
    back: Annotated[str, Form()] = "list",
) -> Response:
    """Acknowledge with a comment; back to the list or the alarm's own page, whichever the form was on."""
    alarm = _alarm_or_404(session, alarm_id)
    text = comment.strip()
    problem, status = None, 200
    if alarm.acknowledged_at is not None:
        problem, status = _already(alarm, text), 409
    elif (error := comment_error(text)) is not None:
        problem, status = AckProblem(alarm_id, text[: MAX_COMMENT * 2], error=error), 422
    else:
        try:
            service.acknowledge_alarm(session, staff.username, alarm_id, text, now)
        except ConflictError:  # another caretaker got there between our read and write
            session.refresh(alarm)
            problem, status = _already(alarm, text), 409
    if problem is None:
        target = f"{ALARMS}/{alarm_id}" if back == "detail" else ALARMS
        return redirect_with_notice(request, target, "console.alarms.acknowledged", id=alarm_id)
    if back == "detail":
        return _detail_page(request, session, alarm, problem, status)
    return _list_page(request, session, problem, status)


def _already(alarm: Alarm, comment: str) -> AckProblem:
    when = local_time(alarm.acknowledged_at, alarm.site.timezone)
    return AckProblem(alarm.id, comment, already={"who": alarm.acknowledged_by or "", "when": when})
