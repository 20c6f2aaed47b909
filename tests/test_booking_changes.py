"""Extending a booking while the room is free and ending it early, on the injectable clock and through the
API: the holder's access follows the new end, and the booking system is told."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central.api import create_app
from central.config import Settings
from central.db import make_engine, migrate, session_factory
from central.models import ApiRole, AuditLog, Booking, BookingStatus, WebhookKind, WebhookOutbox
from central.replica import build_snapshot
from central.services.booking_changes import end_booking_early, extend_booking
from central.services.bookings import upsert_external
from central.services.checkin import check_in
from central.services.errors import ConflictError, InvalidError
from tests.test_api_support import Api, add_api_users, fields_at_fault, make_site, problem
from tests.test_checkin import RULES
from tests.test_replica import World, add_booking, build_world

OSLO = ZoneInfo("Europe/Oslo")
VEGA = ApiRole.BOOKING_INTEGRATION


@pytest.fixture
def world(session: Session) -> World:
    w = build_world(session)
    session.commit()
    return w


def outbox(session: Session) -> list[WebhookOutbox]:
    return list(session.scalars(select(WebhookOutbox).order_by(WebhookOutbox.id)))


def booking_refs(session: Session, at: datetime) -> dict[str, datetime]:
    """What the site agent at nord knows: booking ref -> end."""
    return {b.ref: b.ends_at for b in build_snapshot(session, "nord", now=at).bookings}


def local(moment: datetime) -> str:
    """HH:MM at the torg (another day than the booking's is prefixed with the date in messages)."""
    return f"{moment.astimezone(OSLO):%H:%M}"


def test_a_checked_in_booking_is_extended_when_the_room_is_free(session: Session, world: World) -> None:
    sjakk = world.bookings["sjakk"]
    check_in(session, "kiosk", sjakk.id, sjakk.starts_at, via="kiosk", rules=RULES)
    now = sjakk.starts_at + timedelta(minutes=90)
    old_end, new_end = sjakk.ends_at, sjakk.ends_at + timedelta(hours=1)

    extended = extend_booking(session, "resident:7", sjakk.id, new_end, now)
    session.commit()

    assert (extended.ends_at, extended.status) == (new_end, BookingStatus.CHECKED_IN)
    assert (
        booking_refs(session, old_end + timedelta(minutes=30))[f"b{sjakk.id}"] == new_end
    )  # still open then
    audit = session.scalars(select(AuditLog).where(AuditLog.action == "extend")).one()
    assert audit.actor == "resident:7" and audit.entity_id == str(sjakk.id)
    event = outbox(session)[-1]
    assert event.kind is WebhookKind.EXTENDED and event.booking_id == sjakk.id
    assert event.payload["previous_ends_at"] == old_end.isoformat().replace("+00:00", "Z")
    assert event.payload["booking"]["ends_at"] == new_end.isoformat().replace("+00:00", "Z")


def test_extension_is_refused_when_the_room_is_taken_too_long_or_not_later(
    session: Session, world: World
) -> None:
    sjakk = world.bookings["sjakk"]
    now = sjakk.starts_at + timedelta(minutes=30)
    next_one = add_booking(session, sjakk.room, world.people["jonas"], sjakk.ends_at + timedelta(minutes=30))
    session.commit()
    with pytest.raises(
        ConflictError, match=f"booked from .*{local(next_one.starts_at)} .booking {next_one.id}"
    ):
        extend_booking(session, "kiosk", sjakk.id, sjakk.ends_at + timedelta(hours=1), now)
    session.rollback()
    assert session.get(Booking, sjakk.id).ends_at == sjakk.starts_at + timedelta(hours=2)  # type: ignore[union-attr]
    assert outbox(session) == []

    # up to the next booking's start is fine; so is running into a cancelled one
    assert extend_booking(session, "kiosk", sjakk.id, next_one.starts_at, now).ends_at == next_one.starts_at
    next_one.status = BookingStatus.CANCELLED
    later = next_one.starts_at + timedelta(hours=1)
    assert extend_booking(session, "kiosk", sjakk.id, later, now).ends_at == later
    session.rollback()
    next_one.status = BookingStatus.CANCELLED  # the room is free for the rest of the evening

    now = sjakk.starts_at
    with pytest.raises(InvalidError, match="must be after the booking's end") as same:
        extend_booking(session, "kiosk", sjakk.id, sjakk.ends_at, now)
    assert same.value.field == "ends_at"
    with pytest.raises(InvalidError, match="at most 4 hours"):
        extend_booking(session, "kiosk", sjakk.id, sjakk.ends_at + timedelta(hours=4, minutes=1), now)
    assert extend_booking(session, "kiosk", sjakk.id, sjakk.ends_at + timedelta(hours=4), now)


def test_only_a_live_booking_can_be_extended_and_only_a_started_one_ended(
    session: Session, world: World
) -> None:
    over, cancelled = world.bookings["over"], world.bookings["cancelled"]
    with pytest.raises(ConflictError, match=f"booking {over.id} ended at"):
        extend_booking(session, "kiosk", over.id, over.ends_at + timedelta(hours=1), over.ends_at)
    with pytest.raises(ConflictError, match="was cancelled"):
        end_booking_early(session, "kiosk", cancelled.id, cancelled.starts_at + timedelta(minutes=5))
    sjakk = world.bookings["sjakk"]
    sjakk.status = BookingStatus.NO_SHOW
    with pytest.raises(ConflictError, match="released as a no-show"):
        extend_booking(session, "kiosk", sjakk.id, sjakk.ends_at + timedelta(hours=1), sjakk.starts_at)
    sjakk.status = BookingStatus.CONFIRMED
    with pytest.raises(ConflictError, match=f"starts at {local(sjakk.starts_at)}.*cancel it instead"):
        end_booking_early(session, "kiosk", sjakk.id, sjakk.starts_at - timedelta(minutes=5))
    assert session.scalar(select(func.count()).select_from(WebhookOutbox)) == 0


def test_ending_early_ends_access_now_and_keeps_the_status(session: Session, world: World) -> None:
    sjakk = world.bookings["sjakk"]
    check_in(session, "kiosk", sjakk.id, sjakk.starts_at, via="kiosk", rules=RULES)
    now = sjakk.starts_at + timedelta(minutes=40)
    old_end = sjakk.ends_at
    assert f"b{sjakk.id}" in booking_refs(session, now)

    ended = end_booking_early(session, "resident:7", sjakk.id, now)
    session.commit()

    assert (ended.ends_at, ended.status) == (now, BookingStatus.CHECKED_IN)
    assert f"b{sjakk.id}" not in booking_refs(session, now + timedelta(seconds=1))
    event = outbox(session)[-1]
    assert event.kind is WebhookKind.ENDED_EARLY
    assert event.payload["previous_ends_at"] == old_end.isoformat().replace("+00:00", "Z")
    with pytest.raises(ConflictError, match="ended at"):  # once is enough
        end_booking_early(session, "resident:7", sjakk.id, now + timedelta(minutes=1))


# --- through the API ----------------------------------------------------------------------------------------


@contextmanager
def api_with(db_url: str, tmp_path: Path, **settings: object) -> Iterator[Api]:
    migrate(db_url)
    engine = make_engine(db_url)
    add_api_users(engine)
    config = Settings(data_dir=tmp_path / "data", db_url=db_url, **settings)  # type: ignore[arg-type]
    try:
        with TestClient(create_app(config, engine=engine), raise_server_exceptions=False) as client:
            api = Api(client=client, settings=config, engine=engine, gateway=None)
            make_site(api)
            yield api
    finally:
        engine.dispose()


def book(api: Api, starts: datetime, hours: float = 2, external_id: str = "V-1") -> int:
    body = {
        "site": "holmen",
        "room": "moterom-1",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=hours)).isoformat(),
        "source": "vega",
        "external_id": external_id,
    }
    booking_id: int = api.ok("POST", "/bookings", role=VEGA, json=body)["id"]
    return booking_id


