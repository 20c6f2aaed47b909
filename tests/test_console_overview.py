"""The overview (Oversikt) and remote control (Fjernstyring): what a caretaker sees and sends.

The view is a pure function of database rows, tested without HTTP; the pages and forms through the
TestClient with a FakeGateway that keeps what it was handed; the live stream by reading its events while
the database changes under it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from central.console.door_view import (
    AgentRow,
    DoorRow,
    DoorShown,
    EventRow,
    OverviewRows,
    SiteRow,
    overview,
)
from central.console.overview import load_rows
from central.db import session_factory, session_scope
from central.gateway.ingest import apply_agent_status, apply_door_state, site_ids, store_events
from central.models import Alarm, ApiUser, AuditLog, Person, PersonKind, Site
from central.replica import person_ref
from protocol import messages as m
from tests.console_support import console_sign_in, give_passwords
from tests.test_api_support import Api, FakeGateway, make_api, make_site

NOW = datetime(2026, 11, 23, 20, 45, tzinfo=UTC)  # 21:45 in Oslo
SITE = "heggedal"


def oslo(hh_mm: str, day: int = 23) -> datetime:
    hours, minutes = map(int, hh_mm.split(":"))
    return datetime(2026, 11, day, hours - 1, minutes, tzinfo=UTC)  # Oslo is UTC+1 in November


# --- the view, from rows ------------------------------------------------------------------------------------


def rows(
    *,
    online: bool | None = True,
    state: str | None = "locked",
    events: dict[tuple[str, str | None], EventRow] | None = None,
    seen: datetime | None = None,
    pending: int | None = None,
) -> OverviewRows:
    agents = {} if online is None else {SITE: AgentRow(online, seen or oslo("21:40"), "1.4.0", pending)}
    return OverviewRows(
        sites=(SiteRow(SITE, "Heggedal innbyggertorg", "Europe/Oslo"),),
        agents=agents,
        doors=(DoorRow(SITE, "hovedinngang", "Hovedinngang", state, oslo("21:35")),),
        last_events=events or {},
        open_alarms={SITE: 2},
    )


def only_door(rows_: OverviewRows, lang: str = "nb") -> Any:
    [site] = overview(rows_, lang, NOW).sites
    [door] = site.doors
    return door


def test_a_door_of_an_offline_agent_is_unknown_since_the_agent_went_away_not_a_stale_locked() -> None:
    door = only_door(rows(online=False))
    assert door.state == DoorShown.UNKNOWN and door.tone == "muted"
    assert door.state_text == "Tilstand ukjent – styreenheten frakoblet siden 21:40"
    assert door.since_text == "Sist kjent: låst, 21:35"
    [site] = overview(rows(online=False), "nb", NOW).sites
    assert (site.online, site.agent_text, site.agent_tone) == (False, "Frakoblet siden 21:40", "bad")
    never = overview(rows(online=None), "nb", NOW).sites[0]
    assert never.agent_text == "Har aldri meldt seg"
    assert never.doors[0].state_text == "Tilstand ukjent – styreenheten har aldri meldt seg"


def test_every_state_reads_in_words_with_a_symbol_in_both_languages() -> None:
    words = {
        "locked": ("Låst", "Locked", "ok"),
        "unlocked": ("Ulåst", "Unlocked", "warn"),
        "open": ("Åpen", "Open", "warn"),
        "held_open": ("Holdt åpen", "Held open", "bad"),
        "forced_open": ("Brutt opp", "Forced open", "bad"),
        "released": ("Frigitt", "Released", "warn"),
        "locked_down": ("Nedlåst", "Locked down", "warn"),
        "fault": ("Feil", "Fault", "bad"),
    }
    assert set(words) == {state.value for state in m.DoorStateName}
    symbols = set()
    for state, (nb, en, tone) in words.items():
        door = only_door(rows(state=state))
        assert (door.state, door.state_text, door.tone, door.since_text) == (state, nb, tone, "siden 21:35")
        assert only_door(rows(state=state), "en").state_text == en
        symbols.add(door.symbol)
    assert len(symbols) == len(words)  # each state its own symbol, not only its own colour
    assert only_door(rows(state="melted")).state_text == "Tilstand ukjent – døra har ikke meldt seg ennå"
    assert only_door(rows(state=None)).state == DoorShown.UNKNOWN


def test_the_last_event_says_decision_and_reason_in_words_and_never_who_or_why_a_caretaker_acted() -> None:
    denied = EventRow(SITE, "hovedinngang", oslo("21:38"), "access", "deny", "wrong_pin")
    assert (
        only_door(rows(events={(SITE, "hovedinngang"): denied})).event_text
        == "21:38 · Avvist – Feil PIN-kode."
    )
    yesterday = EventRow(
        SITE, "hovedinngang", oslo("19:02", day=22), "alarm", None, "forced_open", raised=True
    )
    assert (
        only_door(rows(events={(SITE, "hovedinngang"): yesterday})).event_text
        == "22.11. 19:02 · Alarm: døra er brutt opp"
    )
    done = EventRow(
        SITE,
        "hovedinngang",
        oslo("21:44"),
        "system",
        None,
        "command-done",
        detail="unlock by test-caretaker: Kari Nordmann locked out",
    )
    text = only_door(rows(events={(SITE, "hovedinngang"): done})).event_text
    assert text == "21:44 · Fjernstyring utført: lås opp"
    result = EventRow(SITE, None, oslo("21:44"), "system", None, "command_refused")
    site = overview(rows(events={(SITE, None): result}), "en", NOW).sites[0]
    assert site.event_text == "21:44 · The controller refused a remote command"
    assert only_door(rows()).event_text == "Ingen hendelser den siste måneden"


def test_the_site_line_counts_alarms_and_tells_the_agents_version_and_backlog() -> None:
    view = overview(rows(pending=7), "nb", NOW)
    [site] = view.sites
    assert site.alarms_text == "Åpne alarmer: 2" and site.open_alarms == 2
    assert site.agent_detail == "Programvare 1.4.0 · Hendelser som venter på å bli sendt: 7"
    assert view.summary_text == "Steder: 1. Styreenheter tilkoblet: 1. Åpne alarmer: 2."


# --- the database behind it ---------------------------------------------------------------------------------


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with make_api(f"sqlite:///{tmp_path / 'central.db'}", tmp_path, gateway=FakeGateway()) as made:
        give_passwords(made.engine)
        make_site(made, SITE)
        made.client.app.state.clock = lambda: NOW  # type: ignore[attr-defined]
        made.client.app.state.overview_poll_s = 0.02  # type: ignore[attr-defined]
        made.client.app.state.overview_heartbeat_s = 0.2  # type: ignore[attr-defined]
        yield made


def agent_status(api: Api, online: bool, pending: int = 0, at: datetime = NOW) -> None:
    status = m.AgentStatus(
        site=SITE,
        agent="heggedal-pi-1",
        online=online,
        at=at,
        software_version="1.4.0",
        outbox_pending=pending,
    )
    with session_scope(session_factory(api.engine)) as session:
        apply_agent_status(session, site_ids(session)[SITE], status, at)


def door_state(api: Api, state: m.DoorStateName, since: datetime, door: str = "hovedinngang") -> None:
    message = m.DoorState(site=SITE, door=door, state=state, since=since, device_time=since)
    with session_scope(session_factory(api.engine)) as session:
        assert apply_door_state(session, site_ids(session)[SITE], message)


def access(api: Api, decision: m.Decision, reason: m.Reason, at: datetime, person: int | None = None) -> None:
    event = m.AccessEvent(
        event_id=uuid.uuid4(),
        site=SITE,
        agent="heggedal-pi-1",
        seq=int(at.timestamp()),
        device_time=at,
        door="hovedinngang",
        decision=decision,
        reason=reason,
        method=m.Method.CARD_PIN,
        credential_ref="c1",
        person_ref=None if person is None else person_ref(person),
    )
    with session_scope(session_factory(api.engine)) as session:
        store_events(session, [event], site_ids(session), at)


def add_kari(api: Api) -> int:
    with session_scope(session_factory(api.engine)) as session:
        kari = Person(kind=PersonKind.RESIDENT, display_name="Kari Nordmann")
        session.add(kari)
        session.flush()
        return kari.id


def raise_alarm(api: Api, acknowledged: bool = False) -> None:
    with session_scope(session_factory(api.engine)) as session:
        site_id = session.scalars(select(Site.id).where(Site.slug == SITE)).one()
        seen = NOW if acknowledged else None
        session.add(Alarm(site_id=site_id, kind="held_open", raised_at=NOW, acknowledged_at=seen))


def test_rows_come_from_the_database_with_the_newest_event_per_door(db_url: str, tmp_path: Path) -> None:
    with make_api(db_url, tmp_path) as made:
        make_site(made, SITE)
        agent_status(made, online=True, pending=3)
        door_state(made, m.DoorStateName.OPEN, oslo("21:30"))
        access(made, m.Decision.GRANT, m.Reason.SCHEDULE, oslo("21:29"))
        access(made, m.Decision.DENY, m.Reason.SITE_CLOSED, oslo("21:31"))
        raise_alarm(made)
        raise_alarm(made, acknowledged=True)  # seen to: no longer open
        with session_factory(made.engine)() as session:
            loaded = load_rows(session, NOW)
    view = overview(loaded, "nb", NOW)
    [site] = view.sites
    doors = {door.name: door for door in site.doors}
    assert set(doors) == {"Hovedinngang", "Møterom 1"}
    assert doors["Hovedinngang"].state_text == "Åpen"
    assert doors["Hovedinngang"].event_text == "21:31 · Avvist – Innbyggertorget er stengt nå."
    assert doors["Møterom 1"].state_text == "Tilstand ukjent – døra har ikke meldt seg ennå"
    assert site.open_alarms == 1 and "Hendelser som venter på å bli sendt: 3" in site.agent_detail


# --- the pages ----------------------------------------------------------------------------------------------


def test_a_caretaker_sees_every_door_its_state_and_the_alarms_but_no_names(api: Api) -> None:
    agent_status(api, online=True)
    door_state(api, m.DoorStateName.FORCED_OPEN, oslo("21:41"))
    access(api, m.Decision.GRANT, m.Reason.SCHEDULE, oslo("21:40"), person=add_kari(api))
    raise_alarm(api)
    console_sign_in(api.client)
    page = api.client.get("/drift/oversikt")
    assert page.status_code == 200
    html = page.text
    assert "Hovedinngang" in html and "Møterom 1" in html
    assert "Brutt opp" in html and "siden 21:41" in html
    assert "21:40 · Sluppet inn – Døra ble åpnet: du har tilgang i åpningstiden." in html
    assert 'href="/drift/alarmer?site=heggedal&amp;state=open"' in html and "Åpne alarmer: 1" in html
    assert "Kari" not in html
    assert 'aria-live="polite"' in html and "<script" in html and "overview.js" in html


def test_without_signing_in_the_page_and_the_stream_send_to_sign_in(api: Api) -> None:
    away = api.client.get("/drift/oversikt", follow_redirects=False)
    assert away.status_code == 303 and away.headers["location"] == "/drift/logg-inn?next=/drift/oversikt"
    stream = api.client.get("/drift/oversikt/live", follow_redirects=False)  # not an event stream:
    assert stream.status_code == 303 and "event-stream" not in stream.headers.get("content-type", "")
    assert api.client.get("/drift/styring/heggedal", follow_redirects=False).status_code == 303


def commands(api: Api) -> list[m.Command]:
    assert api.gateway is not None
    return api.gateway.commands


def audited(api: Api) -> list[AuditLog]:
    with session_factory(api.engine)() as session:
        return list(session.scalars(select(AuditLog).where(AuditLog.action == "command")))


def test_a_command_without_a_reason_is_not_sent_and_the_page_says_why_next_to_the_field(api: Api) -> None:
    csrf = console_sign_in(api.client)
    form = {"csrf": csrf, "door": "hovedinngang", "duration": "300", "reason": "   "}
    page = api.client.post("/drift/styring/heggedal/las-opp", data=form)
    assert page.status_code == 422
    assert '<p class="error-text" id="unlock-reason-error">Skriv en begrunnelse.</p>' in page.text
    assert 'aria-invalid="true" aria-errormessage="unlock-reason-error"' in page.text
    too_long = api.client.post("/drift/styring/heggedal/las-opp", data=form | {"reason": "x" * 301})
    assert too_long.status_code == 422 and "høyst 300 tegn" in too_long.text
    two_lines = api.client.post("/drift/styring/heggedal/las-opp", data=form | {"reason": "en\nto"})
    assert two_lines.status_code == 422 and "én linje" in two_lines.text
    no_door = api.client.post(
        "/drift/styring/heggedal/las-opp", data=form | {"reason": "ok", "door": "bakdor"}
    )
    assert no_door.status_code == 422 and "Døra finnes ikke ved dette stedet." in no_door.text
    assert commands(api) == [] and audited(api) == []


def test_an_unlock_with_a_reason_goes_to_the_gateway_with_the_caretaker_and_is_audited(api: Api) -> None:
    csrf = console_sign_in(api.client)
    form = {
        "csrf": csrf,
        "door": "hovedinngang",
        "duration": "300",
        "reason": "Beboer låst ute, ringte 21:40",
    }
    sent = api.client.post("/drift/styring/heggedal/las-opp", data=form, follow_redirects=False)
    assert sent.status_code == 303 and sent.headers["location"] == "/drift/oversikt#site-heggedal"
    notice = api.client.get("/drift/oversikt").text
    assert "Sendt til Heggedal innbyggertorg: lås opp Hovedinngang i 5 minutter" in notice
    [command] = commands(api)
    assert (command.action, command.site, command.door, command.duration_seconds) == (
        m.Action.UNLOCK,
        SITE,
        "hovedinngang",
        300,
    )
    assert (command.issued_by, command.reason) == ("test-caretaker", "Beboer låst ute, ringte 21:40")
    [entry] = audited(api)
    assert entry.actor == "test-caretaker" and entry.entity_id == SITE
    assert entry.detail["reason"] == "Beboer låst ute, ringte 21:40"
    assert entry.detail["command_id"] == str(command.command_id)
    until_normal = form | {"duration": "normal", "reason": "Arrangement i kveld"}
    api.client.post("/drift/styring/heggedal/las-opp", data=until_normal)
    assert (commands(api)[-1].action, commands(api)[-1].door) == (m.Action.RELEASE, "hovedinngang")


def test_lock_down_and_release_need_a_ticked_confirmation(api: Api) -> None:
    csrf = console_sign_in(api.client)
    form = {"csrf": csrf, "reason": "Uro ved inngangen"}
    unconfirmed = api.client.post("/drift/styring/heggedal/las-ned", data=form)
    assert unconfirmed.status_code == 422
    assert (
        '<p class="error-text" id="lock_down-confirm-error">Kryss av for å bekrefte.</p>' in unconfirmed.text
    )
    assert 'value="Uro ved inngangen"' in unconfirmed.text  # what was typed is kept
    assert commands(api) == []
    done = api.client.post("/drift/styring/heggedal/las-ned", data=form | {"confirm": "yes"})
    assert "Sendt til Heggedal innbyggertorg: lås ned alle dører" in done.text
    api.client.post("/drift/styring/heggedal/frigi", data=form | {"confirm": "yes", "reason": "Brannøvelse"})
    api.client.post("/drift/styring/heggedal/normal", data=form | {"reason": "Øvelsen er over"})
    assert [(c.action, c.door) for c in commands(api)] == [
        (m.Action.LOCK_DOWN, None),
        (m.Action.RELEASE, None),
        (m.Action.NORMAL, None),
    ]
    assert [a.detail["reason"] for a in audited(api)] == [
        "Uro ved inngangen",
        "Brannøvelse",
        "Øvelsen er over",
    ]


def test_without_contact_with_the_sites_nothing_is_sent_or_audited_and_the_page_says_so(api: Api) -> None:
    assert api.gateway is not None
    api.gateway.connected = False
    csrf = console_sign_in(api.client)
    form = {"csrf": csrf, "door": "hovedinngang", "duration": "5", "reason": "Beboer låst ute"}
    page = api.client.post("/drift/styring/heggedal/las-opp", data=form)
    assert page.status_code == 503
    assert "Sentralen har ikke kontakt med stedene nå. Ingenting ble sendt" in page.text
    assert 'value="Beboer låst ute"' in page.text
    assert "Sentralen har ikke kontakt med stedene nå" in api.client.get("/drift/oversikt").text
    api.client.app.state.gateway = None  # type: ignore[attr-defined]
    assert api.client.post("/drift/styring/heggedal/las-opp", data=form).status_code == 503
    assert commands(api) == [] and audited(api) == []


def test_the_control_page_preselects_the_door_and_an_unknown_site_is_a_page(api: Api) -> None:
    console_sign_in(api.client)
    page = api.client.get("/drift/styring/heggedal?door=moterom-1")
    assert page.status_code == 200 and '<option value="moterom-1" selected>' in page.text
    assert "Styreenheten ved Heggedal innbyggertorg er frakoblet" in page.text  # never reported yet
    missing = api.client.get("/drift/styring/atlantis")
    assert missing.status_code == 404 and "Vi fant ikke siden." in missing.text


# --- the live stream ----------------------------------------------------------------------------------------


def next_view(lines: Iterator[str], timeout: float = 5.0) -> dict[str, Any]:
    """The next overview event on the stream (heartbeats keep lines coming, so the deadline is checked)."""
    deadline = time.monotonic() + timeout
    event = ""
    for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == "overview":
            view: dict[str, Any] = json.loads(line.removeprefix("data: "))
            return view
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no overview event within {timeout} s")


def door_in(view: dict[str, Any], key: str = "heggedal/hovedinngang") -> dict[str, Any]:
    door: dict[str, Any] = next(d for site in view["sites"] for d in site["doors"] if d["key"] == key)
    return door


@pytest.mark.timeout(30)
def test_the_stream_sends_the_view_at_once_and_again_when_a_door_changes(api: Api) -> None:
    agent_status(api, online=True)
    door_state(api, m.DoorStateName.LOCKED, oslo("21:30"))
    console_sign_in(api.client)
    with api.client.stream("GET", "/drift/oversikt/live") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(lines) == "retry: 3000"
        first = door_in(next_view(lines))
        assert (first["state"], first["state_text"], first["dom_id"]) == (
            "locked",
            "Låst",
            "door-heggedal.hovedinngang",
        )
        door_state(api, m.DoorStateName.FORCED_OPEN, oslo("21:42"))
        changed = door_in(next_view(lines))
        assert (changed["state_text"], changed["tone"], changed["since_text"]) == (
            "Brutt opp",
            "bad",
            "siden 21:42",
        )
        agent_status(api, online=False)
        gone = door_in(next_view(lines))
        assert gone["state_text"] == "Tilstand ukjent – styreenheten frakoblet siden 21:45"


@pytest.mark.timeout(30)
def test_a_quiet_stream_sends_heartbeats_and_ends_when_the_caretaker_is_signed_out(api: Api) -> None:
    console_sign_in(api.client)
    with api.client.stream("GET", "/drift/oversikt/live") as response:
        lines = response.iter_lines()
        next_view(lines)
        beats = [line for line, _ in zip(lines, range(6), strict=False) if line.startswith(":")]
        assert beats, "no heartbeat comment on a quiet stream"
        with session_scope(session_factory(api.engine)) as session:
            session.scalars(select(ApiUser).where(ApiUser.username == "test-caretaker")).one().active = False
        rest = list(_until_closed(lines, timeout=5))
        assert not any(line.startswith("event:") for line in rest)


def _until_closed(lines: Iterator[str], timeout: float) -> Iterator[str]:
    deadline = time.monotonic() + timeout
    for line in lines:
        yield line
        if time.monotonic() > deadline:
            raise AssertionError("the stream did not end for a deactivated caretaker")


def test_english_pages_speak_english(api: Api) -> None:
    console_sign_in(api.client)
    page = api.client.get("/drift/oversikt", headers={"Accept-Language": "en"})
    assert "Overview" in page.text and "State unknown – the controller has never reported" in page.text
    control = api.client.get("/drift/styring/heggedal", headers={"Accept-Language": "en"})
    assert "I confirm that all doors at Heggedal innbyggertorg are to be locked down" in control.text
