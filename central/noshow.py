"""The no-show sweep `central serve` runs every minute: confirmed bookings whose check-in window has
closed (`central.checkin.checkin_rules(settings)`) are released (their access ends at the site, the room is
free, the booking system is told through the webhook outbox) and counted as no-shows.

A thread of its own (central.periodic): a database hiccup is logged and the next round tries again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog
from sqlalchemy.orm import Session, sessionmaker

from central.checkin import CheckinRules
from central.db import utcnow
from central.periodic import PeriodicJob
from central.services.checkin import sweep_no_shows

log = structlog.get_logger(__name__)

DEFAULT_INTERVAL_S = 60.0


class NoShowSweeper(PeriodicJob):
    name = "no-show-sweeper"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        rules: CheckinRules | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(interval_s)
        self._sessions = sessions
        self.rules = rules or CheckinRules()
        self._clock = clock

    def sweep_once(self) -> list[int]:
        """One sweep; returns the ids of the bookings released now."""
        with self._sessions() as session, session.begin():
            released = [b.id for b in sweep_no_shows(session, self._clock(), self.rules)]
        if released:
            log.info("noshow.released", bookings=released)
        return released

    def run_once(self) -> list[int]:
        return self.sweep_once()
