"""Scenarios: a readable YAML timeline of what people and hardware do at a site, and what must be observed.

Parsing and validation only (pure: no clock, no network); hw_sim.runner plays a scenario on the full stack.
Every problem is refused as ONE line naming the file, the place (``step 4 (tap)``, ``people.lise``) and what
is wrong, never a traceback. scenarios/README.md is the guide with examples; in short::

    name: A normal meråpent evening
    description: Kari comes in with her card and PIN, ...
    site: heggedal                  # default heggedal
    door: hovedinngang              # the door steps mean when they name none (default hovedinngang)
    start: next open evening        # or "next open evening 20:40", "monday 19:30", "tomorrow 21:10"
    people:
      kari:                         # a seed person (central/seed.py): kari ola amina emil per vidar ...
      lise: {kind: association_member, groups: [], pin: "2468", phone: true}   # created for this scenario
    bookings:
      - {holder: lise, room: moterom-1, from: "19:30", until: "21:00", title: Styremøte}
    timeline:
      - at: "+0:01"                 # offset from the start (+H:MM, +H:MM:SS, +5m, +40s) or local "19:45"
        tap: kari                   # whose card (or "unknown")
      - pin: "1234"                 # no `at`: the same moment as the step before
        expect:
          - access: grant
            reason: schedule
          - relay: energised

Start: the next such moment (Europe/Oslo wall clock) after real now, because cards are valid from their
creation and central runs on real time; "open evening" is the next day the site is open at that time
(19:00 if no time is given).

Actions (one per step): tap PERSON|unknown, pin "DIGITS", scan PERSON|{person, site, doors, zones,
valid_from, valid_for}|{text}, push, force, hold_open, let_go, exit, beam (each takes a door, or nothing for
the default door), fire on|off, wan down|up, central down|up, revoke PERSON (their cards, for good),
block PERSON (their cards), wait DURATION (40s, 5m, 1h30m). tap, pin and scan take `door:`.

Expectations (a list under `expect:`, checked after the step's action):
relay energised|de-energised, lock locked|unlocked, door_state STATE (each with `door:`, "all" for
every door), awaiting_pin true|false, access grant|deny|none (door, person, reason, count), alarm KIND (door,
state raised|cleared|none), lights on|off (zone), intruder_alarm armed|disarmed, site_event KIND (detail),
occupancy N, central_events N (person, kind, decision, reason, door), central_alarm KIND (door, state),
journal empty|N, replica current. `access` and `site_event` look at what happened since the previous step
with an `expect:`; alarms are their latest state since the start.

Doors, rooms and zones are site data: `check_site` checks them against central's configuration of the
site (the runner does so before playing anything). YAML is read the YAML 1.2 way for what people write
here: ``on``/``off``/``yes``/``no`` stay words, ``19:45`` stays a time, ``0123`` stays a PIN. A key given
twice is refused.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import yaml

from central import seed
from protocol import messages as m
from protocol.topics import is_slug

DEFAULT_SITE = "heggedal"
DEFAULT_DOOR = "hovedinngang"
DEFAULT_START_TIME = time(19, 0)
DEFAULT_PIN = seed.DEMO_PIN
DEFAULT_TOKEN_VALIDITY = timedelta(hours=1)
ALL_DOORS = "all"
MAX_LISTED = 12  # longer lists of allowed values are not spelt out when a close match can be suggested
UNKNOWN_CARD = "unknown"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
GRANT_REASONS = frozenset(
    {
        m.Reason.SCHEDULE,
        m.Reason.ANY_TIME,
        m.Reason.BOOKING,
        m.Reason.REMOTE_UNLOCK,
        m.Reason.EXIT_REQUEST,
        m.Reason.FIRE_RELEASE,
    }
)
# What the agent journals as system events (controller/agent.py `_system`).
SITE_EVENT_KINDS = (
    "agent-started",
    "closing-warning",
    "site-closed",
    "still-occupied",
    "intruder-alarm-armed",
    "intruder-alarm-disarmed",
    "replica-resynced",
    "command-done",
    "command-refused",
)
CENTRAL_EVENT_KINDS = ("access", "door", "alarm", "system", "checkin")
GROUPS = tuple(spec.slug for spec in seed.GROUPS)
DEFAULT_GROUPS = {
    m.PersonKind.RESIDENT: ("innbyggere",),
    m.PersonKind.CARETAKER: ("vaktmestere",),
    m.PersonKind.STAFF: ("ansatte",),
}


class ScenarioError(ValueError):
    """A scenario that cannot be run; ``str()`` is one line: file, place, problem."""


# --- the model ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """`day` is a weekday name, "tomorrow" or "open evening"; the runner resolves it against real now."""

    day: str
    clock: time

    def __str__(self) -> str:
        prefix = "next open evening" if self.day == "open evening" else self.day
        return f"{prefix} {self.clock:%H:%M}"


@dataclass(frozen=True)
class Moment:
    """A point in the scenario: `offset` from the start (may be negative for bookings), or a local `clock`
    time on the start's day (for a step, one earlier than the start's time is on the next day)."""

    offset: timedelta | None = None
    clock: time | None = None

    def wall_seconds(self, start: time, *, wrap: bool = True) -> float:
        """Seconds after the start on the wall clock, for ordering steps before the start is resolved."""
        if self.offset is not None:
            return self.offset.total_seconds()
        assert self.clock is not None
        seconds = _seconds_of(self.clock) - _seconds_of(start)
        return seconds + 86400 if wrap and seconds < 0 else seconds

    def __str__(self) -> str:
        if self.offset is not None:
            return _format_offset(self.offset)
        assert self.clock is not None
        return self.clock.isoformat(timespec="seconds")


@dataclass(frozen=True)
class PersonSpec:
    name: str
    kind: m.PersonKind
    groups: tuple[str, ...] = ()
    card: bool = True
    pin: str | None = DEFAULT_PIN
    phone: bool = False
    blocked: bool = False
    seed_ref: str | None = None  # the seed person this name stands for; None: created for the scenario

    @property
    def card_uid(self) -> str | None:
        """The seed person's card UID (hex); created people get theirs from the runner."""
        if self.seed_ref is None:
            return None
        return _SEED[self.name].card_uid


