"""The fleet simulator against the real central and broker, and central's publisher with many sites.

A small fleet (20 simulated agents in a worker process, as `meraapent sim fleet` runs them) against a seeded
central (SQLite + gateway) and a private mosquitto: every agent syncs, a revoked card is refused everywhere,
and taps become access events stored exactly once. The publisher tests use a recording stand-in for the MQTT
link: what matters there is the order of what central sends, not the broker.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from central.config import UID_HASH_KEY_FILE, Settings
from central.db import make_engine, migrate, session_factory, session_scope
from central.gateway import Gateway
from central.gateway.link import LinkDownError, MqttLink
from central.gateway.publisher import Publisher
from central.models import Decision, Event, EventKind, Site
from central.replica import build_snapshot
from central.security import card_uid_hash
from central.services import credentials as credential_service
from central.services import replica_log
from central.services.site_config import build_site_config
from hw_sim.fleet import (
    ENTRANCE,
    Fleet,
    FleetPlan,
    FleetReport,
    card_uid,
    caretaker_credential,
    create_sites,
    latency_figures,
    roaming_uid,
)
from protocol.topics import Channel, parse_topic
from tests.infra import MosquittoBroker

SITES = 20
WAIT_S = 20.0


@dataclass
class Central:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    uid_key: bytes

    @property
    def key_file(self) -> Path:
        return self.settings.secrets_dir / UID_HASH_KEY_FILE


@pytest.fixture
def central(tmp_path: Path, private_mosquitto: MosquittoBroker) -> Iterator[Central]:
    settings = Settings(
        data_dir=tmp_path / "central",
        db_url=f"sqlite:///{tmp_path / 'central.db'}",
        mqtt_host=private_mosquitto.host,
        mqtt_port=private_mosquitto.port,
    )
    migrate(settings.db_url)
    engine = make_engine(settings.db_url)
    sessions = session_factory(engine)
    uid_key = settings.uid_hash_key()
    with session_scope(sessions) as session:
        create_sites(session, FleetPlan(SITES), uid_key)
    yield Central(settings, engine, sessions, uid_key)
    engine.dispose()


# --- the fleet end to end ---------------------------------------------------------------------------------


def test_a_fleet_syncs_refuses_a_revoked_card_everywhere_and_its_taps_are_stored_once(
    central: Central, private_mosquitto: MosquittoBroker
) -> None:
    gateway = Gateway(
        central.settings,
        central.engine,
        client_id="central-fleet-test",
        keys_provider=lambda: None,
        poll_s=0.05,
    ).start()
    plan = FleetPlan(SITES)
    broker = (private_mosquitto.host, private_mosquitto.port)
    try:
        with Fleet(plan, broker, central.key_file, processes=1, duplicate_share=0.2) as fleet:
            assert len(fleet.wait_synced(WAIT_S)) == SITES  # every agent has its config and replica
            assert fleet.refusing(1) == 0  # the caretaker's card opens every site

            with session_scope(central.sessions) as session:
                revoked = caretaker_credential(session, 1, central.uid_key)
                credential_service.revoke(session, "test", revoked)
            committed, committed_wall = time.monotonic(), datetime.now(UTC)
            gateway.poke()
            fleet.wait_refusing(1, SITES, WAIT_S)

            fleet.taps(rate=60, duration=1.5)
            fleet.wait_taps(WAIT_S)
            report = fleet.stop()
    finally:
        gateway.stop()

    assert all(seconds is not None for seconds in report.reached(1, committed, granted=False))
    assert report.taps > 50 and report.granted + report.denied == report.taps
    assert report.acked == report.taps and report.unacked == 0  # central acknowledged every event
    with central.sessions() as session:
        rows = session.execute(
            select(func.count(), func.count(func.distinct(Event.event_id))).where(
                Event.kind == EventKind.ACCESS, Event.agent_client_id.like("fleet-%-sim")
            )
        ).one()
        known_cards = session.scalar(
            select(func.count()).where(Event.kind == EventKind.ACCESS, Event.credential_ref.is_not(None))
        )
        granted_after_revoke = session.scalar(
            select(func.count()).where(
                Event.credential_ref == f"c{revoked}",
                Event.decision == Decision.GRANT,
                Event.device_time > committed_wall,
            )
        )
    assert rows == (report.taps, report.taps)  # stored once each, resent duplicates included
    assert report.duplicates_sent > 0
    assert (known_cards or 0) >= report.taps // 2  # the agents hash card UIDs exactly as central does
    assert granted_after_revoke == 0


# --- the fleet's sites in central ---------------------------------------------------------------------------


def test_fleet_sites_are_created_once_with_residents_and_caretakers_in_their_replica(
    central: Central,
) -> None:
    with session_scope(central.sessions) as session:
        assert create_sites(session, FleetPlan(SITES), central.uid_key) == 0  # all there already
        assert create_sites(session, FleetPlan(SITES + 2), central.uid_key) == 2
    with central.sessions() as session:
        assert session.scalar(select(func.count()).where(Site.slug.like("fleet-%"))) == SITES + 2
        config = build_site_config(session, "fleet-0021", datetime.now(UTC))
        snapshot = build_snapshot(session, "fleet-0021")
    assert ENTRANCE in {door.slug for door in config.doors}
    kinds = sorted(c.person_kind.value for c in snapshot.credentials)
    assert kinds == ["caretaker"] * 2 + ["resident"] * 5
    hashes = {c.uid_hash for c in snapshot.credentials}
    assert card_uid_hash(card_uid(21, 1), central.uid_key) in hashes
    assert card_uid_hash(roaming_uid(2), central.uid_key) in hashes
    assert card_uid_hash(card_uid(20, 1), central.uid_key) not in hashes  # another site's resident


def test_latency_figures_are_nearest_rank_percentiles() -> None:
    assert latency_figures([0.3, 0.1, 0.2]) == {"p50_ms": 200.0, "p99_ms": 300.0, "max_ms": 300.0}
    report = FleetReport(
        agents=[
            {"site": "fleet-0001", "transitions": [[5.0, 0, True], [10.25, 0, False]]},
            {"site": "fleet-0002", "transitions": [[5.0, 0, True]]},
        ],
        taps=0, granted=0, denied=0, duplicates_sent=0, acked=0, unacked=0, ack_ms=[], counters=Counter(),
    )  # fmt: skip
    assert report.reached(1, since=10.0, granted=False) == [0.25, None]


# --- central's publisher with many sites --------------------------------------------------------------------


class RecordingLink:
    """Stands in for the MQTT link: records topics in order; may fail once after a number of deltas."""

    connected = True

    def __init__(self, fail_after_deltas: int | None = None) -> None:
        self.topics: list[str] = []
        self.fail_after_deltas = fail_after_deltas

    def publish_and_wait(
        self, topic: str, payload: bytes, *, retain: bool = False, timeout: float = 10.0
    ) -> None:
        deltas = sum(1 for t in self.topics if t.endswith("/replica/delta"))
        if topic.endswith("/replica/delta") and deltas == self.fail_after_deltas:
            self.fail_after_deltas = None  # once: the link comes back
            raise LinkDownError("broker gone")
        self.topics.append(topic)

    def channels(self) -> list[tuple[str, Channel]]:
        return [(p.site, p.channel) for p in map(parse_topic, self.topics)]


def revoke_caretaker(central: Central) -> None:
    with session_scope(central.sessions) as session:
        credential_service.revoke(session, "test", caretaker_credential(session, 1, central.uid_key))


def test_a_revoke_goes_out_before_the_state_of_every_site_is_refreshed(central: Central) -> None:
    link = RecordingLink()
    publisher = Publisher(central.sessions, cast(MqttLink, link), poll_s=3600)
    revoke_caretaker(central)
    publisher.run_once()
    sent = link.channels()
    assert sent[0][1] is Channel.REPLICA_DELTA  # deltas first, the config refresh after
    assert {site for site, ch in sent[:SITES] if ch is Channel.REPLICA_DELTA} == {
        f"fleet-{i:04d}" for i in range(1, SITES + 1)
    }


def test_a_change_during_a_state_round_is_published_before_the_round_ends(central: Central) -> None:
    link = RecordingLink()
    publisher = Publisher(central.sessions, cast(MqttLink, link), poll_s=3600)
    publisher.publish_deltas()
    revoke_caretaker(central)
    publisher.poke()  # what the API does after a change
    publisher.publish_state()
    sent = link.channels()
    first_delta = next(n for n, (_s, ch) in enumerate(sent) if ch is Channel.REPLICA_DELTA)
    last_config = max(n for n, (_s, ch) in enumerate(sent) if ch is Channel.CONFIG)
    assert first_delta < last_config
    with central.sessions() as session:
        assert replica_log.pending_sites(session) == []


def test_deltas_the_broker_did_not_take_stay_pending(central: Central) -> None:
    link = RecordingLink(fail_after_deltas=3)
    publisher = Publisher(central.sessions, cast(MqttLink, link), poll_s=3600)
    revoke_caretaker(central)
    with pytest.raises(LinkDownError):
        publisher.publish_deltas()
    with central.sessions() as session:
        pending = {site for _id, site, _seq in replica_log.pending_sites(session)}
    delivered = {site for site, ch in link.channels() if ch is Channel.REPLICA_DELTA}
    assert len(delivered) == 3
    assert pending == {f"fleet-{i:04d}" for i in range(1, SITES + 1)} - delivered
    publisher.publish_deltas()  # after the reconnect: the rest, nothing twice
    deltas = [site for site, ch in link.channels() if ch is Channel.REPLICA_DELTA]
    assert sorted(deltas) == sorted(set(deltas)) and len(deltas) == SITES
