"""`python -m hw_sim.faults` (`make faults`): run the fault matrix and print its table.

Exit status 0 when every property held in every fault, 1 otherwise (the problems are listed).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from hw_sim.faults.matrix import FAULTS
from hw_sim.faults.report import notes, table
from hw_sim.faults.rig import golden
from hw_sim.faults.row import FULL, SHORT, Row


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hw_sim.faults", description=__doc__)
    parser.add_argument("--short", action="store_true", help="the short form the default test run uses")
    parser.add_argument("--only", action="append", choices=sorted(FAULTS), help="run only these faults")
    parser.add_argument("--seed", type=int, help="seed for the random moments of the kills")
    args = parser.parse_args(argv)
    plan = SHORT if args.short else FULL
    if args.seed is not None:
        plan = replace(plan, seed=args.seed)
    names = args.only or list(FAULTS)
    print(
        f"fault matrix ({plan.name}, seed {plan.seed}) on {platform.node()}: {platform.machine()}, "
        f"{_cores()} cores, Python {platform.python_version()}, "
        f"started {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        flush=True,
    )
    rows: list[Row] = []
    started = time.monotonic()
    with golden() as base:
        for name in names:
            print(f"... {name}", flush=True)
            rows.append(FAULTS[name](base, plan))
    print()
    print(table(rows))
    print()
    print(notes(rows))
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    return 1 if any(row.problems for row in rows) else 0


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    sys.exit(main())
