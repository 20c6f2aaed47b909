"""Real infrastructure for tests: a throwaway PostgreSQL cluster and mosquitto brokers on loopback.

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
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
MOSQUITTO_TEMPLATE = REPO_ROOT / "deploy" / "mosquitto" / "demo.conf"
LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 15.0
BOOTSTRAP_HINT = "run `bash scripts/bootstrap.sh` (or `make test`) to install it"


def free_port() -> int:
    """A TCP port on loopback that nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log written)"


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


# ---------------------------------------------------------------------------------------------- mosquitto


def mosquitto_config(port: int, data_dir: Path) -> str:
    """The demo configuration (deploy/mosquitto/demo.conf) filled in for one broker."""
    return (
        MOSQUITTO_TEMPLATE.read_text()
        .replace("@PORT@", str(port))
        .replace("@DATA_DIR@", str(data_dir))
        .replace("@USER@", pwd.getpwuid(os.geteuid()).pw_name)
    )


@dataclass
class MosquittoBroker:
    """A real mosquitto on loopback. stop()/start() keep the port and the persistence directory, so
    retained messages and persistent sessions survive a restart as they do in production."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    host: str = LOOPBACK
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def config_path(self) -> Path:
        return self.data_dir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "mosquitto.log"

    @property
    def stderr_path(self) -> Path:
        return self.data_dir / "mosquitto.stderr"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the broker and return once it accepts connections."""
        if self.running:
            return
        binary = find_binary("mosquitto")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(mosquitto_config(self.port, self.data_dir))
        # stderr gets what mosquitto says before its log file is open (bad config, port taken).
        with self.stderr_path.open("ab") as stderr:
            self._process = subprocess.Popen(
                [str(binary), "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not port_accepts(self.host, self.port):
            if self._process.poll() is not None:
                self._process = None
                pytest.fail(
                    f"mosquitto on port {self.port} exited at start:\n{_tail(self.stderr_path)}\n"
                    f"{_tail(self.log_path)}",
                    pytrace=False,
                )
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"mosquitto did not accept connections on port {self.port} in time")
            time.sleep(0.02)

    def stop(self) -> None:
        """A clean shutdown (SIGTERM): the broker saves its persistence database first."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """A crash (SIGKILL): whatever was not yet autosaved is lost, clients see a dropped connection."""
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _end(self, sig: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def running_mosquitto() -> Iterator[MosquittoBroker]:
    """A running broker in its own temporary directory, stopped and deleted afterwards."""
    root = Path(tempfile.mkdtemp(prefix="meraapent-mqtt-"))
    broker = MosquittoBroker(data_dir=root)
    try:
        broker.start()
        yield broker
    finally:
        try:
            broker.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)
