"""The retention sweep over a million access events: set-based, so it takes seconds, not hours.

`python -m bench.retention [--events N] [--cards N] [--db URL]` fills a fresh SQLite database (or the given
empty database) with N identified access events from N cards spread over 60 days, half of them older than
the 30-day retention, then times one apply_retention run and a second (idle) run. One JSON line.
Goal: a million events pseudonymised in ≤ 60 s on SQLite.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from central.config import Settings
from central.db import make_engine, migrate, session_factory
from central.models import Event, EventKind, Site
from central.services.retention import apply_retention

GOAL_S = 60.0
BATCH = 20_000


def fill(settings: Settings, events: int, cards: int, now: datetime) -> None:
    engine = make_engine(settings.db_url)
    with session_factory(engine)() as session, session.begin():
        site = Site(slug="bench", name="Bench")
        session.add(site)
        session.flush()
        for start in range(0, events, BATCH):
            rows = [
                {
                    "event_id": str(uuid.uuid4()),
                    "site_id": site.id,
                    "agent_client_id": "agent-bench",
                    "agent_seq": i,
                    "device_time": now - timedelta(minutes=i * 60 * 24 * 60 // events),
                    "received_at": now,
                    "kind": EventKind.ACCESS,
                    "door_slug": f"door-{i % 4}",
                    "credential_ref": f"c{i % cards}",
                    "decision": "grant",
                    "reason": "schedule",
                    "data": {},
                }
                for i in range(start, min(start + BATCH, events))
            ]
            session.execute(insert(Event), rows)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--cards", type=int, default=2_000)
    parser.add_argument("--db", default="")
    args = parser.parse_args()
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), db_url=args.db)
        migrate(settings.db_url)
        fill(settings, args.events, args.cards, now)
        engine = make_engine(settings.db_url)
        timings = []
        reports = []
        for _ in range(2):
            started = time.perf_counter()
            with session_factory(engine)() as session, session.begin():
                reports.append(apply_retention(session, settings, now))
            timings.append(time.perf_counter() - started)
        engine.dispose()
    print(
        json.dumps(
            {
                "bench": "retention",
                "events": args.events,
                "cards": args.cards,
                "pseudonymised": reports[0].events_pseudonymised,
                "first_run_s": round(timings[0], 2),
                "second_run_s": round(timings[1], 2),
                "second_run_changed": reports[1].changed,
                "goal_s": GOAL_S,
                "ok": timings[0] <= GOAL_S,
            }
        )
    )


if __name__ == "__main__":
    main()
