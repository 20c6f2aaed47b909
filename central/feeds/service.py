"""Booking feeds as admins manage them: create, list, change, delete, and their status in plain words.

A feed belongs to a site; with a room it books that room only. Changing what a feed imports (address, room,
mapping, window) forgets its HTTP validators, so the next sync reads it in full under the new settings.
Deleting a feed keeps the bookings it imported: they are real bookings; cancel them in the booking system.
Audit rows name the feed's host, never its URL, which often holds a private token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.feeds.errors import FeedError
from central.feeds.fetch import feed_host, http_url
from central.models import BookingFeed, Site
from central.services import audit
from central.services.errors import InvalidError, NotFoundError
from central.services.query import Slice, changed_fields, paginate
from central.services.sites import get_site, room_for_field

ENTITY = "booking_feed"
# Changing any of these changes what the feed imports: read it in full next time.
_IMPORT_SETTINGS = frozenset({"url", "site", "room", "resource_property", "room_map", "horizon_days"})


def get_feed(session: Session, feed_id: int) -> BookingFeed:
    feed = session.get(BookingFeed, feed_id)
    if feed is None:
        raise NotFoundError(f"booking feed {feed_id} does not exist")
    return feed


def list_feeds(
    session: Session, *, limit: int, offset: int, site: str | None = None, enabled: bool | None = None
) -> Slice[BookingFeed]:
    stmt = select(BookingFeed)
    if site is not None:
        stmt = stmt.where(BookingFeed.site_id == get_site(session, site).id)
    if enabled is not None:
        stmt = stmt.where(BookingFeed.enabled == enabled)
    return paginate(session, stmt.order_by(BookingFeed.id), limit, offset)


def create_feed(session: Session, actor: str, fields: dict[str, Any]) -> BookingFeed:
    values = _resolve(session, fields, None)
    feed = BookingFeed(**values)
    session.add(feed)
    session.flush()
    audit.record(session, actor, "create", ENTITY, feed.id, _detail(fields))
    return feed


def update_feed(session: Session, actor: str, feed_id: int, changes: dict[str, Any]) -> BookingFeed:
    feed = get_feed(session, feed_id)
    values = _resolve(session, changes, feed)
    diff = changed_fields(feed, values)
    if diff:
        if _IMPORT_SETTINGS & set(diff):
            feed.etag = feed.last_modified = None
            feed.last_synced_at = None
        audit.record(session, actor, "update", ENTITY, feed.id, _detail(diff))
    return feed


def delete_feed(session: Session, actor: str, feed_id: int) -> None:
    feed = get_feed(session, feed_id)
    session.delete(feed)
    session.flush()
    audit.record(session, actor, "delete", ENTITY, feed_id)


def _resolve(session: Session, fields: dict[str, Any], current: BookingFeed | None) -> dict[str, Any]:
    """Check the input and turn slugs into rows; returns column values."""
    out = dict(fields)
    if "url" in out:
        try:
            http_url(out["url"])
        except FeedError as exc:
            raise InvalidError(str(exc), "url") from None
    if "resource_property" in out:
        out["resource_property"] = out["resource_property"].upper()
    site = current.site if current is not None else None
    if "site" in out:
        try:
            site = get_site(session, out.pop("site"))
        except NotFoundError as exc:
            raise InvalidError(str(exc), "site") from None
        out["site"] = site
    if site is None:
        raise InvalidError("a feed needs the site whose rooms it books", "site")
    if "room" in out:
        slug = out.pop("room")
        out["room"] = None if slug is None else room_for_field(session, site, slug)
    elif current is not None and current.room is not None and current.room.site_id != site.id:
        raise InvalidError(
            f"the feed books room '{current.room.slug}' of another site;"
            f" give a room at '{site.slug}' or null",
            "room",
        )
    room_map = out.get("room_map", current.room_map if current is not None else None)
    if room_map and ("room_map" in out or "site" in out):
        _check_room_map(site, room_map)
    return out


def _check_room_map(site: Site, room_map: dict[str, str]) -> None:
    slugs = {room.slug for room in site.rooms}
    for text, slug in room_map.items():
        if slug not in slugs:
            raise InvalidError(
                f"room_map: '{text}' points at room '{slug}', which does not exist at site '{site.slug}'",
                "room_map",
            )


def _detail(fields: dict[str, Any]) -> dict[str, Any]:
    detail = dict(fields)
    if "url" in detail:
        detail["url"] = f"(a feed at {feed_host(str(detail['url']))})"
    return detail


# --- status ------------------------------------------------------------------------------------------------


def feed_state(feed: BookingFeed) -> str:
    """disabled, never_synced, ok or failing (the last attempt failed: `last_error` is set)."""
    if not feed.enabled:
        return "disabled"
    if feed.last_checked_at is None:
        return "never_synced"
    if feed.last_error is not None:
        return "failing"
    return "ok"


def _when(at: datetime | None) -> str:
    return "never" if at is None else f"{at:%Y-%m-%d %H:%M} UTC"


def status_text(feed: BookingFeed) -> str:
    """One or two sentences an admin can act on."""
    state = feed_state(feed)
    if state == "never_synced":
        return f"Not read yet: it is read at the next poll, or now with POST /feeds/{feed.id}/sync."
    summary = feed.last_summary or {}
    counts = (
        f"{summary.get('created', 0)} new, {summary.get('updated', 0)} changed, "
        f"{summary.get('cancelled', 0)} cancelled, {summary.get('skipped_total', 0)} skipped"
    )
    if state == "failing":
        kept = (
            f" The bookings from the last good import ({_when(feed.last_synced_at)}) stay in force."
            if feed.last_synced_at is not None
            else " No booking has been imported from it yet."
        )
        return f"Failing: the last attempt ({_when(feed.last_error_at)}) failed: {feed.last_error}.{kept}"
    prefix = "Disabled (not polled)." if state == "disabled" else "OK."
    if feed.last_ok_at is None:
        return prefix
    checked, imported = _when(feed.last_ok_at), _when(feed.last_synced_at)
    failed = f" It last failed at {_when(feed.last_error_at)}." if feed.last_error_at is not None else ""
    return f"{prefix} Last checked {checked}; last import {imported}: {counts}.{failed}"
