"""Check-ins, extensions and early ends made at the kiosk reach central as journaled events and are applied
there exactly once, judged by the agent's clock; on SQLite and PostgreSQL. And the whole way: a check-in
over the kiosk socket while central's broker is down is answered at once and reaches central afterwards.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from central.checkin import CheckinRules
from central.db import session_factory
from central.gateway.ingest import IngestWorker
from central.models import (
    AuditLog,
    Booking,
    BookingStatus,
    Event,
    Person,
    ReplicaChange,
    Room,
    Site,
    WebhookOutbox,
)
from central.replica import booking_ref, build_snapshot, person_ref
from central.services import bookings as booking_service
from central.services.checkin import sweep_no_shows
from controller.clock import ManualClock
from controller.config import AgentConfig, load_config
from hw_sim.pcscd import PcscDaemon
from protocol import codec
from protocol import kiosk as k
from protocol import messages as m
from protocol.topics import Channel, site_topic
from tests.infra import MosquittoBroker
from tests.pcsc_fixtures import pcscd  # noqa: F401 (fixture)
from tests.test_agent_end_to_end import KARI_UID, Central, agent_config, central, eventually, start_site  # noqa: F401
from tests.test_ingest import inbound
from tests.test_kiosk_server import Kiosk
from tests.test_my_access import at
from tests.test_replica import NOW, World, build_world
from tests.test_replica import add_booking as add_room_booking
from tests.test_web_home import Phone, add_booking, phone  # noqa: F401 (fixture)

RULES = CheckinRules()


class Ingest:
    """Central's ingest as the gateway runs it, with what it acknowledged to the agent."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.acked: list[uuid.UUID] = []
        self.worker = IngestWorker(sessions, publish=self._publish, broker_ack=lambda _mid, _qos: None)

    def _publish(self, topic: str, payload: bytes) -> None:
        ack = codec.decode(payload, m.Ack)
        assert topic == site_topic(ack.site, Channel.ACK)
        self.acked += ack.event_ids

    def receive(self, *events: m.KioskEvent) -> None:
        self.worker.process([inbound(Channel.EVENT, e, site=e.site, mid=i) for i, e in enumerate(events)])

    def booking(self, booking_id: int) -> Booking:
        with self.sessions() as session:
            found = session.get(Booking, booking_id)
            assert found is not None
            return found

    def kiosk_events(self) -> list[Event]:
        with self.sessions() as session:
            return list(session.scalars(select(Event).where(Event.reason.like("kiosk_%")).order_by(Event.id)))

    def replica_changes(self) -> int:
        with self.sessions() as session:
            return int(session.scalar(select(func.count()).select_from(ReplicaChange)) or 0)


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> World:
    with sessions() as session, session.begin():
        return build_world(session)


@pytest.fixture
def hub(sessions: sessionmaker[Session]) -> Ingest:
    return Ingest(sessions)


def check_in(
    booking: Booking, at: datetime, site: str = "nord", person: str | None = None
) -> m.BookingCheckIn:
    return m.BookingCheckIn(
        event_id=uuid.uuid4(),
        site=site,
        agent=f"agent-{site}",
        seq=1,
        device_time=at,
        booking=booking_ref(booking.id),
        method=m.CheckInVia.CARD,
        person=person,
    )


def change(booking: Booking, kind: m.BookingChangeKind, at: datetime, ends_at: datetime) -> m.BookingChange:
    return m.BookingChange(
        event_id=uuid.uuid4(),
        site="nord",
        agent="agent-nord",
        seq=2,
        device_time=at,
        booking=booking_ref(booking.id),
        change=kind,
        ends_at=ends_at,
    )


def test_a_kiosk_check_in_counts_once_however_often_it_is_resent(hub: Ingest, world: World) -> None:
    sjakk = world.bookings["sjakk"]
    at = sjakk.starts_at - timedelta(minutes=10)
    nora = person_ref(world.people["nora"].id)
    event = check_in(sjakk, at, person=nora)
    hub.receive(event)
    hub.receive(event)  # the agent did not hear the first ack
    assert hub.acked == [event.event_id, event.event_id]
    booking = hub.booking(sjakk.id)
    assert (booking.status, booking.checked_in_at) == (BookingStatus.CHECKED_IN, at)
    [row] = hub.kiosk_events()
    assert (row.kind, row.reason, row.person_id, row.device_time) == (
        "checkin",
        "kiosk_check_in",
        world.people["nora"].id,
        at,
    )
    assert row.data["outcome"] == "done" and row.data["method"] == "card"
    with hub.sessions() as session:
        audits = session.scalars(select(AuditLog).where(AuditLog.action == "check_in")).all()
        webhooks = session.scalars(select(WebhookOutbox).where(WebhookOutbox.booking_id == sjakk.id)).all()
    assert [(a.actor, a.detail) for a in audits] == [("kiosk:nord", {"via": "kiosk"})]
    assert [w.kind for w in webhooks] == ["checked_in"]


