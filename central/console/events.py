"""The event log: who was let in or refused where and when, and what the doors and agents reported.

A caretaker asks questions like "who was refused at Holmen's main door last night, and why?", so the page
searches by site, door, person (by name), decision, deny reason, kind and a period in the site's own time.
Reading filters is a pure function that returns the filter or the message for each wrong field, so a bad
search is the page again with the message next to the field (422), never a traceback. Card UIDs are never
shown: events hold only credential references, and the detail page leaves out anything that looks like one.

The period and paging helpers here are shared with the alarm history (central.console.alarms).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from central.api.deps import DbSession
from central.console.pages import OSLO, PREFIX, local_time, render
from central.console.session import Staff
from central.models import Alarm, Decision, Door, Event, EventKind, Person, Site
from central.retention import PSEUDONYM_PREFIX
from central.services import events as service
from central.services.errors import NotFoundError
from central.web.pages import page_language, translator
from protocol import i18n
from protocol.messages import AlarmKind, CheckInVia, Method, Reason

router = APIRouter(prefix=PREFIX, include_in_schema=False)
EVENTS = f"{PREFIX}/hendelser"
PAGE_SIZE = 50
MAX_PAGE = 100_000
MAX_ID = 2**31 - 1
MAX_NAME = 200
GRANT_REASONS = (
    Reason.SCHEDULE,
    Reason.ANY_TIME,
    Reason.BOOKING,
    Reason.REMOTE_UNLOCK,
    Reason.EXIT_REQUEST,
    Reason.FIRE_RELEASE,
)
DENY_REASONS = tuple(r for r in Reason if r not in GRANT_REASONS)
ALARM_KINDS = (*(k.value for k in AlarmKind), "agent_offline")  # agent_offline: raised by central itself
METHODS = frozenset(m.value for m in Method) | frozenset(v.value for v in CheckInVia)
# Keys in an event's data that are never shown: card UIDs or their hashes, codes, PINs, person references.
HIDDEN_DATA = re.compile(r"uid|code|pin|hash|secret|token|person_ref", re.IGNORECASE)
# What <input type=datetime-local> sends: minutes, or seconds when the step asks for them.
LOCAL_INPUT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?", re.ASCII)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
NUMBER = re.compile(r"[0-9]{1,10}")  # ASCII digits only: str.isdigit() also takes "²", which int() refuses

Translate = Callable[..., str]


# --- shared with the alarm pages ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SitePlace:
    """A site as the filters need it: its name, time zone and doors (slug -> name)."""

    slug: str
    name: str
    timezone: str
    doors: dict[str, str]


def site_places(session: Session) -> dict[str, SitePlace]:
    """Every site with its doors, by slug, in name order (a municipality has a handful)."""
    doors: dict[int, dict[str, str]] = {}
    rows = session.execute(select(Door.site_id, Door.slug, Door.name).order_by(Door.name))
    for site_id, slug, name in rows:
        doors.setdefault(site_id, {})[slug] = name
    sites = session.scalars(select(Site).order_by(Site.name, Site.slug)).all()
    return {s.slug: SitePlace(s.slug, s.name, s.timezone, doors.get(s.id, {})) for s in sites}


def words(t: Translate, key: str, fallback: str) -> str:
    """The catalogue's text for `key`, or `fallback` for a value newer than the catalogue."""
    return t(key) if key in i18n.catalogue() else fallback


def alarm_kind_words(t: Translate, kind: str) -> str:
    return words(t, f"console.alarm_kind.{kind}", kind)


def parse_local(text: str, zone: str | ZoneInfo) -> datetime:
    """A datetime-local input ("2026-11-23T19:30") in the site's zone, as an aware UTC-comparable time."""
    if not LOCAL_INPUT.fullmatch(text):
        raise ValueError(text)
    tz = ZoneInfo(zone) if isinstance(zone, str) else zone
    value = datetime.fromisoformat(text).replace(tzinfo=tz)
    if not 1970 <= value.year <= 9998:  # year 1 in Oslo is before year 1 in UTC: out of datetime's range
        raise ValueError(text)
    return value


def read_period(
    params: Mapping[str, str], zone: str | ZoneInfo, errors: dict[str, str]
) -> tuple[datetime | None, datetime | None]:
    """The `from`/`to` fields (site time); a wrong one gets its message in `errors` and counts as empty."""
    found: dict[str, datetime | None] = {}
    for name in ("from", "to"):
        text = params.get(name, "").strip()
        found[name] = None
        if text:
            try:
                found[name] = parse_local(text, zone)
            except ValueError:
                errors[name] = "console.events.filter.error.bad_time"
    since, until = found["from"], found["to"]
    if since is not None and until is not None and until <= since:
        errors["to"] = "console.events.filter.error.to_before_from"
    return since, until


