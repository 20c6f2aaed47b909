"""The background thread `central serve` runs next to the API: every interval, sync every enabled feed.

One thread is plenty (a feed is one small GET every few minutes) and keeps SQLite free of concurrent
writers from here. Nothing a feed does, nor a database outage, ends the thread: the round is logged and the
next one comes at the next interval.
"""

from __future__ import annotations

from typing import Any

import structlog

from central.feeds.sync import FeedSyncer, SyncResult
from central.periodic import PeriodicJob

log = structlog.get_logger(__name__)

DEFAULT_INTERVAL_S = 300.0
THREAD_NAME = "feed-poller"


class FeedPoller(PeriodicJob):
    """Polls with `syncer` every `interval_s` seconds, the first round right after `start()`."""

    name = THREAD_NAME

    def __init__(self, syncer: FeedSyncer, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        if interval_s <= 0:
            raise ValueError(f"the feed poll interval must be positive, got {interval_s:g} s")
        super().__init__(interval_s)
        self.syncer = syncer
        self.rounds = 0

    def _started(self) -> None:
        log.info("feeds.poller_started", interval_s=self.interval_s)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop after the feed in hand (a fetch is bounded by its timeout)."""
        super().stop(timeout_s)

    def run_once(self) -> list[SyncResult]:
        return self.poll_once()

    def poll_once(self) -> list[SyncResult]:
        """One round over every enabled feed (what the thread does each interval)."""
        results = self.syncer.sync_all()
        self.rounds += 1
        failed = [r.feed_id for r in results if r.outcome == "failed"]
        if failed:
            log.warning("feeds.round_done", feeds=len(results), failed=failed)
        return results


def start_for_app(app: Any, interval_s: float = DEFAULT_INTERVAL_S) -> FeedPoller:
    """Start polling with the API app's sessions; "sync now" requests then share the poller's syncer."""
    syncer = FeedSyncer(app.state.session_factory)
    app.state.feed_syncer = syncer
    return FeedPoller(syncer, interval_s).start()
