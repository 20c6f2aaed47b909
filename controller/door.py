"""One door as a pure state machine: events in, outputs out, time passed in as monotonic seconds.

The agent feeds it what the hardware and the decision engine say (a grant, the exit button, the door contact,
the lock monitor, tamper, fire, a mode set by central) and executes what it returns (lock, buzzer, alarms,
state, passages). Nothing here reads a clock or touches a pin, so every timing rule is tested in microseconds
and the same code runs on a Raspberry Pi and in CI.

Rules, in order of priority:
- Fire releases the door whatever else is true; when it clears the door relocks (back to its previous mode).
- `released` mode holds the door unlocked; `locked_down` ignores grants and exit requests.
- A grant (or an exit request) unlocks for its seconds; the door relocks when those pass unopened, when it
  closes again, or when it has been held open past `held_open_seconds` (the lock re-engages on the close).
- The lock output is the logical state; `relay_energised` maps it to the relay for fail-secure/fail-safe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from protocol import messages as m


class DoorMode(StrEnum):
    NORMAL = "normal"
    LOCKED_DOWN = "locked_down"  # no grant or exit request unlocks; fire still releases
    RELEASED = "released"  # held unlocked until set back to normal


def relay_energised(lock_type: m.LockType, unlocked: bool) -> bool:
    """The relay level for a logical lock state: fail-secure locks need power to open, fail-safe to hold."""
    return unlocked if lock_type is m.LockType.FAIL_SECURE else not unlocked


def _positive(slug: str, name: str, value: float, *, zero_ok: bool = False) -> None:
    ok = isinstance(value, int | float) and math.isfinite(value) and (value >= 0 if zero_ok else value > 0)
    if not ok:
        wanted = "zero or more" if zero_ok else "a positive number of"
        raise ValueError(f"door {slug!r}: {name} must be {wanted} seconds, got {value!r}")


@dataclass(frozen=True)
class DoorSettings:
    slug: str
    unlock_seconds: float = 5.0
    held_open_seconds: float = 30.0
    prewarn_seconds: float = 10.0  # the buzzer sounds this long before the held-open alarm
    lock_type: m.LockType = m.LockType.FAIL_SECURE
    has_lock_monitor: bool = False
    exit_grace_seconds: float = 5.0  # an exit request this recent makes an opening an exit, never forced
    lock_monitor_seconds: float = 2.0  # the monitor must report secured this soon after a relock

    def __post_init__(self) -> None:
        for name in ("unlock_seconds", "held_open_seconds", "exit_grace_seconds", "lock_monitor_seconds"):
            _positive(self.slug, name, getattr(self, name))
        _positive(self.slug, "prewarn_seconds", self.prewarn_seconds, zero_ok=True)
        if not isinstance(self.lock_type, m.LockType):
            raise ValueError(f"door {self.slug!r}: lock_type must be one of {[t.value for t in m.LockType]}")

    @classmethod
    def from_door(
        cls, door: m.Door, *, has_lock_monitor: bool = False, prewarn_seconds: float = 10.0
    ) -> DoorSettings:
        return cls(
            slug=door.slug,
            unlock_seconds=float(door.unlock_seconds),
            held_open_seconds=float(door.held_open_seconds),
            prewarn_seconds=prewarn_seconds,
            lock_type=door.lock_type,
            has_lock_monitor=has_lock_monitor,
        )


# --- events ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """A valid credential or a remote unlock; `seconds` overrides the door's unlock time (timed unlock)."""

    seconds: float | None = None

    def __post_init__(self) -> None:
        if self.seconds is not None:
            _positive("grant", "seconds", self.seconds)


@dataclass(frozen=True)
class ExitRequest:
    """The exit button: unlocks without a decision (unless locked down) and excuses the next opening."""


@dataclass(frozen=True)
class Contact:
    open: bool


@dataclass(frozen=True)
class LockMonitor:
    secured: bool


@dataclass(frozen=True)
class Tamper:
    active: bool


@dataclass(frozen=True)
class Fire:
    active: bool


@dataclass(frozen=True)
class SetMode:
    mode: DoorMode


DoorEvent = Grant | ExitRequest | Contact | LockMonitor | Tamper | Fire | SetMode


# --- outputs -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lock:
    """The logical lock state; the adapter maps it to a relay level with `relay_energised`."""

    unlocked: bool


@dataclass(frozen=True)
class Buzzer:
    on: bool


@dataclass(frozen=True)
class Alarm:
    kind: m.AlarmKind
    raised: bool
    detail: str = ""


@dataclass(frozen=True)
class StateChanged:
    state: m.DoorStateName


@dataclass(frozen=True)
class Passage:
    """The door opened and closed again; `authorised` when a grant, exit request or release opened it."""

    authorised: bool
    exit: bool


@dataclass(frozen=True)
class Tailgate:
    """The door opened again within one grant's unlock time after the grant's passage closed it."""


DoorOutput = Lock | Buzzer | Alarm | StateChanged | Passage | Tailgate

