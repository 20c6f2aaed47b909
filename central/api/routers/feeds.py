"""/feeds: iCalendar booking feeds (admin only): configure them, see their status, sync one now."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import AfterValidator, Field, StringConstraints

from central.api.auth import Admin
from central.api.deps import DbSession
from central.api.paging import Page, Paging, page_of
from central.api.problems import problem_response
from central.api.routers.common import Input, Name, Output, Patch, PathId, Ref, Slug
from central.feeds import service
from central.feeds.errors import FeedError
from central.feeds.fetch import http_url
from central.feeds.sync import FeedSyncer, SyncResult, feed_source
from central.models import BookingFeed
from central.services.errors import ConflictError

router = APIRouter(prefix="/feeds", tags=["booking feeds"])

PROPERTY_PATTERN = r"^[A-Za-z][A-Za-z0-9-]{0,62}$"


def _feed_url(value: str) -> str:
    try:
        http_url(value)
    except FeedError as exc:
        raise ValueError(str(exc)) from None
    return value


def _property_name(value: str) -> str:
    if not re.fullmatch(PROPERTY_PATTERN, value):
        raise ValueError("must be an iCalendar property name like LOCATION, RESOURCES or X-VEGA-ROOM")
    return value.upper()


FeedUrl = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
    AfterValidator(_feed_url),
    Field(description="The feed's address: http://, https:// or webcal:// (read as https)."),
]
PropertyName = Annotated[
    str,
    StringConstraints(max_length=64),
    AfterValidator(_property_name),
    Field(description="For a site feed: the event property naming the room (LOCATION, RESOURCES, X-...)."),
]
RoomMap = Annotated[
    dict[Ref, Slug],
    Field(max_length=500, description="For a site feed: property text -> room slug, e.g. {'Sal A': 'sal-a'}"),
]
HorizonDays = Annotated[int, Field(ge=1, le=366, description="How many days ahead events are imported.")]


class FeedIn(Input):
    name: Name
    url: FeedUrl
    site: Slug
    room: Slug | None = Field(default=None, description="Every event books this room; none for a site feed.")
    resource_property: PropertyName = "LOCATION"
    room_map: RoomMap = Field(default_factory=dict)
    horizon_days: HorizonDays = 60
    enabled: bool = True


class FeedPatch(Patch):
    nullable = frozenset({"room"})

    name: Name | None = None
    url: FeedUrl | None = None
    site: Slug | None = None
    room: Slug | None = None
    resource_property: PropertyName | None = None
    room_map: RoomMap | None = None
    horizon_days: HorizonDays | None = None
    enabled: bool | None = None


class SkippedOut(Output):
    event: str
    reason: str


class FeedStatus(Output):
    state: str = Field(description="ok, failing, never_synced or disabled.")
    text: str = Field(description="The status in plain words.")
    last_checked_at: datetime | None
    last_ok_at: datetime | None
    last_synced_at: datetime | None = Field(description="When the feed's content was last imported.")
    last_error: str | None
    last_error_at: datetime | None
    last_result: dict[str, Any] = Field(description="Counts of the last import and the events it skipped.")


class FeedOut(Output):
    id: int
    name: str
    url: str
    site: str
    room: str | None
    source: str = Field(description="The `source` of the bookings this feed imports.")
    resource_property: str
    room_map: dict[str, str]
    horizon_days: int
    enabled: bool
    created_at: datetime
    status: FeedStatus


class SyncOut(Output):
    feed_id: int
    outcome: str = Field(description="imported, or not_modified (the server said nothing changed).")
    created: int
    updated: int
    unchanged: int
    cancelled: int
    skipped: list[SkippedOut]


def _feed(feed: BookingFeed) -> FeedOut:
    return FeedOut(
        id=feed.id,
        name=feed.name,
        url=feed.url,
        site=feed.site.slug,
        room=feed.room.slug if feed.room is not None else None,
        source=feed_source(feed.id),
        resource_property=feed.resource_property,
        room_map=dict(feed.room_map or {}),
        horizon_days=feed.horizon_days,
        enabled=feed.enabled,
        created_at=feed.created_at,
        status=FeedStatus(
            state=service.feed_state(feed),
            text=service.status_text(feed),
            last_checked_at=feed.last_checked_at,
            last_ok_at=feed.last_ok_at,
            last_synced_at=feed.last_synced_at,
            last_error=feed.last_error,
            last_error_at=feed.last_error_at,
            last_result=dict(feed.last_summary or {}),
        ),
    )


def _sync_out(result: SyncResult) -> SyncOut:
    return SyncOut(
        feed_id=result.feed_id,
        outcome=result.outcome,
        created=result.created,
        updated=result.updated,
        unchanged=result.unchanged,
        cancelled=result.cancelled,
        skipped=[SkippedOut(event=s.event, reason=s.reason) for s in result.skipped],
    )


@router.get("", summary="List booking feeds with their status")
def list_feeds(
    session: DbSession, _: Admin, paging: Paging, site: Slug | None = None, enabled: bool | None = None
) -> Page[FeedOut]:
    found = service.list_feeds(session, limit=paging.limit, offset=paging.offset, site=site, enabled=enabled)
    return page_of(found, _feed)


@router.post("", status_code=201, summary="Add a booking feed (read at the next poll)")
def create_feed(session: DbSession, admin: Admin, body: FeedIn, response: Response) -> FeedOut:
    feed = service.create_feed(session, admin.username, body.model_dump())
    response.headers["Location"] = f"/feeds/{feed.id}"
    return _feed(feed)


@router.get("/{feed_id}", summary="Get a booking feed and its status (last error in plain words)")
def get_feed(session: DbSession, _: Admin, feed_id: PathId) -> FeedOut:
    return _feed(service.get_feed(session, feed_id))


@router.patch("/{feed_id}", summary="Change a booking feed")
def update_feed(session: DbSession, admin: Admin, feed_id: PathId, body: FeedPatch) -> FeedOut:
    return _feed(service.update_feed(session, admin.username, feed_id, body.model_dump(exclude_unset=True)))


@router.delete("/{feed_id}", status_code=204, summary="Delete a booking feed (its bookings are kept)")
def delete_feed(session: DbSession, admin: Admin, feed_id: PathId) -> None:
    service.delete_feed(session, admin.username, feed_id)


@router.post(
    "/{feed_id}/sync",
    summary="Read the feed now and import its changes",
    response_model=SyncOut,
    responses={502: {"description": "The feed could not be fetched or read; its bookings were kept"}},
)
def sync_feed(session: DbSession, _: Admin, feed_id: PathId, request: Request) -> Any:
    feed = service.get_feed(session, feed_id)
    if not feed.enabled:
        raise ConflictError(f"booking feed {feed_id} is disabled; enable it first")
    session.commit()  # end this request's transaction: the sync has its own, and must not wait on ours
    syncer = getattr(request.app.state, "feed_syncer", None) or FeedSyncer(request.app.state.session_factory)
    result = syncer.sync(feed_id)
    if result.outcome == "failed":
        detail = f"booking feed {feed_id} was not synced: {result.error}; its bookings were kept"
        return problem_response(request, 502, detail, title="Feed failed", kind="feed-failed")
    return _sync_out(result)
