"""What a step expects to observe afterwards: frozen dataclasses whose ``str()`` is how the runner says
what was checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from hw_sim.scenario.vocabulary import ALL_DOORS
from protocol import messages as m


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
