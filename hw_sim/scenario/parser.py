"""Reading and validating a scenario file into the model (pure: no clock, no network): `load`, `parse`
and the parser with its tables of actions and expectations. Every problem is one ScenarioError line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from hw_sim.scenario.actions import Action, CentralChange, DoorAction, Pin, Scan, Switch, Tap, TokenSpec, Wait
from hw_sim.scenario.expectations import (
    AccessExpectation,
    AlarmExpectation,
    CentralEventsExpectation,
    DoorExpectation,
    Expectation,
    IntruderExpectation,
    JournalExpectation,
    LightsExpectation,
    OccupancyExpectation,
    ReplicaExpectation,
    SiteEventExpectation,
)
from hw_sim.scenario.fields import _Fields
from hw_sim.scenario.model import BookingSpec, Moment, PersonSpec, Scenario, ScenarioError, Start, Step
from hw_sim.scenario.seed_people import _SEED, SEED_NAMES
from hw_sim.scenario.strict_yaml import _Loader
from hw_sim.scenario.times import _clock, _duration, _format_offset
from hw_sim.scenario.vocabulary import (
    ALL_DOORS,
    CENTRAL_EVENT_KINDS,
    DEFAULT_DOOR,
    DEFAULT_GROUPS,
    DEFAULT_PIN,
    DEFAULT_SITE,
    DEFAULT_START_TIME,
    DEFAULT_TOKEN_VALIDITY,
    GRANT_REASONS,
    GROUPS,
    SITE_EVENT_KINDS,
    UNKNOWN_CARD,
    WEEKDAYS,
)
from hw_sim.scenario.wording import _kind, _one_line, _shown, _suggest
from protocol import messages as m
from protocol.topics import is_slug


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