def test_a_late_check_in_made_inside_the_window_undoes_the_no_show_release(hub: Ingest, world: World) -> None:
    sjakk = world.bookings["sjakk"]
    with hub.sessions() as session, session.begin():  # central swept before the offline site's event came
        released = sweep_no_shows(session, sjakk.starts_at + timedelta(minutes=20), RULES)
    assert sjakk.id in {b.id for b in released}
    at = sjakk.starts_at + timedelta(minutes=5)
    hub.receive(check_in(sjakk, at))
    booking = hub.booking(sjakk.id)
    assert (booking.status, booking.checked_in_at) == (BookingStatus.CHECKED_IN, at)
    [row] = hub.kiosk_events()
    assert row.data["restored"] is True and row.reason == "kiosk_check_in"
    with hub.sessions() as session:
        restored = session.scalars(select(AuditLog).where(AuditLog.action == "restore_no_show")).one()
    assert restored.actor == "kiosk:nord"
    assert sjakk.id in {b.id for b in build_snapshot_bookings(hub.sessions)}  # back in the site's replica


def build_snapshot_bookings(sessions: sessionmaker[Session]) -> list[Booking]:
    with sessions() as session:
        refs = {b.ref for b in build_snapshot(session, "nord").bookings}
        return [b for b in session.scalars(select(Booking)) if booking_ref(b.id) in refs]


def test_a_check_in_too_late_by_the_agents_own_clock_stays_a_no_show(hub: Ingest, world: World) -> None:
    sjakk = world.bookings["sjakk"]
    with hub.sessions() as session, session.begin():
        sweep_no_shows(session, sjakk.starts_at + timedelta(minutes=20), RULES)
    before = hub.replica_changes()
    hub.receive(check_in(sjakk, sjakk.starts_at + timedelta(minutes=16)))
    assert hub.booking(sjakk.id).status is BookingStatus.NO_SHOW
    [row] = hub.kiosk_events()
    assert (row.kind, row.reason) == ("system", "kiosk_check_in_refused")
    assert "no-show" in row.data["detail"]
    assert hub.replica_changes() > before  # the agent is told the booking is gone


def test_no_restore_when_the_released_room_was_booked_again(hub: Ingest, world: World) -> None:
    sjakk = world.bookings["sjakk"]
    with hub.sessions() as session, session.begin():
        sweep_no_shows(session, sjakk.starts_at + timedelta(minutes=20), RULES)
        room = session.get(Room, sjakk.room_id)
        jonas = session.get(Person, world.people["jonas"].id)
        assert room is not None and jonas is not None
        add_room_booking(session, room, jonas, sjakk.starts_at + timedelta(minutes=30))
    hub.receive(check_in(sjakk, sjakk.starts_at + timedelta(minutes=5)))
    assert hub.booking(sjakk.id).status is BookingStatus.NO_SHOW
    [row] = hub.kiosk_events()
    assert row.reason == "kiosk_check_in_refused" and "booked again" in row.data["detail"]


def test_extend_and_end_from_the_kiosk_as_of_the_agents_clock(hub: Ingest, world: World) -> None:
    sjakk = world.bookings["sjakk"]
    hub.receive(check_in(sjakk, sjakk.starts_at))
    later = sjakk.ends_at + timedelta(minutes=30)
    hub.receive(change(sjakk, m.BookingChangeKind.EXTEND, sjakk.starts_at + timedelta(minutes=5), later))
    assert hub.booking(sjakk.id).ends_at == later
    ended_at = sjakk.starts_at + timedelta(minutes=50)
    end = change(sjakk, m.BookingChangeKind.END, ended_at, ended_at)
    hub.receive(end, end)
    assert hub.booking(sjakk.id).ends_at == ended_at
    assert [(e.reason, e.data["outcome"]) for e in hub.kiosk_events()] == [
        ("kiosk_check_in", "done"),
        ("kiosk_extend", "done"),
        ("kiosk_end", "done"),
    ]
    with hub.sessions() as session:
        actions = session.scalars(select(AuditLog.action).where(AuditLog.actor == "kiosk:nord")).all()
    assert sorted(actions) == ["check_in", "end_early", "extend"]


