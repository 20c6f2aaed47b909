"""The `Notifier` job `central serve` runs: every ~10 s it watches the agents, notices new alarms, escalates
what nobody has acknowledged, and sends what is due from the outbox.

Each step has its own short transaction; no transaction is open while an e-mail or a POST is in flight. A
channel that fails ends that channel's sending for the round (a mail server that is down gets one knock per
round, not one per message), and its messages wait with the booking webhooks' backoff. Before each message
the notifier reads its alarms again, so an acknowledgement made a second earlier stops it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.orm import Session, sessionmaker

from central.config import Settings
from central.db import utcnow
from central.models import NotifyChannel
from central.notify import message, outbox
from central.notify.rules import Rules
from central.notify.senders import Delivery, HttpxPoster, Mailer, SmtpMailer, notify_webhook_secret
from central.notify.watch import Watched, watch_agents
from central.periodic import PeriodicJob
from central.webhooks import payload
from central.webhooks.sender import Poster, url_host, webhook_url

log = structlog.get_logger(__name__)

DEFAULT_INTERVAL_S = 10.0
PRUNE_EVERY = timedelta(hours=1)
WEBHOOK_SETTING = "MERAAPENT_NOTIFY_WEBHOOK_URL"


@dataclass
class Sent:
    delivered: int = 0
    failed: int = 0
    cancelled: int = 0


@dataclass
class NotifyRound:
    """What one round did (counts and ids only: for tests and logs)."""

    watched: Watched = field(default_factory=Watched)
    noticed: outbox.Noticed = field(default_factory=outbox.Noticed)
    escalated: outbox.Escalated = field(default_factory=outbox.Escalated)
    sent: Sent = field(default_factory=Sent)
    pruned: int = 0


class Notifier(PeriodicJob):
    name = "notifier"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        *,
        mailer: Mailer | None = None,
        poster: Poster | None = None,
        clock: Callable[[], datetime] = utcnow,
        interval_s: float = DEFAULT_INTERVAL_S,
        rules: Rules | None = None,
        batch_size: int = 50,
    ) -> None:
        super().__init__(interval_s)
        self._sessions = sessions
        self.settings = settings
        self.rules = rules or Rules.from_settings(settings)
        self.channels = outbox.Channels.from_settings(settings)
        self.grace = timedelta(minutes=settings.agent_offline_alarm_minutes)
        self.url = webhook_url(settings.notify_webhook_url, WEBHOOK_SETTING) if self.channels.webhook else ""
        self._secret = notify_webhook_secret(settings) if self.channels.webhook else ""
        self._mail = mailer or (SmtpMailer.from_settings(settings) if settings.smtp_host.strip() else None)
        self._post = poster or HttpxPoster()
        self._clock = clock
        self.batch_size = batch_size
        self._last_prune: datetime | None = None

    def run_once(self) -> NotifyRound:
        done = NotifyRound()
        now = self._clock()
        with self._sessions() as session, session.begin():
            done.watched = watch_agents(session, now, self.grace)
        with self._sessions() as session, session.begin():
            done.noticed = outbox.notice_new_alarms(session, now, self.rules, self.channels)
        with self._sessions() as session, session.begin():
            done.escalated = outbox.escalate(session, now, self.rules, self.channels)
        done.sent = self.send_due()
        if self._last_prune is None or now - self._last_prune >= PRUNE_EVERY:
            with self._sessions() as session, session.begin():
                done.pruned = outbox.prune(session, now)
            self._last_prune = now
        return done

    def send_due(self) -> Sent:
        """Every due message once, oldest first, until a channel fails (that channel then waits)."""
        sent = Sent()
        with self._sessions() as session, session.begin():
            batch = outbox.next_batch(session, self._clock(), self.batch_size)
        failed: set[NotifyChannel] = set()
        for due in batch:
            if self.stopping:
                break
            if due.channel in failed:
                continue
            with self._sessions() as session, session.begin():
                ready = outbox.ready(session, due.id, self._clock())
            if ready is None:
                sent.cancelled += 1
                continue
            delivery = self._deliver(ready)
            if delivery is None:
                sent.cancelled += 1
            elif delivery.ok:
                sent.delivered += 1
            else:
                sent.failed += 1
                failed.add(due.channel)
        return sent

    def _deliver(self, ready: outbox.Ready) -> Delivery | None:
        """Send one message and record what came of it; None when its channel is no longer configured."""
        unusable = self._unusable(ready)
        if unusable is not None:
            with self._sessions() as session, session.begin():
                outbox.cancel(session, ready.id, self._clock(), unusable)
            log.warning("notify.cancelled", channel=ready.channel.value, reason=unusable)
            return None
        delivery = self._email(ready) if ready.channel is NotifyChannel.EMAIL else self._webhook(ready)
        now = self._clock()
        context: dict[str, Any] = {
            "channel": ready.channel.value,
            "escalation": ready.escalation,
            "site": ready.facts.site,
            "kind": ready.facts.kind,
        }
        with self._sessions() as session, session.begin():
            if delivery.ok:
                outbox.mark_delivered(session, ready.id, now)
                log.info("notify.sent", **context)
            else:
                retry_at = outbox.mark_failed(session, ready.id, now, delivery.error or "no answer")
                log.warning("notify.failed", error=delivery.error, retry_at=retry_at, **context)
        return delivery

    def _recipients(self, ready: outbox.Ready) -> list[str]:
        setting = self.settings.notify_escalation_email if ready.escalation else self.settings.notify_email
        return outbox.addresses(setting)

    def _unusable(self, ready: outbox.Ready) -> str | None:
        if ready.channel is NotifyChannel.EMAIL:
            if self._mail is None:
                return "e-mail is no longer configured (MERAAPENT_SMTP_HOST is empty)"
            if not self._recipients(ready):
                which = "MERAAPENT_NOTIFY_ESCALATION_EMAIL" if ready.escalation else "MERAAPENT_NOTIFY_EMAIL"
                return f"no e-mail address to send to ({which} is empty)"
        elif not self.url:
            return f"the webhook is no longer configured ({WEBHOOK_SETTING} is empty)"
        return None

    def _email(self, ready: outbox.Ready) -> Delivery:
        assert self._mail is not None  # checked by _unusable
        mail = message.email(
            ready.facts,
            sender=self.settings.smtp_from,
            recipients=self._recipients(ready),
            message_id=ready.message_id,
            escalated=ready.escalation,
            escalate_minutes=self.settings.notify_escalate_minutes,
            url=message.console_url(self.settings.public_url),
        )
        return self._mail(mail)

    def _webhook(self, ready: outbox.Ready) -> Delivery:
        document = message.webhook_payload(
            ready.message_id,
            ready.facts,
            self._clock(),
            escalated=ready.escalation,
            escalate_minutes=self.settings.notify_escalate_minutes,
            url=message.console_url(self.settings.public_url),
        )
        body = payload.encode(document)
        headers = payload.headers(
            self._secret, ready.message_id, document["kind"], body, purpose="alarm notification"
        )
        result = self._post(self.url, body, headers)
        return Delivery(True) if result.delivered else Delivery(False, result.error or "no answer")

    def _started(self) -> None:
        log.info(
            "notify.started",
            email=self.channels.email,
            escalation_email=self.channels.escalation_email,
            webhook=url_host(self.url) if self.url else None,
        )

    def stop(self, timeout_s: float = 25.0) -> None:
        """Stop after the message in hand (bounded by the senders' timeouts)."""
        super().stop(timeout_s)


def start_for_settings(sessions: sessionmaker[Session], settings: Settings, **kwargs: Any) -> Notifier:
    """The running notifier. Always started: the agent watch raises agent_offline alarms for the console
    even when neither e-mail nor a webhook is configured (then nothing is sent)."""
    return Notifier(sessions, settings, **kwargs).start()
