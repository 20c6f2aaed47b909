"""How fast the agent decides a card tap with 1,000,000 credentials in its local replica.

`python -m bench.decision [--credentials N] [--lookups N]` fills a fresh replica in a temp dir: a
100,000-credential snapshot (timed: the cold-start resync), then deltas of 100,000 upserts each up to N
(so memory stays at one batch). It then times, for random card UIDs (half known, half unknown), the whole
decision the agent makes on a tap: keyed UID hash, replica lookup, the holder's bookings, `decide_card` at
Heggedal on a weekday evening. The argon2 PIN check that follows for card + PIN is a separate figure
(`pin_verify_ms`, production parameters), as it runs once per PIN, not per lookup. One JSON line.
Goal: decision p99 ≤ 1 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import argon2

from controller.decide import SiteView, decide_card
from controller.replica import Replica
from controller.uid import card_uid_hash
from protocol import messages as m
from tests.test_controller_schedule import heggedal_config

SITE = "heggedal"
UID_KEY = bytes(range(32))
BATCH = 100_000
NOW = datetime(2026, 11, 23, 19, 15, tzinfo=UTC)  # Monday 20:15 in Oslo: meråpent
PIN_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"


def card_uid(number: int) -> bytes:
    """A 7-byte UID like a MIFARE card's."""
    return b"\x04" + number.to_bytes(6, "big")


def uid_hash(number: int) -> str:
    return card_uid_hash(card_uid(number), UID_KEY)


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


def time_decisions(replica: Replica, count: int, lookups: int) -> tuple[list[float], list[float]]:
    """(lookup µs, whole decision µs) per tap, each sorted."""
    rng = random.Random(7)
    uids = [card_uid(rng.randrange(count)) if n % 2 == 0 else card_uid(count + n) for n in range(lookups)]
    view = SiteView.from_config(heggedal_config())
    granted = 0
    lookup_us: list[float] = []
    decision_us: list[float] = []
    for uid in uids:
        started = time.perf_counter_ns()
        key = card_uid_hash(uid, UID_KEY)
        found = time.perf_counter_ns()
        credential = replica.card(key)
        looked_up = time.perf_counter_ns()
        bookings = replica.bookings_for(credential.person, NOW) if credential else []
        verdict = decide_card(view, "hovedinngang", credential, bookings, NOW, pin_ok=True)
        done = time.perf_counter_ns()
        lookup_us.append((looked_up - found) / 1000)
        decision_us.append((done - started) / 1000)
        granted += verdict.granted
    if granted != (lookups + 1) // 2:
        raise SystemExit(f"decision: expected {(lookups + 1) // 2} grants, got {granted}")
    return sorted(lookup_us), sorted(decision_us)


def pin_verify_ms() -> float:
    """One argon2id verify at the parameters central uses (RFC 9106 low memory: 64 MiB, t=3, p=4)."""
    hasher = argon2.PasswordHasher.from_parameters(argon2.profiles.RFC_9106_LOW_MEMORY)
    stored = hasher.hash("1234")
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        hasher.verify(stored, "1234")
        samples.append((time.perf_counter() - started) * 1000)
    return round(sorted(samples)[2], 1)


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
                raise SystemExit(f"decision: replica holds {replica.count()} credentials, not {count}")
            lookups_us, decisions_us = time_decisions(replica, count, lookups)
        db_bytes = sum(file.stat().st_size for file in Path(tmp).iterdir())
    p99 = percentile(decisions_us, 0.99)
    return {
        "bench": "decision",
        "credentials": count,
        "taps": lookups,
        "decision_p50_us": round(percentile(decisions_us, 0.50), 1),
        "decision_p99_us": round(p99, 1),
        "lookup_p50_us": round(percentile(lookups_us, 0.50), 1),
        "lookup_p99_us": round(percentile(lookups_us, 0.99), 1),
        "pin_verify_ms": pin_verify_ms(),
        f"snapshot_{min(BATCH, count) // 1000}k_apply_s": round(snapshot_s, 3),
        "build_s": round(build_s, 1),
        "db_bytes": db_bytes,
        "goal_decision_p99_1ms": p99 < 1000,
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
