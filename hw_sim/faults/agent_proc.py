"""`python -m hw_sim.faults.agent_proc`: the real agent on simulated hardware, in a process of its own.

It is hw_sim.site.SimulatedSite (the agent runtime with door physics on MockFactory pins and virtual cards
behind the harness's pcscd) with two changes for faults: the relay pins are latched (hw_sim.faults.latch),
so a kill -9 leaves them where a Pi would, and every journaled event is reported on stdout at once, so the
harness knows what the agent had recorded when it was killed. The agent's clock is a ManualClock started at
the wall time the harness gives: time moves only when the harness says so, as in the scenario runner.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, MutableMapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import structlog

from controller.clock import ManualClock
from controller.inputs import CardPresented, KeyPressed
from controller.journal import AgentEvent
from hw_sim.door import SimFirePanel
from hw_sim.faults.latch import LatchedFactory, PinLatch
from hw_sim.faults.rpc import Json, emit, serve
from hw_sim.pcscd import PcscDaemon
from hw_sim.site import SimulatedSite
from protocol import messages as m

T = TypeVar("T")
FIRE_RELEASE_WAIT_S = 1.0  # the fire release must act within this while the agent's loop is stuck
AGENT_STUCK_S = 2.0
LOGGED = ("agent.journal_full", "agent.disk_alarm_not_recorded", "agent.work_failed", "agent.journal_error")


class LogCounter:
    """A structlog processor counting the agent's log lines that matter here (events it could not record)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(
        self, _logger: Any, _method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        name = str(event.get("event", ""))
        if name in LOGGED:
            self.counts[name] += 1
        return event


class ReportingSite(SimulatedSite):
    """A SimulatedSite that reports every journaled event on stdout the moment it is recorded."""

    def _record_event(self, event: AgentEvent) -> None:
        super()._record_event(event)
        emit(
            {
                "kind": "event",
                "seq": event.seq,
                "id": str(event.event_id),
                "type": type(event).__name__,
                "time": event.device_time.isoformat(),
            }
        )


def describe(event: AgentEvent) -> Json:
    said: Json = {"seq": event.seq, "type": type(event).__name__, "time": event.device_time.isoformat()}
    if isinstance(event, m.AccessEvent):
        said.update(door=event.door, decision=event.decision.value, reason=event.reason.value)
    elif isinstance(event, m.SystemEvent):
        said.update(kind=event.kind, detail=event.detail)
    elif isinstance(event, m.AlarmEvent):
        said.update(kind=event.kind.value, raised=event.raised, detail=event.detail)
    return said


