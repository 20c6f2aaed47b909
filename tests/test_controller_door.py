"""The door state machine, as the hardware and the people at the door see it.

A `Rig` plays the agent: it feeds events, ticks at `next_deadline()` as the agent's loop would, and keeps
what the outputs told the hardware (lock, buzzer, alarms, published state) so tests assert what a person at
the door or the caretaker would notice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.door import (
    Alarm,
    Buzzer,
    Contact,
    DoorEvent,
    DoorMachine,
    DoorMode,
    DoorOutput,
    DoorSettings,
    ExitRequest,
    Fire,
    Grant,
    Lock,
    LockMonitor,
    Passage,
    SetMode,
    StateChanged,
    Tailgate,
    Tamper,
    relay_energised,
)
from protocol import messages as m

S = m.DoorStateName
K = m.AlarmKind


@dataclass
class Rig:
    machine: DoorMachine
    now: float = 0.0
    unlocked: bool = False
    buzzer: bool = False
    alarms: dict[m.AlarmKind, str] = field(default_factory=dict)
    state: m.DoorStateName = S.LOCKED
    passages: list[Passage] = field(default_factory=list)
    tailgates: int = 0
    log: list[tuple[float, DoorOutput]] = field(default_factory=list)

    @classmethod
    def make(cls, **kw: object) -> Rig:
        return cls(DoorMachine(DoorSettings("hovedinngang", **kw), 0.0))  # type: ignore[arg-type]

    def run_until(self, t: float) -> None:
        """Sleep until `t`, waking at each deadline as the agent does."""
        while (due := self.machine.next_deadline()) is not None and due <= t:
            self.execute(due, self.machine.tick(due))
        self.execute(t, self.machine.tick(t))

    def do(self, event: DoorEvent, at: float | None = None) -> list[DoorOutput]:
        if at is not None:
            self.run_until(at)
        out = self.machine.handle(event, self.now)
        self.execute(self.now, out)
        return out

    def execute(self, t: float, outputs: list[DoorOutput]) -> None:
        self.now = t
        for o in outputs:
            self.log.append((t, o))
            match o:
                case Lock(unlocked=unlocked):
                    assert unlocked != self.unlocked, "a Lock output that changes nothing"
                    self.unlocked = unlocked
                case Buzzer(on=on):
                    assert on != self.buzzer, "a Buzzer output that changes nothing"
                    self.buzzer = on
                case Alarm(kind=kind, raised=True, detail=detail):
                    assert kind not in self.alarms, f"{kind} raised twice"
                    self.alarms[kind] = detail
                case Alarm(kind=kind, raised=False):
                    assert kind in self.alarms, f"{kind} cleared but not raised"
                    del self.alarms[kind]
                case StateChanged(state=state):
                    assert state != self.state
                    self.state = state
                case Passage():
                    self.passages.append(o)
                case Tailgate():
                    self.tailgates += 1
        assert self.unlocked == self.machine.unlocked
        assert self.state == self.machine.state

    def when(self, kind: type) -> list[float]:
        return [t for t, o in self.log if isinstance(o, kind)]


# --- basics ------------------------------------------------------------------------------------------------


def test_starts_locked_and_safe_outputs_lock_everything() -> None:
    rig = Rig.make()
    assert rig.machine.state is S.LOCKED and not rig.machine.unlocked
    assert rig.machine.next_deadline() is None
    assert DoorMachine.safe_outputs() == [Lock(unlocked=False), Buzzer(on=False)]


@pytest.mark.parametrize(
    ("lock_type", "unlocked", "energised"),
    [
        (m.LockType.FAIL_SECURE, False, False),
        (m.LockType.FAIL_SECURE, True, True),
        (m.LockType.FAIL_SAFE, False, True),
        (m.LockType.FAIL_SAFE, True, False),
    ],
)
def test_relay_level_follows_lock_type(lock_type: m.LockType, unlocked: bool, energised: bool) -> None:
    assert relay_energised(lock_type, unlocked) is energised


def test_settings_from_the_site_config_door() -> None:
    door = m.Door(
        slug="bibliotek",
        name="Bibliotek",
        zone="torg",
        kind=m.DoorKind.ENTRANCE,
        unlock_seconds=7,
        held_open_seconds=45,
        lock_type=m.LockType.FAIL_SAFE,
    )
    s = DoorSettings.from_door(door, has_lock_monitor=True)
    assert (s.slug, s.unlock_seconds, s.held_open_seconds, s.prewarn_seconds) == (
        "bibliotek",
        7.0,
        45.0,
        10.0,
    )
    assert s.lock_type is m.LockType.FAIL_SAFE and s.has_lock_monitor


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"unlock_seconds": 0}, "unlock_seconds must be a positive number of seconds"),
        ({"held_open_seconds": float("nan")}, "held_open_seconds must be a positive"),
        ({"prewarn_seconds": -1}, "prewarn_seconds must be zero or more"),
        ({"lock_type": "magnetic"}, "lock_type must be one of"),
    ],
)
def test_bad_settings_say_which_door_and_key(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        DoorSettings("bakdor", **kw)  # type: ignore[arg-type]
    assert "'bakdor'" in str(err.value)


def test_bad_grant_seconds_and_times_are_refused() -> None:
    with pytest.raises(ValueError, match="seconds must be a positive"):
        Grant(seconds=-3)
    with pytest.raises(ValueError, match="finite number of seconds"):
        DoorMachine(DoorSettings("d"), 0.0).tick(float("inf"))


# --- a grant -----------------------------------------------------------------------------------------------


def test_grant_unlocks_and_relocks_after_unlock_seconds_if_nobody_opens() -> None:
    rig = Rig.make()
    assert rig.do(Grant(), at=10.0) == [Lock(unlocked=True), StateChanged(S.UNLOCKED)]
    assert rig.machine.next_deadline() == 15.0
    rig.run_until(14.9)
    assert rig.unlocked
    rig.run_until(15.0)
    assert not rig.unlocked and rig.state is S.LOCKED
    assert rig.passages == [] and rig.alarms == {}


def test_door_relocks_as_soon_as_it_closes_after_a_grant() -> None:
    rig = Rig.make()
    rig.do(Grant(), at=0.0)
    rig.do(Contact(open=True), at=1.0)
    assert rig.state is S.OPEN and rig.unlocked
    out = rig.do(Contact(open=False), at=3.0)
    assert out == [Lock(unlocked=False), Passage(authorised=True, exit=False), StateChanged(S.LOCKED)]
    assert rig.machine.next_deadline() is None


def test_timed_remote_unlock_lasts_its_seconds() -> None:
    rig = Rig.make()
    rig.do(Grant(seconds=120), at=0.0)
    rig.run_until(119.0)
    assert rig.unlocked
    rig.run_until(120.0)
    assert not rig.unlocked


def test_held_door_buzzes_at_20_s_alarms_at_30_s_and_clears_on_close() -> None:
    rig = Rig.make()
    rig.do(Grant(), at=0.0)
    rig.do(Contact(open=True), at=2.0)
    rig.run_until(21.9)
    assert not rig.buzzer
    rig.run_until(60.0)
    assert rig.when(Buzzer) == [22.0]
    assert rig.when(Alarm) == [32.0]
    assert rig.buzzer and K.HELD_OPEN in rig.alarms and rig.state is S.HELD_OPEN
    assert not rig.unlocked, "held open too long: the lock re-engages so the door locks when it closes"
    rig.do(Contact(open=False), at=70.0)
    assert not rig.buzzer and rig.alarms == {} and rig.state is S.LOCKED
    assert rig.passages == [Passage(authorised=True, exit=False)]


def test_a_late_tick_still_reports_buzzer_before_alarm() -> None:
    rig = Rig.make()
    rig.do(Grant(), at=0.0)
    rig.do(Contact(open=True), at=1.0)
    out = rig.machine.tick(45.0)  # the agent overslept
    assert out == [
        Buzzer(on=True),
        Lock(unlocked=False),
        Alarm(K.HELD_OPEN, raised=True, detail="open longer than 30 s"),
        StateChanged(S.HELD_OPEN),
    ]


# --- forced, exit, tailgate --------------------------------------------------------------------------------


def test_forced_door_alarms_until_it_closes() -> None:
    rig = Rig.make()
    out = rig.do(Contact(open=True), at=100.0)
    assert out == [
        Alarm(K.FORCED_OPEN, raised=True, detail="opened while locked"),
        StateChanged(S.FORCED_OPEN),
    ]
    rig.run_until(200.0)
    assert not rig.buzzer and list(rig.alarms) == [K.FORCED_OPEN], "no held-open on top of forced"
    rig.do(Contact(open=False), at=210.0)
    assert rig.alarms == {} and rig.state is S.LOCKED
    assert rig.passages == [Passage(authorised=False, exit=False)]


def test_exit_button_then_open_is_an_exit_not_forced() -> None:
    rig = Rig.make()
    assert rig.do(ExitRequest(), at=5.0)[0] == Lock(unlocked=True)
    rig.do(Contact(open=True), at=6.0)
    rig.do(Contact(open=False), at=8.0)
    assert rig.alarms == {} and rig.passages == [Passage(authorised=True, exit=True)]
    assert not rig.unlocked


def test_someone_pulling_the_door_right_after_an_exit_is_a_tailgate() -> None:
    rig = Rig.make()
    rig.do(ExitRequest(), at=0.0)
    rig.do(Contact(open=True), at=1.0)
    rig.do(Contact(open=False), at=2.0)
    rig.do(Contact(open=True), at=3.0)
    assert rig.tailgates == 1 and rig.alarms == {}
    rig.do(Contact(open=False), at=4.0)
    assert rig.passages == [Passage(authorised=True, exit=True), Passage(authorised=False, exit=False)]


def test_exit_button_during_lockdown_keeps_the_lock_but_excuses_the_opening() -> None:
    rig = Rig.make()
    rig.do(SetMode(DoorMode.LOCKED_DOWN), at=0.0)
    assert rig.do(ExitRequest(), at=1.0) == []
    rig.do(Contact(open=True), at=3.0)
    rig.do(Contact(open=False), at=5.0)
    assert rig.alarms == {} and rig.passages == [Passage(authorised=True, exit=True)]
    rig.do(Contact(open=True), at=5.5)
    assert K.FORCED_OPEN in rig.alarms, "one exit request excuses one opening"


def test_exit_button_too_long_ago_does_not_excuse_an_opening() -> None:
    rig = Rig.make()
    rig.do(ExitRequest(), at=0.0)
    rig.do(Contact(open=True), at=6.0)
    assert rig.state is S.FORCED_OPEN


def test_second_open_within_one_grant_is_a_tailgate() -> None:
    rig = Rig.make()
    rig.do(Grant(), at=0.0)
    rig.do(Contact(open=True), at=1.0)
    rig.do(Contact(open=False), at=2.0)
    assert not rig.unlocked
    out = rig.do(Contact(open=True), at=3.0)
    assert Tailgate() in out and rig.alarms == {}
    rig.do(Contact(open=False), at=4.0)
    assert rig.passages == [Passage(authorised=True, exit=False), Passage(authorised=False, exit=False)]
    rig.do(Contact(open=True), at=6.0)
    assert rig.tailgates == 1 and rig.state is S.FORCED_OPEN, "after the grant's time it is forced"


# --- modes and fire ----------------------------------------------------------------------------------------


def test_lockdown_ignores_grants_and_relocks_a_door_unlocked_for_one() -> None:
    rig = Rig.make()
    rig.do(Grant(), at=0.0)
    out = rig.do(SetMode(DoorMode.LOCKED_DOWN), at=1.0)
    assert out == [Lock(unlocked=False), StateChanged(S.LOCKED_DOWN)]
    assert rig.do(Grant(), at=2.0) == []
    rig.do(SetMode(DoorMode.NORMAL), at=3.0)
    assert rig.state is S.LOCKED
    rig.do(Grant(), at=4.0)
    assert rig.unlocked


def test_released_door_stays_open_quietly_and_is_watched_again_after() -> None:
    rig = Rig.make()
    rig.do(SetMode(DoorMode.RELEASED), at=0.0)
    assert rig.unlocked and rig.state is S.RELEASED
    rig.do(Contact(open=True), at=10.0)
    rig.run_until(600.0)
    assert rig.unlocked and not rig.buzzer and rig.alarms == {}
    rig.do(SetMode(DoorMode.NORMAL), at=600.0)
    assert not rig.unlocked and rig.state is S.OPEN and rig.alarms == {}
    rig.run_until(640.0)
    assert rig.when(Buzzer) == [620.0] and K.HELD_OPEN in rig.alarms
    rig.do(Contact(open=False), at=650.0)
    assert rig.passages == [Passage(authorised=True, exit=False)] and rig.state is S.LOCKED


def _to_state(rig: Rig, state: m.DoorStateName) -> None:
    """Bring a fresh rig to `state` at t=100."""
    steps: dict[m.DoorStateName, tuple[float, list[DoorEvent]]] = {
        S.LOCKED: (0.0, []),
        S.UNLOCKED: (99.0, [Grant()]),
        S.OPEN: (99.0, [Grant(), Contact(open=True)]),
        S.HELD_OPEN: (60.0, [Grant(), Contact(open=True)]),
        S.FORCED_OPEN: (60.0, [Contact(open=True)]),
        S.LOCKED_DOWN: (60.0, [SetMode(DoorMode.LOCKED_DOWN)]),
        S.RELEASED: (60.0, [SetMode(DoorMode.RELEASED)]),
    }
    at, events = steps[state]
    for event in events:
        rig.do(event, at=at)
    rig.run_until(100.0)
    assert rig.state is state


@pytest.mark.parametrize(
    "state", [S.LOCKED, S.UNLOCKED, S.OPEN, S.HELD_OPEN, S.FORCED_OPEN, S.LOCKED_DOWN, S.RELEASED]
)
def test_fire_releases_every_state_and_relocks_when_it_clears(state: m.DoorStateName) -> None:
    rig = Rig.make()
    _to_state(rig, state)
    rig.do(Fire(active=True), at=101.0)
    assert rig.unlocked and rig.state is S.RELEASED
    assert not rig.buzzer and K.HELD_OPEN not in rig.alarms
    rig.do(Grant(), at=102.0)
    rig.do(Contact(open=True), at=103.0)
    rig.run_until(400.0)
    assert rig.unlocked and not rig.buzzer and K.HELD_OPEN not in rig.alarms
    rig.do(Fire(active=False), at=400.0)
    if state is S.RELEASED:
        assert rig.unlocked and rig.state is S.RELEASED, "back to the mode it had"
        return
    assert not rig.unlocked
    rig.do(Contact(open=False), at=405.0)
    assert not rig.unlocked and rig.alarms == {}
    assert rig.state is (S.LOCKED_DOWN if state is S.LOCKED_DOWN else S.LOCKED)


def test_lockdown_wins_over_grants_but_not_over_fire() -> None:
    rig = Rig.make()
    rig.do(SetMode(DoorMode.LOCKED_DOWN), at=0.0)
    rig.do(Fire(active=True), at=1.0)
    assert rig.unlocked and rig.machine.mode is DoorMode.LOCKED_DOWN
    rig.do(Fire(active=False), at=2.0)
    rig.do(Grant(), at=3.0)
    assert not rig.unlocked and rig.state is S.LOCKED_DOWN


# --- lock monitor and tamper -------------------------------------------------------------------------------


def test_lock_that_does_not_report_secured_after_relock_is_a_fault() -> None:
    rig = Rig.make(has_lock_monitor=True)
    rig.do(LockMonitor(secured=True), at=0.5)
    rig.do(Grant(), at=10.0)
    rig.do(LockMonitor(secured=False), at=10.1)
    rig.run_until(15.0)  # relocked by timeout
    rig.run_until(16.9)
    assert rig.alarms == {}
    rig.run_until(17.0)
    assert list(rig.alarms) == [K.LOCK_FAULT] and rig.state is S.FAULT
    rig.do(LockMonitor(secured=True), at=30.0)
    assert rig.alarms == {} and rig.machine.state is S.LOCKED


def test_lock_that_secures_in_time_is_fine_and_an_open_door_is_not_expected_secured() -> None:
    rig = Rig.make(has_lock_monitor=True)
    rig.do(LockMonitor(secured=True), at=1.0)
    rig.do(Grant(), at=10.0)
    rig.do(LockMonitor(secured=False), at=10.1)
    rig.do(Contact(open=True), at=11.0)
    rig.run_until(25.0)
    assert K.LOCK_FAULT not in rig.alarms
    rig.do(Contact(open=False), at=25.0)
    rig.do(LockMonitor(secured=True), at=26.5)
    rig.run_until(60.0)
    assert rig.alarms == {}


def test_lock_monitor_silent_from_start_is_a_fault() -> None:
    rig = Rig.make(has_lock_monitor=True)
    rig.run_until(2.0)
    assert K.LOCK_FAULT in rig.alarms


def test_tamper_raises_and_clears_without_touching_the_lock() -> None:
    rig = Rig.make()
    assert rig.do(Tamper(active=True), at=1.0) == [Alarm(K.TAMPER, raised=True, detail="tamper input active")]
    assert rig.do(Tamper(active=False), at=2.0) == [Alarm(K.TAMPER, raised=False)]
    assert not rig.unlocked and rig.state is S.LOCKED


def test_door_already_open_at_start_is_watched_not_forced() -> None:
    machine = DoorMachine(DoorSettings("d"), 50.0, door_open=True)
    rig = Rig(machine, now=50.0)
    rig.run_until(80.0)
    assert list(rig.alarms) == [K.HELD_OPEN] and not rig.unlocked


# --- properties over random evenings -----------------------------------------------------------------------

EVENTS = st.one_of(
    st.builds(Grant, st.one_of(st.none(), st.sampled_from([1.0, 2.5, 60.0]))),
    st.just(ExitRequest()),
    st.builds(Contact, st.booleans()),
    st.builds(Contact, st.booleans()),
    st.builds(LockMonitor, st.booleans()),
    st.builds(Tamper, st.booleans()),
    st.builds(Fire, st.booleans()),
    st.builds(SetMode, st.sampled_from(list(DoorMode))),
)
GAPS = st.one_of(st.sampled_from([0.0, 0.5, 1.0, 2.0, 4.9, 5.0, 5.1, 20.0, 30.0]), st.floats(0.0, 50.0))
STEPS = st.lists(st.tuples(GAPS, EVENTS, st.booleans()), max_size=40)


@dataclass
class Model:
    """What the rules allow, kept independently of the machine."""

    fire: bool = False
    mode: DoorMode = DoorMode.NORMAL
    windows: list[tuple[float, float]] = field(default_factory=list)  # (granted at, until)
    opened_at: float | None = None

    def may_be_unlocked(self, t: float, held: float) -> bool:
        if self.fire or self.mode is DoorMode.RELEASED:
            return True
        if any(t < until for _, until in self.windows):
            return True
        o = self.opened_at
        return o is not None and t < o + held and any(g <= o < until for g, until in self.windows)

    def see(self, event: DoorEvent, t: float, unlock: float) -> None:
        match event:
            case Grant(seconds=s):
                self.windows.append((t, t + (unlock if s is None else s)))
            case ExitRequest():
                self.windows.append((t, t + unlock))
            case Contact(open=True) if self.opened_at is None:
                self.opened_at = t
            case Contact(open=False):
                self.opened_at = None
            case Fire(active=a):
                self.fire = a
            case SetMode(mode=mode):
                self.mode = mode


@settings(max_examples=300, deadline=None)
@given(steps=STEPS, monitor=st.booleans())
def test_lock_is_only_ever_unlocked_when_the_rules_allow(
    steps: list[tuple[float, DoorEvent, bool]], monitor: bool
) -> None:
    rig = Rig.make(has_lock_monitor=monitor)
    s = rig.machine.settings
    model = Model()
    t = 0.0
    for gap, event, agent_awake in steps:
        t += gap
        if agent_awake:
            rig.run_until(t)
            assert not rig.unlocked or model.may_be_unlocked(t, s.held_open_seconds)
        was_open = model.opened_at is not None
        out = rig.machine.handle(event, t)
        rig.execute(t, out)
        model.see(event, t, s.unlock_seconds)
        released = model.fire or model.mode is DoorMode.RELEASED
        assert not rig.unlocked or model.may_be_unlocked(t, s.held_open_seconds)
        if rig.unlocked and not released:
            assert rig.machine.next_deadline() is not None, "unlocked with nothing scheduled to relock"
        if was_open and event == Contact(open=False) and not released:
            assert not rig.unlocked, "a door that closes is locked unless released"
        if released:
            assert K.HELD_OPEN not in rig.alarms and not rig.buzzer, "a released door is never held open"
        if any(isinstance(o, Alarm) and o.raised and o.kind is K.FORCED_OPEN for o in out):
            assert not released and event == Contact(open=True)
        assert all(isinstance(event, Contact) and not event.open for o in out if isinstance(o, Passage))
    rig.run_until(t + 10_000.0)
    if not (model.fire or model.mode is DoorMode.RELEASED):
        assert not rig.unlocked, "left unlocked past every deadline"
