"""Scrape latency of GET /metrics for a large estate: its gauges are read from the database per scrape.

`python -m bench.metrics [--sites N] [--open-alarms N] [--closed-alarms N] [--scrapes N] [--db URL]` fills a
fresh SQLite database (or the given empty database) with N sites and their agents (half online), open and
long-cleared alarms, a replica log and a webhook outbox, then scrapes GET /metrics through the whole app
(bearer token, request middleware, four aggregate queries, text encoding) and reports the median and 95th
percentile. One JSON line. Goal: p95 ≤ 100 ms for 100 sites and 1,000 open alarms on SQLite.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, select

from central.api import create_app
from central.config import Settings
from central.db import make_engine, migrate, session_factory
from central.models import Agent, Alarm, ApiRole, ApiUser, ReplicaChange, Site, WebhookOutbox
from central.security import api_token_hash
from protocol.messages import AlarmKind, Severity

GOAL_P95_MS = 100.0
TOKEN = "bench-monitoring-token-0123456789"
KINDS = list(AlarmKind)
SEVERITIES = list(Severity)


class StubGateway:
    """Counters shaped like a running gateway's status(), so the gateway collector does its share."""

    def status(self) -> dict[str, Any]:
        return {
            "connected": True,
            "connects": 1,
            "commands": {"sent": 12, "failed": 0},
            "ingest": {
                "events_inserted": 1_000_000,
                "events_duplicate": 5_000,
                "received": {"event": 1_005_000, "status": 4_000, "door": 90_000},
                "refused": {"not_json": 3, "unknown_site": 1},
                "backlog": 0,
                "last_commit_at": datetime.now(UTC).isoformat(),
            },
            "publisher": {
                "deltas_published": 20_000,
                "snapshots_published": 100,
                "state_published": 300,
                "errors": 0,
            },
        }


def fill(engine: Engine, sites: int, open_alarms: int, closed_alarms: int, now: datetime) -> None:
    with session_factory(engine)() as session, session.begin():
        session.add(ApiUser(username="prometheus", role=ApiRole.MONITORING, token_hash=api_token_hash(TOKEN)))
        session.execute(insert(Site), [{"slug": f"torg-{i:03}", "name": f"Torg {i}"} for i in range(sites)])
        site_ids = list(session.scalars(select(Site.id).order_by(Site.id)))
        session.execute(
            insert(Agent),
            [
                {"site_id": sid, "client_id": f"agent-{sid}", "online": i % 2 == 0, "last_seen_at": now}
                for i, sid in enumerate(site_ids)
            ],
        )
        session.execute(insert(Alarm), [_alarm(i, site_ids, now, cleared=False) for i in range(open_alarms)])
        session.execute(insert(Alarm), [_alarm(i, site_ids, now, cleared=True) for i in range(closed_alarms)])
        session.execute(
            insert(ReplicaChange),
            [
                {
                    "site_id": site_ids[i % sites],
                    "seq": i // sites + 1,
                    "op": "upsert",
                    "credential_ref": f"c{i}",
                    "created_at": now - timedelta(minutes=i % 60),
                    "published_at": None if i % 50 == 0 else now,
                }
                for i in range(20 * sites)
            ],
        )
        session.execute(
            insert(WebhookOutbox),
            [
                {
                    "event_id": str(uuid.uuid4()),
                    "kind": "no_show",
                    "payload": {},
                    "created_at": now - timedelta(minutes=i % 90),
                    "attempts": i % 3,
                    "next_attempt_at": now,
                    "delivered_at": None if i % 10 == 0 else now,
                }
                for i in range(500)
            ],
        )


def _alarm(i: int, site_ids: list[int], now: datetime, *, cleared: bool) -> dict[str, Any]:
    raised = now - timedelta(minutes=i % 600)
    return {
        "site_id": site_ids[i % len(site_ids)],
        "kind": KINDS[i % len(KINDS)].value,
        "severity": SEVERITIES[i % len(SEVERITIES)].value,
        "raised_at": raised,
        "cleared_at": raised + timedelta(minutes=5) if cleared else None,
        "acknowledged_at": raised if cleared or i % 3 == 0 else None,
        "acknowledged_by": "kari" if cleared or i % 3 == 0 else None,
        "comment": "",
    }


def scrape_times(client: TestClient, scrapes: int) -> tuple[list[float], int, int]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    timings, size, lines = [], 0, 0
    for _ in range(scrapes):
        started = time.perf_counter()
        response = client.get("/metrics", headers=headers)
        timings.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        size = len(response.content)
        lines = sum(1 for line in response.text.splitlines() if line and not line.startswith("#"))
    return timings, size, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--open-alarms", type=int, default=1_000)
    parser.add_argument("--closed-alarms", type=int, default=50_000)
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--db", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db_url = args.db or f"sqlite:///{Path(tmp) / 'metrics.db'}"
        migrate(db_url)
        engine = make_engine(db_url)
        fill(engine, args.sites, args.open_alarms, args.closed_alarms, datetime.now(UTC))
        app = create_app(Settings(data_dir=Path(tmp), db_url=db_url), engine=engine, gateway=StubGateway())
        with TestClient(app) as client:
            scrape_times(client, 3)  # warm up: first connection, route index, statement cache
            timings, size, series = scrape_times(client, args.scrapes)
        engine.dispose()
    p95 = statistics.quantiles(timings, n=20)[-1]
    print(
        json.dumps(
            {
                "bench": "metrics",
                "database": db_url.split(":", 1)[0],
                "sites": args.sites,
                "open_alarms": args.open_alarms,
                "closed_alarms": args.closed_alarms,
                "scrapes": args.scrapes,
                "median_ms": round(statistics.median(timings), 1),
                "p95_ms": round(p95, 1),
                "response_bytes": size,
                "series": series,
                "goal_p95_ms": GOAL_P95_MS,
                "ok": p95 <= GOAL_P95_MS,
            }
        )
    )


if __name__ == "__main__":
    main()
