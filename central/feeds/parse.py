"""Reading a feed: iCalendar bytes in, the booking-shaped occurrences in a time window out (no I/O).

Decisions, each because a door depends on it:
- Recurring events are expanded (RRULE, RDATE, EXDATE, moved or cancelled single occurrences via
  RECURRENCE-ID) over the window only, so an endless series costs no more than the window.
- Times become UTC. TZID with a VTIMEZONE, an IANA name or a Windows name is honoured; floating times and
  unknown TZIDs are read in the site's time zone (Europe/Oslo), which is what a local booking system means.
- All-day events are skipped (and listed): they carry no opening times, and a whole day of access would be
  more than any booking asks for.
- A booking's identity is the UID, plus the original start (RECURRENCE-ID, in UTC) for occurrences of a
  series, so a moved occurrence updates its booking instead of making a new one.
- One unreadable event is skipped and named; it does not sink the rest of the feed. Its existing bookings
  are left as they are (`ParsedFeed.broken`), since we cannot tell what the booking system meant.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Any

import icalendar
import recurring_ical_events

from central.feeds.errors import FeedError

MAX_UID = 110  # leaves room in external_id (200) for "#<recurrence id>" and "@<room slug>"
MAX_TITLE = 300
MAX_NAME = 200
MAX_SKIPPED_REASON = 300
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_RECURRING = ("RRULE", "RDATE", "RECURRENCE-ID")
_DAMAGED_LINE = re.compile(r"parts: '(.*?)':")


@dataclass(frozen=True)
class Occurrence:
    """One event occurrence as a booking would have it; `key` is its identity within the feed."""

    key: str
    uid_key: str
    starts_at: datetime
    ends_at: datetime
    title: str
    cancelled: bool
    resources: tuple[str, ...]
    organizer_email: str | None
    organizer_name: str | None
    attendee_emails: tuple[str, ...]

    @property
    def label(self) -> str:
        return describe(self.title, self.starts_at)


@dataclass(frozen=True)
class Skipped:
    """An event (or occurrence) not imported, and why, in words an admin can act on."""

    event: str
    reason: str


@dataclass(frozen=True)
class ParsedFeed:
    occurrences: tuple[Occurrence, ...]
    skipped: tuple[Skipped, ...]
    broken: frozenset[str]  # uid keys of events that could not be read


def describe(title: str, when: datetime | date | None) -> str:
    """How messages name an event: its title and start (UTC), e.g. "'Sjakk' at 2030-03-04 17:00 UTC"."""
    name = f"'{title}'" if title else "an untitled event"
    if isinstance(when, datetime):
        if when.tzinfo is None:  # floating, as written in the feed
            return f"{name} at {when:%Y-%m-%d %H:%M}"
        return f"{name} at {when.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    if isinstance(when, date):
        return f"{name} on {when.isoformat()}"
    return name


def uid_key(uid: str) -> str:
    """The UID as used in external ids: itself when short and printable, else a stable hash of it."""
    if len(uid) <= MAX_UID and not _CONTROL.search(uid):
        return uid
    return "sha256:" + hashlib.sha256(uid.encode("utf-8")).hexdigest()[:40]


def parse_feed(
    body: bytes, *, start: datetime, end: datetime, tz: tzinfo, resource_property: str = "LOCATION"
) -> ParsedFeed:
    """The occurrences overlapping [start, end) of the calendar in `body`; FeedError if it is not one."""
    calendar = read_calendar(body)
    occurrences: list[Occurrence] = []
    skipped: list[Skipped] = []
    broken: set[str] = set()
    timezones = calendar.walk("VTIMEZONE")
    for uid, components in _by_uid(calendar, skipped):
        try:
            sub = _sub_calendar(calendar, timezones, components)
            expanded = list(recurring_ical_events.of(sub).between(start, end))
        except Exception as exc:  # a broken event (bad date, bad rule): skip it, keep the others
            broken.add(uid_key(uid))
            reason = f"could not be read: {_first_line(exc)}"
            skipped.append(Skipped(_describe_component(components[0]), reason))
            continue
        recurring = any(name in c for c in components for name in _RECURRING)
        master = next((c for c in components if "RECURRENCE-ID" not in c), None)
        for component in expanded:
            item = _occurrence(component, uid, recurring, master, tz, resource_property)
            if isinstance(item, Occurrence):
                occurrences.append(item)
            else:
                skipped.append(item)
    return ParsedFeed(tuple(occurrences), tuple(skipped), frozenset(broken))


def read_calendar(body: bytes) -> icalendar.Calendar:
    """Parse the bytes as one VCALENDAR; the error says what the bytes look like instead."""
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:200].upper()
    if not head:
        raise FeedError("the feed is empty (no iCalendar data)")
    if not head.startswith(b"BEGIN:VCALENDAR"):
        if head.startswith(b"<"):
            raise FeedError("the feed is not an iCalendar file but a web page (a login or error page?)")
        raise FeedError("the feed is not an iCalendar file (it does not start with BEGIN:VCALENDAR)")
    if b"END:VCALENDAR" not in body.upper():
        raise FeedError("the feed is cut off: it has no END:VCALENDAR")
    try:
        calendar = icalendar.Calendar.from_ical(body)
    except Exception as exc:  # icalendar raises ValueError and friends with the offending line
        raise FeedError(f"the feed is not valid iCalendar: {_first_line(exc)}") from None
    if not isinstance(calendar, icalendar.Calendar):
        raise FeedError("the feed is not valid iCalendar: it holds no VCALENDAR")
    _refuse_damaged_lines(calendar)
    return calendar


def _refuse_damaged_lines(calendar: icalendar.Calendar) -> None:
    """Lines that are not `NAME:value` at all mean a damaged file, not one odd event: refuse all of it, so
    nothing is cancelled because of a transfer gone wrong. (A bad value in a named property only costs
    that event.)"""
    for component in calendar.walk():
        for name, message in getattr(component, "errors", ()):
            if name is None:
                found = _DAMAGED_LINE.search(str(message))
                line = _clean(found.group(1) if found else str(message), 80)
                raise FeedError(f"the feed is damaged: a line is not iCalendar ('{line}')")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = _CONTROL.sub(" ", text[0]) if text else type(exc).__name__
    return line if len(line) <= MAX_SKIPPED_REASON else line[: MAX_SKIPPED_REASON - 1] + "…"


def _by_uid(calendar: icalendar.Calendar, skipped: list[Skipped]) -> Iterator[tuple[str, list[Any]]]:
    """The VEVENTs grouped by UID (a series and its moved occurrences share one), in feed order."""
    groups: dict[str, list[Any]] = {}
    for component in calendar.walk("VEVENT"):
        uid = _text(component.get("UID"))
        if not uid:
            reason = "it has no UID, so its changes could not be followed"
            skipped.append(Skipped(_describe_component(component), reason))
            continue
        groups.setdefault(uid, []).append(component)
    yield from groups.items()


def _sub_calendar(
    calendar: icalendar.Calendar, timezones: Iterable[Any], components: Iterable[Any]
) -> icalendar.Calendar:
    """A calendar with one event's components and everything they may refer to (time zones)."""
    sub = icalendar.Calendar()
    if "X-WR-TIMEZONE" in calendar:
        sub.add("X-WR-TIMEZONE", calendar["X-WR-TIMEZONE"])
    for timezone in timezones:
        sub.add_component(timezone)
    for component in components:
        sub.add_component(component)
    return sub


