"""QR scanners and PIN keypads: key translation without a device, the evdev reader's thread with a stand-in
device, and the serial scanner for real over a pseudo-terminal."""

from __future__ import annotations

import errno
import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import base45
import pytest
from evdev import InputEvent, ecodes

from controller.devices import Backoff
from controller.devices.keyboard import CLEAR, ENTER, KeyboardWedge, KeyTranslator, ScanAssembler, keypad_key
from controller.devices.serial_scanner import LineSplitter, SerialScanner
from controller.inputs import CodeScanned, KeyPressed, ReaderStatus
from controller.inputs import InputEvent as AgentEvent

WAIT_S = 5.0
# A phone token as its QR code carries it: ~130 bytes of COSE in base45 (digits, A-Z, space and $%*+-./:).
TOKEN = base45.b45encode(bytes(range(7, 7 + 131))).decode()
SHIFTED = {
    "$": ecodes.KEY_4,
    "%": ecodes.KEY_5,
    "*": ecodes.KEY_8,
    "+": ecodes.KEY_EQUAL,
    ":": ecodes.KEY_SEMICOLON,
}
PLAIN = {" ": ecodes.KEY_SPACE, "-": ecodes.KEY_MINUS, ".": ecodes.KEY_DOT, "/": ecodes.KEY_SLASH}


def key(code: int, value: int, at: float = 0.0) -> InputEvent:
    return InputEvent(int(at), int((at % 1) * 1_000_000), ecodes.EV_KEY, code, value)


def typed(text: str, *, start: float = 100.0, enter: bool = True) -> list[InputEvent]:
    """The key events a US-layout scanner sends for `text`, 2 ms per key, then Enter."""
    events: list[InputEvent] = []
    at = start
    for char in text:
        if char.isupper() or char in SHIFTED:
            code = SHIFTED.get(char) or getattr(ecodes, f"KEY_{char}")
            events += [key(ecodes.KEY_LEFTSHIFT, 1, at), key(code, 1, at), key(code, 0, at)]
            events.append(key(ecodes.KEY_LEFTSHIFT, 0, at))
        else:
            code = PLAIN.get(char) or getattr(ecodes, f"KEY_{char.upper()}")
            events += [key(code, 1, at), key(code, 0, at)]
        events.append(InputEvent(int(at), 0, ecodes.EV_SYN, 0, 0))
        at += 0.002
    if enter:
        events += [key(ecodes.KEY_ENTER, 1, at), key(ecodes.KEY_ENTER, 0, at)]
    return events


def scan(events: Iterable[InputEvent], assembler: ScanAssembler | None = None) -> list[str]:
    translator, assembler = KeyTranslator(), assembler or ScanAssembler()
    codes = []
    for event in events:
        char = translator.feed(event)
        text = assembler.feed(char, event.timestamp()) if char is not None else None
        if text is not None:
            codes.append(text)
    return codes


# ------------------------------------------------------------------------------------- key translation


def test_a_base45_token_typed_by_a_scanner_comes_out_exactly() -> None:
    assert {" ", "$", "%", "*", "+", "-", ".", "/", ":"} <= set(TOKEN)
    assert scan(typed(TOKEN)) == [TOKEN]


def test_case_follows_shift_and_shift_released_means_lower_case_again() -> None:
    events = [
        key(ecodes.KEY_RIGHTSHIFT, 1),
        key(ecodes.KEY_A, 1),
        key(ecodes.KEY_RIGHTSHIFT, 0),
        key(ecodes.KEY_A, 1),
    ]
    translator = KeyTranslator()
    assert [translator.feed(e) for e in events] == [None, "A", None, "a"]


def test_two_codes_back_to_back_and_a_half_read_code_is_dropped_after_a_pause() -> None:
    events = typed("HC1:AB", start=10.0) + typed("XYZ", start=20.0, enter=False) + typed("NEXT", start=30.0)
    assert scan(events) == ["HC1:AB", "NEXT"]


