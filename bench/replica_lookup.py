"""How fast the agent finds a card in its local replica at 1,000,000 credentials, and applies a snapshot.

`python -m bench.replica_lookup [--credentials N] [--lookups N]` fills a fresh replica in a temp dir: a
100,000-credential snapshot (timed: the cold-start resync), then deltas of 100,000 upserts each up to N
(so memory stays at one batch). It then times random `card()` lookups, half of them known cards and half
unknown ones, and prints one JSON line. Goal: lookup p99 well under 1 ms.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from controller.replica import Replica
from protocol import messages as m

SITE = "bench-torg"
BATCH = 100_000
NOW = datetime(2026, 11, 22, 20, 15, tzinfo=UTC)
PIN_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"


def uid_hash(number: int) -> str:
    return hashlib.sha256(b"card-%d" % number).hexdigest()


def credentials(start: int, stop: int) -> list[m.Credential]:
    """Residents with a card and PIN each, as central sends them."""
    return [
        m.Credential(
            ref=f"c{i}",
            person=f"p{i}",
            person_kind=m.PersonKind.RESIDENT,
            kind=m.CredentialKind.CARD,
            groups=["innbyggere"],
            uid_hash=uid_hash(i),
            pin_hash=PIN_HASH,
            valid_from=NOW - timedelta(days=30),
        )
        for i in range(start, stop)
    ]


def fill(replica: Replica, count: int) -> float:
    """Snapshot of the first batch (returns its apply time), then one delta per further batch."""
    first = min(BATCH, count)
    snapshot = m.ReplicaSnapshot(site=SITE, seq=1, generated_at=NOW, credentials=credentials(0, first))
    started = time.perf_counter()
    replica.apply_snapshot(snapshot)
    snapshot_s = time.perf_counter() - started
    seq = 1
    for start in range(first, count, BATCH):
        delta = m.ReplicaDelta(
            site=SITE,
            seq=seq + 1,
            prev_seq=seq,
            generated_at=NOW,
            upsert=credentials(start, min(start + BATCH, count)),
        )
        replica.apply_delta(delta)
        seq += 1
    return snapshot_s


def time_lookups(replica: Replica, count: int, lookups: int) -> list[float]:
    rng = random.Random(7)
    keys = [
        uid_hash(rng.randrange(count)) if n % 2 == 0 else hashlib.sha256(b"x%d" % n).hexdigest()
        for n in range(lookups)
    ]
    found = 0
    timings: list[float] = []
    for key in keys:
        started = time.perf_counter_ns()
        credential = replica.card(key)
        timings.append((time.perf_counter_ns() - started) / 1000)
        found += credential is not None
    if found != (lookups + 1) // 2:
        raise SystemExit(f"replica_lookup: expected {(lookups + 1) // 2} known cards, found {found}")
    return sorted(timings)


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def run(count: int, lookups: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="replica-bench-") as tmp:
        path = Path(tmp) / "replica.sqlite3"
        with Replica(path, site=SITE) as replica:
            build_started = time.perf_counter()
            snapshot_s = fill(replica, count)
            build_s = time.perf_counter() - build_started
            if replica.count() != count:
                raise SystemExit(f"replica_lookup: replica holds {replica.count()} credentials, not {count}")
            timings = time_lookups(replica, count, lookups)
        db_bytes = sum(file.stat().st_size for file in Path(tmp).iterdir())
    p99 = percentile(timings, 0.99)
    return {
        "bench": "replica_lookup",
        "credentials": count,
        "lookups": lookups,
        "lookup_p50_us": round(percentile(timings, 0.50), 1),
        "lookup_p99_us": round(p99, 1),
        "lookup_max_us": round(timings[-1], 1),
        f"snapshot_{min(BATCH, count) // 1000}k_apply_s": round(snapshot_s, 3),
        "build_s": round(build_s, 1),
        "db_bytes": db_bytes,
        "goal_lookup_p99_1ms": p99 < 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--credentials", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=20_000)
    args = parser.parse_args()
    if args.credentials < 1 or args.lookups < 2:
        parser.error("--credentials must be at least 1 and --lookups at least 2")
    print(json.dumps(run(args.credentials, args.lookups)))


if __name__ == "__main__":
    main()
