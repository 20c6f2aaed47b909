"""The kiosk end to end, as it runs at the torg: `meraapent kiosk` in a terminal (tmux) beside the real agent
on simulated hardware, central and mosquitto. A booking holder holds her card to the kiosk's reader, the
kiosk confirms the check-in, central records it, and the booked room's door opens for her.

The kiosk is its own process, as on the Pi; tmux gives it a terminal, `capture-pane` shows what a person
would read, and the kiosk's --status-file says which screen is up.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from central.models import Booking, BookingStatus, Person
from central.services.bookings import create_booking
from controller.clock import ManualClock
from hw_sim.pcscd import PcscDaemon
from hw_sim.site import SimulatedSite, default_osdp, kiosk_reader_name, open_evening, sim_agent_config
from hw_sim.stack import Stack, running_stack
from protocol import messages as m
from tests.pcsc_fixtures import pcscd  # noqa: F401 (fixture)

KARI_UID = bytes.fromhex("04A1B2C3D4E5F6")  # central/seed.py; her PIN is 1234
MERAAPENT = Path(sys.executable).with_name("meraapent")
WAIT_S = 30.0


@pytest.fixture(scope="module")
def stack(pcscd: PcscDaemon) -> Iterator[Stack]:  # noqa: F811 (the fixture above)
    with running_stack(pcscd) as ready:
        yield ready


def until(predicate: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class Tmux:
    """A private tmux server (its own socket) with one window running a command."""

    def __init__(self, directory: Path) -> None:
        self.socket = directory / "tmux.sock"

    def run(self, command: list[str], env: dict[str, str]) -> None:
        exports = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
        self._tmux("new-session", "-d", "-s", "kiosk", "-x", "100", "-y", "40", *exports, *command)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "kiosk").stdout

    def close(self) -> None:
        self._tmux("kill-server", check=False)

    def _tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        tmux = shutil.which("tmux")
        assert tmux, "tmux is not installed (scripts/bootstrap.sh installs it)"
        return subprocess.run(
            [tmux, "-S", str(self.socket), *args], capture_output=True, text=True, check=check, timeout=10
        )


def kiosk_screen(status_file: Path) -> str:
    try:
        return str(json.loads(status_file.read_text()).get("screen", ""))
    except (OSError, ValueError):
        return ""


def test_a_booking_holder_checks_in_at_the_kiosk_and_the_room_opens_for_her(
    stack: Stack, tmp_path: Path
) -> None:
    with stack.evening("kiosk") as evening:
        config = evening.site_config("heggedal")
        start = open_evening(config, datetime.now(UTC))
        with evening.session() as session:
            kari = session.scalars(select(Person).where(Person.external_ref == "demo:kari-nordmann")).one()
            booking = create_booking(session, "test", {
                "site": "heggedal", "room": "moterom-1", "holder_id": kari.id, "title": "Lesesirkel",
                "starts_at": start + timedelta(minutes=10), "ends_at": start + timedelta(minutes=70),
            })  # fmt: skip
            booking_id = booking.id
        evening.poke()
        osdp = default_osdp(config)
        path = sim_agent_config(
            config, data_dir=evening.directory / "agent", uid_key_file=stack.uid_key_file,
            mqtt_host=evening.broker.host, mqtt_port=evening.broker.port, pcscd=stack.pcscd, osdp=osdp,
            kiosk=True,
        )  # fmt: skip
        tmux = Tmux(tmp_path)
        with SimulatedSite(path, clock=ManualClock(start), pcscd=stack.pcscd) as sim:
            sim.wait_synced(WAIT_S)
            until(lambda: sim.agent.replica.booking(f"b{booking_id}") is not None, "the booking at the site")
            status = tmp_path / "kiosk-status.json"
            reader = kiosk_reader_name(config, stack.pcscd, osdp)
            command = [str(MERAAPENT), "kiosk", "--site", "heggedal", "--socket", str(sim.kiosk_socket)]
            command += ["--reader", f"^{reader}$", "--status-file", str(status), "--idle-seconds", "120"]
            env = {key: value for key, value in os.environ.items() if key.startswith("PCSCLITE")}
            try:
                tmux.run(command, env={**env, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "40"})
                until(lambda: kiosk_screen(status) == "home", "the kiosk's home screen")
                until(lambda: "Heggedal" in tmux.screen(), "the site's name on the kiosk")

                sim.kiosk_reader.present(KARI_UID)
                until(lambda: kiosk_screen(status) == "confirmation", "the kiosk to confirm the check-in")
                sim.kiosk_reader.remove()
                until(lambda: "Du er sjekket inn" in tmux.screen(), "the confirmation on the screen")
                screen = tmux.screen()
                assert "Møterom 1" in screen
            finally:
                print(tmux.screen())  # what the kiosk showed, for a failing run's log
                tmux.close()

            def checked_in() -> bool:
                with evening.session() as session:
                    return session.get_one(Booking, booking_id).status is BookingStatus.CHECKED_IN

            until(checked_in, "central to record the check-in")

            sim.tap("moterom-1", KARI_UID)
            sim.keys("moterom-1", "1234#")
            grants = [
                e for e in sim.events()
                if isinstance(e, m.AccessEvent) and e.door == "moterom-1" and e.decision is m.Decision.GRANT
            ]  # fmt: skip
            assert [(e.person_ref, e.reason) for e in grants] == [(f"p{kari.id}", m.Reason.BOOKING)]
