"""The OSDP control panel against simulated readers: real libosdp on both sides, secure channel on.

Each test opens a control panel (firmware_bridge.cp.OsdpBus) on a fresh in-memory bus and puts simulated
readers (hw_sim.osdp_reader, libosdp in peripheral-device mode) on it; what the agent would receive is
collected from the bus's sink.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import structlog

from controller.inputs import (
    CardPresented,
    Feedback,
    InputChanged,
    InputEvent,
    KeyPressed,
    ReaderStatus,
    Signal,
)
from firmware_bridge.channel import BusChannel, SerialChannel, SimBus, socket_channel_pair
from firmware_bridge.cp import OsdpBus
from firmware_bridge.formats import wiegand_uid
from firmware_bridge.keys import KeyFile
from hw_sim.osdp_reader import Led, SimOsdpReader

KEY1 = bytes.fromhex("3f9c1e0b7a2d48c6915e0f7b2a6d4c81")
KEY2 = bytes.fromhex("a04be2d1c97f3316e58b2c0d9a7e61f4")
UID = bytes.fromhex("04a1b2c3d4e5f6")
WAIT_S = 5.0
E = TypeVar("E")


class Agent:
    """Stands in for the agent's queue: what the readers reported, in order."""

    def __init__(self) -> None:
        self.events: list[InputEvent] = []
        self._changed = threading.Condition()

    def __call__(self, event: InputEvent) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def wait_for(
        self, condition: Callable[[list[InputEvent]], bool], what: str, timeout: float = WAIT_S
    ) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: condition(self.events), timeout):
                raise AssertionError(f"{what}: not within {timeout} s; got {self.events}")

    def of(self, kind: type[E]) -> list[E]:
        with self._changed:
            return [e for e in self.events if isinstance(e, kind)]

    def status(self, reader: str) -> list[tuple[bool, str]]:
        return [(e.online, e.detail) for e in self.of(ReaderStatus) if e.reader == reader]

    def wait_online(self, reader: str) -> None:
        self.wait_for(lambda _: (True, "") in self.status(reader), f"{reader} in service")


@pytest.fixture
def bus_name() -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:8]}"
    yield name
    SimBus.forget(name)


@pytest.fixture
def agent() -> Agent:
    return Agent()


@pytest.fixture
def stack() -> Iterator[list[OsdpBus | SimOsdpReader]]:
    """Everything a test starts, stopped at its end whatever happened."""
    started: list[OsdpBus | SimOsdpReader] = []
    yield started
    for thing in reversed(started):
        thing.stop() if isinstance(thing, OsdpBus) else thing.close()


def panel(
    channel: BusChannel,
    readers: dict[int, tuple[str, bytes]],
    agent: Agent,
    stack: list[OsdpBus | SimOsdpReader],
    *,
    install_mode: bool = False,
) -> OsdpBus:
    bus = OsdpBus(
        channel,
        {address: key for address, (_, key) in readers.items()},
        install_mode=install_mode,
        key_file="/etc/meraapent/osdp.keys",
        startup_grace_s=0.5,
    )
    stack.append(bus)
    for address, (door, _) in readers.items():
        bus.reader(address, door, agent)
    for reader in bus.readers():
        reader.start()
    return bus


def sim_reader(
    bus: str | BusChannel, address: int, stack: list[OsdpBus | SimOsdpReader], scbk: bytes | None
) -> SimOsdpReader:
    reader = SimOsdpReader(bus, address, scbk=scbk)
    stack.append(reader)
    return reader


def test_cards_in_any_format_reach_the_agent_with_their_uid_and_a_misread_is_refused(
    bus_name: str, agent: Agent, stack: list[OsdpBus | SimOsdpReader]
) -> None:
    reader = sim_reader(bus_name, 1, stack, KEY1)
    panel(SimBus.named(bus_name).panel_channel(), {1: ("inngang", KEY1)}, agent, stack)
    agent.wait_online("inngang")
    with structlog.testing.capture_logs() as logs:
        reader.present_card(UID)
        reader.present_card(3456, "wiegand26", facility=12)
        reader.present_bits(
            26, bytes([0x06, 0x00, 0x6C, 0x00])
        )  # FC 12 / 3456 with its last (odd) parity bit 0
        reader.present_card(3456, "wiegand34", facility=12)
        agent.wait_for(lambda _: len(agent.of(CardPresented)) == 3, "three cards read")
    assert agent.of(CardPresented) == [
        CardPresented("inngang", UID),
        CardPresented("inngang", wiegand_uid(12, 3456)),
        CardPresented("inngang", wiegand_uid(12, 3456)),  # the same card number, the same UID
    ]
    [refused] = [e for e in logs if e["event"] == "osdp.card_refused"]
    assert refused["reason"] == "Wiegand 26-bit parity error (a misread)"
    assert UID.hex() not in repr(logs) and "3456" not in repr(logs)


