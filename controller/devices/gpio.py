"""Lock relays, plain outputs and binary inputs on the Pi's GPIO header, through gpiozero.

The pin factory is injectable (`factory`); None means gpiozero's default, chosen from the environment
(GPIOZERO_PIN_FACTORY; lgpio on a Pi). Tests pass gpiozero.pins.mock.MockFactory.

Safety rules this module keeps:
- A lock relay is created at its locked level, so a door is locked from process start (for a fail-secure lock
  the relay stays de-energised: the same level it had before the process ran) and close() returns it there.
- The fire input releases every lock from the GPIO callback thread itself (FireRelease), so a fire alarm opens
  the doors even when the agent's loop, MQTT or the database is stuck; while it is active no request from the
  agent can lock a door again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import structlog
from gpiozero import DigitalInputDevice, DigitalOutputDevice, Factory

from controller.door import relay_energised
from controller.inputs import InputChanged, InputSink, Signal
from protocol import messages as m

log = structlog.get_logger(__name__)

Pin = int | str  # a BCM number (17) or any name gpiozero knows ("GPIO17", "BOARD11")
DEFAULT_DEBOUNCE_S = 0.05


# FAIL_SECURE: energise to unlock (electric strike), a power cut keeps the door locked;
# FAIL_SAFE: energise to lock (maglock), a power cut releases the door.
LockType = m.LockType


def parse_lock_type(value: LockType | str) -> LockType:
    try:
        return LockType(value)
    except ValueError:
        choices = ", ".join(t.value for t in LockType)
        raise ValueError(f"lock type {value!r} is not one of: {choices}") from None


class LockRelay:
    """The relay of one lock, addressed logically: `set_unlocked(True)` unlocks whatever the lock type.

    Two wishes decide the relay: the agent's (`set_unlocked`) and the fire release's (`set_released`);
    the door is unlocked if either asks for it, so the agent cannot lock a door during a fire alarm.
    """

    def __init__(
        self,
        pin: Pin,
        *,
        lock_type: LockType | str,
        active_high: bool = True,
        factory: Factory | None = None,
    ) -> None:
        self.lock_type = parse_lock_type(lock_type)
        self._lock = threading.Lock()
        self._wanted_unlocked = False
        self._released = False
        locked_level = relay_energised(self.lock_type, False)
        self._device = DigitalOutputDevice(
            pin, active_high=active_high, initial_value=locked_level, pin_factory=factory
        )

    @property
    def unlocked(self) -> bool:
        return self._wanted_unlocked or self._released

    @property
    def released(self) -> bool:
        """True while the fire release holds the door unlocked."""
        return self._released

    @property
    def energised(self) -> bool:
        return bool(self._device.value)

    def set_unlocked(self, unlocked: bool) -> None:
        with self._lock:
            self._wanted_unlocked = unlocked
            self._apply()

    def set_released(self, released: bool) -> None:
        with self._lock:
            self._released = released
            self._apply()

    def close(self) -> None:
        """Drive the locked level and let go of the pin. A fail-secure relay then stays de-energised (locked);
        a fail-safe lock is locked until the hardware drops the pin, which by design releases it."""
        with self._lock:
            self._wanted_unlocked = self._released = False
            if not self._device.closed:
                self._apply()
                self._device.close()

    def _apply(self) -> None:
        self._device.value = relay_energised(self.lock_type, self.unlocked)


class Output:
    """An on/off output: buzzer, zone lights, intruder-alarm arm, speaker. Starts off."""

    def __init__(self, pin: Pin, *, active_high: bool = True, factory: Factory | None = None) -> None:
        self._device = DigitalOutputDevice(
            pin, active_high=active_high, initial_value=False, pin_factory=factory
        )

    @property
    def is_on(self) -> bool:
        return bool(self._device.value)

    def set(self, on: bool) -> None:
        self._device.value = on

    def on(self) -> None:
        self.set(True)

    def off(self) -> None:
        self.set(False)

    def close(self) -> None:
        if not self._device.closed:
            self._device.off()
            self._device.close()


@dataclass(frozen=True)
class InputPin:
    """How one binary input is wired. By default the contact switches to ground against the internal
    pull-up, so it is active when low; an NC contact (door contact, supervised fire loop) that opens when
    active sets active_high=True. Without an internal pull (pull_up=None) active_high must be given."""

    signal: Signal
    door: str | None = None
    pull_up: bool | None = True
    active_high: bool | None = None

    def active_level(self) -> bool:
        if self.active_high is not None:
            return self.active_high
        if self.pull_up is None:
            raise ValueError(f"{self.signal} input without internal pull needs active_high set")
        return not self.pull_up


class DebouncedInput:
    """One GPIO input as active/inactive, debounced in software (gpiozero's bounce_time is not available on
    every pin factory, MockFactory included): the first edge is reported at once, later edges are ignored for
    `debounce_s`, then the settled level is reported if it differs from the last report."""

    def __init__(
        self,
        pin: Pin,
        wiring: InputPin,
        on_change: Callable[[bool], None],
        *,
        debounce_s: float = DEFAULT_DEBOUNCE_S,
        factory: Factory | None = None,
    ) -> None:
        self._active_level = wiring.active_level()
        self._on_change = on_change
        self._debounce_s = debounce_s
        self._lock = threading.RLock()
        self._reported: bool | None = None
        self._quiet_until = 0.0
        self._timer: threading.Timer | None = None
        self._closed = False
        self._device = DigitalInputDevice(
            pin,
            pull_up=wiring.pull_up,
            active_state=self._active_level if wiring.pull_up is None else None,
            pin_factory=factory,
        )

    @property
    def active(self) -> bool:
        return bool(self._device.pin.state) == self._active_level

    def start(self) -> None:
        """Listen for edges and report the current level once."""
        self._device.when_activated = self._edge
        self._device.when_deactivated = self._edge
        with self._lock:
            self._report(self.active)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
            self._device.close()

    def _edge(self) -> None:
        with self._lock:
            if self._closed or time.monotonic() < self._quiet_until:
                return  # a bounce, or a real change the settle check will report
            self._report(self.active)
            self._quiet_until = time.monotonic() + self._debounce_s
            if self._timer is not None:
                self._timer.cancel()
            if self._debounce_s > 0:
                self._timer = threading.Timer(self._debounce_s, self._settle)
                self._timer.daemon = True
                self._timer.start()

    def _settle(self) -> None:
        with self._lock:
            if self._closed or threading.current_thread() is not self._timer:
                return  # a newer edge started its own quiet window
            self._timer = None
            self._quiet_until = 0.0
            if self.active != self._reported:
                self._edge()

    def _report(self, active: bool) -> None:
        if active != self._reported:
            self._reported = active
            self._on_change(active)


class BinaryInputs:
    """Door contacts, exit buttons, lock monitors, tamper switches and beams: an InputChanged on every
    debounced change, and each input's state once at start() so the agent starts from the truth."""

    def __init__(
        self,
        pins: Mapping[Pin, InputPin],
        sink: InputSink,
        *,
        debounce_s: float = DEFAULT_DEBOUNCE_S,
        factory: Factory | None = None,
    ) -> None:
        self._inputs: list[DebouncedInput] = []
        try:
            for pin, wiring in pins.items():
                self._inputs.append(
                    DebouncedInput(
                        pin, wiring, self._emitter(wiring, sink), debounce_s=debounce_s, factory=factory
                    )
                )
        except Exception:
            self.close()
            raise

    @staticmethod
    def _emitter(wiring: InputPin, sink: InputSink) -> Callable[[bool], None]:
        def emit(active: bool) -> None:
            sink(InputChanged(wiring.signal, active, wiring.door))

        return emit

    def start(self) -> None:
        for watched in self._inputs:
            watched.start()

    def close(self) -> None:
        for watched in self._inputs:
            watched.close()


