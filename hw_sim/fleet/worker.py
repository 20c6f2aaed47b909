"""The worker process (`python -m hw_sim.fleet`): its command line, the uid-hash key file, and a Worker
commanded in JSON lines on stdin and reporting on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from hw_sim.fleet.errors import FleetError
from hw_sim.fleet.loop import Worker
from hw_sim.fleet.plan import FleetPlan


def worker_main(argv: Sequence[str] | None = None) -> int:
    """`python -m hw_sim.fleet`: one worker process, commanded on stdin, reporting on stdout."""
    parser = argparse.ArgumentParser(description="One process of simulated fleet agents (see hw_sim.fleet).")
    parser.add_argument("--sites", type=int, required=True)
    parser.add_argument("--residents", type=int, default=5)
    parser.add_argument("--roaming", type=int, default=2)
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--mqtt-host", default="127.0.0.1")
    parser.add_argument("--mqtt-port", type=int, default=1883)
    parser.add_argument("--key-file", type=Path, required=True, help="central's uid-hash key (hex text)")
    parser.add_argument("--duplicate-share", type=float, default=0.05)
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(30),
    )

    def emit(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    try:
        uid_key = read_key(args.key_file)
        plan = FleetPlan(args.sites, args.residents, args.roaming)
        worker = Worker(
            plan,
            args.first,
            args.count,
            uid_key,
            (args.mqtt_host, args.mqtt_port),
            emit,
            duplicate_share=args.duplicate_share,
            seed=args.seed,
        )
        worker.watch_control(sys.stdin.fileno())
        worker.run()
    except (FleetError, ValueError, OSError) as exc:
        print(f"error: fleet worker: {exc}", file=sys.stderr)
        return 1
    return 0


def read_key(path: Path) -> bytes:
    """The uid-hash key as central keeps it (hex text, see central.config.read_or_create_secret)."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except ValueError:
        raise FleetError(f"{path} does not hold a hex key") from None
