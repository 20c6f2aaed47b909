"""The retention sweep `central serve` runs every hour (central.services.retention.apply_retention).

A thread of its own (central.periodic): a database hiccup is logged and the next round tries again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import structlog
from sqlalchemy.orm import Session, sessionmaker

from central.config import Settings
from central.db import utcnow
from central.periodic import PeriodicJob
from central.services.retention import RetentionReport, apply_retention

log = structlog.get_logger(__name__)

DEFAULT_INTERVAL_S = 3600.0


class RetentionSweeper(PeriodicJob):
    name = "retention-sweeper"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(interval_s)
        self._sessions = sessions
        self.settings = settings
        self._clock = clock

    def sweep_once(self) -> RetentionReport:
        """One sweep in one transaction; returns what it changed (counts only)."""
        with self._sessions() as session, session.begin():
            report = apply_retention(session, self.settings, self._clock())
        if report.changed:
            log.info("retention.applied", **vars(report))
        return report

    def run_once(self) -> RetentionReport:
        return self.sweep_once()
