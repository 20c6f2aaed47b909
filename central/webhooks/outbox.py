"""The outbox in the database: queue an event with the booking change, hand the sender what is due, record
what came of each attempt, prune what was delivered long ago, and tell admins how it is going.

Only one sender works the outbox (the one in `central serve`). A booking's events go out in the order they
happened: while an earlier one waits for a retry, the later ones wait behind it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from central.models import Booking, WebhookKind, WebhookOutbox
from central.webhooks.payload import BookingFacts, build_payload
from central.webhooks.policy import retry_delay

KEEP_DELIVERED = timedelta(days=30)
MAX_ERROR_LENGTH = 500  # the last_error column
_LOOKAHEAD = 10  # pending rows read per row wanted: the earlier events of a booking may still be waiting


def facts_of(booking: Booking) -> BookingFacts:
    return BookingFacts(
        id=booking.id,
        source=booking.source,
        external_id=booking.external_id,
        site=booking.room.site.slug,
        room=booking.room.slug,
        calendar_resource=booking.room.calendar_resource,
        starts_at=booking.starts_at,
        ends_at=booking.ends_at,
        status=booking.status.value,
        checked_in_at=booking.checked_in_at,
    )


def queue_booking_event(
    session: Session,
    kind: WebhookKind,
    booking: Booking,
    now: datetime,
    *,
    previous_ends_at: datetime | None = None,
) -> WebhookOutbox:
    """Queue the event in the caller's transaction: it goes out if and only if the change commits."""
    event_id = str(uuid.uuid4())
    payload = build_payload(event_id, kind, facts_of(booking), now, previous_ends_at=previous_ends_at)
    row = WebhookOutbox(
        event_id=event_id,
        kind=kind,
        booking_id=booking.id,
        payload=payload,
        created_at=now,
        attempts=0,
        next_attempt_at=now,
    )
    session.add(row)
    return row


@dataclass(frozen=True)
class Pending:
    """One event to send now (plain values: the sender posts it outside any transaction)."""

    id: int
    event_id: str
    kind: str
    payload: dict[str, Any]


def next_batch(session: Session, now: datetime, limit: int = 50) -> list[Pending]:
    """Up to `limit` events due now, oldest first, each the earliest undelivered event of its booking.

    A new event is due at once, whatever the clock of the change said (an agent's device time may run
    ahead); a failed one when its backoff is over.
    """
    rows = session.scalars(
        select(WebhookOutbox)
        .where(WebhookOutbox.delivered_at.is_(None))
        .order_by(WebhookOutbox.id)
        .limit(limit * _LOOKAHEAD)
    ).all()
    batch: list[Pending] = []
    waiting: set[int] = set()
    for row in rows:
        blocked = row.booking_id is not None and row.booking_id in waiting
        if row.booking_id is not None:
            waiting.add(row.booking_id)
        if not blocked and (row.attempts == 0 or row.next_attempt_at <= now):
            batch.append(Pending(row.id, row.event_id, row.kind.value, dict(row.payload)))
            if len(batch) == limit:
                break
    return batch


def mark_delivered(session: Session, row_id: int, now: datetime) -> None:
    row = session.get(WebhookOutbox, row_id)
    if row is not None:
        row.attempts += 1
        row.last_attempt_at = now
        row.delivered_at = now


def mark_failed(session: Session, row_id: int, now: datetime, error: str) -> datetime | None:
    """Keep the error and set the next attempt by the backoff policy; returns when that is."""
    row = session.get(WebhookOutbox, row_id)
    if row is None:
        return None
    row.attempts += 1
    row.last_attempt_at = now
    row.last_error = error[:MAX_ERROR_LENGTH]
    row.next_attempt_at = now + retry_delay(row.attempts)
    return row.next_attempt_at


def prune_delivered(session: Session, now: datetime, keep: timedelta = KEEP_DELIVERED) -> int:
    """Delete events delivered more than `keep` ago; undelivered ones are never pruned."""
    result = session.execute(
        delete(WebhookOutbox).where(
            WebhookOutbox.delivered_at.is_not(None), WebhookOutbox.delivered_at < now - keep
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class OutboxHealth:
    pending: int
    failing: int  # pending events that have failed at least once
    oldest_pending_at: datetime | None
    next_attempt_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    last_delivered_at: datetime | None


def health(session: Session) -> OutboxHealth:
    pending = WebhookOutbox.delivered_at.is_(None)
    count, oldest, soonest = session.execute(
        select(
            func.count(), func.min(WebhookOutbox.created_at), func.min(WebhookOutbox.next_attempt_at)
        ).where(pending)
    ).one()
    failing = session.scalar(select(func.count()).where(pending, WebhookOutbox.attempts > 0)) or 0
    last_failed = session.execute(
        select(WebhookOutbox.last_error, WebhookOutbox.last_attempt_at)
        .where(pending, WebhookOutbox.last_error.is_not(None))
        .order_by(WebhookOutbox.last_attempt_at.desc(), WebhookOutbox.id.desc())
        .limit(1)
    ).first()
    delivered = session.scalar(select(func.max(WebhookOutbox.delivered_at)))
    return OutboxHealth(
        pending=int(count),
        failing=int(failing),
        oldest_pending_at=oldest,
        next_attempt_at=soonest,
        last_error=None if last_failed is None else last_failed[0],
        last_error_at=None if last_failed is None else last_failed[1],
        last_delivered_at=delivered,
    )