def test_an_endless_code_is_refused_not_buffered() -> None:
    assert scan(typed("A" * 50), ScanAssembler(max_length=20)) == []
    assert scan(typed("A" * 20), ScanAssembler(max_length=20)) == ["A" * 20]


def test_keypad_digits_from_either_key_block_enter_and_clear() -> None:
    translator = KeyTranslator()
    codes = [ecodes.KEY_KP1, ecodes.KEY_2, ecodes.KEY_KP0, ecodes.KEY_9, ecodes.KEY_KPENTER, ecodes.KEY_ENTER,
             ecodes.KEY_BACKSPACE, ecodes.KEY_ESC, ecodes.KEY_KPASTERISK, ecodes.KEY_Q]  # fmt: skip
    keys = [keypad_key(c) for c in (translator.feed(key(code, 1)) for code in codes) if c is not None]
    assert [k for k in keys if k is not None] == ["1", "2", "0", "9", "#", "#", "*", "*", "*"]


def test_held_keys_do_not_repeat_and_other_event_types_are_ignored() -> None:
    translator = KeyTranslator()
    events = [key(ecodes.KEY_5, 1), key(ecodes.KEY_5, 2), key(ecodes.KEY_5, 2), key(ecodes.KEY_5, 0)]
    events.append(InputEvent(0, 0, ecodes.EV_MSC, ecodes.MSC_SCAN, 0x70022))
    assert [c for c in map(translator.feed, events) if c is not None] == ["5"]
    assert keypad_key(ENTER) == "#" and keypad_key(CLEAR) == "*" and keypad_key("a") is None


# --------------------------------------------------------------------------------- evdev reader thread


