"""Syncing a feed: fetch it, read it, and bring its bookings (source `ical:<feed id>`) in line with it.

Bookings change only through the booking service (`upsert_external`, `cancel_external`), so imports are
audited and reach the sites' replicas like any other booking change. The rules:
- a 304 Not Modified costs one small status update and nothing else;
- a fetch or read that fails changes no booking: the last good ones stay in force, the error is recorded;
- an event cancelled in the feed (STATUS:CANCELLED), or gone from it while its booking is still ahead and
  inside the window, cancels the booking; an event that comes back re-confirms it, unless staff cancelled it
  in central, which the feed does not overrule;
- events we cannot read or place in a room leave their existing bookings alone (we cannot tell what the
  booking system meant) and are listed in the feed's status;
- the holder is the person whose e-mail is the ORGANIZER's (else the first matching ATTENDEE's); when
  there is none the organiser's name (CN) goes into the booking's organisation. The other ATTENDEEs whose
  e-mail exactly one person has become the booking's co-holders (a changed attendee list is applied).
Even with a 304 answer the feed is read in full every `FULL_REFRESH`, so a window that moved on with time
picks up the next occurrences of recurring events.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from central.db import session_scope, utcnow
from central.feeds.errors import FeedError
from central.feeds.fetch import Fetched, Fetcher, HttpFetcher, Validators, feed_host
from central.feeds.parse import Occurrence, ParsedFeed, Skipped, parse_feed
from central.feeds.rooms import RoomIndex, RoomInfo, room_index
from central.models import AuditLog, Booking, BookingFeed, BookingStatus, Person
from central.schedules import DEFAULT_TIMEZONE
from central.services.bookings import MAX_CO_HOLDERS, cancel_external, upsert_external
from central.services.errors import NotFoundError, ServiceError

log = structlog.get_logger(__name__)

SOURCE_PREFIX = "ical:"
FULL_REFRESH = timedelta(hours=6)
MAX_SKIPPED_KEPT = 20
IN_CHUNK = 500
_LIVE = (BookingStatus.CONFIRMED, BookingStatus.CHECKED_IN)
_COMPARED = ("room_id", "starts_at", "ends_at", "title", "holder_id", "organisation", "co_holder_ids")
# One apply at a time in this process: the poller and a "sync now" must not insert the same booking twice.
_APPLY_LOCK = threading.Lock()


def feed_source(feed_id: int) -> str:
    """The booking source of a feed's bookings (and the actor in their audit rows)."""
    return f"{SOURCE_PREFIX}{feed_id}"


@dataclass
class SyncResult:
    """What one sync did; `outcome` is imported, not_modified or failed (then `error` says why)."""

    feed_id: int
    outcome: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    cancelled: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        """The JSON kept as the feed's `last_summary` (the first skipped events, and how many in all)."""
        return {
            "outcome": self.outcome,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "cancelled": self.cancelled,
            "skipped_total": len(self.skipped),
            "skipped": [{"event": s.event, "reason": s.reason} for s in self.skipped[:MAX_SKIPPED_KEPT]],
        }


@dataclass(frozen=True)
class _Plan:
    """What a sync needs from the feed row, read before the fetch so no transaction waits on the network."""

    feed_id: int
    url: str
    tz: tzinfo
    resource_property: str
    horizon_days: int
    validators: Validators


