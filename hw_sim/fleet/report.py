"""What a fleet run measured: the workers' reports merged (FleetReport) and latency percentiles."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FleetReport:
    """The workers' reports merged: per-agent timings and the fleet's tap and event figures."""

    agents: list[dict[str, Any]]
    taps: int
    granted: int
    denied: int
    duplicates_sent: int
    acked: int
    unacked: int
    ack_ms: list[float]
    counters: Counter[str]
    worker_rss_mb: list[float] = field(default_factory=list)

    @classmethod
    def merge(cls, reports: Sequence[dict[str, Any]]) -> FleetReport:
        counters: Counter[str] = Counter()
        for r in reports:
            counters.update(r["counters"])
        return cls(
            agents=[a for r in reports for a in r["agents"]],
            taps=sum(r["taps"] for r in reports),
            granted=sum(r["granted"] for r in reports),
            denied=sum(r["denied"] for r in reports),
            duplicates_sent=sum(r["duplicates_sent"] for r in reports),
            acked=sum(r["acked"] for r in reports),
            unacked=sum(r["unacked"] for r in reports),
            ack_ms=sorted(ms for r in reports for ms in r["ack_ms"]),
            counters=counters,
            worker_rss_mb=[r.get("rss_mb", 0.0) for r in reports],
        )

    def reached(self, caretaker: int, since: float, granted: bool) -> list[float | None]:
        """Per agent: seconds from `since` (monotonic) until its verdict on caretaker `caretaker`'s card
        (1-based) became `granted`; None where it never did."""
        found: list[float | None] = []
        for agent in self.agents:
            times = [
                t for t, k, g in agent["transitions"] if k == caretaker - 1 and g == granted and t >= since
            ]
            found.append(min(times) - since if times else None)
        return found


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) by nearest rank of already sorted values; 0 for none."""
    if not values:
        return 0.0
    rank = max(1, min(len(values), math.ceil(q / 100 * len(values))))
    return values[rank - 1]


def latency_figures(seconds: Sequence[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50_ms": round(percentile(ordered, 50) * 1000, 1),
        "p99_ms": round(percentile(ordered, 99) * 1000, 1),
        "max_ms": round((ordered[-1] if ordered else 0.0) * 1000, 1),
    }
