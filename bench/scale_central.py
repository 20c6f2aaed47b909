"""The scale bench's surroundings: central as `meraapent central serve` runs it (its own process), a staff
token, months of history in the database, what the load generator aims at, and processes' memory.

Memory is read from /proc (psutil is not installed): VmHWM is the kernel's peak resident set of a process
over its whole life, so a process that lives through the run needs no sampling; PostgreSQL is a postmaster
and one process per connection, whose private memory (RssAnon) is summed and sampled.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session

from bench.scale_load import Targets
from central.models import (
    Alarm,
    AlarmSeverity,
    ApiRole,
    Credential,
    Decision,
    Event,
    EventKind,
    Person,
    PersonKind,
    Site,
)
from central.services import api_users
from hw_sim.broker import LOOPBACK, free_port
from hw_sim.fleet.plan import ENTRANCE, SITE_PREFIX

READY_TIMEOUT_S = 90.0
HISTORY_DAYS = 28  # inside the default 30-day event retention, so the sweep at start leaves it alone
INSERT_BATCH = 10_000
TARGET_SITES = 200
TARGET_CARDS = 500

# --- central in its own process -----------------------------------------------------------------------------


@dataclass
class CentralServer:
    """`meraapent central serve` (API, gateway and background jobs in one process) on a free port;
    `--no-gateway` without `gateway` (one more API process behind the same load balancer)."""

    url: str
    data_dir: Path
    broker: tuple[str, int]
    log_path: Path
    gateway: bool = True
    port: int = field(default_factory=free_port)
    restarts: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The process id; 0 while it is not running (between a stop and a start)."""
        return self.process.pid if self.process is not None else 0

    def start(self) -> None:
        """Start the process and return once /health says it is up."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MERAAPENT_")}
        env |= {"MERAAPENT_MQTT_HOST": self.broker[0], "MERAAPENT_MQTT_PORT": str(self.broker[1])}
        cmd = [
            *meraapent_command(), "central", "serve", "--host", LOOPBACK, "--port", str(self.port),
            "--db", self.url, "--data-dir", str(self.data_dir), *([] if self.gateway else ["--no-gateway"]),
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        self._wait_healthy()

    def stop(self) -> None:
        """SIGTERM (uvicorn's graceful shutdown), SIGKILL if it does not end within 30 s (it does not
        when requests are stuck)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.restarts += 1
        self.start()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"central serve exited; see {self.log_path}")
            if self.health(timeout=2.0):
                return
            time.sleep(0.2)
        raise RuntimeError(f"central serve not healthy within {READY_TIMEOUT_S:g} s; see {self.log_path}")

    def health(self, timeout: float) -> bool:
        """Whether /health says ok within `timeout` seconds (it reads the database and the gateway)."""
        try:
            url = f"http://{LOOPBACK}:{self.port}/health"
            with urllib.request.urlopen(url, timeout=timeout) as answer:
                return bool(json.loads(answer.read()).get("status") == "ok")
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def wait_answering(self, timeout: float, within: float = 1.0) -> float | None:
        """Seconds until /health is ok within `within` seconds again (after an overload); None if it is
        not within `timeout`."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.health(within):
                return time.monotonic() - started
            time.sleep(0.5)
        return None

    def call(self, method: str, path: str, token: str, timeout: float = 30.0) -> dict[str, Any]:
        """One API call (for the changes the bench times); raises on anything but 2xx."""
        request = urllib.request.Request(
            f"http://{LOOPBACK}:{self.port}{path}",
            method=method,
            headers={"Authorization": f"Bearer {token}", "Content-Length": "0"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            body: dict[str, Any] = json.loads(answer.read() or b"{}")
            return body


def meraapent_command() -> list[str]:
    """The `meraapent` console script beside this interpreter (the venv's), as an operator runs it."""
    script = Path(sys.executable).with_name("meraapent")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from meraapent.cli import main; main()"]


@contextlib.contextmanager
def central_server(
    url: str, data_dir: Path, broker: tuple[str, int], log_path: Path, *, gateway: bool = True
) -> Iterator[CentralServer]:
    """A started CentralServer, stopped afterwards whatever happens."""
    server = CentralServer(url, data_dir, broker, log_path, gateway)
    try:
        server.start()
        yield server
    finally:
        server.stop()


# --- what the database holds before the run -----------------------------------------------------------------


def staff_token(session: Session, username: str = "vaktmester-scale") -> str:
    """A caretaker's API token (the role the console's people use), made in the caller's transaction."""
    _user, token = api_users.create_user(session, "scale-bench", username, ApiRole.CARETAKER)
    return token


def seed_history(engine: Engine, events: int, alarms_per_site: int, now: datetime, seed: int = 7) -> int:
    """Past access events and alarms spread over the fleet's sites and the last four weeks, so the API
    pages and counts over a database that has been in use; returns the highest event id (a watermark:
    what the run ingests comes after it)."""
    rng = random.Random(seed)  # made-up history: simulation, not security
    with Session(engine) as session, session.begin():
        sites = list(session.execute(select(Site.id, Site.slug).where(Site.slug.like(f"{SITE_PREFIX}-%"))))
        for start in range(0, events, INSERT_BATCH):
            numbers = range(start, min(events, start + INSERT_BATCH))
            session.execute(insert(Event), [_past_event(rng, i, sites[i % len(sites)], now) for i in numbers])
        alarms = [_past_alarm(rng, site_id, now) for site_id, _slug in sites for _ in range(alarms_per_site)]
        for start in range(0, len(alarms), INSERT_BATCH):
            session.execute(insert(Alarm), alarms[start : start + INSERT_BATCH])
        return int(session.scalar(select(func.max(Event.id))) or 0)


def _past_event(rng: random.Random, i: int, site: Any, now: datetime) -> dict[str, Any]:
    site_id, slug = site
    granted = rng.random() < 0.9
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "site_id": site_id,
        "agent_client_id": f"{slug}-history",
        "agent_seq": i + 1,
        "device_time": now - timedelta(seconds=rng.uniform(600, HISTORY_DAYS * 86400)),
        "received_at": now,
        "kind": EventKind.ACCESS,
        "door_slug": ENTRANCE,
        "credential_ref": f"c{rng.randint(1, 5000)}",
        "decision": Decision.GRANT if granted else Decision.DENY,
        "reason": "schedule" if granted else "outside_hours",
        "data": {},
    }


