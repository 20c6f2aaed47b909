"""The administration pages as caretakers and admins use them: find a resident, block a card, set a PIN typed
twice, groups, hours and exceptions, rooms, bookings, API users and the audit log. Every change goes through
the same services as the API and leaves an audit row with the staff member's username."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from central.db import session_factory, session_scope
from central.models import AuditLog, Booking, BookingStatus, Credential, CredentialStatus, Person
from central.security import verify_pin
from tests.console_support import ADMIN, CARETAKER, console_sign_in, give_passwords
from tests.test_api_support import Api, make_api, make_site

UID = "04A1B2C3D4E5F6"
NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # a Monday, 16:00 in Oslo


def started(db_url: str, tmp_path: Path) -> Iterator[Api]:
    with make_api(db_url, tmp_path) as made:
        give_passwords(made.engine)
        made.client.app.state.clock = lambda: NOW  # type: ignore[attr-defined]
        make_site(made)
        yield made


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    yield from started(f"sqlite:///{tmp_path / 'central.db'}", tmp_path)


@pytest.fixture
def both_api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    """The same on SQLite and PostgreSQL, for the flows where the databases could differ."""
    yield from started(db_url, tmp_path)


def resident(api: Api, name: str = "Kari Nordmann", *, card: bool = True) -> tuple[int, int | None]:
    """A person (and a card with PIN 1234) made through the API; returns their ids."""
    person = api.ok("POST", "/people", json={"kind": "resident", "display_name": name})
    if not card:
        return int(person["id"]), None
    made = api.ok(
        "POST", f"/people/{person['id']}/cards", json={"uid": UID, "pin": "1234", "label": "Bibliotekkort"}
    )
    return int(person["id"]), int(made["id"])


def post(api: Api, url: str, csrf: str, **data: Any) -> httpx.Response:
    response: httpx.Response = api.client.post(url, data={"csrf": csrf, **data}, follow_redirects=False)
    return response


def done(api: Api, response: httpx.Response) -> str:
    """A form that succeeded: a 303 to a page that shows the notice; returns that page's text."""
    assert response.status_code == 303, response.text[:2000]
    page = api.client.get(response.headers["location"])
    assert page.status_code == 200
    return str(page.text)


def refused(response: httpx.Response, field: str, *, typed: bool = True) -> str:
    """A form that was refused: the page again (422) with the message beside `field` (which points at it,
    when it is a field one types in rather than a button); returns the message."""
    assert response.status_code == 422, response.text[:2000]
    found = re.search(rf'<p class="error-text" id="{re.escape(field)}-error">([^<]*)</p>', response.text)
    assert found, f"no message beside {field}"
    assert not typed or f'aria-describedby="{field}-error"' in response.text
    return found.group(1)


def audit(api: Api, entity: str, action: str) -> list[AuditLog]:
    with session_scope(session_factory(api.engine)) as session:
        rows = session.scalars(
            select(AuditLog).where(AuditLog.entity == entity, AuditLog.action == action).order_by(AuditLog.id)
        ).all()
        session.expunge_all()
        return list(rows)


def credential(api: Api, credential_id: int) -> Credential:
    with session_scope(session_factory(api.engine)) as session:
        row = session.get(Credential, credential_id)
        assert row is not None
        session.expunge(row)
        return row


# --- residents and cards ----------------------------------------------------------------------------------


