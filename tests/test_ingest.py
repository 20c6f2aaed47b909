"""Ingest without MQTT: what central refuses, what it stores exactly once, and when it acknowledges."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from central.gateway.ingest import (
    Inbound,
    IngestWorker,
    MessageRefusedError,
    apply_agent_status,
    apply_door_state,
    check,
    store_events,
)
from central.models import Agent, Alarm, Door, Event, EventKind
from protocol import codec
from protocol import messages as m
from protocol.topics import Channel, site_topic
from tests.test_replica import World, build_world

NOW = datetime.now(UTC).replace(microsecond=0)


def access(site: str = "nord", seq: int = 1, **fields: object) -> m.AccessEvent:
    values: dict[str, object] = {
        "event_id": uuid.uuid4(),
        "site": site,
        "agent": f"agent-{site}",
        "seq": seq,
        "device_time": NOW,
        "door": "inngang",
        "decision": m.Decision.GRANT,
        "reason": m.Reason.SCHEDULE,
        "method": m.Method.CARD_PIN,
        "credential_ref": "c1",
    }
    values.update(fields)
    return m.AccessEvent(**values)  # type: ignore[arg-type]


def alarm(raised: bool, door: str | None = "inngang") -> m.AlarmEvent:
    return m.AlarmEvent(
        event_id=uuid.uuid4(),
        site="nord",
        agent="agent-nord",
        seq=9,
        device_time=NOW,
        kind=m.AlarmKind.FORCED_OPEN,
        severity=m.Severity.CRITICAL,
        raised=raised,
        door=door,
    )


def status(online: bool, replica_seq: int | None = None) -> m.AgentStatus:
    return m.AgentStatus(site="nord", agent="agent-nord", online=online, at=NOW, replica_seq=replica_seq)


def inbound(channel: Channel, message: m.Message | bytes, site: str = "nord", mid: int = 1) -> Inbound:
    payload = message if isinstance(message, bytes) else codec.encode(message)
    door = "inngang" if channel is Channel.DOOR_STATE else None
    return Inbound(site_topic(site, channel, door), payload, mid, 1)


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> World:
    with sessions() as session:
        w = build_world(session)
        session.commit()
        return w


def event_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.execute(select(func.count()).select_from(Event)).scalar_one()


# --- pure checks ------------------------------------------------------------------------------------------


def test_check_accepts_a_well_formed_event() -> None:
    event = access()
    parsed, message = check(site_topic("nord", Channel.EVENT), codec.encode(event))
    assert parsed.site == "nord" and message == event


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("meraapent/v1/site/nord/nonsense", b"{}", "bad_topic"),
        ("elsewhere/nord/event", b"{}", "bad_topic"),
        (site_topic("nord", Channel.COMMAND), b"{}", "wrong_direction"),
        (site_topic("nord", Channel.EVENT), b"\xff\x00 not json", "not_json"),
        (site_topic("nord", Channel.EVENT), b'{"type": "door_state", "v": 1}', "wrong_type"),
        (site_topic("nord", Channel.EVENT), b'{"type": "access_event", "v": 1}', "invalid"),
        (site_topic("nord", Channel.EVENT), codec.encode(access(site="sor")), "site_mismatch"),
        (
            site_topic("nord", Channel.DOOR_STATE, "bakdor"),
            codec.encode(
                m.DoorState(
                    site="nord", door="inngang", state=m.DoorStateName.OPEN, since=NOW, device_time=NOW
                )
            ),
            "door_mismatch",
        ),
    ],
)
def test_check_refuses_with_a_reason(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(MessageRefusedError) as refused:
        check(topic, payload)
    assert refused.value.reason == reason


# --- database functions -----------------------------------------------------------------------------------


def test_events_are_stored_once(sessions: sessionmaker[Session], world: World) -> None:
    events = [access(seq=i) for i in range(5)]
    site_ids = {"nord": world.nord.id}
    with sessions() as session, session.begin():
        assert store_events(session, events + events[:2], site_ids, NOW) == {str(e.event_id) for e in events}
    with sessions() as session, session.begin():
        assert store_events(session, events, site_ids, NOW) == set()
    assert event_count(sessions) == 5
    with sessions() as session:
        stored = session.execute(select(Event).where(Event.event_id == str(events[0].event_id))).scalar_one()
    assert (stored.kind, stored.decision, stored.reason, stored.device_time) == (
        EventKind.ACCESS,
        "grant",
        "schedule",
        NOW,
    )
    assert stored.data["method"] == "card_pin"


def test_person_ref_links_only_an_existing_person(sessions: sessionmaker[Session], world: World) -> None:
    kari = world.people["kari"].id
    known, unknown = access(person_ref=f"p{kari}"), access(person_ref="p999999")
    with sessions() as session, session.begin():
        store_events(session, [known, unknown], {"nord": world.nord.id}, NOW)
    with sessions() as session:
        rows = dict(session.execute(select(Event.event_id, Event.person_id)).all())
    assert rows == {str(known.event_id): kari, str(unknown.event_id): None}


def test_alarm_raised_once_and_cleared(sessions: sessionmaker[Session], world: World) -> None:
    raised = alarm(raised=True)
    site_ids = {"nord": world.nord.id}
    with sessions() as session, session.begin():
        store_events(session, [raised], site_ids, NOW)
    with sessions() as session, session.begin():
        store_events(session, [raised], site_ids, NOW)  # resent: no second alarm
    with sessions() as session, session.begin():
        store_events(session, [alarm(raised=False)], site_ids, NOW + timedelta(minutes=1))
    with sessions() as session:
        [row] = session.execute(select(Alarm)).scalars().all()
        door = session.execute(select(Door).where(Door.site_id == world.nord.id)).scalar_one()
    assert (row.kind, row.door_id, row.event_id) == ("forced_open", door.id, str(raised.event_id))
    assert row.cleared_at == NOW


def test_agent_status_creates_then_updates_the_agent(sessions: sessionmaker[Session], world: World) -> None:
    with sessions() as session, session.begin():
        apply_agent_status(session, world.nord.id, status(online=True, replica_seq=4), NOW)
    with sessions() as session, session.begin():
        apply_agent_status(session, world.nord.id, status(online=False), NOW + timedelta(seconds=5))
    with sessions() as session:
        agent = session.execute(select(Agent)).scalar_one()
    assert (agent.client_id, agent.online, agent.replica_seq_applied) == ("agent-nord", False, 4)
    assert agent.last_seen_at == NOW + timedelta(seconds=5)


def test_door_state_is_recorded_for_known_doors_only(sessions: sessionmaker[Session], world: World) -> None:
    state = m.DoorState(
        site="nord", door="inngang", state=m.DoorStateName.HELD_OPEN, since=NOW, device_time=NOW
    )
    with sessions() as session, session.begin():
        assert apply_door_state(session, world.nord.id, state)
        assert not apply_door_state(session, world.nord.id, msgspec.structs.replace(state, door="bakdor"))
    with sessions() as session:
        door = session.execute(select(Door).where(Door.site_id == world.nord.id)).scalar_one()
    assert (door.last_state, door.last_state_at) == ("held_open", NOW)


# --- the worker, driven without a thread ------------------------------------------------------------------


class Recorder:
    """Stands in for the MQTT link: records acks, and checks the database AT THE MOMENT an Ack goes out."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.acked: list[uuid.UUID] = []
        self.uncommitted_when_acked: list[str] = []
        self.broker_acks: list[int] = []

    def publish(self, topic: str, payload: bytes) -> None:
        ack = codec.decode(payload, m.Ack)
        assert topic == site_topic(ack.site, Channel.ACK)
        ids = [str(i) for i in ack.event_ids]
        with self.sessions() as session:
            stored = set(session.execute(select(Event.event_id).where(Event.event_id.in_(ids))).scalars())
        self.uncommitted_when_acked += [i for i in ids if i not in stored]
        self.acked += ack.event_ids

    def broker_ack(self, mid: int, _qos: int) -> None:
        self.broker_acks.append(mid)