def test_an_extension_central_refuses_is_kept_for_the_caretaker_and_the_agent_is_corrected(
    hub: Ingest, world: World
) -> None:
    sjakk = world.bookings["sjakk"]
    with hub.sessions() as session, session.begin():  # booked at central while the site was offline
        room = session.get(Room, sjakk.room_id)
        jonas = session.get(Person, world.people["jonas"].id)
        assert room is not None and jonas is not None
        add_room_booking(session, room, jonas, sjakk.ends_at + timedelta(minutes=15))
    before = hub.replica_changes()
    event = change(sjakk, m.BookingChangeKind.EXTEND, sjakk.starts_at, sjakk.ends_at + timedelta(hours=1))
    hub.receive(event)
    assert hub.acked == [event.event_id]  # refused, yet done with: the agent may forget it
    assert hub.booking(sjakk.id).ends_at == sjakk.ends_at
    [row] = hub.kiosk_events()
    assert (row.kind, row.reason) == ("system", "kiosk_extend_refused")
    assert "is booked from" in row.data["detail"]
    assert hub.replica_changes() > before


def test_only_the_holder_extends_or_ends_a_booking(hub: Ingest, world: World) -> None:
    sjakk = world.bookings["sjakk"]  # Nora's
    kari = person_ref(world.people["kari"].id)
    later = sjakk.ends_at + timedelta(minutes=30)
    event = msgspec.structs.replace(
        change(sjakk, m.BookingChangeKind.EXTEND, sjakk.starts_at, later), person=kari
    )
    hub.receive(event)
    assert hub.booking(sjakk.id).ends_at == sjakk.ends_at
    [row] = hub.kiosk_events()
    assert row.reason == "kiosk_extend_refused" and "only the holder" in row.data["detail"]


def test_a_kiosk_cannot_touch_another_sites_booking(hub: Ingest, world: World) -> None:
    sjakk = world.bookings["sjakk"]  # a booking at nord
    before = hub.replica_changes()
    hub.receive(check_in(sjakk, sjakk.starts_at, site="sor"))
    assert hub.booking(sjakk.id).status is BookingStatus.CONFIRMED
    [row] = hub.kiosk_events()
    assert row.reason == "kiosk_check_in_refused" and "not at this site" in row.data["detail"]
    assert hub.replica_changes() == before


def test_bookings_get_six_digit_codes_unique_at_their_site_and_the_replica_shows_no_more_than_a_name(
    sessions: sessionmaker[Session], world: World
) -> None:
    with sessions() as session, session.begin():
        site = session.scalars(select(Site).where(Site.slug == "nord")).one()
        kari = world.people["kari"].id
        made = [
            booking_service.create_booking(
                session,
                "test",
                {
                    "site": "nord",
                    "room": "moterom-1",
                    "holder_id": kari,
                    "starts_at": NOW + timedelta(days=1, hours=i),
                    "ends_at": NOW + timedelta(days=1, hours=i, minutes=45),
                },
            )
            for i in range(5)
        ]
        org = booking_service.create_booking(
            session,
            "test",
            {
                "site": "nord",
                "room": "moterom-1",
                "holder_id": kari,
                "organisation": "Asker  sjakklubb",
                "starts_at": NOW + timedelta(days=2),
                "ends_at": NOW + timedelta(days=2, hours=1),
            },
        )
        codes = [b.checkin_code for b in [*made, org]]
        assert site.id and all(c is not None and len(c) == 6 and c.isdigit() for c in codes)
        assert len(set(codes)) == len(codes)
    with sessions() as session:
        wire = {b.ref: b for b in build_snapshot(session, "nord").bookings}
    first = wire[booking_ref(made[0].id)]
    assert (first.code, first.shown_as) == (made[0].checkin_code, "Kari")  # add_person names her "Kari ..."
    assert wire[booking_ref(org.id)].shown_as == "Asker sjakklubb"


