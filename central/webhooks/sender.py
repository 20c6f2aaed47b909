"""POSTing the outbox to the booking system: a small HTTP poster and the thread `central serve` runs.

The standard library's http.client is enough (one POST at a time from one thread) and follows no
redirects: anything but 2xx is a failure kept in the row and tried again later. The URL may carry a
token, so messages and logs name only its host. No transaction is open while a POST is in flight.
"""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import structlog
from sqlalchemy.orm import Session, sessionmaker

from central.config import ConfigError, Settings, read_or_create_secret
from central.db import utcnow
from central.periodic import PeriodicJob
from central.webhooks import outbox, payload
from central.webhooks.policy import is_delivered

log = structlog.get_logger(__name__)

WEBHOOK_KEY_FILE = "webhook.key"
WEBHOOK_KEY_BYTES = 32
DEFAULT_INTERVAL_S = 5.0
DEFAULT_TIMEOUT_S = 10.0
PRUNE_EVERY = timedelta(hours=1)
MAX_ANSWER_BYTES = 64 * 1024  # read (and drop) at most this much of an answer


def webhook_secret(settings: Settings) -> str:
    """The shared signing secret as text (64 hex characters), made on first use in the secrets dir."""
    return read_or_create_secret(settings.secrets_dir / WEBHOOK_KEY_FILE, WEBHOOK_KEY_BYTES).hex()


def webhook_url(url: str, setting: str = "MERAAPENT_BOOKING_WEBHOOK_URL") -> str:
    """The URL if it is http(s) with a host; ConfigError naming the setting otherwise."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{setting} must be an http:// or https:// address with a host")
    return url.strip()


def url_host(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname or "?"


@dataclass(frozen=True)
class PostResult:
    """The answer's status, or None with the reason when no answer came."""

    status: int | None
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and is_delivered(self.status)


Poster = Callable[[str, bytes, Mapping[str, str]], PostResult]


@dataclass(frozen=True)
class HttpPoster:
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str]) -> PostResult:
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            context = ssl.create_default_context()
            connection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=self.timeout_s, context=context
            )
        else:
            connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=self.timeout_s)
        try:
            connection.request("POST", path, body=body, headers=dict(headers))
            answer = connection.getresponse()
            answer.read(MAX_ANSWER_BYTES)
            return PostResult(answer.status, None if is_delivered(answer.status) else _status_text(answer))
        except (OSError, http.client.HTTPException) as exc:
            return PostResult(None, f"no answer from {url_host(url)}: {_reason(exc)}")
        finally:
            connection.close()


def _status_text(answer: http.client.HTTPResponse) -> str:
    return f"HTTP {answer.status} {answer.reason}".strip()


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).splitlines()[0]


@dataclass
class SendRound:
    delivered: list[str] = field(default_factory=list)  # event ids
    failed: list[str] = field(default_factory=list)
    pruned: int = 0


class WebhookSender(PeriodicJob):
    """Sends due outbox events every `interval_s` (sooner after `poke()`); a failure ends the round, so a
    booking system that is down is knocked on once per round, not once per event."""

    name = "webhook-sender"

    def __init__(
        self,
        sessions: sessionmaker[Session],
        url: str,
        secret: str,
        *,
        poster: Poster | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        batch_size: int = 50,
        clock: Callable[[], datetime] = utcnow,
        keep_delivered: timedelta = outbox.KEEP_DELIVERED,
    ) -> None:
        super().__init__(interval_s)
        self._sessions = sessions
        self.url = webhook_url(url)
        self._secret = secret
        self._post = poster or HttpPoster()
        self.batch_size = batch_size
        self._clock = clock
        self.keep_delivered = keep_delivered
        self._last_prune: datetime | None = None

    def send_once(self) -> SendRound:
        """One round: every due event in turn until none is left or one fails; then prune, at most once an
        hour. A booking's later event becomes due in the next batch, once its earlier one is delivered."""
        done = SendRound()
        failed = False
        while not failed and not self.stopping:
            with self._sessions() as session, session.begin():
                batch = outbox.next_batch(session, self._clock(), self.batch_size)
            if not batch:
                break
            for event in batch:
                if not self._deliver(event, done):
                    failed = True
                    break
        now = self._clock()
        if self._last_prune is None or now - self._last_prune >= PRUNE_EVERY:
            with self._sessions() as session, session.begin():
                done.pruned = outbox.prune_delivered(session, now, self.keep_delivered)
            self._last_prune = now
        return done

    def _deliver(self, event: outbox.Pending, done: SendRound) -> bool:
        body = payload.encode(event.payload)
        result = self._post(self.url, body, payload.headers(self._secret, event.event_id, event.kind, body))
        now = self._clock()
        if result.delivered:
            with self._sessions() as session, session.begin():
                outbox.mark_delivered(session, event.id, now)
            done.delivered.append(event.event_id)
            log.info("webhook.delivered", event_id=event.event_id, kind=event.kind)
            return True
        with self._sessions() as session, session.begin():
            retry_at = outbox.mark_failed(session, event.id, now, result.error or "no answer")
        done.failed.append(event.event_id)
        log.warning("webhook.failed", event_id=event.event_id, error=result.error, retry_at=retry_at)
        return False

    def run_once(self) -> SendRound:
        return self.send_once()

    def _started(self) -> None:
        log.info("webhook.sender_started", host=url_host(self.url))

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop after the POST in hand (bounded by the poster's timeout)."""
        super().stop(timeout_s)


def start_for_settings(
    sessions: sessionmaker[Session], settings: Settings, **kwargs: Any
) -> WebhookSender | None:
    """The running sender when a webhook URL is configured, else None (events then wait in the outbox)."""
    if not settings.booking_webhook_url:
        return None
    return WebhookSender(sessions, settings.booking_webhook_url, webhook_secret(settings), **kwargs).start()