def test_a_caretaker_finds_a_resident_blocks_their_card_and_sets_a_pin_typed_twice(both_api: Api) -> None:
    api = both_api
    person_id, card_id = resident(api)
    resident(api, "Ola Hansen", card=False)
    csrf = console_sign_in(api.client, CARETAKER)

    found = api.client.get("/drift/admin/personer", params={"q": "nordm"})
    assert "Kari Nordmann" in found.text and "Ola Hansen" not in found.text
    page = api.client.get(f"/drift/admin/personer/{person_id}").text
    assert "Bibliotekkort" in page and "Aktivt" in page
    with session_scope(session_factory(api.engine)) as session:
        stored = session.get(Credential, card_id)
        assert stored is not None and stored.uid_hash and stored.pin_hash
        secrets = (stored.uid_hash, stored.pin_hash)
    assert UID not in page and all(secret not in page for secret in secrets)

    blocked = done(api, post(api, f"/drift/admin/legitimasjon/{card_id}/status", csrf, action="block"))
    assert f"Nr. {card_id} er sperret." in blocked and "⛔" in blocked
    assert credential(api, card_id or 0).status is CredentialStatus.BLOCKED

    url = f"/drift/admin/legitimasjon/{card_id}/pin"
    assert "ikke like" in refused(post(api, url, csrf, pin="4321", repeat="4312"), f"repeat-{card_id}")
    assert "4 til 8 sifre" in refused(post(api, url, csrf, pin="12", repeat="12"), f"pin-{card_id}")
    assert "Ny PIN-kode for nr." in done(api, post(api, url, csrf, pin="4321", repeat="4321"))
    stored_pin = credential(api, card_id or 0).pin_hash
    assert stored_pin is not None and verify_pin(stored_pin, "4321")

    assert [(r.actor, r.entity_id) for r in audit(api, "credential", "block")] == [(CARETAKER, str(card_id))]
    assert [r.actor for r in audit(api, "credential", "reset_pin")] == [CARETAKER]


def test_revoking_a_card_asks_for_a_tick_and_cannot_be_undone(api: Api) -> None:
    _, card_id = resident(api)
    csrf = console_sign_in(api.client)
    url = f"/drift/admin/legitimasjon/{card_id}/status"
    assert "Kryss av" in refused(post(api, url, csrf, action="revoke"), f"confirm-{card_id}")
    assert credential(api, card_id or 0).status is CredentialStatus.ACTIVE
    page = done(api, post(api, url, csrf, action="revoke", confirm="yes"))
    assert "trukket tilbake for godt" in page
    assert f'action="/drift/admin/legitimasjon/{card_id}/status"' not in page  # no more buttons for it
    message = refused(post(api, url, csrf, action="unblock"), f"status-{card_id}", typed=False)
    assert message.startswith("Kunne ikke lagre:") and "revoked" in message
    assert [r.actor for r in audit(api, "credential", "revoke")] == [CARETAKER]


def test_blocking_a_person_needs_a_reason_which_the_audit_trail_keeps(api: Api) -> None:
    person_id, _ = resident(api)
    csrf = console_sign_in(api.client)
    url = f"/drift/admin/personer/{person_id}/sperring"
    assert (
        refused(post(api, url, csrf, blocked="yes", reason="  "), "block_reason") == "Fyll ut dette feltet."
    )
    assert (
        refused(post(api, url, csrf, blocked="yes", reason="x" * 5000), "block_reason") == "Høyst 300 tegn."
    )
    page = done(api, post(api, url, csrf, blocked="yes", reason="Hærverk på møterommet 20.11."))
    assert "Kari Nordmann er sperret." in page and "Opphev sperringen" in page
    done(api, post(api, url, csrf, blocked="no", reason="Avklart med torgleder"))
    rows = audit(api, "person", "update")
    assert [(r.actor, r.detail) for r in rows] == [
        (CARETAKER, {"blocked": True, "reason": "Hærverk på møterommet 20.11."}),
        (CARETAKER, {"blocked": False, "reason": "Avklart med torgleder"}),
    ]


def test_a_caretaker_adds_a_person_and_registers_a_card_read_by_a_usb_reader(api: Api) -> None:
    csrf = console_sign_in(api.client)
    bad = post(api, "/drift/admin/personer/ny", csrf, kind="resident", display_name="", email="ikke-epost")
    assert refused(bad, "display_name") == "Fyll ut dette feltet."
    assert "e-postadresse" in refused(bad, "email")
    created = post(
        api, "/drift/admin/personer/ny", csrf, kind="resident", display_name="Per Olsen", birth_year="1990"
    )
    assert "Per Olsen er lagt til." in done(api, created)
    person_url = created.headers["location"]

    card = {"label": "Bibliotekkort", "pin": "2468", "pin_repeat": "2468", "valid_until": "2027-06-30"}
    bad_uid = post(api, f"{person_url}/kort", csrf, uid="not a card", **card)
    assert "heksadesimale" in refused(bad_uid, "card_uid") and "not a card" not in bad_uid.text
    assert "Bibliotekkort" in bad_uid.text  # what was typed besides the UID stays
    page = done(api, post(api, f"{person_url}/kort", csrf, uid="04:a1:b2:c3:d4:e5:f6", **card))
    assert "Kortet er registrert." in page and "30.06.2027" not in page  # valid to and with the 30th
    assert "01.07.2027 00:00" in page
    again = post(api, f"/drift/admin/personer/{person_url.rsplit('/', 1)[1]}/kort", csrf, uid=UID, label="")
    assert "already registered" in refused(again, "card_uid") and UID not in again.text

    register = audit(api, "credential", "register_card")
    assert [(r.actor, r.detail["pin"]) for r in register] == [(CARETAKER, True)]
    assert [r.actor for r in audit(api, "person", "create")] == [CARETAKER]


