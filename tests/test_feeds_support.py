"""Helpers for the feed tests (no tests here): a real HTTP server for iCalendar files, and a central with
a site, rooms and people to import into, on a fixed clock.

`FeedServer` serves bytes per path from a thread (http.server) and honours If-None-Match and
If-Modified-Since the way calendar servers do; every request is recorded with the answer it got, so tests
can assert that a poll was conditional and that a 304 was what came back.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from central.db import session_factory
from central.feeds.fetch import HttpFetcher
from central.feeds.sync import FeedSyncer, SyncResult, feed_source
from central.models import AuditLog, Booking, BookingFeed, BookingStatus, ReplicaChange
from tests.test_api_support import Api, make_api, make_site

ICAL_DIR = Path(__file__).parent / "data" / "ical"
# Every feed test reads its calendars as if it were noon on 1 March 2030 (the files' events follow it).
NOW = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)


def ical(name: str) -> bytes:
    return (ICAL_DIR / name).read_bytes()


@dataclass
class Resource:
    """What the server answers on one path."""

    body: bytes = b""
    status: int = 200
    etag: bool = True
    last_modified: datetime | None = datetime(2030, 2, 20, 10, 0, tzinfo=UTC)
    delay_s: float = 0.0
    content_type: str = "text/calendar; charset=utf-8"

    @property
    def etag_value(self) -> str:
        return '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'


@dataclass(frozen=True)
class Seen:
    path: str
    if_none_match: str | None
    if_modified_since: str | None
    status: int


@dataclass
class FeedServer:
    resources: dict[str, Resource] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    port: int = 0
    _released: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve(self, path: str, body: bytes, **options: object) -> str:
        """Serve `body` on `path` (replacing what was there); returns the URL."""
        self.resources[path] = Resource(body=body, **options)  # type: ignore[arg-type]
        return self.url(path)

    def statuses(self, path: str) -> list[int]:
        return [seen.status for seen in self.requests if seen.path == path]


def _not_modified(resource: Resource, if_none_match: str | None, if_modified_since: str | None) -> bool:
    if if_none_match is not None:  # RFC 9110: If-None-Match wins over If-Modified-Since
        tags = {tag.strip() for tag in if_none_match.split(",")}
        return resource.etag and ("*" in tags or resource.etag_value in tags)
    if if_modified_since is not None and resource.last_modified is not None:
        try:
            return resource.last_modified <= parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
    return False


def _handler(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            resource = server.resources.get(self.path.split("?")[0])
            inm, ims = self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since")
            if resource is None:
                status = 404
            elif resource.status == 200 and _not_modified(resource, inm, ims):
                status = 304
            else:
                status = resource.status
            server.requests.append(Seen(self.path, inm, ims, status))
            if resource is not None and resource.delay_s and server._released.wait(resource.delay_s):
                return  # the test is over: hang up
            with contextlib.suppress(OSError):  # the client may have given up (timeout tests)
                self._answer(status, resource)

        def _answer(self, status: int, resource: Resource | None) -> None:
            self.send_response(status)
            if resource is not None:
                if resource.etag:
                    self.send_header("ETag", resource.etag_value)
                if resource.last_modified is not None:
                    self.send_header("Last-Modified", format_datetime(resource.last_modified, usegmt=True))
            body = resource.body if resource is not None and status == 200 else b"error\n"
            if status == 304:
                self.end_headers()
                return
            self.send_header("Content-Type", resource.content_type if resource else "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextlib.contextmanager
def feed_server() -> Iterator[FeedServer]:
    state = FeedServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), name="feed-test-server", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state._released.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


# --- a migrated central with one site, two rooms, two people, a feed server and a syncer on a fixed clock --


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class FeedWorld:
    api: Api
    server: FeedServer
    clock: Clock
    syncer: FeedSyncer
    people: dict[str, int]

    @property
    def sessions(self) -> sessionmaker[Session]:
        return session_factory(self.api.engine)

    def add_feed(self, path: str, calendar: str, **fields: Any) -> int:
        """Serve `calendar` (a file in tests/data/ical) on `path` and add a feed for it (default: room 1)."""
        body: dict[str, Any] = {"name": f"Feed {path}", "url": self.server.serve(path, ical(calendar))}
        body.update({"site": "holmen", "room": "moterom-1"} | fields)
        created: dict[str, Any] = self.api.ok("POST", "/feeds", json=body)
        return int(created["id"])

    def sync(self, feed_id: int) -> SyncResult:
        return self.syncer.sync(feed_id)

    def bookings(self, feed_id: int) -> list[Booking]:
        with self.sessions() as session:
            stmt = select(Booking).where(Booking.source == feed_source(feed_id))
            found = list(session.scalars(stmt.order_by(Booking.starts_at, Booking.external_id)))
            for booking in found:
                _ = booking.room.slug  # loaded while the session is open
            return found

    def live(self, feed_id: int) -> dict[str, tuple[datetime, str]]:
        """external id -> (start, room slug) of the feed's bookings that are not cancelled."""
        return {
            str(b.external_id): (b.starts_at, b.room.slug)
            for b in self.bookings(feed_id)
            if b.status is not BookingStatus.CANCELLED
        }

    def snapshot(self, feed_id: int) -> list[tuple[Any, ...]]:
        """Everything about the feed's bookings that an import could change."""
        return [
            (b.id, b.external_id, b.room.slug, b.starts_at, b.ends_at, b.title, b.status, b.holder_id)
            for b in self.bookings(feed_id)
        ]

    def feed(self, feed_id: int) -> BookingFeed:
        with self.sessions() as session:
            feed = session.get(BookingFeed, feed_id)
            assert feed is not None
            return feed

    def work_done(self) -> tuple[int, int]:
        """Audit rows and replica changes so far: any booking write adds to both."""
        with self.sessions() as session:
            audits = session.scalar(select(func.count()).select_from(AuditLog)) or 0
            changes = session.scalar(select(func.count()).select_from(ReplicaChange)) or 0
            return audits, changes


@contextlib.contextmanager
def feed_world(db_url: str, tmp_path: Path) -> Iterator[FeedWorld]:
    with make_api(db_url, tmp_path) as api, feed_server() as server:
        make_site(api)
        api.ok("POST", "/sites/holmen/rooms", json={"slug": "storsal", "name": "Storsal", "zone": "moterom"})
        people = {}
        for name, email in (("Kari Nordmann", "kari@example.no"), ("Sjakkleder", "leder@sjakk.example")):
            person = api.ok(
                "POST", "/people", json={"kind": "association_member", "display_name": name, "email": email}
            )
            people[email] = int(person["id"])
        clock = Clock()
        syncer = FeedSyncer(session_factory(api.engine), fetcher=HttpFetcher(timeout_s=0.5), clock=clock)
        api.client.app.state.feed_syncer = syncer  # type: ignore[attr-defined]
        yield FeedWorld(api, server, clock, syncer, people)
