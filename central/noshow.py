"""The no-show sweep `central serve` runs every minute: confirmed bookings whose check-in window has
closed (`central.checkin.checkin_rules(settings)`) are released (their access ends at the site, the room is
free, the booking system is told through the webhook outbox) and counted as no-shows.

A thread of its own, like the feed poller: a database hiccup is logged and the next round tries again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

import structlog
from sqlalchemy.orm import Session, sessionmaker

from central.checkin import CheckinRules
from central.db import utcnow
from central.services.checkin import sweep_no_shows

log = structlog.get_logger(__name__)

DEFAULT_INTERVAL_S = 60.0


class NoShowSweeper:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        rules: CheckinRules | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self.rules = rules or CheckinRules()
        self.interval_s = interval_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep_once(self) -> list[int]:
        """One sweep; returns the ids of the bookings released now."""
        with self._sessions() as session, session.begin():
            released = [b.id for b in sweep_no_shows(session, self._clock(), self.rules)]
        if released:
            log.info("noshow.released", bookings=released)
        return released

    def start(self) -> NoShowSweeper:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="no-show-sweeper", daemon=True)
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
                log.exception("noshow.sweep_failed")
            self._stop.wait(self.interval_s)
