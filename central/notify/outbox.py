"""The database side of notifications: notice new alarms (notify, fold or skip), escalate what nobody has
acknowledged, and the durable outbox (queue, what is due, the facts to send, what came of it, health, prune).

Every alarm is noticed exactly once (a `NoticedAlarm` row), whatever its kind, so a change to which kinds
need a person never reaches back into history. Whether a notification is acknowledged or over is read from
its alarms each time (an acknowledgement in the console or the API is all it takes to stop escalation and
any message not yet sent). The rules themselves are central.notify.rules (pure).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, exists, func, or_, select
from sqlalchemy.orm import Session

from central.config import Settings
from central.models import Alarm, AlarmNotification, NoticedAlarm, NotificationOutbox, NotifyChannel
from central.notify.message import AlarmFacts
from central.notify.rules import (
    Earlier,
    Rules,
    Standing,
    Verdict,
    escalation_due,
    finished,
    needs_person,
    place,
    worth_sending,
)
from central.webhooks.outbox import MAX_ERROR_LENGTH
from central.webhooks.policy import retry_delay

KEEP_SENT = timedelta(days=30)
NOTICE_BATCH = 500


def addresses(setting: str) -> list[str]:
    """A comma-separated list of e-mail addresses, blanks dropped."""
    return [a.strip() for a in setting.split(",") if a.strip()]


@dataclass(frozen=True)
class Channels:
    """Where a notification goes: e-mail to the caretaker on call, e-mail to the escalation addresses, the
    webhook (both the first notice and the escalation)."""

    email: bool = False
    escalation_email: bool = False
    webhook: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Channels:
        smtp = bool(settings.smtp_host.strip())
        return cls(
            email=smtp and bool(addresses(settings.notify_email)),
            escalation_email=smtp and bool(addresses(settings.notify_escalation_email)),
            webhook=bool(settings.notify_webhook_url.strip()),
        )

    def for_message(self, *, escalation: bool) -> list[NotifyChannel]:
        wanted = [NotifyChannel.EMAIL] if (self.escalation_email if escalation else self.email) else []
        return wanted + ([NotifyChannel.WEBHOOK] if self.webhook else [])


def queue(
    session: Session, notification_id: int, channels: Channels, now: datetime, *, escalation: bool
) -> int:
    """One outbox row per configured channel, in the caller's transaction; returns how many."""
    wanted = channels.for_message(escalation=escalation)
    for channel in wanted:
        session.add(
            NotificationOutbox(
                message_id=str(uuid.uuid4()),
                notification_id=notification_id,
                channel=channel,
                escalation=escalation,
                created_at=now,
                attempts=0,
                next_attempt_at=now,
            )
        )
    return len(wanted)


# --- where a notification stands --------------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    standing: Standing
    cleared_at: datetime | None  # when the last of its alarms cleared, if all have


def status(session: Session, notification: AlarmNotification) -> Status:
    total, acknowledged, cleared, last_cleared = session.execute(
        select(
            func.count(),
            func.count(Alarm.acknowledged_at),
            func.count(Alarm.cleared_at),
            func.max(Alarm.cleared_at),
        )
        .select_from(NoticedAlarm)
        .join(Alarm, Alarm.id == NoticedAlarm.alarm_id)
        .where(NoticedAlarm.notification_id == notification.id)
    ).one()
    all_cleared = total > 0 and cleared == total
    standing = Standing(notification.kind, acknowledged > 0, all_cleared)
    return Status(standing, last_cleared if all_cleared else None)


# --- noticing new alarms ----------------------------------------------------------------------------------


@dataclass
class Noticed:
    notified: list[int] = field(default_factory=list)  # alarm ids that opened a notification
    folded: list[int] = field(default_factory=list)
    skipped: int = 0
    queued: int = 0


def _earlier(session: Session, alarm: Alarm, now: datetime, rules: Rules) -> list[Earlier]:
    door = (
        AlarmNotification.door_id.is_(None)
        if alarm.door_id is None
        else AlarmNotification.door_id == alarm.door_id
    )
    rows = session.scalars(
        select(AlarmNotification).where(
            AlarmNotification.site_id == alarm.site_id,
            AlarmNotification.kind == alarm.kind,
            door,
            AlarmNotification.created_at > now - rules.fold_window,
        )
    ).all()
    return [Earlier(n.id, n.created_at, status(session, n).standing.acknowledged) for n in rows]