@dataclass(frozen=True)
class BookingSpec:
    holder: str | None
    room: str
    starts: Moment
    ends: Moment
    title: str


@dataclass(frozen=True)
class TokenSpec:
    person: str
    site: str | None = None  # None: the scenario's site
    doors: tuple[str, ...] | None = None  # None: the door it is scanned at (when zones are not given)
    zones: tuple[str, ...] = ()
    valid_from: timedelta = timedelta(0)  # relative to the moment it is scanned
    valid_for: timedelta = DEFAULT_TOKEN_VALIDITY


# Actions


@dataclass(frozen=True)
class Tap:
    door: str
    person: str | None  # None: an unknown card

    def __str__(self) -> str:
        return f"{self.person or 'an unknown card'} taps at {self.door}"


@dataclass(frozen=True)
class Pin:
    door: str
    pin: str

    def __str__(self) -> str:
        return f"PIN typed at {self.door}"


@dataclass(frozen=True)
class Scan:
    door: str
    token: TokenSpec | None
    text: str | None = None

    def __str__(self) -> str:
        what = f"{self.token.person}'s phone" if self.token else "a code"
        return f"{what} scanned at {self.door}"


@dataclass(frozen=True)
class DoorAction:
    """push, force, hold_open, let_go, exit (the exit button) or beam (one person through the beam)."""

    kind: str
    door: str

    def __str__(self) -> str:
        return f"{self.kind.replace('_', ' ')} at {self.door}"


@dataclass(frozen=True)
class Switch:
    """fire on/off, wan up/down, central up/down."""

    what: str
    on: bool

    def __str__(self) -> str:
        if self.what == "fire":
            return f"fire alarm {'on' if self.on else 'off'}"
        return f"{self.what} {'up' if self.on else 'down'}"


@dataclass(frozen=True)
class CentralChange:
    """revoke or block a person's cards in central."""

    kind: str
    person: str

    def __str__(self) -> str:
        return f"{self.kind} {self.person}'s card"


@dataclass(frozen=True)
class Wait:
    duration: timedelta

    def __str__(self) -> str:
        return f"wait {_format_duration(self.duration)}"


Action = Tap | Pin | Scan | DoorAction | Switch | CentralChange | Wait


# Expectations


@dataclass(frozen=True)
class DoorExpectation:
    """relay, lock, door_state or awaiting_pin at one door (or all)."""

    what: str
    door: str
    value: str

    def __str__(self) -> str:
        where = "every door" if self.door == ALL_DOORS else self.door
        if self.what == "awaiting_pin":
            return f"{where} {'asks' if self.value == 'true' else 'does not ask'} for a PIN"
        label = {"relay": "relay", "lock": "lock", "door_state": "state"}[self.what]
        return f"{label} at {where}: {self.value}"


@dataclass(frozen=True)
class AccessExpectation:
    door: str
    decision: str  # grant, deny or none
    person: str | None = None
    reason: m.Reason | None = None
    count: int | None = None

    def __str__(self) -> str:
        if self.decision == "none":
            return f"no access decision at {self.door}"
        who = f" for {self.person}" if self.person else ""
        why = f" ({self.reason.value})" if self.reason else ""
        times = f" {self.count}×" if self.count is not None else ""
        return f"{self.decision}{why}{who} at {self.door}{times}"


@dataclass(frozen=True)
class AlarmExpectation:
    kind: m.AlarmKind
    door: str | None
    state: str  # raised, cleared or none
    central: bool = False

    def __str__(self) -> str:
        where = f" at {self.door}" if self.door else ""
        at = "central: " if self.central else ""
        if self.state == "none":
            return f"{at}no {self.kind.value} alarm{where}"
        return f"{at}{self.kind.value} alarm{where} {self.state}"


@dataclass(frozen=True)
class LightsExpectation:
    on: bool
    zone: str | None = None  # None: every zone

    def __str__(self) -> str:
        return f"lights {'on' if self.on else 'off'} in {self.zone or 'every zone'}"