def test_guardian_consent_and_group_membership_from_the_person_page(api: Api) -> None:
    api.ok("POST", "/access-groups", json={"slug": "beboere", "name": "Beboere"})
    person_id, _ = resident(api)
    csrf = console_sign_in(api.client)
    base = f"/drift/admin/personer/{person_id}"
    assert "Samtykket er registrert." in done(api, post(api, f"{base}/samtykke", csrf, action="record"))
    assert "Lagt til i gruppen Beboere." in done(api, post(api, f"{base}/grupper", csrf, group="beboere"))
    assert "Tatt ut av gruppen Beboere." in done(api, post(api, f"{base}/grupper/beboere/fjern", csrf))
    phone = done(api, post(api, f"{base}/telefon", csrf, label="Mobil", valid_until=""))
    assert "Telefonen er registrert." in phone and "Telefon nr. 2 – Mobil" in phone
    with session_scope(session_factory(api.engine)) as session:
        person = session.get(Person, person_id)
        assert person is not None and person.guardian_consent and person.guardian_consent_by == CARETAKER
    assert [r.actor for r in audit(api, "access_group", "add_member")] == [CARETAKER]
    assert [r.actor for r in audit(api, "credential", "register_phone")] == [CARETAKER]
    assert [r.actor for r in audit(api, "person", "record_guardian_consent")] == [CARETAKER]


# --- access groups ----------------------------------------------------------------------------------------


def test_caretakers_manage_members_and_admins_the_zones_and_schedule(api: Api) -> None:
    api.ok("POST", "/access-groups", json={"slug": "kveld", "name": "Kveldsgruppe"})
    person_id, _ = resident(api)
    csrf = console_sign_in(api.client, CARETAKER)
    search = api.client.get("/drift/admin/grupper/kveld", params={"q": "kari"})
    assert "Kari Nordmann" in search.text and "Bare administratorer kan endre dette." in search.text
    added = done(api, post(api, "/drift/admin/grupper/kveld/medlemmer", csrf, person=str(person_id)))
    assert "Kari Nordmann er lagt til i gruppen." in added
    refused_zones = post(api, "/drift/admin/grupper/kveld/soner", csrf, zone=["holmen/torg"])
    assert refused_zones.status_code == 403 and "Bare administratorer" in refused_zones.text
    removed = post(api, f"/drift/admin/grupper/kveld/medlemmer/{person_id}/fjern", csrf)
    assert "Kari Nordmann er tatt ut av gruppen." in done(api, removed)

    api.client.cookies.clear()
    csrf = console_sign_in(api.client, ADMIN)
    done(api, post(api, "/drift/admin/grupper/kveld/soner", csrf, zone=["holmen/torg", "holmen/moterom"]))
    assert api.ok("GET", "/access-groups/kveld/zones")["zones"] == [
        {"site": "holmen", "zone": "moterom"},
        {"site": "holmen", "zone": "torg"},
    ]
    rows = {"weekday": ["0", "2", "4"], "starts": ["17:00", "18:00", ""], "ends": ["16:00", "22:00", ""]}
    assert "etter starttiden" in refused(
        post(api, "/drift/admin/grupper/kveld/tider", csrf, **rows), "interval-ends-0"
    )
    odd_day = {**rows, "weekday": ["²", "2", "4"], "ends": ["00:00", "22:00", ""]}
    assert refused(post(api, "/drift/admin/grupper/kveld/tider", csrf, **odd_day), "interval-weekday-0")
    rows["ends"][0] = "00:00"
    assert "Ukeplanen er lagret." in done(api, post(api, "/drift/admin/grupper/kveld/tider", csrf, **rows))
    assert api.ok("GET", "/access-groups/kveld/intervals")["intervals"] == [
        {"weekday": 0, "starts": "17:00:00", "ends": "00:00:00"},
        {"weekday": 2, "starts": "18:00:00", "ends": "22:00:00"},
    ]
    actors = {(r.actor, r.action) for r in audit(api, "access_group", "replace_intervals")}
    assert actors == {(ADMIN, "replace_intervals")}
    assert [r.actor for r in audit(api, "access_group", "remove_member")] == [CARETAKER]


