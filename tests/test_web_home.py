"""The home page on a signed-in phone: today's sections, Open, check-in / extend / end, the phone key and
the bound QR code, each on central's injectable clock (`app.state.clock`).

The gateway is a stand-in that answers commands the way the real one records them: the agent's command
result is stored as an event (central.gateway.ingest.store_command_result) a moment after the command left.
The phone of the QR tests is Python with `cryptography` doing what the page's WebCrypto does.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import segno
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import FastAPI
from sqlalchemy import Engine, delete, select

from central.db import session_factory, session_scope
from central.gateway.ingest import store_command_result
from central.keystore import generate_key, load_public_keys
from central.models import (
    AuditLog,
    Booking,
    BookingStatus,
    Credential,
    CredentialStatus,
    IssuedToken,
    Person,
    PhoneKey,
    Room,
    Site,
    TermsAcceptance,
)
from central.web import home
from protocol import i18n
from protocol import messages as m
from protocol.holder import time_step, verify_presentation
from protocol.keys import b64url_decode, b64url_encode
from protocol.token import TokenError, TokenRefusal
from tests.test_api_support import Api, FakeGateway, make_api
from tests.test_my_access import Town, at, book, build_town
from tests.web_support import TEST_CSRF, finish_enrolment, sign_in_as

HOME = "/min-nokkel/hjem"
JSON_HEADERS = {"X-CSRF-Token": TEST_CSRF}

Answer = Callable[[m.Command], m.CommandResult | None]


@dataclass
class AnsweringGateway(FakeGateway):
    """Takes commands like the fake gateway and, if told to, has the site answer them: the result is stored
    from another thread a moment later, as the real gateway's ingest would."""

    engine: Engine | None = None
    answer: Answer | None = None

    def publish_command(self, cmd: m.Command) -> None:
        super().publish_command(cmd)
        result = self.answer(cmd) if self.answer is not None else None
        if result is not None:
            threading.Thread(target=self._store, args=(result,), daemon=True).start()

    def _store(self, result: m.CommandResult) -> None:
        assert self.engine is not None
        with session_scope(session_factory(self.engine)) as session:
            site_id = session.scalars(select(Site.id).where(Site.slug == result.site)).one()
            store_command_result(session, site_id, result, result.at)


def opened(cmd: m.Command) -> m.CommandResult:
    return m.CommandResult(cmd.command_id, cmd.site, m.CommandOutcome.DONE, cmd.issued_at, reason="schedule")


def refused(reason: m.Reason) -> Answer:
    def answer(cmd: m.Command) -> m.CommandResult:
        return m.CommandResult(
            cmd.command_id,
            cmd.site,
            m.CommandOutcome.REFUSED,
            cmd.issued_at,
            reason.value,
            deny_reason=reason,
        )

    return answer


@dataclass
class Phone:
    """A signed-in phone against a running central, with the town in its database and a settable clock."""

    api: Api
    town: dict[str, int]  # person name -> id
    gateway: AnsweringGateway
    now: list[datetime]

    @property
    def client(self) -> Any:
        return self.api.client

    def sign_in(self, name: str) -> None:
        sign_in_as(self.client, self.api.settings, self.town[name])

    def set_time(self, moment: datetime) -> None:
        self.now[0] = moment

    def page(self, **headers: str) -> httpx.Response:
        response: httpx.Response = self.client.get(HOME, headers=headers)
        assert response.status_code == 200, response.text
        return response

    def post(self, url: str, **data: Any) -> httpx.Response:
        response: httpx.Response = self.client.post(
            url, data={"csrf": TEST_CSRF, **data}, follow_redirects=False
        )
        return response

    def act(self, url: str, **data: Any) -> str:
        """Post a form as the page does; returns the notice the home page shows after the redirect."""
        response = self.post(url, **data)
        assert (response.status_code, response.headers["location"]) == (303, HOME), response.text
        return notice(self.page())

    def booking(self, booking_id: int) -> Booking:
        with session_factory(self.api.engine)() as session:
            found = session.get(Booking, booking_id)
            assert found is not None
            return found


def app_of(api: Api) -> FastAPI:
    app = api.client.app
    assert isinstance(app, FastAPI)
    return app


