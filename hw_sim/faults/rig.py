"""One site and central, each in a process of its own, with brokers, a WAN and a disk that can fail.

`Golden` is what every rig of a run shares (central's migrated, seeded database as a golden copy, its
secrets, and one pcscd for the virtual cards). A `Rig` copies the database and starts, for Heggedal:
- no WAN (`wan=""`): one mosquitto, central's gateway and the agent both connected to it (as `make demo`);
- `wan="bridged"`: central's mosquitto and gateway on central's side of a WAN (hw_sim.faults.wan), the
  site's own mosquitto bridged to it (MQTT 5, persistent sessions), the agent connected to the site's one;
- `wan="direct"`: the same WAN, but no site broker: the agent connects to central's broker across it.
The agent runs on latched relay pins (hw_sim.faults.latch) with a manual clock the rig keeps moving forward
across restarts. People are the seed's: Kari, Amina and Emil are residents with card + PIN; Ola is revoked
by `revoke_before_fault`.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from central.db import make_engine, session_factory, session_scope
from central.models import Agent, Alarm, Credential, CredentialKind, Person, Site
from central.replica import credential_ref
from central.seed import PEOPLE
from central.services import credentials as credential_service
from controller.config import AgentConfig, load_config
from controller.door import relay_energised
from controller.schedule import SiteCalendar
from hw_sim.broker import MosquittoBroker
from hw_sim.faults.brokers import FaultBroker, bridge_section
from hw_sim.faults.disk import SmallDisk
from hw_sim.faults.latch import PinLatch
from hw_sim.faults.ledger import Delivery, Ledger
from hw_sim.faults.rpc import Child
from hw_sim.faults.wan import Wan, make_wan
from hw_sim.pcscd import PcscDaemon, running_pcscd
from hw_sim.site import open_evening, sim_agent_config
from hw_sim.stack import Stack
from protocol import messages as m

SITE = "heggedal"
ENTRANCE = "hovedinngang"
PCSCD_READERS = 4  # Heggedal's three doors, one reader each
ACTOR = "fault-harness"
SYNC_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 120.0
JOURNAL_MIN_MB = 16  # site.toml's smallest journal_max_mb
RESTART_GAP = timedelta(seconds=30)  # the agent's clock after a restart: later than anything it stamped
UIDS = {spec.ref.split("-")[0]: spec.card_uid for spec in PEOPLE if spec.card_uid}


class RigError(RuntimeError):
    """A part of the rig did not come up or did not do what a healthy system does."""


@dataclass
class Golden:
    stack: Stack
    pcscd: PcscDaemon


@contextlib.contextmanager
def golden() -> Iterator[Golden]:
    """Central's golden database and secrets, and the pcscd every rig's virtual cards use."""
    root = Path(tempfile.mkdtemp(prefix="meraapent-faults-"))
    try:
        with running_pcscd(export_socket=False, readers=PCSCD_READERS) as pcscd:
            stack = Stack(root, pcscd)
            stack.prepare()
            yield Golden(stack, pcscd)
    finally:
        shutil.rmtree(root, ignore_errors=True)


class Rig:
    """See the module docstring. Use as a context manager; everything it started is stopped on exit."""

    def __init__(
        self,
        base: Golden,
        name: str,
        *,
        wan: str = "",
        disk_mib: int | None = None,
        start_at: datetime | None = None,
    ) -> None:
        self.base = base
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=base.stack.root))
        if wan not in ("", "bridged", "direct"):
            raise ValueError(f"wan must be '', 'bridged' or 'direct', not {wan!r}")
        self.wan_kind = wan
        self.ledger = Ledger()
        self.site_config = base.stack.site_config(SITE)
        self.calendar = SiteCalendar.from_config(self.site_config)
        self.wall = start_at or open_evening(self.site_config, datetime.now(UTC))
        self.engine: Engine = make_engine(f"sqlite:///{self.dir / 'central.db'}")
        self.wan: Wan | None = None
        self.central_broker: FaultBroker | MosquittoBroker | None = None
        self.site_broker: FaultBroker | MosquittoBroker | None = None
        self.disk = SmallDisk(self.dir / "site" / "agent", disk_mib) if disk_mib else None
        self.central = Child("central", [], log_path=self.dir / "central.log")
        self.agent = Child("agent", [], log_path=self.dir / "agent.log", on_event=self.ledger.record)
        self.config: AgentConfig | None = None
        self.unlocked_after_kill_s: list[float] = []

    # --- lifecycle ---------------------------------------------------------------------------------------

    def __enter__(self) -> Rig:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        copy_database(self.base.stack.golden_db, self.dir / "central.db")
        host, port = self._brokers()
        # Central first: on a broker that never saw central's session, the agent's first snapshot request
        # would reach nobody (it asks again only on its next connect).
        self.start_central()
        config_path = sim_agent_config(
            self.site_config,
            data_dir=self.dir / "site",
            uid_key_file=self.base.stack.uid_key_file,
            mqtt_host=host,
            mqtt_port=port,
            pcscd=self.base.pcscd,
        )
        if self.disk is not None:
            self.disk.mount()
            if not self.disk.mounted:  # the journal's bound is what fills: make it the smallest allowed
                text = config_path.read_text().replace(
                    "[agent]\n", f"[agent]\njournal_max_mb = {JOURNAL_MIN_MB}\n", 1
                )
                config_path.write_text(text)
        self.config = load_config(config_path)
        relays = [str(door.relay) for door in self.config.doors]
        fire = [str(self.config.site.fire)] if self.config.site.fire is not None else []
        self.latch = PinLatch(self.dir / "relays.latch", relays, external=fire)
        self.start_agent()
        self.agent.call("wait_synced", wait=SYNC_TIMEOUT_S + 5, timeout=SYNC_TIMEOUT_S)

    def _brokers(self) -> tuple[str, int]:
        """Start the brokers; returns where the agent connects."""
        if not self.wan_kind:
            broker = MosquittoBroker(data_dir=self.dir / "mqtt")
            broker.start()
            self.central_broker = self.site_broker = broker
            return broker.host, broker.port
        self.wan = wan = make_wan()
        central = FaultBroker(self.dir / "mqtt-central", listen=wan.central_listen, prefix=wan.central_prefix)
        host, port = wan.central_address(central.port)
        central.probe_host = host
        central.start()
        self.central_broker = self.site_broker = central
        if self.wan_kind == "direct":
            return host, port
        site = FaultBroker(self.dir / "mqtt-site", extra=bridge_section(SITE, host, port))
        site.start()
        self.site_broker = site
        return site.probe_host, site.port

    def close(self) -> None:
        for step in (
            self.agent.stop,
            self.central.stop,
            self._stop_brokers,
            lambda: self.wan.close() if self.wan else None,
            lambda: self.disk.close() if self.disk else None,
            self.engine.dispose,
        ):
            with contextlib.suppress(Exception):
                step()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _stop_brokers(self) -> None:
        for broker in {id(b): b for b in (self.site_broker, self.central_broker) if b is not None}.values():
            broker.stop()

    # --- central -----------------------------------------------------------------------------------------

    def start_central(self) -> None:
        prefix = list(self.wan.central_prefix) if self.wan else []
        broker = self.central_broker
        if broker is None:
            raise RigError("central's broker is not started")
        self.central.argv = [
            *prefix,
            sys.executable,
            "-m",
            "hw_sim.faults.central_proc",
            "--data-dir",
            str(self.base.stack.central_dir),
            "--db-url",
            f"sqlite:///{self.dir / 'central.db'}",
            "--mqtt-host",
            "127.0.0.1",
            "--mqtt-port",
            str(broker.port),
        ]
        ready = self.central.start()
        if not ready.get("connected"):
            raise RigError(f"central's gateway did not connect to its broker\n{self.central.log_tail()}")

    def kill_central(self) -> None:
        self.central.kill9()

    # --- the agent ---------------------------------------------------------------------------------------

    @property
    def agent_config(self) -> AgentConfig:
        if self.config is None:
            raise RigError("the rig is not started")
        return self.config

    def start_agent(self) -> None:
        """Start the agent process with its clock a little after anything it stamped before."""
        if self.ledger.latest is not None:
            self.wall = max(self.wall, self.ledger.latest) + RESTART_GAP
        pcscd = self.base.pcscd
        self.agent.argv = [
            sys.executable, "-m", "hw_sim.faults.agent_proc",
            "--config", str(self.dir / "site" / "site.toml"),
            "--latch", str(self.latch.path),
            "--wall", self.wall.isoformat(),
            "--entrance", ENTRANCE,
            "--pcscd-root", str(pcscd.root),
            "--pcscd-port", str(pcscd.base_port),
            "--pcscd-readers", str(pcscd.readers),
        ]  # fmt: skip
        self.agent.env.update(pcscd.client_env())
        self.agent.start()

    @property
    def journal_max_mb(self) -> int:
        return self.agent_config.agent.journal_max_mb

    def kill_agent(self) -> list[str]:
        """kill -9 the agent; returns the doors its relays left unlocked (as a Pi's pins would stay)."""
        self.agent.kill9()
        self.wall = max(self.wall, self.ledger.latest or self.wall)
        return self.unlocked_by_wire()

    def restart_agent_after_kill(self, *, measure: bool = True) -> list[str]:
        """Start the agent again and (with `measure`) time how long the doors left unlocked stayed so;
        returns the doors still unlocked once it is ready (fail secure at boot means: none)."""
        left = self.unlocked_by_wire()
        done = threading.Event()
        if left and measure:
            started = time.monotonic()

            def watch() -> None:
                while not done.is_set() and self.unlocked_by_wire():
                    time.sleep(0.002)
                self.unlocked_after_kill_s.append(time.monotonic() - started)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
        try:
            self.start_agent()
        finally:
            done.set()
        return self.unlocked_by_wire()

    def doors(self) -> list[str]:
        return [door.slug for door in self.agent_config.doors]

    def unlocked_by_wire(self) -> list[str]:
        """Doors whose relay pin is at its unlocked level right now, read from the wires (the latch)."""
        unlocked = []
        for door in self.agent_config.doors:
            level = self.latch.level(str(door.relay))
            energised = level is not None and level == door.relay_active_high
            if energised == relay_energised(door.lock_type, True):
                unlocked.append(door.slug)
        return unlocked

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.agent.call("status")
        return result

    def doors_unlocked(self) -> list[str]:
        """Doors the agent's hardware holds unlocked right now (call when no grant should be active)."""
        return [slug for slug, door in self.status()["doors"].items() if door["unlocked"]]

    # --- people ------------------------------------------------------------------------------------------

    def enter(self, person: str) -> dict[str, Any]:
        result: dict[str, Any] = self.agent.call("enter", uid=UIDS[person], pin="1234")
        return result

    def gets_in(self, person: str) -> bool:
        """The resident taps, types the PIN and walks in; the door locks again behind them."""
        r = self.enter(person)
        return bool(r["unlocked"] and r["opened"] and r["relocked"])

    def kept_out(self, person: str) -> bool:
        """The person taps their card: the door stays locked, no PIN is even asked for."""
        r: dict[str, Any] = self.agent.call("tap", uid=UIDS[person])
        return not r["unlocked"] and not r["asked_pin"]

    def revoke_before_fault(self, person: str) -> None:
        """Revoke `person`'s cards in central and wait until the agent's replica no longer has them."""
        with session_scope(session_factory(self.engine)) as session:
            person_id = session.scalars(
                select(Person.id).where(Person.external_ref == f"demo:{_seed_ref(person)}")
            ).one()
            cards = session.scalars(
                select(Credential.id).where(
                    Credential.person_id == person_id, Credential.kind == CredentialKind.CARD
                )
            ).all()
            for credential_id in cards:
                credential_service.revoke(session, ACTOR, credential_id)
        self.central.call("poke")
        for ref in [credential_ref(credential_id) for credential_id in cards]:
            self._until(
                lambda ref=ref: not self.agent.call("has_credential", ref=ref),
                SYNC_TIMEOUT_S,
                f"the revocation of {person}'s card reaches the agent",
            )

    # --- outcomes ----------------------------------------------------------------------------------------

    def drained(self, timeout: float = DRAIN_TIMEOUT_S) -> bool:
        """Whether central acknowledged everything the agent journaled within `timeout` seconds."""
        return bool(self.agent.call("wait_drained", wait=timeout + 10, timeout=timeout))

    def delivery(self) -> Delivery:
        next_seq = int(self.status()["next_seq"])
        return self.ledger.check(self.engine, self.agent_config.agent.name, next_seq)

    def alarms(self, kind: m.AlarmKind) -> int:
        """How many alarms of `kind` central holds for the site."""
        with Session(self.engine) as session:
            return len(session.scalars(select(Alarm.id).where(Alarm.kind == kind.value)).all())

    def agent_online(self) -> bool | None:
        """Whether central believes the site's agent is online (its retained status, or its Last Will)."""
        with Session(self.engine) as session:
            online = session.scalars(select(Agent.online).join(Site).where(Site.slug == SITE)).first()
        return online

    def open_at(self, at: datetime) -> bool:
        return self.calendar.is_open(at)

    @staticmethod
    def _until(predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise RigError(f"{what}: not within {timeout:g} s")
            time.sleep(0.1)


def copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite file (the golden one may still have its WAL beside it)."""
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


def _seed_ref(person: str) -> str:
    return next(spec.ref for spec in PEOPLE if spec.ref.split("-")[0] == person)