class Driver:
    """The commands the harness sends, each run on the child's main thread, one at a time."""

    def __init__(self, site: SimulatedSite, clock: ManualClock, logs: LogCounter, entrance: str) -> None:
        self.site = site
        self.clock = clock
        self.logs = logs
        self.entrance = entrance

    def handlers(self) -> dict[str, Callable[..., Any]]:
        return {
            "status": self.status,
            "enter": self.enter,
            "tap": self.tap,
            "hold_grant": self.hold_grant,
            "storm": self.storm,
            "advance": self.advance,
            "set_wall": self.set_wall,
            "fire_drill": self.fire_drill,
            "fire": self.fire,
            "has_credential": self.has_credential,
            "wait_drained": self.wait_drained,
            "wait_synced": self.wait_synced,
            "recent": self.recent,
        }

    # --- observing ---------------------------------------------------------------------------------------

    def status(self) -> Json:
        agent = self.site.agent
        doors = {
            slug: {
                "state": self.site.door_state(slug).value,
                "unlocked": door.is_unlocked,
                "energised": self.site.relay_energised(slug),
            }
            for slug, door in self.site.doors.items()
        }
        replica_seq = self.on_agent(lambda: agent.replica.seq)
        return {
            "now": self.clock.now().isoformat(),
            "doors": doors,
            "pending": agent.journal.pending_count(),
            "next_seq": agent.journal.next_seq,
            "replica_seq": replica_seq,
            "synced": agent.view is not None and replica_seq is not None,
            "clock_alarm": agent.clock_alarm,
            "connected": agent.link is not None and agent.link.connected,
            "logged": dict(self.logs.counts),
        }

    def recent(self, count: int = 10) -> list[Json]:
        """The last `count` events journaled since the agent started, in words."""
        return [describe(event) for event in self.site.events()[-count:]]

    def has_credential(self, ref: str) -> bool:
        replica = self.site.agent.replica
        return self.on_agent(lambda: replica.credential(ref) is not None)

    def wait_drained(self, timeout: float = 60.0) -> bool:
        """Whether central acknowledged everything in the journal within `timeout` (real) seconds."""
        journal = self.site.agent.journal
        deadline = time.monotonic() + timeout
        while journal.pending_count() > 0:
            if time.monotonic() > deadline:
                return False
            self.site.advance(1.0, step=1.0)  # ticks run the outbox's backlog and resends
            time.sleep(0.05)
        return True

    def wait_synced(self, timeout: float = 30.0) -> bool:
        self.site.wait_synced(timeout)
        return True

    # --- people ------------------------------------------------------------------------------------------

    def enter(self, uid: str, pin: str | None = "1234", door: str | None = None) -> Json:
        """A person taps their card (and types the PIN if asked and known) and walks in if the door opens."""
        door = door or self.entrance
        before = len(self.site.events())
        self.site.tap(door, bytes.fromhex(uid))
        asked_pin = self.site.agent.awaiting_pin(door)
        if asked_pin:
            self.site.keys(door, "*" if pin is None else pin + "#")
        shown = self.site.feedback(door)[-1]
        unlocked = self.site.doors[door].is_unlocked
        opened = self.site.push(door) if unlocked else False
        self.site.advance(self.site.closer_seconds + 1.5)  # the closer shuts it, the lock re-engages
        access = [e for e in self.site.events()[before:] if isinstance(e, m.AccessEvent) and e.door == door]
        return {
            "shown": shown.value,
            "asked_pin": asked_pin,
            "unlocked": unlocked,
            "opened": opened,
            "relocked": not self.site.doors[door].is_unlocked,
            "decision": access[-1].decision.value if access else None,
            "reason": access[-1].reason.value if access else None,
        }

    def tap(self, uid: str, door: str | None = None) -> Json:
        """Someone taps a card and, if asked, does not know the PIN."""
        return self.enter(uid, pin=None, door=door)

    def hold_grant(self, uid: str, pin: str = "1234") -> bool:
        """Card and PIN at the entrance (straight into the agent's input queue, as the reader's adapter
        would put them), nobody pushes: the relay stays at its unlocked level for the grant's seconds."""
        agent = self.site.agent
        agent.submit(CardPresented(self.entrance, bytes.fromhex(uid)))
        for key in pin + "#":
            agent.submit(KeyPressed(self.entrance, key))
        self.site.settle()
        return self.site.doors[self.entrance].is_unlocked

    def storm(self, count: int, uid: str, grant_every: int = 7, pin: str = "1234") -> int:
        """Decisions as fast as the agent takes them (through its input queue, as the readers' adapters
        submit them): unknown cards at the other doors, now and then the resident at the entrance with
        her PIN. `count` 0 = until killed. Returns how many were made."""
        agent = self.site.agent
        others = [slug for slug in self.site.doors if slug != self.entrance] or [self.entrance]
        made = 0
        while count == 0 or made < count:
            made += 1
            if grant_every and made % grant_every == 0:
                agent.submit(CardPresented(self.entrance, bytes.fromhex(uid)))
                for key in pin + "#":
                    agent.submit(KeyPressed(self.entrance, key))
            else:
                agent.submit(CardPresented(others[made % len(others)], b"\x04" + os.urandom(6)))
            self.site.advance(0.5, step=0.5)
        return made

    # --- time --------------------------------------------------------------------------------------------

    def advance(self, seconds: float, step: float = 0.5) -> str:
        self.site.advance(seconds, step=step)
        return self.clock.now().isoformat()

    def set_wall(self, at: str) -> str:
        """The wall clock jumps (NTP, an operator, a bad RTC); monotonic time goes on."""
        self.clock.set_wall(datetime.fromisoformat(at))
        self.site.advance(1.0)
        return self.clock.now().isoformat()

    # --- fire --------------------------------------------------------------------------------------------

    def fire_drill(self) -> Json:
        """The fire panel fires while the agent's loop is stuck: every door must be released by the
        hardware path anyway; then the alarm clears and the doors lock again."""
        fire = self.site.config.site.fire
        if fire is None:
            raise RuntimeError("this site has no fire input wired")
        panel = SimFirePanel(self.site.factory, str(fire))
        stuck = threading.Event()

        def stuck_loop() -> None:
            stuck.wait(AGENT_STUCK_S)

        self.site.agent.submit(stuck_loop)
        panel.alarm(True)
        released_while_stuck = self._until(lambda: self._all_unlocked(), FIRE_RELEASE_WAIT_S)
        stuck.set()
        self.site.settle()
        released = self._all_unlocked()
        states = {slug: self.site.door_state(slug).value for slug in self.site.doors}
        self.site.fire(False)
        self.site.advance(1.0)
        relocked = not any(door.is_unlocked for door in self.site.doors.values())
        return {
            "released_while_agent_stuck": released_while_stuck,
            "released": released,
            "states_during": states,
            "relocked": relocked,
        }

    def fire(self, on: bool) -> bool:
        """The fire panel raises or clears its alarm; returns whether every door is unlocked now."""
        self.site.fire(on)
        return self._all_unlocked()

    def _all_unlocked(self) -> bool:
        return all(door.is_unlocked for door in self.site.doors.values())

    @staticmethod
    def _until(predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def on_agent(self, work: Callable[[], T]) -> T:
        """Run `work` on the agent's thread (its stores belong to it) and return what it returned."""
        box: list[T] = []
        done = threading.Event()

        def run() -> None:
            try:
                box.append(work())
            finally:
                done.set()

        self.site.agent.submit(run)
        if not done.wait(10.0) or not box:
            raise RuntimeError("the agent did not get to the request")
        return box[0]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the agent on simulated hardware, for the fault harness")
    parser.add_argument("--config", type=Path, required=True, help="site.toml (hw_sim.site.sim_agent_config)")
    parser.add_argument("--latch", type=Path, required=True, help="the relays' latched levels")
    parser.add_argument("--wall", required=True, help="the agent's wall clock at start (ISO 8601, UTC)")
    parser.add_argument("--entrance", required=True, help="the door residents come in by")
    parser.add_argument("--pcscd-root", type=Path, required=True)
    parser.add_argument("--pcscd-port", type=int, required=True)
    parser.add_argument("--pcscd-readers", type=int, required=True)
    args = parser.parse_args(argv)
    logs = LogCounter()
    structlog.configure(
        processors=[logs, structlog.processors.TimeStamper(fmt="iso"), structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    clock = ManualClock(datetime.fromisoformat(args.wall))
    pcscd = PcscDaemon(root=args.pcscd_root, base_port=args.pcscd_port, readers=args.pcscd_readers)
    site = ReportingSite(args.config, clock=clock, pcscd=pcscd)
    relays = [str(door.relay) for door in site.config.doors]
    fire = [str(site.config.site.fire)] if site.config.site.fire is not None else []
    site.factory = LatchedFactory(PinLatch(args.latch, relays, external=fire))
    started = time.monotonic()
    site.start()
    driver = Driver(site, clock, logs, args.entrance)
    try:
        serve(driver.handlers(), {"pid": os.getpid(), "start_s": time.monotonic() - started})
    finally:
        site.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
