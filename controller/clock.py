"""The agent's sense of time, injectable so tests and scenarios can live through an evening in seconds.

Two readings, because they answer different questions: `now()` is the wall clock in UTC (schedules, validity
windows, event stamps; it can jump when NTP sets it), `monotonic()` counts seconds that never go back (door
timers, PIN timeouts, reconnect back-off).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The wall-clock time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds since an arbitrary start; never decreases."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told: `advance` moves both readings, `set_wall` jumps the wall clock only
    (as NTP does after a boot without network)."""

    def __init__(self, start: datetime, monotonic_start: float = 1000.0) -> None:
        if start.utcoffset() is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start.astimezone(UTC)
        self._mono = monotonic_start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward; use set_wall to jump the wall clock")
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._mono += seconds

    def set_wall(self, now: datetime) -> None:
        if now.utcoffset() is None:
            raise ValueError("set_wall needs a timezone-aware time")
        with self._lock:
            self._now = now.astimezone(UTC)
