"""People, access groups and credentials: cards stored only as keyed hashes, PINs as argon2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from central.db import session_factory
from central.models import AuditLog, Credential, ReplicaChange, ReplicaOp
from central.security import card_uid_hash, verify_pin
from tests.test_api_support import Api, fields_at_fault, make_api, make_site, problem

UID = "04A1B2C3D4E5F6"


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    with make_api(db_url, tmp_path) as api:
        yield api


def person(api: Api, name: str = "Kari Nordmann", **extra: object) -> int:
    created = api.ok("POST", "/people", json={"kind": "resident", "display_name": name, **extra})
    return int(created["id"])


def replica_entries(api: Api) -> list[tuple[str, int | None]]:
    with session_factory(api.engine)() as session:
        rows = session.execute(
            select(ReplicaChange.op, ReplicaChange.credential_id).order_by(ReplicaChange.id)
        )
        return [(ReplicaOp(op).value, cid) for op, cid in rows]


def test_people_crud_and_filters(api: Api) -> None:
    kari = person(api, email="kari@example.no", birth_year=1980)
    person(api, "Ola Nordmann", blocked=True)
    api.ok("POST", "/people", json={"kind": "caretaker", "display_name": "Vidar Vaktmester"})
    assert api.ok("GET", "/people?name=nordmann")["total"] == 2
    assert [p["display_name"] for p in api.ok("GET", "/people?blocked=true")["items"]] == ["Ola Nordmann"]
    assert api.ok("GET", "/people?kind=caretaker")["total"] == 1

    updated = api.ok("PATCH", f"/people/{kari}", json={"phone": "+47 900 00 000", "email": None})
    assert updated["phone"] == "+47 900 00 000" and updated["email"] is None
    body = problem(
        api.post(
            "/people",
            json={"kind": "alien", "display_name": "X", "email": "not-an-address", "birth_year": 1800},
        ),
        422,
    )
    assert fields_at_fault(body) == {"kind", "email", "birth_year"}
    assert next(e for e in body["errors"] if e["field"] == "kind")["message"].startswith(
        "must be one of: resident"
    )

    api.ok("POST", "/people", json={"kind": "staff", "display_name": "Siri", "external_ref": "hr:42"})
    body = problem(
        api.post("/people", json={"kind": "staff", "display_name": "Siri 2", "external_ref": "hr:42"}), 409
    )
    assert "hr:42" in body["detail"]

    api.ok("DELETE", f"/people/{kari}")
    assert problem(api.get(f"/people/{kari}"), 404)["detail"] == f"person {kari} does not exist"


def test_card_registration_stores_no_uid_and_an_argon2_pin(api: Api) -> None:
    kari = person(api)
    response = api.post(
        f"/people/{kari}/cards", json={"uid": "04:a1:b2:c3:d4:e5:f6", "pin": "2468", "label": "Lånekort"}
    )
    assert response.status_code == 201, response.text
    credential = response.json()
    assert set(credential) == {
        "id", "person_id", "kind", "label", "status", "has_pin", "failed_pin_count",
        "valid_from", "valid_until", "created_at", "revoked_at",
    }  # fmt: skip
    assert credential["has_pin"] is True and credential["status"] == "active"

    with session_factory(api.engine)() as session:
        row = session.execute(text("SELECT * FROM credentials")).mappings().one()
        audit_rows = session.execute(text("SELECT * FROM audit_log")).all()
    flat = " ".join(str(v) for v in row.values()).lower()
    for form in (UID.lower(), "04:a1:b2", "2468"):
        assert form not in flat
    assert UID.lower() not in str(audit_rows).lower()
    assert row["uid_hash"] == card_uid_hash(UID, api.settings.uid_hash_key())
    assert row["pin_hash"].startswith("$argon2id$")
    assert verify_pin(row["pin_hash"], "2468")

    # the same card in another spelling is the same card
    body = problem(api.post(f"/people/{person(api, 'Ola')}/cards", json={"uid": "04 A1 B2 C3 D4 E5 F6"}), 409)
    assert f"person {kari}" in body["detail"]


def test_card_input_is_checked(api: Api) -> None:
    kari = person(api)
    body = problem(api.post(f"/people/{kari}/cards", json={"uid": "zz", "pin": "12"}), 422)
    messages = {e["field"]: e["message"] for e in body["errors"]}
    assert messages == {
        "uid": "must be the card UID in hex, 4 to 16 bytes, e.g. 04A1B2C3D4E5F6",
        "pin": "must be 4 to 8 digits",
    }
    body = problem(
        api.post(
            f"/people/{kari}/cards",
            json={"uid": UID, "valid_from": "2030-01-02T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"},
        ),
        422,
    )
    assert fields_at_fault(body) == {"valid_until"}
    problem(api.post("/people/999999/cards", json={"uid": UID}), 404)
    problem(api.post("/people/99999999999/cards", json={"uid": UID}), 422)


def test_lookup_block_unblock_revoke_and_pin_reset(api: Api) -> None:
    kari = person(api)
    card = api.ok("POST", f"/people/{kari}/cards", json={"uid": UID, "pin": "1234"})
    found = api.ok("POST", "/credentials/lookup", json={"uid": UID.lower()})
    assert found["credential"]["id"] == card["id"] and found["person"]["display_name"] == "Kari Nordmann"
    problem(api.post("/credentials/lookup", json={"uid": "04FFFFFFFFFFFF"}), 404)

    url = f"/credentials/{card['id']}"
    assert api.ok("POST", f"{url}/block")["status"] == "blocked"
    assert api.ok("POST", f"{url}/unblock")["status"] == "active"
    assert api.ok("PUT", f"{url}/pin", json={"pin": "97531"})["has_pin"] is True
    with session_factory(api.engine)() as session:
        pin_hash = session.scalar(select(Credential.pin_hash).where(Credential.id == card["id"]))
    assert pin_hash is not None and verify_pin(pin_hash, "97531") and not verify_pin(pin_hash, "1234")
    assert api.ok("PUT", f"{url}/pin", json={"pin": None})["has_pin"] is False

    revoked = api.ok("POST", f"{url}/revoke")
    assert revoked["status"] == "revoked" and revoked["revoked_at"] is not None
    assert api.ok("POST", f"{url}/revoke")["revoked_at"] == revoked["revoked_at"]  # idempotent
    body = problem(api.post(f"{url}/unblock"), 409)
    assert "revoked" in body["detail"]

    phone = api.ok("POST", f"/people/{kari}/phones", json={"label": "Mobil"})
    problem(api.put(f"/credentials/{phone['id']}/pin", json={"pin": "1234"}), 409)
    listed = api.ok("GET", f"/people/{kari}/credentials")
    assert [(c["kind"], c["status"]) for c in listed["items"]] == [("card", "revoked"), ("phone", "active")]
    assert api.ok("GET", "/credentials?status=active")["total"] == 1


def test_changes_reach_the_replica_log_in_the_same_transaction(api: Api) -> None:
    make_site(api)
    api.ok("POST", "/access-groups", json={"slug": "innbyggere", "name": "Innbyggere"})
    api.ok("PUT", "/access-groups/innbyggere/zones", json={"zones": [{"site": "holmen", "zone": "torg"}]})
    kari = person(api)
    card = api.ok("POST", f"/people/{kari}/cards", json={"uid": UID})
    assert replica_entries(api) == [("remove", card["id"])]  # not in any group yet: not at holmen

    assert api.ok("PUT", f"/access-groups/innbyggere/members/{kari}")["added"] is True
    assert replica_entries(api)[-1] == ("upsert", card["id"])
    assert api.ok("PUT", f"/access-groups/innbyggere/members/{kari}")["added"] is False
    assert len(replica_entries(api)) == 2  # adding again changes nothing

    api.ok("PATCH", f"/people/{kari}", json={"blocked": True})
    api.ok("POST", f"/credentials/{card['id']}/revoke")
    assert replica_entries(api)[-2:] == [("upsert", card["id"]), ("remove", card["id"])]

    api.ok("DELETE", f"/access-groups/innbyggere/members/{kari}")
    problem(api.delete(f"/access-groups/innbyggere/members/{kari}"), 404)
    assert [g["slug"] for g in api.ok("GET", f"/people/{kari}/groups")] == []

    # a refused change leaves no trace: neither replica entries nor audit rows
    before = len(replica_entries(api))
    with session_factory(api.engine)() as session:
        audits = session.scalar(select(func.count()).select_from(AuditLog))
    problem(api.post(f"/people/{kari}/cards", json={"uid": UID}), 409)
    assert len(replica_entries(api)) == before
    with session_factory(api.engine)() as session:
        assert session.scalar(select(func.count()).select_from(AuditLog)) == audits


def test_access_groups_zones_intervals_and_members(api: Api) -> None:
    make_site(api)
    group = api.ok("POST", "/access-groups", json={"slug": "frivillige", "name": "Frivillige"})
    assert group["follows_site_hours"] is True
    problem(api.post("/access-groups", json={"slug": "frivillige", "name": "Igjen"}), 409)
    body = problem(
        api.put("/access-groups/frivillige/zones", json={"zones": [{"site": "holmen", "zone": "kjeller"}]}),
        422,
    )
    assert body["detail"] == "zone 'kjeller' does not exist at site 'holmen'"
    zones = api.ok(
        "PUT", "/access-groups/frivillige/zones", json={"zones": [{"site": "holmen", "zone": "moterom"}]}
    )
    assert zones == {"zones": [{"site": "holmen", "zone": "moterom"}]}

    intervals = {"intervals": [{"weekday": 2, "starts": "17:00", "ends": "00:00"}]}
    assert api.ok("PUT", "/access-groups/frivillige/intervals", json=intervals) == {
        "intervals": [{"weekday": 2, "starts": "17:00:00", "ends": "00:00:00"}]
    }
    assert api.ok("GET", "/access-groups/frivillige")["follows_site_hours"] is False
    problem(
        api.put(
            "/access-groups/frivillige/intervals",
            json={"intervals": [{"weekday": 2, "starts": "18:00", "ends": "17:00"}]},
        ),
        422,
    )

    members = [person(api, f"Frivillig {n}") for n in range(3)]
    for pid in members:
        api.ok("PUT", f"/access-groups/frivillige/members/{pid}")
    page = api.ok("GET", "/access-groups/frivillige/members?limit=2")
    assert page["total"] == 3 and len(page["items"]) == 2
    problem(api.put("/access-groups/frivillige/members/424242"), 404)
    api.ok("DELETE", "/access-groups/frivillige")
    problem(api.get("/access-groups/frivillige"), 404)