def notice_new_alarms(
    session: Session, now: datetime, rules: Rules, channels: Channels, limit: int = NOTICE_BATCH
) -> Noticed:
    """Look at every alarm not seen before, oldest first: a new notification (queued), a repeat folded into
    an earlier one, or nothing to tell."""
    seen = exists().where(NoticedAlarm.alarm_id == Alarm.id)
    alarms = session.scalars(select(Alarm).where(~seen).order_by(Alarm.id).limit(limit)).all()
    done = Noticed()
    for alarm in alarms:
        standing = Standing(alarm.kind, alarm.acknowledged_at is not None, alarm.cleared_at is not None)
        earlier = _earlier(session, alarm, now, rules) if needs_person(alarm.kind) else []
        placement = place(standing, earlier, now, rules)
        notification_id: int | None = None
        if placement.verdict is Verdict.NOTIFY:
            notification = AlarmNotification(
                alarm_id=alarm.id,
                site_id=alarm.site_id,
                door_id=alarm.door_id,
                kind=alarm.kind,
                created_at=now,
                repeats=0,
            )
            session.add(notification)
            session.flush()
            notification_id = notification.id
            done.notified.append(alarm.id)
        elif placement.verdict is Verdict.FOLD and placement.into is not None:
            _fold(session, placement.into, alarm)
            notification_id = placement.into
            done.folded.append(alarm.id)
        else:
            done.skipped += 1
        session.add(NoticedAlarm(alarm_id=alarm.id, notification_id=notification_id, noticed_at=now))
        if placement.verdict is Verdict.NOTIFY and notification_id is not None:
            done.queued += queue(session, notification_id, channels, now, escalation=False)
        session.flush()
    return done


def _fold(session: Session, notification_id: int, alarm: Alarm) -> None:
    """Count a repeat; a notification not escalated yet is open again (the repeat may still be active)."""
    notification = session.get_one(AlarmNotification, notification_id)
    notification.repeats += 1
    last = notification.last_repeat_at
    notification.last_repeat_at = alarm.raised_at if last is None else max(last, alarm.raised_at)
    if notification.escalated_at is None:
        notification.closed_at = None


# --- escalation -------------------------------------------------------------------------------------------


@dataclass
class Escalated:
    escalated: list[int] = field(default_factory=list)  # notification ids
    closed: int = 0
    queued: int = 0


def escalate(session: Session, now: datetime, rules: Rules, channels: Channels) -> Escalated:
    """Escalate each open notification nobody has acknowledged in time (once), and close the ones that
    need nothing more (acknowledged, or a passing state that is over)."""
    done = Escalated()
    open_ones = session.scalars(
        select(AlarmNotification).where(AlarmNotification.closed_at.is_(None)).order_by(AlarmNotification.id)
    ).all()
    for notification in open_ones:
        standing = status(session, notification).standing
        escalated = notification.escalated_at is not None
        if not escalated and escalation_due(standing, notification.created_at, now, rules):
            notification.escalated_at = now
            notification.closed_at = now
            done.escalated.append(notification.id)
            done.queued += queue(session, notification.id, channels, now, escalation=True)
        elif finished(standing, escalated):
            notification.closed_at = now
            done.closed += 1
    return done


# --- the outbox -------------------------------------------------------------------------------------------


def _pending() -> ColumnElement[bool]:
    return and_(NotificationOutbox.delivered_at.is_(None), NotificationOutbox.cancelled_at.is_(None))


@dataclass(frozen=True)
class Due:
    id: int
    channel: NotifyChannel


def next_batch(session: Session, now: datetime, limit: int = 50) -> list[Due]:
    """Messages to send now, oldest first: new ones at once, failed ones when their backoff is over."""
    rows = session.execute(
        select(NotificationOutbox.id, NotificationOutbox.channel)
        .where(
            _pending(),
            or_(NotificationOutbox.attempts == 0, NotificationOutbox.next_attempt_at <= now),
        )
        .order_by(NotificationOutbox.id)
        .limit(limit)
    ).all()
    return [Due(row_id, channel) for row_id, channel in rows]


@dataclass(frozen=True)
class Ready:
    """One message to send now, with everything it says (plain values: it is sent outside a transaction)."""

    id: int
    message_id: str
    channel: NotifyChannel
    escalation: bool
    facts: AlarmFacts