@dataclass(frozen=True)
class IntruderExpectation:
    armed: bool

    def __str__(self) -> str:
        return f"intruder alarm {'armed' if self.armed else 'disarmed'}"


@dataclass(frozen=True)
class SiteEventExpectation:
    kind: str
    detail: str | None = None

    def __str__(self) -> str:
        return f"site event {self.kind}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class OccupancyExpectation:
    count: int

    def __str__(self) -> str:
        return f"{self.count} counted inside"


@dataclass(frozen=True)
class CentralEventsExpectation:
    count: int
    person: str | None = None
    kind: str | None = None
    decision: str | None = None
    reason: m.Reason | None = None
    door: str | None = None

    def __str__(self) -> str:
        parts = [p for p in (self.kind, self.decision, self.reason and self.reason.value) if p]
        what = " ".join(parts) + " events" if parts else "events"
        who = f" for {self.person}" if self.person else ""
        where = f" at {self.door}" if self.door else ""
        return f"central has {self.count} {what}{who}{where}"


@dataclass(frozen=True)
class JournalExpectation:
    pending: int  # 0: empty, everything acknowledged by central

    def __str__(self) -> str:
        if self.pending == 0:
            return "agent journal empty (central acknowledged every event)"
        return f"{self.pending} events waiting in the agent journal"


@dataclass(frozen=True)
class ReplicaExpectation:
    def __str__(self) -> str:
        return "the site has central's latest credential changes"


Expectation = (
    DoorExpectation
    | AccessExpectation
    | AlarmExpectation
    | LightsExpectation
    | IntruderExpectation
    | SiteEventExpectation
    | OccupancyExpectation
    | CentralEventsExpectation
    | JournalExpectation
    | ReplicaExpectation
)


