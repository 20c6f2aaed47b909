"""Check-in and no-show on the injectable clock: when a holder may check in, and what a no-show ends."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from central.checkin import CheckinRefusal, CheckinRules, checkin_rules
from central.config import Settings
from central.db import session_factory
from central.gateway.ingest import store_events
from central.models import AuditLog, Booking, BookingStatus, Door, DoorKind
from central.noshow import NoShowSweeper
from central.replica import build_snapshot
from central.services.checkin import CheckinError, check_in, sweep_no_shows
from protocol import messages as m
from tests.test_replica import World, build_world

RULES = CheckinRules()


@pytest.fixture
def world(session: Session) -> World:
    w = build_world(session)
    session.commit()
    return w


def test_check_in_opens_15_minutes_before_the_start_and_closes_15_after(
    session: Session, world: World
) -> None:
    sjakk = world.bookings["sjakk"]
    with pytest.raises(CheckinError, match=r"check-in opens at \d\d:\d\d") as early:
        check_in(
            session, "kiosk", sjakk.id, sjakk.starts_at - timedelta(minutes=16), via="kiosk", rules=RULES
        )
    assert early.value.reason is CheckinRefusal.TOO_EARLY
    booking = check_in(
        session, "kiosk", sjakk.id, sjakk.starts_at - timedelta(minutes=15), via="kiosk", rules=RULES
    )
    assert booking.status is BookingStatus.CHECKED_IN
    assert booking.checked_in_at == sjakk.starts_at - timedelta(minutes=15)
    again = check_in(session, "phone", sjakk.id, sjakk.starts_at, via="phone", rules=RULES)  # no change
    assert again.checked_in_at == sjakk.starts_at - timedelta(minutes=15)
    actions = session.scalars(select(AuditLog.action).where(AuditLog.entity == "booking")).all()
    assert list(actions).count("check_in") == 1


def test_too_late_and_cancelled_bookings_say_why(session: Session, world: World) -> None:
    sjakk = world.bookings["sjakk"]
    with pytest.raises(CheckinError, match="check-in closed at") as late:
        check_in(
            session, "kiosk", sjakk.id, sjakk.starts_at + timedelta(minutes=15), via="kiosk", rules=RULES
        )
    assert late.value.reason is CheckinRefusal.TOO_LATE
    cancelled = world.bookings["cancelled"]
    with pytest.raises(CheckinError, match="was cancelled"):
        check_in(session, "kiosk", cancelled.id, cancelled.starts_at, via="kiosk", rules=RULES)


def test_a_no_show_loses_its_access_and_frees_the_room(session: Session, world: World) -> None:
    sjakk = world.bookings["sjakk"]
    nora = world.people["nora"]
    assert f"b{sjakk.id}" in {b.ref for b in build_snapshot(session, "nord").bookings}
    over = world.bookings["over"]  # started three hours ago, nobody came: released at the first sweep
    first = sweep_no_shows(session, sjakk.starts_at + timedelta(minutes=14), RULES)
    assert [b.id for b in first] == [over.id]
    released = sweep_no_shows(session, sjakk.starts_at + timedelta(minutes=15), RULES)
    session.commit()
    assert [b.id for b in released] == [sjakk.id]
    assert sjakk.status is BookingStatus.NO_SHOW
    snapshot = build_snapshot(session, "nord")
    assert f"b{sjakk.id}" not in {b.ref for b in snapshot.bookings}
    assert all(c.person != f"p{nora.id}" for c in snapshot.credentials)  # her booking was her only way in
    with pytest.raises(CheckinError, match="released as a no-show"):
        check_in(session, "kiosk", sjakk.id, sjakk.starts_at, via="kiosk", rules=RULES)


def test_a_checked_in_booking_is_never_a_no_show(session: Session, world: World) -> None:
    sjakk = world.bookings["sjakk"]
    check_in(session, "entry", sjakk.id, sjakk.starts_at, via="entry", rules=RULES)
    released = sweep_no_shows(session, sjakk.starts_at + timedelta(hours=1), RULES)
    assert sjakk.id not in {b.id for b in released}
    assert sjakk.status is BookingStatus.CHECKED_IN


def test_a_wider_window_lets_people_check_in_later(session: Session, world: World) -> None:
    sjakk = world.bookings["sjakk"]
    relaxed = CheckinRules(opens_before=timedelta(minutes=30), closes_after=timedelta(minutes=45))
    late = sjakk.starts_at + timedelta(minutes=40)
    assert (
        check_in(session, "kiosk", sjakk.id, late, via="kiosk", rules=relaxed).status
        is BookingStatus.CHECKED_IN
    )
    with pytest.raises(ValueError, match="cannot open after the start"):
        CheckinRules(opens_before=timedelta(minutes=-1))


def entry(
    world: World, booking: Booking, door: str, at: datetime, person_id: int | None = None
) -> m.AccessEvent:
    return m.AccessEvent(
        event_id=uuid.uuid4(),
        site="nord",
        agent="nord-pi",
        seq=1,
        device_time=at,
        door=door,
        decision=m.Decision.GRANT,
        reason=m.Reason.BOOKING,
        method=m.Method.CARD_PIN,
        person_ref=f"p{booking.holder_id if person_id is None else person_id}",
        booking_ref=f"b{booking.id}",
    )


def test_the_first_entry_through_the_room_door_checks_the_booking_in(session: Session, world: World) -> None:
    sjakk = world.bookings["sjakk"]
    room = sjakk.room
    room.door = Door(site=world.nord, zone=room.zone, slug="moterom-1", name="Møterom 1", kind=DoorKind.ROOM)
    session.flush()
    sites = {"nord": world.nord.id}
    at_entrance = entry(world, sjakk, "inngang", sjakk.starts_at - timedelta(minutes=10))
    store_events(session, [at_entrance], sites, at_entrance.device_time)
    assert sjakk.status is BookingStatus.CONFIRMED  # the entrance is on the way, not the room
    into_room = entry(world, sjakk, "moterom-1", sjakk.starts_at - timedelta(minutes=5))
    store_events(session, [into_room], sites, into_room.device_time)
    store_events(session, [into_room], sites, into_room.device_time)  # the agent resent it: no change
    session.refresh(sjakk)
    assert (sjakk.status, sjakk.checked_in_at) == (BookingStatus.CHECKED_IN, into_room.device_time)


def test_a_co_holders_entry_into_the_room_checks_the_booking_in_but_not_a_strangers(
    session: Session, world: World
) -> None:
    sjakk = world.bookings["sjakk"]
    room = sjakk.room
    room.door = Door(site=world.nord, zone=room.zone, slug="moterom-1", name="Møterom 1", kind=DoorKind.ROOM)
    sjakk.co_holders.append(world.people["jonas"])
    session.flush()
    sites = {"nord": world.nord.id}
    stranger = entry(
        world, sjakk, "moterom-1", sjakk.starts_at - timedelta(minutes=6), world.people["kari"].id
    )
    store_events(session, [stranger], sites, stranger.device_time)
    assert sjakk.status is BookingStatus.CONFIRMED  # not named on the booking: not a check-in
    co_holder = entry(
        world, sjakk, "moterom-1", sjakk.starts_at - timedelta(minutes=5), world.people["jonas"].id
    )
    store_events(session, [co_holder], sites, co_holder.device_time)
    session.refresh(sjakk)
    assert (sjakk.status, sjakk.checked_in_at) == (BookingStatus.CHECKED_IN, co_holder.device_time)


def test_the_sweeper_thread_releases_no_shows_in_its_own_transaction(engine: Engine, world: World) -> None:
    sjakk = world.bookings["sjakk"]
    sweeper = NoShowSweeper(session_factory(engine), clock=lambda: sjakk.starts_at + timedelta(minutes=20))
    assert sjakk.id in sweeper.sweep_once()
    assert sweeper.sweep_once() == []  # released once
    with session_factory(engine)() as fresh:
        assert fresh.get(Booking, sjakk.id).status is BookingStatus.NO_SHOW  # type: ignore[union-attr]


def test_a_room_without_implicit_check_in_waits_for_the_kiosk_or_phone(
    session: Session, world: World
) -> None:
    sjakk = world.bookings["sjakk"]
    room = sjakk.room
    room.door = Door(site=world.nord, zone=room.zone, slug="moterom-1", name="Møterom 1", kind=DoorKind.ROOM)
    room.implicit_checkin = False
    session.flush()
    into_room = entry(world, sjakk, "moterom-1", sjakk.starts_at - timedelta(minutes=5))
    store_events(session, [into_room], {"nord": world.nord.id}, into_room.device_time)
    session.refresh(sjakk)
    assert (sjakk.status, sjakk.checked_in_at) == (BookingStatus.CONFIRMED, None)
    assert check_in(session, "kiosk", sjakk.id, sjakk.starts_at, via="kiosk", rules=RULES).checked_in_at


def test_the_window_from_the_settings_applies_to_entries_and_the_sweep(
    engine: Engine, session: Session, world: World
) -> None:
    rules = checkin_rules(Settings(checkin_opens_minutes=5, checkin_closes_minutes=40))
    assert rules == CheckinRules(opens_before=timedelta(minutes=5), closes_after=timedelta(minutes=40))
    sjakk = world.bookings["sjakk"]
    room = sjakk.room
    room.door = Door(site=world.nord, zone=room.zone, slug="moterom-1", name="Møterom 1", kind=DoorKind.ROOM)
    session.commit()
    sweeper = NoShowSweeper(
        session_factory(engine), rules=rules, clock=lambda: sjakk.starts_at + timedelta(minutes=30)
    )
    assert sjakk.id not in sweeper.sweep_once()  # the default window would have closed at +15
    late_entry = entry(world, sjakk, "moterom-1", sjakk.starts_at + timedelta(minutes=30))
    store_events(session, [late_entry], {"nord": world.nord.id}, late_entry.device_time, rules)
    session.refresh(sjakk)
    assert sjakk.status is BookingStatus.CHECKED_IN
