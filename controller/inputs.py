"""What the hardware tells the agent: one small vocabulary every device adapter speaks.

Adapters (gpiozero pins, PC/SC and OSDP readers, keypads, QR scanners; their twins in hw_sim/) run in their
own threads and only ever call an `InputSink` with one of these events. The agent consumes them in order on
its own thread, so the decision and door logic never see a device library.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Signal(StrEnum):
    """Binary inputs wired to the agent. `door` names the door for door-bound signals."""

    DOOR_CONTACT = "door_contact"  # active = the door is open
    EXIT_BUTTON = "exit_button"  # active = pressed (request to exit)
    LOCK_MONITOR = "lock_monitor"  # active = the lock reports bolted / secured
    TAMPER = "tamper"  # active = an enclosure or reader was opened
    FIRE = "fire"  # active = the fire panel asks to release every door (site-wide, door is None)
    BEAM = "beam"  # active = a person breaks the beam of a passage counter


@dataclass(frozen=True)
class CardPresented:
    """A contactless card's UID read at `reader` (raw bytes as the reader returned them)."""

    reader: str
    uid: bytes


@dataclass(frozen=True)
class CardRemoved:
    reader: str


@dataclass(frozen=True)
class KeyPressed:
    """One key of a PIN keypad: '0'-'9', '#' (enter) or '*' (clear)."""

    reader: str
    key: str


@dataclass(frozen=True)
class CodeScanned:
    """A QR or barcode text from a scanner at `reader` (trailing CR/LF already removed)."""

    reader: str
    text: str


@dataclass(frozen=True)
class InputChanged:
    signal: Signal
    active: bool
    door: str | None = None


@dataclass(frozen=True)
class ReaderStatus:
    """A reader went offline or came back (unplugged, pcscd gone, OSDP peripheral silent)."""

    reader: str
    online: bool
    detail: str = ""


InputEvent = CardPresented | CardRemoved | KeyPressed | CodeScanned | InputChanged | ReaderStatus
InputSink = Callable[[InputEvent], None]


class Feedback(StrEnum):
    """What the person at a reader should see and hear (reader LEDs and beeper: OSDP, or a buzzer pin)."""

    GRANTED = "granted"  # green
    DENIED = "denied"  # red
    PIN_NEEDED = "pin_needed"  # amber: type your PIN
    ALARM = "alarm"  # a pattern while the door is in alarm
    ENROL_READY = "enrol_ready"  # amber blinking: code taken, tap the card to register now
    ENROLLED = "enrolled"  # green blinking, two beeps: card taken for registration (the door stays locked)
    IDLE = "idle"  # back to the resting state
