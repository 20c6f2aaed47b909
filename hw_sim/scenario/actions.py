"""What a timeline step does (tap, pin, scan, door actions, switches, central changes, wait): frozen
dataclasses whose ``str()`` is how the runner reports the step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from hw_sim.scenario.times import _format_duration
from hw_sim.scenario.vocabulary import DEFAULT_TOKEN_VALIDITY


@dataclass(frozen=True)
class TokenSpec:
    person: str
    site: str | None = None  # None: the scenario's site
    doors: tuple[str, ...] | None = None  # None: the door it is scanned at (when zones are not given)
    zones: tuple[str, ...] = ()
    valid_from: timedelta = timedelta(0)  # relative to the moment it is scanned
    valid_for: timedelta = DEFAULT_TOKEN_VALIDITY


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
