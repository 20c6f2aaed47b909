"""Clock times, durations and offsets as scenarios write them (19:45, 40s, 1h30m, +0:05), read and shown."""

from __future__ import annotations

import re
from datetime import time, timedelta


def _clock(text: str) -> time | None:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", text)
    if match is None:
        return None
    hours, minutes, seconds = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        return None
    return time(hours, minutes, seconds)


def _duration(text: str) -> timedelta | None:
    """40s, 5m, 1h30m, 90 (seconds), or H:MM / H:MM:SS."""
    text = text.strip()
    if re.fullmatch(r"\d+", text):
        return timedelta(seconds=int(text))
    match = re.fullmatch(r"(\d+):(\d{2})(?::(\d{2}))?", text)
    if match is not None:
        if int(match.group(2)) > 59 or int(match.group(3) or 0) > 59:
            return None
        return timedelta(
            hours=int(match.group(1)), minutes=int(match.group(2)), seconds=int(match.group(3) or 0)
        )
    match = re.fullmatch(r"(?:(\d+)h)?\s*(?:(\d+)m(?:in)?)?\s*(?:(\d+(?:\.\d+)?)s)?", text)
    if match is None or not any(match.groups()):
        return None
    hours, minutes, seconds = match.groups()
    return timedelta(hours=int(hours or 0), minutes=int(minutes or 0), seconds=float(seconds or 0))


def _seconds_of(clock: time) -> int:
    return clock.hour * 3600 + clock.minute * 60 + clock.second


def _format_offset(offset: timedelta) -> str:
    sign = "-" if offset < timedelta(0) else "+"
    total = int(abs(offset).total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{sign}{hours}:{minutes:02d}" + (f":{seconds:02d}" if seconds else "")


def _format_duration(duration: timedelta) -> str:
    total = duration.total_seconds()
    hours, rest = divmod(int(total), 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    frac = total - int(total)
    if seconds or frac or not any(parts):
        parts.append(f"{seconds + frac:g}s")
    return "".join(parts)
