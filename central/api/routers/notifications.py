"""/notifications: is the caretaker on call being told about alarms (e-mail, webhook)?"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import Field

from central.api.auth import Staff
from central.api.deps import AppSettings, DbSession
from central.api.routers.common import Output
from central.db import utcnow
from central.notify import outbox
from central.webhooks.sender import url_host


class ChannelOut(Output):
    configured: bool
    host: str | None = Field(
        description="The mail server or webhook receiver (never a path, token or address)."
    )
    recipients: int = Field(0, description="How many e-mail addresses (e-mail channels only).")


class NotificationOutboxOut(Output):
    email: ChannelOut = Field(description="E-mail to the caretaker on call (MERAAPENT_NOTIFY_EMAIL).")
    escalation_email: ChannelOut = Field(description="E-mail when nobody acknowledges in time.")
    webhook: ChannelOut = Field(description="The webhook (MERAAPENT_NOTIFY_WEBHOOK_URL).")
    escalate_minutes: int
    pending: int = Field(description="Messages not yet taken by the mail server or the receiver.")
    failing: int = Field(description="Pending messages that have failed at least once (tried again later).")
    oldest_pending_at: datetime | None
    oldest_pending_age_seconds: int | None
    next_attempt_at: datetime | None
    last_error: str | None = Field(description="The latest failure among pending messages, in words.")
    last_error_at: datetime | None
    last_delivered_at: datetime | None
    open_notifications: int = Field(description="Notifications not yet acknowledged, escalated or over.")


router = APIRouter(prefix="/notifications", tags=["notifications"])


@router.get("/outbox", summary="Are alarm notifications reaching the caretaker on call?")
def outbox_health(session: DbSession, _: Staff, settings: AppSettings) -> NotificationOutboxOut:
    state = outbox.health(session)
    channels = outbox.Channels.from_settings(settings)
    smtp_host = f"{settings.smtp_host}:{settings.smtp_port}" if settings.smtp_host.strip() else None
    url = settings.notify_webhook_url.strip()
    oldest = state.oldest_pending_at
    return NotificationOutboxOut(
        email=ChannelOut(
            configured=channels.email, host=smtp_host, recipients=len(outbox.addresses(settings.notify_email))
        ),
        escalation_email=ChannelOut(
            configured=channels.escalation_email,
            host=smtp_host,
            recipients=len(outbox.addresses(settings.notify_escalation_email)),
        ),
        webhook=ChannelOut(configured=channels.webhook, host=url_host(url) if url else None),
        escalate_minutes=settings.notify_escalate_minutes,
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
        open_notifications=state.open_notifications,
    )
