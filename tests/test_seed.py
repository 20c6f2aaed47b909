"""The Asker demo data: what `meraapent central seed` gives, and that seeding twice is harmless."""

from __future__ import annotations

import itertools
import stat
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from central.cli import app
from central.config import Settings, load_settings
from central.db import make_engine, migrate, session_factory, session_scope
from central.models import (
    AccessGroup,
    ApiRole,
    ApiUser,
    Base,
    Booking,
    Credential,
    DoorKind,
    HoursKind,
    Person,
    Room,
    Site,
)
from central.schedules import SiteSchedule
from central.security import api_token_hash, card_uid_hash, verify_pin
from central.seed import run_seed, seed

OSLO = ZoneInfo("Europe/Oslo")
TODAY = date(2025, 3, 4)  # a Tuesday
ASKER_SITES = {"asker-sentrum", "holmen", "heggedal", "slemmestad", "spikkestad", "saetre", "tofte", "borgen"}


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    migrate(db_url)
    return load_settings({}, data_dir=tmp_path / "data", db_url=db_url)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def seeded(settings: Settings, engine: Engine) -> Iterator[Session]:
    run_seed(settings, today=TODAY)
    with session_factory(engine)() as session:
        yield session


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order."""
    with engine.connect() as conn:
        return {
            table.name: sorted(tuple(map(repr, row)) for row in conn.execute(select(table)))
            for table in Base.metadata.sorted_tables
        }


def test_seeding_twice_changes_nothing(settings: Settings, engine: Engine) -> None:
    first = run_seed(settings, today=TODAY)
    assert first.created["sites"] == 8
    token_file = settings.data_dir / "admin-token"
    token_before = token_file.read_text()
    before = snapshot(engine)

    second = run_seed(settings, today=TODAY)
    assert not second.created
    assert second.admin_token_path is None
    assert "nothing to add" in second.summary()
    assert snapshot(engine) == before
    assert token_file.read_text() == token_before


def test_sites_zones_doors_rooms_hours_and_groups(seeded: Session) -> None:
    sites = seeded.scalars(select(Site)).all()
    assert {s.slug for s in sites} == ASKER_SITES
    for site in sites:
        assert {z.slug for z in site.zones} >= {"torg", "bibliotek", "moterom"}
        doors = {d.slug: d for d in site.doors}
        assert doors["hovedinngang"].kind is DoorKind.ENTRANCE
        assert doors["hovedinngang"].zone.slug == "torg"
        assert doors["bibliotek"].zone.slug == "bibliotek"
        assert site.rooms and all(r.capacity > 0 and r.door is not None for r in site.rooms)
        assert site.timezone == "Europe/Oslo" and site.help_text_nb and site.help_text_en

    asker = next(s for s in sites if s.slug == "asker-sentrum")
    schedule = SiteSchedule.from_rows(asker, asker.opening_hours, asker.opening_exceptions)
    tuesday = datetime.combine(TODAY, time(), tzinfo=OSLO)
    assert schedule.is_open(tuesday + timedelta(hours=21, minutes=30))
    assert not schedule.is_open(tuesday + timedelta(hours=22, minutes=30))
    assert schedule.is_open(tuesday + timedelta(hours=12), HoursKind.STAFFED)
    assert not schedule.is_open(tuesday + timedelta(hours=20), HoursKind.STAFFED)
    assert not schedule.is_open(datetime(2025, 5, 17, 12, tzinfo=OSLO))  # national day: closed
    saturday_opening = {
        min(h.opens for h in s.opening_hours if h.kind is HoursKind.MERAAPENT and h.weekday == 5)
        for s in sites
    }
    assert len(saturday_opening) > 1  # sites differ a bit

    groups = {g.slug: g for g in seeded.scalars(select(AccessGroup))}
    residents = groups["innbyggere"]
    assert not residents.any_time and residents.follows_site_hours
    assert {(z.site.slug, z.slug) for z in residents.zones} == {
        (site, zone) for site in ASKER_SITES for zone in ("torg", "bibliotek")
    }
    assert groups["vaktmestere"].any_time and groups["ansatte"].any_time
    assert len(groups["vaktmestere"].zones) == 3 * len(ASKER_SITES)


def test_people_cards_bookings_and_admin_token(settings: Settings, seeded: Session) -> None:
    uid_hash = card_uid_hash("04:A1:B2:C3:D4:E5:F6", settings.uid_hash_key())
    card = seeded.scalars(select(Credential).where(Credential.uid_hash == uid_hash)).one()
    assert card.person.display_name == "Kari Nordmann"
    assert card.pin_hash is not None and verify_pin(card.pin_hash, "1234")
    assert not verify_pin(card.pin_hash, "0000")
    assert "innbyggere" in {g.slug for g in card.person.groups}
    caretaker = seeded.scalars(select(Person).where(Person.kind == "caretaker")).one()
    assert caretaker.credentials and "vaktmestere" in {g.slug for g in caretaker.groups}
    assert seeded.scalars(select(Person).where(Person.blocked)).all()  # someone to demo a refusal with

    bookings = seeded.scalars(select(Booking)).all()
    assert {b.starts_at.astimezone(OSLO).date() for b in bookings} == {TODAY, TODAY + timedelta(days=1)}
    chess = next(b for b in bookings if b.title == "Sjakkveld")
    assert chess.starts_at == datetime(2025, 3, 4, 16, tzinfo=UTC)  # 17:00 in Oslo (CET)
    assert chess.room.slug == "moterom-1" and chess.holder is not None

    token_file = settings.data_dir / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    admin = seeded.scalars(select(ApiUser).where(ApiUser.username == "admin")).one()
    assert admin.role is ApiRole.ADMIN and admin.active
    assert admin.token_hash == api_token_hash(token_file.read_text().strip())


def test_seeding_on_a_later_day_adds_bookings_without_overlaps(settings: Settings, engine: Engine) -> None:
    run_seed(settings, today=TODAY)
    run_seed(settings, today=TODAY + timedelta(days=1))
    with session_scope(session_factory(engine)) as session:
        by_room: dict[int, list[Booking]] = {}
        for b in session.scalars(select(Booking).order_by(Booking.starts_at)):
            by_room.setdefault(b.room_id, []).append(b)
        for bookings in by_room.values():
            for earlier, later in itertools.pairwise(bookings):
                assert earlier.ends_at <= later.starts_at, (earlier.title, later.title)
        days = {b.starts_at.astimezone(OSLO).date() for bs in by_room.values() for b in bs}
        assert days == {TODAY + timedelta(days=n) for n in range(3)}


def test_seed_keeps_what_an_administrator_changed(settings: Settings, engine: Engine) -> None:
    run_seed(settings, today=TODAY)
    with session_scope(session_factory(engine)) as session:
        site = session.scalars(select(Site).where(Site.slug == "tofte")).one()
        site.name = "Tofte bibliotek og torg"
        session.delete(session.scalars(select(Room).where(Room.site_id == site.id)).one())
    report = run_seed(settings, today=TODAY)
    with session_scope(session_factory(engine)) as session:
        assert (
            session.scalars(select(Site.name).where(Site.slug == "tofte")).one() == "Tofte bibliotek og torg"
        )
    assert report.created == {"rooms": 1}  # a missing demo room comes back, nothing else changes


def test_cli_seed_prints_where_the_token_is_not_the_token(settings: Settings) -> None:
    runner = CliRunner()
    args = ["seed", "--db", settings.db_url, "--data-dir", str(settings.data_dir)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    token = (settings.data_dir / "admin-token").read_text().strip()
    assert f"written to {settings.data_dir / 'admin-token'}" in result.stdout
    assert token not in result.output
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "nothing to add" in again.stdout


def test_cli_seed_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["seed", "--db", f"sqlite:///{tmp_path / 'empty.db'}", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: database schema is not migrated: run `meraapent central migrate`"


def test_seed_in_callers_transaction_rolls_back_with_it(settings: Settings, engine: Engine) -> None:
    with session_factory(engine)() as session:
        seed(session, settings, today=TODAY)
        session.rollback()
        assert session.scalars(select(Site)).all() == []
