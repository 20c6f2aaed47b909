"""The guard in front of central's commands: a replayed, stale or misdirected command is refused.

A command (remote unlock, lock-down, release) opens doors, so the agent only runs one that is for its site,
fresh and seen for the first time. Freshness allows a small clock skew both ways, because the agent's clock
and central's are set independently. Every accepted nonce is remembered until the command could no longer
pass the freshness check anyway; remembered on disk, a replay is refused after an agent restart too.

The decision is pure (``CommandGuard.check`` with an explicit ``now``); the nonce store is tiny.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from protocol import messages as m

DEFAULT_MAX_SKEW = timedelta(seconds=60)
DEFAULT_MAX_VALIDITY = timedelta(minutes=10)  # central's commands live 30 s; anything far longer is suspect
# A used nonce is kept this long after its command expired, not merely until then: the agent's clock may jump
# ahead (a bad NTP answer) and back, and a nonce forgotten during the jump would let a replay in when the
# clock is back inside the command's window. Commands are a few hundred a day at most: the store stays small.
NONCE_KEEP = timedelta(days=30)


class CommandRefusal(StrEnum):
    WRONG_SITE = "wrong_site"
    VALIDITY_TOO_LONG = "validity_too_long"
    ISSUED_IN_FUTURE = "issued_in_future"
    EXPIRED = "expired"
    REPLAYED = "replayed"


@dataclass(frozen=True, slots=True)
class CommandCheck:
    """The verdict: ``refusal`` is None for an accepted command; ``detail`` is a line for the log."""

    refusal: CommandRefusal | None = None
    detail: str = ""

    @property
    def accepted(self) -> bool:
        return self.refusal is None

    def result(self, command: m.Command, at: datetime) -> m.CommandResult:
        """The refusal as central wants to hear it (only for a refused command)."""
        if self.refusal is None:
            raise ValueError("an accepted command's result says what was done, not what the guard said")
        return m.CommandResult(
            command_id=command.command_id,
            site=command.site,
            outcome=m.CommandOutcome.REFUSED,
            at=at,
            reason=f"{self.refusal.value}: {self.detail}"[:300],
        )


ACCEPTED = CommandCheck()


class NonceStore(Protocol):
    def add(self, nonce: str, forget_at: datetime) -> bool:
        """Remember ``nonce`` until ``forget_at``; False if it is already remembered."""
        ...

    def forget_before(self, now: datetime) -> None:
        """Drop nonces whose commands can no longer be accepted."""
        ...


class CommandGuard:
    def __init__(
        self,
        site: str,
        *,
        max_skew: timedelta = DEFAULT_MAX_SKEW,
        max_validity: timedelta = DEFAULT_MAX_VALIDITY,
        remember: NonceStore | None = None,
    ) -> None:
        self.site = site
        self.max_skew = max_skew
        self.max_validity = max_validity
        self._nonces: NonceStore = remember if remember is not None else MemoryNonceStore()

    def check(self, command: m.Command, now: datetime) -> CommandCheck:
        """Accept the command (and remember its nonce) or say why not. ``now`` is the agent's UTC time."""
        if now.utcoffset() is None:
            raise ValueError("check needs a timezone-aware time")
        verdict = self._freshness(command, now)
        if not verdict.accepted:
            return verdict
        self._nonces.forget_before(now)
        if not self._nonces.add(command.nonce, command.expires_at + self.max_skew + NONCE_KEEP):
            return CommandCheck(CommandRefusal.REPLAYED, f"nonce {command.nonce[:16]}… was already used")
        return ACCEPTED

    def _freshness(self, command: m.Command, now: datetime) -> CommandCheck:
        if command.site != self.site:
            return CommandCheck(
                CommandRefusal.WRONG_SITE, f"for site {command.site!r}, this is {self.site!r}"
            )
        validity = command.expires_at - command.issued_at
        if validity > self.max_validity:
            return CommandCheck(
                CommandRefusal.VALIDITY_TOO_LONG,
                f"valid for {_seconds(validity)}, at most {_seconds(self.max_validity)} accepted",
            )
        if command.issued_at > now + self.max_skew:
            return CommandCheck(
                CommandRefusal.ISSUED_IN_FUTURE,
                f"issued {_seconds(command.issued_at - now)} ahead of the agent's clock",
            )
        if now >= command.expires_at + self.max_skew:
            return CommandCheck(CommandRefusal.EXPIRED, f"expired {_seconds(now - command.expires_at)} ago")
        return ACCEPTED


def _seconds(delta: timedelta) -> str:
    return f"{delta.total_seconds():g} s"


class MemoryNonceStore:
    """Nonces in memory only: a replay after a restart is not caught. For tests and tools."""

    def __init__(self) -> None:
        self._until: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def add(self, nonce: str, forget_at: datetime) -> bool:
        with self._lock:
            if nonce in self._until:
                return False
            self._until[nonce] = forget_at
            return True

    def forget_before(self, now: datetime) -> None:
        with self._lock:
            self._until = {n: t for n, t in self._until.items() if t > now}


class NonceStoreError(RuntimeError):
    """The nonce file cannot be used; commands cannot be guarded against replay."""


class SqliteNonceStore:
    """Nonces in a small SQLite file in the agent's data directory, committed before the command runs."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS command_nonce (nonce TEXT PRIMARY KEY, forget_at REAL NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS command_nonce_forget ON command_nonce (forget_at)")
        except (OSError, sqlite3.Error) as exc:
            raise NonceStoreError(f"cannot use the command nonce file {self.path}: {exc}") from None

    def add(self, nonce: str, forget_at: datetime) -> bool:
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO command_nonce (nonce, forget_at) VALUES (?, ?)",
                    (nonce, forget_at.timestamp()),
                )
            except sqlite3.IntegrityError:
                return False
            return True

    def forget_before(self, now: datetime) -> None:
        with self._lock:
            self._db.execute("DELETE FROM command_nonce WHERE forget_at <= ?", (now.timestamp(),))

    def count(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM command_nonce").fetchone()
            return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