def test_worker_acks_committed_events_including_resent_ones(
    sessions: sessionmaker[Session], world: World
) -> None:
    link = Recorder(sessions)
    worker = IngestWorker(sessions, publish=link.publish, broker_ack=link.broker_ack)
    events = [access(seq=i) for i in range(4)]
    worker.process([inbound(Channel.EVENT, e, mid=i) for i, e in enumerate(events)])
    worker.process([inbound(Channel.EVENT, events[0], mid=10)])  # the agent did not get the first ack
    assert link.acked == [e.event_id for e in events] + [events[0].event_id]
    assert link.uncommitted_when_acked == []
    assert link.broker_acks == [0, 1, 2, 3, 10]
    assert (worker.events_inserted, worker.events_duplicate) == (4, 1)
    assert event_count(sessions) == 4


def test_worker_counts_refusals_and_goes_on(sessions: sessionmaker[Session], world: World) -> None:
    link = Recorder(sessions)
    requests: list[m.ReplicaRequest] = []
    worker = IngestWorker(
        sessions, publish=link.publish, broker_ack=link.broker_ack, on_replica_request=requests.append
    )
    good = access()
    batch = [
        inbound(Channel.EVENT, b"garbage", mid=1),
        inbound(Channel.EVENT, access(site="sor"), mid=2),  # nord speaking for sor
        inbound(Channel.EVENT, access(site="ukjent"), site="ukjent", mid=3),
        inbound(Channel.STATUS, status(online=True), mid=4),
        inbound(Channel.REPLICA_REQUEST, m.ReplicaRequest(site="nord", agent="agent-nord"), mid=5),
        inbound(Channel.EVENT, good, mid=6),
    ]
    worker.process(batch)
    assert dict(worker.refused) == {"not_json": 1, "site_mismatch": 1, "unknown_site": 1}
    assert link.acked == [good.event_id]
    assert sorted(link.broker_acks) == [1, 2, 3, 4, 5, 6]  # refused ones too: redelivery would not help
    assert [r.site for r in requests] == ["nord"]
    with sessions() as session:
        assert session.execute(select(Agent.online)).scalar_one() is True


