"""Central's settings, read once from the environment (MERAAPENT_*), and its on-disk secrets.

Settings are a frozen value so every part of central sees the same configuration; overrides exist for the
CLI (--db, --data-dir) and for tests. Secrets live in files under <data_dir>/secrets/ (never in the repo,
the database or the logs), created on first use with owner-only permissions.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "MERAAPENT_"
UID_HASH_KEY_FILE = "uid-hash.key"
MQTT_PASSWORD_FILE = "mqtt-password"  # noqa: S105 (the file `meraapent central mqtt-config` writes)
UID_HASH_KEY_BYTES = 32
# How many days each kind of personal data is kept (central.retention); each must be at least 1.
RETENTION_FIELDS = (
    "event_retention_days",
    "alarm_retention_days",
    "booking_retention_days",
    "audit_retention_days",
)

SMTP_SECURITY = ("none", "starttls", "tls")


class ConfigError(ValueError):
    """A setting has a value central cannot use; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    """Everything central needs to know about its environment."""

    data_dir: Path = Path("var")
    db_url: str = ""
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_username: str | None = None
    mqtt_password: str | None = field(default=None, repr=False)
    mqtt_password_file: Path | None = None  # instead of the password itself (what `mqtt-config` writes)
    mqtt_ca_file: Path | None = None  # TLS to the broker, verified against this CA; unset: plain TCP
    token_issuer: str = "asker"  # noqa: S105 (an issuer name, not a secret)
    event_retention_days: int = 30  # identified access events are pseudonymised after this many days
    alarm_retention_days: int = 365  # alarms are deleted after this many days
    booking_retention_days: int = 365  # ended bookings lose holder, co-holders, organisation and title
    audit_retention_days: int = 730  # audit entries are deleted after this many days
    checkin_opens_minutes: int = 15  # check-in opens this long before a booking starts
    checkin_closes_minutes: int = 15  # ... and closes this long after; no check-in by then is a no-show
    booking_webhook_url: str = ""  # where booking changes (no-show, extended, ended early) are POSTed
    public_url: str = "http://127.0.0.1:8000"  # how phones reach central (OIDC redirect, links)
    oidc_issuer: str = ""  # the OpenID Connect provider residents sign in with (ID-porten in production)
    oidc_client_id: str = ""
    oidc_client_secret: str = field(default="", repr=False)
    # Alarms that need a person (central.notify): e-mail over SMTP and/or a webhook to the caretaker on call,
    # escalated to the escalation addresses when nobody acknowledges within notify_escalate_minutes.
    smtp_host: str = ""  # empty: no e-mail is sent
    smtp_port: int = 25
    smtp_security: str = "starttls"  # none, starttls or tls
    smtp_username: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_from: str = "meraapent@localhost"
    notify_email: str = ""  # the caretaker on call, comma-separated addresses
    notify_webhook_url: str = ""  # e.g. the municipality's on-call system; HMAC-signed like booking webhooks
    notify_escalate_minutes: int = 15  # not acknowledged by then: also to notify_escalation_email
    notify_escalation_email: str = ""  # comma-separated
    agent_offline_alarm_minutes: int = 2  # an agent silent (offline) this long raises an agent_offline alarm

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if not self.db_url:
            object.__setattr__(self, "db_url", default_db_url(self.data_dir))
        if not 0 < self.mqtt_port < 65536:
            raise ConfigError(f"MERAAPENT_MQTT_PORT must be 1–65535, got {self.mqtt_port}")
        for name in RETENTION_FIELDS:
            days = getattr(self, name)
            if days < 1:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be at least 1, got {days}")
        for name in ("checkin_opens_minutes", "checkin_closes_minutes"):
            minutes = getattr(self, name)
            if not 0 <= minutes <= 24 * 60:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be 0–1440 minutes, got {minutes}")
        if self.smtp_security not in SMTP_SECURITY:
            raise ConfigError(
                f"MERAAPENT_SMTP_SECURITY must be one of {', '.join(SMTP_SECURITY)}, "
                f"got {self.smtp_security!r}"
            )
        if not 0 < self.smtp_port < 65536:
            raise ConfigError(f"MERAAPENT_SMTP_PORT must be 1–65535, got {self.smtp_port}")
        for name in ("notify_escalate_minutes", "agent_offline_alarm_minutes"):
            minutes = getattr(self, name)
            if not 1 <= minutes <= 24 * 60:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be 1–1440 minutes, got {minutes}")
        if not self.token_issuer:
            raise ConfigError("MERAAPENT_TOKEN_ISSUER must not be empty")

    def mqtt_secret(self) -> str | None:
        """Central's broker password: MERAAPENT_MQTT_PASSWORD, else the first line of
        MERAAPENT_MQTT_PASSWORD_FILE, else (with a username) <data_dir>/secrets/mqtt-password when
        `meraapent central mqtt-config` wrote one; None for an anonymous broker (the demo's)."""
        if self.mqtt_password:
            return self.mqtt_password
        path = self.mqtt_password_file
        if path is None and self.mqtt_username:
            default = self.secrets_dir / MQTT_PASSWORD_FILE
            path = default if default.is_file() else None
        if path is None:
            return None
        try:
            return path.read_text("utf-8").splitlines()[0].strip()
        except (OSError, IndexError) as exc:
            raise ConfigError(f"MERAAPENT_MQTT_PASSWORD_FILE: cannot read a password from {path}") from exc

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"

    def uid_hash_key(self) -> bytes:
        """The HMAC key for card UIDs: 32 random bytes made on first use, then read back.

        Losing it makes every stored card hash useless, so it is never regenerated over an existing file.
        """
        return read_or_create_secret(self.secrets_dir / UID_HASH_KEY_FILE, UID_HASH_KEY_BYTES)


