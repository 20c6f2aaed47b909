"""The agent with an OSDP reader: the runtime builds the reader from site.toml, a card at the simulated reader
opens the door, and the reader shows green. No broker: the MQTT link just keeps trying in the background."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from controller.agent import Received
from controller.clock import SystemClock
from controller.config import load_config
from controller.inputs import Feedback
from controller.runtime import start
from controller.uid import card_uid_hash
from firmware_bridge.channel import SimBus
from hw_sim.osdp_reader import Led, SimOsdpReader
from protocol import messages as m

UID_KEY = bytes(range(32))
CARETAKER_UID = bytes.fromhex("04ffeeddccbbaa")
READER_KEY = bytes.fromhex("3f9c1e0b7a2d48c6915e0f7b2a6d4c81")
RELAY, CONTACT, EXIT = "GPIO17", "GPIO27", "GPIO22"


def eventually(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.01)


def closed_port() -> int:
    """A local TCP port nobody listens on: the agent's broker is simply not there."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_site(root: Path, bus: str) -> Path:
    (root / "uid.key").write_text(UID_KEY.hex())
    (root / "osdp.keys").write_text(f"# the entrance reader\n5 {READER_KEY.hex()}\n")
    path = root / "site.toml"
    path.write_text(
        f"""
[agent]
site = "bench"
name = "bench-pi"
data_dir = "agent"
uid_hash_key_file = "uid.key"

[mqtt]
host = "127.0.0.1"
port = {closed_port()}

[osdp]
bus = "sim:{bus}"
key_file = "osdp.keys"

[[doors]]
slug = "inngang"
relay = "{RELAY}"
lock_type = "fail_secure"
contact = "{CONTACT}"
exit_button = "{EXIT}"
reader = "osdp:5"
"""
    )
    return path


def site_config() -> m.SiteConfig:
    return m.SiteConfig(
        site="bench",
        name="Bench torg",
        revision=1,
        issued_at=datetime.now(UTC),
        zones=[m.Zone(slug="torg", name="Torget")],
        doors=[m.Door(slug="inngang", name="Inngang", zone="torg", kind=m.DoorKind.ENTRANCE)],
        groups=[m.AccessGroup(slug="vaktmestere", zones=["torg"], any_time=True)],
    )


def snapshot() -> m.ReplicaSnapshot:
    caretaker = m.Credential(
        ref="c1",
        person="p-vidar",
        person_kind=m.PersonKind.CARETAKER,
        kind=m.CredentialKind.CARD,
        groups=["vaktmestere"],
        uid_hash=card_uid_hash(CARETAKER_UID, UID_KEY),
    )
    return m.ReplicaSnapshot(site="bench", seq=1, generated_at=datetime.now(UTC), credentials=[caretaker])


def test_a_caretaker_card_at_the_osdp_reader_opens_the_door_and_the_reader_shows_green(
    tmp_path: Path,
) -> None:
    bus = f"agent-{uuid.uuid4().hex[:8]}"
    config = load_config(write_site(tmp_path, bus))
    reader = SimOsdpReader(bus, 5, scbk=READER_KEY)
    factory = MockFactory()
    running = start(config, clock=SystemClock(), factory=factory)
    stop = threading.Event()
    loop = threading.Thread(target=running.agent.run, args=(stop,), daemon=True)
    loop.start()
    try:
        agent = running.agent
        agent.submit(Received(site_config()))
        agent.submit(Received(snapshot()))
        eventually(lambda: agent.view is not None and agent.replica.count() == 1, "the agent has its data")
        eventually(lambda: reader.online, "the reader in service over its secure channel")
        assert factory.pin(RELAY).state == 0
        reader.present_card(CARETAKER_UID)
        eventually(lambda: factory.pin(RELAY).state == 1, "the relay energises")
        assert reader.wait_for_led(Led("green", temporary=True, seconds=3.0))
        eventually(lambda: [b.count for b in reader.beeps] == [1], "one short beep")
        running.hardware.doors["inngang"].feedback(Feedback.ALARM)  # what the agent shows in an alarm
        assert reader.wait_for_led(Led("red", flashing=True))
    finally:
        stop.set()
        loop.join(5)
        running.close()
        reader.close()
        factory.close()
        SimBus.forget(bus)
    assert not loop.is_alive()
