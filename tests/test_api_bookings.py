"""Bookings: manual ones and idempotent imports by (source, external_id) from the booking integration."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from central.db import session_factory
from central.models import ApiRole, ReplicaChange
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
