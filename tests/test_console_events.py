"""The event log in the caretakers' console: search by site, door, person, decision, reason, kind and period
(in the site's time), 50 per page newest first, bad searches answered next to the field, and one event's page.

The seeding helpers here are used by tests/test_console_alarms*.py too.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from central.console.events import parse_local
from central.db import session_factory, session_scope
from central.models import Decision, Door, Event, EventKind, Person, PersonKind, Site
from tests.console_support import console_sign_in, give_passwords
from tests.test_api_support import Api, make_api, make_site

T0 = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)  # 19:00 in Oslo (winter time)


@contextmanager
def signed_in_console(db_url: str, tmp_path: Path) -> Iterator[Api]:
    """Sites holmen and berger (an entrance and a meeting room each, and a back door at holmen only),
    and the test caretaker signed in to the console."""
    with make_api(db_url, tmp_path) as made:
        make_site(made, "holmen")
        make_site(made, "berger")
        made.ok(
            "POST",
            "/sites/holmen/doors",
            json={"slug": "bakdor", "name": "Bakdør", "zone": "torg", "kind": "entrance"},
        )
        give_passwords(made.engine)
        console_sign_in(made.client)
        yield made


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    """On SQLite and PostgreSQL: for what the database filters and counts."""
    with signed_in_console(db_url, tmp_path) as made:
        yield made


@pytest.fixture
def page_api(tmp_path: Path) -> Iterator[Api]:
    """On SQLite only: for what the page itself decides (reading the search, showing one event)."""
    with signed_in_console(f"sqlite:///{tmp_path / 'console.db'}", tmp_path) as made:
        yield made


def site_id(engine: Engine, slug: str) -> int:
    with session_scope(session_factory(engine)) as session:
        return session.scalars(select(Site.id).where(Site.slug == slug)).one()


def door_id(engine: Engine, site: str, door: str) -> int:
    with session_scope(session_factory(engine)) as session:
        stmt = select(Door.id).join(Site, Site.id == Door.site_id).where(Site.slug == site, Door.slug == door)
        return session.scalars(stmt).one()


def add_person(engine: Engine, name: str) -> int:
    with session_scope(session_factory(engine)) as session:
        person = Person(kind=PersonKind.RESIDENT, display_name=name)
        session.add(person)
        session.flush()
        return person.id


def add_event(
    engine: Engine,
    *,
    site: str = "holmen",
    door: str | None = "hovedinngang",
    at: datetime = T0,
    kind: EventKind = EventKind.ACCESS,
    decision: str | None = "deny",
    reason: str | None = "wrong_pin",
    person_id: int | None = None,
    credential_ref: str | None = None,
    data: dict[str, Any] | None = None,
    event_id: str | None = None,
) -> int:
    with session_scope(session_factory(engine)) as session:
        event = Event(
            event_id=event_id or str(uuid.uuid4()),
            site_id=session.scalars(select(Site.id).where(Site.slug == site)).one(),
            agent_client_id=f"agent-{site}",
            agent_seq=1,
            device_time=at,
            kind=kind,
            door_slug=door,
            credential_ref=credential_ref,
            person_id=person_id,
            decision=Decision(decision) if decision else None,
            reason=reason,
            data=data if data is not None else {"method": "card_pin"},
        )
        session.add(event)
        session.flush()
        return event.id


def listed(html: str) -> list[int]:
    """The events in the page's table, top to bottom, by id."""
    return [
        int(found) for found in re.findall(r'<tr>\s*<td class="when"><a href="/drift/hendelser/(\d+)">', html)
    ]


def search(api: Api, **params: str) -> tuple[int, str]:
    page = api.client.get("/drift/hendelser", params=params)
    return page.status_code, page.text