@dataclass(frozen=True)
class Step:
    number: int  # 1-based, as people count the timeline
    at: Moment  # when it happens (before its own `wait`)
    action: Action | None
    expect: tuple[Expectation, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Scenario:
    path: Path
    name: str
    description: str
    start: Start
    steps: tuple[Step, ...]
    site: str = DEFAULT_SITE
    door: str = DEFAULT_DOOR
    people: Mapping[str, PersonSpec] = field(default_factory=dict)
    bookings: tuple[BookingSpec, ...] = ()

    def error(self, where: str, what: str) -> ScenarioError:
        return ScenarioError(f"{self.path}: {where}: {what}")


# --- seed people --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SeedPerson:
    ref: str
    kind: m.PersonKind
    card_uid: str | None
    phone: bool
    groups: tuple[str, ...]


_SEED = {
    spec.ref.split("-")[0]: _SeedPerson(
        spec.ref, m.PersonKind(spec.kind.value), spec.card_uid, spec.phone_credential, spec.groups
    )
    for spec in seed.PEOPLE
}
SEED_NAMES = tuple(_SEED)


def seed_external_ref(name: str) -> str:
    """How central's seed names the seed person `name` (Person.external_ref)."""
    return f"demo:{_SEED[name].ref}"


# --- YAML, read strictly ------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):  # type: ignore[misc]
    """YAML 1.2-like scalars (on/off/yes/no stay text, 19:45 and 0123 stay text); duplicate keys refused."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


_IMPLICIT_KEPT = {"tag:yaml.org,2002:null", "tag:yaml.org,2002:merge"}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag in _IMPLICIT_KEPT]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)


def load(path: Path) -> Scenario:
    """Read and validate one scenario file; ScenarioError (one line) on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not UTF-8 text") from None
    return parse(text, path)


def parse(text: str, path: Path = Path("<scenario>")) -> Scenario:
    """Validate a scenario given as YAML text; `path` only names it in errors."""
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 (_Loader is a SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = exc.problem or exc.context or "not valid YAML"
        raise ScenarioError(f"{path}: {line}YAML error: {problem}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: YAML error: {_one_line(str(exc))}") from None
    return _Parser(path).scenario(data)


# --- the parser ---------------------------------------------------------------------------------------------


class _Fields:
    """One mapping of the file and where it is, for messages; each key read is ticked off."""

    def __init__(self, parser: _Parser, where: str, data: object) -> None:
        if not isinstance(data, dict):
            raise parser.fail(where, f"expected a mapping of keys, got {_kind(data)}")
        self.parser = parser
        self.where = where
        self.data: dict[Any, Any] = data

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, default: object = None) -> Any:
        return self.data.get(key, default)

    def fail(self, what: str, key: str | None = None) -> ScenarioError:
        return self.parser.fail(self.where, f"{key}: {what}" if key else what)

    def only(self, allowed: Sequence[str], known: Sequence[str] = ()) -> None:
        """Refuse keys not in `allowed`, suggesting the closest of `allowed` and `known`."""
        for key in self.data:
            if key not in allowed:
                hint = _suggest(str(key), [*allowed, *known])
                raise self.fail(f"unknown key {key!r}{hint} (allowed here: {', '.join(allowed)})")

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str:
        value = self.data.get(key)
        if value is None:
            if required or default is None:
                raise self.fail("is required", key)
            return default
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.fail(f"expected text, got {_kind(value)}", key)
        return str(value).strip()

    def slug(self, key: str, default: str | None = None, *, required: bool = False) -> str:
        value = self.text(key, default, required=required)
        if not is_slug(value):
            raise self.fail(f"{value!r} is not a slug (lowercase letters, digits and '-')", key)
        return value

    def choice(self, key: str, options: Sequence[str], default: str | None = None) -> str:
        value = self.data.get(key)
        if value is None and default is not None:
            return default
        if isinstance(value, bool):
            value = str(value).lower()
        if not isinstance(value, str) or value.strip() not in options:
            hint = _suggest(str(value), options)
            if hint and len(options) > MAX_LISTED:
                raise self.fail(f"{_shown(value)} is not a known {key}{hint}", key)
            raise self.fail(f"{_shown(value)} is not one of {', '.join(options)}{hint}", key)
        return value.strip()

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(f"expected true or false, got {_shown(value)}", key)
        return value

    def count(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(f"expected a whole number 0 or more, got {_shown(value)}", key)
        return value

    def slugs(self, key: str) -> tuple[str, ...] | None:
        value = self.data.get(key)
        if value is None:
            return None
        items = value if isinstance(value, list) else [value]
        for item in items:
            if not isinstance(item, str) or not is_slug(item):
                raise self.fail(f"{_shown(item)} is not a slug (lowercase letters, digits and '-')", key)
        return tuple(items)


class _Parser:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.people: dict[str, PersonSpec] = {}
        self.door = DEFAULT_DOOR
        self.site = DEFAULT_SITE

    def fail(self, where: str, what: str) -> ScenarioError:
        return ScenarioError(f"{self.path}: {where}: {_one_line(what)}")

    def scenario(self, data: object) -> Scenario:
        if data is None:
            raise ScenarioError(f"{self.path}: the file is empty; a scenario needs name, start and timeline")
        top = _Fields(self, "top level", data)
        top.only(("name", "description", "site", "door", "start", "people", "bookings", "timeline"))
        name = top.text("name", required=True)
        description = top.text("description", required=True)
        self.site = top.slug("site", DEFAULT_SITE)
        self.door = top.slug("door", DEFAULT_DOOR)
        start = self.start(top)
        self.people = self.read_people(top.get("people"))
        bookings = self.bookings(top.get("bookings"), start)
        steps = self.timeline(top.get("timeline"), start)
        return Scenario(
            path=self.path,
            name=name,
            description=description,
            start=start,
            steps=steps,
            site=self.site,
            door=self.door,
            people=self.people,
            bookings=bookings,
        )

    # --- start, people, bookings -----------------------------------------------------------------------

    def start(self, top: _Fields) -> Start:
        raw = top.text("start", required=True).lower()
        match = re.fullmatch(r"(?:next\s+)?(open evening|tomorrow|[a-z]+day)(?:\s+(?:at\s+)?(\S+))?", raw)
        if match is None or match.group(1) not in (*WEEKDAYS, "tomorrow", "open evening"):
            raise top.fail(
                f"{raw!r} is not a start; write e.g. 'next open evening', 'next open evening 20:40', "
                "'monday 19:30' or 'tomorrow 21:10'",
                "start",
            )
        clock = DEFAULT_START_TIME
        if match.group(2):
            parsed = _clock(match.group(2))
            if parsed is None:
                raise top.fail(f"{match.group(2)!r} is not a time of day like 19:30", "start")
            clock = parsed
        return Start(match.group(1), clock)

    def read_people(self, data: object) -> dict[str, PersonSpec]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise self.fail("people", f"expected a mapping of names, got {_kind(data)}")
        people: dict[str, PersonSpec] = {}
        for name, spec in data.items():
            if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_-]{0,30}", name):
                raise self.fail("people", f"{_shown(name)} is not a name (lowercase letters and digits)")
            people[name] = self.person(name, spec)
        return people

    def person(self, name: str, spec: object) -> PersonSpec:
        where = f"people.{name}"
        seeded = _SEED.get(name)
        if spec is None:
            if seeded is None:
                raise self.fail(
                    where,
                    f"{name!r} is not a seed person ({', '.join(SEED_NAMES)}); to create someone new give "
                    f"their details, e.g. `{name}: {{kind: resident}}`",
                )
            return PersonSpec(
                name=name,
                kind=seeded.kind,
                groups=seeded.groups,
                card=seeded.card_uid is not None,
                pin=DEFAULT_PIN if seeded.card_uid else None,
                phone=seeded.phone,
                seed_ref=seeded.ref,
            )
        if seeded is not None:
            raise self.fail(
                where,
                f"{name!r} is a seed person and takes no settings; choose another name for a new person",
            )
        fields = _Fields(self, where, spec)
        fields.only(("kind", "groups", "card", "pin", "phone", "blocked"))
        kind = m.PersonKind(
            fields.choice("kind", [k.value for k in m.PersonKind], m.PersonKind.RESIDENT.value)
        )
        groups = fields.slugs("groups")
        for group in groups or ():
            if group not in GROUPS:
                raise fields.fail(f"no group {group!r} (groups: {', '.join(GROUPS)})", "groups")
        card = fields.flag("card", True)
        pin: str | None = DEFAULT_PIN
        if fields.has("pin"):
            pin = None if fields.get("pin") is None else self.pin_text(fields, "pin")
            if not card:
                raise fields.fail("a PIN needs a card (card: false)", "pin")
        return PersonSpec(
            name=name,
            kind=kind,
            groups=groups if groups is not None else DEFAULT_GROUPS.get(kind, ()),
            card=card,
            pin=pin if card else None,
            phone=fields.flag("phone", False),
            blocked=fields.flag("blocked", False),
        )

    def pin_text(self, fields: _Fields, key: str) -> str:
        value = fields.get(key)
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise fields.fail(f'expected digits in quotes like "1234", got {_shown(value)}', key)
        text = str(value)
        if not re.fullmatch(r"[0-9]{4,8}", text):
            raise fields.fail(f"{text!r} is not a PIN (4 to 8 digits)", key)
        return text

    def bookings(self, data: object, start: Start) -> tuple[BookingSpec, ...]:
        if data is None:
            return ()
        if not isinstance(data, list):
            raise self.fail("bookings", f"expected a list of bookings, got {_kind(data)}")
        out = []
        for index, item in enumerate(data, 1):
            fields = _Fields(self, f"booking {index}", item)
            fields.only(("holder", "room", "from", "until", "title"))
            holder = None
            if fields.get("holder") is not None:
                holder = self.known_person(fields, "holder")
            starts = self.moment(fields, "from", signed=True)
            ends = self.moment(fields, "until", signed=True)
            if ends.wall_seconds(start.clock, wrap=False) <= starts.wall_seconds(start.clock, wrap=False):
                raise fields.fail(f"ends at {ends}, not after it starts ({starts})", "until")
            title = fields.text("title", "Scenario booking")
            out.append(BookingSpec(holder, fields.slug("room", required=True), starts, ends, title))
        return tuple(out)

    def known_person(self, fields: _Fields, key: str, value: object = None) -> str:
        name = fields.get(key) if value is None else value
        if not isinstance(name, str) or name not in self.people:
            listed = ", ".join(self.people) or "nobody yet"
            hint = _suggest(str(name), list(self.people))
            raise fields.fail(f"{_shown(name)} is not in people: ({listed}){hint}", key)
        return name

    # --- the timeline ----------------------------------------------------------------------------------

    def timeline(self, data: object, start: Start) -> tuple[Step, ...]:
        if not isinstance(data, list) or not data:
            raise self.fail("timeline", "expected a non-empty list of steps")
        steps: list[Step] = []
        now = Moment(offset=timedelta(0))
        elapsed = 0.0  # wall seconds after the start, to keep time moving forward only
        for number, item in enumerate(data, 1):
            step = self.step(number, item)
            if step.at.offset is not None or step.at.clock is not None:
                seconds = step.at.wall_seconds(start.clock)
                if seconds < elapsed:
                    raise self.fail(
                        f"step {number}",
                        f"at {step.at} is earlier than where the timeline already is "
                        f"({_format_offset(timedelta(seconds=elapsed))} after the start); "
                        "time only moves forward",
                    )
                elapsed, now = seconds, step.at
            else:
                step = Step(step.number, now, step.action, step.expect, step.note)
            if isinstance(step.action, Wait):
                elapsed += step.action.duration.total_seconds()
                now = Moment(offset=timedelta(seconds=elapsed))
            steps.append(step)
        return tuple(steps)

    def step(self, number: int, item: object) -> Step:
        where = f"step {number}"
        if not isinstance(item, dict):
            raise self.fail(where, f"expected a mapping like `tap: kari`, got {_kind(item)}")
        actions = [key for key in item if key in _ACTIONS]
        if len(actions) > 1:
            raise self.fail(where, f"one action per step, got {', '.join(map(str, actions))}")
        label = f"{where} ({actions[0]})" if actions else where
        fields = _Fields(self, label, item)
        allowed = ["at", *actions, *(_ACTIONS[actions[0]][0] if actions else ()), "expect", "note"]
        fields.only(allowed, known=[*_ACTIONS, "door"])
        if not actions and "expect" not in item:
            raise fields.fail(f"needs an action ({', '.join(_ACTIONS)}) or `expect:`")
        at = self.moment(fields, "at", signed=False) if fields.has("at") else Moment()
        action = _ACTIONS[actions[0]][1](self, fields, actions[0]) if actions else None
        expect = self.expectations(label, item.get("expect")) if "expect" in item else ()
        note = fields.text("note", "")
        return Step(number, at, action, expect, note)

    def moment(self, fields: _Fields, key: str, *, signed: bool) -> Moment:
        raw = fields.get(key)
        if not isinstance(raw, str | int) or isinstance(raw, bool):
            raise fields.fail(f'expected a time like "+0:05" or "19:45", got {_shown(raw)}', key)
        text = str(raw).strip()
        if text[:1] in "+-":
            offset = _duration(text[1:])
            if offset is None:
                raise fields.fail(f"{text!r} is not an offset like +0:05, +0:05:30 or +40s", key)
            if text[0] == "-":
                if not signed:
                    raise fields.fail(f"{text!r}: a step cannot happen before the start", key)
                offset = -offset
            return Moment(offset=offset)
        clock = _clock(text)
        if clock is None:
            raise fields.fail(
                f"{text!r} is not a time; write an offset from the start (+0:05) or a clock time (19:45)", key
            )
        return Moment(clock=clock)

    # --- actions ---------------------------------------------------------------------------------------

    def door_of(self, fields: _Fields, value: object, key: str = "door") -> str:
        if value is None:
            return self.door
        if not isinstance(value, str) or not is_slug(value):
            raise fields.fail(f"{_shown(value)} is not a door slug", key)
        return value

    def tap(self, fields: _Fields, key: str) -> Action:
        value = fields.get(key)
        door = self.door_of(fields, fields.get("door"))
        if value == UNKNOWN_CARD:
            return Tap(door, None)
        person = self.known_person(fields, key)
        if not self.people[person].card:
            raise fields.fail(f"{person} has no card", key)
        return Tap(door, person)

    def pin(self, fields: _Fields, key: str) -> Action:
        return Pin(self.door_of(fields, fields.get("door")), self.pin_text(fields, key))

    def scan(self, fields: _Fields, key: str) -> Action:
        value = fields.get(key)
        door = self.door_of(fields, fields.get("door"))
        if isinstance(value, str):
            return Scan(door, self.token_for(fields, key, value, TokenSpec(person=value)))
        spec = _Fields(self, f"{fields.where} {key}", value)
        if spec.has("text"):
            spec.only(("text",))
            return Scan(door, None, spec.text("text"))
        spec.only(("person", "site", "doors", "zones", "valid_from", "valid_for", "text"))
        valid_from = self.signed_duration(spec, "valid_from", timedelta(0))
        valid_for = self.signed_duration(spec, "valid_for", DEFAULT_TOKEN_VALIDITY)
        if valid_for <= timedelta(0):
            raise spec.fail("must be a positive duration like 1h", "valid_for")
        token = TokenSpec(
            person=self.known_person(spec, "person"),
            site=spec.slug("site") if spec.has("site") else None,
            doors=spec.slugs("doors"),
            zones=spec.slugs("zones") or (),
            valid_from=valid_from,
            valid_for=valid_for,
        )
        return Scan(door, self.token_for(spec, "person", token.person, token))

    def token_for(self, fields: _Fields, key: str, person: str, token: TokenSpec) -> TokenSpec:
        self.known_person(fields, key, person)
        if not self.people[person].phone:
            raise fields.fail(
                f"{person} has no phone credential to show a token (give them phone: true)", key
            )
        return token

    def signed_duration(self, fields: _Fields, key: str, default: timedelta) -> timedelta:
        value = fields.get(key)
        if value is None:
            return default
        text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
        sign = -1 if text.startswith("-") else 1
        parsed = _duration(text.lstrip("+-"))
        if parsed is None:
            raise fields.fail(f"{_shown(value)} is not a duration like 1h, 30m, -2h", key)
        return sign * parsed

    def door_action(self, fields: _Fields, key: str) -> Action:
        return DoorAction(key, self.door_of(fields, fields.get(key), key))

    def switch(self, fields: _Fields, key: str) -> Action:
        words = ("on", "off") if key == "fire" else ("up", "down")
        return Switch(key, fields.choice(key, words) == words[0])

    def central_change(self, fields: _Fields, key: str) -> Action:
        person = self.known_person(fields, key)
        if not self.people[person].card:
            raise fields.fail(f"{person} has no card", key)
        return CentralChange(key, person)

    def wait(self, fields: _Fields, key: str) -> Action:
        value = fields.get(key)
        parsed = (
            _duration(str(value)) if isinstance(value, str | int) and not isinstance(value, bool) else None
        )
        if parsed is None or parsed <= timedelta(0):
            raise fields.fail(f"{_shown(value)} is not a duration like 40s, 5m or 1h30m", key)
        return Wait(parsed)

    # --- expectations ----------------------------------------------------------------------------------

    def expectations(self, where: str, data: object) -> tuple[Expectation, ...]:
        items = [data] if isinstance(data, dict) else data
        if not isinstance(items, list) or not items:
            raise self.fail(where, "expect: expected a list of expectations like `- relay: energised`")
        out = []
        for index, item in enumerate(items, 1):
            label = f"{where} expect {index}"
            if not isinstance(item, dict):
                raise self.fail(label, f"expected a mapping like `relay: energised`, got {_kind(item)}")
            subjects = [key for key in item if key in _EXPECTATIONS]
            if len(subjects) != 1:
                if subjects:
                    got = f"it has {', '.join(map(str, subjects))}"
                else:
                    unknown = next(iter(item))
                    got = f"{unknown!r} is none of them{_suggest(str(unknown), list(_EXPECTATIONS))}"
                raise self.fail(label, f"needs exactly one of {', '.join(_EXPECTATIONS)}; {got}")
            subject = subjects[0]
            fields = _Fields(self, f"{label} ({subject})", item)
            fields.only([subject, *_EXPECTATIONS[subject][0]], known=list(_EXPECTATIONS))
            out.append(_EXPECTATIONS[subject][1](self, fields, subject))
        return tuple(out)

    def door_expectation(self, fields: _Fields, key: str) -> Expectation:
        options = {
            "relay": ("energised", "de-energised"),
            "lock": ("locked", "unlocked"),
            "door_state": tuple(s.value for s in m.DoorStateName),
            "awaiting_pin": ("true", "false"),
        }[key]
        value = fields.choice(key, options)
        door = fields.get("door")
        if door == ALL_DOORS:
            if key == "awaiting_pin":
                raise fields.fail("a PIN is asked for at one door at a time; name the door", "door")
            return DoorExpectation(key, ALL_DOORS, value)
        return DoorExpectation(key, self.door_of(fields, door), value)

    def access(self, fields: _Fields, key: str) -> Expectation:
        decision = fields.choice(key, ("grant", "deny", "none"))
        reason = self.reason(fields)
        if decision == "none" and (reason or fields.has("person") or fields.has("count")):
            raise fields.fail("`access: none` takes no person, reason or count (only door)")
        if reason is not None and (reason in GRANT_REASONS) != (decision == "grant"):
            raise fields.fail(
                f"{reason.value} is a reason to {'grant' if decision == 'deny' else 'deny'}", "reason"
            )
        person = self.known_person(fields, "person") if fields.has("person") else None
        return AccessExpectation(
            self.door_of(fields, fields.get("door")), decision, person, reason, fields.count("count")
        )

    def reason(self, fields: _Fields) -> m.Reason | None:
        if not fields.has("reason"):
            return None
        return m.Reason(fields.choice("reason", [r.value for r in m.Reason]))

    def alarm(self, fields: _Fields, key: str) -> Expectation:
        kind = m.AlarmKind(fields.choice(key, [k.value for k in m.AlarmKind]))
        door = self.door_of(fields, fields.get("door")) if fields.has("door") else None
        state = fields.choice("state", ("raised", "cleared", "none"), "raised")
        return AlarmExpectation(kind, door, state, central=key == "central_alarm")

    def lights(self, fields: _Fields, key: str) -> Expectation:
        zone = fields.slug("zone") if fields.has("zone") else None
        return LightsExpectation(fields.choice(key, ("on", "off")) == "on", zone)

    def intruder(self, fields: _Fields, key: str) -> Expectation:
        return IntruderExpectation(fields.choice(key, ("armed", "disarmed")) == "armed")

    def site_event(self, fields: _Fields, key: str) -> Expectation:
        kind = fields.choice(key, SITE_EVENT_KINDS)
        return SiteEventExpectation(kind, fields.text("detail") if fields.has("detail") else None)

    def occupancy(self, fields: _Fields, key: str) -> Expectation:
        count = fields.count(key)
        if count is None:
            raise fields.fail("is required", key)
        return OccupancyExpectation(count)

    def central_events(self, fields: _Fields, key: str) -> Expectation:
        count = fields.count(key)
        if count is None:
            raise fields.fail("is required", key)
        return CentralEventsExpectation(
            count,
            person=self.known_person(fields, "person") if fields.has("person") else None,
            kind=fields.choice("kind", CENTRAL_EVENT_KINDS) if fields.has("kind") else None,
            decision=fields.choice("decision", ("grant", "deny")) if fields.has("decision") else None,
            reason=self.reason(fields),
            door=self.door_of(fields, fields.get("door")) if fields.has("door") else None,
        )

    def journal(self, fields: _Fields, key: str) -> Expectation:
        value = fields.get(key)
        if value == "empty":
            return JournalExpectation(0)
        count = fields.count(key) if isinstance(value, int) else None
        if count is None:
            raise fields.fail(f"{_shown(value)}: expected `empty` or a number of pending events", key)
        return JournalExpectation(count)

    def replica(self, fields: _Fields, key: str) -> Expectation:
        fields.choice(key, ("current",))
        return ReplicaExpectation()


_Builder = Callable[[_Parser, _Fields, str], Any]
_DOOR_KEYS = ("door",)
# action key -> (qualifier keys, builder)
_ACTIONS: dict[str, tuple[tuple[str, ...], _Builder]] = {
    "tap": (_DOOR_KEYS, _Parser.tap),
    "pin": (_DOOR_KEYS, _Parser.pin),
    "scan": (_DOOR_KEYS, _Parser.scan),
    **{kind: ((), _Parser.door_action) for kind in ("push", "force", "hold_open", "let_go", "exit", "beam")},
    "fire": ((), _Parser.switch),
    "wan": ((), _Parser.switch),
    "central": ((), _Parser.switch),
    "revoke": ((), _Parser.central_change),
    "block": ((), _Parser.central_change),
    "wait": ((), _Parser.wait),
}
# expectation subject -> (qualifier keys, builder)
_EXPECTATIONS: dict[str, tuple[tuple[str, ...], _Builder]] = {
    "relay": (_DOOR_KEYS, _Parser.door_expectation),
    "lock": (_DOOR_KEYS, _Parser.door_expectation),
    "door_state": (_DOOR_KEYS, _Parser.door_expectation),
    "awaiting_pin": (_DOOR_KEYS, _Parser.door_expectation),
    "access": (("door", "person", "reason", "count"), _Parser.access),
    "alarm": (("door", "state"), _Parser.alarm),
    "lights": (("zone",), _Parser.lights),
    "intruder_alarm": ((), _Parser.intruder),
    "site_event": (("detail",), _Parser.site_event),
    "occupancy": ((), _Parser.occupancy),
    "central_events": (("person", "kind", "decision", "reason", "door"), _Parser.central_events),
    "central_alarm": (("door", "state"), _Parser.alarm),
    "journal": ((), _Parser.journal),
    "replica": ((), _Parser.replica),
}


def check_site(scenario: Scenario, config: m.SiteConfig) -> None:
    """Refuse doors, rooms and zones the site does not have, before anything is played."""
    doors = [door.slug for door in config.doors]
    zones = [zone.slug for zone in config.zones]
    rooms = [room.slug for room in config.rooms]
    for step in scenario.steps:
        where = f"step {step.number}"
        named = [getattr(step.action, "door", None), *(getattr(e, "door", None) for e in step.expect)]
        for door in named:
            if isinstance(door, str) and door != ALL_DOORS and door not in doors:
                hint = _suggest(door, doors)
                raise scenario.error(
                    where, f"no door {door!r} at {config.site}{hint} (doors: {', '.join(doors)})"
                )
        for expectation in step.expect:
            if (
                isinstance(expectation, LightsExpectation)
                and expectation.zone
                and expectation.zone not in zones
            ):
                raise scenario.error(
                    where, f"no zone {expectation.zone!r} at {config.site} ({', '.join(zones)})"
                )
        if isinstance(step.action, Scan) and step.action.token is not None:
            token = step.action.token
            if token.site in (None, config.site):
                for door in token.doors or ():
                    if door not in doors:
                        raise scenario.error(where, f"the token names no door of {config.site}: {door!r}")
                for zone in token.zones:
                    if zone not in zones:
                        raise scenario.error(where, f"the token names no zone of {config.site}: {zone!r}")
    if scenario.door not in doors:
        raise scenario.error(
            "door", f"no door {scenario.door!r} at {config.site} (doors: {', '.join(doors)})"
        )
    for index, booking in enumerate(scenario.bookings, 1):
        if booking.room not in rooms:
            raise scenario.error(
                f"booking {index}", f"no room {booking.room!r} at {config.site} (rooms: {', '.join(rooms)})"
            )


# --- small helpers ------------------------------------------------------------------------------------------


def _clock(text: str) -> time | None:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", text)
    if match is None:
        return None
    hours, minutes, seconds = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        return None
    return time(hours, minutes, seconds)


def _duration(text: str) -> timedelta | None:
    """40s, 5m, 1h30m, 90 (seconds), or H:MM / H:MM:SS."""
    text = text.strip()
    if re.fullmatch(r"\d+", text):
        return timedelta(seconds=int(text))
    match = re.fullmatch(r"(\d+):(\d{2})(?::(\d{2}))?", text)
    if match is not None:
        if int(match.group(2)) > 59 or int(match.group(3) or 0) > 59:
            return None
        return timedelta(
            hours=int(match.group(1)), minutes=int(match.group(2)), seconds=int(match.group(3) or 0)
        )
    match = re.fullmatch(r"(?:(\d+)h)?\s*(?:(\d+)m(?:in)?)?\s*(?:(\d+(?:\.\d+)?)s)?", text)
    if match is None or not any(match.groups()):
        return None
    hours, minutes, seconds = match.groups()
    return timedelta(hours=int(hours or 0), minutes=int(minutes or 0), seconds=float(seconds or 0))


def _seconds_of(clock: time) -> int:
    return clock.hour * 3600 + clock.minute * 60 + clock.second


def _format_offset(offset: timedelta) -> str:
    sign = "-" if offset < timedelta(0) else "+"
    total = int(abs(offset).total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{sign}{hours}:{minutes:02d}" + (f":{seconds:02d}" if seconds else "")


def _format_duration(duration: timedelta) -> str:
    total = duration.total_seconds()
    hours, rest = divmod(int(total), 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    frac = total - int(total)
    if seconds or frac or not any(parts):
        parts.append(f"{seconds + frac:g}s")
    return "".join(parts)


def _kind(value: object) -> str:
    if value is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "text", bool: "true/false", int: "a number"}.get(
        type(value), type(value).__name__
    )


def _shown(value: object) -> str:
    if value is None:
        return "nothing"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _suggest(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _one_line(text: str) -> str:
    return " ".join(text.split())