class FeedSyncer:
    """Syncs feeds with sessions from `sessions`; `fetcher` and `clock` are injectable for tests."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        fetcher: Fetcher | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.fetcher: Fetcher = fetcher if fetcher is not None else HttpFetcher()
        self.clock = clock

    def sync(self, feed_id: int) -> SyncResult:
        """Sync one feed now. NotFoundError for an unknown feed; feed failures are returned and recorded."""
        now = self.clock()
        plan = self._plan(feed_id, now)
        try:
            fetched = self.fetcher(plan.url, plan.validators)
            if fetched.not_modified:
                return self._not_modified(plan, fetched, now)
            assert fetched.body is not None
            end = now + timedelta(days=plan.horizon_days)
            parsed = parse_feed(
                fetched.body, start=now, end=end, tz=plan.tz, resource_property=plan.resource_property
            )
        except FeedError as exc:
            return self._failed(plan.feed_id, plan.url, now, str(exc))
        try:
            with _APPLY_LOCK, session_scope(self.sessions) as session:
                result = _apply(session, feed_id, parsed, fetched.validators, now)
        except ServiceError as exc:
            return self._failed(plan.feed_id, plan.url, now, f"the bookings could not be saved: {exc}")
        except SQLAlchemyError:
            log.exception("feeds.save_failed", feed=feed_id)
            message = "the bookings could not be saved: database error (details in the server log)"
            return self._failed(plan.feed_id, plan.url, now, message)
        log.info(
            "feeds.synced",
            feed=feed_id,
            host=feed_host(plan.url),
            created=result.created,
            updated=result.updated,
            cancelled=result.cancelled,
            unchanged=result.unchanged,
            skipped=len(result.skipped),
        )
        return result

    def sync_all(self) -> list[SyncResult]:
        """Sync every enabled feed in turn; one that fails, however badly, never stops the others."""
        try:
            with self.sessions() as session:
                ids = list(
                    session.scalars(
                        select(BookingFeed.id).where(BookingFeed.enabled).order_by(BookingFeed.id)
                    )
                )
        except SQLAlchemyError as exc:
            log.error("feeds.list_failed", error=type(exc).__name__)
            return []
        results = []
        for feed_id in ids:
            try:
                results.append(self.sync(feed_id))
            except NotFoundError:
                continue  # deleted since we listed it
            except Exception:  # a bug or a database outage: log it, record it, go on with the next feed
                log.exception("feeds.sync_crashed", feed=feed_id)
                message = "the import failed unexpectedly (details in the server log)"
                results.append(self._failed(feed_id, "", self.clock(), message))
        return results

    # --- steps -----------------------------------------------------------------------------------------

    def _plan(self, feed_id: int, now: datetime) -> _Plan:
        with self.sessions() as session:
            feed = session.get(BookingFeed, feed_id)
            if feed is None:
                raise NotFoundError(f"booking feed {feed_id} does not exist")
            fresh = feed.last_synced_at is not None and now - feed.last_synced_at < FULL_REFRESH
            return _Plan(
                feed_id=feed.id,
                url=feed.url,
                tz=_timezone(feed.site.timezone),
                resource_property=feed.resource_property,
                horizon_days=feed.horizon_days,
                validators=Validators(feed.etag, feed.last_modified) if fresh else Validators(),
            )

    def _not_modified(self, plan: _Plan, fetched: Fetched, now: datetime) -> SyncResult:
        with session_scope(self.sessions) as session:
            feed = session.get(BookingFeed, plan.feed_id)
            if feed is not None:
                feed.last_checked_at = feed.last_ok_at = now
                feed.last_error = None  # a failure's time stays in last_error_at
                feed.etag, feed.last_modified = fetched.validators.etag, fetched.validators.last_modified
        log.debug("feeds.not_modified", feed=plan.feed_id, host=feed_host(plan.url))
        return SyncResult(plan.feed_id, "not_modified")

    def _failed(self, feed_id: int, url: str, now: datetime, message: str) -> SyncResult:
        """Log and record a failure; the feed's bookings and HTTP validators stay as they were."""
        log.warning("feeds.sync_failed", feed=feed_id, host=feed_host(url) if url else None, error=message)
        try:
            with session_scope(self.sessions) as session:
                feed = session.get(BookingFeed, feed_id)
                if feed is not None:
                    feed.last_checked_at = feed.last_error_at = now
                    feed.last_error = message
        except SQLAlchemyError as exc:
            log.error("feeds.status_not_saved", feed=feed_id, error=type(exc).__name__)
        return SyncResult(feed_id, "failed", error=message)


def _timezone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


# --- applying a parsed feed (inside one transaction) -------------------------------------------------------


