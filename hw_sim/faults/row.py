"""What every fault checks, and how hard the matrix pushes.

Properties, checked with central's database, the agent's journal and the wires of its relays:
- no event lost and none stored twice (hw_sim.faults.ledger), the journal's sequence only rising;
- no door left unlocked by the fault: after each outage, with no grant running, every relay is at its locked
  level; after a kill -9 the restarted agent locks whatever the dead one left energised, before anything else;
- fire release works with broker and central down: the fire input releases every door even while the agent's
  own loop is stuck, and the doors lock again when it clears;
- a valid resident (card + PIN at the entrance) still gets in during the outage, and a card revoked before
  the fault stays out.
Faults whose nature adds a property (disk full: what could not be journaled is counted and alarmed; clock
jumps: decisions follow the new time, stale commands are refused) check that too. A `Row` collects one
fault's figures and every problem; `timed` gives each fault its seeded randomness and its duration.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hw_sim.faults.rig import UIDS, Golden, Rig

KARI = UIDS["kari"]
RESIDENTS = ("kari", "amina", "emil")
GRANT_WAIT_S = 6.0  # a grant's unlock time (5 s) has passed


@dataclass(frozen=True)
class Plan:
    """How hard to push: `FULL` for `make faults`, `SHORT` for the default test run."""

    name: str
    agent_kills: int
    central_kills: int
    broker_restarts: int
    storm: int  # decisions in a burst of traffic
    evening_visits: int  # residents coming in during the WAN's lost evening
    resident_every: int  # after every n-th agent restart a resident comes in (and after the last)
    outage_residents: int  # residents who come in during each outage
    seed: int = 8


FULL = Plan("full", agent_kills=100, central_kills=10, broker_restarts=6, storm=60, evening_visits=24,
            resident_every=1, outage_residents=3)  # fmt: skip
SHORT = Plan("short", agent_kills=5, central_kills=1, broker_restarts=1, storm=20, evening_visits=1,
             resident_every=5, outage_residents=1)  # fmt: skip


@dataclass
class Row:
    """One fault's line in the report, and everything that went wrong (empty when the properties hold)."""

    fault: str
    repetitions: int
    journaled: int = 0
    in_central: int = 0
    lost: int = 0
    duplicates: int = 0
    left_unlocked: int = 0
    residents_in: int = 0
    residents_tried: int = 0
    revoked_out: int = 0
    revoked_tried: int = 0
    fire_ok: int = 0
    fire_drills: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    # --- the checks every fault makes ----------------------------------------------------------------------

    def resident(self, rig: Rig, person: str, expect_in: bool = True) -> dict[str, Any]:
        """`person` comes with card + PIN; they must get in when `expect_in` (else be refused)."""
        r = rig.enter(person)
        got_in = bool(r["unlocked"] and r["opened"] and r["relocked"])
        if expect_in:
            self.residents_tried += 1
            self.residents_in += got_in
        if got_in != expect_in:
            self.problems.append(f"{person} {'was refused' if expect_in else 'got in'}: {r}")
        if r["opened"] and not r["relocked"]:
            self.left_unlocked += 1
            self.problems.append(f"the door stayed unlocked after {person} came in: {r}")
        return r

    def revoked(self, rig: Rig, person: str = "ola") -> None:
        self.revoked_tried += 1
        if rig.kept_out(person):
            self.revoked_out += 1
        else:
            self.problems.append(f"{person}'s revoked card opened the door or was asked for a PIN")

    def fire(self, rig: Rig) -> None:
        self.fire_drills += 1
        r = rig.agent.call("fire_drill")
        if r["released_while_agent_stuck"] and r["released"] and r["relocked"]:
            self.fire_ok += 1
        else:
            self.problems.append(f"fire drill: {r}")

    def secure(self, rig: Rig) -> None:
        """With no grant running, every door must be locked."""
        rig.agent.call("advance", seconds=GRANT_WAIT_S)
        unlocked = rig.doors_unlocked()
        self.left_unlocked += len(unlocked)
        if unlocked:
            self.problems.append(f"doors unlocked with no grant running: {unlocked}")

    def outage(self, rig: Rig, people: tuple[str, ...]) -> None:
        """What must hold while something is down: residents in, revoked out, fire release, doors locked."""
        for person in people:
            self.resident(rig, person)
        self.revoked(rig)
        self.fire(rig)
        self.secure(rig)

    def finish(self, rig: Rig, drain_s: float = 120.0) -> None:
        """Everything the agent journaled must reach central exactly once."""
        if not rig.drained(drain_s):
            self.problems.append(f"central did not acknowledge everything within {drain_s:g} s")
        d = rig.delivery()
        self.journaled, self.in_central = d.journaled, d.in_central
        self.lost, self.duplicates = len(d.lost), d.duplicates
        if d.lost or d.duplicates or d.non_monotonic:
            self.problems.append(
                f"lost seqs {list(d.lost)[:20]}, {d.duplicates} duplicates, "
                f"{d.non_monotonic} sequence numbers not rising"
            )


def timed(fault: Callable[[Golden, Plan, random.Random], Row]) -> Callable[[Golden, Plan], Row]:
    def run(base: Golden, plan: Plan) -> Row:
        started = time.monotonic()
        rnd = random.Random(plan.seed)  # noqa: S311 - the moments of kills, not secrets
        row = fault(base, plan, rnd)
        row.seconds = time.monotonic() - started
        return row

    run.__name__ = fault.__name__
    return run


def agent_now(rig: Rig) -> datetime:
    return datetime.fromisoformat(rig.status()["now"])
