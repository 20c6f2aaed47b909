"""The schema's promises, on SQLite and PostgreSQL: UTC in and out, integrity rules, cascades."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from central.db import DatabaseUrlError, make_engine, normalise_url, session_factory, session_scope
from central.models import (
    AccessGroup,
    Booking,
    Credential,
    CredentialKind,
    CrossSiteError,
    Door,
    DoorKind,
    Event,
    EventKind,
    OpeningHours,
    Person,
    PersonKind,
    ReplicaChange,
    ReplicaOp,
    Room,
    Site,
    Zone,
)

OSLO = ZoneInfo("Europe/Oslo")


def make_site(session: Session, slug: str = "holmen") -> Site:
    site = Site(slug=slug, name=slug.title())
    site.zones.append(Zone(slug="torg", name="Torget"))
    session.add(site)
    session.flush()
    return site


def person(session: Session, name: str = "Kari") -> Person:
    p = Person(kind=PersonKind.RESIDENT, display_name=name)
    session.add(p)
    session.flush()
    return p


# --- time ------------------------------------------------------------------------------------------------


def test_datetimes_come_back_aware_utc_whatever_zone_went_in(session: Session) -> None:
    local = datetime(2025, 7, 1, 22, 30, tzinfo=OSLO)
    site = make_site(session)
    event = Event(
        event_id="5d7f1f2e-0000-4000-8000-000000000001",
        site=site,
        agent_client_id="agent-holmen",
        agent_seq=1,
        device_time=local,
        kind=EventKind.ACCESS,
    )
    session.add(event)
    session.commit()
    session.expire_all()
    stored = session.scalars(select(Event)).one()
    assert stored.device_time == local
    assert stored.device_time.tzinfo is UTC
    assert stored.device_time.hour == 20
    assert stored.received_at.tzinfo is UTC
    assert abs(stored.received_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_time_range_queries_compare_instants(session: Session) -> None:
    site = make_site(session)
    for seq, minute in enumerate((0, 30, 59)):
        session.add(
            Event(
                event_id=f"00000000-0000-4000-8000-{seq:012d}",
                site=site,
                agent_client_id="a",
                agent_seq=seq,
                device_time=datetime(2025, 1, 1, 12, minute, tzinfo=UTC),
                kind=EventKind.DOOR,
            )
        )
    session.commit()
    since = datetime(2025, 1, 1, 13, 15, tzinfo=OSLO)  # 12:15 UTC
    count = session.scalar(select(func.count()).select_from(Event).where(Event.device_time >= since))
    assert count == 2


def test_naive_datetime_is_refused_on_assignment_and_in_core_inserts(session: Session) -> None:
    site = make_site(session)
    with pytest.raises(ValueError, match="naive datetime"):
        site.created_at = datetime(2025, 1, 1, 12)
    session.rollback()
    with pytest.raises(StatementError, match="naive datetime"):
        session.execute(
            insert(Site).values(slug="naive", name="Naive", created_at=datetime(2025, 1, 1), address="")
        )


# --- enums, uniqueness, foreign keys ---------------------------------------------------------------------


def test_enums_are_stored_as_their_values_and_read_back_as_enums(session: Session) -> None:
    site = make_site(session)
    session.add(
        Door(site=site, zone=site.zones[0], slug="hovedinngang", name="Hoved", kind=DoorKind.ENTRANCE)
    )
    session.commit()
    assert session.scalar(text("SELECT kind FROM doors")) == "entrance"
    assert session.scalar(text("SELECT lock_type FROM doors")) == "fail_secure"
    session.expire_all()
    door = session.scalars(select(Door)).one()
    assert door.kind is DoorKind.ENTRANCE
    assert (door.unlock_seconds, door.held_open_seconds) == (5, 30)


def test_unknown_enum_value_is_refused(session: Session) -> None:
    site = make_site(session)
    session.add(Door(site=site, zone=site.zones[0], slug="x", name="X", kind="trapdoor"))
    with pytest.raises(StatementError, match="trapdoor"):
        session.flush()


def test_slugs_are_unique_per_site_only(session: Session) -> None:
    holmen, tofte = make_site(session, "holmen"), make_site(session, "tofte")
    assert holmen.zones[0].slug == tofte.zones[0].slug == "torg"
    session.commit()
    session.add(Zone(site=holmen, slug="torg", name="Igjen"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_foreign_keys_are_enforced(session: Session) -> None:
    session.add(Zone(site_id=9999, slug="torg", name="Torget"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_door_cannot_lead_into_another_sites_zone(session: Session) -> None:
    holmen, tofte = make_site(session, "holmen"), make_site(session, "tofte")
    session.add(Door(site=holmen, zone=tofte.zones[0], slug="d", name="D", kind=DoorKind.ENTRANCE))
    with pytest.raises(CrossSiteError, match="another site"):
        session.flush()
    session.rollback()
    holmen, tofte = make_site(session, "holmen"), make_site(session, "tofte")
    door = Door(site=holmen, zone=holmen.zones[0], slug="d", name="D", kind=DoorKind.ENTRANCE)
    session.add(door)
    session.commit()
    door.last_state = "open"
    session.commit()
    door.zone_id = tofte.zones[0].id
    with pytest.raises(CrossSiteError, match="'d': its zone belongs to another site"):
        session.flush()


def test_deleting_a_site_removes_its_configuration(session: Session) -> None:
    site = make_site(session)
    zone = site.zones[0]
    door = Door(site=site, zone=zone, slug="d", name="D", kind=DoorKind.ROOM)
    session.add_all([door, Room(site=site, zone=zone, door=door, slug="r", name="R", capacity=4)])
    session.add(OpeningHours(site=site, weekday=0, opens=time(7), closes=time(22)))
    session.commit()
    session.delete(site)
    session.commit()
    for table in ("zones", "doors", "rooms", "opening_hours"):
        assert session.scalar(text(f"SELECT count(*) FROM {table}")) == 0


def test_weekday_outside_the_week_is_refused_by_the_database(session: Session) -> None:
    site = make_site(session)
    session.add(OpeningHours(site=site, weekday=7, opens=time(7), closes=time(22)))
    with pytest.raises(IntegrityError):
        session.flush()


# --- credentials, bookings, events, replica log ----------------------------------------------------------


def test_card_needs_a_uid_hash_and_phone_must_not_have_one(session: Session) -> None:
    kari = person(session)
    session.add(Credential(person=kari, kind=CredentialKind.CARD))
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()
    kari = person(session)
    session.add(Credential(person=kari, kind=CredentialKind.PHONE, uid_hash="ab" * 32))
    with pytest.raises(IntegrityError):
        session.flush()


def test_card_uid_hash_is_unique_across_people(session: Session) -> None:
    kari, ola = person(session, "Kari"), person(session, "Ola")
    session.add(Credential(person=kari, kind=CredentialKind.CARD, uid_hash="ab" * 32))
    session.flush()
    session.add(Credential(person=ola, kind=CredentialKind.CARD, uid_hash="ab" * 32))
    with pytest.raises(IntegrityError):
        session.flush()


def booking(room: Room, external_id: str | None, start_hour: int, hours: int = 2) -> Booking:
    start = datetime(2025, 3, 4, start_hour, tzinfo=OSLO)
    return Booking(
        room=room, title="Sjakk", starts_at=start, ends_at=start + timedelta(hours=hours), source="vega",
        external_id=external_id,
    )  # fmt: skip


def test_booking_identity_and_time_order(session: Session) -> None:
    site = make_site(session)
    room = Room(site=site, zone=site.zones[0], slug="moterom-1", name="Møterom 1", capacity=12)
    session.add_all([booking(room, "v-1", 17), booking(room, None, 10), booking(room, None, 12)])
    session.commit()
    session.add(booking(room, "v-1", 19))
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()
    session.add(booking(room, "v-2", 19, hours=0))
    with pytest.raises(IntegrityError):
        session.flush()


def test_event_id_makes_ingest_idempotent_and_data_round_trips(session: Session) -> None:
    site = make_site(session)

    def event() -> Event:
        return Event(
            event_id="11111111-2222-4333-8444-555555555555", site=site, agent_client_id="a", agent_seq=7,
            device_time=datetime(2025, 1, 1, tzinfo=UTC), kind=EventKind.ACCESS,
            data={"reader": "hovedinngang", "latency_ms": 3, "tags": ["pin"]},
        )  # fmt: skip

    session.add(event())
    session.commit()
    session.add(event())
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()
    session.expire_all()
    assert session.scalars(select(Event)).one().data == {
        "reader": "hovedinngang",
        "latency_ms": 3,
        "tags": ["pin"],
    }


def test_replica_sequence_is_unique_per_site(session: Session) -> None:
    holmen, tofte = make_site(session, "holmen"), make_site(session, "tofte")
    for site in (holmen, tofte):
        session.add(ReplicaChange(site=site, seq=1, op=ReplicaOp.UPSERT, credential_ref="c1"))
    session.flush()
    session.add(ReplicaChange(site_id=holmen.id, seq=1, op=ReplicaOp.REMOVE, credential_ref="c1"))
    with pytest.raises(IntegrityError):
        session.flush()


def test_group_membership_and_zones(session: Session) -> None:
    site = make_site(session)
    kari = person(session)
    group = AccessGroup(slug="innbyggere", name="Innbyggere")
    group.members.append(kari)
    group.zones.append(site.zones[0])
    session.add(group)
    session.commit()
    session.expire_all()
    kari = session.scalars(select(Person)).one()
    assert [g.slug for g in kari.groups] == ["innbyggere"]
    assert kari.groups[0].zones[0].slug == "torg"
    assert kari.groups[0].follows_site_hours


# --- sessions and engines --------------------------------------------------------------------------------


def test_session_scope_commits_or_rolls_back(engine: Engine) -> None:
    factory = session_factory(engine)
    with pytest.raises(RuntimeError), session_scope(factory) as session:
        session.add(Site(slug="lost", name="Lost"))
        session.flush()
        raise RuntimeError("boom")
    with session_scope(factory) as session:
        session.add(Site(slug="kept", name="Kept"))
    with session_scope(factory) as session:
        assert session.scalars(select(Site.slug)).all() == ["kept"]


def test_sqlite_engine_sets_its_pragmas(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'central.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    engine.dispose()
    assert (tmp_path / "sub" / "central.db").exists()


def test_urls_get_our_drivers_and_bad_ones_a_clear_error() -> None:
    assert normalise_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("sqlite:///x.db").drivername == "sqlite"
    with pytest.raises(DatabaseUrlError, match="unsupported database 'mysql'"):
        normalise_url("mysql://u@h/db")
    with pytest.raises(DatabaseUrlError, match="not a database URL"):
        make_engine("just words")