class FakeKeyboard:
    """Stands in for evdev.InputDevice: events are queued by the test, and a pipe makes fd readable."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        self.fd = self._r
        self.pending: list[InputEvent] = []
        self.grabbed = False
        self.unplugged = False

    def grab(self) -> None:
        self.grabbed = True

    def send(self, events: list[InputEvent]) -> None:
        self.pending += events
        os.write(self._w, b"!")

    def unplug(self) -> None:
        self.unplugged = True
        os.write(self._w, b"!")

    def read(self) -> Iterator[InputEvent]:
        os.read(self._r, 1024)
        if self.unplugged:
            raise OSError(errno.ENODEV, "No such device")
        events, self.pending = self.pending, []
        return iter(events)

    def close(self) -> None:
        for fd in (self._r, self._w):
            os.close(fd)


class Recorder:
    def __init__(self) -> None:
        self.events: queue.Queue[AgentEvent] = queue.Queue()

    def __call__(self, event: AgentEvent) -> None:
        self.events.put(event)

    def next(self) -> AgentEvent:
        try:
            return self.events.get(timeout=WAIT_S)
        except queue.Empty:
            pytest.fail(f"no event within {WAIT_S} s")


def test_wedge_scanner_grabs_the_device_reports_codes_and_reconnects_after_unplug() -> None:
    plugged: list[FakeKeyboard] = []
    present = {"yes": True}

    def open_device(path: str) -> FakeKeyboard:
        if not present["yes"]:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        plugged.append(FakeKeyboard())
        return plugged[-1]

    seen = Recorder()
    wedge = KeyboardWedge("/dev/input/by-id/scanner", "kiosk-qr", seen, backoff=Backoff(0.02, 0.05),
                          open_device=open_device)  # fmt: skip
    wedge.start()
    try:
        assert seen.next() == ReaderStatus("kiosk-qr", True)
        assert plugged[0].grabbed
        plugged[0].send(typed(TOKEN))
        assert seen.next() == CodeScanned("kiosk-qr", TOKEN)
        present["yes"] = False
        plugged[0].unplug()
        status = seen.next()
        assert isinstance(status, ReaderStatus) and not status.online and "No such device" in status.detail
        present["yes"] = True
        assert seen.next() == ReaderStatus("kiosk-qr", True)
        plugged[-1].send(typed("AGAIN"))
        assert seen.next() == CodeScanned("kiosk-qr", "AGAIN")
    finally:
        wedge.stop()


def test_wedge_keypad_sends_each_key() -> None:
    device = FakeKeyboard()
    seen = Recorder()
    wedge = KeyboardWedge("/dev/input/event7", "door-1-pin", seen, "keypad", open_device=lambda _: device)
    wedge.start()
    try:
        assert seen.next() == ReaderStatus("door-1-pin", True)
        device.send([key(c, v) for c in (ecodes.KEY_KP4, ecodes.KEY_2, ecodes.KEY_KPENTER) for v in (1, 0)])
        assert [seen.next() for _ in range(3)] == [KeyPressed("door-1-pin", k) for k in ("4", "2", "#")]
    finally:
        wedge.stop()


def test_wedge_mode_is_checked() -> None:
    with pytest.raises(ValueError, match="'scanner' or 'keypad'"):
        KeyboardWedge("/dev/null", "x", Recorder(), "mouse")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- serial scanner


def test_line_splitter_handles_cr_lf_crlf_split_reads_and_overlong_lines() -> None:
    lines = LineSplitter(max_length=10)
    assert lines.feed(b"AB C\r\nDE") == ["AB C"]
    assert lines.feed(b"F\rGH\n") == ["DEF", "GH"]
    assert lines.feed(b"X" * 11) == []
    assert lines.feed(b"XX\r\nOK\n") == ["OK"]
    assert lines.feed(b"Y" * 11 + b"\nOK2\n") == ["OK2"]


class Pty:
    """A pseudo-terminal standing in for a USB serial scanner; `link` is its stable by-id style path."""

    def __init__(self, link: Path) -> None:
        self.master, slave = os.openpty()
        self.slave_name = os.ttyname(slave)
        os.close(slave)
        link.unlink(missing_ok=True)
        link.symlink_to(self.slave_name)

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def unplug(self) -> None:
        os.close(self.master)


def test_serial_scanner_reads_codes_over_a_real_tty_and_comes_back_after_unplug(tmp_path: Path) -> None:
    link = tmp_path / "usb-Scanner-if00"
    scanner_port = Pty(link)
    seen = Recorder()
    scanner = SerialScanner(str(link), "entrance-qr", seen, baudrate=115200, backoff=Backoff(0.05, 0.1),
                            read_timeout_s=0.05)  # fmt: skip
    scanner.start()
    try:
        assert seen.next() == ReaderStatus("entrance-qr", True)
        scanner_port.type(TOKEN[:100].encode())
        scanner_port.type(TOKEN[100:].encode() + b"\r\n")
        scanner_port.type(b"SECOND CODE\rTHIRD\n")
        assert [seen.next() for _ in range(3)] == [
            CodeScanned("entrance-qr", text) for text in (TOKEN, "SECOND CODE", "THIRD")
        ]
        link.unlink()
        scanner_port.unplug()
        status = seen.next()
        assert isinstance(status, ReaderStatus) and not status.online
        time.sleep(0.2)  # it keeps retrying the path while the scanner is away
        assert seen.events.empty()
        replugged = Pty(link)
        assert seen.next() == ReaderStatus("entrance-qr", True)
        replugged.type(b"AFTER REPLUG\r\n")
        assert seen.next() == CodeScanned("entrance-qr", "AFTER REPLUG")
        replugged.unplug()
    finally:
        scanner.stop()


def test_serial_scanner_on_a_missing_port_is_offline_and_stops_promptly(tmp_path: Path) -> None:
    seen = Recorder()
    scanner = SerialScanner(str(tmp_path / "ttyNONE"), "qr", seen, backoff=Backoff(0.05, 0.1))
    scanner.start()
    status = seen.next()
    assert isinstance(status, ReaderStatus) and not status.online and "ttyNONE" in status.detail
    scanner.stop(timeout=2)
    assert not [t for t in threading.enumerate() if t.name == "serial:qr"]