def _apply(
    session: Session, feed_id: int, parsed: ParsedFeed, validators: Validators, now: datetime
) -> SyncResult:
    feed = session.get(BookingFeed, feed_id, with_for_update=True)
    if feed is None:
        raise NotFoundError(f"booking feed {feed_id} was deleted during the import")
    result = SyncResult(feed_id, "imported", skipped=list(parsed.skipped))
    planned, protected = _placed(_index(feed), parsed, result)
    importer = _Importer(session, feed, result, _holders(session, parsed.occurrences))
    existing = importer.existing([key for key, _, _ in planned])
    for key, occurrence, room in planned:
        importer.apply(key, occurrence, room, existing.get(key))
    window_end = now + timedelta(days=feed.horizon_days)
    importer.cancel_missing(now, window_end, {key for key, _, _ in planned}, protected)
    feed.etag, feed.last_modified = validators.etag, validators.last_modified
    feed.last_checked_at = feed.last_ok_at = feed.last_synced_at = now
    feed.last_error = None  # a failure's time stays in last_error_at
    feed.last_summary = result.summary()
    return result


def _index(feed: BookingFeed) -> RoomIndex:
    rooms = [RoomInfo(r.slug, r.name, r.calendar_resource) for r in feed.site.rooms]
    fixed = feed.room.slug if feed.room is not None else None
    return room_index(feed.resource_property, fixed, feed.room_map or {}, rooms)


def _placed(
    index: RoomIndex, parsed: ParsedFeed, result: SyncResult
) -> tuple[list[tuple[str, Occurrence, str]], set[str]]:
    """(external id, occurrence, room slug) for each booking the feed asks for; and the id prefixes whose
    bookings must be left alone (unreadable events, events in no known room)."""
    planned: list[tuple[str, Occurrence, str]] = []
    keys: set[str] = set()
    protected = set(parsed.broken)
    for occurrence in parsed.occurrences:
        rooms = index.rooms_for(occurrence.resources)
        if isinstance(rooms, str):
            result.skipped.append(Skipped(occurrence.label, rooms))
            protected.add(occurrence.key)
            continue
        for room in rooms:
            key = occurrence.key if len(rooms) == 1 else f"{occurrence.key}@{room}"
            if key in keys:
                result.skipped.append(Skipped(occurrence.label, "its UID appears twice in the feed"))
                continue
            keys.add(key)
            planned.append((key, occurrence, room))
    return planned, protected


def _is_protected(key: str, protected: set[str]) -> bool:
    return any(key == p or key.startswith((p + "#", p + "@")) for p in protected)


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), IN_CHUNK):
        yield items[i : i + IN_CHUNK]


def _holders(session: Session, occurrences: Iterable[Occurrence]) -> dict[str, int]:
    """E-mail (lowercase) -> person id, for addresses in the feed that exactly one person has."""
    emails = sorted({e for o in occurrences for e in (o.organizer_email, *o.attendee_emails) if e})
    owners: dict[str, list[int]] = {}
    for chunk in _chunks(emails):
        email = func.lower(Person.email)
        for address, person_id in session.execute(select(email, Person.id).where(email.in_(chunk))):
            owners.setdefault(address, []).append(person_id)
    return {address: ids[0] for address, ids in owners.items() if len(ids) == 1}


def _compared(booking: Booking) -> tuple[Any, ...]:
    """The booking's values of the fields a feed sets, in `_COMPARED` order."""
    return (*(getattr(booking, name) for name in _COMPARED[:-1]), _co_holder_ids(booking))


def _state(booking: Booking | None) -> tuple[Any, ...] | None:
    if booking is None:
        return None
    return (
        booking.room_id,
        booking.starts_at,
        booking.ends_at,
        booking.title,
        booking.holder_id,
        booking.organisation,
        booking.status,
        _co_holder_ids(booking),
    )


def _co_holder_ids(booking: Booking) -> list[int]:
    return sorted(p.id for p in booking.co_holders)


