"""/webhooks: how the booking system is being told about check-ins, no-shows, extensions and early ends."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import Field

from central.api.auth import Staff
from central.api.deps import AppSettings, DbSession
from central.api.routers.common import Output
from central.db import utcnow
from central.webhooks import outbox
from central.webhooks.sender import url_host

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


class OutboxHealthOut(Output):
    configured: bool = Field(description="Whether MERAAPENT_BOOKING_WEBHOOK_URL is set (else events wait).")
    host: str | None = Field(description="The receiver's host (never its path, which may hold a token).")
    pending: int = Field(description="Events not yet accepted by the booking system.")
    failing: int = Field(description="Pending events that have failed at least once.")
    oldest_pending_at: datetime | None
    oldest_pending_age_seconds: int | None
    next_attempt_at: datetime | None
    last_error: str | None = Field(description="The latest failure among pending events.")
    last_error_at: datetime | None
    last_delivered_at: datetime | None


@router.get("/outbox", summary="Is the booking system hearing about booking changes?")
def outbox_health(session: DbSession, _: Staff, settings: AppSettings) -> OutboxHealthOut:
    state = outbox.health(session)
    oldest = state.oldest_pending_at
    url = settings.booking_webhook_url
    return OutboxHealthOut(
        configured=bool(url),
        host=url_host(url) if url else None,
        pending=state.pending,
        failing=state.failing,
        oldest_pending_at=oldest,
        oldest_pending_age_seconds=None
        if oldest is None
        else max(0, int((utcnow() - oldest).total_seconds())),
        next_attempt_at=state.next_attempt_at,
        last_error=state.last_error,
        last_error_at=state.last_error_at,
        last_delivered_at=state.last_delivered_at,
    )
