"""What caretakers do day to day: read events, acknowledge alarms, see agents, send commands to a site."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from central.db import session_factory, session_scope
from central.models import (
    Agent,
    Alarm,
    AlarmSeverity,
    ApiRole,
    AuditLog,
    Decision,
    Door,
    Event,
    EventKind,
    Site,
)
from protocol import codec
from protocol import messages as m
from tests.test_api_support import Api, FakeGateway, fields_at_fault, make_api, make_site, problem

CARETAKER = ApiRole.CARETAKER
T0 = datetime(2030, 5, 6, 18, 0, tzinfo=UTC)


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    with make_api(db_url, tmp_path, gateway=FakeGateway()) as api:
        make_site(api)
        yield api


def add_history(api: Api) -> None:
    with session_scope(session_factory(api.engine)) as session:
        site = session.scalars(select(Site).where(Site.slug == "holmen")).one()
        door = session.scalars(select(Door).where(Door.slug == "hovedinngang")).one()
        for n, (decision, reason) in enumerate(
            [("grant", "schedule"), ("deny", "wrong_pin"), ("deny", "site_closed")]
        ):
            session.add(
                Event(
                    event_id=str(uuid.uuid4()),
                    site=site,
                    agent_client_id="agent-holmen",
                    agent_seq=n + 1,
                    device_time=T0 + timedelta(minutes=n),
                    kind=EventKind.ACCESS,
                    door_slug="hovedinngang",
                    decision=Decision(decision),
                    reason=reason,
                    data={"method": "card_pin"},
                )
            )
        session.add(
            Alarm(site=site, door=door, kind="forced_open", severity=AlarmSeverity.CRITICAL, raised_at=T0)
        )
        session.add(
            Alarm(site=site, kind="disk_low", severity=AlarmSeverity.INFO, raised_at=T0, cleared_at=T0)
        )
        session.add(
            Agent(site=site, client_id="agent-holmen", online=True, last_seen_at=T0, software_version="0.1.0")
        )


def test_events_newest_first_with_filters(api: Api) -> None:
    add_history(api)
    page = api.ok("GET", "/events", role=CARETAKER)
    assert page["total"] == 3
    assert [e["reason"] for e in page["items"]] == ["site_closed", "wrong_pin", "schedule"]
    assert page["items"][0]["site"] == "holmen" and page["items"][0]["door"] == "hovedinngang"
    assert api.ok("GET", "/events?decision=deny")["total"] == 2
    assert api.ok("GET", "/events?reason=wrong_pin&site=holmen&door=hovedinngang")["total"] == 1
    since = (T0 + timedelta(minutes=1)).isoformat()
    assert api.ok("GET", "/events", params={"since": since})["total"] == 2
    assert api.ok("GET", "/events", params={"since": since, "until": since})["total"] == 0
    body = problem(api.get("/events?reason=because&decision=maybe"), 422)
    assert fields_at_fault(body) == {"reason", "decision"}
    event_id = page["items"][0]["id"]
    assert api.ok("GET", f"/events/{event_id}")["data"] == {"method": "card_pin"}


def test_alarms_are_acknowledged_once_with_a_comment(api: Api) -> None:
    add_history(api)
    open_alarms = api.ok("GET", "/alarms?acknowledged=false&active=true", role=CARETAKER)
    assert [a["kind"] for a in open_alarms["items"]] == ["forced_open"]
    alarm = open_alarms["items"][0]
    assert alarm["door"] == "hovedinngang" and alarm["severity"] == "critical"

    done = api.ok(
        "POST",
        f"/alarms/{alarm['id']}/acknowledge",
        role=CARETAKER,
        json={"comment": "Dør lukket, ingen der."},
    )
    assert done["acknowledged_by"] == "test-caretaker" and done["comment"] == "Dør lukket, ingen der."
    body = problem(api.post(f"/alarms/{alarm['id']}/acknowledge", json={"comment": "igjen"}), 409)
    assert "already acknowledged by test-caretaker" in body["detail"]
    assert api.ok("GET", "/alarms?acknowledged=false&active=true")["total"] == 0
    assert api.ok("GET", "/alarms?kind=disk_low")["total"] == 1
    problem(api.post("/alarms/9999/acknowledge", json={}), 404)


def test_agents_show_online_state_and_last_seen(api: Api) -> None:
    problem(api.get("/sites/holmen/agent"), 404)
    add_history(api)
    agents = api.ok("GET", "/agents?online=true", role=CARETAKER)
    assert agents["items"] == [
        {
            "site": "holmen",
            "client_id": "agent-holmen",
            "online": True,
            "last_seen_at": "2030-05-06T18:00:00Z",
            "software_version": "0.1.0",
            "replica_seq_applied": 0,
            "last_status": None,
        }
    ]
    assert api.ok("GET", "/sites/holmen/agent")["client_id"] == "agent-holmen"


def test_command_is_signed_off_audited_and_published(api: Api) -> None:
    assert api.gateway is not None
    response = api.post(
        "/sites/holmen/commands",
        role=CARETAKER,
        json={
            "action": "unlock",
            "door": "hovedinngang",
            "duration_seconds": 10,
            "reason": "Beboer låst ute, ringte 21:40",
        },
    )
    assert response.status_code == 202, response.text
    out = response.json()
    [command] = api.gateway.commands
    assert str(command.command_id) == out["command_id"]
    assert (
        command.action is m.Action.UNLOCK
        and command.door == "hovedinngang"
        and command.duration_seconds == 10
    )
    assert command.issued_by == "test-caretaker"
    assert timedelta(seconds=5) <= command.expires_at - command.issued_at <= timedelta(seconds=60)
    assert codec.decode(codec.encode(command), m.Command) == command  # valid on the wire

    api.ok("POST", "/sites/holmen/commands", json={"action": "lock_down", "reason": "Innbrudd meldt"})
    assert api.gateway.commands[0].nonce != api.gateway.commands[1].nonce
    with session_factory(api.engine)() as session:
        audit = session.scalars(
            select(AuditLog).where(AuditLog.action == "command").order_by(AuditLog.id)
        ).all()
    assert [(a.actor, a.detail["action"], a.detail["reason"]) for a in audit] == [
        ("test-caretaker", "unlock", "Beboer låst ute, ringte 21:40"),
        ("test-admin", "lock_down", "Innbrudd meldt"),
    ]


def test_bad_commands_are_refused_before_anything_is_sent(api: Api) -> None:
    assert api.gateway is not None
    body = problem(
        api.post(
            "/sites/holmen/commands", json={"action": "unlock", "door": "hovedinngang", "reason": "   "}
        ),
        422,
    )
    assert fields_at_fault(body) == {"reason"}
    body = problem(
        api.post("/sites/holmen/commands", json={"action": "unlock", "door": "bakdor", "reason": "test"}), 422
    )
    assert body["detail"] == "door 'bakdor' does not exist at site 'holmen'"
    body = problem(api.post("/sites/holmen/commands", json={"action": "unlock", "reason": "test"}), 422)
    assert fields_at_fault(body) == {"door"}
    body = problem(api.post("/sites/holmen/commands", json={"action": "open_sesame", "reason": "test"}), 422)
    assert fields_at_fault(body) == {"action"}
    problem(api.post("/sites/ukjent/commands", json={"action": "normal", "reason": "test"}), 404)
    assert api.gateway.commands == []


def test_command_without_a_connected_gateway_is_503_and_not_audited(api: Api) -> None:
    assert api.gateway is not None
    api.gateway.connected = False
    body = problem(
        api.post("/sites/holmen/commands", json={"action": "release", "reason": "Brannøvelse"}), 503
    )
    assert "not connected" in body["detail"]
    with session_factory(api.engine)() as session:
        assert session.scalars(select(AuditLog).where(AuditLog.action == "command")).all() == []


def test_command_on_a_server_without_gateway_is_503(
    db_url: str, tmp_path: Path
) -> None:
    with make_api(db_url, tmp_path, gateway=None) as api:
        make_site(api)
        body = problem(api.post("/sites/holmen/commands", json={"action": "normal", "reason": "test"}), 503)
        assert "without the MQTT gateway" in body["detail"]
        assert api.get("/health", role=None).json()["gateway"] == {"running": False}