class _Importer:
    """Creates, updates and cancels one feed's bookings, counting what it did into `result`."""

    def __init__(self, session: Session, feed: BookingFeed, result: SyncResult, holders: dict[str, int]):
        self.session = session
        self.source = feed_source(feed.id)
        self.site = feed.site.slug
        self.room_ids = {r.slug: r.id for r in feed.site.rooms}
        self.result = result
        self.holders = holders

    def existing(self, keys: list[str]) -> dict[str, Booking]:
        found: dict[str, Booking] = {}
        for chunk in _chunks(keys):
            stmt = (
                select(Booking)
                .where(Booking.source == self.source, Booking.external_id.in_(chunk))
                .options(selectinload(Booking.co_holders))  # compared below: one query, not one per booking
            )
            found.update((b.external_id, b) for b in self.session.scalars(stmt) if b.external_id)
        return found

    def apply(self, key: str, occurrence: Occurrence, room: str, current: Booking | None) -> None:
        if occurrence.cancelled:
            if current is not None and current.status is not BookingStatus.CANCELLED:
                cancel_external(self.session, self.source, self.source, key)
                self.result.cancelled += 1
            return
        holder, co_holders = self._people(occurrence)
        fields: dict[str, Any] = {
            "site": self.site,
            "room": room,
            "starts_at": occurrence.starts_at,
            "ends_at": occurrence.ends_at,
            "title": occurrence.title,
            "holder_id": holder,
            "organisation": None if holder is not None else occurrence.organizer_name,
            "co_holder_ids": co_holders,
        }
        if current is not None and current.status is not BookingStatus.CANCELLED:
            wanted = (self.room_ids.get(room), *(fields[name] for name in _COMPARED[1:]))
            if _compared(current) == wanted:
                self.result.unchanged += 1  # the usual case: no service call, no query
                return
        if current is not None and current.status is BookingStatus.CANCELLED:
            if not self._cancelled_by_feed(current):
                reason = "staff cancelled its booking in central; the feed does not overrule that"
                self.result.skipped.append(Skipped(occurrence.label, reason))
                return
            fields["status"] = BookingStatus.CONFIRMED
        before = _state(current)
        booking, created = upsert_external(self.session, self.source, self.source, key, fields)
        if created:
            self.result.created += 1
        elif _state(booking) != before:
            self.result.updated += 1
        else:
            self.result.unchanged += 1

    def cancel_missing(self, now: datetime, end: datetime, present: set[str], protected: set[str]) -> None:
        """Cancel live bookings still ahead in the window whose events the feed no longer has."""
        stmt = select(Booking).where(
            Booking.source == self.source,
            Booking.status.in_(_LIVE),
            Booking.ends_at > now,
            Booking.starts_at < end,
        )
        for booking in list(self.session.scalars(stmt)):
            key = booking.external_id
            if key is None or key in present or _is_protected(key, protected):
                continue
            cancel_external(self.session, self.source, self.source, key)
            self.result.cancelled += 1

    def _people(self, occurrence: Occurrence) -> tuple[int | None, list[int]]:
        """The holder (the ORGANIZER's person, else the first ATTENDEE's) and the other attendees' people
        as co-holders, in id order; addresses no person or several people have count for nobody."""
        known = [
            self.holders[email]
            for email in (occurrence.organizer_email, *occurrence.attendee_emails)
            if email and email in self.holders
        ]
        if not known:
            return None, []
        holder = known[0]
        others = list(dict.fromkeys(p for p in known[1:] if p != holder))
        if len(others) > MAX_CO_HOLDERS:
            log.warning("feeds.co_holders_capped", event=occurrence.label, attendees=len(others))
            others = others[:MAX_CO_HOLDERS]  # the first in the feed's order; the event is still imported
        return holder, sorted(others)

    def _cancelled_by_feed(self, booking: Booking) -> bool:
        last = self.session.scalars(
            select(AuditLog.actor)
            .where(
                AuditLog.entity == "booking",
                AuditLog.entity_id == str(booking.id),
                AuditLog.action == "cancel",
            )
            .order_by(AuditLog.id.desc())
            .limit(1)
        ).first()
        return last is None or last == self.source