def _occurrence(
    component: Any, uid: str, recurring: bool, master: Any, tz: tzinfo, resource_property: str
) -> Occurrence | Skipped:
    title = _clean(_text(component.get("SUMMARY")), MAX_TITLE)
    start, end = component.decoded("DTSTART"), _end(component)
    if not isinstance(start, datetime):
        return Skipped(describe(title, start), "all-day events are not imported (they give no times of day)")
    starts_at, ends_at = _utc(start, tz), _utc(end, tz) if isinstance(end, datetime) else None
    if ends_at is None or ends_at <= starts_at:
        return Skipped(describe(title, starts_at), "it ends when it starts (no duration)")
    key = uid_key(uid)
    if recurring:
        key += "#" + _recurrence_id(component, tz)
    organizer = _inherited(component, master, "ORGANIZER")
    attendees = _listed(_inherited(component, master, "ATTENDEE"))
    return Occurrence(
        key=key,
        uid_key=uid_key(uid),
        starts_at=starts_at,
        ends_at=ends_at,
        title=title,
        cancelled=_text(component.get("STATUS")).upper() == "CANCELLED",
        resources=tuple(_texts(_inherited(component, master, resource_property))),
        organizer_email=_email(organizer),
        organizer_name=_clean(_param(organizer, "CN"), MAX_NAME) or None,
        attendee_emails=tuple(e for e in map(_email, attendees) if e),
    )


def _end(component: Any) -> Any:
    if "DTEND" in component:
        return component.decoded("DTEND")
    return None


def _utc(value: datetime, tz: tzinfo) -> datetime:
    """Aware UTC; a floating time (or one whose TZID is unknown) is read in the site's time zone."""
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


def _recurrence_id(component: Any, tz: tzinfo) -> str:
    name = "RECURRENCE-ID" if "RECURRENCE-ID" in component else "DTSTART"
    value = component.decoded(name)
    if isinstance(value, datetime):
        return f"{_utc(value, tz):%Y%m%dT%H%M%SZ}"
    return f"{value:%Y%m%d}"


def _inherited(component: Any, master: Any, name: str) -> Any:
    """A property of an occurrence, or of its series when a moved occurrence left it out."""
    value = component.get(name)
    if value is None and master is not None and master is not component:
        value = master.get(name)
    return value


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _texts(value: Any) -> Iterator[str]:
    for item in _listed(value):
        text = _clean(_text(item), MAX_NAME)
        if text:
            yield text


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _clean(text: str, limit: int) -> str:
    """One line, no control characters, at most `limit` characters (as the booking columns allow)."""
    return " ".join(_CONTROL.sub(" ", text).split())[:limit]


def _param(value: Any, name: str) -> str:
    params = getattr(value, "params", None)
    return _text(params.get(name)) if params is not None else ""


def _email(value: Any) -> str | None:
    text = _text(value).strip()
    if text.lower().startswith("mailto:"):
        text = text[7:]
    text = text.strip().lower()
    return text if "@" in text and len(text) <= 254 and not _CONTROL.search(text) else None


def _describe_component(component: Any) -> str:
    title = _clean(_text(component.get("SUMMARY")), MAX_TITLE)
    try:
        start = component.decoded("DTSTART") if "DTSTART" in component else None
    except Exception:  # the start itself may be what is broken
        start = None
    return describe(title, start if isinstance(start, date) else None)
