"""Privacy by retention on the injectable clock: identified access events are pseudonymised after
MERAAPENT_EVENT_RETENTION_DAYS but still counted, alarms and audit entries go, long-ended bookings forget who
held them; a second run changes nothing; `meraapent central retention` prints what it did in one line."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from central.cli import app as cli
from central.config import ConfigError, Settings, load_settings
from central.models import Alarm, AuditLog, Booking, BookingCoHolder, Event, EventKind, Person, Site
from central.replica import credential_ref
from central.retention_sweeper import RetentionSweeper
from central.services.retention import RetentionReport, apply_retention
from protocol.messages import Decision, Reason
from tests.test_replica import NOW, World, build_world, card_of


@pytest.fixture
def world(session: Session) -> World:
    w = build_world(session)
    session.commit()
    return w


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(data_dir=tmp_path / "data", db_url=db_url)


def add_access(
    session: Session,
    site: Site,
    person: Person | None,
    at: datetime,
    *,
    door: str = "inngang",
    decision: Decision = Decision.GRANT,
    reason: Reason = Reason.SCHEDULE,
) -> Event:
    """An access event as ingest stores it: the person and their card's reference."""
    event = Event(
        event_id=str(uuid.uuid4()),
        site_id=site.id,
        agent_client_id=f"agent-{site.slug}",
        agent_seq=session.scalar(select(func.count()).select_from(Event)) or 0,
        device_time=at,
        received_at=at,
        kind=EventKind.ACCESS,
        door_slug=door,
        credential_ref=None if person is None else credential_ref(card_of(person).id),
        person_id=None if person is None else person.id,
        decision=decision,
        reason=reason.value,
        data={
            "method": "card",
            "person_ref": None if person is None else f"p{person.id}",
            "booking_ref": None,
        },
    )
    session.add(event)
    session.flush()
    return event


def per_door_and_decision(session: Session) -> dict[tuple[str | None, str | None], int]:
    """The statistic the municipality asks for: access attempts per door and decision."""
    rows = session.execute(
        select(Event.door_slug, Event.decision, func.count()).group_by(Event.door_slug, Event.decision)
    )
    return {(door, None if decision is None else str(decision)): n for door, decision, n in rows}


def test_an_old_identified_event_is_pseudonymised_and_still_counted(
    session: Session, world: World, settings: Settings
) -> None:
    kari, siri = world.people["kari"], world.people["siri"]
    old = add_access(session, world.nord, kari, NOW - timedelta(days=31))
    old_denied = add_access(
        session,
        world.nord,
        siri,
        NOW - timedelta(days=40),
        door="bakdor",
        decision=Decision.DENY,
        reason=Reason.WRONG_PIN,
    )
    recent = add_access(session, world.nord, kari, NOW - timedelta(days=29))
    session.commit()
    before = per_door_and_decision(session)

    report = apply_retention(session, settings, NOW)
    session.commit()

    assert report.events_pseudonymised == 2
    for event in (old, old_denied):
        session.refresh(event)
        assert event.person_id is None
        assert event.credential_ref is not None and event.credential_ref.startswith("p:")
        assert event.data == {"method": "card"}  # how the door was opened still counts, who did not
    kari_ref = credential_ref(card_of(kari).id)
    assert session.scalars(select(Event.id).where(Event.credential_ref == kari_ref)).all() == [recent.id]
    session.refresh(recent)
    assert (recent.person_id, recent.credential_ref) == (kari.id, credential_ref(card_of(kari).id))
    assert recent.data["person_ref"] == f"p{kari.id}"
    assert per_door_and_decision(session) == before
    assert before[("bakdor", "deny")] == 1 and before[("inngang", "grant")] == 2
    denials = session.scalar(select(func.count()).where(Event.reason == Reason.WRONG_PIN.value))
    assert denials == 1


def test_an_event_naming_a_person_only_in_its_data_is_pseudonymised_too(
    session: Session, world: World, settings: Settings
) -> None:
    event = add_access(session, world.nord, None, NOW - timedelta(days=31))
    event.data = {"method": "phone", "person_ref": "p999", "booking_ref": "b7"}  # the person is gone
    session.commit()
    assert apply_retention(session, settings, NOW).events_pseudonymised == 1
    session.commit()
    session.refresh(event)
    assert event.data == {"method": "phone"}


def test_the_same_card_gets_the_same_pseudonym_so_visits_per_card_still_count(
    session: Session, world: World, settings: Settings
) -> None:
    kari, siri = world.people["kari"], world.people["siri"]
    a = add_access(session, world.nord, kari, NOW - timedelta(days=50))
    b = add_access(session, world.nord, kari, NOW - timedelta(days=35))
    c = add_access(session, world.nord, siri, NOW - timedelta(days=35))
    session.commit()
    apply_retention(session, settings, NOW)
    session.commit()
    for event in (a, b, c):
        session.refresh(event)
    assert a.credential_ref == b.credential_ref != c.credential_ref