def notice(page: httpx.Response) -> str:
    found = re.search(r'<div id="home-status" role="status"[^>]*>(.*?)</div>', page.text, re.S)
    assert found, "the page has no status region"
    return found.group(1).strip()


@pytest.fixture
def phone(tmp_path: Path) -> Iterator[Phone]:
    gateway = AnsweringGateway()
    with make_api(f"sqlite:///{tmp_path / 'central.db'}", tmp_path, gateway=gateway) as api:
        gateway.engine = api.engine
        now = [at(12)]
        app_of(api).state.clock = lambda: now[0]
        with session_scope(session_factory(api.engine)) as session:
            town: Town = build_town(session)
            ids = {name: person.id for name, person in town.people.items()}
            for person_id in ids.values():
                finish_enrolment(session, person_id, now[0])
        yield Phone(api, ids, gateway, now)


def add_booking(phone: Phone, holder: str, starts: datetime, ends: datetime) -> int:
    with session_scope(session_factory(phone.api.engine)) as session:
        room = session.scalars(
            select(Room).where(Room.slug == "moterom-1").join(Site).where(Site.slug == "holmen")
        )
        town = Town(
            rooms={"holmen/moterom-1": room.one()},
            people={holder: session.get_one(Person, phone.town[holder])},
        )
        return book(session, town, holder, starts, ends).id


# --- the page -----------------------------------------------------------------------------------------------


def test_the_page_shows_each_site_with_when_to_come_and_an_open_button_per_door(phone: Phone) -> None:
    phone.sign_in("Kari")
    page = phone.page()
    assert "<h1>Hei, Kari</h1>" in page.text
    assert '<h2 id="site-holmen">Holmen innbyggertorg</h2>' in page.text
    assert "Du kan komme i dag: 07:00–22:00" in page.text
    assert re.findall(r"<button[^>]*>(Åpne [^<]+)</button>", page.text) == [
        "Åpne Bibliotekdor",
        "Åpne Hovedinngang",
    ]
    assert 'name="csrf" value="csrf-token-for-tests"' in page.text
    assert '<script src="/min-nokkel/static/min-nokkel.js" defer></script>' in page.text
    english = phone.page(**{"Accept-Language": "en"})
    assert "You may come today: 07:00–22:00" in english.text and "Open Hovedinngang" in english.text


def test_late_in_the_evening_the_times_stay_and_the_buttons_go(phone: Phone) -> None:
    phone.sign_in("Kari")
    phone.set_time(at(22, 30))
    page = phone.page()
    assert "Du kan komme i dag: 07:00–22:00" in page.text
    assert "Åpne " not in page.text and "Ingen akkurat nå" in page.text


def test_a_caretaker_may_come_all_day_and_the_day_ends_at_24(phone: Phone) -> None:
    phone.sign_in("Vidar")
    page = phone.page()
    assert "Du kan komme i dag: 00:00–24:00" in page.text and "Åpne Kontor" in page.text


def test_someone_with_nothing_today_is_told_so_and_a_blocked_phone_is_told_why(phone: Phone) -> None:
    phone.sign_in("Nora")
    assert "Du har ingen tilgang eller bookinger i dag." in phone.page().text
    with session_scope(session_factory(phone.api.engine)) as session:
        for credential in session.scalars(
            select(Credential).where(Credential.person_id == phone.town["Kari"])
        ):
            credential.status = CredentialStatus.BLOCKED
    phone.sign_in("Kari")
    page = phone.page()
    assert "Telefonen din kan ikke brukes som nøkkel nå" in page.text
    assert "Kortet eller telefonen er sperret." in page.text
    assert 'id="qr"' not in page.text and "Åpne " not in page.text


