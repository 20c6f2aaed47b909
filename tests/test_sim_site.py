"""The simulated site: Heggedal's real agent on virtual hardware, against a seeded central and a real broker.

What a scenario or a newcomer relies on: the wiring written for any site from central's configuration, every
virtual reader of a bigger pcscd reading its own cards, actions that return once the agent has handled them,
time that moves only when told, and `meraapent sim site` driven from a file all the way to central's database.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time as clock_time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from central.config import Settings
from central.db import make_engine, migrate, session_factory
from central.gateway import Gateway
from central.keystore import generate_key
from central.models import Event
from central.seed import run_seed
from controller.clock import ManualClock
from controller.config import load_config
from controller.devices import Backoff
from controller.devices.pcsc import PcscReader
from controller.inputs import CardPresented, Feedback, ReaderStatus
from hw_sim.broker import BrokerError, free_port, retained_site_config
from hw_sim.pcscd import PcscDaemon
from hw_sim.site import SimSiteError, SimulatedSite, open_evening, sim_agent_config
from hw_sim.vcard import VirtualCard
from meraapent.sim_cli import sim_clock
from protocol import messages as m
from tests.infra import MosquittoBroker
from tests.pcsc_fixtures import pcscd  # noqa: F401 (fixture)

KARI = bytes.fromhex("04A1B2C3D4E5F6")  # central/seed.py: resident, PIN 1234
OLA = bytes.fromhex("04B2C3D4E5F6A7")  # resident
VIDAR = bytes.fromhex("04F6A7B8C9DAEB")  # caretaker: every zone, any time
PER = bytes.fromhex("04E5F6A7B8C9DA")  # blocked
WAIT_S = 20.0
MERAAPENT = Path(sys.executable).with_name("meraapent")


# --- central and the site -----------------------------------------------------------------------------------


@dataclass
class Central:
    settings: Settings
    engine: Engine
    broker: MosquittoBroker
    gateway: Gateway

    def events(self, kind: str = "access") -> list[Event]:
        with session_factory(self.engine)() as session:
            return list(session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id)))

    def site_config(self) -> m.SiteConfig:
        return retained_site_config(self.broker.host, self.broker.port, "heggedal")


@pytest.fixture
def central(tmp_path: Path, private_mosquitto: MosquittoBroker) -> Iterator[Central]:
    """Seeded central with a signing key and its MQTT gateway running (the REST API: `central_api`)."""
    settings = Settings(
        data_dir=tmp_path / "central",
        db_url=f"sqlite:///{tmp_path / 'central.db'}",
        mqtt_host=private_mosquitto.host,
        mqtt_port=private_mosquitto.port,
    )
    migrate(settings.db_url)
    run_seed(settings)
    generate_key(settings.data_dir)
    engine = make_engine(settings.db_url)
    gateway = Gateway(settings, engine, client_id="central-sim", poll_s=0.05, refresh_s=0.5)
    gateway.start()
    assert gateway.link.wait_connected(WAIT_S)
    yield Central(settings, engine, private_mosquitto, gateway)
    gateway.stop()
    engine.dispose()


@pytest.fixture
def central_api(central: Central) -> Iterator[str]:
    """Central's REST API on a free port of loopback, in a thread; yields its base URL."""
    import uvicorn

    from central.api.app import create_app

    app = create_app(central.settings, engine=central.engine, gateway=central.gateway)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = clock_time.monotonic() + WAIT_S
    while not server.started:
        assert clock_time.monotonic() < deadline and thread.is_alive(), "central's API did not start"
        clock_time.sleep(0.02)
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(10)


def heggedal(
    tmp_path: Path,
    central: Central,
    pcscd: PcscDaemon,  # noqa: F811
    at: time = time(19),
) -> SimulatedSite:
    """Heggedal's agent on simulated hardware, on a manual clock at `at` on an evening it is open."""
    config = central.site_config()
    path = sim_agent_config(
        config,
        data_dir=tmp_path / "sim",
        uid_key_file=central.settings.secrets_dir / "uid-hash.key",
        mqtt_host=central.broker.host,
        mqtt_port=central.broker.port,
        pcscd=pcscd,
    )
    clock = ManualClock(open_evening(config, datetime.now(UTC), at))
    return SimulatedSite(path, clock=clock, pcscd=pcscd)


@pytest.fixture
def site(tmp_path: Path, central: Central, pcscd: PcscDaemon) -> Iterator[SimulatedSite]:  # noqa: F811
    with heggedal(tmp_path, central, pcscd) as running:
        running.wait_synced(WAIT_S)
        yield running


def kinds(site: SimulatedSite, event_type: type[m.AlarmEvent] | type[m.SystemEvent]) -> list[str]:
    return [str(e.kind) for e in site.events() if isinstance(e, event_type)]