def default_db_url(data_dir: Path) -> str:
    """SQLite in the data directory: the embedded default that needs no server."""
    return f"sqlite:///{Path(data_dir) / 'central.db'}"


_FIELDS: dict[str, type] = {
    "data_dir": Path,
    "db_url": str,
    "mqtt_host": str,
    "mqtt_port": int,
    "mqtt_username": str,
    "mqtt_password": str,
    "mqtt_password_file": Path,
    "mqtt_ca_file": Path,
    "token_issuer": str,
    "event_retention_days": int,
    "alarm_retention_days": int,
    "booking_retention_days": int,
    "audit_retention_days": int,
    "checkin_opens_minutes": int,
    "checkin_closes_minutes": int,
    "booking_webhook_url": str,
    "public_url": str,
    "oidc_issuer": str,
    "oidc_client_id": str,
    "oidc_client_secret": str,
    "smtp_host": str,
    "smtp_port": int,
    "smtp_security": str,
    "smtp_username": str,
    "smtp_password": str,
    "smtp_from": str,
    "notify_email": str,
    "notify_webhook_url": str,
    "notify_escalate_minutes": int,
    "notify_escalation_email": str,
    "agent_offline_alarm_minutes": int,
}


def _parse(name: str, raw: str) -> Any:
    kind = _FIELDS[name]
    if kind is int:
        try:
            return int(raw.strip())
        except ValueError:
            raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be a whole number, got {raw!r}") from None
    if kind is Path:
        return Path(raw).expanduser()
    return raw


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from `env` (default: os.environ), then keyword overrides; None overrides are ignored.

    An empty environment variable counts as unset, so `MERAAPENT_DB_URL=` falls back to the default.
    """
    source = os.environ if env is None else env
    values: dict[str, Any] = {}
    for name in _FIELDS:
        raw = source.get(ENV_PREFIX + name.upper())
        if raw:
            values[name] = _parse(name, raw)
    unknown = set(overrides) - set(_FIELDS)
    if unknown:
        raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values)


def _ensure_private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)


def read_or_create_secret(path: Path, nbytes: int) -> bytes:
    """Read a secret of exactly `nbytes` (stored as hex text) or create it atomically with mode 0600."""
    _ensure_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path, nbytes)
    value = secrets.token_bytes(nbytes)
    with os.fdopen(fd, "w") as fh:
        fh.write(value.hex() + "\n")
    return value


def _read_secret(path: Path, nbytes: int) -> bytes:
    text = path.read_text().strip()
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"secret file {path} is not hex text; restore it from backup") from None
    if len(value) != nbytes:
        raise ConfigError(
            f"secret file {path} holds {len(value)} bytes, expected {nbytes}; restore it from backup"
        )
    return value


def write_private_file(path: Path, text: str) -> None:
    """Write `text` to a new or existing file readable by the owner only (0600), parent created if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
