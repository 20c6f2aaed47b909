"""What retention makes due, given the settings and the time: pure, so the rules are easy to read and test.

Personal data is kept only as long as it is needed (issue #7, privacy by retention): identified access events
are pseudonymised, alarms and audit entries deleted, and ended bookings stripped of who held them. Anything
older than a cutoff is due; the service (central.services.retention) applies the cutoffs to the database.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta

from central.config import Settings

PSEUDONYM_KEY_FILE = "pseudonym.key"
PSEUDONYM_KEY_BYTES = 32
PSEUDONYM_PREFIX = "p:"  # marks a credential_ref that is already a pseudonym (so a second run skips it)


@dataclass(frozen=True)
class Cutoffs:
    """Rows from before these instants are due (events and audit by time, alarms raised, bookings ended)."""

    events: datetime
    alarms: datetime
    bookings: datetime
    audit: datetime


def cutoffs(settings: Settings, now: datetime) -> Cutoffs:
    return Cutoffs(
        events=now - timedelta(days=settings.event_retention_days),
        alarms=now - timedelta(days=settings.alarm_retention_days),
        bookings=now - timedelta(days=settings.booking_retention_days),
        audit=now - timedelta(days=settings.audit_retention_days),
    )


def pseudonym(key: bytes, credential_ref: str) -> str:
    """A stable stand-in for a credential reference: counts per credential still work, identity does not.

    Already pseudonymous references are returned unchanged, so pseudonymising twice changes nothing.
    """
    if is_pseudonym(credential_ref):
        return credential_ref
    digest = hmac.new(key, credential_ref.encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest


def is_pseudonym(credential_ref: str) -> bool:
    return credential_ref.startswith(PSEUDONYM_PREFIX)
