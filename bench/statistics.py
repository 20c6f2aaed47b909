"""The statistics page's numbers for 30 days × 20 sites over half a million access events, on SQLite.

`python -m bench.statistics [--events N] [--sites N] [--days N] [--db URL]` fills a fresh SQLite database (or
the given empty database) with N access events spread over the sites and days (nine in ten granted entries at
the entrance from 3,000 cards per site in opening hours, the rest inner doors and denials), three bookings
per site and day, and the sites' hours; then times central.services.statistics.statistics for all sites and
for one site, and one CSV export. One JSON line. Goal: the all-sites page's numbers in ≤ 10 s on SQLite
(measured 3.6-4.7 s on the shared 2-core build machine; one site 0.2 s). Half a million entries a month is
far beyond Asker's torg: a few hundred a day per site is ~50,000, a tenth of the work.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from sqlalchemy.orm import Session

from central.config import Settings
from central.db import make_engine, migrate, session_factory
from central.models import Booking, BookingStatus, Door, DoorKind, Event, OpeningHours, Room, Site, Zone
from central.schedules import HoursKind
from central.services import statistics as st

GOAL_S = 10.0
CARDS_PER_SITE = 3_000
OSLO = ZoneInfo("Europe/Oslo")
DENY_REASONS = ("wrong_pin", "outside_schedule", "unknown_credential", "no_booking")


def build_sites(session: Session, count: int) -> list[Site]:
    sites = []
    for n in range(count):
        site = Site(slug=f"torg-{n:02d}", name=f"Torg {n:02d}")
        torg, moterom = Zone(site=site, slug="torg", name="Torg"), Zone(site=site, slug="rom", name="Rom")
        Door(site=site, zone=torg, slug="inngang", name="Inngang", kind=DoorKind.ENTRANCE)
        Door(site=site, zone=torg, slug="bibliotek", name="Bibliotek", kind=DoorKind.INTERNAL)
        Room(site=site, zone=moterom, slug=f"rom-{n:02d}", name="Møterom")
        for weekday in range(7):
            site.opening_hours.append(OpeningHours(weekday=weekday, opens=clock(7), closes=clock(22)))
        for weekday in range(5):
            site.opening_hours.append(
                OpeningHours(weekday=weekday, opens=clock(10), closes=clock(16), kind=HoursKind.STAFFED)
            )
        session.add(site)
        sites.append(site)
    session.flush()
    return sites


def event_row(rng: random.Random, i: int, site: Site, day: date) -> dict[str, Any]:
    local = datetime.combine(day, clock(7), tzinfo=OSLO) + timedelta(seconds=rng.randrange(15 * 3600))
    denied = rng.random() < 0.05
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
        "site_id": site.id,
        "agent_client_id": f"agent-{site.slug}",
        "agent_seq": i,
        "device_time": local.astimezone(UTC),
        "received_at": local.astimezone(UTC),
        "kind": "access",
        "door_slug": "bibliotek" if rng.random() < 0.05 else "inngang",
        "credential_ref": f"c{site.id}-{rng.randrange(CARDS_PER_SITE)}",
        "decision": "deny" if denied else "grant",
        "reason": rng.choice(DENY_REASONS) if denied else "schedule",
        "data": {"method": "card"},
    }


def fill(url: str, events: int, sites_count: int, period: st.Period) -> None:
    rng = random.Random(7)
    engine = make_engine(url)
    with session_factory(engine)() as session, session.begin():
        sites = build_sites(session, sites_count)
        days = period.dates()
        per_day = -(-events // len(days))
        for n, day in enumerate(days):  # in time order, as the agents deliver them
            first = n * per_day
            numbers = range(first, min(first + per_day, events))
            rows = [event_row(rng, i, sites[i % len(sites)], day) for i in numbers]
            rows.sort(key=lambda row: row["device_time"])
            session.execute(insert(Event), rows)
        statuses = (BookingStatus.COMPLETED, BookingStatus.NO_SHOW, BookingStatus.CANCELLED)
        for site in sites:
            for day in days:
                for hour, status in zip((12, 17, 19), statuses, strict=True):
                    starts = datetime.combine(day, clock(hour), tzinfo=OSLO).astimezone(UTC)
                    checked_in = starts if status is BookingStatus.COMPLETED else None
                    session.add(
                        Booking(
                            room=site.rooms[0],
                            starts_at=starts,
                            ends_at=starts + timedelta(hours=2),
                            status=status,
                            checked_in_at=checked_in,
                            external_id=str(uuid.uuid4()),
                        )
                    )
    engine.dispose()


def timed(url: str, work: Any) -> tuple[float, Any]:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as session, session.begin():
            started = time.perf_counter()
            result = work(session)
            return time.perf_counter() - started, result
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--db", default="")
    args = parser.parse_args()
    first = date(2026, 3, 10)  # the period spans the change to summer time
    period = st.Period(first, first + timedelta(days=args.days))
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or Settings(data_dir=Path(tmp)).db_url
        migrate(url)
        fill(url, args.events, args.sites, period)
        all_s, stats = timed(url, lambda s: st.statistics(s, None, period))
        one_s, _ = timed(url, lambda s: st.statistics(s, "torg-00", period))
        csv_s, csv_file = timed(url, lambda s: st.csv_export(s, "visits-per-day", None, period))
    visits = sum(row.visits.total for row in stats.visits.per_day)
    print(
        json.dumps(
            {
                "bench": "statistics",
                "events": args.events,
                "sites": args.sites,
                "days": args.days,
                "visits": visits,
                "all_sites_s": round(all_s, 2),
                "one_site_s": round(one_s, 2),
                "csv_visits_per_day_s": round(csv_s, 2),
                "csv_bytes": len(csv_file.content),
                "goal_s": GOAL_S,
                "ok": all_s <= GOAL_S,
            }
        )
    )


if __name__ == "__main__":
    main()
