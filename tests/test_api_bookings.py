"""Bookings: manual ones and idempotent imports by (source, external_id) from the booking integration."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from central.db import session_factory
from central.models import ApiRole, AuditLog, ReplicaChange, Site
from central.replica import build_snapshot
from central.services import replica_log
from tests.test_api_support import Api, fields_at_fault, make_api, make_site, problem

VEGA = ApiRole.BOOKING_INTEGRATION


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    with make_api(db_url, tmp_path) as api:
        make_site(api)
        yield api


def replica_count(api: Api) -> int:
    with session_factory(api.engine)() as session:
        return session.scalar(select(func.count()).select_from(ReplicaChange)) or 0


def imported(**changes: object) -> dict[str, object]:
    booking: dict[str, object] = {
        "source": "vega",
        "external_id": "V-1001",
        "site": "holmen",
        "room": "moterom-1",
        "starts_at": "2030-05-06T16:00:00Z",
        "ends_at": "2030-05-06T18:00:00+00:00",
        "title": "Sjakkveld",
        "organisation": "Asker sjakklubb",
    }
    booking.update(changes)
    return booking


def test_import_is_idempotent_and_updates_in_place(api: Api) -> None:
    first = api.put("/bookings/external", role=VEGA, json=imported())
    assert first.status_code == 201, first.text
    booking = first.json()
    assert booking["status"] == "confirmed" and booking["site"] == "holmen" and booking["room"] == "moterom-1"
    entries = replica_count(api)
    assert entries > 0

    again = api.put("/bookings/external", role=VEGA, json=imported())
    assert again.status_code == 200 and again.json() == booking
    assert replica_count(api) == entries  # nothing changed, nothing logged

    moved = api.put(
        "/bookings/external", role=VEGA, json=imported(ends_at="2030-05-06T19:00:00Z", title="Sjakkturnering")
    )
    assert moved.status_code == 200
    assert moved.json()["id"] == booking["id"] and moved.json()["title"] == "Sjakkturnering"
    assert replica_count(api) > entries

    cancelled = api.ok(
        "POST", "/bookings/external/cancel", role=VEGA, json={"source": "vega", "external_id": "V-1001"}
    )
    assert cancelled["status"] == "cancelled"
    assert (
        api.ok(
            "POST", "/bookings/external/cancel", role=VEGA, json={"source": "vega", "external_id": "V-1001"}
        )
        == cancelled
    )
    problem(
        api.post("/bookings/external/cancel", role=VEGA, json={"source": "vega", "external_id": "nope"}), 404
    )
    # the booking system re-confirms it
    assert (
        api.ok("PUT", "/bookings/external", role=VEGA, json=imported(status="confirmed"))["status"]
        == "confirmed"
    )


def test_bad_bookings_are_refused_naming_the_field(api: Api) -> None:
    body = problem(
        api.put("/bookings/external", role=VEGA, json=imported(ends_at="2030-05-06T15:00:00Z")), 422
    )
    assert fields_at_fault(body) == {"ends_at"} and body["detail"] == "ends_at must be after starts_at"
    body = problem(api.put("/bookings/external", role=VEGA, json=imported(room="bakrom")), 422)
    assert body["detail"] == "room 'bakrom' does not exist at site 'holmen'"
    body = problem(
        api.put("/bookings/external", role=VEGA, json=imported(starts_at="2030-05-06T16:00:00")), 422
    )
    assert body["errors"][0]["field"] == "starts_at" and "timezone" in body["errors"][0]["message"]
    body = problem(api.put("/bookings/external", role=VEGA, json=imported(holder_id=4242)), 422)
    assert fields_at_fault(body) == {"holder_id"}
    body = problem(api.put("/bookings/external", role=VEGA, json=imported(source="Vega Booking")), 422)
    assert fields_at_fault(body) == {"source"}


def test_manual_bookings_list_filters_and_duplicates(api: Api) -> None:
    holder = api.ok("POST", "/people", json={"kind": "association_member", "display_name": "Nora Lie"})["id"]
    base = {"site": "holmen", "room": "moterom-1", "holder_id": holder}
    # 23:30-00:30 Oslo on 6 May 2030 overlaps both the 6th and the 7th (local)
    late = api.ok(
        "POST",
        "/bookings",
        json={**base, "starts_at": "2030-05-06T21:30:00Z", "ends_at": "2030-05-06T22:30:00Z"},
    )
    api.ok(
        "POST",
        "/bookings",
        json={
            **base,
            "starts_at": "2030-05-08T10:00:00Z",
            "ends_at": "2030-05-08T11:00:00Z",
            "source": "vega",
            "external_id": "V-7",
        },
    )
    problem(
        api.post(
            "/bookings",
            json={
                **base,
                "starts_at": "2030-05-09T10:00:00Z",
                "ends_at": "2030-05-09T11:00:00Z",
                "source": "vega",
                "external_id": "V-7",
            },
        ),
        409,
    )

    assert [b["id"] for b in api.ok("GET", "/bookings?day=2030-05-07", role=VEGA)["items"]] == [late["id"]]
    assert api.ok("GET", "/bookings?site=holmen&room=moterom-1")["total"] == 2
    assert api.ok("GET", f"/bookings?holder_id={holder}&source=vega")["total"] == 1
    problem(api.get("/bookings?room=moterom-1"), 422)
    problem(api.get("/bookings?site=ukjent"), 404)

    checked_in = api.ok("PATCH", f"/bookings/{late['id']}", json={"status": "checked_in"})
    assert checked_in["checked_in_at"] is not None
    assert api.ok("POST", f"/bookings/{late['id']}/cancel")["status"] == "cancelled"
    problem(api.delete(f"/bookings/{late['id']}", role=VEGA), 403)
    api.ok("DELETE", f"/bookings/{late['id']}", role=ApiRole.CARETAKER)
    problem(api.get(f"/bookings/{late['id']}"), 404)


def test_check_in_through_the_api_follows_the_window(api: Api) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    soon = imported(external_id="V-2001", starts_at=(now + timedelta(minutes=10)).isoformat(),
                    ends_at=(now + timedelta(hours=2)).isoformat())  # fmt: skip
    later = imported(external_id="V-2002", starts_at=(now + timedelta(hours=3)).isoformat(),
                     ends_at=(now + timedelta(hours=4)).isoformat())  # fmt: skip
    first = api.ok("PUT", "/bookings/external", VEGA, json=soon)
    second = api.ok("PUT", "/bookings/external", VEGA, json=later)
    done = api.ok("POST", f"/bookings/{first['id']}/check-in", VEGA)
    assert done["status"] == "checked_in"
    assert api.ok("POST", f"/bookings/{first['id']}/check-in", VEGA)["status"] == "checked_in"  # idempotent
    body = problem(api.call("POST", f"/bookings/{second['id']}/check-in", VEGA), 409)
    assert "check-in opens at" in body["detail"]
    assert problem(api.call("POST", "/bookings/999999/check-in", VEGA), 404)


# --- co-holders --------------------------------------------------------------------------------------------


def person_with_card(api: Api, name: str, uid: str) -> tuple[int, int]:
    """(person id, card credential id) of a new resident with a card."""
    person = api.ok("POST", "/people", json={"kind": "resident", "display_name": name})["id"]
    card = api.ok("POST", f"/people/{person}/cards", json={"uid": uid})["id"]
    return person, card


def last_seq(api: Api, site: str = "holmen") -> int:
    with session_factory(api.engine)() as session:
        site_id = session.scalar(select(Site.id).where(Site.slug == site))
        return (
            session.scalar(select(func.max(ReplicaChange.seq)).where(ReplicaChange.site_id == site_id)) or 0
        )


def test_co_holders_get_into_the_replica_and_leave_it_when_taken_off(api: Api) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    kari, _ = person_with_card(api, "Kari", "04A1B2C3D4E501")
    per, per_card = person_with_card(api, "Per", "04A1B2C3D4E502")
    ola, ola_card = person_with_card(api, "Ola", "04A1B2C3D4E503")
    body = imported(
        external_id="V-3001",
        starts_at=(now + timedelta(hours=1)).isoformat(),
        ends_at=(now + timedelta(hours=3)).isoformat(),
        holder_id=kari,
        co_holder_ids=[ola, per],
    )
    created = api.put("/bookings/external", role=VEGA, json=body)
    assert created.status_code == 201, created.text
    booking = created.json()
    assert booking["holder_id"] == kari and booking["co_holder_ids"] == [per, ola]
    with session_factory(api.engine)() as session:
        snapshot = build_snapshot(session, "holmen")
    assert {f"c{per_card}", f"c{ola_card}"} <= {c.ref for c in snapshot.credentials}
    assert snapshot.bookings[0].holders == [f"p{kari}", f"p{per}", f"p{ola}"]

    entries = replica_count(api)
    assert api.ok("PUT", "/bookings/external", VEGA, json=body) == booking  # the same list again: no change
    assert replica_count(api) == entries

    before = last_seq(api)
    changed = api.ok("PATCH", f"/bookings/{booking['id']}", VEGA, json={"co_holder_ids": [per]})
    assert changed["co_holder_ids"] == [per]
    assert api.ok("GET", f"/bookings/{booking['id']}", VEGA)["co_holder_ids"] == [per]
    with session_factory(api.engine)() as session:
        delta = replica_log.build_delta(session, "holmen", before)
        audit = session.scalars(
            select(AuditLog.detail).where(AuditLog.entity == "booking", AuditLog.action == "update")
        ).all()
    assert delta is not None and f"c{ola_card}" in delta.remove  # Ola's card stops opening at once
    assert f"c{per_card}" in {c.ref for c in delta.upsert}
    assert [b.holders for b in delta.upsert_bookings] == [[f"p{kari}", f"p{per}"]]
    assert audit == [{"co_holder_ids": [per]}]

    moved = api.ok("PUT", "/bookings/external", VEGA, json={**body, "co_holder_ids": []})
    assert moved["co_holder_ids"] == []
    listed = api.ok("GET", f"/bookings?holder_id={kari}", VEGA)["items"]
    assert [(b["id"], b["co_holder_ids"]) for b in listed] == [(booking["id"], [])]


def test_bad_co_holder_lists_are_refused_in_plain_words(api: Api) -> None:
    kari = api.ok("POST", "/people", json={"kind": "resident", "display_name": "Kari"})["id"]
    per = api.ok("POST", "/people", json={"kind": "resident", "display_name": "Per"})["id"]

    def refused(status: int = 422, **changes: object) -> dict[str, object]:
        return problem(
            api.put("/bookings/external", role=VEGA, json=imported(holder_id=kari, **changes)), status
        )

    twice = refused(co_holder_ids=[per, per])
    assert fields_at_fault(twice) == {"co_holder_ids"}
    assert twice["detail"] == f"co_holder_ids: names person {per} more than once"
    assert "at most 20" in str(refused(co_holder_ids=list(range(1, 22)))["detail"])
    holder = refused(co_holder_ids=[kari])
    assert fields_at_fault(holder) == {"co_holder_ids"}
    assert holder["detail"] == f"person {kari} is the holder, so cannot be a co-holder too"
    unknown = refused(co_holder_ids=[per, 4242, 4243])
    assert (
        fields_at_fault(unknown) == {"co_holder_ids"}
        and unknown["detail"] == "persons 4242, 4243 do not exist"
    )

    booking = api.ok("PUT", "/bookings/external", VEGA, json=imported(holder_id=kari, co_holder_ids=[per]))
    swap = problem(api.patch(f"/bookings/{booking['id']}", role=VEGA, json={"holder_id": per}), 422)
    assert fields_at_fault(swap) == {"holder_id"} and "take them out of co_holder_ids" in str(swap["detail"])
    problem(api.patch(f"/bookings/{booking['id']}", role=VEGA, json={"co_holder_ids": None}), 422)
    swapped = api.ok(
        "PATCH", f"/bookings/{booking['id']}", VEGA, json={"holder_id": per, "co_holder_ids": [kari]}
    )
    assert (swapped["holder_id"], swapped["co_holder_ids"]) == (per, [kari])
