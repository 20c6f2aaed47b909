"""Registering a library card with a one-time code: central's rules, the keypad at the reader, and the whole
way from the code on the phone to the first entry with the new card."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from structlog.testing import capture_logs

from central.db import session_factory
from central.gateway.ingest import Inbound, IngestWorker
from central.models import (
    AccessGroup,
    AuditLog,
    CardEnrolmentCode,
    Credential,
    CredentialKind,
    CredentialStatus,
    Event,
    Person,
    PersonKind,
)
from central.replica import build_snapshot, credential_ref, person_ref
from central.services.card_enrolment import (
    ClaimOutcome,
    CodeState,
    card_code_status,
    claim_card_code,
    issue_card_code,
)
from central.services.credentials import set_pin
from central.services.errors import ConflictError
from controller.agent import Received
from controller.clock import ManualClock
from controller.inputs import Feedback, KeyPressed
from controller.uid import card_uid_hash
from hw_sim.pcscd import PcscDaemon
from protocol import codec
from protocol import messages as m
from protocol.topics import Channel, site_topic
from tests.infra import MosquittoBroker
from tests.pcsc_fixtures import VirtualCardFactory, pcscd, virtual_card  # noqa: F401 (fixtures)
from tests.test_agent_end_to_end import Central, agent_config, central, eventually, start_site  # noqa: F401
from tests.test_agent_end_to_end import Site as RunningSite
from tests.test_controller_agent import KARI, KARI_UID, KEY, MONDAY_EVENING, FakeLink, Site
from tests.test_controller_schedule import heggedal_config
from tests.test_replica import World, build_world

UID_KEY = bytes(range(32))
NOW = datetime.now(UTC).replace(microsecond=0)
NEW_CARD = "1f" * 32
OTHER_CARD = "2e" * 32


# --- central's rules ----------------------------------------------------------------------------------------


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> World:
    with sessions() as session:
        w = build_world(session)
        session.commit()
        return w


def issue(sessions: sessionmaker[Session], person: Person, at: datetime = NOW) -> str:
    with sessions() as session, session.begin():
        code, expires_at = issue_card_code(session, person.id, at, uid_key=UID_KEY)
    assert expires_at == at + timedelta(minutes=10)
    return code


def claim(
    sessions: sessionmaker[Session],
    site_id: int,
    code: str,
    uid_hash: str = NEW_CARD,
    at: datetime = NOW,
) -> ClaimOutcome:
    with sessions() as session, session.begin():
        return claim_card_code(session, site_id, code, uid_hash, at, uid_key=UID_KEY).outcome


def cards_of(sessions: sessionmaker[Session], person: Person) -> list[Credential]:
    with sessions() as session:
        stmt = select(Credential).where(
            Credential.person_id == person.id, Credential.kind == CredentialKind.CARD
        )
        return list(session.scalars(stmt.order_by(Credential.id)))


def other_code(code: str) -> str:
    return f"{(int(code) + 1) % 10**8:08d}"


def test_a_good_code_registers_the_card_for_its_person_and_the_site_gets_it(
    sessions: sessionmaker[Session], world: World
) -> None:
    kari = world.people["kari"]
    code = issue(sessions, kari)
    assert len(code) == 8 and code.isdigit()
    with sessions() as session:
        assert card_code_status(session, kari.id, NOW).state is CodeState.PENDING
        stored = session.scalars(select(CardEnrolmentCode)).one()
        assert code not in stored.code_hash and len(stored.code_hash) == 64  # only the HMAC is kept
    assert claim(sessions, world.nord.id, code) is ClaimOutcome.REGISTERED
    new = cards_of(sessions, kari)[-1]
    assert (new.uid_hash, new.status, new.valid_from) == (NEW_CARD, CredentialStatus.ACTIVE, NOW)
    with sessions() as session:
        status = card_code_status(session, kari.id, NOW)
        assert (status.state, status.credential_id) == (CodeState.REGISTERED, new.id)
        replica = build_snapshot(session, "nord", NOW)
        audit = session.scalars(select(AuditLog).where(AuditLog.action == "register_card_by_code")).one()
    [card] = [c for c in replica.credentials if c.ref == credential_ref(new.id)]
    assert (card.person, card.uid_hash, card.groups) == (person_ref(kari.id), NEW_CARD, ["innbyggere-nord"])
    assert audit.detail == {"person": kari.id, "site_id": world.nord.id}
    assert claim(sessions, world.nord.id, code, OTHER_CARD) is ClaimOutcome.WRONG_CODE  # used up


def test_a_new_code_voids_the_older_one_and_codes_expire_after_ten_minutes(
    sessions: sessionmaker[Session], world: World
) -> None:
    kari = world.people["kari"]
    first = issue(sessions, kari)
    second = issue(sessions, kari, NOW + timedelta(minutes=1))
    assert claim(sessions, world.nord.id, first, at=NOW + timedelta(minutes=2)) is ClaimOutcome.WRONG_CODE
    late = NOW + timedelta(minutes=11)
    assert claim(sessions, world.nord.id, second, at=late) is ClaimOutcome.WRONG_CODE
    with sessions() as session:
        assert card_code_status(session, kari.id, late).state is CodeState.EXPIRED
        assert card_code_status(session, world.people["sofie"].id, late).state is CodeState.NONE
    assert len(cards_of(sessions, kari)) == 1  # only the card from build_world


def test_a_card_registered_to_someone_else_is_refused_and_nothing_changes(
    sessions: sessionmaker[Session], world: World
) -> None:
    kari, sofie = world.people["kari"], world.people["sofie"]
    sofies_card = cards_of(sessions, sofie)[0].uid_hash
    assert sofies_card is not None
    code = issue(sessions, kari)
    assert claim(sessions, world.nord.id, code, sofies_card) is ClaimOutcome.CARD_TAKEN
    assert len(cards_of(sessions, kari)) == 1 and cards_of(sessions, sofie)[0].uid_hash == sofies_card
    with sessions() as session:
        assert session.scalars(select(CardEnrolmentCode.attempts)).one() == 1
    assert claim(sessions, world.nord.id, code) is ClaimOutcome.REGISTERED  # the code still works
    own_card = cards_of(sessions, kari)[0].uid_hash
    assert own_card is not None
    again = issue(sessions, kari)
    assert claim(sessions, world.nord.id, again, own_card) is ClaimOutcome.ALREADY_REGISTERED
    assert len(cards_of(sessions, kari)) == 2


def test_five_wrong_codes_close_the_site_to_claims_for_ten_minutes(
    sessions: sessionmaker[Session], world: World
) -> None:
    code = issue(sessions, world.people["kari"])
    wrong = other_code(code)
    with capture_logs() as logs:
        for minute in range(5):
            at = NOW + timedelta(minutes=minute)
            assert claim(sessions, world.nord.id, wrong, at=at) is ClaimOutcome.WRONG_CODE
    [warning] = [entry for entry in logs if entry["log_level"] == "warning"]
    assert warning["event"] == "card_code.too_many_wrong_codes" and warning["site_id"] == world.nord.id
    assert code not in str(logs) and wrong not in str(logs)
    locked = NOW + timedelta(minutes=5)
    assert claim(sessions, world.nord.id, code, at=locked) is ClaimOutcome.LOCKED  # even the right code
    assert cards_of(sessions, world.people["kari"])[-1].uid_hash != NEW_CARD
    reopened = NOW + timedelta(minutes=14, seconds=30)  # ten minutes after the fifth wrong code
    assert claim(sessions, world.nord.id, wrong, at=reopened) is ClaimOutcome.WRONG_CODE  # counted afresh
    fresh = issue(sessions, world.people["kari"], reopened)  # the first code has expired meanwhile
    assert claim(sessions, world.nord.id, fresh, at=reopened) is ClaimOutcome.REGISTERED


def test_wrong_codes_at_one_site_do_not_close_another(sessions: sessionmaker[Session], world: World) -> None:
    code = issue(sessions, world.people["kari"])
    for _ in range(5):
        claim(sessions, world.nord.id, other_code(code))
    assert claim(sessions, world.sor.id, code) is ClaimOutcome.REGISTERED


def test_a_blocked_person_gets_no_code(sessions: sessionmaker[Session], world: World) -> None:
    with sessions() as session, pytest.raises(ConflictError, match="blocked"):
        issue_card_code(session, world.people["per"].id, NOW, uid_key=UID_KEY)


class Recorder:
    def __init__(self) -> None:
        self.acked: list[uuid.UUID] = []

    def publish(self, _topic: str, payload: bytes) -> None:
        self.acked += codec.decode(payload, m.Ack).event_ids

    def broker_ack(self, _mid: int, _qos: int) -> None:
        pass


def test_ingest_registers_once_acknowledges_and_keeps_no_code(
    sessions: sessionmaker[Session], world: World
) -> None:
    kari = world.people["kari"]
    code = issue(sessions, kari)
    enrolment = m.CardEnrolment(
        event_id=uuid.uuid4(),
        site="nord",
        agent="agent-nord",
        seq=3,
        device_time=NOW,
        door="inngang",
        code=code,
        uid_hash=NEW_CARD,
    )
    link = Recorder()
    worker = IngestWorker(sessions, publish=link.publish, broker_ack=link.broker_ack, uid_key=UID_KEY)
    payload = codec.encode(enrolment)
    topic = site_topic("nord", Channel.EVENT)
    worker.process([Inbound(topic, payload, 1, 1)])
    worker.process([Inbound(topic, payload, 2, 1)])  # resent: the agent missed the ack
    assert link.acked == [enrolment.event_id, enrolment.event_id]
    [new] = [c for c in cards_of(sessions, kari) if c.uid_hash == NEW_CARD]
    with sessions() as session:
        event = session.scalars(select(Event)).one()
        assert (event.reason, event.person_id, event.credential_ref) == (
            "card_enrolment_registered",
            kari.id,
            credential_ref(new.id),
        )
        stored = [str(e.data) for e in session.scalars(select(Event))]
        stored += [str(a.detail) for a in session.scalars(select(AuditLog))]
        assert (
            session.scalar(
                select(func.count()).select_from(Credential).where(Credential.uid_hash == NEW_CARD)
            )
            == 1
        )
    assert not any(code in text for text in stored)


# --- the keypad at the reader -------------------------------------------------------------------------------

NEW_UID = bytes.fromhex("04998877665544")


class EnrolmentLink(FakeLink):
    """FakeLink that also takes card enrolments (each once, however often published)."""

    def __init__(self) -> None:
        super().__init__()
        self.enrolments: list[m.CardEnrolment] = []

    def publish_event(self, payload: bytes) -> None:
        event = codec.decode(payload, (m.CardEnrolment, m.AccessEvent, m.AlarmEvent, m.SystemEvent))
        if not isinstance(event, m.CardEnrolment):
            super().publish_event(payload)
        elif all(e.event_id != event.event_id for e in self.enrolments):
            self.enrolments.append(event)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    running = Site(tmp_path / "agent", ManualClock(MONDAY_EVENING), EnrolmentLink())
    snapshot = m.ReplicaSnapshot(site="heggedal", seq=10, generated_at=MONDAY_EVENING, credentials=[KARI])
    running.feed(Received(heggedal_config()), Received(snapshot))
    yield running
    running.agent.close()


def link_of(site: Site) -> EnrolmentLink:
    assert isinstance(site.link, EnrolmentLink)
    return site.link


def test_star_code_hash_then_a_tap_sends_the_card_for_registration_and_opens_nothing(site: Site) -> None:
    door = site.doors["hovedinngang"]
    site.type("*12345678#")
    assert door.shown == [Feedback.ENROL_READY]
    site.tap(NEW_UID)
    assert door.shown == [Feedback.ENROL_READY, Feedback.ENROLLED]
    assert not any(door.unlocked)
    [enrolment] = link_of(site).enrolments
    assert (enrolment.door, enrolment.code, enrolment.uid_hash) == (
        "hovedinngang",
        "12345678",
        card_uid_hash(NEW_UID, KEY),
    )
    assert link_of(site).access() == []  # not an entry
    site.tap(NEW_UID)  # the next tap is an entry again: an unknown card
    assert link_of(site).access()[0].reason is m.Reason.UNKNOWN_CREDENTIAL


def test_a_known_card_tapped_while_armed_is_registered_not_let_in(site: Site) -> None:
    site.type("*87654321#")
    site.tap(KARI_UID)
    assert not site.agent.awaiting_pin("hovedinngang")
    assert [e.uid_hash for e in link_of(site).enrolments] == [card_uid_hash(KARI_UID, KEY)]
    assert not any(site.doors["hovedinngang"].unlocked)


def test_the_arming_runs_out_after_thirty_seconds(site: Site) -> None:
    door = site.doors["hovedinngang"]
    site.type("*12345678#")
    site.wait(31)
    assert door.shown[-1] is Feedback.IDLE
    site.tap(NEW_UID)
    assert link_of(site).enrolments == []
    assert link_of(site).access()[0].reason is m.Reason.UNKNOWN_CREDENTIAL


@pytest.mark.parametrize("keys", ["*1234567#", "12345678#", "*123456789#", "*1234*5678#", "*12345678#5"])
def test_a_wrong_key_sequence_arms_nothing(site: Site, keys: str) -> None:
    site.type(keys)
    site.tap(NEW_UID)
    assert link_of(site).enrolments == []
    assert link_of(site).access()[0].reason is m.Reason.UNKNOWN_CREDENTIAL


def test_keys_during_a_pin_entry_are_the_pin(site: Site) -> None:
    site.tap(KARI_UID)
    site.type("*12345678#")  # '*' clears the PIN entry; the rest is a wrong PIN
    [event] = link_of(site).access()
    assert event.reason is m.Reason.WRONG_PIN
    site.tap(NEW_UID)
    assert link_of(site).enrolments == []


def test_an_enrolment_tapped_offline_reaches_central_later_and_leaves_the_journal_on_ack(site: Site) -> None:
    link = link_of(site)
    link.connected = False
    site.type("*12345678#")
    site.tap(NEW_UID)
    assert link.enrolments == []
    link.connected = True
    site.wait(1)
    [enrolment] = link.enrolments
    assert any(e.event_id == enrolment.event_id for e, _ in site.agent.journal.pending())
    site.feed(Received(m.Ack(site="heggedal", event_ids=[enrolment.event_id])))
    assert all(e.event_id != enrolment.event_id for e, _ in site.agent.journal.pending())


# --- the whole way: code on the phone, keypad and card at the reader, first entry ---------------------------

LISE_UID = bytes.fromhex("04777766665555")


def new_resident(stack: Central) -> int:
    """Lise has signed up (in the group for residents) but has no card yet."""
    with session_factory(stack.engine)() as session, session.begin():
        lise = Person(kind=PersonKind.RESIDENT, display_name="Lise Ny", external_ref="test:lise-ny")
        session.add(lise)
        residents = session.scalars(select(AccessGroup).where(AccessGroup.slug == "innbyggere")).one()
        residents.members.append(lise)
        session.flush()
        return lise.id


@pytest.mark.mqtt
def test_code_on_the_phone_then_keypad_and_card_then_the_card_opens_the_entrance(
    tmp_path: Path,
    central: Central,  # noqa: F811
    private_mosquitto: MosquittoBroker,
    pcscd: PcscDaemon,  # noqa: F811
    virtual_card: VirtualCardFactory,  # noqa: F811
) -> None:
    lise = new_resident(central)
    sessions = session_factory(central.engine)
    central.start()
    site = start_site(
        agent_config(tmp_path, central, private_mosquitto, pcscd), ManualClock(central.open_evening())
    )
    agent = site.agent
    try:
        eventually(lambda: agent.replica.count() > 0 and agent.view is not None, "first sync")
        with sessions() as session, session.begin():
            code, _ = issue_card_code(
                session, lise, datetime.now(UTC), uid_key=central.settings.uid_hash_key()
            )
        for key in f"*{code}#":
            agent.submit(KeyPressed("hovedinngang", key))
        card = virtual_card(LISE_UID)
        card.present()
        eventually(lambda: status_of(sessions, lise) is CodeState.REGISTERED, "central registers Lise's card")
        eventually(lambda: cards_in_replica(site, lise) == 1, "the new card reaches the agent's replica")
        assert not site.door.is_unlocked  # registering opens nothing
        card.remove()

        with sessions() as session, session.begin():
            new = session.scalars(select(Credential).where(Credential.person_id == lise)).one()
            set_pin(session, "lise", new.id, "2468")  # she sets her PIN on the phone page
        eventually(lambda: pin_in_replica(site, lise), "the PIN reaches the agent")
        card.present()
        eventually(lambda: agent.awaiting_pin("hovedinngang"), "the reader asks for Lise's PIN")
        for key in "2468#":
            agent.submit(KeyPressed("hovedinngang", key))
        eventually(lambda: site.door.is_unlocked, "the new card with its PIN opens the entrance")
        eventually(lambda: agent.journal.pending_count() == 0, "central acknowledged everything")
    finally:
        site.close()
    with sessions() as session:
        registered = session.scalars(select(Event).where(Event.reason == "card_enrolment_registered")).one()
        assert (registered.person_id, registered.door_slug) == (lise, "hovedinngang")
        texts = [str(e.data) for e in session.scalars(select(Event))]
        texts += [str(a.detail) for a in session.scalars(select(AuditLog))]
    assert not any(code in text for text in texts)
    [entry] = [e for e in central.access_events() if e.person_id == lise]
    assert (entry.decision, entry.reason, entry.data["method"]) == ("grant", "schedule", "card_pin")


def status_of(sessions: sessionmaker[Session], person_id: int) -> CodeState:
    with sessions() as session:
        return card_code_status(session, person_id, datetime.now(UTC)).state


def cards_in_replica(running: RunningSite, person_id: int) -> int:
    credentials = running.agent.replica.credentials_of(person_ref(person_id))
    return len([c for c in credentials if c.kind is m.CredentialKind.CARD])


def pin_in_replica(running: RunningSite, person_id: int) -> bool:
    return any(c.pin_hash for c in running.agent.replica.credentials_of(person_ref(person_id)))