def test_keypad_keys_and_the_tamper_switch_reach_the_agent(
    bus_name: str, agent: Agent, stack: list[OsdpBus | SimOsdpReader]
) -> None:
    reader = sim_reader(bus_name, 1, stack, KEY1)
    panel(SimBus.named(bus_name).panel_channel(), {1: ("inngang", KEY1)}, agent, stack)
    agent.wait_online("inngang")
    reader.press_keys("12*1234#")
    reader.tamper(True)
    reader.tamper(False)
    agent.wait_for(lambda _: len(agent.of(InputChanged)) == 2, "tamper and back")
    assert "".join(e.key for e in agent.of(KeyPressed)) == "12*1234#"
    assert agent.of(InputChanged) == [
        InputChanged(Signal.TAMPER, True, "inngang"),
        InputChanged(Signal.TAMPER, False, "inngang"),
    ]


def test_feedback_lights_the_right_readers_leds(
    bus_name: str, agent: Agent, stack: list[OsdpBus | SimOsdpReader]
) -> None:
    entrance, back = sim_reader(bus_name, 1, stack, KEY1), sim_reader(bus_name, 2, stack, KEY2)
    bus = panel(
        SimBus.named(bus_name).panel_channel(), {1: ("inngang", KEY1), 2: ("bakdor", KEY2)}, agent, stack
    )
    agent.wait_online("inngang")
    agent.wait_online("bakdor")
    inngang, bakdor = bus.readers()
    inngang.feedback(Feedback.PIN_NEEDED)
    assert entrance.wait_for_led("amber")
    inngang.feedback(Feedback.GRANTED)
    assert entrance.wait_for_led("green")
    assert entrance.last_led == Led("green", temporary=True, seconds=3.0)
    bakdor.feedback(Feedback.DENIED)
    assert back.wait_for_led("red")
    bakdor.feedback(Feedback.ALARM)
    assert back.wait_for_led(Led("red", flashing=True))  # shown once the 3 s of red are over
    assert [led.color for led in entrance.leds] == ["amber", "green"]  # nothing meant for bakdor
    assert entrance.showing == Led("green", temporary=True, seconds=3.0)
    bakdor.feedback(Feedback.IDLE)
    assert back.wait_for_led("off")
    assert back.showing == Led("off")
    assert [b.count for b in entrance.beeps] == [1] and [b.count for b in back.beeps] == [3]


def test_a_reader_with_another_key_never_comes_online_and_says_why(
    bus_name: str, agent: Agent, stack: list[OsdpBus | SimOsdpReader]
) -> None:
    reader = sim_reader(bus_name, 1, stack, KEY2)
    panel(SimBus.named(bus_name).panel_channel(), {1: ("inngang", KEY1)}, agent, stack)
    agent.wait_for(lambda _: bool(agent.status("inngang")), "a status for the reader")
    [(online, detail)] = agent.status("inngang")
    assert not online
    assert detail == (
        f"the reader at address 1 on sim:{bus_name} answers, but the secure channel fails: its key is not"
        " the one in /etc/meraapent/osdp.keys (a new reader still on its default key needs install_mode ="
        " true once)"
    )
    reader.present_card(UID)
    time.sleep(1.5)  # long enough for libosdp to have asked again after its back-off
    assert agent.of(CardPresented) == [] and not reader.online
    assert agent.status("inngang") == [(False, detail)]


def test_without_install_mode_a_reader_on_the_default_key_is_refused_and_not_keyed(
    bus_name: str, agent: Agent, stack: list[OsdpBus | SimOsdpReader]
) -> None:
    fresh = sim_reader(bus_name, 1, stack, scbk=None)  # from the factory: SCBK-D
    panel(SimBus.named(bus_name).panel_channel(), {1: ("inngang", KEY1)}, agent, stack)
    agent.wait_for(lambda _: bool(agent.status("inngang")), "a status for the reader")
    [(online, detail)] = agent.status("inngang")
    assert not online and "secure channel fails" in detail and "install_mode = true" in detail
    time.sleep(1.5)
    assert fresh.scbk is None and not fresh.online


