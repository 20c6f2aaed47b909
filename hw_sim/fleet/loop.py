"""Many agents in one process (Worker): one selector loop drives every agent's socket through paho's
external-loop API, taps at a commanded rate, and emits progress, transitions and a final report.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import selectors
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import structlog

from hw_sim.fleet.agent import SimAgent, Tally
from hw_sim.fleet.errors import FleetError
from hw_sim.fleet.plan import FleetPlan

log = structlog.get_logger("hw_sim.fleet")

CONNECTS_PER_STEP = 50  # new connections per loop step: the broker's accept queue is not flooded
HOUSEKEEPING_S = 1.0
PROGRESS_S = 1.0
REFUSING_EVERY_S = 0.05
DRAIN_S = 15.0  # at stop: how long to wait for central to acknowledge the last events
GOODBYE_S = 5.0

Emit = Callable[[dict[str, Any]], None]


class Worker:
    """Agents `first` .. `first + count - 1` of a plan, on one selector loop in the calling thread.

    Commands (`command`, or JSON lines on the control file descriptor): {"cmd": "taps", "rate": R,
    "duration": S} taps R times a second at random synced agents for S seconds; {"cmd": "stop"} ends the
    run. What it says (`emit`): progress, "synced" once every agent is, "refusing" (how many agents refuse
    each caretaker's card) when that changes, "taps_done", and a final "report".
    """

    def __init__(
        self,
        plan: FleetPlan,
        first: int,
        count: int,
        uid_key: bytes,
        broker: tuple[str, int],
        emit: Emit,
        *,
        duplicate_share: float = 0.05,
        seed: int | None = None,
    ) -> None:
        _ensure_file_limit(count + 64)
        self.plan = plan
        self.broker = broker
        self.emit = emit
        self.duplicate_share = duplicate_share
        self.rng = random.Random(seed)  # noqa: S311 (who taps where: simulation, not security)
        self.tally = Tally()
        self.selector = selectors.DefaultSelector()
        self.agents = [SimAgent(i, plan, uid_key, self.tally) for i in range(first, first + count)]
        for agent in self.agents:
            self._attach(agent)
        self._to_connect = list(self.agents)
        self._stop = False
        self._control = b""
        self._tap_rate = 0.0
        self._next_tap = 0.0
        self._taps_end = 0.0
        self._taps_started = 0
        self._housekeeping_due = 0.0
        self._progress_due = 0.0
        self._synced_said = False
        self._flips_said = 0
        self._refusing_due = 0.0

    # --- paho's external loop: sockets in our selector ------------------------------------------------

    def _attach(self, agent: SimAgent) -> None:
        def opened(_c: mqtt.Client, _u: Any, sock: Any) -> None:
            self.selector.register(sock, selectors.EVENT_READ, agent)

        def closed(_c: mqtt.Client, _u: Any, sock: Any) -> None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(sock)

        def want_write(_c: mqtt.Client, _u: Any, sock: Any) -> None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, agent)

        def written(_c: mqtt.Client, _u: Any, sock: Any) -> None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.modify(sock, selectors.EVENT_READ, agent)

        agent.client.on_socket_open = opened
        agent.client.on_socket_close = closed
        agent.client.on_socket_register_write = want_write
        agent.client.on_socket_unregister_write = written

    def watch_control(self, fd: int) -> None:
        """Read commands as JSON lines from `fd` (a worker process's stdin); end of file means stop."""
        os.set_blocking(fd, False)
        self.selector.register(fd, selectors.EVENT_READ, None)

    # --- the loop ---------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Connect, serve until told to stop, say goodbye; returns (and emits) the report."""
        while not self._stop:
            self.step()
        return self._finish()

    def step(self, max_wait: float = 0.2) -> None:
        now = time.monotonic()
        self._connect_some()
        for key, events in self.selector.select(self._wait(now, max_wait)):
            if key.data is None:
                self._read_control(key.fd)
                continue
            client = key.data.client
            if events & selectors.EVENT_READ:
                client.loop_read()
            if events & selectors.EVENT_WRITE:
                client.loop_write()
        now = time.monotonic()
        self._tap_due(now)
        if now >= self._housekeeping_due:
            self._housekeeping_due = now + HOUSEKEEPING_S
            for agent in self.agents:
                agent.housekeeping(now)
        self._report_progress(now)

    def _wait(self, now: float, max_wait: float) -> float:
        due = min(self._housekeeping_due, self._progress_due, now + max_wait)
        if self._tap_rate > 0:
            due = min(due, self._next_tap)
        if self._to_connect:
            due = now
        return max(0.0, due - now)

    def _connect_some(self) -> None:
        batch, self._to_connect = self._to_connect[:CONNECTS_PER_STEP], self._to_connect[CONNECTS_PER_STEP:]
        host, port = self.broker
        for agent in batch:
            try:
                agent.connect(host, port)
            except OSError as exc:
                raise FleetError(f"cannot connect to the broker at {host}:{port}: {exc}") from None

    def command(self, cmd: dict[str, Any]) -> None:
        kind = cmd.get("cmd")
        if kind == "stop":
            self._stop = True
        elif kind == "taps":
            rate, duration = float(cmd["rate"]), float(cmd["duration"])
            now = time.monotonic()
            self._tap_rate, self._next_tap, self._taps_end = rate, now, now + duration
            self._taps_started = self.tally.taps
        else:
            log.warning("fleet.unknown_command", command=str(kind)[:40])

    def _read_control(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not data:  # the coordinator went away: stop
            self.selector.unregister(fd)
            self._stop = True
            return
        self._control += data
        *lines, self._control = self._control.split(b"\n")
        for line in lines:
            if line.strip():
                try:
                    self.command(json.loads(line))
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("fleet.bad_command", error=str(exc)[:200])

    def _tap_due(self, now: float) -> None:
        if self._tap_rate <= 0:
            return
        if now >= self._taps_end:
            self._tap_rate = 0.0
            self.emit({"type": "taps_done", "taps": self.tally.taps - self._taps_started})
            return
        ready = [a for a in self.agents if a.synced and a.connected]
        while now >= self._next_tap and ready:
            self.rng.choice(ready).tap(self.rng, self.duplicate_share)
            self._next_tap += 1.0 / self._tap_rate
        if not ready:
            self._next_tap = now + 0.1

    # --- what the worker says ---------------------------------------------------------------------------

    def _report_progress(self, now: float) -> None:
        if self.tally.flips != self._flips_said and now >= self._refusing_due:
            self._flips_said, self._refusing_due = self.tally.flips, now + REFUSING_EVERY_S
            counts = [sum(1 for a in self.agents if a.granting[k] is False) for k in range(self.plan.roaming)]
            self.emit({"type": "refusing", "counts": counts})
        if self.tally.synced == len(self.agents) and not self._synced_said:
            self._synced_said = True
            self.emit({"type": "synced", "agents": self.tally.synced, "sync_s": _sync_seconds(self.agents)})
        if now >= self._progress_due:
            self._progress_due = now + PROGRESS_S
            connected = sum(1 for a in self.agents if a.connected)
            self.emit({"type": "progress", "connected": connected, "synced": self.tally.synced})

    def _finish(self) -> dict[str, Any]:
        """Wait a little for the last acks, say goodbye (retained offline status), then report."""
        self._tap_rate = 0.0
        deadline = time.monotonic() + DRAIN_S
        while any(a.pending for a in self.agents if a.connected) and time.monotonic() < deadline:
            self.step(0.05)
        for agent in self.agents:
            agent.say_goodbye()
        deadline = time.monotonic() + GOODBYE_S
        while any(a.client.socket() is not None for a in self.agents) and time.monotonic() < deadline:
            self.step(0.05)
        report = self.report()
        self.emit(report)
        return report

    def report(self) -> dict[str, Any]:
        t = self.tally
        return {
            "type": "report",
            "agents": [a.summary() for a in self.agents],
            "taps": t.taps,
            "granted": t.granted,
            "denied": t.denied,
            "duplicates_sent": t.duplicates_sent,
            "acked": t.acked,
            "unacked": sum(len(a.pending) for a in self.agents),
            "ack_ms": [round(s * 1000, 2) for s in t.ack_latencies],
            "counters": dict(t.counters),
            "rss_mb": _rss_mb(),
        }


def _rss_mb() -> float:
    """This process's resident memory (Linux), to tell what a thousand agents cost."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0.0
    kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return round(kb / 1024, 1)


def _sync_seconds(agents: Sequence[SimAgent]) -> list[float]:
    return [
        round(a.synced_at - a.asked_at, 4)
        for a in agents
        if a.synced_at is not None and a.asked_at is not None
    ]


def _ensure_file_limit(needed: int) -> None:
    """One socket per agent: raise the soft limit on open files as far as needed (and allowed)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise FleetError(f"{needed} open files needed, the limit is {hard}: run fewer agents per process")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