# --- sites: hours, exceptions, rooms ----------------------------------------------------------------------


def test_an_admin_sets_the_week_and_adds_a_closed_day_and_special_hours(both_api: Api) -> None:
    api = both_api
    csrf = console_sign_in(api.client, ADMIN)
    week = {
        "weekday": ["0", "0", "5"],
        "kind": ["staffed", "meraapent", "meraapent"],
        "starts": ["10:00", "16:00", "10:00"],
        "ends": ["16:00", "22:00", "16:00"],
    }
    assert "Åpningstidene er lagret." in done(
        api, post(api, "/drift/admin/steder/holmen/apningstider", csrf, **week)
    )
    page = api.client.get("/drift/admin/steder/holmen").text
    assert "10:00–16:00" in page and "16:00–22:00" in page

    url = "/drift/admin/steder/holmen/unntak"
    closed = post(api, url, csrf, kind="closed", day="2026-12-27", note="Vannlekkasje")
    assert "Unntaket for 2026-12-27 er lagret." in done(api, closed)
    missing = post(api, url, csrf, kind="special_hours", day="2026-12-30", hours_kind="meraapent", opens="")
    assert refused(missing, "special-opens") == "Fyll ut dette feltet."
    backwards = post(
        api,
        url,
        csrf,
        kind="special_hours",
        day="2026-12-30",
        hours_kind="staffed",
        opens="20:00",
        closes="18:00",
    )
    assert refused(backwards, "special-closes").startswith("Kunne ikke lagre:")
    special = post(
        api,
        url,
        csrf,
        kind="special_hours",
        day="2026-12-30",
        hours_kind="meraapent",
        opens="12:00",
        closes="18:00",
    )
    page = done(api, special)
    assert "Stengt hele dagen" in page and "Vannlekkasje" in page and "meråpent 12:00–18:00" in page

    exceptions = api.ok("GET", "/sites/holmen/opening-exceptions")["items"]
    assert [(e["day"], e["kind"]) for e in exceptions] == [
        ("2026-12-27", "closed"),
        ("2026-12-30", "special_hours"),
    ]
    first = exceptions[0]["id"]
    assert "er slettet" in done(api, post(api, f"{url}/{first}/slett", csrf))
    assert [r.actor for r in audit(api, "opening_exception", "delete")] == [ADMIN]
    assert [r.actor for r in audit(api, "opening_hours", "replace")] == [ADMIN]


def test_caretakers_see_hours_and_rooms_but_cannot_change_them(api: Api) -> None:
    csrf = console_sign_in(api.client, CARETAKER)
    page = api.client.get("/drift/admin/steder/holmen")
    assert page.status_code == 200 and "Møterom 1" in page.text and 'name="capacity"' not in page.text
    for url, data in (
        ("/drift/admin/steder/holmen/unntak", {"kind": "closed", "day": "2026-12-27"}),
        ("/drift/admin/steder/holmen/rom/moterom-1", {"capacity": "4"}),
        ("/drift/admin/steder/holmen/apningstider", {}),
    ):
        answer = post(api, url, csrf, **data)
        assert answer.status_code == 403 and "Bare administratorer kan gjøre dette." in answer.text
    assert audit(api, "opening_exception", "create") == []


