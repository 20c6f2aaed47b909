"""What the booking system receives, and how it knows it came from us: pure, no I/O.

The body is JSON with sorted keys, so the bytes (and the signature) are the same on every retry. The
signature is HMAC-SHA256 over the body, keyed with the shared secret exactly as `meraapent central
webhook-secret` prints it (64 hex characters), in the header `X-Meraapent-Signature: sha256=<hex>`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from central.models import WebhookKind

SIGNATURE_HEADER = "X-Meraapent-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
KIND_HEADER = "X-Meraapent-Event"
SIGNATURE_PREFIX = "sha256="


@dataclass(frozen=True)
class BookingFacts:
    """The booking as the booking system knows it (`source`, `external_id`) and as it stands now."""

    id: int
    source: str
    external_id: str | None
    site: str
    room: str
    calendar_resource: str | None
    starts_at: datetime
    ends_at: datetime
    status: str
    checked_in_at: datetime | None


def rfc3339(moment: datetime) -> str:
    """UTC in RFC 3339 with a 'Z' (e.g. 2026-11-23T17:00:00Z)."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no place in a webhook; give an aware one")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def build_payload(
    event_id: str,
    kind: WebhookKind,
    booking: BookingFacts,
    occurred_at: datetime,
    *,
    previous_ends_at: datetime | None = None,
) -> dict[str, Any]:
    """The JSON document for one event; `previous_ends_at` goes with `extended` and `ended_early`."""
    body: dict[str, Any] = {
        "id": event_id,
        "kind": kind.value,
        "occurred_at": rfc3339(occurred_at),
        "booking": {
            "id": booking.id,
            "source": booking.source,
            "external_id": booking.external_id,
            "site": booking.site,
            "room": booking.room,
            "calendar_resource": booking.calendar_resource,
            "starts_at": rfc3339(booking.starts_at),
            "ends_at": rfc3339(booking.ends_at),
            "status": booking.status,
            "checked_in_at": None if booking.checked_in_at is None else rfc3339(booking.checked_in_at),
        },
    }
    if previous_ends_at is not None:
        body["previous_ends_at"] = rfc3339(previous_ends_at)
    return body


def encode(payload: dict[str, Any]) -> bytes:
    """The exact bytes POSTed: canonical JSON (sorted keys, no spaces), UTF-8."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for `body` under the shared secret (its text, as printed)."""
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """What a receiver does: does the header carry the signature of exactly these bytes?"""
    return header is not None and hmac.compare_digest(sign(secret, body), header.strip())


def headers(
    secret: str, event_id: str, kind: str, body: bytes, purpose: str = "booking webhook"
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": f"meraapent-central ({purpose})",
        SIGNATURE_HEADER: sign(secret, body),
        IDEMPOTENCY_HEADER: event_id,
        KIND_HEADER: kind,
    }
