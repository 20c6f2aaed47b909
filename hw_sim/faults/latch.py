"""GPIO outputs that outlive the agent's process, as a Pi's do.

When the agent is killed (-9) on a Raspberry Pi, its output pins keep the level last driven: a relay that was
energised for a grant stays energised until something drives it again. gpiozero's MockFactory forgets
everything with the process, so a kill would look harmless. Here every level driven on a listed pin is
written straight into a small file (one byte per pin, in place: the page cache outlives a kill), and a new
process's pins start at the level in the file. Whether the restarted agent then drives its relays to the
locked level before anything else is exactly the fail-secure-at-boot property the fault matrix checks.

Inputs driven from outside (the fire panel's line) are latched too, as `external`: the panel keeps its
output active while the agent restarts, so the new process must find the line active and release the doors.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockFactory, MockPin

UNKNOWN = 0  # never driven: the pin starts at its pull like any MockPin
LOW, HIGH = 1, 2


class PinLatch:
    """The wire levels of some pins, by name ("GPIO17"), kept in one file of one byte per pin."""

    def __init__(self, path: Path, pins: Sequence[str], external: Sequence[str] = ()) -> None:
        self.path = path
        self.external = set(external)  # input lines driven by other equipment, not by the agent
        self.pins = [*pins, *external]
        if not path.exists() or path.stat().st_size != len(self.pins):
            path.write_bytes(bytes(len(self.pins)))

    def level(self, pin: str) -> bool | None:
        """The level last driven on `pin` by any process, or None if never driven (or not latched)."""
        if pin not in self.pins:
            return None
        value = self.path.read_bytes()[self.pins.index(pin)]
        return None if value == UNKNOWN else value == HIGH

    def levels(self) -> dict[str, bool | None]:
        data = self.path.read_bytes()
        return {pin: None if data[i] == UNKNOWN else data[i] == HIGH for i, pin in enumerate(self.pins)}

    def drive(self, pin: str, high: bool) -> None:
        if pin not in self.pins:
            return
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.pwrite(fd, bytes([HIGH if high else LOW]), self.pins.index(pin))
        finally:
            os.close(fd)


class LatchedPin(MockPin):  # type: ignore[misc]  # gpiozero has no type hints
    """A MockPin that starts at its latched level and latches every level driven on it."""

    def __init__(self, factory: LatchedFactory, info: Any) -> None:
        self._latch = factory.latch
        self._name = str(info.name)
        self._held = self._latch.level(self._name)  # read before MockPin drives the pull below
        super().__init__(factory, info)
        if self._held is not None:
            self._state = self._held  # the wire still carries what the previous process drove

    def _change_state(self, value: bool) -> bool:
        changed: bool = super()._change_state(value)
        self._latch.drive(self._name, bool(value))
        return changed

    def _set_pull(self, value: str) -> None:
        super()._set_pull(value)  # drives the line to its pull, as a floating input would settle
        if self._held is not None and self._name in self._latch.external:
            self._change_state(self._held)  # ... but the other equipment still drives it


class LatchedFactory(MockFactory):  # type: ignore[misc]  # gpiozero has no type hints
    """A MockFactory whose pins named in `latch` keep their level across processes."""

    def __init__(self, latch: PinLatch) -> None:
        self.latch = latch
        super().__init__(pin_class=LatchedPin)
