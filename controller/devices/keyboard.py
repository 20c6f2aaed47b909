"""USB devices that pretend to be keyboards: QR/barcode scanners (keyboard wedge) and PIN keypads, via evdev.

The device is grabbed exclusively, so a scanned token or a PIN never types into the console or any other
program. Key codes become characters by a US layout with shift (what scanners are set to by default and what
the base45 alphabet of phone tokens needs: 0-9 A-Z space $ % * + - . / :). That translation is pure code
(KeyTranslator, ScanAssembler, keypad_key), tested without a device; KeyboardWedge is the thin threaded shell
that reads the device and reconnects when it is unplugged.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
from collections.abc import Callable, Iterable
from typing import Literal, Protocol

import structlog
from evdev import InputDevice, InputEvent, ecodes

from controller.devices import Backoff, ReaderLink
from controller.inputs import CodeScanned, InputSink, KeyPressed

log = structlog.get_logger(__name__)

ENTER = "\n"
CLEAR = "\x1b"  # Backspace or Escape: the user wants to start the entry again
KEY_DOWN, KEY_UP = 1, 0  # 2 is auto-repeat, ignored: nobody means a digit twice by holding it

_SHIFT_KEYS = {ecodes.KEY_LEFTSHIFT, ecodes.KEY_RIGHTSHIFT}


def _letters() -> dict[int, tuple[str, str]]:
    return {getattr(ecodes, f"KEY_{c}"): (c.lower(), c) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}


def _digits() -> dict[int, tuple[str, str]]:
    return {getattr(ecodes, f"KEY_{d}"): (d, s) for d, s in zip("1234567890", "!@#$%^&*()", strict=True)}


# key code → (unshifted, shifted) on a US layout
_US: dict[int, tuple[str, str]] = {
    **_letters(),
    **_digits(),
    ecodes.KEY_SPACE: (" ", " "),
    ecodes.KEY_MINUS: ("-", "_"),
    ecodes.KEY_EQUAL: ("=", "+"),
    ecodes.KEY_LEFTBRACE: ("[", "{"),
    ecodes.KEY_RIGHTBRACE: ("]", "}"),
    ecodes.KEY_BACKSLASH: ("\\", "|"),
    ecodes.KEY_SEMICOLON: (";", ":"),
    ecodes.KEY_APOSTROPHE: ("'", '"'),
    ecodes.KEY_GRAVE: ("`", "~"),
    ecodes.KEY_COMMA: (",", "<"),
    ecodes.KEY_DOT: (".", ">"),
    ecodes.KEY_SLASH: ("/", "?"),
    ecodes.KEY_TAB: ("\t", "\t"),
}
# keypad keys ignore shift (num lock assumed on, as keypads and scanners send them)
_KEYPAD: dict[int, str] = {
    **{getattr(ecodes, f"KEY_KP{d}"): d for d in "0123456789"},
    ecodes.KEY_KPASTERISK: "*",
    ecodes.KEY_KPMINUS: "-",
    ecodes.KEY_KPPLUS: "+",
    ecodes.KEY_KPDOT: ".",
    ecodes.KEY_KPSLASH: "/",
    ecodes.KEY_KPEQUAL: "=",
}
_CONTROL: dict[int, str] = {
    ecodes.KEY_ENTER: ENTER,
    ecodes.KEY_KPENTER: ENTER,
    ecodes.KEY_BACKSPACE: CLEAR,
    ecodes.KEY_ESC: CLEAR,
}


class KeyTranslator:
    """evdev key events → characters (ENTER and CLEAR for those keys), tracking the shift keys."""

    def __init__(self) -> None:
        self._shift_down: set[int] = set()

    def feed(self, event: InputEvent) -> str | None:
        if event.type != ecodes.EV_KEY:
            return None
        if event.code in _SHIFT_KEYS:
            if event.value == KEY_UP:
                self._shift_down.discard(event.code)
            else:
                self._shift_down.add(event.code)
            return None
        if event.value != KEY_DOWN:
            return None
        if event.code in _CONTROL:
            return _CONTROL[event.code]
        if event.code in _KEYPAD:
            return _KEYPAD[event.code]
        pair = _US.get(event.code)
        if pair is None:
            return None
        return pair[1] if self._shift_down else pair[0]


class ScanAssembler:
    """Characters → whole scanned codes: a code ends at Enter. A scanner types a code in one burst, so a
    pause longer than `max_gap_s` drops what came before (a half-read code or stray keys), and a code longer
    than `max_length` is refused rather than buffered without end."""

    def __init__(self, *, max_length: int = 4096, max_gap_s: float = 1.0) -> None:
        self.max_length = max_length
        self.max_gap_s = max_gap_s
        self._chars: list[str] = []
        self._last: float | None = None
        self._overflow = False

    def feed(self, char: str, timestamp: float) -> str | None:
        if self._last is not None and timestamp - self._last > self.max_gap_s:
            self._reset()
        self._last = timestamp
        if char == CLEAR:
            self._reset()
            return None
        if char != ENTER:
            if len(self._chars) >= self.max_length:
                self._overflow = True
            else:
                self._chars.append(char)
            return None
        text, overflow = "".join(self._chars), self._overflow
        self._reset()
        if overflow:
            log.warning("scanned code too long, ignored", limit=self.max_length)
            return None
        return text or None

    def _reset(self) -> None:
        self._chars.clear()
        self._overflow = False


def keypad_key(char: str) -> str | None:
    """A translated character → a PIN keypad key: digits, '#' to enter, '*' to clear; None for the rest."""
    if char.isdigit() and len(char) == 1:
        return char
    if char in (ENTER, "#"):
        return "#"
    if char in (CLEAR, "*"):
        return "*"
    return None


class KeyDevice(Protocol):
    """What KeyboardWedge needs of evdev.InputDevice (an evdev device, or a stand-in in tests)."""

    fd: int

    def grab(self) -> None: ...

    def read(self) -> Iterable[InputEvent]: ...

    def close(self) -> None: ...


def open_evdev(path: str) -> KeyDevice:
    return InputDevice(path)


class KeyboardWedge:
    """A keyboard-like reader at `device_path` (best a stable /dev/input/by-id/... link): in "scanner" mode
    each code ending in Enter becomes CodeScanned; in "keypad" mode each key becomes KeyPressed."""

    def __init__(
        self,
        device_path: str,
        reader_id: str,
        sink: InputSink,
        mode: Literal["scanner", "keypad"] = "scanner",
        *,
        backoff: Backoff | None = None,
        open_device: Callable[[str], KeyDevice] = open_evdev,
    ) -> None:
        if mode not in ("scanner", "keypad"):
            raise ValueError(f"keyboard reader mode must be 'scanner' or 'keypad', not {mode!r}")
        self.device_path = device_path
        self.reader_id = reader_id
        self.mode = mode
        self._sink = sink
        self._open_device = open_device
        self._backoff = backoff or Backoff()
        self._link = ReaderLink(reader_id, sink)
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._thread: threading.Thread | None = None

    @property
    def online(self) -> bool:
        return self._link.online

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"keys:{self.reader_id}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):  # already stopped
            os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                device = self._open_device(self.device_path)
            except OSError as exc:
                self._link.set(False, f"cannot open {self.device_path}: {exc.strerror or exc}")
                self._stop.wait(self._backoff.next_delay())
                continue
            try:
                device.grab()  # exclusive: keys must not reach the console
                self._link.set(True)
                self._backoff.reset()
                self._pump(device)
            except OSError as exc:
                self._link.set(False, f"{self.device_path} lost: {exc.strerror or exc}")
                self._stop.wait(self._backoff.next_delay())
            finally:
                with contextlib.suppress(OSError):
                    device.close()

    def _pump(self, device: KeyDevice) -> None:
        translator, assembler = KeyTranslator(), ScanAssembler()
        while not self._stop.is_set():
            readable, _, _ = select.select([device.fd, self._wake_r], [], [])
            if self._wake_r in readable:
                return
            try:
                events = list(device.read())
            except BlockingIOError:
                continue
            for event in events:
                char = translator.feed(event)
                if char is not None:
                    self._deliver(char, event.timestamp(), assembler)

    def _deliver(self, char: str, timestamp: float, assembler: ScanAssembler) -> None:
        if self.mode == "keypad":
            key = keypad_key(char)
            if key is not None:
                self._sink(KeyPressed(self.reader_id, key))
            return
        text = assembler.feed(char, timestamp)
        if text is not None:
            self._sink(CodeScanned(self.reader_id, text))
