"""What the agent journaled against what central stored: the "no event lost, none twice" check.

The agent reports every event the moment its journal returned it (committed with synchronous=FULL); a kill
can come between the commit and the report, so the reports are a subset of what was journaled. The journal's
sequence numbers are the whole truth: they are given out 1, 2, 3, ... on commit, never reused. So after a
fault, once the agent's journal is empty (central acknowledged everything):
- lost: a sequence number below the journal's next one that central does not have, or an event the agent
  reported that central does not have (e.g. its commit was undone and the number given to another event);
- duplicate: a sequence number central holds more than once (the same event stored under two ids, i.e.
  re-created rather than resent; central's unique event_id makes plain duplicates impossible), or two
  different events reported under one sequence number;
- monotonic: the reports' sequence numbers only ever rise, across restarts and clock jumps.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from central.models import Event
from hw_sim.faults.rpc import Json


@dataclass(frozen=True)
class Delivery:
    journaled: int  # sequence numbers the journal gave out
    in_central: int  # of those, how many central stored
    lost: tuple[int, ...]  # sequence numbers journaled (or reported) and not in central
    duplicates: int
    non_monotonic: int  # reports whose sequence number did not rise


@dataclass
class Ledger:
    """The agent's event reports, collected from its stdout (on the reader thread)."""

    ids: dict[int, set[str]] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)
    types: Counter[str] = field(default_factory=Counter)
    latest: datetime | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, report: Json) -> None:
        seq, at = int(report["seq"]), datetime.fromisoformat(report["time"])
        with self._lock:
            self.ids.setdefault(seq, set()).add(str(report["id"]))
            self.order.append(seq)
            self.types[str(report["type"])] += 1
            self.latest = at if self.latest is None else max(self.latest, at)

    def count(self, event_type: str | None = None) -> int:
        """How many events (of `event_type`, e.g. "AccessEvent") the agent reported so far."""
        with self._lock:
            return len(self.order) if event_type is None else self.types[event_type]

    def check(self, engine: Engine, agent: str, next_seq: int) -> Delivery:
        with Session(engine) as session:
            rows = session.execute(
                select(Event.agent_seq, Event.event_id).where(
                    Event.agent_client_id == agent,
                    Event.agent_seq >= 1,  # 0: command results, not journaled
                )
            ).all()
        stored = Counter(seq for seq, _ in rows)
        stored_ids = {event_id for _, event_id in rows}
        with self._lock:
            ids = {seq: set(found) for seq, found in self.ids.items()}
            order = list(self.order)
        lost = {seq for seq in range(1, next_seq) if seq not in stored}
        lost |= {seq for seq, found in ids.items() if not found <= stored_ids}
        duplicates = sum(n - 1 for n in stored.values()) + sum(len(found) - 1 for found in ids.values())
        rises = sum(1 for a, b in itertools.pairwise(order) if b <= a)
        return Delivery(
            journaled=next_seq - 1,
            in_central=sum(1 for seq in stored if 1 <= seq < next_seq),
            lost=tuple(sorted(lost)),
            duplicates=duplicates,
            non_monotonic=rises,
        )
