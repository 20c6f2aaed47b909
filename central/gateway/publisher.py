"""Central → agent: retained site state, the credential replica (deltas and snapshots), in one thread.

One thread does all publishing, in a fixed order, waiting for each PUBACK: deltas of a site leave strictly
by sequence number and are marked published only once the broker has them, and a snapshot is built after
the deltas before it were sent, so it continues exactly where they left off (`central.replica.snapshot_seq`).

Deltas come first: a revoked card must stop opening doors before anything else is refreshed. A round of
retained state or of snapshots for many sites takes seconds (about 10 ms per site), so between two sites of
such a round the thread also publishes the deltas that came up meanwhile (every `poll_s`, or at once after
a `poke`); a revoke does not wait for the whole round.

Retained state (site config, revocations, signing keys) is republished only when its content changed.
Revisions: each new content gets `revision` = milliseconds since the epoch when central first published it,
strictly increasing per site, so a newer config always has a larger revision. To keep a restart from
republishing unchanged state under a new revision, central reads its own retained messages back on connect
(`seed`) and waits `SEED_WAIT_S` before comparing. Snapshots, deltas and commands are never retained.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from central.checkin import CheckinRules
from central.db import utcnow
from central.gateway.link import LinkDownError, MqttLink, PublishRefusedError
from central.models import Site
from central.replica import UnknownSiteError, build_snapshot
from central.services.replica_log import (
    DELTA_MAX_CHANGES,
    build_deltas,
    mark_all_published,
    pending_sites,
    prune_published,
)
from central.services.site_config import build_revocations, build_site_config
from protocol import codec
from protocol import messages as m
from protocol.topics import Channel, site_filter, site_topic

log = structlog.get_logger(__name__)

SEED_WAIT_S = 0.5
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RETAINED_CHANNELS = (Channel.CONFIG, Channel.REVOCATIONS, Channel.KEYS)
SUBSCRIPTIONS = tuple(site_filter(None, channel) for channel in RETAINED_CHANNELS)
SNAPSHOT_TIMEOUT_S = 120.0
SNAPSHOT_MIN_INTERVAL_S = 2.0
PRUNE_INTERVAL_S = 3600.0  # how often published replica changes older than PUBLISHED_KEEP are deleted
DELTA_SITES = 200  # sites whose deltas are built together (a few queries per batch, not per site)

KeysProvider = Callable[[], m.SigningKeys | None]


def content_hash(message: m.SiteConfig | m.Revocations | m.SigningKeys) -> str:
    """SHA-256 of what a retained message says, ignoring `revision` and `issued_at` (new every time)."""
    neutral: dict[str, Any] = {"issued_at": EPOCH}
    if not isinstance(message, m.SigningKeys):
        neutral["revision"] = 0
    return hashlib.sha256(codec.encode(msgspec.structs.replace(message, **neutral))).hexdigest()


def validated(message: m.Message) -> bytes:
    """Encode and decode again with the agent's strict decoder: never publish what an agent would refuse."""
    payload = codec.encode(message)
    codec.decode(payload, type(message))
    return payload


class Revisions:
    """What central last published (or found retained) per (channel, site): content hash and revision."""

    def __init__(self) -> None:
        self._known: dict[tuple[Channel, str], tuple[str, int]] = {}
        self._lock = threading.Lock()

    def seed(
        self, channel: Channel, site: str, message: m.SiteConfig | m.Revocations | m.SigningKeys
    ) -> None:
        revision = getattr(message, "revision", 0)
        with self._lock:
            known = self._known.get((channel, site))
            if known is None or revision >= known[1]:
                self._known[(channel, site)] = (content_hash(message), revision)

    def changed(self, channel: Channel, site: str, digest: str) -> bool:
        with self._lock:
            known = self._known.get((channel, site))
        return known is None or known[0] != digest

    def next_revision(self, channel: Channel, site: str, now: datetime) -> int:
        with self._lock:
            known = self._known.get((channel, site))
        stamp = int(now.timestamp() * 1000)
        return stamp if known is None else max(stamp, known[1] + 1)

    def remember(self, channel: Channel, site: str, digest: str, revision: int) -> None:
        with self._lock:
            self._known[(channel, site)] = (digest, revision)


