"""The agent's event journal and outbox: every event is on disk before it is published, until central has it.

The journal, not the caller, stamps each event with the agent's sequence number (monotonic, persisted, never
reused, not even after every event was acknowledged or the agent restarted) and its UUID, and commits it
with ``synchronous=FULL`` before returning it: a kill -9 or a power cut right after a door decision keeps
the event. Events leave the journal only when central acknowledges them (``ack``). The journal's size is
bounded: an append that would pass ``max_bytes`` raises ``JournalFull`` (the caller raises a disk-low
alarm, which has a small reserve of its own, and keeps deciding), and ``usage`` warns well before, also
when the filesystem itself runs low.

No threads, no MQTT: the agent calls in from its main thread and its MQTT thread; one connection guarded by a
lock serves both.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TypeVar

from controller.sqlite_file import FileFormat, open_file
from protocol import codec
from protocol import messages as m

APPLICATION_ID: Final = 0x4D524A4E  # "MRJN": tells a journal file from any other SQLite file
SCHEMA_VERSION: Final = 1
MIB: Final = 1024 * 1024
ROW_OVERHEAD: Final = 64  # bytes per event beyond its payload (row header, key, index entry), for the bound
ALARM_RESERVE_DIVISOR: Final = 32  # the last 1/32 of the bound is kept for alarms (the disk-low one first)
ACK_CHUNK: Final = 500  # keeps IN (...) lists well below SQLite's bind-parameter limit

_SCHEMA = """
CREATE TABLE journal_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    next_seq INTEGER NOT NULL
);
INSERT INTO journal_state (id, next_seq) VALUES (1, 1);
CREATE TABLE event (
    seq INTEGER PRIMARY KEY,
    event_id BLOB NOT NULL UNIQUE,
    payload BLOB NOT NULL
);
"""

AgentEvent = m.JournaledEvent
E = TypeVar(
    "E", m.AccessEvent, m.AlarmEvent, m.SystemEvent, m.CardEnrolment, m.BookingCheckIn, m.BookingChange
)
_EVENT_TYPES: Final = (
    m.AccessEvent,
    m.AlarmEvent,
    m.SystemEvent,
    m.CardEnrolment,
    m.BookingCheckIn,
    m.BookingChange,
)


class JournalError(Exception):
    """The journal file cannot be used (corrupt, foreign, newer schema) or a stored event does not decode."""


class JournalFull(JournalError):  # noqa: N818 (the name says what happened)
    """Appending would pass the journal's size bound or the disk is full: the event was NOT recorded."""


@dataclass(frozen=True, slots=True)
class JournalUsage:
    """How full the journal and its filesystem are; ``warn``/``disk_low`` are the agent's cue to alarm."""

    bytes: int
    max_bytes: int
    fraction: float
    warn: bool
    disk_free_bytes: int
    disk_low: bool


@dataclass(frozen=True, slots=True)
class Stamp:
    """What the journal fills into every event: who sent it, and its place in the agent's sequence."""

    site: str
    agent: str
    seq: int
    event_id: uuid.UUID

    def make(self, event_type: type[E], /, **fields: Any) -> E:
        """An event of `event_type` with this stamp and the given fields."""
        return event_type(event_id=self.event_id, site=self.site, agent=self.agent, seq=self.seq, **fields)


