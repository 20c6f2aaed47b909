"""The retention sweep `central serve` runs every hour (central.services.retention.apply_retention).

A thread of its own, like the no-show sweeper: a database hiccup is logged and the next round tries again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

import structlog
from sqlalchemy.orm import Session, sessionmaker

from central.config import Settings
from central.db import utcnow
from central.services.retention import RetentionReport, apply_retention

log = structlog.get_logger(__name__)

DEFAULT_INTERVAL_S = 3600.0


class RetentionSweeper:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self.settings = settings
        self.interval_s = interval_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep_once(self) -> RetentionReport:
        """One sweep in one transaction; returns what it changed (counts only)."""
        with self._sessions() as session, session.begin():
            report = apply_retention(session, self.settings, self._clock())
        if report.changed:
            log.info("retention.applied", **vars(report))
        return report

    def start(self) -> RetentionSweeper:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="retention-sweeper", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sweep_once()
            except Exception:  # the next round may well work
                log.exception("retention.sweep_failed")
            self._stop.wait(self.interval_s)
