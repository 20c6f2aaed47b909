"""Lock relays, outputs, debounced inputs, fire release and the simulated door on gpiozero's MockFactory."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from gpiozero.pins.mock import MockFactory

from controller.clock import ManualClock
from controller.devices.gpio import (
    BinaryInputs,
    DebouncedInput,
    FireRelease,
    InputPin,
    LockRelay,
    LockType,
    Output,
)
from controller.inputs import InputChanged, InputEvent, Signal
from hw_sim.door import SimBeam, SimDoor, SimFirePanel

RELAY, CONTACT, EXIT, FIRE, BEAM, RELAY_2, BUZZER = 17, 27, 22, 5, 6, 23, 24
WAIT_S = 3.0


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    pins = MockFactory()
    yield pins
    pins.close()
    pins.reset()


class Events:
    """An InputSink collecting events; `wait_for` waits for an event the debounce timer sends later."""

    def __init__(self) -> None:
        self.queue: queue.Queue[InputEvent] = queue.Queue()
        self.got: list[InputEvent] = []

    def __call__(self, event: InputEvent) -> None:
        self.queue.put(event)

    def drain(self) -> list[InputEvent]:
        while not self.queue.empty():
            self.got.append(self.queue.get())
        return self.got

    def wait_for(self, count: int) -> list[InputEvent]:
        """All events once there are `count` of them (fails the test if they do not come in time)."""
        deadline = time.monotonic() + WAIT_S
        while len(self.drain()) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"expected {count} events within {WAIT_S} s; got {self.got}")
            time.sleep(0.01)
        return self.got


def level(factory: MockFactory, pin: int) -> bool:
    return bool(factory.pin(pin).state)


# ------------------------------------------------------------------------------------------------ relays


def test_fail_secure_relay_starts_de_energised_and_energises_to_unlock(factory: MockFactory) -> None:
    relay = LockRelay(RELAY, lock_type=LockType.FAIL_SECURE, factory=factory)
    assert factory.pin(RELAY).states[-1].state is False and not relay.energised and not relay.unlocked
    relay.set_unlocked(True)
    assert level(factory, RELAY) and relay.unlocked
    relay.set_unlocked(False)
    assert not level(factory, RELAY)
    relay.set_unlocked(True)
    relay.close()
    assert not level(factory, RELAY)
    assert [s.state for s in factory.pin(RELAY).states] == [False, True, False, True, False]


def test_fail_safe_relay_is_energised_while_locked(factory: MockFactory) -> None:
    relay = LockRelay(RELAY, lock_type="fail_safe", factory=factory)
    assert level(factory, RELAY) and relay.energised and not relay.unlocked
    relay.set_unlocked(True)
    assert not level(factory, RELAY)
    relay.close()
    assert level(factory, RELAY)  # closed at the locked level


def test_active_low_relay_board_is_driven_inverted(factory: MockFactory) -> None:
    relay = LockRelay(RELAY, lock_type="fail_secure", active_high=False, factory=factory)
    assert level(factory, RELAY) and not relay.energised
    relay.set_unlocked(True)
    assert not level(factory, RELAY) and relay.energised


def test_unknown_lock_type_is_a_clear_error(factory: MockFactory) -> None:
    with pytest.raises(ValueError, match="lock type 'magnetic' is not one of: fail_secure, fail_safe"):
        LockRelay(RELAY, lock_type="magnetic", factory=factory)


def test_output_starts_off_and_switches(factory: MockFactory) -> None:
    buzzer = Output(BUZZER, factory=factory)
    assert not buzzer.is_on and not level(factory, BUZZER)
    buzzer.on()
    assert level(factory, BUZZER)
    buzzer.close()
    assert not level(factory, BUZZER)


# ---------------------------------------------------------------------------------------------- fire


def test_fire_input_releases_every_lock_without_any_agent_and_relocks_when_clear(
    factory: MockFactory,
) -> None:
    strike = LockRelay(RELAY, lock_type="fail_secure", factory=factory)
    maglock = LockRelay(RELAY_2, lock_type="fail_safe", factory=factory)
    events = Events()
    FireRelease(FIRE, [strike, maglock], sink=events, debounce_s=0.01, factory=factory)
    panel = SimFirePanel(factory, FIRE)
    assert events.drain() == [InputChanged(Signal.FIRE, False)]

    panel.alarm(True)  # MockFactory runs the callback right here: no loop of ours is involved
    assert strike.unlocked and level(factory, RELAY)
    assert maglock.unlocked and not level(factory, RELAY_2)
    strike.set_unlocked(False)  # a grant timing out in the agent must not lock a door during the fire
    assert level(factory, RELAY)

    time.sleep(0.02)  # past the debounce window: the panel clearing is a real change, not a bounce
    panel.alarm(False)
    assert not strike.unlocked and not level(factory, RELAY) and level(factory, RELAY_2)
    assert events.drain() == [InputChanged(Signal.FIRE, s) for s in (False, True, False)]


def test_fire_clearing_returns_each_door_to_what_the_agent_wants(factory: MockFactory) -> None:
    held = LockRelay(RELAY, lock_type="fail_secure", factory=factory)
    other = LockRelay(RELAY_2, lock_type="fail_secure", factory=factory)
    FireRelease(FIRE, [held, other], debounce_s=0, factory=factory)
    held.set_unlocked(True)  # e.g. a remote unlock that is still running
    panel = SimFirePanel(factory, FIRE)
    panel.alarm(True)
    panel.alarm(False)
    assert held.unlocked and not other.unlocked


def test_fire_alarm_already_active_at_start_releases_at_once(factory: MockFactory) -> None:
    relay = LockRelay(RELAY, lock_type="fail_secure", factory=factory)
    # A supervised NC loop: the panel opens the loop on alarm; a cut wire reads the same (fails open).
    fire = FireRelease(FIRE, [relay], wiring=InputPin(Signal.FIRE, active_high=True), factory=factory)
    assert fire.active and relay.unlocked and relay.released


# -------------------------------------------------------------------------------------------- inputs


def test_inputs_report_their_state_at_start_and_every_change(factory: MockFactory) -> None:
    events = Events()
    inputs = BinaryInputs(
        {
            CONTACT: InputPin(Signal.DOOR_CONTACT, "front"),
            EXIT: InputPin(Signal.EXIT_BUTTON, "front"),
            BEAM: InputPin(Signal.BEAM, "front", pull_up=False),
        },
        events,
        debounce_s=0,
        factory=factory,
    )
    inputs.start()
    assert events.drain() == [
        InputChanged(Signal.DOOR_CONTACT, False, "front"),
        InputChanged(Signal.EXIT_BUTTON, False, "front"),
        InputChanged(Signal.BEAM, False, "front"),
    ]
    factory.pin(EXIT).drive_low()
    factory.pin(BEAM).drive_high()
    factory.pin(EXIT).drive_high()
    assert events.drain()[3:] == [
        InputChanged(Signal.EXIT_BUTTON, True, "front"),
        InputChanged(Signal.BEAM, True, "front"),
        InputChanged(Signal.EXIT_BUTTON, False, "front"),
    ]
    inputs.close()


def test_contact_bounce_gives_one_event_and_the_settled_state_follows(factory: MockFactory) -> None:
    events = Events()
    inputs = BinaryInputs(
        {CONTACT: InputPin(Signal.DOOR_CONTACT, "front")}, events, debounce_s=0.2, factory=factory
    )
    inputs.start()
    pin = factory.pin(CONTACT)
    for _ in range(5):  # a bouncing reed contact as the door opens
        pin.drive_low()
        pin.drive_high()
    pin.drive_low()
    assert events.drain() == [InputChanged(Signal.DOOR_CONTACT, s, "front") for s in (False, True)]
    for _ in range(3):  # and as it closes, ending closed
        pin.drive_high()
        pin.drive_low()
    pin.drive_high()
    assert events.wait_for(3) == [InputChanged(Signal.DOOR_CONTACT, s, "front") for s in (False, True, False)]
    inputs.close()


def test_a_bounce_that_ends_where_it_started_reports_the_return(factory: MockFactory) -> None:
    reports: queue.Queue[bool] = queue.Queue()
    watched = DebouncedInput(EXIT, InputPin(Signal.EXIT_BUTTON), reports.put, debounce_s=0.1, factory=factory)
    watched.start()
    factory.pin(EXIT).drive_low()
    factory.pin(EXIT).drive_high()  # a short press: released within the debounce window
    assert [reports.get(timeout=WAIT_S) for _ in range(3)] == [False, True, False]
    watched.close()


def test_floating_input_without_active_level_is_a_clear_error(factory: MockFactory) -> None:
    with pytest.raises(ValueError, match="needs active_high"):
        BinaryInputs({CONTACT: InputPin(Signal.TAMPER, pull_up=None)}, Events(), factory=factory)


# ---------------------------------------------------------------------------------------- the sim door


@pytest.fixture
def site(factory: MockFactory) -> Iterator[tuple[LockRelay, SimDoor, Events, ManualClock]]:
    clock = ManualClock(datetime(2026, 3, 1, 20, 0, tzinfo=UTC))
    relay = LockRelay(RELAY, lock_type="fail_secure", factory=factory)
    events = Events()
    inputs = BinaryInputs(
        {CONTACT: InputPin(Signal.DOOR_CONTACT, "front"), EXIT: InputPin(Signal.EXIT_BUTTON, "front")},
        events,
        debounce_s=0,
        factory=factory,
    )
    inputs.start()
    door = SimDoor(factory, RELAY, CONTACT, EXIT, "fail_secure", closer_seconds=3.0, clock=clock)
    yield relay, door, events, clock
    inputs.close()


def contact_events(events: Events) -> list[bool]:
    return [
        e.active for e in events.drain() if isinstance(e, InputChanged) and e.signal is Signal.DOOR_CONTACT
    ]


def test_a_locked_door_does_not_open_when_pushed(
    site: tuple[LockRelay, SimDoor, Events, ManualClock],
) -> None:
    _, door, events, _ = site
    assert not door.push() and not door.is_open
    assert contact_events(events) == [False]


def test_an_unlocked_door_opens_and_the_closer_shuts_it(
    site: tuple[LockRelay, SimDoor, Events, ManualClock],
) -> None:
    relay, door, events, clock = site
    relay.set_unlocked(True)
    assert door.push() and door.is_open
    relay.set_unlocked(False)
    clock.advance(2.9)
    door.tick()
    assert door.is_open
    clock.advance(0.1)
    door.tick()
    assert not door.is_open
    assert contact_events(events) == [False, True, False]


def test_a_held_door_stays_open_until_let_go(site: tuple[LockRelay, SimDoor, Events, ManualClock]) -> None:
    relay, door, _, clock = site
    relay.set_unlocked(True)
    door.push()
    door.hold_open()
    clock.advance(60)
    door.tick()
    assert door.is_open
    door.let_go()
    clock.advance(3)
    door.tick()
    assert not door.is_open


def test_a_forced_door_opens_while_locked(site: tuple[LockRelay, SimDoor, Events, ManualClock]) -> None:
    _, door, events, _ = site
    door.force()
    assert door.is_open and not door.is_unlocked and door.openings == 1
    assert contact_events(events) == [False, True]


def test_fail_safe_sim_door_reads_the_inverted_relay(factory: MockFactory) -> None:
    relay = LockRelay(RELAY, lock_type="fail_safe", factory=factory)
    door = SimDoor(
        factory, RELAY, CONTACT, None, "fail_safe", clock=ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    )
    assert not door.push()
    relay.set_unlocked(True)
    assert door.push()


def test_exit_button_and_beam_reach_the_agent(
    factory: MockFactory, site: tuple[LockRelay, SimDoor, Events, ManualClock]
) -> None:
    _, door, events, _ = site
    door.press_exit()
    exits = [
        e.active for e in events.drain() if isinstance(e, InputChanged) and e.signal is Signal.EXIT_BUTTON
    ]
    assert exits == [False, True, False]
    beam_events = Events()
    beam_input = BinaryInputs(
        {BEAM: InputPin(Signal.BEAM, "front")}, beam_events, debounce_s=0, factory=factory
    )
    beam_input.start()
    beam = SimBeam(factory, BEAM)
    beam.person_passes()
    beam.person_passes()
    assert [e.active for e in beam_events.drain() if isinstance(e, InputChanged)] == [
        False,
        True,
        False,
        True,
        False,
    ]
    beam_input.close()
