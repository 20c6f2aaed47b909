"""The site's local copy of what central knows: credentials, bookings, configuration, keys and revocations.

The agent decides every tap from this file, so it must answer fast (one indexed SELECT and one small msgspec
decode per lookup, also at 1,000,000 credentials), change only in whole steps (a snapshot or a delta is one
transaction: a crash midway leaves the previous replica), and survive restarts: an agent rebooted without
network decides exactly as before. Each credential and booking is stored as its msgpack-encoded struct beside
the few indexed columns lookups need. Retained state (site config, signing keys, revocations) is stored as the
wire message itself, so what is read back is checked by the same strict decoder as what was received.

No threads, no MQTT: the agent calls in from its main thread and its MQTT thread; one connection guarded by a
lock serves both.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Final, TypeVar

import msgspec

from controller.sqlite_file import FileFormat, open_file
from protocol import codec
from protocol import messages as m

APPLICATION_ID: Final = 0x4D525250  # "MRRP": tells a replica file from any other SQLite file
SCHEMA_VERSION: Final = 1
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

_SCHEMA = """
CREATE TABLE replica_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    site TEXT,
    seq INTEGER,
    generated_at INTEGER
);
INSERT INTO replica_state (id) VALUES (1);
CREATE TABLE credential (
    ref TEXT PRIMARY KEY,
    uid_hash BLOB UNIQUE,
    person TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX credential_person ON credential (person);
CREATE TABLE booking (
    ref TEXT PRIMARY KEY,
    room TEXT NOT NULL,
    starts_at INTEGER NOT NULL,
    ends_at INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX booking_room ON booking (room, starts_at);
CREATE TABLE booking_holder (
    person TEXT NOT NULL,
    booking TEXT NOT NULL,
    PRIMARY KEY (person, booking)
) WITHOUT ROWID;
CREATE INDEX booking_holder_booking ON booking_holder (booking);
CREATE TABLE retained (
    name TEXT PRIMARY KEY,
    revision INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE revoked_token (
    token_id TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
"""

_record_encoder = msgspec.msgpack.Encoder()
_credential_decoder = msgspec.msgpack.Decoder(m.Credential)
_booking_decoder = msgspec.msgpack.Decoder(m.Booking)

R = TypeVar("R", bound=m.Message)


class ReplicaError(Exception):
    """The replica file cannot be used (corrupt, foreign, newer schema) or a message is for another site."""


class DeltaResult(StrEnum):
    APPLIED = "applied"
    STALE = "stale"  # already have it (delta.seq <= our seq): ignored
    GAP = "gap"  # not built on our seq, or no snapshot yet: ask central for a snapshot


def micros(at: datetime) -> int:
    """A timezone-aware time as integer microseconds since the epoch: exact, sortable, index-friendly."""
    if at.utcoffset() is None:
        raise ValueError("times must be timezone-aware (UTC)")
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def uid_key(uid_hash: str) -> bytes:
    """The 32-byte form of a card UID hash (64 hex digits) as index key: half the size of the text."""
    if len(uid_hash) != 64:
        raise ValueError("a card UID hash is 64 hex digits")
    try:
        return bytes.fromhex(uid_hash)
    except ValueError:
        raise ValueError("a card UID hash is 64 hex digits") from None


class Replica:
    """One site's replica in one SQLite file (WAL mode); see the module docstring."""

    def __init__(self, path: Path, *, site: str | None = None) -> None:
        """Open or create the replica at ``path``; ``site``, when given, refuses messages for other sites."""
        self.path = Path(path)
        self._site = site
        self._lock = _GuardedLock(self.path)
        self._cache: dict[str, m.Message | None] = {}
        self._db = _open(self.path)

    # --- lifecycle ------------------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Replica:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- replica sequence -----------------------------------------------------------------------------------

    @property
    def seq(self) -> int | None:
        """The delta sequence the replica is consistent with; None before the first snapshot."""
        with self._lock:
            return self._seq()

    def _seq(self) -> int | None:
        row = self._db.execute("SELECT seq FROM replica_state WHERE id = 1").fetchone()
        return None if row is None else row[0]

    def apply_snapshot(self, snapshot: m.ReplicaSnapshot) -> None:
        """Replace every credential and booking with the snapshot's, in one transaction."""
        self._check_site(snapshot, snapshot.site)
        with self._lock, self._transaction():
            self._db.execute("DELETE FROM credential")
            self._db.execute("DELETE FROM booking")
            self._db.execute("DELETE FROM booking_holder")
            self._upsert_credentials(snapshot.credentials)
            self._upsert_bookings(snapshot.bookings)
            self._set_seq(snapshot.site, snapshot.seq, snapshot.generated_at)

    def apply_delta(self, delta: m.ReplicaDelta) -> DeltaResult:
        """Apply a delta built on our seq atomically; a stale one is ignored, a gap changes nothing."""
        self._check_site(delta, delta.site)
        with self._lock:
            seq = self._seq()
            if seq is not None and delta.seq <= seq:
                return DeltaResult.STALE
            if seq is None or delta.prev_seq != seq:
                return DeltaResult.GAP
            with self._transaction():
                self._remove_credentials(delta.remove)
                self._remove_bookings(delta.remove_bookings)
                self._upsert_credentials(delta.upsert)
                self._upsert_bookings(delta.upsert_bookings)
                self._set_seq(delta.site, delta.seq, delta.generated_at)
            return DeltaResult.APPLIED

    def _set_seq(self, site: str, seq: int, generated_at: datetime) -> None:
        self._db.execute(
            "UPDATE replica_state SET site = ?, seq = ?, generated_at = ? WHERE id = 1",
            (site, seq, micros(generated_at)),
        )

    def _upsert_credentials(self, credentials: Iterable[m.Credential]) -> None:
        # OR REPLACE also evicts another credential holding the same card: a card belongs to one credential.
        self._db.executemany(
            "INSERT OR REPLACE INTO credential (ref, uid_hash, person, data) VALUES (?, ?, ?, ?)",
            _credential_rows(credentials),
        )

    def _remove_credentials(self, refs: list[str]) -> None:
        self._db.executemany("DELETE FROM credential WHERE ref = ?", ((ref,) for ref in refs))

    def _upsert_bookings(self, bookings: list[m.Booking]) -> None:
        self._remove_bookings([booking.ref for booking in bookings])
        self._db.executemany(
            "INSERT OR REPLACE INTO booking (ref, room, starts_at, ends_at, data) VALUES (?, ?, ?, ?, ?)",
            ((b.ref, b.room, micros(b.starts_at), micros(b.ends_at), encode_record(b)) for b in bookings),
        )
        self._db.executemany(
            "INSERT OR IGNORE INTO booking_holder (person, booking) VALUES (?, ?)",
            ((person, b.ref) for b in bookings for person in b.holders),
        )

    def _remove_bookings(self, refs: list[str]) -> None:
        self._db.executemany("DELETE FROM booking WHERE ref = ?", ((ref,) for ref in refs))
        self._db.executemany("DELETE FROM booking_holder WHERE booking = ?", ((ref,) for ref in refs))

    # --- lookups --------------------------------------------------------------------------------------------

    def card(self, uid_hash: str) -> m.Credential | None:
        """The credential of the card with this UID hash (HMAC-SHA256 hex), or None for an unknown card."""
        key = uid_key(uid_hash)
        with self._lock:
            row = self._db.execute("SELECT data FROM credential WHERE uid_hash = ?", (key,)).fetchone()
        return None if row is None else self._credential(row[0])

    def credential(self, ref: str) -> m.Credential | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM credential WHERE ref = ?", (ref,)).fetchone()
        return None if row is None else self._credential(row[0])

    def credentials_of(self, person_ref: str) -> list[m.Credential]:
        """Every credential of one person (a phone token names the person, not a credential)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT data FROM credential WHERE person = ? ORDER BY ref", (person_ref,)
            ).fetchall()
        return [self._credential(row[0]) for row in rows]

    def count(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM credential").fetchone()
        return int(row[0])

    def bookings_for(
        self, person_ref: str, now: datetime, horizon: timedelta = timedelta(hours=24)
    ) -> list[m.Booking]:
        """The person's bookings not yet ended and starting within ``horizon`` of ``now``, earliest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT b.data FROM booking_holder h JOIN booking b ON b.ref = h.booking"
                " WHERE h.person = ? AND b.ends_at > ? AND b.starts_at < ? ORDER BY b.starts_at, b.ref",
                (person_ref, micros(now), micros(now + horizon)),
            ).fetchall()
        return [self._booking(row[0]) for row in rows]

    def bookings_at(self, room: str, day_start: datetime, day_end: datetime) -> list[m.Booking]:
        """The room's bookings overlapping [day_start, day_end), earliest first (the kiosk's day view)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT data FROM booking WHERE room = ? AND starts_at < ? AND ends_at > ?"
                " ORDER BY starts_at, ref",
                (room, micros(day_end), micros(day_start)),
            ).fetchall()
        return [self._booking(row[0]) for row in rows]

    def booking(self, ref: str) -> m.Booking | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM booking WHERE ref = ?", (ref,)).fetchone()
        return None if row is None else self._booking(row[0])

    def bookings_between(self, start: datetime, end: datetime) -> list[m.Booking]:
        """Every room's bookings overlapping [start, end), earliest first (the kiosk finds a code here)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT data FROM booking WHERE starts_at < ? AND ends_at > ? ORDER BY starts_at, ref",
                (micros(end), micros(start)),
            ).fetchall()
        return [self._booking(row[0]) for row in rows]

    def put_booking(self, booking: m.Booking) -> None:
        """The agent's own change to one booking (checked in, extended or ended at the kiosk), in force at
        once; the replica's seq stays, so central's next delta or snapshot has the last word."""
        with self._lock, self._transaction():
            self._upsert_bookings([booking])

    def _credential(self, data: bytes) -> m.Credential:
        try:
            return _credential_decoder.decode(data)
        except msgspec.MsgspecError as exc:
            raise ReplicaError(f"{self.path}: a stored credential does not decode ({exc})") from None

    def _booking(self, data: bytes) -> m.Booking:
        try:
            return _booking_decoder.decode(data)
        except msgspec.MsgspecError as exc:
            raise ReplicaError(f"{self.path}: a stored booking does not decode ({exc})") from None

    # --- retained state -------------------------------------------------------------------------------------

    def save_config(self, config: m.SiteConfig) -> bool:
        """Store the site config unless it is older than the stored one (then return False)."""
        self._check_site(config, config.site)
        return self._save_retained("config", config, config.revision)

    def config(self) -> m.SiteConfig | None:
        return self._retained("config", m.SiteConfig)

    def save_keys(self, keys: m.SigningKeys) -> bool:
        """Store the token verification keys unless issued before the stored ones (then return False)."""
        return self._save_retained("keys", keys, micros(keys.issued_at))

    def keys(self) -> m.SigningKeys | None:
        return self._retained("keys", m.SigningKeys)

    def save_revocations(self, revocations: m.Revocations) -> bool:
        """Replace the revoked-token list unless it is older than the stored one (then return False)."""
        self._check_site(revocations, revocations.site)
        rows = [(t.token_id.lower(), micros(t.expires_at)) for t in revocations.tokens]

        def replace_tokens() -> None:
            self._db.execute("DELETE FROM revoked_token")
            self._db.executemany("INSERT OR REPLACE INTO revoked_token VALUES (?, ?)", rows)

        return self._save_retained("revocations", revocations, revocations.revision, also=replace_tokens)

    def revocations(self) -> m.Revocations | None:
        return self._retained("revocations", m.Revocations)

    def is_revoked(self, token_id_hex: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM revoked_token WHERE token_id = ?", (token_id_hex.lower(),)
            ).fetchone()
        return row is not None

    def _save_retained(
        self, name: str, message: m.Message, revision: int, also: Callable[[], None] | None = None
    ) -> bool:
        data = codec.encode(message)
        with self._lock:
            row = self._db.execute("SELECT revision FROM retained WHERE name = ?", (name,)).fetchone()
            if row is not None and revision < row[0]:
                return False
            with self._transaction():
                self._db.execute(
                    "INSERT OR REPLACE INTO retained (name, revision, data) VALUES (?, ?, ?)",
                    (name, revision, data),
                )
                if also is not None:
                    also()
            self._cache[name] = message
            return True

    def _retained(self, name: str, cls: type[R]) -> R | None:
        with self._lock:
            if name not in self._cache:
                row = self._db.execute("SELECT data FROM retained WHERE name = ?", (name,)).fetchone()
                self._cache[name] = None if row is None else self._decode_retained(row[0], cls)
            cached = self._cache[name]
        assert cached is None or isinstance(cached, cls)
        return cached

    def _decode_retained(self, data: bytes, cls: type[R]) -> R:
        try:
            return codec.decode(data, cls)
        except codec.ProtocolError as exc:
            raise ReplicaError(f"{self.path}: stored {codec.tag_of(cls)} does not decode ({exc})") from None

    # --- helpers --------------------------------------------------------------------------------------------

    def _check_site(self, message: m.Message, site: str) -> None:
        if self._site is not None and site != self._site:
            tag = codec.tag_of(type(message))
            raise ReplicaError(f"{tag} for site {site!r} refused: this replica serves {self._site!r}")

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _GuardedLock:
    """The store's lock; a SQLite failure inside it (I/O error, corruption, disk full) becomes a ReplicaError
    naming the file, so the agent can say which file failed and fall back to asking for a snapshot."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self._lock.release()
        if isinstance(exc, sqlite3.Error):
            raise ReplicaError(f"{self._path}: replica database failed ({exc})") from exc


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception: all of a change or none of it."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
        elif self._db.in_transaction:
            self._db.execute("ROLLBACK")


def encode_record(record: m.Credential | m.Booking) -> bytes:
    """The stored form of a credential or booking (msgpack: smaller and as fast to decode as JSON)."""
    return _record_encoder.encode(record)


def _credential_rows(credentials: Iterable[m.Credential]) -> Iterator[tuple[str, bytes | None, str, bytes]]:
    for c in credentials:
        key = None if c.uid_hash is None else uid_key(c.uid_hash)
        yield c.ref, key, c.person, encode_record(c)


FORMAT = FileFormat(
    what="replica",
    application_id=APPLICATION_ID,
    version=SCHEMA_VERSION,
    schema=_SCHEMA,
    probe="SELECT seq FROM replica_state WHERE id = 1",
    pragmas=(
        "PRAGMA cache_size=-32768",  # 32 MiB: index pages of a big replica stay in memory
        "PRAGMA journal_size_limit=67108864",  # a big snapshot's WAL shrinks back afterwards
    ),
    error=ReplicaError,
)


def _open(path: Path) -> sqlite3.Connection:
    return open_file(path, FORMAT)
