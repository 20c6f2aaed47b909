"""The two ways out: an SMTP client (the standard library's smtplib) and a webhook poster (httpx).

Both answer with what came of it instead of raising, so the notifier keeps the reason in the outbox row and
tries again later. Messages and logs name only the server's host and port: never the password, nor a
webhook URL's path or query, which may carry a token.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage

import httpx
import structlog

from central.config import Settings, read_or_create_secret
from central.webhooks.sender import PostResult, url_host

log = structlog.get_logger(__name__)

NOTIFY_WEBHOOK_KEY_FILE = "notify-webhook.key"
NOTIFY_WEBHOOK_KEY_BYTES = 32
DEFAULT_TIMEOUT_S = 10.0


def notify_webhook_secret(settings: Settings) -> str:
    """The alarm webhook's signing secret (64 hex characters), made on first use: the receiver verifies
    X-Meraapent-Signature with the text of <data_dir>/secrets/notify-webhook.key."""
    return read_or_create_secret(
        settings.secrets_dir / NOTIFY_WEBHOOK_KEY_FILE, NOTIFY_WEBHOOK_KEY_BYTES
    ).hex()


@dataclass(frozen=True)
class Delivery:
    """Taken by the server (`ok`), or the reason it was not, in words."""

    ok: bool
    error: str | None = None


Mailer = Callable[[EmailMessage], Delivery]


def _first_line(exc: BaseException) -> str:
    words = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(words).splitlines()[0]


@dataclass(frozen=True)
class SmtpMailer:
    """Sends one e-mail per call over a fresh connection: plain (`none`), upgraded with STARTTLS, or TLS from
    the first byte (`tls`, usually port 465); signs in only when a username is set. `context` decides which
    certificates are trusted (the system's by default)."""

    host: str
    port: int
    security: str = "starttls"
    username: str = ""
    password: str = field(default="", repr=False)
    timeout_s: float = DEFAULT_TIMEOUT_S
    context: ssl.SSLContext | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpMailer:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=settings.smtp_password,
        )

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def __call__(self, message: EmailMessage) -> Delivery:
        try:
            with self._connect() as client:
                if self.security == "starttls":
                    client.starttls(context=self._context())
                    client.ehlo()
                if self.username:
                    client.login(self.username, self.password)
                refused = client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            return Delivery(False, f"{self.where} refused every recipient ({len(exc.recipients)})")
        except smtplib.SMTPResponseException as exc:
            said = (
                exc.smtp_error.decode(errors="replace")
                if isinstance(exc.smtp_error, bytes)
                else exc.smtp_error
            )
            return Delivery(False, f"{self.where} answered {exc.smtp_code} {str(said).splitlines()[0]}")
        except (smtplib.SMTPException, OSError) as exc:
            return Delivery(False, f"no answer from {self.where}: {_first_line(exc)}")
        if refused:
            log.warning("notify.recipients_refused", server=self.where, refused=len(refused))
        return Delivery(True)

    def _context(self) -> ssl.SSLContext:
        return self.context or ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s, context=self._context())
        return smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)


@dataclass(frozen=True)
class HttpxPoster:
    """POSTs the exact bytes with the given headers; follows no redirect (anything but 2xx is a failure)."""

    timeout_s: float = DEFAULT_TIMEOUT_S

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str]) -> PostResult:
        try:
            with httpx.Client(timeout=self.timeout_s, follow_redirects=False) as client:
                answer = client.post(url, content=body, headers=dict(headers))
        except httpx.HTTPError as exc:
            return PostResult(None, f"no answer from {url_host(url)}: {_first_line(exc)}")
        result = PostResult(answer.status_code)
        if result.delivered:
            return result
        return PostResult(answer.status_code, f"HTTP {answer.status_code} {answer.reason_phrase}".strip())