# --- the wiring ---------------------------------------------------------------------------------------------


def torg(*doors: m.Door) -> m.SiteConfig:
    zones = [m.Zone(slug=slug, name=slug.title()) for slug in ("torg", "bibliotek", "moterom")]
    return m.SiteConfig(
        site="prove",
        name="Prøve torg",
        revision=1,
        issued_at=datetime.now(UTC),
        zones=zones,
        doors=list(doors),
    )


def door(slug: str, kind: m.DoorKind = m.DoorKind.ROOM, lock: m.LockType = m.LockType.FAIL_SECURE) -> m.Door:
    return m.Door(slug=slug, name=slug.title(), zone="torg", kind=kind, lock_type=lock)


def test_every_door_gets_its_own_pins_and_reader_and_the_site_its_fire_beam_light_and_alarm_lines(
    tmp_path: Path,
) -> None:
    key = tmp_path / "uid-hash.key"
    key.write_text("ab" * 32)
    readers = PcscDaemon(root=tmp_path, readers=4, base_port=40000)
    site = torg(
        door("inngang", m.DoorKind.ENTRANCE),
        door("bibliotek", m.DoorKind.INTERNAL, m.LockType.FAIL_SAFE),
        door("bakdor", m.DoorKind.ENTRANCE),
        door("moterom-1"),
    )

    def write(into: str, osdp: dict[str, int] | None = None) -> Path:
        return sim_agent_config(
            site,
            data_dir=tmp_path / into,
            uid_key_file=key,
            mqtt_host="127.0.0.1",
            mqtt_port=1883,
            pcscd=readers,
            osdp=osdp,
        )

    path = write("a")
    config = load_config(path)  # valid: every pin and reader used once, the key readable
    assert [d.slug for d in config.doors] == ["inngang", "bibliotek", "bakdor", "moterom-1"]
    assert [str(d.reader) for d in config.doors] == [
        "pcsc:Virtual PCD 00 00",
        "pcsc:Virtual PCD 00 01",
        "pcsc:Virtual PCD B 00 00",
        "pcsc:Virtual PCD B 00 01",
    ]
    assert config.door("bibliotek").lock_type is m.LockType.FAIL_SAFE
    assert set(config.site.beams) == {"inngang", "bakdor"}
    assert set(config.site.lights) == {"torg", "bibliotek", "moterom"}
    assert config.site.fire is not None and config.site.intruder_arm is not None
    assert config.agent.data_dir == tmp_path / "a" / "agent"
    assert write("b").read_text().replace("/b/", "/a/") == path.read_text()  # deterministic

    with_osdp = tomllib.loads(write("c", osdp={"bibliotek": 3}).read_text())
    assert [d["reader"] for d in with_osdp["doors"]] == [
        "pcsc:Virtual PCD 00 00",
        "osdp:3",
        "pcsc:Virtual PCD 00 01",
        "pcsc:Virtual PCD B 00 00",
    ]


def test_a_site_with_more_card_doors_than_virtual_readers_is_a_clear_error(tmp_path: Path) -> None:
    readers = PcscDaemon(root=tmp_path, readers=2, base_port=40000)
    with pytest.raises(SimSiteError, match="more card-reader doors than the 2 virtual readers"):
        sim_agent_config(
            torg(door("a"), door("b"), door("c")),
            data_dir=tmp_path,
            uid_key_file=tmp_path / "key",
            mqtt_host="127.0.0.1",
            mqtt_port=1883,
            pcscd=readers,
        )


def test_each_reader_of_a_pcscd_with_several_devices_reads_only_its_own_cards(
    pcscd: PcscDaemon,  # noqa: F811
) -> None:
    assert pcscd.readers >= 8  # the session's daemon: a torg's doors and its kiosk
    seen: dict[int, list[object]] = {slot: [] for slot in (1, 2, 7)}
    watchers = [
        PcscReader(f"^{pcscd.reader_name(slot)}$", f"r{slot}", seen[slot].append, backoff=Backoff(0.05, 0.5))
        for slot in seen
    ]
    for watcher in watchers:
        watcher.start()
    try:
        for slot in seen:
            with VirtualCard(bytes([slot, 1, 2, 3]), port=pcscd.port(slot)):
                deadline = datetime.now(UTC) + timedelta(seconds=10)
                while not any(isinstance(e, CardPresented) for e in seen[slot]):
                    assert datetime.now(UTC) < deadline, f"reader {slot} did not read its card"
                    clock_time.sleep(0.02)
    finally:
        for watcher in watchers:
            watcher.stop()
    for slot, events in seen.items():
        assert [e for e in events if isinstance(e, CardPresented)] == [
            CardPresented(f"r{slot}", bytes([slot, 1, 2, 3]))
        ]
        assert ReaderStatus(f"r{slot}", True) in events


# --- an evening at Heggedal ---------------------------------------------------------------------------------