def test_without_signing_in_the_page_sends_you_to_the_start(phone: Phone) -> None:
    response = phone.client.get(HOME, follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/min-nokkel/")


def test_an_unfinished_enrolment_is_sent_on_to_its_next_step(phone: Phone) -> None:
    with session_scope(session_factory(phone.api.engine)) as session:
        session.execute(delete(TermsAcceptance).where(TermsAcceptance.person_id == phone.town["Kari"]))
    phone.sign_in("Kari")
    response = phone.client.get(HOME, follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/min-nokkel/vilkar")


# --- bookings -----------------------------------------------------------------------------------------------


def test_the_holder_checks_in_from_the_page_and_is_told_so(phone: Phone) -> None:
    booking_id = add_booking(phone, "Nora", at(18), at(20))
    phone.sign_in("Nora")
    phone.set_time(at(17, 50))
    page = phone.page()
    assert "18:00–20:00 i Møterom 1" in page.text and "Innsjekk 17:45–18:15" in page.text
    assert f'action="/min-nokkel/hjem/booking/{booking_id}/sjekk-inn"' in page.text
    assert phone.act(f"{HOME}/booking/{booking_id}/sjekk-inn") == "Du er sjekket inn. Velkommen!"
    assert phone.booking(booking_id).status is BookingStatus.CHECKED_IN
    assert "Sjekket inn" in phone.page().text
    assert notice(phone.page()) == ""  # a notice is shown once
    with session_factory(phone.api.engine)() as session:
        actors = session.scalars(select(AuditLog.actor).where(AuditLog.action == "check_in")).all()
    assert actors == [f"resident:{phone.town['Nora']}"]


def test_a_refused_check_in_says_why_in_the_residents_language(phone: Phone) -> None:
    booking_id = add_booking(phone, "Nora", at(18), at(20))
    phone.sign_in("Nora")
    phone.set_time(at(17))
    assert f"{booking_id}/sjekk-inn" not in phone.page().text  # no button before the window opens
    assert phone.act(f"{HOME}/booking/{booking_id}/sjekk-inn") == (
        "Det er for tidlig å sjekke inn. Innsjekken åpner 17:45."
    )
    phone.set_time(at(18, 20))
    phone.client.cookies.set("lang", "en", domain="testserver.local")
    assert phone.act(f"{HOME}/booking/{booking_id}/sjekk-inn") == "Check-in closed at 18:15."
    assert phone.booking(booking_id).status is BookingStatus.CONFIRMED


def test_the_holder_extends_while_the_room_is_free_and_ends_early(phone: Phone) -> None:
    booking_id = add_booking(phone, "Nora", at(18), at(20))
    add_booking(phone, "Kari", at(21, 30), at(22))
    phone.sign_in("Nora")
    phone.set_time(at(18, 30))
    assert phone.act(f"{HOME}/booking/{booking_id}/forleng", minutes=60) == "Bookingen varer nå til 21:00."
    assert phone.booking(booking_id).ends_at == at(21)
    assert phone.act(f"{HOME}/booking/{booking_id}/forleng", minutes=60) == (
        "Rommet er ikke ledig så lenge. Prøv en kortere forlengelse."
    )
    assert phone.act(f"{HOME}/booking/{booking_id}/forleng", minutes=45) == "Velg hvor lenge du vil forlenge."
    assert phone.booking(booking_id).ends_at == at(21)
    assert phone.act(f"{HOME}/booking/{booking_id}/avslutt").startswith("Bookingen er avsluttet")
    assert phone.booking(booking_id).ends_at == at(18, 30)
    assert phone.act(f"{HOME}/booking/{booking_id}/avslutt") == "Denne bookingen kan ikke endres lenger."


def test_a_booking_that_has_not_started_cannot_be_ended(phone: Phone) -> None:
    booking_id = add_booking(phone, "Nora", at(18), at(20))
    phone.sign_in("Nora")
    phone.set_time(at(17, 50))
    assert phone.act(f"{HOME}/booking/{booking_id}/avslutt") == "Bookingen har ikke begynt ennå."


def test_only_the_holder_may_touch_a_booking(phone: Phone) -> None:
    booking_id = add_booking(phone, "Nora", at(18), at(20))
    phone.sign_in("Kari")
    phone.set_time(at(18, 5))
    for action, data in (("sjekk-inn", {}), ("forleng", {"minutes": 30}), ("avslutt", {})):
        assert phone.act(f"{HOME}/booking/{booking_id}/{action}", **data) == (
            "Du kan bare endre dine egne bookinger."
        )
    assert phone.act(f"{HOME}/booking/999999/sjekk-inn") == "Du kan bare endre dine egne bookinger."
    booking = phone.booking(booking_id)
    assert (booking.status, booking.ends_at) == (BookingStatus.CONFIRMED, at(20))


def test_a_co_holder_may_check_in_but_only_the_holder_extends_or_ends(phone: Phone) -> None:
    booking_id = add_booking(phone, "Nora", at(18), at(20))
    with session_scope(session_factory(phone.api.engine)) as session:
        booking = session.get_one(Booking, booking_id)
        booking.co_holders.append(session.get_one(Person, phone.town["Kari"]))
    phone.sign_in("Kari")
    phone.set_time(at(17, 50))
    page = phone.page()
    assert "18:00–20:00 i Møterom 1" in page.text
    assert "Åpne Moterom-1" in page.text  # the booked room's own door, for her too
    assert f"{booking_id}/sjekk-inn" in page.text
    assert f"{booking_id}/forleng" not in page.text and f"{booking_id}/avslutt" not in page.text
    assert phone.act(f"{HOME}/booking/{booking_id}/sjekk-inn") == "Du er sjekket inn. Velkommen!"
    phone.set_time(at(18, 30))
    for action, data in (("forleng", {"minutes": 30}), ("avslutt", {})):
        assert phone.act(f"{HOME}/booking/{booking_id}/{action}", **data) == (
            "Bare den som har booket rommet, kan forlenge eller avslutte bookingen."
        )
    booking = phone.booking(booking_id)
    assert (booking.status, booking.ends_at) == (BookingStatus.CHECKED_IN, at(20))
    phone.sign_in("Nora")
    assert f"{booking_id}/forleng" in phone.page().text  # the holder still can


def test_forms_without_the_sessions_token_change_nothing(phone: Phone) -> None:
    booking_id = add_booking(phone, "Nora", at(18), at(20))
    phone.sign_in("Nora")
    phone.set_time(at(18, 5))
    for url in (f"{HOME}/booking/{booking_id}/sjekk-inn", f"{HOME}/apne"):
        response = phone.client.post(url, data={"csrf": "guess", "site": "holmen", "door": "hovedinngang"})
        assert response.status_code == 403 and "Økten din er utløpt" in response.text
    assert phone.booking(booking_id).status is BookingStatus.CONFIRMED
    assert phone.gateway.commands == []


# --- Open ---------------------------------------------------------------------------------------------------


def test_open_sends_a_command_for_this_person_and_says_the_door_is_open(phone: Phone) -> None:
    phone.gateway.answer = opened
    phone.sign_in("Kari")
    assert phone.act(f"{HOME}/apne", site="holmen", door="hovedinngang") == "Døra er åpen. Gå inn nå."
    [command] = phone.gateway.commands
    assert (command.action, command.site, command.door) == (m.Action.OPEN_FOR, "holmen", "hovedinngang")
    assert command.holder == f"p{phone.town['Kari']}" and command.issued_at == at(12)


def test_a_refusal_at_the_door_is_told_in_plain_words(phone: Phone) -> None:
    phone.gateway.answer = refused(m.Reason.OUTSIDE_SCHEDULE)
    phone.sign_in("Kari")
    assert (
        phone.act(f"{HOME}/apne", site="holmen", door="kontor") == "Du har ikke tilgang på dette tidspunktet."
    )
    phone.client.cookies.set("lang", "en", domain="testserver.local")
    assert phone.act(f"{HOME}/apne", site="holmen", door="kontor") == "You do not have access at this time."


def test_the_script_gets_the_answer_as_json(phone: Phone) -> None:
    phone.gateway.answer = opened
    phone.sign_in("Kari")
    response = phone.client.post(
        f"{HOME}/apne",
        data={"csrf": TEST_CSRF, "site": "holmen", "door": "hovedinngang"},
        headers={"Accept": "application/json"},
    )
    assert response.json() == {"opened": True, "tone": "ok", "message": "Døra er åpen. Gå inn nå."}


def test_no_answer_no_gateway_no_door_and_no_phone_each_get_their_own_words(
    phone: Phone, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(home, "OPEN_WAIT_S", 0.2)
    phone.sign_in("Kari")
    assert phone.act(f"{HOME}/apne", site="holmen", door="hovedinngang").startswith(
        "Vi fikk ikke svar fra døra."
    )
    assert phone.act(f"{HOME}/apne", site="holmen", door="finnes-ikke") == "Den døra finnes ikke."
    phone.gateway.connected = False
    assert phone.act(f"{HOME}/apne", site="holmen", door="hovedinngang").startswith(
        "Dørene kan ikke åpnes fra telefonen akkurat nå."
    )
    app_of(phone.api).state.gateway = None
    assert phone.act(f"{HOME}/apne", site="holmen", door="hovedinngang").startswith("Dørene kan ikke åpnes")
    with session_scope(session_factory(phone.api.engine)) as session:
        for credential in session.scalars(
            select(Credential).where(Credential.person_id == phone.town["Kari"])
        ):
            credential.status = CredentialStatus.REVOKED
    assert phone.act(f"{HOME}/apne", site="holmen", door="hovedinngang") == (
        "Kortet eller telefonen er trukket tilbake."
    )


def test_every_deny_and_grant_reason_has_plain_words_in_bokmal_and_english() -> None:
    catalogue = i18n.catalogue()
    missing = [reason.value for reason in m.Reason if f"reason.{reason.value}" not in catalogue]
    assert missing == []
    for reason in m.Reason:
        entry = catalogue[f"reason.{reason.value}"]
        assert entry["nb"] != entry["en"] and entry["nb"].endswith(".") and entry["en"].endswith(".")


# --- the phone's key and the bound QR code ------------------------------------------------------------------


class PythonPhone:
    """What min-nokkel.js does, in Python: a P-256 key, registration, tickets, a signature per step."""

    def __init__(self, phone: Phone) -> None:
        self.phone = phone
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.context = b""

    @property
    def raw_public(self) -> bytes:
        return self.key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)

    def register(self, headers: dict[str, str] | None = None) -> httpx.Response:
        response: httpx.Response = self.phone.client.post(
            "/min-nokkel/telefon",
            json={"public_key": b64url_encode(self.raw_public)},
            headers=JSON_HEADERS if headers is None else headers,
        )
        return response

    def ticket(self, site: str = "holmen") -> httpx.Response:
        response: httpx.Response = self.phone.client.get(
            f"/min-nokkel/qr/billett?site={site}", headers=JSON_HEADERS
        )
        if response.status_code == 200:
            self.context = b64url_decode(response.json()["context"])
        return response

    def sign(self, step: int) -> bytes:
        der = self.key.sign(self.context + step.to_bytes(8, "big"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def qr(self, step: int, signature: bytes | None = None) -> httpx.Response:
        body = {
            "step": step,
            "signature": b64url_encode(signature if signature is not None else self.sign(step)),
        }
        response: httpx.Response = self.phone.client.post("/min-nokkel/qr", json=body, headers=JSON_HEADERS)
        return response


@pytest.fixture
def keyed(phone: Phone) -> Phone:
    generate_key(phone.api.settings.data_dir)
    phone.sign_in("Kari")
    return phone


def test_the_qr_code_is_a_presentation_only_this_phone_could_make(
    keyed: Phone, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mine = PythonPhone(keyed)
    assert mine.register().status_code == 200
    ticket = mine.ticket()
    assert ticket.status_code == 200, ticket.text
    body = ticket.json()
    assert body["step_seconds"] == 30 and datetime.fromisoformat(body["server_time"]) == at(12)
    assert datetime.fromisoformat(body["expires_at"]) == at(12, 10)
    step = time_step(at(12))
    answer = mine.qr(step)
    assert answer.status_code == 200, answer.text
    shown = answer.json()
    text = shown["text"]
    assert shown["image"].startswith("data:image/svg+xml")
    assert shown["version"] == segno.make_qr(text, error="m", boost_error=False).version  # level M
    claims = verify_presentation(text, load_public_keys(keyed.api.settings.data_dir), at(12))
    assert (claims.site, claims.holder, claims.zones) == (
        "holmen",
        f"p{keyed.town['Kari']}",
        ("bibliotek", "torg"),
    )
    assert claims.holder_key is not None and claims.holder_key[1:] == mine.raw_public[1:33]
    with pytest.raises(TokenError) as stale:
        verify_presentation(text, load_public_keys(keyed.api.settings.data_dir), at(12, 1))
    assert stale.value.reason is TokenRefusal.PROOF_STALE
    with session_factory(keyed.api.engine)() as session:
        [record] = session.scalars(select(IssuedToken)).all()
        assert record.token_id == claims.token_id_hex and record.expires_at == at(12, 10)
        audit = " ".join(str(row.detail) for row in session.scalars(select(AuditLog)))
    token_part = text[4:40]
    assert token_part not in caplog.text and token_part not in audit


def test_another_phone_cannot_prove_this_phones_ticket(keyed: Phone) -> None:
    mine, friends = PythonPhone(keyed), PythonPhone(keyed)
    mine.register()
    mine.ticket()
    friends.context = mine.context  # the friend knows the ticket, not the key
    step = time_step(at(12))
    assert mine.qr(step, friends.sign(step)).json()["error"] == "ticket"
    assert mine.qr(step + 3).json()["error"] == "ticket"  # a step the door would call stale
    assert mine.qr(step).status_code == 200


def test_a_ticket_needs_a_registered_phone_access_at_the_site_and_the_csrf_header(keyed: Phone) -> None:
    mine = PythonPhone(keyed)
    assert mine.ticket().json()["error"] == "key"
    assert mine.register(headers={}).status_code == 403
    assert mine.register().json() == mine.register().json()  # the same phone registers once
    refused_here = mine.ticket("tofte")
    assert (refused_here.status_code, refused_here.json()["error"]) == (409, "no_access")
    assert refused_here.json()["message"] == "Du har ingen tilgang her i dag."
    no_header = keyed.client.get("/min-nokkel/qr/billett?site=holmen")
    assert no_header.status_code == 403
    garbage = keyed.client.post("/min-nokkel/telefon", json={"public_key": "AAAA"}, headers=JSON_HEADERS)
    assert (garbage.status_code, garbage.json()["error"]) == (422, "invalid")
    assert mine.qr(1).json()["error"] == "ticket"  # no ticket yet in this session


def test_a_sixth_phone_retires_the_least_recently_used_and_that_one_must_make_a_new_key(keyed: Phone) -> None:
    phones = [PythonPhone(keyed) for _ in range(6)]
    for n, each in enumerate(phones):
        keyed.set_time(at(12, n))
        assert each.register().status_code == 200
    again = phones[0].register()
    assert (again.status_code, again.json()["error"]) == (409, "revoked")
    with session_factory(keyed.api.engine)() as session:
        keys = session.scalars(select(PhoneKey).order_by(PhoneKey.id)).all()
    assert [k.revoked_at is not None for k in keys] == [True, False, False, False, False, False]
    assert keys[1].label == "testclient"  # from the user agent: TestClient's own


def test_a_withdrawn_key_gets_no_more_codes(keyed: Phone) -> None:
    mine = PythonPhone(keyed)
    mine.register()
    mine.ticket()
    with session_scope(session_factory(keyed.api.engine)) as session:
        for key in session.scalars(select(PhoneKey)):
            key.revoked_at = at(12)
    assert mine.qr(time_step(at(12))).json()["error"] == "key"
    assert mine.ticket().json()["error"] == "key"


def test_a_ticket_expires_and_cannot_be_signed_for_after(keyed: Phone) -> None:
    mine = PythonPhone(keyed)
    mine.register()
    mine.ticket()
    keyed.set_time(at(12, 11))
    assert mine.qr(time_step(at(12, 11))).json()["error"] == "ticket"


def test_the_phone_label_names_browser_and_system_only() -> None:
    from central.services.phone_keys import phone_label

    android = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126 Mobile Safari/537.36"
    iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile Safari/604.1"
    assert phone_label(android) == "Chrome · Android"
    assert phone_label(iphone) == "Safari · iPhone"
    assert phone_label("") == "?"
