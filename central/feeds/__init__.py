"""Booking import from iCalendar feeds: fetch (conditional GET), parse (expand recurrences), sync.

A feed is one room's calendar or a whole site's; its events become bookings under source `ical:<feed id>`
through the same service calls the booking REST import uses. `central serve` polls every enabled feed in a
background thread (`FeedPoller`); an admin can sync one at once (POST /feeds/{id}/sync). A feed that fails
keeps its last good bookings and shows the failure, in plain words, in its status.
"""

from __future__ import annotations

from central.feeds.errors import FeedError
from central.feeds.poller import DEFAULT_INTERVAL_S, FeedPoller
from central.feeds.sync import FeedSyncer, SyncResult, feed_source

__all__ = ["DEFAULT_INTERVAL_S", "FeedError", "FeedPoller", "FeedSyncer", "SyncResult", "feed_source"]