@pytest.mark.mqtt
def test_kari_taps_types_her_pin_walks_in_and_the_door_relocks_behind_her(
    site: SimulatedSite, central: Central
) -> None:
    site.tap("hovedinngang", KARI)
    assert site.feedback("hovedinngang") == [Feedback.PIN_NEEDED]
    assert not site.push("hovedinngang")  # the card alone does not open it

    site.keys("hovedinngang", "1234#")
    assert site.relay_energised("hovedinngang")  # fail-secure: energised to unlock
    assert site.door_state("hovedinngang") is m.DoorStateName.UNLOCKED
    assert site.push("hovedinngang")
    assert site.door_state("hovedinngang") is m.DoorStateName.OPEN

    site.advance(4)  # the closer shuts the door, the lock follows
    assert not site.doors["hovedinngang"].is_open
    assert site.door_state("hovedinngang") is m.DoorStateName.LOCKED
    assert not site.relay_energised("hovedinngang")

    site.wait_for(lambda: len(central.events()) == 1, WAIT_S, "central stores Kari's entry")
    site.wait_for(lambda: site.agent.journal.pending_count() == 0, WAIT_S, "central acknowledges it")
    [stored] = central.events()
    assert (stored.door_slug, stored.decision, stored.reason) == ("hovedinngang", "grant", "schedule")
    access = [e for e in site.events() if isinstance(e, m.AccessEvent)]  # acknowledged, still listed
    assert [(e.door, e.decision, e.reason) for e in access] == [
        ("hovedinngang", m.Decision.GRANT, m.Reason.SCHEDULE)
    ]


@pytest.mark.mqtt
def test_a_blocked_card_is_refused_and_a_forced_door_raises_the_alarm(site: SimulatedSite) -> None:
    site.tap("hovedinngang", PER)
    assert site.feedback("hovedinngang") == [Feedback.DENIED]
    [refused] = [e for e in site.events() if isinstance(e, m.AccessEvent)]
    assert refused.decision is m.Decision.DENY

    site.force("bibliotek")
    assert site.door_state("bibliotek") is m.DoorStateName.FORCED_OPEN
    assert "forced_open" in kinds(site, m.AlarmEvent)


@pytest.mark.mqtt
def test_a_door_held_open_alarms_after_its_time_and_clears_once_let_go(site: SimulatedSite) -> None:
    site.tap("moterom-1", VIDAR)
    site.keys("moterom-1", "1234#")
    assert site.push("moterom-1")
    site.hold_open("moterom-1")
    site.advance(10)
    assert site.door_state("moterom-1") is m.DoorStateName.OPEN  # time passes only when told
    site.advance(25)  # held-open time is 30 s
    assert site.door_state("moterom-1") is m.DoorStateName.HELD_OPEN
    site.let_go("moterom-1")
    site.advance(4)
    assert site.door_state("moterom-1") is m.DoorStateName.LOCKED
    held = [e for e in site.events() if isinstance(e, m.AlarmEvent) and e.kind is m.AlarmKind.HELD_OPEN]
    assert [e.raised for e in held] == [True, False]


@pytest.mark.mqtt
def test_the_fire_alarm_releases_every_door_and_they_lock_again_when_it_clears(site: SimulatedSite) -> None:
    site.fire(True)
    assert all(door.is_unlocked for door in site.doors.values())
    assert {site.door_state(slug) for slug in site.doors} == {m.DoorStateName.RELEASED}
    site.fire(False)
    assert not any(door.is_unlocked for door in site.doors.values())
    assert [e.raised for e in site.events() if isinstance(e, m.AlarmEvent)] == [True, False]


@pytest.mark.mqtt
def test_with_the_network_down_ola_still_gets_in_and_central_hears_of_it_when_it_is_back(
    site: SimulatedSite, central: Central
) -> None:
    site.network(False)
    assert not site.running.link.connected
    site.tap("hovedinngang", OLA)
    site.keys("hovedinngang", "1234#")
    assert site.relay_energised("hovedinngang")
    assert site.agent.journal.pending_count() > 0
    site.network(True)
    site.wait_for(lambda: len(central.events()) == 1, WAIT_S, "Ola's entry reaches central after the outage")
    assert site.running.link.connected


@pytest.mark.mqtt
def test_a_restarted_site_still_knows_kari_and_remembers_what_it_saw(site: SimulatedSite) -> None:
    site.tap("hovedinngang", PER)
    site.stop()
    site.start()  # a power cut and back: the replica and the journal are on disk
    site.tap("hovedinngang", KARI)
    assert site.agent.awaiting_pin("hovedinngang")
    site.keys("hovedinngang", "1234#")
    assert site.relay_energised("hovedinngang")
    access = [(e.decision, e.reason) for e in site.events() if isinstance(e, m.AccessEvent)]
    assert access == [
        (m.Decision.DENY, m.Reason.CREDENTIAL_BLOCKED),
        (m.Decision.GRANT, m.Reason.SCHEDULE),
    ]
    assert kinds(site, m.SystemEvent).count("agent-started") == 2


