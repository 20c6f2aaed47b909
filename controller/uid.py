"""The keyed hash of a card UID: how the agent looks a card up in the replica without keeping its UID.

It must give exactly central.security.card_uid_hash's value (HMAC-SHA256 over the raw UID bytes under the
uid-hash key, lowercase hex); tests/test_controller_pin.py checks both agree. Re-implemented rather than
imported because the controller must not depend on central.
"""

from __future__ import annotations

import hashlib
import hmac

UID_MIN_BYTES = 4
UID_MAX_BYTES = 16
MIN_KEY_BYTES = 16


class CardUidError(ValueError):
    """A UID that no contactless card has (wrong length): a reader fault, never looked up."""


def card_uid_hash(uid: bytes, key: bytes) -> str:
    """HMAC-SHA256 of the card's UID bytes as lowercase hex, the replica's `uid_hash`."""
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"UID hash key must be at least {MIN_KEY_BYTES} bytes, got {len(key)}")
    if not UID_MIN_BYTES <= len(uid) <= UID_MAX_BYTES:
        raise CardUidError(f"card UID must be {UID_MIN_BYTES}–{UID_MAX_BYTES} bytes, got {len(uid)}")
    return hmac.new(key, bytes(uid), hashlib.sha256).hexdigest()