def test_the_log_reads_newest_first_in_site_time_with_names_reasons_and_results_in_words(api: Api) -> None:
    kari = add_person(api.engine, "Kari Nordmann")
    granted = add_event(
        api.engine, at=T0, decision="grant", reason="schedule", person_id=kari, credential_ref="c1"
    )
    refused = add_event(api.engine, at=T0 + timedelta(minutes=5), reason="wrong_pin", person_id=kari)
    hidden = add_event(
        api.engine, at=T0 + timedelta(minutes=9), reason="site_closed", credential_ref="p:ab12cd"
    )
    status, html = search(api)
    assert status == 200
    assert listed(html) == [hidden, refused, granted]
    assert "3 hendelser" in html
    assert "23.11.2026 19:05" in html and "23.11.2026 19:00" in html  # Oslo time, not UTC
    assert "Kari Nordmann" in html and "pseudonymisert" in html
    assert "Feil PIN-kode." in html and "Innbyggertorget er stengt nå." in html
    assert "✓</span> Sluppet inn" in html and "✗</span> Avvist" in html
    assert "Holmen innbyggertorg" in html and "Hovedinngang" in html
    assert 'href="/drift/hendelser" aria-current="page"' in html


def test_site_door_decision_reason_kind_and_period_narrow_the_log(api: Api) -> None:
    at_holmen_door = add_event(api.engine, site="holmen", door="hovedinngang", at=T0)
    at_holmen_room = add_event(api.engine, site="holmen", door="moterom-1", at=T0 + timedelta(minutes=1))
    at_berger = add_event(api.engine, site="berger", door="hovedinngang", at=T0 + timedelta(minutes=2))
    granted = add_event(
        api.engine, site="holmen", decision="grant", reason="schedule", at=T0 + timedelta(minutes=3)
    )
    alarm = add_event(
        api.engine,
        kind=EventKind.ALARM,
        decision=None,
        reason="forced_open",
        at=T0 + timedelta(hours=2),
        data={"severity": "critical", "raised": True, "detail": ""},
    )
    assert listed(search(api, site="berger")[1]) == [at_berger]
    assert listed(search(api, site="holmen", door="moterom-1")[1]) == [at_holmen_room]
    assert listed(search(api, site="holmen", decision="deny")[1]) == [at_holmen_room, at_holmen_door]
    assert listed(search(api, decision="grant")[1]) == [granted]
    assert listed(search(api, reason="wrong_pin", site="berger")[1]) == [at_berger]
    _, alarms_only = search(api, kind="alarm")
    assert listed(alarms_only) == [alarm] and "Dør brutt opp" in alarms_only
    # 19:01 to 19:03 Oslo time is 18:01 to 18:03 UTC: from inclusive, to exclusive
    assert listed(search(api, **{"from": "2026-11-23T19:01", "to": "2026-11-23T19:03"})[1]) == [
        at_berger,
        at_holmen_room,
    ]
    _, none = search(api, site="berger", decision="grant")
    assert listed(none) == [] and "0 hendelser" in none


def test_a_person_is_found_by_part_of_their_name_and_a_click_on_a_name_shows_only_theirs(api: Api) -> None:
    kari = add_person(api.engine, "Kari Nordmann")
    ola = add_person(api.engine, "Ola Nordmann")
    karis = add_event(api.engine, person_id=kari, at=T0)
    olas = add_event(api.engine, person_id=ola, at=T0 + timedelta(minutes=1))
    add_event(api.engine, credential_ref="p:0011", at=T0 + timedelta(minutes=2))  # pseudonymised: no name
    assert listed(search(api, person="nordMANN")[1]) == [olas, karis]
    assert listed(search(api, person="kari")[1]) == [karis]
    status, html = search(api, person_id=str(ola))
    assert status == 200 and listed(html) == [olas]
    assert "Viser hendelser for Ola Nordmann." in html
    assert f'href="/drift/hendelser?person_id={kari}"' in search(api)[1]  # names link to their events
    missing, html = search(api, person_id="999999")
    assert missing == 422 and "Personen finnes ikke (lenger)." in html


def test_fifty_a_page_newest_first_with_links_that_keep_the_search(api: Api) -> None:
    ids = [add_event(api.engine, at=T0 + timedelta(minutes=n)) for n in range(120)]
    add_event(api.engine, site="berger", at=T0 + timedelta(days=1))  # not in the search
    newest_first = ids[::-1]
    _, first = search(api, site="holmen")
    assert listed(first) == newest_first[:50]
    assert "120 hendelser" in first and "Side 1 av 3" in first
    assert 'href="/drift/hendelser?site=holmen&amp;page=2" rel="next"' in first
    assert 'rel="prev"' not in first
    _, last = search(api, site="holmen", page="3")
    assert listed(last) == newest_first[100:]
    assert "Side 3 av 3" in last and 'rel="next"' not in last
    assert 'href="/drift/hendelser?site=holmen&amp;page=2" rel="prev"' in last