def test_an_admin_adds_a_room_and_changes_its_capacity_door_and_check_in(api: Api) -> None:
    csrf = console_sign_in(api.client, ADMIN)
    room = {
        "name": "Studierom",
        "room_slug": "Studierom!",
        "zone": "moterom",
        "capacity": "6",
        "implicit_checkin": "yes",
    }
    assert "små bokstaver" in refused(post(api, "/drift/admin/steder/holmen/rom", csrf, **room), "room_slug")
    room["room_slug"] = "studierom"
    assert "Rommet Studierom er lagt til." in done(
        api, post(api, "/drift/admin/steder/holmen/rom", csrf, **room)
    )

    url = "/drift/admin/steder/holmen/rom/moterom-1"
    with session_scope(session_factory(api.engine)) as session:
        from central.models import Room

        room_id = session.scalars(select(Room.id).where(Room.slug == "moterom-1")).one()
    assert refused(post(api, url, csrf, capacity="mange", door="moterom-1"), f"capacity-{room_id}") == (
        "Skriv et helt tall."
    )
    done(api, post(api, url, csrf, capacity="12", door=""))
    changed = api.ok("GET", "/sites/holmen/rooms/moterom-1")
    assert (changed["capacity"], changed["door"], changed["implicit_checkin"]) == (12, None, False)
    assert [r.detail for r in audit(api, "room", "update")] == [
        {"capacity": 12, "door": None, "implicit_checkin": False}
    ]


# --- bookings ---------------------------------------------------------------------------------------------


def test_the_bookings_overview_hides_the_code_and_a_cancel_needs_a_reason(api: Api) -> None:
    person_id, _ = resident(api)
    booking = api.ok(
        "POST",
        "/bookings",
        json={
            "site": "holmen",
            "room": "moterom-1",
            "starts_at": (NOW + timedelta(hours=2)).isoformat(),
            "ends_at": (NOW + timedelta(hours=4)).isoformat(),
            "holder_id": person_id,
            "title": "Leksehjelp",
        },
    )
    with session_scope(session_factory(api.engine)) as session:
        code = session.scalars(select(Booking.checkin_code).where(Booking.id == booking["id"])).one()
    csrf = console_sign_in(api.client)
    page = api.client.get("/drift/admin/bookinger").text
    assert "mandag 23.11.2026" in page and "18:00–20:00" in page and "Leksehjelp" in page
    assert "Kari" in page and "Nordmann" not in page and code not in page and "bekreftet" in page
    assert "Ingen bookinger" not in page
    other_day = api.client.get("/drift/admin/bookinger", params={"site": "holmen", "dag": "2026-11-24"}).text
    assert "Ingen bookinger denne dagen." in other_day

    url = f"/drift/admin/bookinger/{booking['id']}/avlys"
    assert refused(post(api, url, csrf, reason=""), f"reason-{booking['id']}") == "Fyll ut dette feltet."
    page = done(api, post(api, url, csrf, reason="Rommet er vannskadet"))
    assert f"Booking nr. {booking['id']} er avlyst." in page and "avlyst" in page
    assert api.ok("GET", f"/bookings/{booking['id']}")["status"] == BookingStatus.CANCELLED.value
    assert [(r.actor, r.detail) for r in audit(api, "booking", "cancel")] == [
        (CARETAKER, {"reason": "Rommet er vannskadet"})
    ]


# --- API users and the audit log --------------------------------------------------------------------------


