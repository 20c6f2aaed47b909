"""A resident at Heggedal's main door, with every real part in the loop except the door itself.

Central (seeded database + MQTT gateway) and the agent talk through a real mosquitto; the card is a virtual
contactless card behind a real pcscd, read with pyscard; the lock relay, door contact and exit button are
gpiozero MockFactory pins driven by the simulated door in hw_sim. The agent's clock is a manual one set to an
evening the seeded Heggedal is open, so the test passes at any hour.
"""

from __future__ import annotations

import threading
import time as clock_time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from gpiozero.pins.mock import MockFactory
from sqlalchemy import Engine, select

from central.config import Settings
from central.db import make_engine, migrate, session_factory
from central.gateway import Gateway
from central.models import Event
from central.seed import run_seed
from central.services.site_config import build_site_config
from controller.agent import Agent
from controller.clock import ManualClock
from controller.config import AgentConfig, load_config
from controller.inputs import KeyPressed
from controller.runtime import RunningAgent, start
from controller.schedule import SiteCalendar
from hw_sim.door import SimDoor
from hw_sim.pcscd import PcscDaemon
from tests.infra import MosquittoBroker
from tests.pcsc_fixtures import VirtualCardFactory, pcscd, virtual_card  # noqa: F401 (fixtures)

KARI_UID = bytes.fromhex("04A1B2C3D4E5F6")  # central/seed.py: Kari Nordmann, PIN 1234
WAIT_S = 20.0
RELAY, CONTACT, EXIT = "GPIO17", "GPIO27", "GPIO22"


