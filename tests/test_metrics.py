"""GET /metrics: who may scrape, requests by route template, gauges from the database, gateway counters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session

from central.api import create_app
from central.config import Settings
from central.db import make_engine, migrate, session_factory, session_scope, utcnow
from central.metrics.database import (
    AlarmCount,
    Backlog,
    DatabaseCollector,
    DatabaseGauges,
    SiteAgent,
    gauge_families,
)
from central.models import (
    Agent,
    Alarm,
    AlarmSeverity,
    ApiRole,
    ApiUser,
    ReplicaChange,
    ReplicaOp,
    Site,
    WebhookKind,
    WebhookOutbox,
)
from central.security import api_token_hash
from protocol import messages as m
from protocol.topics import Channel
from tests.infra import MosquittoBroker
from tests.test_api_support import TOKENS, Api, FakeGateway, add_api_users, make_api, make_site, problem
from tests.test_gateway import WAIT_S, FakeAgent, eventually
from tests.test_ingest import access, alarm
from tests.test_replica import add_site

MONITORING_TOKEN = "monitoring-token-for-tests-0123456789"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def add_monitoring_user(engine: Engine) -> None:
    with session_scope(session_factory(engine)) as session:
        session.add(
            ApiUser(
                username="prometheus", role=ApiRole.MONITORING, token_hash=api_token_hash(MONITORING_TOKEN)
            )
        )


def scrape(client: TestClient, token: str = MONITORING_TOKEN) -> Samples:
    """Every sample of a scrape, parsed the way Prometheus reads it, by (sample name, labels)."""
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for sample_name, labels in samples if sample_name == name]


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with make_api(f"sqlite:///{tmp_path / 'metrics.db'}", tmp_path, gateway=FakeGateway()) as api:
        add_monitoring_user(api.engine)
        yield api


# --- requests ---------------------------------------------------------------------------------------------


def test_requests_are_counted_by_route_template_never_by_raw_path(api: Api) -> None:
    make_site(api)
    for door in ("hovedinngang", "moterom-1"):
        assert api.get(f"/sites/holmen/doors/{door}", role=ApiRole.CARETAKER).status_code == 200
    problem(api.get("/sites/holmen/doors/finnes-ikke"), 404)
    for probe in ("/wp-login.php", "/sites/holmen/doors/x/y/z"):
        assert api.get(probe).status_code == 404
    assert api.get("/min-nokkel/static/site.css", role=None).status_code == 200

    def boom() -> None:
        raise RuntimeError("a bug")

    app = api.client.app
    assert isinstance(app, FastAPI)
    app.add_api_route("/boom", boom)
    assert api.get("/boom").status_code == 500

    samples = scrape(api.client)
    requests = "meraapent_http_requests_total"
    door = "/sites/{site}/doors/{door}"
    assert value(samples, requests, method="GET", route=door, status="200") == 2
    assert value(samples, requests, method="GET", route=door, status="404") == 1
    assert value(samples, requests, method="POST", route="/sites/{site}/doors", status="201") == 2
    assert value(samples, requests, method="GET", route="<unmatched>", status="404") == 2
    assert value(samples, requests, method="GET", route="/min-nokkel/static/{path}", status="200") == 1
    assert value(samples, requests, method="GET", route="/boom", status="500") == 1
    assert value(samples, "meraapent_http_request_duration_seconds_count", method="GET", route=door) == 3
    routes = {labels["route"] for labels in series(samples, requests)}
    assert not any("holmen" in route or "wp-login" in route for route in routes), routes


def test_odd_methods_are_one_label_value(api: Api) -> None:
    for method in ("PROPFIND", "BREW"):
        api.call(method, "/sites")
    samples = scrape(api.client)
    methods = {labels["method"] for labels in series(samples, "meraapent_http_requests_total")}
    assert "OTHER" in methods and not methods & {"PROPFIND", "BREW"}


def test_two_apps_in_one_process_count_apart(api: Api, tmp_path: Path) -> None:
    with make_api(f"sqlite:///{tmp_path / 'other.db'}", tmp_path / "other", gateway=None) as other:
        add_monitoring_user(other.engine)
        assert other.get("/sites").status_code == 200
        assert other.get("/sites").status_code == 200
        assert api.get("/sites").status_code == 200
        sites = {"method": "GET", "route": "/sites", "status": "200"}
        assert value(scrape(other.client), "meraapent_http_requests_total", **sites) == 2
        assert value(scrape(api.client), "meraapent_http_requests_total", **sites) == 1
        assert value(scrape(other.client), "meraapent_gateway_running") == 0


# --- who may scrape ---------------------------------------------------------------------------------------


def test_monitoring_and_admin_may_scrape_and_monitoring_may_do_nothing_else(api: Api) -> None:
    body = problem(api.get("/metrics", role=None), 401)
    assert "token" in body["detail"]
    for role in (ApiRole.CARETAKER, ApiRole.BOOKING_INTEGRATION):
        assert "monitoring" in problem(api.get("/metrics", role=role), 403)["detail"]
    assert scrape(api.client, TOKENS[ApiRole.ADMIN])
    assert value(scrape(api.client), "meraapent_database_up") == 1

    monitoring = {"Authorization": f"Bearer {MONITORING_TOKEN}"}
    for url in ("/sites", "/alarms", "/events", "/bookings", "/api-users"):
        problem(api.get(url, role=None, headers=monitoring), 403)


def test_an_admin_creates_the_prometheus_token_through_the_api(api: Api) -> None:
    created = api.ok("POST", "/api-users", json={"username": "prometheus-oslo", "role": "monitoring"})
    assert created["role"] == "monitoring"
    assert value(scrape(api.client, created["token"]), "meraapent_database_up") == 1
    problem(api.get("/people", role=None, headers={"Authorization": f"Bearer {created['token']}"}), 403)


# --- gauges from the database -----------------------------------------------------------------------------


def _fill(session: Session) -> int:
    """Three sites (agent online, agent offline, no agent), alarms in every state, webhook and replica
    backlogs; returns the id of the open, unacknowledged forced-open alarm."""
    now = utcnow()
    sites = {slug: Site(slug=slug, name=slug.title()) for slug in ("holmen", "heggedal", "tofte")}
    session.add_all(sites.values())
    session.flush()
    holmen, heggedal = sites["holmen"].id, sites["heggedal"].id
    session.add_all(
        [
            Agent(site_id=holmen, client_id="agent-holmen", online=True, last_seen_at=now),
            Agent(site_id=heggedal, client_id="agent-heggedal", online=False, last_seen_at=now),
        ]
    )

    def alarm_at(site_id: int, kind: str, severity: AlarmSeverity, *, cleared: bool, seen: bool) -> Alarm:
        row = Alarm(site_id=site_id, kind=kind, severity=severity, raised_at=now)
        row.cleared_at = now if cleared else None
        row.acknowledged_at, row.acknowledged_by = (now, "kari") if seen else (None, None)
        session.add(row)
        return row

    critical, warning = AlarmSeverity.CRITICAL, AlarmSeverity.WARNING
    forced = alarm_at(holmen, "forced_open", critical, cleared=False, seen=False)
    alarm_at(holmen, "held_open", warning, cleared=False, seen=True)
    alarm_at(heggedal, "tamper", warning, cleared=True, seen=False)
    alarm_at(heggedal, "fire", critical, cleared=True, seen=True)
    for n, delivered in enumerate((None, now)):
        session.add(
            WebhookOutbox(
                event_id=f"00000000-0000-0000-0000-00000000000{n}",
                kind=WebhookKind.NO_SHOW,
                payload={},
                created_at=now - timedelta(minutes=10),
                attempts=1,
                next_attempt_at=now,
                delivered_at=delivered,
            )
        )
    for seq, published in ((1, now), (2, None)):
        session.add(
            ReplicaChange(
                site_id=holmen,
                seq=seq,
                op=ReplicaOp.UPSERT,
                credential_ref=f"c{seq}",
                created_at=now - timedelta(minutes=5),
                published_at=published,
            )
        )
    session.flush()
    return forced.id


def test_agent_alarm_and_backlog_gauges_follow_the_database(db_url: str, tmp_path: Path) -> None:
    with make_api(db_url, tmp_path, gateway=FakeGateway()) as api:
        add_monitoring_user(api.engine)
        with session_scope(session_factory(api.engine)) as session:
            forced = _fill(session)
        samples = scrape(api.client)
        assert value(samples, "meraapent_sites") == 3
        assert value(samples, "meraapent_agents") == 2
        assert value(samples, "meraapent_agents_online") == 1
        online = {
            site: value(samples, "meraapent_agent_online", site=site)
            for site in ("holmen", "heggedal", "tofte")
        }
        assert online == {"holmen": 1, "heggedal": 0, "tofte": 0}
        seen = {labels["site"] for labels in series(samples, "meraapent_agent_last_seen_timestamp_seconds")}
        assert seen == {"holmen", "heggedal"}

        opened, unacked = "meraapent_alarms_open", "meraapent_alarms_unacknowledged"
        assert value(samples, opened, severity="critical", kind="forced_open") == 1
        assert value(samples, opened, severity="warning", kind="held_open") == 1
        assert value(samples, opened, severity="warning", kind="tamper") == 0  # cleared at the door
        assert value(samples, opened, severity="critical", kind="fire") == 0
        assert value(samples, unacked, severity="critical", kind="forced_open") == 1
        assert value(samples, unacked, severity="warning", kind="held_open") == 0
        assert value(samples, unacked, severity="warning", kind="tamper") == 1  # cleared, but nobody saw it
        assert sum(v for (name, _), v in samples.items() if name == opened) == 2

        assert value(samples, "meraapent_webhook_outbox_pending") == 1
        assert value(samples, "meraapent_webhook_outbox_failing") == 1
        assert 600 <= (value(samples, "meraapent_webhook_outbox_oldest_pending_age_seconds") or 0) < 3600
        assert value(samples, "meraapent_replica_changes_unpublished") == 1
        assert 300 <= (value(samples, "meraapent_replica_oldest_unpublished_age_seconds") or 0) < 3600

        api.ok(
            "POST",
            f"/alarms/{forced}/acknowledge",
            role=ApiRole.CARETAKER,
            json={"comment": "sjekket"},
        )
        with session_scope(session_factory(api.engine)) as session:
            holmen = session.scalars(select(Agent).where(Agent.client_id == "agent-holmen")).one()
            holmen.online = False
        samples = scrape(api.client)
        assert value(samples, "meraapent_agents_online") == 0
        assert value(samples, "meraapent_agent_online", site="holmen") == 0
        assert value(samples, unacked, severity="critical", kind="forced_open") == 0
        assert value(samples, opened, severity="critical", kind="forced_open") == 1  # still open at the door


def test_gauge_names_and_ages_without_a_database() -> None:
    now = utcnow()
    gauges = DatabaseGauges(
        agents=[SiteAgent("holmen", True, now, True)],
        alarms=[AlarmCount("critical", "agent_offline", 1, 1)],  # a kind central raises itself is kept too
        webhooks=Backlog(0, None),
        replica=Backlog(3, now - timedelta(seconds=90)),
        notifications=Backlog(2, now - timedelta(seconds=45), 1),
    )
    registry = CollectorRegistry()

    class Fixed:
        def collect(self) -> object:
            return gauge_families(gauges, now)

    registry.register(Fixed())  # type: ignore[arg-type]
    samples: Samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
    }
    assert value(samples, "meraapent_replica_oldest_unpublished_age_seconds") == 90
    assert value(samples, "meraapent_webhook_outbox_oldest_pending_age_seconds") == 0
    assert value(samples, "meraapent_notification_outbox_pending") == 2
    assert value(samples, "meraapent_notification_outbox_failing") == 1
    assert value(samples, "meraapent_notification_outbox_oldest_pending_age_seconds") == 45
    assert value(samples, "meraapent_alarms_open", severity="critical", kind="agent_offline") == 1
    assert value(samples, "meraapent_alarms_open", severity="info", kind="fire") == 0  # zeros, not gaps


def test_an_unreachable_database_is_reported_not_raised(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}")
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(session_factory(engine)))
    families = list(text_string_to_metric_families(generate_latest(registry).decode()))
    assert [(f.name, f.samples[0].value) for f in families] == [("meraapent_database_up", 0)]


# --- the gateway, over a real broker ----------------------------------------------------------------------


def test_gateway_counts_what_agents_send(tmp_path: Path, private_mosquitto: MosquittoBroker) -> None:
    db_url = f"sqlite:///{tmp_path / 'gateway.db'}"
    migrate(db_url)
    engine = make_engine(db_url)
    add_api_users(engine)
    add_monitoring_user(engine)
    with session_scope(session_factory(engine)) as session:
        add_site(session, "nord")
    settings = Settings(
        data_dir=tmp_path / "data",
        db_url=db_url,
        mqtt_host=private_mosquitto.host,
        mqtt_port=private_mosquitto.port,
    )
    app = create_app(settings, engine=engine, start_gateway=True)
    agent = FakeAgent(private_mosquitto)
    try:
        with TestClient(app) as client:
            assert app.state.gateway.link.wait_connected(WAIT_S)
            assert value(scrape(client), "meraapent_mqtt_connected") == 1
            event = access()
            agent.send(
                Channel.STATUS, m.AgentStatus(site="nord", agent="agent-nord", online=True, at=utcnow())
            )
            agent.send(Channel.EVENT, event)
            agent.wait_acked({event.event_id})
            agent.send(Channel.EVENT, event)  # its ack was lost: the agent sends it again
            agent.send(Channel.EVENT, alarm(raised=True))
            agent.send(Channel.EVENT, b"{not json")

            def all_counted() -> bool:
                samples = scrape(client)
                return (
                    value(samples, "meraapent_events_ingested_total", outcome="new") == 2
                    and value(samples, "meraapent_events_ingested_total", outcome="duplicate") == 1
                    and value(samples, "meraapent_mqtt_messages_refused_total", reason="not_json") == 1
                )

            eventually(all_counted, what="events ingested and the malformed one refused")
            admin = {"Authorization": f"Bearer {TOKENS[ApiRole.ADMIN]}"}
            sent = client.post(
                "/sites/nord/commands", headers=admin, json={"action": "normal", "reason": "test"}
            )
            assert sent.status_code == 202, sent.text

            samples = scrape(client)
            assert value(samples, "meraapent_mqtt_messages_received_total", channel="event") == 4
            assert value(samples, "meraapent_mqtt_messages_received_total", channel="status") == 1
            assert value(samples, "meraapent_commands_published_total", outcome="sent") == 1
            assert value(samples, "meraapent_agents_online") == 1
            assert value(samples, "meraapent_alarms_open", severity="critical", kind="forced_open") == 1
            assert value(samples, "meraapent_gateway_running") == 1
    finally:
        agent.close()
        engine.dispose()
