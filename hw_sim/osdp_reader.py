"""A simulated OSDP reader: libosdp in peripheral-device (PD) mode on a simulated RS-485 bus.

It is the other side of firmware_bridge: the same protocol stack a reader's firmware runs, secure channel
included. A person at the reader presents a card (raw serial number or a Wiegand 26/34 card), types on its
keypad, opens its housing (tamper) or the reader loses power (it goes silent; on power-up it starts afresh,
as a real one does). What the control panel tells it to show is recorded: `leds` (every LED state it was
told to show, last = `last_led`), `showing` (what it shows now, temporary colours timed) and `beeps`, so a
test can assert "green on grant".

The reader keeps its secure channel key across power cycles, like a reader's flash: `scbk=None` is a reader
fresh from the factory, on the default key SCBK-D (install mode), until a control panel in install mode sets
its key.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import osdp_sys
import structlog
from osdp import Capability, Command, Event, LibFlag, LogLevel, PDCapabilities, PDInfo, StatusReportType

from firmware_bridge.channel import BusChannel, SimBus, SimReaderPort
from firmware_bridge.feedback import AMBER, GREEN, OFF, RED
from firmware_bridge.formats import (
    FORMAT_RAW,
    FORMAT_WIEGAND,
    KEYPAD_CODES,
    WiegandFormat,
    encode_wiegand,
)
from firmware_bridge.loop import POLL_S, RefreshLoop

log = structlog.get_logger(__name__)

COLORS = {
    OFF: "off",
    RED: "red",
    GREEN: "green",
    AMBER: "amber",
    4: "blue",
    5: "magenta",
    6: "cyan",
    7: "white",
}
CAPABILITIES = PDCapabilities(
    [
        (Capability.CardDataFormat, 1, 1),
        (Capability.LEDControl, 1, 1),
        (Capability.AudibleControl, 1, 1),
        (Capability.CommunicationSecurity, 1, 1),
    ]
)
CardFormatName = Literal["raw", "wiegand26", "wiegand34"]


@dataclass(frozen=True)
class Led:
    """One LED state the reader was told to show: `seconds` is how long, for a temporary one."""

    color: str
    flashing: bool = False
    temporary: bool = False
    seconds: float | None = None


@dataclass(frozen=True)
class Beep:
    count: int
    seconds: float


class SimOsdpReader:
    """A reader at `address` on the simulated bus `bus` (a SimBus, or its name as in "sim:<name>"), or on
    any other reader-side channel (a socket, a pseudo-terminal) given as a BusChannel."""

    def __init__(
        self,
        bus: SimBus | str | BusChannel,
        address: int,
        *,
        scbk: bytes | None = None,
        powered: bool = True,
        poll_s: float = POLL_S,
    ) -> None:
        self.bus = SimBus.named(bus) if isinstance(bus, str) else bus if isinstance(bus, SimBus) else None
        self._wire = bus if isinstance(bus, BusChannel) else None
        self.address = address
        self.scbk = scbk
        self.poll_s = poll_s
        self.leds: list[Led] = []
        self.beeps: list[Beep] = []
        self._permanent = Led("off")
        self._temporary: Led | None = None
        self._temporary_until = 0.0
        self._changed = threading.Condition()
        self._ctx: Any = None
        self._port: BusChannel | None = None
        self._loop: RefreshLoop | None = None
        if powered:
            self.power(True)

    def __repr__(self) -> str:
        return f"SimOsdpReader({self._where}, address={self.address})"

    @property
    def _where(self) -> str:
        return f"sim:{self.bus.name}" if self.bus is not None else str(self._wire)

    def __enter__(self) -> SimOsdpReader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- power ---------------------------------------------------------------------------------------------

    @property
    def powered(self) -> bool:
        return self._loop is not None

    def power(self, on: bool) -> None:
        """Switch the reader on (it boots and answers the panel) or off (silent on the bus)."""
        if on and self._loop is None:
            self._boot()
        elif not on and self._loop is not None:
            self._shut_down()

    def _boot(self) -> None:
        flags = [LibFlag.EnforceSecure] if self.scbk is not None else [LibFlag.InstallMode]
        self._port = self._plug_in()
        name = f"sim-reader-{self.address}"
        info = PDInfo(self.address, self._port, scbk=self.scbk, name=name, flags=flags)
        loop = RefreshLoop(f"sim-osdp:{self._where}:{self.address}", self._refresh, poll_s=self.poll_s)
        osdp_sys.set_loglevel(LogLevel.Error)
        with loop.lock:
            self._ctx = osdp_sys.PeripheralDevice(info.get(), capabilities=CAPABILITIES.get())
            self._ctx.set_command_callback(self._on_command)
        self._loop = loop
        loop.start()

    def _plug_in(self) -> BusChannel:
        if self.bus is not None:
            return self.bus.reader_port()
        assert self._wire is not None
        self._wire.flush()  # what was said to it while it had no power is lost
        return self._wire

    def _shut_down(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.stop()
            with loop.lock:
                self._ctx = None
        if isinstance(self._port, SimReaderPort):
            self._port.close()
        self._port = None

    def close(self) -> None:
        self.power(False)

    def _refresh(self) -> None:
        loop = self._loop
        if loop is None:
            return
        with loop.lock:
            if self._ctx is not None:
                self._ctx.refresh()

    @property
    def online(self) -> bool:
        """The reader's own view: a control panel talks to it over a secure channel."""
        loop = self._loop
        if loop is None:
            return False
        with loop.lock:
            return self._ctx is not None and bool(self._ctx.is_online()) and bool(self._ctx.is_sc_active())

    # --- what a person does --------------------------------------------------------------------------------

    def present_card(self, card: bytes | int, format: CardFormatName = "raw", *, facility: int = 0) -> None:
        """A card in the field: `card` is the serial number (bytes) for "raw", the card number (int) for a
        Wiegand format (with its `facility` code)."""
        if format == "raw":
            if not isinstance(card, bytes):
                raise ValueError("a raw card read is the card's serial number as bytes")
            self.present_bits(len(card) * 8, card, wiegand=False)
            return
        if not isinstance(card, int):
            raise ValueError(f"a {format} card is a card number (int) with a facility code")
        length, data = encode_wiegand(_wiegand(format), facility, card)
        self.present_bits(length, data)

    def present(self, uid: bytes) -> None:
        """hw_sim.site's card reader twin: a contactless card with this serial number."""
        self.present_card(uid)

    def remove(self) -> None:
        """hw_sim.site's card reader twin: OSDP readers do not report a card taken away."""

    def present_bits(self, length: int, data: bytes, *, wiegand: bool = True) -> None:
        """Exactly these card bits, as the reader read them (a misread, an unusual format)."""
        self._submit(
            {
                "event": Event.CardRead,
                "reader_no": 0,
                "direction": 0,
                "format": FORMAT_WIEGAND if wiegand else FORMAT_RAW,
                "length": length,
                "data": data,
            }
        )

    def press_keys(self, keys: str) -> None:
        """Keys typed one after the other: digits, '#' (enter) and '*' (clear)."""
        unknown = set(keys) - set(KEYPAD_CODES)
        if unknown:
            raise ValueError(f"the keypad has 0-9, '*' and '#', not {''.join(sorted(unknown))!r}")
        for key in keys:
            self._submit({"event": Event.KeyPress, "reader_no": 0, "data": bytes([KEYPAD_CODES[key]])})

    def tamper(self, active: bool) -> None:
        """The housing opened (True) or closed again."""
        report = bytes([1 if active else 0, 0])  # tamper, power
        self._submit({"event": Event.Status, "type": StatusReportType.Local, "report": report})

    def _submit(self, event: dict[str, Any]) -> None:
        loop = self._loop
        if loop is None:
            log.info("sim_osdp.ignored", reader=self.address, reason="no power")
            return
        with loop.lock:
            if self._ctx is not None:
                self._ctx.submit_event(event)

    # --- what the panel made it show ----------------------------------------------------------------------

    @property
    def last_led(self) -> Led | None:
        with self._changed:
            return self.leds[-1] if self.leds else None

    @property
    def showing(self) -> Led:
        """The LED now: a temporary state until its time is up or it is cancelled, else the permanent one."""
        with self._changed:
            if self._temporary is not None and time.monotonic() < self._temporary_until:
                return self._temporary
            return self._permanent

    def wait_for_led(self, expected: str | Led, timeout: float = 2.0) -> bool:
        """Wait until the last LED state told is `expected` (a colour name, or exactly that Led); False after
        `timeout` seconds."""

        def told() -> bool:
            if not self.leds:
                return False
            last = self.leds[-1]
            return last.color == expected if isinstance(expected, str) else last == expected

        with self._changed:
            return self._changed.wait_for(told, timeout)

    def _on_command(self, command: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        kind = command.get("command")
        with self._changed:
            if kind == Command.LED:
                self._led(command)
            elif kind == Command.Buzzer and command.get("control_code") == 2:
                self.beeps.append(Beep(int(command["rep_count"]), command["on_count"] / 10))
            elif kind == Command.Keyset:
                self.scbk = bytes(command["data"])  # kept across power cycles, like the reader's flash
            self._changed.notify_all()
        return 0, None

    def _led(self, command: dict[str, Any]) -> None:
        temporary = bool(command.get("temporary"))
        if temporary and command["control_code"] == 1:
            self._temporary = None  # back to the permanent state
            return
        shown = Led(
            COLORS.get(command["on_color"], str(command["on_color"])),
            flashing=command["off_count"] > 0 and command["off_color"] != command["on_color"],
            temporary=temporary,
            seconds=command["timer_count"] / 10 if temporary else None,
        )
        if temporary:
            self._temporary = shown
            self._temporary_until = time.monotonic() + (shown.seconds or 0.0)
        else:
            self._permanent = shown
        self.leds.append(shown)


def _wiegand(name: str) -> WiegandFormat:
    if name == "wiegand26":
        return "wiegand26"
    if name == "wiegand34":
        return "wiegand34"
    raise ValueError(f"unknown card format {name!r}: raw, wiegand26 or wiegand34")