def eventually(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = clock_time.monotonic() + timeout
    while not condition():
        if clock_time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        clock_time.sleep(0.02)


@pytest.fixture
def central(tmp_path: Path, private_mosquitto: MosquittoBroker) -> Iterator[Central]:
    settings = Settings(
        data_dir=tmp_path / "central",
        db_url=f"sqlite:///{tmp_path / 'central.db'}",
        mqtt_host=private_mosquitto.host,
        mqtt_port=private_mosquitto.port,
    )
    migrate(settings.db_url)
    run_seed(settings)
    engine = make_engine(settings.db_url)
    running = Central(settings, engine)
    yield running
    running.stop()
    engine.dispose()


@dataclass
class Central:
    settings: Settings
    engine: Engine
    gateway: Gateway | None = None

    def start(self) -> None:
        self.gateway = Gateway(
            self.settings, self.engine, client_id="central-e2e", poll_s=0.05, refresh_s=0.5
        )
        self.gateway.start()
        assert self.gateway.link.wait_connected(WAIT_S)

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
            self.gateway = None

    def access_events(self) -> list[Event]:
        with session_factory(self.engine)() as session:
            return list(session.scalars(select(Event).where(Event.kind == "access")))

    def open_evening(self) -> datetime:
        """The next weekday evening at least a day ahead (cards are valid from their creation) when the
        seeded Heggedal is open in meråpent hours."""
        with session_factory(self.engine)() as session:
            config = build_site_config(session, "heggedal", datetime.now(UTC))
        calendar = SiteCalendar.from_config(config)
        oslo = ZoneInfo("Europe/Oslo")
        day = datetime.now(oslo).date() + timedelta(days=1)
        for offset in range(14):
            moment = datetime.combine(day + timedelta(days=offset), time(19), oslo)
            if calendar.is_open(moment.astimezone(UTC)):
                return moment.astimezone(UTC)
        raise AssertionError("the seeded Heggedal is not open at 19:00 on any of the next 14 days")


def agent_config(
    tmp_path: Path, central: Central, broker: MosquittoBroker, pcscd: PcscDaemon  # noqa: F811
) -> AgentConfig:
    path = tmp_path / "site.toml"
    path.write_text(
        f"""
[agent]
site = "heggedal"
name = "heggedal-pi-1"
data_dir = "{tmp_path / 'agent'}"
uid_hash_key_file = "{central.settings.data_dir / 'secrets' / 'uid-hash.key'}"

[mqtt]
host = "{broker.host}"
port = {broker.port}
keepalive = 5

[[doors]]
slug = "hovedinngang"
relay = "{RELAY}"
lock_type = "fail_secure"
contact = "{CONTACT}"
exit_button = "{EXIT}"
reader = "pcsc:{pcscd.reader_name(0)}"
""",
        encoding="utf-8",
    )
    return load_config(path)


@dataclass
class Site:
    """The running agent with its loop thread, and the simulated door at its main entrance."""

    running: RunningAgent
    door: SimDoor
    stop: threading.Event
    thread: threading.Thread

    @property
    def agent(self) -> Agent:
        return self.running.agent

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.running.close()


def start_site(config: AgentConfig, clock: ManualClock) -> Site:
    factory = MockFactory()
    running = start(config, clock=clock, factory=factory)
    stop = threading.Event()
    thread = threading.Thread(target=running.agent.run, args=(stop,), daemon=True)
    thread.start()
    door = SimDoor(factory, RELAY, CONTACT, EXIT, "fail_secure", clock=clock)
    return Site(running, door, stop, thread)


def walk_in_with_card_and_pin(site: Site, card: VirtualCardFactory) -> None:
    agent = site.agent
    kari = card(KARI_UID)
    kari.present()
    eventually(lambda: agent.awaiting_pin("hovedinngang"), "the agent asks for Kari's PIN")
    assert not site.door.push()  # the card alone does not open it
    for key in "1234#":
        agent.submit(KeyPressed("hovedinngang", key))
    eventually(lambda: site.door.is_unlocked, "the relay energises after the right PIN")
    kari.remove()
    assert site.door.push()
    eventually(lambda: agent.doors["hovedinngang"].door_open, "the agent sees the door open")
    clock = site.agent.clock
    assert isinstance(clock, ManualClock)
    clock.advance(4)
    site.door.tick()  # the closer shuts it
    eventually(lambda: not site.door.is_unlocked, "the lock relocks once the door has closed")


@pytest.mark.mqtt
def test_kari_gets_in_and_central_records_it_once(
    tmp_path: Path,
    central: Central,
    private_mosquitto: MosquittoBroker,
    pcscd: PcscDaemon,  # noqa: F811
    virtual_card: VirtualCardFactory,  # noqa: F811
) -> None:
    central.start()
    clock = ManualClock(central.open_evening())
    site = start_site(agent_config(tmp_path, central, private_mosquitto, pcscd), clock)
    try:
        eventually(lambda: site.agent.replica.count() > 0 and site.agent.view is not None, "first sync")
        walk_in_with_card_and_pin(site, virtual_card)
        eventually(lambda: len(central.access_events()) == 1, "central stores the decision")
        eventually(lambda: site.agent.journal.pending_count() == 0, "the agent drops what central acked")
    finally:
        site.close()
    [event] = central.access_events()
    assert (event.decision, event.reason, event.door_slug) == ("grant", "schedule", "hovedinngang")


@pytest.mark.mqtt
def test_with_central_down_all_evening_kari_still_gets_in_and_the_event_arrives_later(
    tmp_path: Path,
    central: Central,
    private_mosquitto: MosquittoBroker,
    pcscd: PcscDaemon,  # noqa: F811
    virtual_card: VirtualCardFactory,  # noqa: F811
) -> None:
    config = agent_config(tmp_path, central, private_mosquitto, pcscd)
    central.start()
    clock = ManualClock(central.open_evening())
    first = start_site(config, clock)
    eventually(lambda: first.agent.replica.count() > 0 and first.agent.view is not None, "first sync")
    first.close()
    central.stop()  # central is gone before the evening starts

    site = start_site(config, clock)  # the agent restarts too, and must decide from what it kept
    try:
        walk_in_with_card_and_pin(site, virtual_card)
        assert central.access_events() == []
        central.start()
        eventually(lambda: len(central.access_events()) == 1, "the event arrives once central is back")
        eventually(lambda: site.agent.journal.pending_count() == 0, "the agent drops what central acked")
    finally:
        site.close()
    assert len(central.access_events()) == 1