def read_page(params: Mapping[str, str], errors: dict[str, str]) -> int:
    text = params.get("page", "1").strip() or "1"
    if not NUMBER.fullmatch(text) or not 1 <= int(text) <= MAX_PAGE:
        errors["page"] = "console.events.filter.error.bad_page"
        return 1
    return int(text)


Collection = frozenset[str] | set[str] | tuple[str, ...] | Mapping[str, Any]


CHOOSE = "console.events.filter.error.choose"


def read_choice(
    params: Mapping[str, str], name: str, allowed: Collection, errors: dict[str, str], message: str = CHOOSE
) -> str | None:
    """A <select>'s value: empty for any, else one of `allowed`, else the field's message."""
    value = params.get(name, "").strip()
    if not value:
        return None
    if value not in allowed:
        errors[name] = message
        return None
    return value


@dataclass(frozen=True)
class Pager:
    page: int
    pages: int
    total: int
    previous: str | None  # URL of the page before, None on the first
    next: str | None


def pager(path: str, values: Mapping[str, str], page: int, total: int, size: int = PAGE_SIZE) -> Pager:
    """Links to the pages before and after, keeping the search (empty fields left out)."""
    pages = max(1, -(-total // size))
    kept = {k: v for k, v in values.items() if v and k != "page"}

    def link(number: int) -> str:
        return f"{path}?{urlencode({**kept, 'page': str(number)})}"

    return Pager(
        page=page,
        pages=pages,
        total=total,
        previous=link(page - 1) if page > 1 else None,
        next=link(page + 1) if page < pages else None,
    )


def zone_of(sites: Mapping[str, SitePlace], slug: str | None) -> str | ZoneInfo:
    """Times are typed in the chosen site's zone; without a site, in Norway's (every torg is in Asker)."""
    return sites[slug].timezone if slug is not None and slug in sites else OSLO


# --- reading the event search -------------------------------------------------------------------------------


FIELDS = ("site", "door", "person", "person_id", "decision", "reason", "kind", "from", "to", "page")


@dataclass
class EventSearch:
    """The search as typed (`values`, shown back in the form), what it means, and what is wrong with it."""

    values: dict[str, str]
    flt: service.EventFilter = field(default_factory=service.EventFilter)
    page: int = 1
    errors: dict[str, str] = field(default_factory=dict)


def read_event_search(params: Mapping[str, str], sites: Mapping[str, SitePlace]) -> EventSearch:
    values = {name: params.get(name, "").strip() for name in FIELDS}
    errors: dict[str, str] = {}
    site = read_choice(params, "site", sites, errors, "console.events.filter.error.unknown_site")
    known_doors = sites[site].doors if site else {d for s in sites.values() for d in s.doors}
    door = read_choice(params, "door", known_doors, errors, "console.events.filter.error.unknown_door")
    decision = read_choice(params, "decision", {d.value for d in Decision}, errors)
    reason = read_choice(params, "reason", {r.value for r in Reason}, errors)
    kind = read_choice(params, "kind", {k.value for k in EventKind}, errors)
    person = values["person"]
    if len(person) > MAX_NAME or CONTROL.search(person):
        errors["person"] = "console.events.error.bad_name"
    person_id = values["person_id"]
    if person_id and not (NUMBER.fullmatch(person_id) and 1 <= int(person_id) <= MAX_ID):
        errors["person_id"] = "console.events.error.unknown_person"
    since, until = read_period(params, zone_of(sites, site), errors)
    page = read_page(params, errors)
    flt = service.EventFilter(
        site=site,
        door=door,
        person_id=int(person_id) if person_id and "person_id" not in errors else None,
        person_name=person if person and "person" not in errors else None,
        kind=EventKind(kind) if kind else None,
        decision=Decision(decision) if decision else None,
        reason=reason,
        since=since,
        until=until,
    )
    return EventSearch(values=values, flt=flt, page=page, errors=errors)


# --- what the page shows ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventRow:
    id: int
    when: str  # in the site's time
    site: str
    door: str
    kind: str
    decision: str | None  # "grant" / "deny"
    reason: str
    who: str  # the person's name, "pseudonymised", or empty
    person_id: int | None


def person_names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.execute(select(Person.id, Person.display_name).where(Person.id.in_(ids)))
    return {person_id: name for person_id, name in rows}


def reason_words(t: Translate, event: Event) -> str:
    """Why, in words: a deny or grant reason as the door says it, an alarm by its kind, else the code."""
    reason = event.reason or ""
    if not reason:
        return ""
    if event.kind is EventKind.ALARM:
        return alarm_kind_words(t, reason)
    if event.kind is EventKind.ACCESS:
        return words(t, f"reason.{reason}", reason)
    return words(t, f"console.events.reason.{reason.replace('-', '_')}", reason)


def who(t: Translate, event: Event, names: Mapping[int, str]) -> str:
    if event.person_id is not None and event.person_id in names:
        return names[event.person_id]
    if event.credential_ref and event.credential_ref.startswith(PSEUDONYM_PREFIX):
        return str(t("console.events.pseudonymised"))
    return ""


def event_row(
    t: Translate, event: Event, sites: Mapping[str, SitePlace], names: Mapping[int, str]
) -> EventRow:
    place = sites.get(event.site.slug)
    door = event.door_slug or ""
    return EventRow(
        id=event.id,
        when=local_time(event.device_time, event.site.timezone),
        site=event.site.name,
        door=place.doors.get(door, door) if place else door,
        kind=words(t, f"console.event_kind.{event.kind.value}", event.kind.value),
        decision=event.decision.value if event.decision else None,
        reason=reason_words(t, event),
        who=who(t, event, names),
        person_id=event.person_id if event.person_id in names else None,
    )


def shown_data(t: Translate, event: Event) -> list[tuple[str, str]]:
    """The event's data fit for a caretaker's eyes: no card UIDs, codes or references; methods in words."""
    shown: list[tuple[str, str]] = []
    for key, value in sorted((event.data or {}).items()):
        if HIDDEN_DATA.search(key) or value is None or value == "":
            continue
        label = words(t, f"console.events.data.{key}", key)
        shown.append((label, _data_value(t, key, value)))
    return shown


def _data_value(t: Translate, key: str, value: object) -> str:
    if isinstance(value, bool):
        return str(t("console.events.yes" if value else "console.events.no"))
    text = str(value)
    if key == "method" and text in METHODS:
        return str(t(f"console.events.method.{text}"))
    if key == "severity":
        return words(t, f"console.severity.{text}", text)
    return text


@router.get("/hendelser")
def event_log(request: Request, session: DbSession, staff: Staff) -> Response:
    sites = site_places(session)
    search = read_event_search(request.query_params, sites)
    person = _chosen_person(session, search)
    context: dict[str, Any] = {
        "active": "events",
        "sites": sites,
        "search": search,
        "person": person,
        "deny_reasons": [r.value for r in DENY_REASONS],
        "grant_reasons": [r.value for r in GRANT_REASONS],
        "kinds": [k.value for k in EventKind],
        "rows": [],
        "pager": None,
    }
    if search.errors:
        return render(request, "events.html", context, status_code=422)
    found = service.list_events(session, search.flt, limit=PAGE_SIZE, offset=(search.page - 1) * PAGE_SIZE)
    t = request_translator(request)
    names = person_names(session, {e.person_id for e in found.items if e.person_id is not None})
    context["rows"] = [event_row(t, e, sites, names) for e in found.items]
    context["pager"] = pager(EVENTS, search.values, search.page, found.total)
    return render(request, "events.html", context)


def _chosen_person(session: Session, search: EventSearch) -> str | None:
    """The name of the person the search is narrowed to (a click on a name); an unknown id is an error."""
    if search.flt.person_id is None:
        return None
    person = session.get(Person, search.flt.person_id)
    if person is None:
        search.errors["person_id"] = "console.events.error.unknown_person"
        return None
    return person.display_name


def request_translator(request: Request) -> Translate:
    t: Translate = translator(page_language(request))
    return t


@router.get("/hendelser/{event_id:int}")
def event_detail(request: Request, session: DbSession, staff: Staff, event_id: int) -> Response:
    if not 1 <= event_id <= MAX_ID:
        raise HTTPException(404)
    try:
        event = service.get_event(session, event_id)
    except NotFoundError as missing:
        raise HTTPException(404) from missing
    t = request_translator(request)
    sites = site_places(session)
    names = person_names(session, {event.person_id} if event.person_id is not None else set())
    alarms = session.scalars(select(Alarm).where(Alarm.event_id == event.event_id).order_by(Alarm.id)).all()
    context = {
        "active": "events",
        "event": event,
        "row": event_row(t, event, sites, names),
        "received": local_time(event.received_at, event.site.timezone, "%d.%m.%Y %H:%M:%S"),
        "when_exact": local_time(event.device_time, event.site.timezone, "%d.%m.%Y %H:%M:%S"),
        "data": shown_data(t, event),
        "alarms": [(a.id, alarm_kind_words(t, a.kind)) for a in alarms],
    }
    return render(request, "event.html", context)