class FireRelease:
    """Releases every lock while the fire input is active and re-locks (to what the agent wants) when it
    clears. It acts in the GPIO callback thread and from construction on, needing nothing from the agent;
    the agent hears about it through `sink` like any other input."""

    def __init__(
        self,
        fire_pin: Pin,
        relays: Sequence[LockRelay],
        *,
        sink: InputSink | None = None,
        wiring: InputPin | None = None,
        debounce_s: float = DEFAULT_DEBOUNCE_S,
        factory: Factory | None = None,
    ) -> None:
        self._relays = list(relays)
        self._sink = sink
        self.active = False
        self._input = DebouncedInput(
            fire_pin, wiring or InputPin(Signal.FIRE), self._changed, debounce_s=debounce_s, factory=factory
        )
        self._input.start()

    def close(self) -> None:
        self._input.close()

    def _changed(self, active: bool) -> None:
        self.active = active
        for relay in self._relays:  # the doors first: nothing below may delay them
            try:
                relay.set_released(active)
            except Exception:
                log.exception("fire release could not drive a lock relay")
        if active:
            log.warning("fire alarm: every door released", doors=len(self._relays))
        else:
            log.warning("fire alarm cleared: doors back under the agent's control")
        if self._sink is not None:
            try:
                self._sink(InputChanged(Signal.FIRE, active))
            except Exception:
                log.exception("fire input could not be passed to the agent")