class Publisher:
    """The publishing thread: retained state on connect and on change, deltas as they come, snapshots
    on request."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        link: MqttLink,
        *,
        keys_provider: KeysProvider | None = None,
        poll_s: float = 0.2,
        refresh_s: float = 5.0,
        checkin: CheckinRules | None = None,
    ) -> None:
        self._sessions = sessions
        self._checkin = checkin
        self._link = link
        self._keys_provider = keys_provider
        self.poll_s = poll_s
        self.refresh_s = refresh_s
        self.revisions = Revisions()
        self.delta_sites = DELTA_SITES  # sites whose deltas are built together
        self.delta_max_changes = DELTA_MAX_CHANGES  # log entries per delta
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._snapshot_sites: set[str] = set()
        self._last_snapshot: dict[str, float] = {}  # site -> monotonic time of its last snapshot
        self._connected_at: float | None = None  # monotonic time of the connect not yet followed by a push
        self._state_due = 0.0
        self._deltas_due = 0.0
        self._prune_due = 0.0
        self.deltas_published = 0
        self.snapshots_published = 0
        self.state_published = 0
        self.errors = 0

    # --- called from other threads ----------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="gateway-publisher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def on_connected(self, _session_present: bool) -> None:
        """After every (re)connect all retained state is compared and pushed again (after the seed wait)."""
        with self._lock:
            self._connected_at = time.monotonic()
        self._wake.set()

    def poke(self, *, state: bool = True) -> None:
        """Look for new deltas now, and (with `state`) for changed config, revocations and keys."""
        if state:
            self._state_due = 0.0
        self._deltas_due = 0.0
        self._wake.set()

    def request_snapshot(self, request: m.ReplicaRequest) -> None:
        with self._lock:
            self._snapshot_sites.add(request.site)
        self._wake.set()

    def seed(self, channel: Channel, site: str, payload: bytes) -> None:
        """A retained message of ours read back from the broker (see the module docstring)."""
        try:
            message = codec.decode_for_channel(payload, channel)
        except codec.ProtocolError as exc:
            log.warning("publisher.retained_unreadable", channel=channel.value, site=site, detail=str(exc))
            return
        if isinstance(message, m.SiteConfig | m.Revocations | m.SigningKeys):
            self.revisions.seed(channel, site, message)

    def status(self) -> dict[str, Any]:
        return {
            "deltas_published": self.deltas_published,
            "snapshots_published": self.snapshots_published,
            "state_published": self.state_published,
            "errors": self.errors,
            "snapshots_waiting": sorted(self._snapshot_sites),
        }

    # --- the thread ------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            if self._stop.is_set() or not self._link.connected:
                continue
            try:
                self.run_once()
            except (LinkDownError, PublishRefusedError) as exc:
                self.errors += 1
                log.warning("publisher.publish_failed", error=str(exc))
            except Exception as exc:  # a bug or a database hiccup must not end publishing for good
                self.errors += 1
                log.error("publisher.failed", error=f"{type(exc).__name__}: {exc}")
                self._stop.wait(1.0)

    def run_once(self) -> None:
        """One round: pending deltas, retained state if due, requested snapshots."""
        with self._lock:
            connected_at = self._connected_at
        if connected_at is not None:
            if time.monotonic() - connected_at < SEED_WAIT_S:
                self._wake.set()  # come back once the retained messages had time to arrive
                return
            with self._lock:
                self._connected_at = None
            self._state_due = 0.0
        self.publish_deltas()
        if time.monotonic() >= self._state_due:
            self.publish_state()
            self._state_due = time.monotonic() + self.refresh_s
        self.publish_snapshots()
        if time.monotonic() >= self._prune_due:
            self.prune_log()
            self._prune_due = time.monotonic() + PRUNE_INTERVAL_S

    # --- retained state --------------------------------------------------------------------------------

    def _sites(self) -> list[str]:
        with self._sessions() as session:
            return list(session.execute(select(Site.slug).order_by(Site.slug)).scalars())

    def publish_state(self) -> None:
        now = utcnow()
        keys = self._keys_provider() if self._keys_provider is not None else None
        for site in self._sites():
            with self._sessions() as session:
                config = build_site_config(session, site, now, checkin=self._checkin)
                revocations = build_revocations(session, site, now)
            self._publish_retained(Channel.CONFIG, site, config, now)
            self._publish_retained(Channel.REVOCATIONS, site, revocations, now)
            if keys is not None:
                self._publish_retained(Channel.KEYS, site, keys, now)
            self._deltas_meanwhile()

    def _publish_retained(
        self,
        channel: Channel,
        site: str,
        message: m.SiteConfig | m.Revocations | m.SigningKeys,
        now: datetime,
    ) -> None:
        digest = content_hash(message)
        if not self.revisions.changed(channel, site, digest):
            return
        revision = 0
        if not isinstance(message, m.SigningKeys):
            revision = self.revisions.next_revision(channel, site, now)
            message = msgspec.structs.replace(message, revision=revision)
        try:
            payload = validated(message)
        except codec.ProtocolError as exc:
            self.errors += 1
            log.error("publisher.invalid_state", channel=channel.value, site=site, detail=str(exc))
            return
        self._link.publish_and_wait(site_topic(site, channel), payload, retain=True)
        self.revisions.remember(channel, site, digest, revision)
        self.state_published += 1
        log.info("publisher.state_published", channel=channel.value, site=site, revision=revision)

    # --- replica ---------------------------------------------------------------------------------------

    def _deltas_meanwhile(self) -> None:
        """Inside a long round: the pending deltas, if a poke asked for them or `poll_s` has passed."""
        if time.monotonic() >= self._deltas_due and not self._stop.is_set():
            self.publish_deltas()

    def publish_deltas(self) -> None:
        """Every site's pending changes, in order. One change often concerns every site (a card revoked),
        so the deltas of `delta_sites` sites are built together (`build_deltas`: a handful of queries), and
        all the deltas of a round are marked published in one transaction at the end, each only once the
        broker acknowledged it."""
        self._deltas_due = time.monotonic() + self.poll_s
        with self._sessions() as session:
            pending = pending_sites(session)
        if not pending:
            return
        acknowledged: dict[int, int] = {}  # site id -> the last seq the broker has
        try:
            with self._sessions() as session:
                for start in range(0, len(pending), self.delta_sites):
                    self._publish_chunk(session, pending[start : start + self.delta_sites], acknowledged)
        finally:
            if acknowledged:
                with self._sessions() as session, session.begin():
                    mark_all_published(session, acknowledged)

    def _publish_chunk(
        self, session: Session, pending: list[tuple[int, str, int]], acknowledged: dict[int, int]
    ) -> None:
        """The deltas of these sites, each site's in seq order, until no site's delta is full (all it had).
        Changes logged meanwhile at the other sites go out in the next round (a poke starts it at once)."""
        while pending and not self._stop.is_set():
            deltas = build_deltas(session, pending, max_changes=self.delta_max_changes)
            session.rollback()  # end the read transaction: the next batch sees what was committed meanwhile
            slugs = {site_id: site for site_id, site, _first in pending}
            for site_id, delta in deltas:
                if self._stop.is_set():
                    return
                site = slugs[site_id]
                self._link.publish_and_wait(site_topic(site, Channel.REPLICA_DELTA), validated(delta))
                acknowledged[site_id] = delta.seq
                self.deltas_published += 1
                log.info(
                    "publisher.delta_published",
                    site=site,
                    prev_seq=delta.prev_seq,
                    seq=delta.seq,
                    upserts=len(delta.upsert),
                    removes=len(delta.remove),
                )
            pending = [  # a full delta: the site may have more (entries have consecutive numbers)
                (site_id, slugs[site_id], delta.seq + 1)
                for site_id, delta in deltas
                if delta.seq - delta.prev_seq >= self.delta_max_changes
            ]

    def prune_log(self) -> None:
        with self._sessions() as session, session.begin():
            pruned = prune_published(session)
        if pruned:
            log.info("publisher.replica_log_pruned", changes=pruned)

    def publish_snapshots(self) -> None:
        """Requested snapshots, at most one per site every SNAPSHOT_MIN_INTERVAL_S (a confused agent that
        keeps asking must not flood the broker with megabytes); later requests wait their turn."""
        now = time.monotonic()
        with self._lock:
            due = {
                s
                for s in self._snapshot_sites
                if now - self._last_snapshot.get(s, -1e9) >= SNAPSHOT_MIN_INTERVAL_S
            }
            self._snapshot_sites -= due
            sites = sorted(due)
        for n, site in enumerate(sites):
            try:
                self._deltas_meanwhile()
                self._publish_snapshot(site)
            except (LinkDownError, PublishRefusedError):
                with self._lock:  # try again after the reconnect
                    self._snapshot_sites.update(sites[n:])
                raise

    def _publish_snapshot(self, site: str) -> None:
        self._last_snapshot[site] = time.monotonic()
        try:
            with self._sessions() as session:
                snapshot = build_snapshot(session, site)
        except UnknownSiteError as exc:
            log.warning("publisher.snapshot_unknown_site", site=site, detail=str(exc))
            return
        try:
            payload = validated(snapshot)
        except codec.ProtocolError as exc:
            self.errors += 1
            log.error("publisher.invalid_snapshot", site=site, detail=str(exc))
            return
        self._link.publish_and_wait(
            site_topic(site, Channel.REPLICA_SNAPSHOT), payload, timeout=SNAPSHOT_TIMEOUT_S
        )
        self.snapshots_published += 1
        log.info(
            "publisher.snapshot_published",
            site=site,
            seq=snapshot.seq,
            credentials=len(snapshot.credentials),
            bytes=len(payload),
        )
