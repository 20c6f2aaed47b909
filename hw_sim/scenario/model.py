"""A parsed scenario: its start, moments, people, bookings and steps (frozen dataclasses), and
ScenarioError. What a step does and expects lives in actions.py and expectations.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path

from hw_sim.scenario.actions import Action
from hw_sim.scenario.expectations import Expectation
from hw_sim.scenario.seed_people import _SEED
from hw_sim.scenario.times import _format_offset, _seconds_of
from hw_sim.scenario.vocabulary import DEFAULT_DOOR, DEFAULT_PIN, DEFAULT_SITE
from protocol import messages as m


class ScenarioError(ValueError):
    """A scenario that cannot be run; ``str()`` is one line: file, place, problem."""


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
