"""Real infrastructure for tests: a throwaway PostgreSQL cluster and mosquitto brokers on loopback.

The broker itself is hw_sim.broker.MosquittoBroker (the simulator starts one too), re-exported here.

Tests run against the same servers as production instead of fakes, because the pitfalls that matter (retained
state across restarts, persistent sessions, PostgreSQL's stricter types) only show on the real thing.
Everything lives in a temporary directory, listens on 127.0.0.1 on a free port and is removed afterwards.
Missing binaries fail loudly: `scripts/bootstrap.sh` installs them, so a skip would hide a broken setup.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

# The broker lives in hw_sim (the simulator and the benchmarks start one too); re-exported for the tests.
from hw_sim.broker import (
    BOOTSTRAP_HINT,
    LOOPBACK,
    MOSQUITTO_TEMPLATE,
    REPO_ROOT,
    MosquittoBroker,
    find_mosquitto,
    free_port,
    mosquitto_config,
    port_accepts,
    running_mosquitto,
)
from hw_sim.broker import tail as _tail

__all__ = [
    "LOOPBACK",
    "MOSQUITTO_TEMPLATE",
    "REPO_ROOT",
    "ConfiguredMosquittoBroker",
    "MosquittoBroker",
    "PostgresCluster",
    "find_binary",
    "free_port",
    "libpq_url",
    "mosquitto_config",
    "port_accepts",
    "running_mosquitto",
    "running_postgres_cluster",
    "unique_db_name",
]


@dataclass
class ConfiguredMosquittoBroker(MosquittoBroker):
    """A broker with a configuration of the test's own (e.g. TLS, passwords and ACLs) instead of the demo one;
    `config` must name `self.port` in its listener and may use `self.data_dir` for persistence and log."""

    config: str = ""

    def start(self) -> None:
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config)
        with self.stderr_path.open("ab") as stderr:
            self._process = subprocess.Popen(
                [str(find_mosquitto()), "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        self._wait_until_ready()

    def reload(self) -> None:
        """SIGHUP, as `systemctl reload mosquitto`: password and ACL files (and TLS key) are read again."""
        assert self._process is not None, "the broker is not running"
        self._process.send_signal(signal.SIGHUP)


def find_binary(name: str) -> Path:
    """The binary from PATH or from /usr/sbin, where Debian puts mosquitto (not on a normal user's PATH)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        pytest.fail(f"`{name}` not found; {BOOTSTRAP_HINT}", pytrace=False)
    return Path(found)


# --------------------------------------------------------------------------------------------- PostgreSQL


def postgres_bin_dir() -> Path:
    """Debian's newest PostgreSQL server binaries (initdb, pg_ctl are not on PATH there)."""
    candidates = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not candidates:
        pytest.fail(f"PostgreSQL server binaries not found under /usr/lib/postgresql; {BOOTSTRAP_HINT}")
    return candidates[-1]


@dataclass
class PostgresCluster:
    """One throwaway cluster: trust auth on loopback, fsync off (data is thrown away anyway)."""

    root: Path
    port: int
    bin_dir: Path = field(default_factory=postgres_bin_dir)
    superuser: str = "postgres"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def _run(self, *args: str) -> None:
        """Run a server binary, as user postgres when we are root (initdb and postgres refuse root)."""
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, cwd=self.root, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.fail(
                f"{args[0]} failed (exit {done.returncode}): {done.stderr.strip() or done.stdout.strip()}\n"
                f"server log:\n{_tail(self.log_path)}",
                pytrace=False,
            )

    def start(self) -> None:
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail(f"running as root but there is no `postgres` user; {BOOTSTRAP_HINT}")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", self.superuser, "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
        )  # fmt: skip
        options = (
            f"-p {self.port} -c listen_addresses={LOOPBACK} -c unix_socket_directories={self.root}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path), "-o", options, "-w", "start")

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL (psycopg 3 driver) for one database of this cluster."""
        return f"postgresql+psycopg://{self.superuser}@{LOOPBACK}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        with psycopg.connect(libpq_url(self.url()), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # name comes from unique_db_name(), not from input
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(libpq_url(self.url()), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def libpq_url(sqlalchemy_url: str) -> str:
    """The same URL for psycopg itself, which does not know SQLAlchemy's `+driver` suffix."""
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


def unique_db_name() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


@contextlib.contextmanager
def running_postgres_cluster() -> Iterator[PostgresCluster]:
    """Start a cluster in a temporary directory; stop it and delete everything afterwards."""
    # As root the server runs as `postgres`, which must reach the directory: /tmp, not a private TMPDIR.
    # /tmp also keeps the unix socket path under its 107-byte limit.
    root = Path(tempfile.mkdtemp(prefix="meraapent-pg-", dir="/tmp" if os.geteuid() == 0 else None))
    cluster = PostgresCluster(root=root, port=free_port())
    try:
        cluster.start()
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)
