"""Phone tokens: issued with the keystore's active key, verifiable offline, remembered for revocation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from central.db import session_factory
from central.keystore import generate_key, load_public_keys
from central.models import IssuedToken
from protocol.token import verify_token
from tests.test_api_support import Api, fields_at_fault, make_api, make_site, problem


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    with make_api(db_url, tmp_path) as api:
        make_site(api)
        generate_key(api.settings.data_dir)
        yield api


def phone_holder(api: Api) -> int:
    pid = int(api.ok("POST", "/people", json={"kind": "volunteer", "display_name": "Jonas Frivillig"})["id"])
    api.ok("POST", f"/people/{pid}/phones", json={"label": "Mobil"})
    return pid


def test_issued_token_verifies_offline_and_is_remembered(api: Api) -> None:
    pid = phone_holder(api)
    start = datetime(2030, 5, 6, 16, 0, tzinfo=UTC)
    times = {"starts_at": "2030-05-06T16:00:00Z", "ends_at": "2030-05-06T18:00:00Z"}
    booking = api.ok(
        "POST", "/bookings", json={"site": "holmen", "room": "moterom-1", "holder_id": pid, **times}
    )
    request = {
        "site": "holmen",
        "doors": ["hovedinngang", "moterom-1"],
        "minutes": 120,
        "starts_at": start.isoformat(),
        "booking_id": booking["id"],
    }
    response = api.post(f"/people/{pid}/tokens?qr=true", json=request)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    out = response.json()
    assert out["qr_svg"].startswith("data:image/svg+xml")

    claims = verify_token(out["token"], load_public_keys(api.settings.data_dir), start + timedelta(minutes=5))
    assert claims.site == "holmen" and claims.doors == ("hovedinngang", "moterom-1")
    assert claims.holder == f"p{pid}" and claims.booking == f"b{booking['id']}" and claims.issuer == "asker"
    assert claims.expires == start + timedelta(minutes=120) and claims.token_id_hex == out["token_id"]

    with session_factory(api.engine)() as session:
        record = session.scalars(select(IssuedToken)).one()
        stored = " ".join(str(v) for v in session.execute(text("SELECT * FROM issued_tokens")).one())
        audit = str(session.execute(text("SELECT detail FROM audit_log")).all())
    assert record.token_id == out["token_id"] and record.expires_at == claims.expires
    assert out["token"] not in stored and out["token"] not in audit  # the text is never stored

    listed = api.ok("GET", f"/people/{pid}/tokens")
    assert [t["token_id"] for t in listed["items"]] == [out["token_id"]] and "token" not in listed["items"][0]
    revoked = api.ok("POST", f"/tokens/{out['token_id']}/revoke")
    assert revoked["revoked_at"] is not None
    assert api.ok("POST", f"/tokens/{out['token_id']}/revoke")["revoked_at"] == revoked["revoked_at"]
    problem(api.post("/tokens/00000000/revoke"), 404)
    problem(api.post("/tokens/NOT-HEX/revoke"), 422)


def test_tokens_are_refused_for_the_wrong_person_place_or_shape(api: Api) -> None:
    pid = phone_holder(api)
    no_phone = api.ok("POST", "/people", json={"kind": "resident", "display_name": "Uten mobil"})["id"]
    body = problem(
        api.post(f"/people/{no_phone}/tokens", json={"site": "holmen", "zones": ["torg"], "minutes": 60}), 409
    )
    assert "no active phone credential" in body["detail"]
    api.ok("PATCH", f"/people/{pid}", json={"blocked": True})
    problem(api.post(f"/people/{pid}/tokens", json={"site": "holmen", "zones": ["torg"], "minutes": 60}), 409)
    api.ok("PATCH", f"/people/{pid}", json={"blocked": False})

    body = problem(
        api.post(
            f"/people/{pid}/tokens",
            json={"site": "holmen", "doors": ["hovedinngang", "bakdor"], "minutes": 60},
        ),
        422,
    )
    assert body["detail"] == "door 'bakdor' does not exist at site 'holmen'" and fields_at_fault(body) == {
        "doors.1"
    }
    body = problem(api.post(f"/people/{pid}/tokens", json={"site": "holmen", "minutes": 60}), 422)
    assert "at least one door or zone" in body["detail"]
    body = problem(
        api.post(f"/people/{pid}/tokens", json={"site": "holmen", "zones": ["torg"], "minutes": 0}), 422
    )
    assert fields_at_fault(body) == {"minutes"}
    problem(api.post(f"/people/{pid}/tokens", json={"site": "tofte", "zones": ["torg"], "minutes": 60}), 404)
    body = problem(
        api.post(
            f"/people/{pid}/tokens",
            json={"site": "holmen", "zones": ["torg"], "minutes": 60, "booking_id": 777},
        ),
        422,
    )
    assert fields_at_fault(body) == {"booking_id"}


def test_without_a_signing_key_tokens_are_503(
    db_url: str, tmp_path: Path
) -> None:
    with make_api(db_url, tmp_path) as api:
        make_site(api)
        pid = phone_holder(api)
        body = problem(
            api.post(f"/people/{pid}/tokens", json={"site": "holmen", "zones": ["torg"], "minutes": 60}), 503
        )
        assert "meraapent keys generate" in body["detail"]
        with session_factory(api.engine)() as session:
            assert session.scalars(select(IssuedToken)).all() == []