def test_running_twice_changes_nothing_the_second_time(
    session: Session, world: World, settings: Settings
) -> None:
    kari = world.people["kari"]
    add_access(session, world.nord, kari, NOW - timedelta(days=31))
    session.add(Alarm(site_id=world.nord.id, kind="forced", raised_at=NOW - timedelta(days=400)))
    session.commit()
    first = apply_retention(session, settings, NOW)
    session.commit()
    refs = session.scalars(select(Event.credential_ref)).all()

    second = apply_retention(session, settings, NOW)
    session.commit()

    assert first.changed and first.events_pseudonymised == 1 and first.alarms_deleted == 1
    assert second == RetentionReport()
    assert session.scalars(select(Event.credential_ref)).all() == refs
    runs = session.scalars(select(AuditLog).where(AuditLog.action == "retention")).all()
    assert [r.detail for r in runs] == [asdict(first)]  # counts only, one entry for the run that did work


def test_alarms_are_deleted_by_their_own_setting(session: Session, world: World, settings: Settings) -> None:
    for days in (366, 364):
        session.add(Alarm(site_id=world.nord.id, kind=f"forced-{days}", raised_at=NOW - timedelta(days=days)))
    session.commit()
    report = apply_retention(session, settings, NOW)
    session.commit()
    assert report.alarms_deleted == 1
    assert session.scalars(select(Alarm.kind)).all() == ["forced-364"]

    shorter = Settings(data_dir=settings.data_dir, db_url=settings.db_url, alarm_retention_days=100)
    assert apply_retention(session, shorter, NOW).alarms_deleted == 1


def test_long_ended_bookings_forget_who_held_them_but_keep_room_times_and_status(
    session: Session, world: World, settings: Settings
) -> None:
    old, new = world.bookings["sjakk"], world.bookings["cancelled"]
    old.starts_at, old.ends_at = NOW - timedelta(days=400), NOW - timedelta(days=400, hours=-2)
    old.organisation = "Sjakklubben"
    new.starts_at, new.ends_at = NOW - timedelta(days=300), NOW - timedelta(days=300, hours=-2)
    session.add(BookingCoHolder(booking_id=old.id, person_id=world.people["kari"].id))
    session.commit()
    room, starts, status = old.room_id, old.starts_at, old.status

    report = apply_retention(session, settings, NOW)
    session.commit()

    assert report.bookings_cleared == 1
    session.refresh(old)
    session.refresh(new)
    assert old.holder_id is None and old.organisation is None
    assert (old.title, old.co_holders) == ("", [])
    assert (old.room_id, old.starts_at, old.status) == (room, starts, status)
    assert new.holder_id == world.people["jonas"].id and new.title == "Møte"
    assert session.scalar(select(func.count()).select_from(Booking)) == len(world.bookings)


def test_audit_entries_are_deleted_by_their_own_setting(
    session: Session, world: World, settings: Settings
) -> None:
    session.add_all(
        AuditLog(
            actor="admin",
            action="update",
            entity="person",
            entity_id=str(days),
            at=NOW - timedelta(days=days),
        )
        for days in (731, 729)
    )
    session.commit()
    report = apply_retention(session, settings, NOW)
    session.commit()
    assert report.audit_deleted == 1
    kept = session.scalars(select(AuditLog.entity_id).where(AuditLog.entity == "person")).all()
    assert kept == ["729"]


def test_the_sweeper_applies_retention_on_its_clock(
    sessions: sessionmaker[Session], session: Session, world: World, settings: Settings
) -> None:
    add_access(session, world.nord, world.people["kari"], NOW - timedelta(days=31))
    session.commit()
    sweeper = RetentionSweeper(sessions, settings, clock=lambda: NOW)
    assert sweeper.sweep_once().events_pseudonymised == 1
    assert sweeper.sweep_once() == RetentionReport()


def test_the_command_runs_retention_once_and_prints_one_line(
    engine: object, db_url: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(cli, ["retention", "--db", db_url, "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines() == [
        "Retention: 0 events pseudonymised, 0 alarms deleted, 0 bookings cleared, 0 audit entries deleted"
    ]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ALARM_RETENTION_DAYS", "0", "MERAAPENT_ALARM_RETENTION_DAYS must be at least 1, got 0"),
        ("BOOKING_RETENTION_DAYS", "-3", "MERAAPENT_BOOKING_RETENTION_DAYS must be at least 1, got -3"),
        (
            "AUDIT_RETENTION_DAYS",
            "two years",
            "MERAAPENT_AUDIT_RETENTION_DAYS must be a whole number, got 'two years'",
        ),
        ("EVENT_RETENTION_DAYS", "0", "MERAAPENT_EVENT_RETENTION_DAYS must be at least 1, got 0"),
    ],
)
def test_bad_retention_settings_are_one_line_errors(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({f"MERAAPENT_{variable}": value})
    assert str(raised.value) == message


def test_retention_settings_come_from_the_environment() -> None:
    settings = load_settings(
        {"MERAAPENT_ALARM_RETENTION_DAYS": "90", "MERAAPENT_AUDIT_RETENTION_DAYS": "400"}
    )
    assert (settings.event_retention_days, settings.alarm_retention_days) == (30, 90)
    assert (settings.booking_retention_days, settings.audit_retention_days) == (365, 400)