def _past_alarm(rng: random.Random, site_id: int, now: datetime) -> dict[str, Any]:
    raised = now - timedelta(seconds=rng.uniform(600, HISTORY_DAYS * 86400))
    handled = rng.random() < 0.98  # a few are still waiting for a caretaker
    return {
        "site_id": site_id,
        "kind": "held_open",
        "severity": AlarmSeverity.WARNING,
        "raised_at": raised,
        "cleared_at": raised + timedelta(minutes=3) if handled else None,
        "acknowledged_at": raised + timedelta(minutes=10) if handled else None,
        "acknowledged_by": "vaktmester" if handled else None,
        "comment": "",
        "detail": "door held open",
    }


def load_targets(session: Session, seed: int = 3) -> Targets:
    """What the load generator asks about: some sites, residents' cards to block and unblock, and names
    to search for (a site's slug finds its residents)."""
    rng = random.Random(seed)  # which site a caretaker looks at: simulation
    fleet_sites = select(Site.slug).where(Site.slug.like(f"{SITE_PREFIX}-%")).order_by(Site.id)
    slugs = list(session.scalars(fleet_sites))
    cards = list(
        session.scalars(
            select(Credential.id)
            .join(Person, Person.id == Credential.person_id)
            .where(Person.kind == PersonKind.RESIDENT, Person.external_ref.like(f"{SITE_PREFIX}:%"))
            .order_by(Credential.id)
        )
    )
    sites = rng.sample(slugs, min(TARGET_SITES, len(slugs)))
    return Targets(sites=sites, credentials=rng.sample(cards, min(TARGET_CARDS, len(cards))), names=sites)


# --- memory -------------------------------------------------------------------------------------------------


def proc_kb(pid: int, *names: str) -> dict[str, int]:
    """Fields of /proc/<pid>/status in kB (missing ones as 0; a process that is gone, or pid 0: all 0)."""
    if pid <= 0:
        return dict.fromkeys(names, 0)
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return dict.fromkeys(names, 0)
    found = {name: 0 for name in names}
    for line in lines:
        key, _sep, value = line.partition(":")
        if key in found:
            found[key] = int(value.split()[0])
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (0 when it is gone, or pid 0)."""
    if pid <= 0:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pid_running(fragment: str) -> int | None:
    """The process whose command line contains `fragment` (e.g. a broker's own config path)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fragment in cmdline and int(entry.name) != os.getpid():
            return int(entry.name)
    return None


def children(pid: int) -> list[int]:
    """Direct children of a process (PostgreSQL's backends of its postmaster)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


@dataclass
class MemoryWatch:
    """Peak resident memory of central's processes (VmHWM, kept across a restart) and mosquitto, and the
    sampled peak of PostgreSQL's private memory (postmaster and backends), once a second in a thread."""

    centrals: Callable[[], list[int]]  # the current pids, the one with the gateway first
    mosquitto: int | None
    postmaster: int | None
    interval_s: float = 1.0
    central_peak_kb: list[int] = field(default_factory=list)
    postgres_peak_kb: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> MemoryWatch:
        self._thread = threading.Thread(target=self._run, name="scale-memory", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        peaks = [proc_kb(pid, "VmHWM")["VmHWM"] for pid in self.centrals()]
        known = self.central_peak_kb + [0] * (len(peaks) - len(self.central_peak_kb))
        self.central_peak_kb = [max(a, b) for a, b in zip(known, peaks, strict=True)]
        if self.postmaster is not None:
            pids = [self.postmaster, *children(self.postmaster)]
            total = sum(proc_kb(pid, "RssAnon")["RssAnon"] for pid in pids)
            self.postgres_peak_kb = max(self.postgres_peak_kb, total)

    def figures(self) -> dict[str, Any]:
        """Call while the processes still live (VmHWM is gone with them)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sample()
        ends = [proc_kb(pid, "VmRSS")["VmRSS"] for pid in self.centrals()]
        broker = proc_kb(self.mosquitto, "VmHWM", "VmRSS") if self.mosquitto else {"VmHWM": 0, "VmRSS": 0}
        return {
            "central_peak_rss_mb": [_mb(kb) for kb in self.central_peak_kb],
            "central_rss_end_mb": [_mb(kb) for kb in ends],
            "mosquitto_peak_rss_mb": _mb(broker["VmHWM"]),
            "mosquitto_rss_end_mb": _mb(broker["VmRSS"]),
            "postgresql_peak_private_mb": _mb(self.postgres_peak_kb),
        }


def _mb(kb: int) -> float:
    return round(kb / 1024, 1)


def postmaster_pid(data_dir: Path) -> int | None:
    """PostgreSQL's postmaster, from the first line of postmaster.pid in its data directory."""
    try:
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
