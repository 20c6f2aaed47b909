"""Catching a keyboard-wedge QR scanner among ordinary key presses, with no input field on the screen.

The scanner "types" the code ("MA1:..." or "MA2:...", see protocol.token and protocol.holder) followed by
Enter, much faster than a person. `Wedge` holds back keys from the first "M" on for as long as they can still
become one of those prefixes, then everything up to Enter; any other key passes through untouched, so the
keypad's digits and Tab/Enter on the buttons keep working. A pause longer than `gap_s` between two keys
forgets a half-typed code (a person who pressed "M"), so it never swallows keys for long.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from protocol.holder import PRESENTATION_PREFIX
from protocol.kiosk import CheckInMethod, CheckInRequest
from protocol.token import PREFIX as TOKEN_PREFIX

PREFIXES = (TOKEN_PREFIX, PRESENTATION_PREFIX)
MAX_CHARS = 2048  # CheckInRequest.text's limit


class Verdict(Enum):
    NOT_OURS = "not ours"  # let the app handle the key
    HOLD = "hold"  # swallowed: part of a code being scanned
    SCANNED = "scanned"  # Enter after a whole code: `Wedge.scanned` holds it


@dataclass
class Wedge:
    """Feed it every key (`character` is None for keys that type nothing, such as Tab)."""

    monotonic: Callable[[], float]
    gap_s: float = 1.0
    buffer: str = ""
    scanned: str = ""
    _last: float = 0.0

    def feed(self, key: str, character: str | None) -> Verdict:
        now = self.monotonic()
        if self.buffer and now - self._last > self.gap_s:
            self.buffer = ""
        self._last = now
        if key == "enter":
            return self._enter()
        if character is None or not character.isprintable() or len(character) != 1:
            self.buffer = ""
            return Verdict.NOT_OURS
        candidate = self.buffer + character
        if len(candidate) <= len(TOKEN_PREFIX):
            if any(prefix.startswith(candidate.upper()) for prefix in PREFIXES):
                self.buffer = candidate
                return Verdict.HOLD
            self.buffer = ""
            return Verdict.NOT_OURS
        if len(candidate) > MAX_CHARS:
            self.buffer = ""
            return Verdict.HOLD
        self.buffer = candidate
        return Verdict.HOLD

    def clear(self) -> None:
        self.buffer = ""

    def _enter(self) -> Verdict:
        held, self.buffer = self.buffer, ""
        if len(held) > len(TOKEN_PREFIX) and held[: len(TOKEN_PREFIX)].upper() in PREFIXES:
            self.scanned = held
            return Verdict.SCANNED
        return Verdict.HOLD if held else Verdict.NOT_OURS


def scan_request(scanned: str) -> CheckInRequest:
    """The check-in for a scanned code, exactly as typed (the agent upper-cases and trims it)."""
    return CheckInRequest(method=CheckInMethod.QR, text=scanned)