def test_an_admin_creates_an_api_user_and_sees_the_token_once(api: Api) -> None:
    csrf = console_sign_in(api.client, ADMIN)
    bad = post(api, "/drift/admin/brukere", csrf, username="Vega Import", role="booking_integration")
    assert "små bokstaver" in refused(bad, "username")
    created = api.client.post(
        "/drift/admin/brukere", data={"csrf": csrf, "username": "vega-import", "role": "booking_integration"}
    )
    assert created.status_code == 200 and "vises bare denne ene gangen" in created.text
    token = re.search(r'id="token" class="token" value="([^"]+)"', created.text)
    assert token is not None
    works = api.client.get("/bookings", headers={"Authorization": f"Bearer {token.group(1)}"})
    assert works.status_code == 200
    listing = api.client.get("/drift/admin/brukere").text
    assert "vega-import" in listing and token.group(1) not in listing
    clash = post(api, "/drift/admin/brukere", csrf, username="vega-import", role="caretaker")
    assert "already exists" in refused(clash, "username")

    with session_scope(session_factory(api.engine)) as session:
        from central.models import ApiUser

        ids = {name: user_id for name, user_id in session.execute(select(ApiUser.username, ApiUser.id))}
    rotated = api.client.post(f"/drift/admin/brukere/{ids['vega-import']}/token", data={"csrf": csrf})
    assert "har fått en ny nøkkel" in rotated.text
    assert (
        api.client.get("/bookings", headers={"Authorization": f"Bearer {token.group(1)}"}).status_code == 401
    )

    admin_url = f"/drift/admin/brukere/{ids[ADMIN]}"
    last = post(api, f"{admin_url}/rolle", csrf, role="caretaker")
    assert "last active admin" in refused(last, "role")
    deactivate = post(api, f"{admin_url}/aktiv", csrf, active="no")
    assert "last active admin" in refused(deactivate, "active", typed=False)

    caretaker_url = f"/drift/admin/brukere/{ids[CARETAKER]}"
    pw = "et nytt og langt passord"
    assert "ikke like" in refused(
        post(api, f"{caretaker_url}/passord", csrf, password=pw, repeat="x"), "repeat"
    )
    weak = post(api, f"{caretaker_url}/passord", csrf, password="kort", repeat="kort")
    assert "12–200" in refused(weak, "password")
    assert "har fått nytt konsollpassord" in done(
        api, post(api, f"{caretaker_url}/passord", csrf, password=pw, repeat=pw)
    )
    assert "er deaktivert" in done(api, post(api, f"{caretaker_url}/aktiv", csrf, active="no"))

    actions = [(r.actor, r.action) for r in audit(api, "api_user", "create")]
    assert actions == [(ADMIN, "create")]
    assert [r.actor for r in audit(api, "api_user", "rotate_token")] == [ADMIN]
    assert [r.actor for r in audit(api, "api_user", "set_password") if r.actor != "test"] == [ADMIN]
    assert all(token.group(1) not in str(r.detail) for r in audit(api, "api_user", "create"))
    updated = audit(api, "api_user", "update")
    assert [(r.actor, r.entity_id, r.detail) for r in updated] == [
        (ADMIN, str(ids[CARETAKER]), {"active": False})
    ]


def test_caretakers_are_refused_the_admin_pages_with_the_403_page(api: Api) -> None:
    csrf = console_sign_in(api.client, CARETAKER)
    index = api.client.get("/drift/admin").text
    assert "/drift/admin/personer" in index and "/drift/admin/brukere" not in index
    for url in ("/drift/admin/brukere", "/drift/admin/brukere/1", "/drift/admin/logg"):
        page = api.client.get(url)
        assert page.status_code == 403 and "Bare administratorer kan gjøre dette." in page.text, url
    made = post(api, "/drift/admin/brukere", csrf, username="sniking", role="admin")
    assert made.status_code == 403
    assert audit(api, "api_user", "create") == []


def test_the_audit_log_lists_who_did_what_with_filters_and_pages(api: Api) -> None:
    person_id, card_id = resident(api)
    csrf = console_sign_in(api.client, ADMIN)
    for _ in range(14):
        post(api, f"/drift/admin/legitimasjon/{card_id}/status", csrf, action="block")
        post(api, f"/drift/admin/legitimasjon/{card_id}/status", csrf, action="unblock")
    page = api.client.get("/drift/admin/logg", params={"actor": ADMIN, "entity": "credential"})
    assert page.status_code == 200 and "Side 1 av 2 (29 i alt)" in page.text  # with the card's register
    assert page.text.count("<code>unblock</code>") + page.text.count("<code>block</code>") == 25
    second = api.client.get("/drift/admin/logg", params={"actor": ADMIN, "entity": "credential", "side": "2"})
    assert "Side 2 av 2" in second.text and "<code>register_card</code>" in second.text
    assert f"person: {person_id}; label: Bibliotekkort; pin: true" in second.text
    nothing = api.client.get("/drift/admin/logg", params={"fra": "2030-01-01"})
    assert "Ingen endringer passer med filteret." in nothing.text
    odd = api.client.get("/drift/admin/logg", params={"til": "i morgen"})
    assert odd.status_code == 422 and "Skriv en dato" in odd.text
    person_history = api.client.get(f"/drift/admin/logg?entity=person&entity_id={person_id}")
    assert "Viser bare person" in person_history.text and "<code>create</code>" in person_history.text