def test_the_phone_page_shows_the_code_to_type_at_the_kiosk(phone: Phone) -> None:  # noqa: F811
    booking_id = add_booking(phone, "Nora", at(18), at(20))
    with session_factory(phone.api.engine)() as session, session.begin():
        booking = session.get_one(Booking, booking_id)
        booking.checkin_code = "048213"
    phone.sign_in("Nora")
    phone.set_time(at(17, 30))
    assert "Kode for innsjekk på skjermen på torget: 048213" in phone.page().text
    english = phone.page(**{"Accept-Language": "en"})
    assert "Code to check in on the screen at the torg: 048213" in english.text
    phone.set_time(at(20, 30))
    assert "048213" not in phone.page().text  # over: nothing left to check in


# --- the whole way ------------------------------------------------------------------------------------------


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A short directory: a Unix socket path has at most 107 bytes, pytest's tmp paths can be longer."""
    path = Path(tempfile.mkdtemp(prefix="kiosk-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def kiosk_config(
    tmp_path: Path, stack: Central, broker: MosquittoBroker, daemon: PcscDaemon, socket: Path
) -> AgentConfig:
    agent_config(tmp_path, stack, broker, daemon)
    path = tmp_path / "site.toml"
    path.write_text(path.read_text() + f'\n[kiosk]\nsocket = "{socket}"\n', encoding="utf-8")
    return load_config(path)


def kari_books_the_meeting_room(stack: Central, starts_at: datetime) -> tuple[int, str]:
    with session_factory(stack.engine)() as session, session.begin():
        kari = session.scalars(select(Person).where(Person.external_ref == "demo:kari-nordmann")).one()
        booking = booking_service.create_booking(
            session,
            "test",
            {
                "site": "heggedal",
                "room": "moterom-1",
                "holder_id": kari.id,
                "title": "Korøvelse",
                "starts_at": starts_at,
                "ends_at": starts_at + timedelta(hours=1),
            },
        )
        return booking.id, booking_ref(booking.id)


@pytest.mark.mqtt
def test_a_check_in_at_the_kiosk_while_central_is_unreachable_counts_when_it_is_back(
    tmp_path: Path,
    socket_dir: Path,
    central: Central,  # noqa: F811
    private_mosquitto: MosquittoBroker,
    pcscd: PcscDaemon,  # noqa: F811
) -> None:
    evening = central.open_evening()  # 19:00 at Heggedal, a day or more ahead
    booking_id, ref = kari_books_the_meeting_room(central, evening)
    central.start()
    clock = ManualClock(evening - timedelta(minutes=10))
    config = kiosk_config(tmp_path, central, private_mosquitto, pcscd, socket_dir / "kiosk.sock")
    site = start_site(config, clock)
    kiosk: Kiosk | None = None
    try:
        eventually(lambda: site.agent.replica.booking(ref) is not None, "Kari's booking reaches the agent")
        private_mosquitto.stop()
        eventually(lambda: not site.running.link.connected, "the agent notices the broker is gone")

        kiosk = Kiosk(socket_dir / "kiosk.sock")
        today = kiosk.ask(k.TodayRequest())
        assert isinstance(today, k.TodayReply) and not today.central_online
        reply = kiosk.ask(k.CheckInRequest(method=k.CheckInMethod.CARD, uid=KARI_UID.hex()))
        assert isinstance(reply, k.CheckInReply)
        assert reply.outcome is k.CheckInOutcome.CHECKED_IN
        assert reply.booking is not None and (reply.booking.ref, reply.booking.door) == (ref, "moterom-1")
        assert central_status(central, booking_id) == (BookingStatus.CONFIRMED, None)

        private_mosquitto.start()
        eventually(
            lambda: central_status(central, booking_id) == (BookingStatus.CHECKED_IN, clock.now()),
            "the check-in reaches central, as of the moment Kari checked in",
        )
        eventually(lambda: site.agent.journal.pending_count() == 0, "the agent drops what central acked")
    finally:
        if kiosk is not None:
            kiosk.close()
        site.close()
    assert not (socket_dir / "kiosk.sock").exists()


def central_status(stack: Central, booking_id: int) -> tuple[BookingStatus, datetime | None]:
    with session_factory(stack.engine)() as session:
        booking = session.get(Booking, booking_id)
        assert booking is not None
        return booking.status, booking.checked_in_at
