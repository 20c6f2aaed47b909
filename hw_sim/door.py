"""Door physics on gpiozero MockFactory pins: the other side of the wires the agent watches and drives.

A SimDoor reads the lock relay pin the agent drives and drives the door-contact and exit-button pins the
agent reads, like a real door: a person can push it open only while the lock is released, anyone can force
it, and its closer shuts it `closer_seconds` after it was let go. Time comes from an injectable clock and
moves only in tick(), so tests and scenarios can run with controller.clock.ManualClock.

Wiring defaults match controller.devices.gpio: inputs switch to ground against the pull-up (active = low),
relays are active-high. Note that MockFactory calls the agent's pin callbacks synchronously inside the
drive_high()/drive_low() calls made here.
"""

from __future__ import annotations

import threading

from gpiozero.pins.mock import MockFactory, MockPin

from controller.clock import Clock, SystemClock
from controller.devices.gpio import LockType, parse_lock_type


def _drive(pin: MockPin, active: bool, active_high: bool) -> None:
    if active == active_high:
        pin.drive_high()
    else:
        pin.drive_low()


def _input_pin(factory: MockFactory, number: int | str) -> MockPin:
    pin: MockPin = factory.pin(number)
    return pin


class SimDoor:
    def __init__(
        self,
        factory: MockFactory,
        relay_pin: int | str,
        contact_pin: int | str,
        exit_pin: int | str | None,
        lock_type: LockType | str,
        closer_seconds: float = 3.0,
        clock: Clock | None = None,
        *,
        relay_active_high: bool = True,
        contact_active_high: bool = False,
        exit_active_high: bool = False,
    ) -> None:
        self.lock_type = parse_lock_type(lock_type)
        self.closer_seconds = closer_seconds
        self._clock = clock or SystemClock()
        self._relay = _input_pin(factory, relay_pin)
        self._contact = _input_pin(factory, contact_pin)
        self._exit = _input_pin(factory, exit_pin) if exit_pin is not None else None
        self._relay_active_high = relay_active_high
        self._contact_active_high = contact_active_high
        self._exit_active_high = exit_active_high
        self._lock = threading.RLock()
        self._open = False
        self._held = False
        self._closes_at: float | None = None
        self.openings = 0  # how often the door swung open (pushed or forced)

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def is_unlocked(self) -> bool:
        """What the lock does right now, read from the relay pin the agent drives."""
        energised = bool(self._relay.state) == self._relay_active_high
        return energised if self.lock_type is LockType.FAIL_SECURE else not energised

    def push(self) -> bool:
        """A person pushes the door: it opens only if the lock is released. Returns whether it opened."""
        with self._lock:
            if not self._open and not self.is_unlocked:
                return False
            self._swing_open()
            return True

    def force(self) -> None:
        """The door is forced (or the latch failed): it opens whatever the lock says."""
        with self._lock:
            self._swing_open()

    def hold_open(self) -> None:
        """Someone keeps the door open (or wedges it): the closer waits until let_go()."""
        with self._lock:
            if self._open:
                self._held = True
                self._closes_at = None

    def let_go(self) -> None:
        with self._lock:
            if self._open and self._held:
                self._held = False
                self._closes_at = self._clock.monotonic() + self.closer_seconds

    def tick(self) -> None:
        """Let the closer do its work up to the clock's current time."""
        with self._lock:
            if self._open and self._closes_at is not None and self._clock.monotonic() >= self._closes_at:
                self._open = False
                self._closes_at = None
                _drive(self._contact, False, self._contact_active_high)

    def press_exit(self) -> None:
        """Someone inside presses and releases the request-to-exit button."""
        if self._exit is None:
            raise RuntimeError("this door has no exit button")
        _drive(self._exit, True, self._exit_active_high)
        _drive(self._exit, False, self._exit_active_high)

    def _swing_open(self) -> None:
        if not self._open:
            self.openings += 1
        self._open = True
        self._held = False
        self._closes_at = self._clock.monotonic() + self.closer_seconds
        _drive(self._contact, True, self._contact_active_high)


class SimFirePanel:
    """The fire panel's release output, wired to the agent's fire input."""

    def __init__(self, factory: MockFactory, pin: int | str, *, active_high: bool = False) -> None:
        self._pin = _input_pin(factory, pin)
        self._active_high = active_high

    def alarm(self, on: bool) -> None:
        _drive(self._pin, on, self._active_high)


class SimBeam:
    """A light-beam passage counter: each person walking through breaks the beam once."""

    def __init__(self, factory: MockFactory, pin: int | str, *, active_high: bool = False) -> None:
        self._pin = _input_pin(factory, pin)
        self._active_high = active_high

    def person_passes(self) -> None:
        _drive(self._pin, True, self._active_high)
        _drive(self._pin, False, self._active_high)
