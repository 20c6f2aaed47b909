"""The "Open" button on the phone page: central's quick checks, the agent's own decision, and the whole way
from central through mosquitto to the simulated lock and back."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from central.db import session_factory
from central.gateway.ingest import store_command_result
from central.gateway.service import GatewayUnavailable
from central.models import AuditLog, Credential, CredentialKind, CredentialStatus, Event, Person
from central.replica import person_ref
from central.services.credentials import register_phone
from central.services.errors import NotFoundError, UnavailableError
from central.services.opening import OpenOutcome, OpenRefusedError, open_door_for, wait_for_outcome
from controller.agent import Received
from controller.clock import ManualClock
from controller.inputs import Feedback
from hw_sim.pcscd import PcscDaemon
from protocol import codec
from protocol import messages as m
from tests.infra import MosquittoBroker
from tests.pcsc_fixtures import pcscd  # noqa: F401 (fixture)
from tests.test_agent_end_to_end import WAIT_S, Central, agent_config, central, eventually, start_site  # noqa: F401
from tests.test_controller_agent import KARI, MONDAY_EVENING, VIDAR, FakeLink, Site
from tests.test_controller_schedule import heggedal_config, oslo
from tests.test_replica import World, build_world

# --- the agent decides --------------------------------------------------------------------------------------

KARI_PHONE = m.Credential(
    ref="c2",
    person="p-kari",
    person_kind=m.PersonKind.RESIDENT,
    kind=m.CredentialKind.PHONE,
    groups=["innbyggere"],
)
NORA_PHONE = m.Credential(
    ref="c7",
    person="p-nora",
    person_kind=m.PersonKind.ASSOCIATION_MEMBER,
    kind=m.CredentialKind.PHONE,
    groups=[],
)
STYREMOTE = m.Booking(
    ref="b1",
    room="moterom-1",
    holders=["p-nora"],
    starts_at=oslo("2026-11-23T20:00"),
    ends_at=oslo("2026-11-23T21:30"),
)


def open_for(
    holder: str = "p-kari", door: str = "hovedinngang", *, at: datetime = MONDAY_EVENING
) -> m.Command:
    return m.Command(
        command_id=uuid.uuid4(),
        site="heggedal",
        action=m.Action.OPEN_FOR,
        nonce=secrets.token_hex(16),
        issued_at=at,
        expires_at=at + timedelta(seconds=30),
        issued_by=holder,
        reason="Open pressed on the phone page",
        door=door,
        holder=holder,
    )


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    running = Site(tmp_path / "agent", ManualClock(MONDAY_EVENING), FakeLink())
    world = m.ReplicaSnapshot(
        site="heggedal",
        seq=10,
        generated_at=MONDAY_EVENING,
        credentials=[KARI, KARI_PHONE, VIDAR, NORA_PHONE],
        bookings=[STYREMOTE],
    )
    running.feed(Received(heggedal_config()), Received(world))
    yield running
    running.agent.close()


def link_of(site: Site) -> FakeLink:
    assert site.link is not None
    return site.link


def test_a_resident_in_opening_hours_opens_the_entrance_without_her_pin(site: Site) -> None:
    command = open_for()
    site.feed(Received(command))
    door = site.doors["hovedinngang"]
    assert door.is_unlocked  # no PIN: the phone she unlocked is the second factor
    assert door.shown == [Feedback.GRANTED]
    [event] = link_of(site).access()
    assert (event.decision, event.reason, event.method) == (
        m.Decision.GRANT,
        m.Reason.SCHEDULE,
        m.Method.PHONE_ONLINE,
    )
    assert (event.credential_ref, event.person_ref, event.door) == ("c2", "p-kari", "hovedinngang")
    [result] = link_of(site).results
    assert (result.command_id, result.outcome, result.deny_reason) == (
        command.command_id,
        m.CommandOutcome.DONE,
        None,
    )
    site.wait(6)
    assert not door.is_unlocked  # momentarily, like a card: relocked when nobody opened it


def test_after_closing_the_agent_refuses_with_site_closed_and_unlocks_nothing(site: Site) -> None:
    late = oslo("2026-11-23T21:30")
    site.clock.set_wall(late)
    site.feed(Received(open_for(at=late)))
    door = site.doors["hovedinngang"]
    assert not any(door.unlocked)
    [event] = link_of(site).access()
    assert (event.decision, event.reason, event.method) == (
        m.Decision.DENY,
        m.Reason.SITE_CLOSED,
        m.Method.PHONE_ONLINE,
    )
    [result] = link_of(site).results
    assert (result.outcome, result.deny_reason) == (m.CommandOutcome.REFUSED, m.Reason.SITE_CLOSED)


def test_a_replayed_command_is_refused_and_opens_nothing_more(site: Site) -> None:
    command = open_for()
    site.feed(Received(command))
    site.wait(6)
    door = site.doors["hovedinngang"]
    unlocks = door.unlocked.count(True)
    site.feed(Received(command))
    assert door.unlocked.count(True) == unlocks
    first, replay = link_of(site).results
    assert first.outcome is m.CommandOutcome.DONE
    assert replay.outcome is m.CommandOutcome.REFUSED and replay.reason.startswith("replayed")
    assert replay.deny_reason is None  # the command was refused, not the person
    assert len(link_of(site).access()) == 1


def test_a_card_without_a_phone_credential_cannot_be_opened_for(site: Site) -> None:
    site.feed(Received(open_for(holder="p-vidar")))  # the caretaker has only a card
    assert not any(site.doors["hovedinngang"].unlocked)
    [result] = link_of(site).results
    assert result.deny_reason is m.Reason.UNKNOWN_CREDENTIAL


def test_a_booking_holder_opens_the_booked_room_from_the_phone(site: Site) -> None:
    site.feed(Received(open_for(holder="p-nora", door="moterom-1")))
    assert site.doors["moterom-1"].is_unlocked
    [event] = link_of(site).access()
    assert (event.reason, event.booking_ref, event.person_ref) == (m.Reason.BOOKING, "b1", "p-nora")


def test_a_locked_down_door_is_not_opened_from_a_phone(site: Site) -> None:
    opening = open_for()
    site.feed(
        Received(
            m.Command(
                command_id=uuid.uuid4(),
                site="heggedal",
                action=m.Action.LOCK_DOWN,
                nonce=secrets.token_hex(16),
                issued_at=MONDAY_EVENING,
                expires_at=MONDAY_EVENING + timedelta(seconds=30),
                issued_by="vaktmester",
                reason="Uro",
                door="hovedinngang",
            )
        ),
        Received(opening),
    )
    assert not any(site.doors["hovedinngang"].unlocked)
    assert link_of(site).results[-1].deny_reason is m.Reason.LOCKDOWN


def test_a_door_this_agent_does_not_have_is_refused_without_a_decision(site: Site) -> None:
    site.feed(Received(open_for(door="bakdor")))
    [result] = link_of(site).results
    assert result.outcome is m.CommandOutcome.REFUSED and "bakdor" in result.reason
    assert link_of(site).access() == []


def test_open_for_without_a_holder_is_refused_by_the_contract() -> None:
    doc = codec.encode(open_for()).replace(b'"holder":"p-kari"', b'"holder":null')
    with pytest.raises(codec.ProtocolError, match="open_for needs the door and the holder"):
        codec.decode(doc, m.Command)
    refused = m.CommandResult(
        command_id=uuid.uuid4(),
        site="heggedal",
        outcome=m.CommandOutcome.REFUSED,
        at=MONDAY_EVENING,
        deny_reason=m.Reason.SITE_CLOSED,
    )
    assert codec.decode(codec.encode(refused), m.CommandResult) == refused


# --- central's side -----------------------------------------------------------------------------------------

NOW = datetime.now(UTC)


class FakeGateway:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[m.Command] = []
        self.fail = fail

    def publish_command(self, command: m.Command) -> None:
        if self.fail:
            raise GatewayUnavailable("not connected to the broker")
        self.sent.append(command)


@pytest.fixture
def world(engine: Engine) -> World:
    with session_factory(engine)() as session:
        w = build_world(session)
        for name in ("kari", "per"):
            register_phone(session, "admin", w.people[name].id, valid_from=NOW - timedelta(days=1))
        session.commit()
        return w


def test_central_sends_open_for_with_a_fresh_nonce_and_audits_it(engine: Engine, world: World) -> None:
    gateway = FakeGateway()
    kari = world.people["kari"].id
    with session_factory(engine)() as session, session.begin():
        command = open_door_for(session, gateway, kari, "nord", "inngang", NOW)
        again = open_door_for(session, gateway, kari, "nord", "inngang", NOW)
    assert gateway.sent == [command, again]
    assert (command.action, command.site, command.door, command.holder) == (
        m.Action.OPEN_FOR,
        "nord",
        "inngang",
        person_ref(kari),
    )
    assert command.nonce != again.nonce and command.expires_at - command.issued_at == timedelta(seconds=30)
    with session_factory(engine)() as session:
        audits = session.scalars(select(AuditLog).where(AuditLog.action == "open_for")).all()
    assert [a.detail["command_id"] for a in audits] == [str(command.command_id), str(again.command_id)]


def test_central_answers_at_once_when_the_door_would_not_open_anyway(engine: Engine, world: World) -> None:
    gateway = FakeGateway()
    with session_factory(engine)() as session:
        with pytest.raises(OpenRefusedError, match="blocked") as blocked:
            open_door_for(session, gateway, world.people["per"].id, "nord", "inngang", NOW)
        assert blocked.value.reason is m.Reason.PERSON_BLOCKED
        with pytest.raises(OpenRefusedError, match="no phone key") as no_phone:
            open_door_for(session, gateway, world.people["sofie"].id, "nord", "inngang", NOW)
        assert no_phone.value.reason is m.Reason.UNKNOWN_CREDENTIAL
        phone = session.scalars(
            select(Credential).where(
                Credential.person_id == world.people["kari"].id, Credential.kind == CredentialKind.PHONE
            )
        ).one()
        phone.status = CredentialStatus.BLOCKED
        with pytest.raises(OpenRefusedError) as phone_blocked:
            open_door_for(session, gateway, world.people["kari"].id, "nord", "inngang", NOW)
        assert phone_blocked.value.reason is m.Reason.CREDENTIAL_BLOCKED
        phone.status = CredentialStatus.ACTIVE
        with pytest.raises(NotFoundError, match="door 'bakdor' does not exist at site 'nord'"):
            open_door_for(session, gateway, world.people["kari"].id, "nord", "bakdor", NOW)
        with pytest.raises(NotFoundError):
            open_door_for(session, gateway, world.people["kari"].id, "atlantis", "inngang", NOW)
        with pytest.raises(UnavailableError, match="could not be asked to open"):
            open_door_for(session, FakeGateway(fail=True), world.people["kari"].id, "nord", "inngang", NOW)
        with pytest.raises(UnavailableError, match="without the MQTT gateway"):
            open_door_for(session, None, world.people["kari"].id, "nord", "inngang", NOW)
    assert gateway.sent == []


def test_the_outcome_is_read_from_the_stored_command_result(engine: Engine, world: World) -> None:
    sessions = session_factory(engine)
    with sessions() as session, session.begin():
        command = open_door_for(session, FakeGateway(), world.people["kari"].id, "nord", "inngang", NOW)
    assert wait_for_outcome(sessions, command.command_id, timeout_s=0.2, poll_s=0.05) is None  # no answer yet
    refused = m.CommandResult(
        command_id=command.command_id,
        site="nord",
        outcome=m.CommandOutcome.REFUSED,
        at=NOW,
        reason="site_closed",
        deny_reason=m.Reason.SITE_CLOSED,
    )
    with sessions() as session, session.begin():
        assert store_command_result(session, world.nord.id, refused, NOW)
    outcome = wait_for_outcome(sessions, command.command_id, timeout_s=1)
    assert outcome == OpenOutcome(opened=False, reason=m.Reason.SITE_CLOSED, detail="site_closed")


# --- the whole way: central, mosquitto, the agent and the simulated lock ------------------------------------


def kari_with_a_phone(stack: Central) -> int:
    with session_factory(stack.engine)() as session, session.begin():
        kari = session.scalars(select(Person).where(Person.external_ref == "demo:kari-nordmann")).one()
        register_phone(session, "admin", kari.id, valid_from=NOW - timedelta(days=1))
        return kari.id


def press_open(stack: Central, person_id: int, now: datetime) -> m.Command:
    with session_factory(stack.engine)() as session, session.begin():
        return open_door_for(session, stack.gateway, person_id, "heggedal", "hovedinngang", now)


@pytest.mark.mqtt
def test_open_from_the_phone_through_the_whole_stack(
    tmp_path: Path,
    central: Central,  # noqa: F811
    private_mosquitto: MosquittoBroker,
    pcscd: PcscDaemon,  # noqa: F811
) -> None:
    kari = kari_with_a_phone(central)
    central.start()
    assert central.gateway is not None
    clock = ManualClock(central.open_evening())
    site = start_site(agent_config(tmp_path, central, private_mosquitto, pcscd), clock)
    sessions = session_factory(central.engine)
    try:
        eventually(lambda: site.agent.replica.count() > 0 and site.agent.view is not None, "first sync")
        command = press_open(central, kari, clock.now())
        eventually(lambda: site.door.is_unlocked, "the lock is energised for Kari")
        assert wait_for_outcome(sessions, command.command_id, WAIT_S) == OpenOutcome(
            opened=True, detail="schedule"
        )
        clock.advance(6)
        eventually(lambda: not site.door.is_unlocked, "the lock relocks when nobody opened the door")

        central.gateway.publish_command(command)  # the same command again, as a replay would
        eventually(lambda: bool(refusals(central)), "the agent reports the replay")
        assert "replayed" in refusals(central)[0]
        assert not site.door.is_unlocked

        clock.advance(3 * 3600)  # 22:00, Heggedal closed at 21:00
        late = press_open(central, kari, clock.now())
        outcome = wait_for_outcome(sessions, late.command_id, WAIT_S)
        assert outcome is not None and (outcome.opened, outcome.reason) == (False, m.Reason.SITE_CLOSED)
        assert not site.door.is_unlocked
    finally:
        site.close()
    phone_events = [e for e in central.access_events() if e.data["method"] == "phone_online"]
    assert sorted((e.decision, e.reason) for e in phone_events) == [
        ("deny", "site_closed"),
        ("grant", "schedule"),
    ]


def refusals(stack: Central) -> list[str]:
    with session_factory(stack.engine)() as session:
        rows = session.scalars(select(Event).where(Event.reason == "command-refused")).all()
        return [str(r.data.get("detail", "")) for r in rows]
