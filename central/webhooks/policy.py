"""When a failed delivery is tried again: exponential backoff, capped, so a booking system that is down
for a day gets a knock an hour instead of a flood, and one that is back gets its events within minutes."""

from __future__ import annotations

from datetime import timedelta

FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(hours=1)
_MAX_DOUBLINGS = 20  # 30 s * 2**20 is far beyond any cap; stops the power from growing without bound


def retry_delay(attempts: int, first: timedelta = FIRST_RETRY, cap: timedelta = MAX_RETRY) -> timedelta:
    """How long to wait after the `attempts`-th failed attempt (1 → `first`, then doubling up to `cap`)."""
    if attempts < 1:
        raise ValueError(f"a retry follows at least one failed attempt, got attempts={attempts}")
    delay: timedelta = first * (2 ** min(attempts - 1, _MAX_DOUBLINGS))
    return min(delay, cap)


def is_delivered(status: int) -> bool:
    """Only a 2xx answer means the booking system took the event; a redirect or error is tried again."""
    return 200 <= status < 300
