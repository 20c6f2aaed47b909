"""A person's export and erasure on request, and the data inventory for the DPIA: through the services and
the API, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from central.config import Settings
from central.db import session_factory
from central.models import ApiRole, AuditLog, BookingCoHolder, Credential, Event, Person
from central.replica import build_snapshot, credential_ref
from central.services import replica_log
from central.services.privacy import data_inventory, export_person
from tests.test_api_support import Api, make_api, problem
from tests.test_replica import NOW, World, build_world, card_of
from tests.test_retention import add_access


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    with make_api(db_url, tmp_path) as api:
        yield api


@pytest.fixture
def db(api: Api) -> Iterator[Session]:
    with session_factory(api.engine)() as session:
        yield session


@pytest.fixture
def world(db: Session) -> World:
    w = build_world(db)
    db.commit()
    return w


def test_the_export_holds_the_persons_bookings_events_and_cards_without_hashes(
    db: Session, world: World
) -> None:
    kari, nora = world.people["kari"], world.people["nora"]
    sjakk = world.bookings["sjakk"]
    db.add(BookingCoHolder(booking_id=sjakk.id, person_id=kari.id))
    add_access(db, world.nord, kari, NOW - timedelta(days=2), door="inngang")
    add_access(db, world.nord, nora, NOW - timedelta(days=1), door="inngang")
    db.commit()

    export = export_person(db, kari.id)

    assert export["person"]["display_name"] == "Kari"
    assert [(b["id"], b["role"], b["title"]) for b in export["bookings"]] == [(sjakk.id, "co_holder", "Møte")]
    assert [(e["door_slug"], e["decision"], e["site"]) for e in export["events"]] == [
        ("inngang", "grant", "nord")
    ]
    assert [c["id"] for c in export["credentials"]] == [card_of(kari).id]
    assert "uid_hash" not in export["credentials"][0] and "pin_hash" not in export["credentials"][0]
    assert str(card_of(kari).uid_hash) not in str(export)
    assert [g["slug"] for g in export["groups"]] == ["innbyggere-nord"]
    assert export_person(db, nora.id)["bookings"][0]["role"] == "holder"


def test_an_admin_gets_the_export_as_json_and_a_caretaker_may_not(api: Api, world: World) -> None:
    nora = world.people["nora"]
    body = api.ok("GET", f"/people/{nora.id}/export")
    assert body["person"]["id"] == nora.id
    assert [b["id"] for b in body["bookings"]] == [world.bookings["sjakk"].id]
    assert problem(api.get(f"/people/{nora.id}/export", ApiRole.CARETAKER), 403)
    assert "does not exist" in problem(api.get("/people/999999/export"), 404)["detail"]


def test_erasure_removes_the_person_and_their_cards_everywhere_and_keeps_events_pseudonymised(
    api: Api, db: Session, world: World
) -> None:
    kari = world.people["kari"]
    kari_id, card = kari.id, credential_ref(card_of(kari).id)
    event = add_access(db, world.nord, kari, NOW - timedelta(days=1))
    db.commit()
    seq = build_snapshot(db, "nord", now=NOW).seq
    assert card in {c.ref for c in build_snapshot(db, "nord", now=NOW).credentials}

    assert problem(api.post(f"/people/{kari_id}/erase", ApiRole.CARETAKER), 403)
    body = api.ok("POST", f"/people/{kari_id}/erase")

    assert body == {"person_id": kari_id, "events_pseudonymised": 1}
    db.expire_all()
    assert problem(api.get(f"/people/{kari_id}"), 404)
    assert db.get(Person, kari_id) is None
    assert db.scalars(select(Credential).where(Credential.person_id == kari_id)).all() == []
    delta = replica_log.build_delta(db, "nord", seq, now=NOW)
    assert delta is not None and card in delta.remove
    stored = db.get(Event, event.id)
    assert stored is not None and stored.person_id is None
    assert stored.credential_ref is not None and stored.credential_ref.startswith("p:")
    assert (stored.door_slug, stored.decision) == ("inngang", "grant")
    assert stored.data == {"method": "card"}
    erasure = db.scalars(select(AuditLog).where(AuditLog.action == "erase")).one()
    assert (erasure.actor, erasure.entity_id, erasure.detail) == (
        "test-admin",
        str(kari_id),
        {"events_pseudonymised": 1},
    )
    assert problem(api.post(f"/people/{kari_id}/erase"), 404)


def test_the_inventory_lists_every_kind_with_its_retention_from_the_settings(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        event_retention_days=14,
        alarm_retention_days=90,
        booking_retention_days=180,
        audit_retention_days=1000,
    )
    kept = {k.kind: k.kept for k in data_inventory(settings)}
    assert set(kept) == {
        "person",
        "credential",
        "identified access event",
        "alarm",
        "booking",
        "terms acceptance",
        "audit",
    }
    assert kept["identified access event"].startswith("14 days identified, then pseudonymised")
    assert kept["alarm"].startswith("90 days")
    assert kept["booking"].startswith("180 days after it ended")
    assert kept["audit"].startswith("1000 days")


def test_caretakers_and_admins_read_the_inventory_and_others_may_not(api: Api) -> None:
    for role in (ApiRole.ADMIN, ApiRole.CARETAKER):
        body = api.ok("GET", "/privacy/inventory", role)
        events = next(k for k in body if k["kind"] == "identified access event")
        assert events["kept"].startswith("30 days") and "agent journal" in events["where"]
        assert all(k["why"] and k["where"] for k in body)
    assert problem(api.get("/privacy/inventory", ApiRole.BOOKING_INTEGRATION), 403)
    assert problem(api.get("/privacy/inventory", None), 401)