def test_a_message_the_database_refuses_does_not_take_its_batch_down(
    sessions: sessionmaker[Session], world: World
) -> None:
    with sessions() as session, session.begin():  # sor's agent is registered under the name nord will use
        session.add(Agent(site_id=world.sor.id, client_id="agent-nord"))
    link = Recorder(sessions)
    worker = IngestWorker(sessions, publish=link.publish, broker_ack=link.broker_ack)
    before, after = access(seq=1), access(seq=2)
    worker.process(
        [
            inbound(Channel.EVENT, before, mid=1),
            inbound(Channel.STATUS, status(online=True), mid=2),  # clashes: agents.client_id is unique
            inbound(Channel.EVENT, after, mid=3),
        ]
    )
    assert sorted(link.acked) == sorted([before.event_id, after.event_id])
    assert dict(worker.refused) == {"db_error": 1}
    assert sorted(link.broker_acks) == [1, 2, 3]
    assert event_count(sessions) == 2


def test_a_nul_character_in_an_agents_text_is_stored_as_unreadable_and_the_event_acknowledged(
    sessions: sessionmaker[Session], world: World
) -> None:
    """PostgreSQL cannot hold NUL in text: refusing the event would leave it unacknowledged for ever."""
    link = Recorder(sessions)
    worker = IngestWorker(sessions, publish=link.publish, broker_ack=link.broker_ack)
    forced = msgspec.structs.replace(alarm(raised=True), detail="reed\x00switch")
    started = m.SystemEvent(
        event_id=uuid.uuid4(), site="nord", agent="agent-nord", seq=10, device_time=NOW, kind="started",
        detail="\x00",
    )  # fmt: skip
    odd_status = msgspec.structs.replace(status(online=True), software_version="1.0\x00")
    worker.process(
        [inbound(Channel.EVENT, forced, mid=1), inbound(Channel.EVENT, started, mid=2),
         inbound(Channel.STATUS, odd_status, mid=3)]
    )  # fmt: skip
    assert sorted(map(str, link.acked)) == sorted([str(forced.event_id), str(started.event_id)])
    assert dict(worker.refused) == {}
    with sessions() as session:
        assert session.execute(select(Alarm.detail)).scalar_one() == "reed\ufffdswitch"
        details = {e.event_id: e.data["detail"] for e in session.execute(select(Event)).scalars()}
        assert details == {str(forced.event_id): "reed\ufffdswitch", str(started.event_id): "\ufffd"}
        assert session.execute(select(Agent.software_version)).scalar_one() == "1.0\ufffd"