@pytest.mark.mqtt
def test_after_closing_and_the_sweep_the_lights_go_off_and_the_intruder_alarm_arms(
    tmp_path: Path,
    central: Central,
    pcscd: PcscDaemon,  # noqa: F811
) -> None:
    with heggedal(tmp_path, central, pcscd, at=time(20, 58)) as site:
        site.wait_synced(WAIT_S)
        site.advance(30)
        assert site.lights("torg") and not site.intruder_armed()
        site.advance(13 * 60, step=5)  # closes at 21:00, then a 10-minute sweep
        assert not site.lights("torg") and site.intruder_armed()
    assert {"site-closed", "intruder-alarm-armed"} <= set(kinds(site, m.SystemEvent))


# --- `meraapent sim site` -----------------------------------------------------------------------------------


def run_sim_site(
    central: Central, tmp_path: Path, commands: str, api: str = "http://127.0.0.1:9"
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "commands.txt"
    script.write_text(commands)
    evening = open_evening(central.site_config(), datetime.now(UTC))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MERAAPENT_", "PCSCLITE_"))}
    return subprocess.run(
        [
            str(MERAAPENT), "sim", "site", "--site", "heggedal",
            "--mqtt-host", central.broker.host, "--mqtt-port", str(central.broker.port),
            "--data-dir", str(central.settings.data_dir), "--at", evening.isoformat(), "--api", api,
            "--commands", str(script),
        ],
        capture_output=True, text=True, timeout=120, env={**env, "COLUMNS": "120"}, check=False,
    )  # fmt: skip


@pytest.mark.mqtt
def test_sim_site_from_a_command_file_kari_and_noras_phone_get_in_and_central_records_both(
    tmp_path: Path, central: Central, central_api: str
) -> None:
    commands = """
        # Kari comes in with her card and PIN
        tap hovedinngang kari
        pin hovedinngang 1234
        push hovedinngang
        # Nora's phone gets a token from central, her QR code opens the door
        qr hovedinngang nora
        status
        central
        quit
    """
    done = run_sim_site(central, tmp_path, commands, api=central_api)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "reader shows: pin needed" in out
    assert "GRANTED at hovedinngang" in out and "(card_pin, schedule)" in out
    assert "the door swings open" in out
    assert "(phone_qr," in out
    deadline = datetime.now(UTC) + timedelta(seconds=WAIT_S)
    while len(central.events()) < 2:
        assert datetime.now(UTC) < deadline, "central did not store both entries"
        clock_time.sleep(0.05)
    stored = [(e.door_slug, e.decision, e.data.get("method")) for e in central.events()]
    assert stored == [("hovedinngang", "grant", "card_pin"), ("hovedinngang", "grant", "phone_qr")]


@pytest.mark.mqtt
def test_sim_site_stops_at_a_bad_command_with_what_would_work(tmp_path: Path, central: Central) -> None:
    done = run_sim_site(central, tmp_path, "status\ntap hovedingang kari\npush hovedinngang\n")
    assert done.returncode == 1
    assert "no door 'hovedingang' here; doors: bibliotek, hovedinngang, moterom-1" in done.stdout
    assert "stopped at line 2" in done.stdout
    assert "the door" not in done.stdout  # nothing after the bad line ran


# --- bad input ----------------------------------------------------------------------------------------------


def test_no_broker_is_one_clear_line() -> None:
    with pytest.raises(BrokerError, match=r"no MQTT broker at 127\.0\.0\.1:\d+ .*is it running\?"):
        retained_site_config("127.0.0.1", free_port(), "heggedal", timeout=1)


def test_a_bad_time_for_the_simulated_clock_says_what_is_accepted() -> None:
    with pytest.raises(ValueError, match="--at must be 'now', 'open' or an ISO 8601 time"):
        sim_clock("tonight", torg(door("inngang")))
    shifted = sim_clock("2030-06-03T19:00", torg(door("inngang")))
    assert abs(shifted.now() - datetime(2030, 6, 3, 17, 0, tzinfo=UTC)) < timedelta(
        seconds=5
    )  # Oslo summer time


@pytest.mark.mqtt
def test_sim_site_keys_arm_card_registration_and_refuse_what_a_keypad_lacks(
    tmp_path: Path, central: Central
) -> None:
    done = run_sim_site(central, tmp_path, "keys hovedinngang *12345678#\nkeys hovedinngang 12ab\n")
    assert done.returncode == 1
    assert "hovedinngang reader shows: enrol ready" in done.stdout
    assert "a keypad has the digits, * and #" in done.stdout
