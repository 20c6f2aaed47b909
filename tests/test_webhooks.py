"""The booking system hears about no-shows, check-ins, extensions and early ends: a durable outbox, signed
POSTs to a real HTTP server, retries with backoff, one idempotency key per event, and nothing lost across a
restart or while the receiver is down."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from central.cli import app as cli
from central.config import ConfigError, Settings
from central.db import make_engine, session_factory
from central.models import ApiRole, Booking, BookingStatus, WebhookKind, WebhookOutbox
from central.services.booking_changes import extend_booking
from central.services.checkin import check_in, sweep_no_shows
from central.webhooks import outbox
from central.webhooks.payload import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    BookingFacts,
    build_payload,
    encode,
    sign,
    verify,
)
from central.webhooks.policy import is_delivered, retry_delay
from central.webhooks.sender import WebhookSender, start_for_settings, webhook_secret
from tests.test_booking_changes import api_with, book
from tests.test_checkin import RULES
from tests.test_replica import World, build_world

T0 = datetime(2030, 5, 6, 16, 0, tzinfo=UTC)


# --- pure: backoff and payload --------------------------------------------------------------------------


def test_retries_back_off_from_30_seconds_doubling_up_to_an_hour() -> None:
    delays = [retry_delay(n) for n in range(1, 10)]
    assert delays[:4] == [timedelta(seconds=s) for s in (30, 60, 120, 240)]
    assert delays[-1] == timedelta(hours=1) and max(delays) == timedelta(hours=1)
    assert retry_delay(10_000) == timedelta(hours=1)
    with pytest.raises(ValueError, match="at least one failed attempt"):
        retry_delay(0)
    assert [is_delivered(s) for s in (200, 204, 299, 301, 400, 500)] == [
        True,
        True,
        True,
        False,
        False,
        False,
    ]


FACTS = BookingFacts(
    id=12,
    source="vega",
    external_id="V-1001",
    site="holmen",
    room="moterom-1",
    calendar_resource="Møterom 1",
    starts_at=T0,
    ends_at=T0 + timedelta(hours=2),
    status="checked_in",
    checked_in_at=T0 - timedelta(minutes=5),
)


def test_the_payload_names_the_booking_as_the_booking_system_knows_it_and_is_signed() -> None:
    payload = build_payload(
        "e-1", WebhookKind.ENDED_EARLY, FACTS, T0 + timedelta(hours=1), previous_ends_at=T0
    )
    assert payload["kind"] == "ended_early" and payload["id"] == "e-1"
    assert (payload["booking"]["source"], payload["booking"]["external_id"]) == ("vega", "V-1001")
    assert (
        payload["occurred_at"] == "2030-05-06T17:00:00Z"
        and payload["previous_ends_at"] == "2030-05-06T16:00:00Z"
    )
    assert payload["booking"]["checked_in_at"] == "2030-05-06T15:55:00Z"
    body = encode(payload)
    assert body == encode(json.loads(body))  # the same bytes, so the same signature, on every retry
    secret = "ab" * 32
    assert verify(secret, body, sign(secret, body))
    assert sign(secret, body).startswith("sha256=")
    assert not verify(secret, body.replace(b"17:00", b"18:00"), sign(secret, body))
    assert not verify("cd" * 32, body, sign(secret, body))
    assert not verify(secret, body, None)


# --- a booking system stand-in ----------------------------------------------------------------------------


@dataclass
class Receiver:
    """A real HTTP server: answers the scripted statuses first, then 200; keeps every request, and handles
    an event once per idempotency key, as a careful booking system would."""

    url: str = ""
    script: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    handled: dict[str, dict[str, Any]] = field(default_factory=dict)

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        self.requests.append((headers, body))
        status = self.script.pop(0) if self.script else 200
        if is_delivered(status):
            self.handled.setdefault(headers[IDEMPOTENCY_HEADER], json.loads(body))
        return status

    @property
    def kinds(self) -> list[str]:
        return [event["kind"] for event in self.handled.values()]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = state.answer(dict(self.headers.items()), body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/meraapent/events?key=s3cret"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


# --- with a database --------------------------------------------------------------------------------------


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> Iterator[World]:
    with sessions() as session:
        w = build_world(session)
        for name, booking in w.bookings.items():
            booking.source, booking.external_id = "vega", f"V-{name}"
        session.commit()
        yield w


def checked_in(sessions: sessionmaker[Session], world: World, name: str = "sjakk") -> Booking:
    """Check the booking in (which queues its event) and commit."""
    with sessions() as session, session.begin():
        booking = session.get(Booking, world.bookings[name].id)
        assert booking is not None
        return check_in(session, "kiosk", booking.id, booking.starts_at, via="kiosk", rules=RULES)


def rows(sessions: sessionmaker[Session]) -> list[WebhookOutbox]:
    with sessions() as session:
        return list(session.scalars(select(WebhookOutbox).order_by(WebhookOutbox.id)))


def test_an_event_reaches_the_booking_system_signed_with_the_printed_secret(
    sessions: sessionmaker[Session], world: World, receiver: Receiver, tmp_path: Path
) -> None:
    printed = CliRunner().invoke(cli, ["webhook-secret", "--data-dir", str(tmp_path)])
    assert printed.exit_code == 0, printed.output
    secret = printed.stdout.strip()
    assert len(secret) == 64 and (tmp_path / "secrets" / "webhook.key").stat().st_mode & 0o077 == 0
    settings = Settings(data_dir=tmp_path)
    assert webhook_secret(settings) == secret  # the same on every call: made once
    booking = checked_in(sessions, world)

    sender = WebhookSender(sessions, receiver.url, webhook_secret(settings), clock=Clock(booking.starts_at))
    assert len(sender.send_once().delivered) == 1

    ((headers, body),) = receiver.requests
    assert verify(secret, body, headers[SIGNATURE_HEADER])
    event = json.loads(body)
    assert headers[IDEMPOTENCY_HEADER] == event["id"] and headers["Content-Type"] == "application/json"
    assert event["kind"] == "checked_in" and event["booking"]["id"] == booking.id
    assert (event["booking"]["source"], event["booking"]["external_id"]) == ("vega", "V-sjakk")
    assert event["booking"]["status"] == "checked_in" and event["occurred_at"].endswith("Z")
    (row,) = rows(sessions)
    assert row.delivered_at == booking.starts_at and row.attempts == 1
    assert sender.send_once().delivered == []  # delivered once, never again


def test_a_receiver_that_fails_twice_handles_the_event_once(
    sessions: sessionmaker[Session], world: World, receiver: Receiver
) -> None:
    booking = checked_in(sessions, world)
    receiver.script = [500, 503]
    clock = Clock(booking.starts_at)
    sender = WebhookSender(sessions, receiver.url, "ab" * 32, clock=clock)

    assert len(sender.send_once().failed) == 1
    (row,) = rows(sessions)
    assert (row.attempts, row.last_error, row.delivered_at) == (1, "HTTP 500 Internal Server Error", None)
    assert row.next_attempt_at == clock.now + timedelta(seconds=30)
    assert sender.send_once().failed == [] and len(receiver.requests) == 1  # not before the backoff
    clock.advance(seconds=30)
    assert len(sender.send_once().failed) == 1
    clock.advance(seconds=59)
    assert sender.send_once().delivered == []
    clock.advance(seconds=1)
    assert len(sender.send_once().delivered) == 1

    assert len(receiver.requests) == 3
    assert len({h[IDEMPOTENCY_HEADER] for h, _ in receiver.requests}) == 1  # the same event each time
    assert len({body for _, body in receiver.requests}) == 1
    assert receiver.kinds == ["checked_in"]
    (row,) = rows(sessions)
    assert row.attempts == 3 and row.delivered_at == clock.now


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_events_wait_in_the_outbox_across_a_restart_while_the_receiver_is_down(
    db_url: str, engine: Engine, world: World, receiver: Receiver
) -> None:
    sessions = session_factory(engine)
    booking = checked_in(sessions, world)
    with sessions() as session, session.begin():
        released = sweep_no_shows(session, booking.starts_at + timedelta(minutes=20), RULES)
    assert [b.id for b in released] == [world.bookings["over"].id]
    clock = Clock(booking.starts_at + timedelta(minutes=20))
    down = f"http://127.0.0.1:{free_port()}/events"
    assert len(WebhookSender(sessions, down, "ab" * 32, clock=clock).send_once().failed) == 1
    engine.dispose()  # central stops

    again = make_engine(db_url)  # central starts again, the booking system is back
    try:
        restarted = session_factory(again)
        assert "no answer from 127.0.0.1" in str(rows(restarted)[0].last_error)
        clock.advance(minutes=1)
        sent = WebhookSender(restarted, receiver.url, "ab" * 32, clock=clock).send_once()
        assert len(sent.delivered) == 2
        assert receiver.kinds == ["checked_in", "no_show"]
        assert all(row.delivered_at is not None for row in rows(restarted))
    finally:
        again.dispose()


def test_a_bookings_events_arrive_in_the_order_they_happened(
    sessions: sessionmaker[Session], world: World, receiver: Receiver
) -> None:
    booking = checked_in(sessions, world)
    with sessions() as session, session.begin():
        extend_booking(session, "kiosk", booking.id, booking.ends_at + timedelta(hours=1), booking.starts_at)
        sweep_no_shows(session, booking.starts_at, RULES)  # the 'over' booking, nobody came
    receiver.script = [500]
    clock = Clock(booking.starts_at)
    sender = WebhookSender(sessions, receiver.url, "ab" * 32, clock=clock)
    assert len(sender.send_once().failed) == 1  # the check-in; the round ends there
    assert len(sender.send_once().delivered) == 1  # the other booking's no-show; the extension waits
    clock.advance(minutes=1)
    assert len(sender.send_once().delivered) == 2
    assert receiver.kinds == ["no_show", "checked_in", "extended"]


def test_a_no_show_is_queued_in_the_same_transaction_as_the_release(
    sessions: sessionmaker[Session], world: World
) -> None:
    sjakk = world.bookings["sjakk"]
    after_window = sjakk.starts_at + timedelta(minutes=15)
    with sessions() as session:
        assert len(sweep_no_shows(session, after_window, RULES)) == 2
        session.rollback()  # the sweep failed to commit: neither the release nor the event happened
    assert rows(sessions) == []
    with sessions() as session:
        assert session.get(Booking, sjakk.id).status is BookingStatus.CONFIRMED  # type: ignore[union-attr]
    with sessions() as session, session.begin():
        released = {b.id for b in sweep_no_shows(session, after_window, RULES)}
    events = rows(sessions)
    assert {e.booking_id for e in events} == released == {sjakk.id, world.bookings["over"].id}
    assert {e.kind for e in events} == {WebhookKind.NO_SHOW}
    assert {e.payload["booking"]["status"] for e in events} == {"no_show"}


def test_delivered_events_are_pruned_after_30_days_and_pending_ones_never(
    sessions: sessionmaker[Session], world: World
) -> None:
    booking = checked_in(sessions, world)
    with sessions() as session, session.begin():
        sweep_no_shows(session, booking.starts_at, RULES)  # the 'over' booking
    first, second = rows(sessions)
    with sessions() as session, session.begin():
        outbox.mark_delivered(session, first.id, T0)
        outbox.mark_failed(session, second.id, T0, "HTTP 502 Bad Gateway")
        assert outbox.prune_delivered(session, T0 + timedelta(days=29)) == 0
        assert outbox.prune_delivered(session, T0 + timedelta(days=400)) == 1
    assert [r.id for r in rows(sessions)] == [second.id]


def test_the_sender_thread_delivers_what_is_queued_while_central_serves(
    sessions: sessionmaker[Session], world: World, receiver: Receiver, tmp_path: Path
) -> None:
    assert start_for_settings(sessions, Settings(data_dir=tmp_path)) is None  # no URL: events wait
    with pytest.raises(ConfigError, match="MERAAPENT_BOOKING_WEBHOOK_URL"):
        WebhookSender(sessions, "ftp://booking.example/in", "ab" * 32)
    sender = start_for_settings(
        sessions, Settings(data_dir=tmp_path, booking_webhook_url=receiver.url), interval_s=30
    )
    assert sender is not None
    try:
        checked_in(sessions, world)
        sender.poke()
        deadline = time.monotonic() + 10
        while not receiver.handled and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        sender.stop()
    assert receiver.kinds == ["checked_in"]
    ((headers, body),) = receiver.requests
    assert verify(webhook_secret(Settings(data_dir=tmp_path)), body, headers[SIGNATURE_HEADER])


def test_staff_see_how_the_outbox_is_doing(db_url: str, tmp_path: Path) -> None:
    url = "http://hooks.example:8080/in?token=abc123"
    now = datetime.now(UTC)
    with api_with(db_url, tmp_path, booking_webhook_url=url) as api:
        empty = api.ok("GET", "/webhooks/outbox", role=ApiRole.CARETAKER)
        assert empty["pending"] == 0 and empty["oldest_pending_at"] is None and empty["configured"] is True
        booking_id = book(api, now)
        api.ok("POST", f"/bookings/{booking_id}/check-in")
        with session_factory(api.engine)() as session, session.begin():
            (row,) = session.scalars(select(WebhookOutbox)).all()
            outbox.mark_failed(session, row.id, now, "no answer from hooks.example:8080: Connection refused")
        response = api.get("/webhooks/outbox", role=ApiRole.CARETAKER)
        health = response.json()
        assert (health["pending"], health["failing"], health["host"]) == (1, 1, "hooks.example:8080")
        assert (
            health["last_error"].endswith("Connection refused") and health["oldest_pending_age_seconds"] >= 0
        )
        assert "abc123" not in response.text
        assert api.get("/webhooks/outbox", role=ApiRole.BOOKING_INTEGRATION).status_code == 403
