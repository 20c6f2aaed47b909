"""The background jobs `central serve` runs beside the API (feed poller, no-show and retention sweeps,
webhook sender): one thread each, a round every interval, sooner after `poke()`.

A round that raises is logged and the next one tries again: a database hiccup or a feed that misbehaves must
never end the thread. `stop()` wakes the thread and waits for the round in hand.
"""

from __future__ import annotations

import threading
from typing import Self

import structlog

log = structlog.get_logger(__name__)


class PeriodicJob:
    """Subclasses name their thread and log events (`name`) and do one round in `run_once`."""

    name = "periodic-job"

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> object:
        raise NotImplementedError

    def start(self) -> Self:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
            self._started()
        return self

    def _started(self) -> None:
        """What to log once the thread runs (nothing by default)."""

    def stop(self, timeout_s: float = 10.0) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            self._wake.set()
            thread.join(timeout_s)

    def poke(self) -> None:
        """Do the next round now rather than at the next interval."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the next round may well work
                log.exception("periodic.round_failed", job=self.name)
            self._wake.wait(self.interval_s)
            self._wake.clear()
