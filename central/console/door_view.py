"""What the overview shows, in words: every site's agent, open alarms and doors, from database rows.

Pure: rows, a language and `now` in, a frozen view model out, so the page, the live stream (which sends the
same words as JSON) and the tests all read one thing. A door's reported state is only trusted while its
site's agent is online; otherwise the overview says the state is unknown and since when, instead of showing
a stale "locked". Person names never appear here: an access event says its decision and its reason only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from protocol import i18n
from protocol import messages as m

Translate = Callable[..., str]


class DoorShown(StrEnum):
    """A door's state as the overview tells it: the wire's states, and unknown."""

    LOCKED = "locked"
    UNLOCKED = "unlocked"
    OPEN = "open"
    HELD_OPEN = "held_open"
    FORCED_OPEN = "forced_open"
    RELEASED = "released"
    LOCKED_DOWN = "locked_down"
    FAULT = "fault"
    UNKNOWN = "unknown"


# Tone picks the badge colour (never the only sign: each state has its word and a symbol).
TONE = {
    DoorShown.LOCKED: "ok",
    DoorShown.UNLOCKED: "warn",
    DoorShown.OPEN: "warn",
    DoorShown.HELD_OPEN: "bad",
    DoorShown.FORCED_OPEN: "bad",
    DoorShown.RELEASED: "warn",
    DoorShown.LOCKED_DOWN: "warn",
    DoorShown.FAULT: "bad",
    DoorShown.UNKNOWN: "muted",
}
# Symbols from the fonts every desk has (no emoji: a missing glyph is an empty box).
SYMBOL = {
    DoorShown.LOCKED: "■",
    DoorShown.UNLOCKED: "□",
    DoorShown.OPEN: "◧",
    DoorShown.HELD_OPEN: "⚑",
    DoorShown.FORCED_OPEN: "⚠",
    DoorShown.RELEASED: "↔",
    DoorShown.LOCKED_DOWN: "⊘",
    DoorShown.FAULT: "✖",
    DoorShown.UNKNOWN: "?",
}
ALARMING = frozenset({DoorShown.FORCED_OPEN, DoorShown.HELD_OPEN, DoorShown.FAULT})
ALARM_KINDS = frozenset(kind.value for kind in m.AlarmKind)
ACTIONS = frozenset(action.value for action in m.Action)


# --- rows in -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SiteRow:
    slug: str
    name: str
    timezone: str


@dataclass(frozen=True, slots=True)
class AgentRow:
    online: bool
    last_seen_at: datetime | None
    software_version: str | None
    outbox_pending: int | None  # from the agent's last status report


@dataclass(frozen=True, slots=True)
class DoorRow:
    site: str
    slug: str
    name: str
    last_state: str | None
    last_state_at: datetime | None


@dataclass(frozen=True, slots=True)
class EventRow:
    """The newest event at a door (`door` None: the site's own, e.g. a command's result)."""

    site: str
    door: str | None
    at: datetime
    kind: str  # access / alarm / system
    decision: str | None
    reason: str | None
    raised: bool | None = None  # alarms: raised or cleared
    detail: str = ""  # system events: the agent's one line (read only for a command's action)


@dataclass(frozen=True, slots=True)
class OverviewRows:
    sites: tuple[SiteRow, ...]
    agents: Mapping[str, AgentRow]  # by site slug; a site without one has never reported
    doors: tuple[DoorRow, ...]  # in display order
    last_events: Mapping[tuple[str, str | None], EventRow]  # (site, door or None)
    open_alarms: Mapping[str, int]  # not yet acknowledged, by site slug


# --- the view out -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DoorLine:
    """One door's row; `key` is "site/door", `dom_id` the row's HTML id."""

    key: str
    dom_id: str
    slug: str
    name: str
    label: str  # "<site> – <door>", for announcements
    state: str
    alarming: bool  # forced open, held open or faulty: the page announces it
    tone: str
    symbol: str
    state_text: str
    since_text: str
    event_text: str


@dataclass(frozen=True, slots=True)
class SiteLine:
    slug: str
    dom_id: str
    name: str
    online: bool
    agent_tone: str
    agent_symbol: str
    agent_text: str
    agent_detail: str
    open_alarms: int
    alarms_text: str
    event_text: str
    doors: tuple[DoorLine, ...]


@dataclass(frozen=True, slots=True)
class Overview:
    sites: tuple[SiteLine, ...]
    summary_text: str


def overview(rows: OverviewRows, lang: str, now: datetime) -> Overview:
    """The overview in `lang` as of `now` (times in each site's own zone)."""

    def t(key: str, **values: object) -> str:
        return i18n.text(key, lang, **values)

    doors_of: dict[str, list[DoorRow]] = {}
    for door in rows.doors:
        doors_of.setdefault(door.site, []).append(door)
    sites = tuple(_site_line(site, rows, doors_of.get(site.slug, []), t, now) for site in rows.sites)
    summary = t(
        "console.overview.summary",
        sites=len(sites),
        online=sum(site.online for site in sites),
        alarms=sum(site.open_alarms for site in sites),
    )
    return Overview(sites=sites, summary_text=summary)


def _site_line(
    site: SiteRow, rows: OverviewRows, doors: list[DoorRow], t: Translate, now: datetime
) -> SiteLine:
    zone = ZoneInfo(site.timezone)
    agent = rows.agents.get(site.slug)
    online = agent is not None and agent.online
    count = rows.open_alarms.get(site.slug, 0)
    site_event = rows.last_events.get((site.slug, None))
    return SiteLine(
        slug=site.slug,
        dom_id=f"site-{site.slug}",
        name=site.name,
        online=online,
        agent_tone="ok" if online else "muted" if agent is None else "bad",
        agent_symbol="●" if online else "–" if agent is None else "✖",
        agent_text=_agent_text(agent, t, zone, now),
        agent_detail=_agent_detail(agent, t),
        open_alarms=count,
        alarms_text=t("console.overview.alarms", count=count),
        event_text=event_text(site_event, t, zone, now) if site_event else t("console.overview.no_event"),
        doors=tuple(
            _door_line(site, door, agent, rows.last_events.get((site.slug, door.slug)), t, zone, now)
            for door in doors
        ),
    )


def _agent_text(agent: AgentRow | None, t: Translate, zone: ZoneInfo, now: datetime) -> str:
    if agent is None:
        return t("console.overview.agent.never")
    if agent.online:
        return t("console.overview.agent.online")
    if agent.last_seen_at is None:
        return t("console.overview.agent.offline")
    return t("console.overview.agent.offline_since", since=when(agent.last_seen_at, zone, now))


def _agent_detail(agent: AgentRow | None, t: Translate) -> str:
    if agent is None:
        return ""
    parts = []
    if agent.software_version:
        parts.append(t("console.overview.agent.version", version=agent.software_version))
    if agent.outbox_pending:
        parts.append(t("console.overview.agent.backlog", count=agent.outbox_pending))
    return " · ".join(parts)


def door_state(last_state: str | None, agent: AgentRow | None) -> DoorShown:
    """What the overview may claim: the reported state while the agent is online, else unknown."""
    if agent is None or not agent.online:
        return DoorShown.UNKNOWN
    return reported_state(last_state)


def reported_state(last_state: str | None) -> DoorShown:
    """The state the agent last reported (unknown if none, or one this central does not know)."""
    try:
        return DoorShown(last_state) if last_state is not None else DoorShown.UNKNOWN
    except ValueError:
        return DoorShown.UNKNOWN


def _door_line(
    site: SiteRow,
    door: DoorRow,
    agent: AgentRow | None,
    last: EventRow | None,
    t: Translate,
    zone: ZoneInfo,
    now: datetime,
) -> DoorLine:
    shown = door_state(door.last_state, agent)
    since = when(door.last_state_at, zone, now) if door.last_state_at else ""
    if shown is DoorShown.UNKNOWN:
        state_text = _unknown_text(agent, t, zone, now)
        known = reported_state(door.last_state)
        since_text = (
            t(
                "console.overview.last_known",
                state=t(f"console.door_state.{known.value}").lower(),
                since=since,
            )
            if known is not DoorShown.UNKNOWN and since
            else ""
        )
    else:
        state_text = t(f"console.door_state.{shown.value}")
        since_text = t("console.overview.since", since=since) if since else ""
    return DoorLine(
        key=f"{site.slug}/{door.slug}",
        dom_id=f"door-{site.slug}.{door.slug}",
        slug=door.slug,
        name=door.name,
        label=f"{site.name} – {door.name}",
        state=shown.value,
        alarming=shown in ALARMING,
        tone=TONE[shown],
        symbol=SYMBOL[shown],
        state_text=state_text,
        since_text=since_text,
        event_text=event_text(last, t, zone, now) if last else t("console.overview.no_event"),
    )


def _unknown_text(agent: AgentRow | None, t: Translate, zone: ZoneInfo, now: datetime) -> str:
    if agent is None:
        return t("console.overview.unknown.never")
    if not agent.online:
        if agent.last_seen_at is None:
            return t("console.overview.unknown.offline")
        return t("console.overview.unknown.offline_since", since=when(agent.last_seen_at, zone, now))
    return t("console.overview.unknown.no_report")


def event_text(event: EventRow, t: Translate, zone: ZoneInfo, now: datetime) -> str:
    """An event in one line, e.g. "21:38 · Avvist – Feil PIN-kode." (alarms and system events likewise)."""
    return t("console.overview.event.line", time=when(event.at, zone, now), what=_what(event, t))


def _what(event: EventRow, t: Translate) -> str:
    reason = event.reason or ""
    if event.kind == "access" and event.decision in ("grant", "deny"):
        words = _reason_words(reason, t)
        return t(
            "console.overview.event.access",
            decision=t(f"console.overview.decision.{event.decision}"),
            reason=words,
        )
    if event.kind == "alarm":
        kind = t(f"console.overview.alarm.{reason}") if reason in ALARM_KINDS else reason
        key = (
            "console.overview.event.alarm_cleared"
            if event.raised is False
            else "console.overview.event.alarm"
        )
        return t(key, kind=kind)
    if reason in ("command-done", "command-refused", "command_done", "command_refused"):
        outcome = reason.removeprefix("command").strip("-_")
        action = event.detail.split(" ", 1)[0].rstrip(":")  # the agent's line starts with the action
        if action in ACTIONS:
            return t(
                f"console.overview.event.command_{outcome}", action=t(f"console.command.action.{action}")
            )
        return t(f"console.overview.event.command_{outcome}_result")
    return t("console.overview.event.system", kind=reason.replace("_", " ").replace("-", " "))


def _reason_words(reason: str, t: Translate) -> str:
    try:
        return t(f"reason.{m.Reason(reason).value}")
    except (ValueError, KeyError):
        return reason


def when(moment: datetime, zone: ZoneInfo, now: datetime) -> str:
    """A time as staff read it in the site's zone: "21:40" today, "12.03. 21:40" this year, else the year."""
    local, today = moment.astimezone(zone), now.astimezone(zone)
    if local.date() == today.date():
        return local.strftime("%H:%M")
    if local.year == today.year:
        return local.strftime("%d.%m. %H:%M")
    return local.strftime("%d.%m.%Y %H:%M")
