"""`make attacks` (`python -m hw_sim.attacks`): the attack suite in its long form, with one summary.

The suite is four test files, run by `make test` in a short form on every commit:
- tests/test_attacks.py: forged, truncated, re-signed, expired, not-yet-valid, wrong-site, wrong-door, revoked
  and replayed phone codes, replayed and stale commands, PIN brute force, all at the agent's own decision
  path, each refused with its reason;
- tests/test_malformed_mqtt.py: oversized, malformed, mistyped, cross-site and retained MQTT messages against
  central's gateway and the agent over a real mosquitto;
- tests/test_fuzz_decoders.py: every decoder of the wire contract fed mutated and random input;
- tests/test_api_schemathesis.py: schemathesis against central's OpenAPI, every operation.

Here the same tests run with ``MERAAPENT_FULL=1`` (10,000 fuzzed inputs per decoder, many more API requests
per operation). The fuzz and API tests append their figures as JSON lines to the file named by
``MERAAPENT_ATTACK_REPORT`` (`Tally.report`); this module runs pytest, reads them back and prints a table
and one JSON line: examples, crashes, refusals and acceptances per decoder, requests and server errors
per API run, and the tests passed per file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FULL_ENV = "MERAAPENT_FULL"
REPORT_ENV = "MERAAPENT_ATTACK_REPORT"
REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_FILES = (
    "tests/test_attacks.py",
    "tests/test_malformed_mqtt.py",
    "tests/test_fuzz_decoders.py",
    "tests/test_api_schemathesis.py",
)
FULL_TIMEOUT_S = 3600  # per test, for pytest-timeout: the long form of one decoder takes minutes at most


def full_run() -> bool:
    """Whether the long form was asked for (`make attacks` sets MERAAPENT_FULL=1)."""
    return os.environ.get(FULL_ENV, "") not in ("", "0")


def examples(short: int, full: int = 10_000) -> int:
    """How many examples a fuzz test draws: a few hundred in `make test`, ten thousand in `make attacks`."""
    return full if full_run() else short


@dataclass
class Tally:
    """What one decoder did with the inputs it was fed. `accepted` inputs passed the test's own check that
    they are valid (a re-encoding decodes to an equal message, or the same claims); `invalid_accepted` did
    not, and makes the test fail, like a crash does."""

    decoder: str
    examples: int = 0
    crashes: int = 0
    refused: int = 0
    accepted: int = 0
    invalid_accepted: int = 0
    refusal_reasons: Counter[str] = field(default_factory=Counter)

    def report(self) -> None:
        """Append this tally to the report file, when `make attacks` asked for one."""
        figures = asdict(self) | {"refusal_reasons": dict(self.refusal_reasons)}
        write_report({"kind": "fuzz", **figures})


def write_report(record: dict[str, Any]) -> None:
    path = os.environ.get(REPORT_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record, sort_keys=True) + "\n")


def read_report(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --- the run -----------------------------------------------------------------------------------------------


def run_suite(report: Path, junit: Path, *, full: bool, extra: Sequence[str]) -> int:
    env = dict(os.environ, **{REPORT_ENV: str(report), FULL_ENV: "1" if full else "0"})
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
        f"--timeout={FULL_TIMEOUT_S}", *TEST_FILES, *extra,
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, check=False)  # noqa: S603 (pytest, our arguments)
    return done.returncode


def outcomes_by_file(junit: Path) -> dict[str, Counter[str]]:
    """Tests passed and failed per file, from pytest's JUnit XML."""
    outcomes: dict[str, Counter[str]] = {}
    if not junit.exists():
        return outcomes
    for case in ElementTree.parse(junit).getroot().iter("testcase"):  # noqa: S314 (pytest's own report)
        module = case.get("classname", "?").rsplit(".", 1)[-1]
        failed = any(child.tag in ("failure", "error") for child in case)
        skipped = any(child.tag == "skipped" for child in case)
        outcome = "failed" if failed else "skipped" if skipped else "passed"
        outcomes.setdefault(module, Counter())[outcome] += 1
    return outcomes


def summary(
    records: list[dict[str, Any]], outcomes: dict[str, Counter[str]], seconds: float
) -> dict[str, Any]:
    fuzz = [r for r in records if r["kind"] == "fuzz"]
    api = [r for r in records if r["kind"] == "api"]
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "full": full_run(),
        "seconds": round(seconds, 1),
        "tests": {module: dict(counts) for module, counts in sorted(outcomes.items())},
        "decoders": len(fuzz),
        "fuzz_examples": sum(r["examples"] for r in fuzz),
        "fuzz_min_examples_per_decoder": min((r["examples"] for r in fuzz), default=0),
        "fuzz_crashes": sum(r["crashes"] for r in fuzz),
        "fuzz_refused": sum(r["refused"] for r in fuzz),
        "fuzz_accepted_valid": sum(r["accepted"] for r in fuzz),
        "fuzz_invalid_accepted": sum(r["invalid_accepted"] for r in fuzz),
        "api_operations": sum(r["operations"] for r in api),
        "api_requests": sum(r["requests"] for r in api),
        "api_server_errors": sum(r["server_errors"] for r in api),
    }


def print_table(records: list[dict[str, Any]]) -> None:
    rows = [("decoder", "examples", "crashes", "refused", "accepted", "invalid accepted")]
    for r in sorted((r for r in records if r["kind"] == "fuzz"), key=lambda r: str(r["decoder"])):
        rows.append(
            (r["decoder"], r["examples"], r["crashes"], r["refused"], r["accepted"], r["invalid_accepted"])
        )
    for r in (r for r in records if r["kind"] == "api"):
        rows.append(
            (
                f"api: {r['name']}",
                r["requests"],
                r["server_errors"],
                "-",
                "-",
                f"{r['operations']} operations",
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).rjust(width) if i else str(cell).ljust(width) for i, (cell, width) in
                        enumerate(zip(row, widths, strict=True))))  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the attack suite in its long form, with one summary")
    parser.add_argument("--short", action="store_true", help="the short form, as `make test` runs it")
    parser.add_argument("pytest_args", nargs="*", help="passed on to pytest (e.g. -k token)")
    args = parser.parse_args(argv)
    os.environ[FULL_ENV] = "0" if args.short else "1"
    with tempfile.TemporaryDirectory(prefix="meraapent-attacks-") as tmp:
        report, junit = Path(tmp) / "report.jsonl", Path(tmp) / "junit.xml"
        started = time.monotonic()
        code = run_suite(report, junit, full=not args.short, extra=args.pytest_args)
        records, outcomes = read_report(report), outcomes_by_file(junit)
        seconds = time.monotonic() - started
    print()
    print_table(records)
    print(json.dumps(summary(records, outcomes, seconds), sort_keys=True))
    return code


if __name__ == "__main__":
    sys.exit(main())
