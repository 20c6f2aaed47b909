"""The coordinator (Fleet): starts the worker processes for a plan's agents, commands them and collects
what they say, ending them whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw_sim.fleet.errors import FleetError
from hw_sim.fleet.plan import FleetPlan
from hw_sim.fleet.report import FleetReport

AGENTS_PER_PROCESS = 500


def default_processes(sites: int) -> int:
    """One process per 500 agents (on a 2-core machine more would only compete with central)."""
    return max(1, -(-sites // AGENTS_PER_PROCESS))


@dataclass
class _WorkerState:
    process: subprocess.Popen[str]
    first: int
    count: int
    synced: dict[str, Any] | None = None
    refusing: list[int] = field(default_factory=list)
    progress: dict[str, Any] = field(default_factory=dict)
    taps_done: bool = False
    taps_sent: int = 0  # taps (one event each) of all finished tap runs
    report: dict[str, Any] | None = None
    ended: bool = False


class Fleet:
    """Worker processes for a plan's agents, and what they say. Use as a context manager: the workers
    are ended (by their own process handles) whatever happens."""

    def __init__(
        self,
        plan: FleetPlan,
        broker: tuple[str, int],
        key_file: Path,
        *,
        processes: int | None = None,
        duplicate_share: float = 0.05,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        if processes is not None and processes < 1:
            raise ValueError(f"a fleet needs at least one worker process, not {processes}")
        self.plan = plan
        self.broker = broker
        self.key_file = key_file
        self.processes = min(processes or default_processes(plan.sites), plan.sites)
        self.duplicate_share = duplicate_share
        self.say = progress or (lambda _text: None)
        self.workers: list[_WorkerState] = []
        self._inbox: queue.Queue[tuple[int, dict[str, Any] | None]] = queue.Queue()
        self._last_progress = 0.0

    def __enter__(self) -> Fleet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        host, port = self.broker
        try:
            socket.create_connection(self.broker, timeout=5).close()
        except OSError as exc:
            raise FleetError(f"cannot reach the broker at {host}:{port}: {exc.strerror or exc}") from None
        per, extra = divmod(self.plan.sites, self.processes)
        first = 1
        for n in range(self.processes):
            count = per + (1 if n < extra else 0)
            self.workers.append(_WorkerState(self._spawn(first, count, n), first, count))
            threading.Thread(target=self._read, args=(n,), name=f"fleet-worker-{n}", daemon=True).start()
            first += count

    def _spawn(self, first: int, count: int, n: int) -> subprocess.Popen[str]:
        host, port = self.broker
        p = self.plan
        cmd = [
            sys.executable, "-m", "hw_sim.fleet",
            "--sites", str(p.sites), "--residents", str(p.residents), "--roaming", str(p.roaming),
            "--first", str(first), "--count", str(count),
            "--mqtt-host", host, "--mqtt-port", str(port),
            "--key-file", str(self.key_file),
            "--duplicate-share", str(self.duplicate_share), "--seed", str(n),
        ]  # fmt: skip
        return subprocess.Popen(  # noqa: S603 (this interpreter, our own module, numbers and paths)
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )

    def _read(self, n: int) -> None:
        stdout = self.workers[n].process.stdout
        assert stdout is not None
        for line in stdout:
            try:
                self._inbox.put((n, json.loads(line)))
            except ValueError:
                self._inbox.put((n, {"type": "noise", "line": line[:200]}))
        self._inbox.put((n, None))

    def _send(self, cmd: dict[str, Any]) -> None:
        for w in self.workers:
            if not w.ended and w.process.stdin is not None:
                with contextlib.suppress(BrokenPipeError, OSError):
                    w.process.stdin.write(json.dumps(cmd) + "\n")
                    w.process.stdin.flush()

    def _pump(self, timeout: float) -> None:
        """Take in what one worker said (waiting up to `timeout`); a dead worker is a FleetError."""
        try:
            n, said = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return
        w = self.workers[n]
        if said is None:
            w.ended = True
            if w.report is None:
                code = w.process.wait(10)
                raise FleetError(
                    f"fleet worker {n} ended without a report (exit code {code}); see its stderr"
                )
            return
        kind = said.get("type")
        if kind == "progress":
            w.progress = said
            self._say_progress()
        elif kind == "synced":
            w.synced = said
        elif kind == "refusing":
            w.refusing = said["counts"]
        elif kind == "taps_done":
            w.taps_done = True
            w.taps_sent += int(said.get("taps", 0))
        elif kind == "report":
            w.report = said

    def _say_progress(self) -> None:
        now = time.monotonic()
        if now - self._last_progress < 2.0:
            return
        self._last_progress = now
        connected = sum(w.progress.get("connected", 0) for w in self.workers)
        synced = sum(w.progress.get("synced", 0) for w in self.workers)
        self.say(f"fleet: {connected} of {self.plan.sites} agents connected, {synced} synced")

    def _until(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise FleetError(f"{what}: not within {timeout:g} s")
            self._pump(min(left, 0.1))

    def wait_synced(self, timeout: float) -> list[float]:
        """Wait until every agent has its config and replica; returns each agent's request → synced time."""
        self._until(
            lambda: all(w.synced is not None for w in self.workers),
            timeout,
            "agents synced (is central's gateway running on this database and broker?)",
        )
        return [s for w in self.workers if w.synced for s in w.synced["sync_s"]]

    def refusing(self, caretaker: int) -> int:
        """How many agents refuse caretaker `caretaker`'s card (1-based) right now."""
        return sum(w.refusing[caretaker - 1] for w in self.workers if len(w.refusing) >= caretaker)

    def wait_refusing(self, caretaker: int, count: int, timeout: float) -> None:
        self._until(lambda: self.refusing(caretaker) == count, timeout, f"{count} agents refusing the card")

    def taps(self, rate: float, duration: float) -> None:
        """Start taps at `rate` a second across the fleet for `duration` seconds (returns at once)."""
        for w in self.workers:
            w.taps_done = False
        share = rate / len(self.workers)
        self._send({"cmd": "taps", "rate": share, "duration": duration})

    def wait_taps(self, timeout: float) -> None:
        self._until(lambda: all(w.taps_done for w in self.workers), timeout, "taps finished")

    def taps_sent(self) -> int:
        """Taps of every finished tap run so far: the events central must end up holding, each once."""
        return sum(w.taps_sent for w in self.workers)

    def pump_for(self, seconds: float) -> None:
        """Keep listening to the workers for a while (their progress must not pile up)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._pump(min(left, 0.1))

    def stop(self, timeout: float = 60.0) -> FleetReport:
        """Tell the workers to stop and collect their reports."""
        self._send({"cmd": "stop"})
        self._until(lambda: all(w.report is not None for w in self.workers), timeout, "fleet reports")
        for w in self.workers:
            w.process.wait(timeout)
        return FleetReport.merge([w.report for w in self.workers if w.report is not None])

    def close(self) -> None:
        for w in self.workers:
            if w.process.poll() is None:
                w.process.terminate()
                try:
                    w.process.wait(10)
                except subprocess.TimeoutExpired:
                    w.process.kill()
                    w.process.wait()
            for pipe in (w.process.stdin, w.process.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