class Journal:
    """The durable outbox of one agent; see the module docstring."""

    def __init__(
        self,
        path: Path,
        *,
        site: str,
        agent: str,
        max_bytes: int = 256 * MIB,
        warn_fraction: float = 0.8,
        min_free_bytes: int = 64 * MIB,
    ) -> None:
        if max_bytes < 64 * 1024:
            raise ValueError(f"journal max_bytes must be at least 64 KiB, got {max_bytes}")
        if not 0 < warn_fraction <= 1:
            raise ValueError(f"journal warn_fraction must be in (0, 1], got {warn_fraction}")
        self.path = Path(path)
        self.site = site
        self.agent = agent
        self.max_bytes = max_bytes
        self.warn_fraction = warn_fraction
        self.min_free_bytes = min_free_bytes
        self.alarm_reserve = max_bytes // ALARM_RESERVE_DIVISOR
        self._lock = _GuardedLock(self.path)
        self._db = _open(self.path)
        self._page_size: int = self._db.execute("PRAGMA page_size").fetchone()[0]
        self._pending: int = self._db.execute("SELECT count(*) FROM event").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing --------------------------------------------------------------------------------------------

    def record(self, build: Callable[[Stamp], E]) -> E:
        """Build an event with the next stamp and commit it; returns the event as it will be published.

        Raises ``JournalFull`` (nothing recorded, the sequence number not consumed) when the size bound or
        the disk would be passed; alarms may use a reserve beyond the others' bound, so the disk-low alarm
        itself is recorded. The stamp's site, agent, seq and event_id must be used as given.
        """
        with self._lock:
            seq: int = self._db.execute("SELECT next_seq FROM journal_state WHERE id = 1").fetchone()[0]
            stamp = Stamp(site=self.site, agent=self.agent, seq=seq, event_id=uuid.uuid4())
            event = build(stamp)
            payload = _checked_payload(event, stamp)
            limit = self.max_bytes if isinstance(event, m.AlarmEvent) else self.max_bytes - self.alarm_reserve
            if self._used_bytes() + len(payload) + ROW_OVERHEAD > limit:
                raise JournalFull(
                    f"{self.path}: journal at its bound of {limit} bytes for {type(event).__name__}"
                )
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT INTO event (seq, event_id, payload) VALUES (?, ?, ?)",
                    (seq, stamp.event_id.bytes, payload),
                )
                self._db.execute("UPDATE journal_state SET next_seq = ? WHERE id = 1", (seq + 1,))
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                    raise JournalFull(f"{self.path}: disk full ({exc})") from None
                raise JournalError(f"{self.path}: event not recorded ({exc})") from None
            self._pending += 1
            return event

    def access(
        self,
        device_time: datetime,
        *,
        door: str,
        decision: m.Decision,
        reason: m.Reason,
        method: m.Method,
        credential_ref: str | None = None,
        person_ref: str | None = None,
        booking_ref: str | None = None,
    ) -> m.AccessEvent:
        """Record a decision at a door."""
        return self.record(
            lambda s: s.make(
                m.AccessEvent,
                device_time=device_time,
                door=door,
                decision=decision,
                reason=reason,
                method=method,
                credential_ref=credential_ref,
                person_ref=person_ref,
                booking_ref=booking_ref,
            )
        )

    def alarm(
        self,
        device_time: datetime,
        *,
        kind: m.AlarmKind,
        severity: m.Severity,
        raised: bool = True,
        door: str | None = None,
        detail: str = "",
    ) -> m.AlarmEvent:
        """Record an alarm being raised (or, with ``raised=False``, cleared)."""
        return self.record(
            lambda s: s.make(
                m.AlarmEvent,
                device_time=device_time,
                kind=kind,
                severity=severity,
                raised=raised,
                door=door,
                detail=detail,
            )
        )

    def system(
        self, device_time: datetime, *, kind: str, door: str | None = None, detail: str = ""
    ) -> m.SystemEvent:
        """Record anything else worth keeping (agent started, replica resynced, command refused, …)."""
        return self.record(
            lambda s: s.make(
                m.SystemEvent,
                device_time=device_time,
                kind=kind,
                door=door,
                detail=detail,
            )
        )

    def card_enrolment(
        self, device_time: datetime, *, door: str, code: str, uid_hash: str
    ) -> m.CardEnrolment:
        """Record a card tapped after a one-time code was typed (central registers it if the code is good)."""
        return self.record(
            lambda s: s.make(
                m.CardEnrolment,
                device_time=device_time,
                door=door,
                code=code,
                uid_hash=uid_hash,
            )
        )

    def booking_check_in(
        self, device_time: datetime, *, booking: str, method: m.CheckInVia, person: str | None = None
    ) -> m.BookingCheckIn:
        """Record a booking checked in at the kiosk (central checks it in as of `device_time`)."""
        return self.record(
            lambda s: s.make(
                m.BookingCheckIn,
                device_time=device_time,
                booking=booking,
                method=method,
                person=person,
            )
        )

    def booking_change(
        self,
        device_time: datetime,
        *,
        booking: str,
        change: m.BookingChangeKind,
        ends_at: datetime,
        person: str | None = None,
    ) -> m.BookingChange:
        """Record a booking extended or ended early at the kiosk, with its new end."""
        return self.record(
            lambda s: s.make(
                m.BookingChange,
                device_time=device_time,
                booking=booking,
                change=change,
                ends_at=ends_at,
                person=person,
            )
        )

    # --- the outbox -----------------------------------------------------------------------------------------

    def pending(self, limit: int = 500, *, after_seq: int = 0) -> list[tuple[AgentEvent, bytes]]:
        """Unacknowledged events oldest first, each with its payload ready to publish.

        ``after_seq`` skips events the caller already published on this connection; pass 0 after a
        reconnect or restart to resend everything not yet acknowledged.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, payload FROM event WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
            ).fetchall()
        return [(self._decode(seq, payload), payload) for seq, payload in rows]

    def ack(self, event_ids: Iterable[uuid.UUID]) -> int:
        """Forget events central has committed; returns how many were pending (unknown ids are ignored)."""
        keys = list({event_id.bytes for event_id in event_ids})
        removed = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for start in range(0, len(keys), ACK_CHUNK):
                    chunk = keys[start : start + ACK_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    cursor = self._db.execute(f"DELETE FROM event WHERE event_id IN ({marks})", chunk)  # noqa: S608
                    removed += cursor.rowcount
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._pending -= removed
        return removed

    def pending_count(self) -> int:
        with self._lock:
            return self._pending

    @property
    def next_seq(self) -> int:
        """The sequence number the next event will get."""
        with self._lock:
            row = self._db.execute("SELECT next_seq FROM journal_state WHERE id = 1").fetchone()
        return int(row[0])

    # --- disk bounds ----------------------------------------------------------------------------------------

    def usage(self) -> JournalUsage:
        with self._lock:
            used = self._used_bytes()
        free = shutil.disk_usage(self.path.parent).free
        fraction = used / self.max_bytes
        return JournalUsage(
            bytes=used,
            max_bytes=self.max_bytes,
            fraction=fraction,
            warn=fraction >= self.warn_fraction,
            disk_free_bytes=free,
            disk_low=free < self.min_free_bytes,
        )

    def _used_bytes(self) -> int:
        """Bytes in live pages: space freed by acks is reused, so it does not count against the bound."""
        pages: int = self._db.execute("PRAGMA page_count").fetchone()[0]
        free: int = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * self._page_size

    def _decode(self, seq: int, payload: bytes) -> AgentEvent:
        try:
            event = codec.decode(payload, _EVENT_TYPES)
        except codec.ProtocolError as exc:
            raise JournalError(f"{self.path}: stored event seq {seq} does not decode ({exc})") from None
        assert isinstance(event, _EVENT_TYPES)
        return event


class _GuardedLock:
    """The journal's lock; a SQLite failure inside it becomes a JournalError naming the file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self._lock.release()
        if isinstance(exc, sqlite3.Error):
            raise JournalError(f"{self._path}: journal database failed ({exc})") from exc


def _checked_payload(event: AgentEvent, stamp: Stamp) -> bytes:
    """Encode the event, refusing one that central (or our outbox) could not decode: it would never leave."""
    if (event.site, event.agent, event.seq, event.event_id) != (
        stamp.site,
        stamp.agent,
        stamp.seq,
        stamp.event_id,
    ):
        raise ValueError("event must carry the site, agent, seq and event_id of the journal's stamp")
    payload = codec.encode(event)
    codec.decode(payload, type(event))  # raises ProtocolError (a ValueError) naming the bad field
    return payload


FORMAT = FileFormat(
    what="journal",
    application_id=APPLICATION_ID,
    version=SCHEMA_VERSION,
    schema=_SCHEMA,
    probe="SELECT next_seq FROM journal_state WHERE id = 1",
    pragmas=("PRAGMA journal_size_limit=4194304",),  # the WAL shrinks back after checkpoints
    error=JournalError,
)


def _open(path: Path) -> sqlite3.Connection:
    return open_file(path, FORMAT)