_ALARM_ORDER = (m.AlarmKind.FORCED_OPEN, m.AlarmKind.HELD_OPEN, m.AlarmKind.TAMPER, m.AlarmKind.LOCK_FAULT)


# --- the machine -------------------------------------------------------------------------------------------


@dataclass
class _Window:
    """An unlock granted by a credential, remote command or exit request."""

    at: float
    until: float
    exit: bool
    used: bool = False  # the door opened during it: it now ends on close or at the held-open alarm


@dataclass
class _Opening:
    at: float
    authorised: bool
    exit: bool
    forced: bool = False
    watched_from: float | None = None  # held-open timing starts here; None while released or forced


class DoorMachine:
    """One door: call `handle` per event and `tick` at `next_deadline()`; execute the outputs in order."""

    def __init__(self, settings: DoorSettings, now: float, *, door_open: bool = False) -> None:
        """Starts LOCKED; `door_open`: the contact already reads open (held-open timing, not forced)."""
        self.settings = settings
        self._now = _finite(now)
        self._mode = DoorMode.NORMAL
        self._fire = False
        self._tamper = False
        self._window: _Window | None = None
        self._opening = _Opening(now, True, False, watched_from=now) if door_open else None
        self._tailgate_until: float | None = None
        self._exit_at: float | None = None
        self._secured: bool | None = None
        self._fault_due: float | None = None
        self._buzzing = False
        self._held = False
        self._fault = False
        self._events: list[DoorOutput] = []
        self._told_unlocked = False
        self._told_buzzer = False
        self._told_alarms: set[m.AlarmKind] = set()
        self._told_state = m.DoorStateName.LOCKED
        self._watch_lock_monitor(now)

    @staticmethod
    def safe_outputs() -> list[DoorOutput]:
        """What puts the hardware in its safe locked state, at start and on shutdown."""
        return [Lock(unlocked=False), Buzzer(on=False)]

    @property
    def mode(self) -> DoorMode:
        return self._mode

    @property
    def released(self) -> bool:
        return self._fire or self._mode is DoorMode.RELEASED

    @property
    def unlocked(self) -> bool:
        return self.released or self._window is not None

    @property
    def door_open(self) -> bool:
        return self._opening is not None

    @property
    def state(self) -> m.DoorStateName:
        if self.released:
            return m.DoorStateName.RELEASED
        if self._opening is not None:
            if self._opening.forced:
                return m.DoorStateName.FORCED_OPEN
            return m.DoorStateName.HELD_OPEN if self._held else m.DoorStateName.OPEN
        if self._fault:
            return m.DoorStateName.FAULT
        if self.unlocked:
            return m.DoorStateName.UNLOCKED
        if self._mode is DoorMode.LOCKED_DOWN:
            return m.DoorStateName.LOCKED_DOWN
        return m.DoorStateName.LOCKED

    def next_deadline(self) -> float | None:
        """The next moment `tick` has something to do, or None when nothing is pending."""
        due: list[float] = []
        if self._window is not None and not self._window.used:
            due.append(self._window.until)
        opening = self._opening
        if opening is not None and opening.watched_from is not None:
            if not self._buzzing:
                due.append(self._buzz_at(opening.watched_from))
            if not self._held:
                due.append(opening.watched_from + self.settings.held_open_seconds)
        if self._fault_due is not None:
            due.append(self._fault_due)
        return min(due, default=None)

    def tick(self, now: float) -> list[DoorOutput]:
        now = self._clamp(now)
        return self._advance(now) + self._flush(now)

    def handle(self, event: DoorEvent, now: float) -> list[DoorOutput]:
        now = self._clamp(now)
        out = self._advance(now)
        self._apply(event, now)
        return out + self._flush(now)

    # --- time ----------------------------------------------------------------------------------------------

    def _clamp(self, now: float) -> float:
        """Monotonic seconds never go back; a late or repeated reading is taken as 'no time passed'."""
        self._now = max(self._now, _finite(now))
        return self._now

    def _advance(self, now: float) -> list[DoorOutput]:
        """Run every deadline up to `now` at its own time, so a late tick or event sees the right order."""
        out: list[DoorOutput] = []
        while (due := self.next_deadline()) is not None and due <= now:
            self._expire(due)
            out += self._flush(due)
        return out

    def _buzz_at(self, watched_from: float) -> float:
        s = self.settings
        return watched_from + max(0.0, s.held_open_seconds - s.prewarn_seconds)

    def _expire(self, t: float) -> None:
        window = self._window
        if window is not None and not window.used and window.until <= t:
            self._window = None
        opening = self._opening
        if opening is not None and opening.watched_from is not None:
            if not self._buzzing and self._buzz_at(opening.watched_from) <= t:
                self._buzzing = True
            if not self._held and opening.watched_from + self.settings.held_open_seconds <= t:
                self._held = True
                if self._window is not None and self._window.used:
                    self._window = None  # held open too long: the lock re-engages when it closes
        if self._fault_due is not None and self._fault_due <= t:
            self._fault = True
            self._fault_due = None

    # --- events --------------------------------------------------------------------------------------------

    def _apply(self, event: DoorEvent, t: float) -> None:
        match event:
            case Grant(seconds=seconds):
                self._grant(t, self.settings.unlock_seconds if seconds is None else seconds, exit=False)
            case ExitRequest():
                self._exit_at = t
                self._grant(t, self.settings.unlock_seconds, exit=True)
            case Contact(open=True) if self._opening is None:
                self._open(t)
            case Contact(open=False) if self._opening is not None:
                self._close(self._opening)
            case Contact():
                pass  # no change: a repeated reading
            case LockMonitor(secured=secured):
                self._secured = secured
                if secured:
                    self._fault = False
                    self._fault_due = None
            case Tamper(active=active):
                self._tamper = active
            case Fire(active=active):
                was = self.released
                self._fire = active
                self._release_changed(t, was)
            case SetMode(mode=mode):
                was = self.released
                self._mode = DoorMode(mode)
                if self._mode is DoorMode.LOCKED_DOWN:
                    self._window = None
                    self._tailgate_until = None
                self._release_changed(t, was)
            case _:
                raise TypeError(f"door {self.settings.slug!r}: not a door event: {event!r}")

    def _grant(self, t: float, seconds: float, *, exit: bool) -> None:
        if self.released or self._mode is DoorMode.LOCKED_DOWN:
            return
        self._window = _Window(at=t, until=t + seconds, exit=exit)

    def _open(self, t: float) -> None:
        window = self._window
        if self.released:
            self._opening = _Opening(t, authorised=True, exit=False)
        elif window is not None:
            window.used = True
            if window.exit:
                self._exit_at = None
            self._opening = _Opening(t, authorised=True, exit=window.exit, watched_from=t)
        elif self._exit_at is not None and t - self._exit_at <= self.settings.exit_grace_seconds:
            self._exit_at = None
            self._opening = _Opening(t, authorised=True, exit=True, watched_from=t)
        elif self._tailgate_until is not None and t < self._tailgate_until:
            self._events.append(Tailgate())
            self._opening = _Opening(t, authorised=False, exit=False, watched_from=t)
        else:
            self._opening = _Opening(t, authorised=False, exit=False, forced=True)

    def _close(self, opening: _Opening) -> None:
        self._opening = None
        self._buzzing = False
        self._held = False
        self._events.append(Passage(authorised=opening.authorised, exit=opening.exit))
        if self._window is not None:
            self._tailgate_until = self._window.until
            self._window = None

    def _release_changed(self, t: float, was: bool) -> None:
        now_released = self.released
        if now_released == was:
            return
        self._tailgate_until = None
        self._window = None
        opening = self._opening
        if opening is None or opening.forced:
            return
        if now_released:
            opening.watched_from = None
            self._buzzing = False
            self._held = False
        else:
            opening.watched_from = t  # left open after a release: held-open timing starts now

    # --- outputs -------------------------------------------------------------------------------------------

    def _watch_lock_monitor(self, t: float) -> None:
        """Expect the monitor to report secured soon after the lock is locked on a closed door."""
        expected = self.settings.has_lock_monitor and not self.unlocked and self._opening is None
        if not expected or self._secured:
            self._fault_due = None
        elif self._fault_due is None and not self._fault:
            self._fault_due = t + self.settings.lock_monitor_seconds

    def _alarms(self) -> dict[m.AlarmKind, str]:
        s = self.settings
        alarms: dict[m.AlarmKind, str] = {}
        if self._opening is not None and self._opening.forced:
            alarms[m.AlarmKind.FORCED_OPEN] = "opened while locked"
        if self._held:
            alarms[m.AlarmKind.HELD_OPEN] = f"open longer than {s.held_open_seconds:g} s"
        if self._tamper:
            alarms[m.AlarmKind.TAMPER] = "tamper input active"
        if self._fault:
            alarms[m.AlarmKind.LOCK_FAULT] = f"lock not secured {s.lock_monitor_seconds:g} s after locking"
        return alarms

    def _flush(self, t: float) -> list[DoorOutput]:
        """Tell what changed since the last call: lock first, then buzzer, alarms, passages, state."""
        self._watch_lock_monitor(t)
        out: list[DoorOutput] = []
        if self.unlocked != self._told_unlocked:
            self._told_unlocked = self.unlocked
            out.append(Lock(unlocked=self.unlocked))
        if self._buzzing != self._told_buzzer:
            self._told_buzzer = self._buzzing
            out.append(Buzzer(on=self._buzzing))
        alarms = self._alarms()
        for kind in _ALARM_ORDER:
            if (kind in alarms) != (kind in self._told_alarms):
                out.append(Alarm(kind, raised=kind in alarms, detail=alarms.get(kind, "")))
        self._told_alarms = set(alarms)
        out += self._events
        self._events = []
        if self.state != self._told_state:
            self._told_state = self.state
            out.append(StateChanged(self.state))
        return out


def _finite(now: float) -> float:
    if not (isinstance(now, int | float) and math.isfinite(now)):
        raise ValueError(f"monotonic time must be a finite number of seconds, got {now!r}")
    return float(now)
