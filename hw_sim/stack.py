"""Everything a scenario runs on: a private pcscd, central (database, secrets, token key, MQTT gateway) and a
private mosquitto, started here so `meraapent sim run` needs nothing running beforehand.

Two lifetimes, so a library of scenarios shares what is slow to make and nothing that could leak from one
evening into the next:
- `Stack` (one per run or test module): pcscd, central's data directory (UID hash key, token signing key) and
  a migrated, seeded SQLite database kept as the golden copy.
- `Evening` (one per scenario): a fresh mosquitto, a copy of the golden database and central's gateway on
  them. Retained messages, persistent sessions, revoked cards and recorded events all die with it.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from central.config import Settings
from central.db import make_engine, migrate, session_factory, session_scope
from central.gateway import Gateway
from central.keystore import generate_key, list_keys
from central.seed import run_seed
from central.services.site_config import build_site_config
from hw_sim.broker import MosquittoBroker
from hw_sim.pcscd import PcscDaemon, running_pcscd
from protocol import messages as m

GATEWAY_CLIENT_ID = "central-sim"
CONNECT_TIMEOUT_S = 15.0


class StackError(RuntimeError):
    """A part of the stack did not come up; the message says which and why."""


@dataclass
class Stack:
    """The shared part: call `prepare()` once, then open one `evening()` per scenario."""

    root: Path
    pcscd: PcscDaemon

    @property
    def central_dir(self) -> Path:
        return self.root / "central"

    @property
    def golden_db(self) -> Path:
        return self.root / "golden.db"

    @property
    def uid_key_file(self) -> Path:
        return self.central_dir / "secrets" / "uid-hash.key"

    def prepare(self) -> None:
        """Migrate and seed the golden database and make the token signing key (once)."""
        if self.golden_db.exists():
            return
        settings = Settings(data_dir=self.central_dir, db_url=f"sqlite:///{self.golden_db}")
        migrate(settings.db_url)
        run_seed(settings)
        if not list_keys(self.central_dir):
            generate_key(self.central_dir)

    def site_config(self, site: str) -> m.SiteConfig:
        """A site's configuration as the golden database has it (UnknownSiteError if there is none)."""
        self.prepare()
        engine = make_engine(f"sqlite:///{self.golden_db}")
        try:
            with session_scope(session_factory(engine)) as session:
                return build_site_config(session, site, datetime.now(UTC))
        finally:
            engine.dispose()

    @contextlib.contextmanager
    def evening(self, name: str = "evening") -> Iterator[Evening]:
        """A fresh broker and database copy with central's gateway running on them."""
        self.prepare()
        directory = Path(tempfile.mkdtemp(prefix=f"{_safe(name)}-", dir=self.root))
        broker = MosquittoBroker(data_dir=directory / "mosquitto")
        db_path = directory / "central.db"
        _copy_sqlite(self.golden_db, db_path)
        broker.start()
        settings = Settings(
            data_dir=self.central_dir,
            db_url=f"sqlite:///{db_path}",
            mqtt_host=broker.host,
            mqtt_port=broker.port,
        )
        engine = make_engine(settings.db_url)
        evening = Evening(directory, settings, engine, broker)
        try:
            evening.central_up()
            yield evening
        finally:
            evening.close()
            shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def running_stack(pcscd: PcscDaemon | None = None) -> Iterator[Stack]:
    """A prepared stack in a temporary directory; starts its own pcscd unless one is given (only one pcscd
    can serve a process: libpcsclite reads its socket path once)."""
    root = Path(tempfile.mkdtemp(prefix="meraapent-sim-"))
    try:
        with contextlib.ExitStack() as stack:
            daemon = pcscd or stack.enter_context(running_pcscd(export_socket=True))
            if not daemon.running:
                daemon.start()
            ready = Stack(root, daemon)
            ready.prepare()
            yield ready
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Evening:
    """One scenario's central and broker. `central_down()`/`central_up()` stop and start the gateway (the
    database stays readable, as it would for a caretaker while the service is down)."""

    directory: Path
    settings: Settings
    engine: Engine
    broker: MosquittoBroker
    gateway: Gateway | None = field(default=None, init=False)

    @property
    def central_running(self) -> bool:
        return self.gateway is not None

    def central_up(self) -> None:
        if self.gateway is not None:
            return
        gateway = Gateway(self.settings, self.engine, client_id=GATEWAY_CLIENT_ID, poll_s=0.05, refresh_s=0.5)
        gateway.start()
        self.gateway = gateway
        if not gateway.link.wait_connected(CONNECT_TIMEOUT_S):
            raise StackError(f"central's gateway did not connect to the broker on port {self.broker.port}")

    def central_down(self) -> None:
        gateway, self.gateway = self.gateway, None
        if gateway is not None:
            gateway.stop()

    def poke(self) -> None:
        """Have central publish its changes now rather than at its next poll."""
        if self.gateway is not None:
            self.gateway.poke()

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction on central's database, committed at the end."""
        with session_scope(session_factory(self.engine)) as session:
            yield session

    def site_config(self, site: str) -> m.SiteConfig:
        with self.session() as session:
            return build_site_config(session, site, datetime.now(UTC))

    def close(self) -> None:
        try:
            self.central_down()
        finally:
            self.engine.dispose()
            self.broker.stop()


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy with SQLite's backup API (the golden file may still have a WAL beside it)."""
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower())[:40] or "evening"
