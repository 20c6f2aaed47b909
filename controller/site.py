"""The site around its doors during meråpent hours, as a pure state machine on UTC datetimes.

The agent tells it what the calendar says now (`tick`), what happened at the doors (passages, grants, beam
counter pulses, valid entries) and executes what it returns: closing warnings for the kiosk and the speaker,
lights per zone, the intruder-alarm output, occupancy and tailgating events.

The evening, in order: lights on at opening; warnings 15 and 5 minutes before closing; `Closed` at closing; a
sweep delay for the last people to leave; then, if nobody is counted inside, lights off and the intruder alarm
armed. If people are still counted inside, `StillOccupied` is said once, the lights stay on until the count
reaches 0 or a maximum delay passes, and the alarm arms when the count reaches 0. The first valid entry
disarms it; after one while closed, the sweep starts again so the site re-arms when it is empty.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum, auto


@dataclass(frozen=True)
class ClosingWarning:
    minutes_left: int


@dataclass(frozen=True)
class Closed:
    pass


@dataclass(frozen=True)
class Lights:
    zone: str
    on: bool


@dataclass(frozen=True)
class StillOccupied:
    count: int


@dataclass(frozen=True)
class IntruderAlarm:
    armed: bool


@dataclass(frozen=True)
class Intrusion:
    """A passage while the intruder alarm is armed and nobody made a valid entry."""

    door: str


@dataclass(frozen=True)
class Occupancy:
    count: int


@dataclass(frozen=True)
class Tailgating:
    door: str
    detail: str


SiteOutput = (
    ClosingWarning | Closed | Lights | StillOccupied | IntruderAlarm | Intrusion | Occupancy | Tailgating
)


class _Phase(Enum):
    UNKNOWN = auto()  # not ticked yet
    OPEN = auto()
    SWEEP = auto()  # closed, waiting for the sweep delay
    OCCUPIED = auto()  # swept, but people are still counted inside
    SECURED = auto()  # closed, empty, lights off, alarm armed


def _aware(name: str, value: datetime) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value


class SiteMachine:
    def __init__(
        self,
        zones: Sequence[str],
        entrance_doors: Sequence[str],
        warnings_min: Sequence[int] = (15, 5),
        *,
        sweep_minutes: float = 10.0,
        max_sweep_minutes: float = 60.0,
        grant_window_seconds: float = 10.0,
        occupancy: int = 0,
        armed: bool = False,
    ) -> None:
        """`occupancy` and `armed` restore what was known before a restart; lights start unknown."""
        if not zones or len(set(zones)) != len(zones):
            raise ValueError(f"site zones must be a non-empty list of distinct names, got {list(zones)!r}")
        bad = any(not isinstance(w, int) or w <= 0 for w in warnings_min)
        if bad or len(set(warnings_min)) != len(warnings_min):
            raise ValueError(f"warnings_min must be distinct positive minutes, got {list(warnings_min)!r}")
        for name, value in (("sweep_minutes", sweep_minutes), ("grant_window_seconds", grant_window_seconds)):
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be zero or more, got {value!r}")
        if not math.isfinite(max_sweep_minutes) or max_sweep_minutes < sweep_minutes:
            raise ValueError(f"max_sweep_minutes must be at least sweep_minutes, got {max_sweep_minutes!r}")
        if occupancy < 0:
            raise ValueError(f"occupancy must be zero or more, got {occupancy!r}")
        self._zones = tuple(zones)
        self._entrances = frozenset(entrance_doors)
        self._warnings_min = tuple(sorted(warnings_min))
        self._sweep = timedelta(minutes=sweep_minutes)
        self._max_sweep = timedelta(minutes=max_sweep_minutes)
        self._grant_window = timedelta(seconds=grant_window_seconds)
        self._occupancy = occupancy
        self._armed = armed
        self._phase = _Phase.UNKNOWN
        self._lights: dict[str, bool | None] = dict.fromkeys(self._zones)
        self._sweep_at: datetime | None = None
        self._max_at: datetime | None = None
        self._warned: dict[datetime, set[int]] = {}
        self._credits: dict[str, deque[datetime]] = {}

    @property
    def occupancy(self) -> int:
        return self._occupancy

    @property
    def armed(self) -> bool:
        return self._armed

    @property
    def is_open(self) -> bool:
        return self._phase is _Phase.OPEN

    def lights(self, zone: str) -> bool | None:
        """The last state told for `zone`'s lights; None before any was told."""
        return self._lights[zone]

    # --- the calendar --------------------------------------------------------------------------------------

    def tick(self, now: datetime, closes_at: datetime | None, is_open: bool) -> list[SiteOutput]:
        """Call often (every few seconds) with what the calendar says now; `closes_at` is today's closing."""
        _aware("now", now)
        if closes_at is not None:
            _aware("closes_at", closes_at)
        out: list[SiteOutput] = []
        if is_open:
            if self._phase is not _Phase.OPEN:
                self._phase = _Phase.OPEN
                out += self._set_lights(True)
            out += self._warnings(now, closes_at)
            return out
        if self._phase is _Phase.OPEN:
            out.append(Closed())
            self._start_sweep(now)
        elif self._phase is _Phase.UNKNOWN:
            self._start_sweep(now)  # started while closed: sweep as after a closing
        return out + self._sweep_step(now)

    def _warnings(self, now: datetime, closes_at: datetime | None) -> list[SiteOutput]:
        """The warning of the interval `now` is in, once; intervals already past are not announced late."""
        self._warned = {at: done for at, done in self._warned.items() if at > now}
        if closes_at is None or now >= closes_at:
            return []
        left = closes_at - now
        due = [w for w in self._warnings_min if left <= timedelta(minutes=w)]
        if not due:
            return []
        done = self._warned.setdefault(closes_at, set())
        first = min(due)
        out: list[SiteOutput] = []
        if first not in done:
            out.append(ClosingWarning(min(first, math.ceil(left / timedelta(minutes=1)))))
        done.update(due)
        return out

    def _start_sweep(self, now: datetime) -> None:
        self._phase = _Phase.SWEEP
        self._sweep_at = now + self._sweep
        self._max_at = now + self._max_sweep

    def _sweep_step(self, now: datetime) -> list[SiteOutput]:
        out: list[SiteOutput] = []
        if self._phase is _Phase.SWEEP and self._sweep_at is not None and now >= self._sweep_at:
            if self._occupancy == 0:
                return self._secure()
            self._phase = _Phase.OCCUPIED
            out.append(StillOccupied(self._occupancy))
        if self._phase is _Phase.OCCUPIED and self._max_at is not None and now >= self._max_at:
            out += self._set_lights(False)  # nobody left the count in time; the alarm waits for 0
        return out

    def _secure(self) -> list[SiteOutput]:
        self._phase = _Phase.SECURED
        out = self._set_lights(False)
        if not self._armed:
            self._armed = True
            out.append(IntruderAlarm(armed=True))
        return out

    def _set_lights(self, on: bool) -> list[SiteOutput]:
        out: list[SiteOutput] = []
        for zone in self._zones:
            if self._lights[zone] is not on:
                self._lights[zone] = on
                out.append(Lights(zone, on))
        return out

    # --- people --------------------------------------------------------------------------------------------

    def valid_entry(self, now: datetime) -> list[SiteOutput]:
        """Someone was granted entry: disarm; if the site was secured, sweep again to re-arm when empty."""
        _aware("now", now)
        out: list[SiteOutput] = []
        if self._armed:
            self._armed = False
            out.append(IntruderAlarm(armed=False))
        if self._phase is _Phase.SECURED:
            self._start_sweep(now)
        return out

    def entry(self, door: str, now: datetime, granted: bool) -> list[SiteOutput]:
        """A passage inward at `door`; `granted` when a grant opened it (then it is also a valid entry)."""
        _aware("now", now)
        out = self.valid_entry(now) if granted else self._intrusion(door)
        if door in self._entrances:
            self._occupancy += 1
            out.append(Occupancy(self._occupancy))
        return out

    def exit(self, door: str, now: datetime) -> list[SiteOutput]:
        """A passage outward at `door`; the count never goes below 0 (a missed entry is not a debt)."""
        _aware("now", now)
        out = self._intrusion(door)
        if door in self._entrances and self._occupancy > 0:
            self._occupancy -= 1
            out.append(Occupancy(self._occupancy))
            if self._occupancy == 0 and self._phase is _Phase.OCCUPIED:
                out += self._secure()
        return out

    def _intrusion(self, door: str) -> list[SiteOutput]:
        return [Intrusion(door)] if self._armed else []

    # --- tailgating by beam counter ------------------------------------------------------------------------

    def grant(self, door: str, now: datetime) -> list[SiteOutput]:
        """A grant at `door` lets one beam passage through within the grant window."""
        _aware("now", now)
        self._credits.setdefault(door, deque()).append(now)
        self._prune(door, now)
        return []

    def beam(self, door: str, now: datetime) -> list[SiteOutput]:
        """A beam counter pulse: it uses up the oldest grant still in its window, or it is tailgating."""
        _aware("now", now)
        credits = self._credits.setdefault(door, deque())
        self._prune(door, now)
        if credits:
            credits.popleft()
            return []
        window = self._grant_window.total_seconds()
        return [Tailgating(door, f"more beam passages than grants within {window:g} s")]

    def _prune(self, door: str, now: datetime) -> None:
        credits = self._credits[door]
        while credits and now - credits[0] > self._grant_window:
            credits.popleft()