def ready(session: Session, row_id: int, now: datetime) -> Ready | None:
    """The message with its facts as they stand now, or None (and the row cancelled) when it is no longer
    news: acknowledged meanwhile, or a passing state that is over."""
    row = session.get(NotificationOutbox, row_id)
    if row is None or row.delivered_at is not None or row.cancelled_at is not None:
        return None
    notification = row.notification
    state = status(session, notification)
    if not worth_sending(state.standing):
        row.cancelled_at = now
        return None
    alarm, site, door = notification.alarm, notification.site, notification.door
    facts = AlarmFacts(
        alarm_id=alarm.id,
        kind=notification.kind,
        severity=alarm.severity.value,
        site=site.slug,
        site_name=site.name,
        timezone=site.timezone,
        door=None if door is None else door.slug,
        door_name=None if door is None else door.name,
        raised_at=alarm.raised_at,
        cleared_at=state.cleared_at,
        repeats=notification.repeats,
        last_repeat_at=notification.last_repeat_at,
    )
    return Ready(row.id, row.message_id, row.channel, row.escalation, facts)


def mark_delivered(session: Session, row_id: int, now: datetime) -> None:
    row = session.get_one(NotificationOutbox, row_id)
    row.attempts += 1
    row.last_attempt_at = now
    row.delivered_at = now


def mark_failed(session: Session, row_id: int, now: datetime, error: str) -> datetime:
    """Keep the reason and try again after the booking webhooks' backoff (30 s doubling up to an hour)."""
    row = session.get_one(NotificationOutbox, row_id)
    row.attempts += 1
    row.last_attempt_at = now
    row.last_error = error[:MAX_ERROR_LENGTH]
    row.next_attempt_at = now + retry_delay(row.attempts)
    return row.next_attempt_at


def cancel(session: Session, row_id: int, now: datetime, reason: str) -> None:
    """Give up on a message that can never go (its channel is no longer configured), saying why."""
    row = session.get_one(NotificationOutbox, row_id)
    row.cancelled_at = now
    row.last_error = reason[:MAX_ERROR_LENGTH]


def prune(session: Session, now: datetime, keep: timedelta = KEEP_SENT) -> int:
    """Delete messages delivered or cancelled more than `keep` ago; pending ones are never pruned."""
    old = now - keep
    result = session.execute(
        delete(NotificationOutbox).where(
            or_(NotificationOutbox.delivered_at < old, NotificationOutbox.cancelled_at < old)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class Health:
    pending: int
    failing: int  # pending messages that have failed at least once
    oldest_pending_at: datetime | None
    next_attempt_at: datetime | None
    last_error: str | None  # "e-mail: ..." or "webhook: ..."
    last_error_at: datetime | None
    last_delivered_at: datetime | None
    open_notifications: int  # not yet acknowledged, escalated or over


def health(session: Session) -> Health:
    pending = _pending()
    count, oldest, soonest = session.execute(
        select(
            func.count(),
            func.min(NotificationOutbox.created_at),
            func.min(NotificationOutbox.next_attempt_at),
        ).where(pending)
    ).one()
    failing = session.scalar(select(func.count()).where(pending, NotificationOutbox.attempts > 0)) or 0
    last_failed = session.execute(
        select(NotificationOutbox.channel, NotificationOutbox.last_error, NotificationOutbox.last_attempt_at)
        .where(pending, NotificationOutbox.last_error.is_not(None))
        .order_by(NotificationOutbox.last_attempt_at.desc(), NotificationOutbox.id.desc())
        .limit(1)
    ).first()
    delivered = session.scalar(select(func.max(NotificationOutbox.delivered_at)))
    open_count = session.scalar(select(func.count()).where(AlarmNotification.closed_at.is_(None))) or 0
    return Health(
        pending=int(count),
        failing=int(failing),
        oldest_pending_at=oldest,
        next_attempt_at=soonest,
        last_error=None if last_failed is None else f"{channel_words(last_failed[0])}: {last_failed[1]}",
        last_error_at=None if last_failed is None else last_failed[2],
        last_delivered_at=delivered,
        open_notifications=int(open_count),
    )


def channel_words(channel: NotifyChannel) -> str:
    return "e-mail" if channel is NotifyChannel.EMAIL else "webhook"
