"""The thread that drives a libosdp context: libosdp does nothing unless `refresh()` is called often.

libosdp's own Python wrapper refreshes every 20 ms from a thread that keeps every event in a queue nobody
empties; ours refreshes every 5 ms (a card read reaches the agent sooner: libosdp polls each reader every
50 ms) and hands events straight on. The lock serialises every call into the context: libosdp is not
thread-safe, and its callbacks run inside `refresh()`, on this thread, with the lock held.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)

POLL_S = 0.005
ERROR_PAUSE_S = 0.5


class RefreshLoop:
    """Calls `step()` every `poll_s` on its own thread (daemon) until `stop()`."""

    def __init__(self, name: str, step: Callable[[], None], *, poll_s: float = POLL_S) -> None:
        self.name = name
        self.lock = threading.Lock()
        self._step = step
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception as exc:  # a bad event must not stop the readers; no hot spin either
                log.exception("osdp.refresh_failed", loop=self.name, error=f"{type(exc).__name__}: {exc}")
                self._stop.wait(ERROR_PAUSE_S)
            self._stop.wait(self._poll_s)