def test_install_mode_gives_a_new_reader_its_key_from_the_key_file(
    bus_name: str, agent: Agent, stack: list[OsdpBus | SimOsdpReader], tmp_path: Path
) -> None:
    key_file = KeyFile(tmp_path / "osdp.keys")
    fresh = sim_reader(bus_name, 7, stack, scbk=None)
    keys = key_file.keys_for([7], install_mode=True)  # made and saved before the reader hears of it
    installing = panel(SimBus.named(bus_name).panel_channel(), {7: ("inngang", keys[7])}, agent, stack,
                       install_mode=True)  # fmt: skip
    agent.wait_online("inngang")
    assert fresh.scbk == keys[7] == key_file.read()[7]
    fresh.present_card(UID)
    agent.wait_for(lambda _: bool(agent.of(CardPresented)), "the card, over the reader's own key")
    installing.stop()
    after = Agent()
    panel(SimBus.named(bus_name).panel_channel(), {7: ("inngang", keys[7])}, after, stack)
    after.wait_online("inngang")  # install mode off again: the reader now has its own key


def test_a_reader_that_never_answers_is_reported_offline_soon_after_start(
    bus_name: str, agent: Agent, stack: list[OsdpBus | SimOsdpReader]
) -> None:
    sim_reader(bus_name, 1, stack, KEY1)  # the one at address 4 is missing (or wired to another address)
    panel(SimBus.named(bus_name).panel_channel(), {1: ("inngang", KEY1), 4: ("bakdor", KEY2)}, agent, stack)
    agent.wait_for(lambda _: bool(agent.status("bakdor")), "a status for the missing reader")
    assert agent.status("bakdor") == [
        (False, f"no answer from the reader at address 4 on sim:{bus_name} (wiring, power or address?)")
    ]
    assert agent.status("inngang") == [(True, "")]


def test_a_reader_that_loses_power_goes_offline_and_comes_back(
    bus_name: str, agent: Agent, stack: list[OsdpBus | SimOsdpReader]
) -> None:
    reader = sim_reader(bus_name, 1, stack, KEY1)
    panel(SimBus.named(bus_name).panel_channel(), {1: ("inngang", KEY1)}, agent, stack)
    agent.wait_online("inngang")
    reader.power(False)
    gone = (False, f"the reader at address 1 on sim:{bus_name} stopped answering")
    agent.wait_for(lambda _: gone in agent.status("inngang"), "offline", timeout=15)  # libosdp: ~8 s
    reader.power(True)
    agent.wait_for(lambda _: agent.status("inngang")[-1] == (True, ""), "back in service")
    assert agent.status("inngang") == [(True, ""), gone, (True, "")]
    reader.present_card(UID)
    agent.wait_for(lambda _: agent.of(CardPresented) == [CardPresented("inngang", UID)], "a card after")


class _FdChannel(BusChannel):
    """The reader's end of a pseudo-terminal (its master side), as the reader's serial line."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self.fd = fd

    def __str__(self) -> str:
        return f"pty:{self.fd}"

    def read(self, max_bytes: int) -> bytes:
        try:
            return os.read(self.fd, max_bytes)
        except (BlockingIOError, OSError):
            return b""

    def write(self, buf: bytes) -> int:
        try:
            return os.write(self.fd, buf)
        except (BlockingIOError, OSError):
            return 0

    def flush(self) -> None:
        while self.read(4096):
            pass


@pytest.mark.parametrize("wire", ["serial port", "socket"])
def test_a_reader_on_a_serial_port_or_a_socket_works_the_same(
    wire: str, agent: Agent, stack: list[OsdpBus | SimOsdpReader]
) -> None:
    if wire == "serial port":
        master, slave = os.openpty()
        panel_end: BusChannel = SerialChannel(os.ttyname(slave), 115200)
        reader_end: BusChannel = _FdChannel(master)
    else:
        panel_end, reader_end = socket_channel_pair()
    try:
        reader = sim_reader(reader_end, 3, stack, KEY1)
        panel(panel_end, {3: ("inngang", KEY1)}, agent, stack)
        agent.wait_online("inngang")
        reader.present_card(UID)
        agent.wait_for(lambda _: agent.of(CardPresented) == [CardPresented("inngang", UID)], "the card")
    finally:
        for thing in reversed(stack):
            thing.stop() if isinstance(thing, OsdpBus) else thing.close()
        stack.clear()
        if wire == "serial port":
            os.close(master)
            os.close(slave)


def test_a_missing_serial_port_is_named_in_the_readers_offline_status(
    agent: Agent, stack: list[OsdpBus | SimOsdpReader], tmp_path: Path
) -> None:
    port = tmp_path / "ttyUSB9"
    panel(SerialChannel(str(port), 9600), {1: ("inngang", KEY1)}, agent, stack)
    agent.wait_for(lambda _: bool(agent.status("inngang")), "a status for the reader")
    [(online, detail)] = agent.status("inngang")
    assert not online
    assert detail.startswith(f"OSDP bus serial:{port}@9600: cannot open {port}: ")