def test_pages_speak_english_and_unknown_things_are_the_not_found_page(api: Api) -> None:
    person_id, _ = resident(api)
    console_sign_in(api.client, ADMIN)
    english = api.client.get(f"/drift/admin/personer/{person_id}", headers={"Accept-Language": "en"})
    assert "Register a card" in english.text and "Cards and phones" in english.text
    for url in (
        "/drift/admin/personer/abc",
        "/drift/admin/personer/999999",
        "/drift/admin/grupper/nope",
        "/drift/admin/steder/nope",
        "/drift/admin/brukere/0",
    ):
        page = api.client.get(url)
        assert page.status_code == 404 and "Vi fant ikke siden." in page.text, url
    api.client.cookies.clear()
    away = api.client.get("/drift/admin/personer", follow_redirects=False)
    assert (
        away.status_code == 303 and away.headers["location"] == "/drift/logg-inn?next=/drift/admin/personer"
    )


# --- every page behind a role, every form behind the CSRF check -----------------------------------------

ADMIN_ONLY = {
    ("POST", "/drift/admin/grupper/{slug}/soner"),
    ("POST", "/drift/admin/grupper/{slug}/tider"),
    ("POST", "/drift/admin/steder/{slug}/apningstider"),
    ("POST", "/drift/admin/steder/{slug}/unntak"),
    ("POST", "/drift/admin/steder/{slug}/unntak/{exception_id}/slett"),
    ("POST", "/drift/admin/steder/{slug}/rom"),
    ("POST", "/drift/admin/steder/{slug}/rom/{room}"),
    ("GET", "/drift/admin/brukere"),
    ("POST", "/drift/admin/brukere"),
    ("GET", "/drift/admin/brukere/{user_id}"),
    ("POST", "/drift/admin/brukere/{user_id}/rolle"),
    ("POST", "/drift/admin/brukere/{user_id}/aktiv"),
    ("POST", "/drift/admin/brukere/{user_id}/token"),
    ("POST", "/drift/admin/brukere/{user_id}/passord"),
    ("GET", "/drift/admin/logg"),
}


def _calls(dependant: Any) -> set[Any]:
    found = {dependant.call}
    for sub in dependant.dependencies:
        found |= _calls(sub)
    return found


def test_every_admin_page_needs_its_role_and_every_form_the_session_token() -> None:
    from fastapi.routing import APIRoute

    from central.console.admin_index import admin_routers
    from central.console.session import current_admin, current_staff, require_csrf

    seen = set()
    for route in (r for router in admin_routers() for r in router.routes):
        assert isinstance(route, APIRoute)
        calls = _calls(route.dependant)
        for method in route.methods or ():
            seen.add((method, route.path))
            assert current_staff in calls, (method, route.path)
            assert (current_admin in calls) == ((method, route.path) in ADMIN_ONLY), (method, route.path)
            assert (require_csrf in calls) == (method == "POST"), (method, route.path)
    assert seen >= ADMIN_ONLY


def test_every_state_and_kind_a_page_names_has_words_in_both_languages() -> None:
    from central.models import ApiRole, BookingStatus, CredentialKind, HoursKind, PersonKind
    from protocol import i18n

    keys = [f"console.admin.kind.{k.value}" for k in PersonKind]
    keys += [f"console.admin.role.{r.value}" for r in ApiRole]
    keys += [f"console.admin.booking_status.{s.value}" for s in BookingStatus]
    keys += [f"console.admin.hours_kind.{k.value}" for k in HoursKind]
    keys += [f"console.admin.card.title.{k.value}" for k in CredentialKind]
    keys += [f"console.admin.weekday.{d}" for d in range(7)]
    catalogue = i18n.catalogue()
    assert [k for k in keys if not {"nb", "en"} <= set(catalogue.get(k, {}))] == []
