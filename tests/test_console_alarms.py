"""Alarms in the caretakers' console: open ones first, acknowledged once with a one-line comment (audited),
the history with who acknowledged, when and what they wrote, filtered and paged, and one alarm's page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from central.console.alarms import comment_error
from central.console.events import ALARM_KINDS
from central.db import session_factory, session_scope
from central.models import (
    Alarm,
    AlarmNotification,
    AlarmSeverity,
    AuditLog,
    Decision,
    EventKind,
)
from protocol import i18n
from protocol.messages import AlarmKind, Method
from tests.console_support import CARETAKER, form_csrf
from tests.test_api_support import Api
from tests.test_console_events import T0, add_event, door_id, signed_in_console, site_id


class Clock:
    def __init__(self) -> None:
        self.now = T0 + timedelta(minutes=30)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    """On SQLite and PostgreSQL: for what the database filters, counts and stores."""
    with signed_in_console(db_url, tmp_path) as made:
        made.client.app.state.clock = Clock()  # type: ignore[attr-defined]
        yield made


@pytest.fixture
def page_api(tmp_path: Path) -> Iterator[Api]:
    """On SQLite only: for what the page itself decides."""
    with signed_in_console(f"sqlite:///{tmp_path / 'console.db'}", tmp_path) as made:
        made.client.app.state.clock = Clock()  # type: ignore[attr-defined]
        yield made


def add_alarm(
    engine: Engine,
    *,
    site: str = "holmen",
    door: str | None = "hovedinngang",
    kind: str = "forced_open",
    severity: AlarmSeverity = AlarmSeverity.CRITICAL,
    at: datetime = T0,
    cleared_at: datetime | None = None,
    acknowledged_by: str | None = None,
    comment: str = "",
    event_id: str | None = None,
) -> int:
    with session_scope(session_factory(engine)) as session:
        alarm = Alarm(
            site_id=site_id(engine, site),
            door_id=door_id(engine, site, door) if door else None,
            kind=kind,
            severity=severity,
            raised_at=at,
            cleared_at=cleared_at,
            acknowledged_at=at + timedelta(minutes=10) if acknowledged_by else None,
            acknowledged_by=acknowledged_by,
            # `comment`: the agent's words on an open alarm, the caretaker's on an acknowledged one
            comment=comment if acknowledged_by else "",
            detail="" if acknowledged_by else comment,
            event_id=event_id,
        )
        session.add(alarm)
        session.flush()
        return alarm.id


def open_ids(html: str) -> list[int]:
    """The open alarms (the cards with an acknowledge form), top to bottom."""
    return [
        int(found)
        for found in re.findall(r'<article class="alarm [a-z]+" aria-labelledby="alarm-(\d+)"', html)
    ]


def history_ids(html: str) -> list[int]:
    return [int(found) for found in re.findall(r'<tr>\s*<td><a href="/drift/alarmer/(\d+)">', html)]


def acknowledge(api: Api, alarm_id: int, comment: str, back: str = "list", csrf: str | None = None) -> str:
    token = csrf if csrf is not None else form_csrf(api.client.get("/drift/alarmer").text)
    response = api.client.post(
        f"/drift/alarmer/{alarm_id}/kvitter",
        data={"csrf": token, "comment": comment, "back": back},
        follow_redirects=False,
    )
    return f"{response.status_code} {response.headers.get('location', '')}\n{response.text}"


def test_open_alarms_come_first_newest_first_with_severity_in_words_and_symbols(api: Api) -> None:
    forced = add_alarm(api.engine, at=T0, comment="Dør 1 brutt")
    held = add_alarm(
        api.engine,
        kind="held_open",
        severity=AlarmSeverity.WARNING,
        at=T0 + timedelta(minutes=5),
        cleared_at=T0 + timedelta(minutes=7),
    )
    offline = add_alarm(
        api.engine, site="berger", door=None, kind="agent_offline", at=T0 - timedelta(hours=1)
    )
    handled = add_alarm(
        api.engine, at=T0 - timedelta(days=1), acknowledged_by="test-admin", comment="Sjekket"
    )
    html = api.client.get("/drift/alarmer").text
    assert open_ids(html) == [held, forced, offline]
    assert "Åpne alarmer (3)" in html
    assert "‼</span> Kritisk" in html and "!</span> Advarsel" in html
    assert "Dør brutt opp – Holmen innbyggertorg, Hovedinngang" in html
    assert "Stedet har mistet forbindelsen – Berger innbyggertorg" in html
    assert "Dør holdt åpen for lenge" in html
    assert "23.11.2026 19:00" in html  # raised, in Oslo time
    assert "Over 23.11.2026 19:07" in html and "Fortsatt aktiv" in html
    assert "Dør 1 brutt" in html  # what the agent said
    assert history_ids(html) == [handled]  # history: what has been handled
    assert "test-admin, 22.11.2026 19:10" in html and "Sjekket" in html


def test_a_caretaker_acknowledges_with_a_comment_and_it_is_audited_and_moves_to_the_history(api: Api) -> None:
    alarm = add_alarm(api.engine)
    done = acknowledge(api, alarm, "  Dør lukket, ingen der.  ")
    assert done.startswith("303 /drift/alarmer\n")
    html = api.client.get("/drift/alarmer").text
    assert f"Alarm {alarm} er kvittert." in html
    assert open_ids(html) == [] and "Ingen åpne alarmer." in html
    assert history_ids(html) == [alarm]
    assert f"{CARETAKER}, 23.11.2026 19:30" in html and "Dør lukket, ingen der." in html
    with session_scope(session_factory(api.engine)) as session:
        stored = session.get(Alarm, alarm)
        assert stored is not None
        assert stored.acknowledged_by == CARETAKER and stored.comment == "Dør lukket, ingen der."
        assert stored.acknowledged_at == T0 + timedelta(minutes=30)  # the console's clock
        audit = session.scalars(select(AuditLog).where(AuditLog.entity == "alarm")).all()
        assert [(a.actor, a.action, a.entity_id, a.detail) for a in audit] == [
            (CARETAKER, "acknowledge", str(alarm), {"comment": "Dør lukket, ingen der."})
        ]
    # a second try (a reload, or a colleague a moment later) says who was first and changes nothing
    again = acknowledge(api, alarm, "Andre")
    assert again.startswith("409")
    assert (
        f"Alarm {alarm} var allerede kvittert av {CARETAKER} 23.11.2026 19:30. Ingenting er endret." in again
    )
    with session_scope(session_factory(api.engine)) as session:
        assert session.get(Alarm, alarm).comment == "Dør lukket, ingen der."  # type: ignore[union-attr]
        assert len(session.scalars(select(AuditLog).where(AuditLog.entity == "alarm")).all()) == 1


def test_acknowledging_needs_a_one_line_comment_and_the_session_token(page_api: Api) -> None:
    api = page_api
    alarm = add_alarm(api.engine)
    for comment, message in [
        ("   ", "Skriv en kort kommentar om hva du så eller gjorde."),
        ("x" * 301, "Kommentaren kan være høyst 300 tegn."),
        ("linje én\nlinje to", "Kommentaren må være én linje uten spesialtegn."),
    ]:
        refused = acknowledge(api, alarm, comment)
        assert refused.startswith("422"), comment
        assert f'<p class="error-text" id="comment-{alarm}-error">{message}</p>' in refused
        assert 'aria-invalid="true"' in refused
    forged = acknowledge(api, alarm, "Dør lukket", csrf="forged")
    assert forged.startswith("403") and "Siden var for gammel" in forged
    with session_scope(session_factory(api.engine)) as session:
        assert session.get(Alarm, alarm).acknowledged_at is None  # type: ignore[union-attr]
        assert session.scalars(select(AuditLog).where(AuditLog.entity == "alarm")).all() == []
    assert comment_error("Dør lukket, alt i orden") is None


def test_the_history_filters_by_site_severity_kind_state_and_period(api: Api) -> None:
    a = add_alarm(api.engine, at=T0, acknowledged_by="test-admin", comment="a")
    b = add_alarm(
        api.engine,
        site="berger",
        kind="held_open",
        severity=AlarmSeverity.WARNING,
        at=T0 + timedelta(hours=1),
        acknowledged_by="test-admin",
        comment="b",
    )
    c = add_alarm(api.engine, kind="tamper", at=T0 + timedelta(hours=2))  # not acknowledged
    d = add_alarm(
        api.engine, kind="disk_low", severity=AlarmSeverity.INFO, at=T0 + timedelta(hours=3), cleared_at=T0
    )

    def history(**params: str) -> list[int]:
        page = api.client.get("/drift/alarmer", params=params)
        assert page.status_code == 200, page.text
        return history_ids(page.text)

    assert history() == [b, a]
    assert history(state="all") == [d, c, b, a]
    assert history(state="open") == [d, c]
    assert history(state="all", site="berger") == [b]
    assert history(state="all", severity="critical") == [c, a]
    assert history(state="all", kind="disk_low") == [d]
    assert history(state="all", **{"from": "2026-11-23T20:00", "to": "2026-11-23T21:30"}) == [c, b]
    assert "1 alarm" in api.client.get("/drift/alarmer", params={"kind": "held_open"}).text
    # fifty a page, newest first, the links keeping the search
    older = [
        add_alarm(api.engine, at=T0 - timedelta(minutes=n), acknowledged_by="test-admin", comment=str(n))
        for n in range(1, 59)
    ]
    first = api.client.get("/drift/alarmer").text
    assert history_ids(first) == [b, a, *older[:48]] and "60 alarmer" in first and "Side 1 av 2" in first
    second = api.client.get("/drift/alarmer", params={"state": "acknowledged", "page": "2"}).text
    assert history_ids(second) == older[48:]
    assert 'href="/drift/alarmer?state=acknowledged&amp;page=1" rel="prev"' in second


def test_bad_history_filters_are_said_next_to_the_field(page_api: Api) -> None:
    add_alarm(page_api.engine)
    for params, field in [
        ({"state": "sleeping"}, "state"),
        ({"severity": "mild"}, "severity"),
        ({"kind": "ghost"}, "kind"),
        ({"site": "atlantis"}, "site"),
        ({"from": "i går"}, "from"),
        ({"from": "2026-11-23T20:00", "to": "2026-11-23T20:00"}, "to"),
    ]:
        page = page_api.client.get("/drift/alarmer", params=params)
        assert page.status_code == 422, params
        assert f'<p class="error-text" id="{field}-error">' in page.text, params
        assert len(open_ids(page.text)) == 1  # the open alarms are still there to act on


def test_one_alarm_shows_its_event_and_is_acknowledged_there(page_api: Api) -> None:
    api = page_api
    event = add_event(
        api.engine,
        kind=EventKind.ALARM,
        decision=None,
        reason="forced_open",
        data={"severity": "critical", "raised": True, "detail": "magnet åpen uten adgang"},
        event_id="6f1c1d0e-0000-4000-8000-000000000001",
    )
    alarm = add_alarm(api.engine, event_id="6f1c1d0e-0000-4000-8000-000000000001")
    with session_scope(session_factory(api.engine)) as session:
        session.add(
            AlarmNotification(
                alarm_id=alarm,
                site_id=site_id(api.engine, "holmen"),
                kind="forced_open",
                created_at=T0,
                repeats=3,
            )
        )
    html = api.client.get(f"/drift/alarmer/{alarm}").text
    assert f'href="/drift/hendelser/{event}"' in html and "Se hendelsen 23.11.2026 19:00:00" in html
    assert "3 ganger til etter denne" in html and "magnet åpen uten adgang" in html
    assert f'href="/drift/alarmer/{alarm}"' in api.client.get(f"/drift/hendelser/{event}").text
    done = acknowledge(api, alarm, "Sjekket på kamera", back="detail")
    assert done.startswith(f"303 /drift/alarmer/{alarm}\n")
    html = api.client.get(f"/drift/alarmer/{alarm}").text
    assert f"{CARETAKER}, 23.11.2026 19:30" in html and "Sjekket på kamera" in html
    assert f"/drift/alarmer/{alarm}/kvitter" not in html  # nothing left to acknowledge
    offline = add_alarm(api.engine, site="berger", door=None, kind="agent_offline")
    html = api.client.get(f"/drift/alarmer/{offline}").text
    assert "Hele stedet" in html and "Ingen (reist av sentralen selv)" in html
    assert api.client.get("/drift/alarmer/777777").status_code == 404
    assert "Vi fant ikke siden." in acknowledge(api, 777777, "hei")


def test_every_alarm_kind_severity_event_kind_decision_and_method_has_words_in_both_languages() -> None:
    catalogue = i18n.catalogue()
    keys = [f"console.alarm_kind.{k}" for k in (*(k.value for k in AlarmKind), "agent_offline")]
    keys += [f"console.severity.{s.value}" for s in AlarmSeverity]
    keys += [f"console.event_kind.{k.value}" for k in EventKind]
    keys += [f"console.decision.{d.value}" for d in Decision]
    keys += [f"console.events.method.{m.value}" for m in Method]
    missing = [key for key in keys if set(catalogue.get(key, {})) < {"nb", "en"}]
    assert missing == []
    assert set(ALARM_KINDS) == {*(k.value for k in AlarmKind), "agent_offline"}


def test_acknowledging_keeps_what_the_agent_said_beside_the_caretakers_comment(api: Api) -> None:
    forced = add_alarm(api.engine, at=T0, comment="dørkontakt åpnet uten kort")
    assert acknowledge(api, forced, "Sjekket, ingen der").startswith("303")
    alarm = api.get(f"/alarms/{forced}").json()
    assert (alarm["detail"], alarm["comment"]) == ("dørkontakt åpnet uten kort", "Sjekket, ingen der")
    assert "dørkontakt åpnet uten kort" in api.client.get(f"/drift/alarmer/{forced}").text
