"""The agent process: cold start to door-ready, and its memory with 100,000 credentials in the replica.

`python -m bench.agent [--credentials N] [--runs N]` prepares a data directory as a site agent leaves it
(replica with N credentials, the last site config), then starts `python -m bench.agent --child CONFIG` as a
fresh process, as systemd would. The child runs controller.runtime.start on MockFactory pins (no broker and
no pcscd reachable: the agent must be ready without them), decides one card tap, and prints its resident
memory. Cold start = process spawn → the door is locked, the config and replica are loaded and a tap is
decided. One JSON line with medians. Goals: RSS ≤ 80 MB, cold start ≤ 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.decision import UID_KEY, card_uid, credentials
from controller.replica import Replica
from protocol import messages as m
from tests.test_controller_schedule import heggedal_config

GOAL_RSS_MB = 80
GOAL_START_S = 2.0


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare(root: Path, count: int) -> Path:
    data = root / "agent"
    data.mkdir()
    with Replica(data / "replica.db", site="heggedal") as replica:
        made = heggedal_config().issued_at
        people = credentials(0, count)
        snapshot = m.ReplicaSnapshot(site="heggedal", seq=1, generated_at=made, credentials=people)
        replica.apply_snapshot(snapshot)
        replica.save_config(heggedal_config())
    (root / "uid.key").write_text(UID_KEY.hex(), encoding="utf-8")
    config = root / "site.toml"
    config.write_text(
        f"""
[agent]
site = "heggedal"
name = "bench-pi"
data_dir = "{data}"
uid_hash_key_file = "{root / 'uid.key'}"

[mqtt]
host = "127.0.0.1"
port = {unused_port()}

[[doors]]
slug = "hovedinngang"
relay = "GPIO17"
lock_type = "fail_secure"
contact = "GPIO27"
exit_button = "GPIO22"
reader = "pcsc:No Such Reader"
""",
        encoding="utf-8",
    )
    return config


def child(config_path: Path) -> None:
    """Runs in the fresh process: start, decide a tap, report, stop."""
    from gpiozero.pins.mock import MockFactory

    from controller.config import load_config
    from controller.inputs import CardPresented
    from controller.runtime import start
    from protocol import messages as m

    running = start(load_config(config_path), factory=MockFactory())
    agent = running.agent
    agent.submit(CardPresented("hovedinngang", card_uid(7)))
    agent.drain()
    decided = [e for e, _payload in agent.journal.pending() if isinstance(e, m.AccessEvent)]
    # known card, decided with the site's hours: granted in meråpent hours, site_closed outside them
    known = bool(decided) and decided[-1].reason is not m.Reason.UNKNOWN_CREDENTIAL
    ready = agent.view is not None and (known or agent.awaiting_pin("hovedinngang"))  # residents: PIN next
    rss_kb = next(
        int(line.split()[1])
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    reasons = [e.reason.value for e in decided]
    print(json.dumps({"ready": ready, "rss_kb": rss_kb, "reasons": reasons}), flush=True)
    running.close()


def one_start(config: Path) -> tuple[float, float]:
    """(seconds from spawn to ready, RSS in MB) of one fresh agent process."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.agent", "--child", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = next((raw for raw in process.stdout if raw.startswith("{")), "")
    elapsed = time.monotonic() - started
    process.wait(30)
    if not line:
        raise SystemExit(f"agent bench: the agent process printed nothing (exit code {process.returncode})")
    report = json.loads(line)
    if not report["ready"]:
        raise SystemExit("agent bench: the agent did not grant the known card after start")
    return elapsed, report["rss_kb"] / 1024


def run(count: int, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="agent-bench-") as tmp:
        config = prepare(Path(tmp), count)
        one_start(config)  # warm the page cache as a booted Pi would have it after the first start
        results = [one_start(config) for _ in range(runs)]
    start_s = statistics.median(r[0] for r in results)
    rss_mb = statistics.median(r[1] for r in results)
    return {
        "bench": "agent",
        "credentials": count,
        "runs": runs,
        "cold_start_s": round(start_s, 3),
        "rss_mb": round(rss_mb, 1),
        "goal_rss_80mb": rss_mb <= GOAL_RSS_MB,
        "goal_start_2s": start_s <= GOAL_START_S,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--credentials", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    if args.credentials < 10 or args.runs < 1:
        parser.error("--credentials must be at least 10 and --runs at least 1")
    print(json.dumps(run(args.credentials, args.runs)))


if __name__ == "__main__":
    main()