def test_extend_and_end_through_the_api(db_url: str, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    with api_with(db_url, tmp_path) as api:
        current = book(api, now - timedelta(minutes=10))
        book(api, now + timedelta(hours=2), external_id="V-2")  # the next group comes at now + 2 h
        api.ok("POST", f"/bookings/{current}/check-in", role=ApiRole.CARETAKER)

        taken = problem(
            api.post(
                f"/bookings/{current}/extend",
                role=VEGA,
                json={"ends_at": (now + timedelta(hours=3)).isoformat()},
            ),
            409,
        )
        assert "booked from" in taken["detail"] and local(now + timedelta(hours=2)) in taken["detail"]
        too_short = problem(
            api.post(f"/bookings/{current}/extend", json={"ends_at": (now + timedelta(hours=1)).isoformat()}),
            422,
        )
        assert fields_at_fault(too_short) == {"ends_at"}
        extended = api.ok(
            "POST", f"/bookings/{current}/extend", json={"ends_at": (now + timedelta(hours=2)).isoformat()}
        )
        assert datetime.fromisoformat(extended["ends_at"]) == now + timedelta(hours=2)

        ended = api.ok("POST", f"/bookings/{current}/end", role=ApiRole.CARETAKER)
        assert datetime.fromisoformat(ended["ends_at"]) <= datetime.now(UTC)
        assert ended["status"] == "checked_in"
        problem(api.post(f"/bookings/{current}/end"), 409)
        problem(api.post("/bookings/999999/end"), 404)
        with session_factory(api.engine)() as session:
            kinds = session.scalars(select(WebhookOutbox.kind).order_by(WebhookOutbox.id)).all()
        assert list(kinds) == [WebhookKind.CHECKED_IN, WebhookKind.EXTENDED, WebhookKind.ENDED_EARLY]


def test_the_check_in_window_comes_from_the_settings(db_url: str, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    with api_with(db_url, tmp_path, checkin_opens_minutes=60) as api:
        soon = book(api, now + timedelta(minutes=45))  # too early with the default 15 minutes
        assert api.ok("POST", f"/bookings/{soon}/check-in", role=VEGA)["status"] == "checked_in"
        later = book(api, now + timedelta(minutes=75), external_id="V-2")
        body = problem(api.post(f"/bookings/{later}/check-in", role=VEGA), 409)
        assert f"check-in opens at {local(now + timedelta(minutes=15))}" in body["detail"]


def test_a_room_can_turn_implicit_check_in_off(db_url: str, tmp_path: Path) -> None:
    with api_with(db_url, tmp_path) as api:
        assert api.ok("GET", "/sites/holmen/rooms/moterom-1")["implicit_checkin"] is True
        room = api.ok("PATCH", "/sites/holmen/rooms/moterom-1", json={"implicit_checkin": False})
        assert room["implicit_checkin"] is False
        problem(api.patch("/sites/holmen/rooms/moterom-1", json={"implicit_checkin": None}), 422)
        created = api.ok(
            "POST",
            "/sites/holmen/rooms",
            json={"slug": "sal", "name": "Sal", "zone": "moterom", "implicit_checkin": False},
        )
        assert created["implicit_checkin"] is False


def test_a_reimport_keeps_a_local_extension_until_the_booking_system_sends_a_new_end(
    session: Session, world: World
) -> None:
    sjakk = world.bookings["sjakk"]
    fields = {
        "site": "nord",
        "room": sjakk.room.slug,
        "starts_at": sjakk.starts_at,
        "ends_at": sjakk.ends_at,
        "title": "Sjakk",
    }
    imported, created = upsert_external(session, "vega", "vega", "R-1", fields)
    assert created
    booked_end = imported.ends_at
    check_in(session, "kiosk", imported.id, imported.starts_at, via="kiosk", rules=RULES)
    extend_booking(session, "resident:7", imported.id, booked_end + timedelta(hours=1), imported.starts_at)

    upsert_external(session, "vega", "vega", "R-1", fields)  # the nightly re-send, still the old end
    assert imported.ends_at == booked_end + timedelta(hours=1)

    moved = {**fields, "ends_at": booked_end + timedelta(minutes=30)}  # staff changed it in Vega
    upsert_external(session, "vega", "vega", "R-1", moved)
    assert imported.ends_at == booked_end + timedelta(minutes=30)
    upsert_external(session, "vega", "vega", "R-1", moved)
    assert imported.ends_at == booked_end + timedelta(minutes=30)