BAD_SEARCHES = [
    ({"from": "2026-11-23T20:00", "to": "2026-11-23T19:00"}, "to", "«Til» må være etter «Fra»."),
    ({"from": "23.11.2026 kl 19"}, "from", "Skriv dato og klokkeslett"),
    ({"to": "2026-13-45T25:99"}, "to", "Skriv dato og klokkeslett"),
    ({"from": "0001-01-01T00:00"}, "from", "Skriv dato og klokkeslett"),
    ({"site": "atlantis"}, "site", "Velg et sted fra listen."),
    ({"site": "berger", "door": "bakdor"}, "door", "Velg en dør på det valgte stedet."),
    ({"door": "kjeller"}, "door", "Velg en dør på det valgte stedet."),
    ({"decision": "maybe"}, "decision", "Velg en verdi fra listen."),
    ({"reason": "because"}, "reason", "Velg en verdi fra listen."),
    ({"kind": "party"}, "kind", "Velg en verdi fra listen."),
    ({"person": "a" * 201}, "person", "høyst 200 tegn"),
    ({"person": "Kari\nOla"}, "person", "uten spesialtegn"),
]


def test_a_bad_search_is_the_page_again_with_the_message_next_to_the_field(page_api: Api) -> None:
    add_event(page_api.engine)
    for params, field, message in BAD_SEARCHES:
        status, html = search(page_api, **params)
        assert status == 422, params
        assert re.search(rf'<p class="error-text" id="{field}-error">[^<]*{re.escape(message)}', html), params
        assert f'aria-describedby="{field}-error"' in html, params
        assert "Søket kunne ikke gjøres" in html and listed(html) == [], params
    for page in ("zero", "0", "²", "9" * 5000):
        status, html = search(page_api, page=page)
        assert status == 422 and "Sidetallet må være et helt tall fra 1." in html, page
    assert search(page_api, person_id="²")[0] == 422
    assert listed(search(page_api, site="holmen", door="bakdor")[1]) == []  # a door of the chosen site: fine


def test_one_event_says_what_where_when_who_and_how_without_card_references(page_api: Api) -> None:
    api = page_api
    kari = add_person(api.engine, "Kari Nordmann")
    event = add_event(
        api.engine,
        person_id=kari,
        credential_ref="c42",
        reason="credential_blocked",
        data={"method": "card_pin", "person_ref": f"p{kari}", "uid_hash": "ab" * 32, "booking_ref": None},
    )
    page = api.client.get(f"/drift/hendelser/{event}")
    assert page.status_code == 200
    html = page.text
    for words in (
        "Hendelse",
        "Adgang: Kortet eller telefonen er sperret.",
        "Holmen innbyggertorg, Hovedinngang",
        "23.11.2026 19:00:00",
        "Kari Nordmann",
        "Kort og PIN-kode",
        "Avvist",
    ):
        assert words in html, words
    assert "c42" not in html and "ab" * 32 not in html and f"p{kari}" not in html
    english = api.client.get(f"/drift/hendelser/{event}", headers={"Accept-Language": "en"}).text
    assert "Card and PIN" in english and "Refused" in english


def test_an_unknown_event_is_a_not_found_page_and_the_log_needs_a_signed_in_caretaker(page_api: Api) -> None:
    api = page_api
    missing = api.client.get("/drift/hendelser/424242")
    assert missing.status_code == 404 and "Vi fant ikke siden." in missing.text
    assert api.client.get("/drift/hendelser/99999999999").status_code == 404
    api.client.cookies.clear()
    away = api.client.get("/drift/hendelser", follow_redirects=False)
    assert away.status_code == 303 and away.headers["location"] == "/drift/logg-inn?next=/drift/hendelser"


def test_times_typed_in_summer_are_read_in_summer_time() -> None:
    assert parse_local("2026-07-01T12:00", "Europe/Oslo").astimezone(UTC) == datetime(
        2026, 7, 1, 10, tzinfo=UTC
    )
    assert parse_local("2026-12-01T12:00:30", "Europe/Oslo").astimezone(UTC) == datetime(
        2026, 12, 1, 11, 0, 30, tzinfo=UTC
    )
    with pytest.raises(ValueError):
        parse_local("2026-02-30T12:00", "Europe/Oslo")
