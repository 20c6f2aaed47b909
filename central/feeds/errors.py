"""The one error a feed can fail with, whatever went wrong: its text is what the admin reads."""

from __future__ import annotations


class FeedError(Exception):
    """Fetching or reading a feed failed; `str(exc)` is one line in plain words, safe to show and log."""
