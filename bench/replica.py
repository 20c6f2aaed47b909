"""How long a full replica snapshot of a big site takes to build and encode.

`python -m bench.replica [--credentials N] [--no-postgresql]` bulk-inserts N residents with a card each (PIN
hash included, as in production) into a fresh SQLite file and a throwaway PostgreSQL cluster, then times
`central.replica.build_snapshot` and `protocol.codec.encode` (best of three). Prints one JSON line; the goal
is a 100,000-credential snapshot built in at most two seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, text

from central.db import make_engine, migrate, session_factory
from central.models import (
    AccessGroup,
    Credential,
    CredentialKind,
    GroupMember,
    GroupZone,
    Person,
    PersonKind,
    Site,
    Zone,
)
from central.replica import build_snapshot
from protocol import codec

SITE = "bench-torg"
PIN_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
CHUNK = 10_000


def populate(engine: Engine, count: int) -> None:
    """One site, one group with a zone there, `count` people with one card each (bulk Core inserts)."""
    now = datetime.now(UTC)
    with session_factory(engine)() as session, session.begin():
        site = Site(slug=SITE, name="Bench innbyggertorg")
        zone = Zone(slug="torg", name="Torget")
        site.zones.append(zone)
        group = AccessGroup(slug="innbyggere", name="Innbyggere")
        session.add_all([site, group])
        session.flush()
        session.execute(insert(GroupZone).values(group_id=group.id, zone_id=zone.id))
        for start in range(0, count, CHUNK):
            ids = range(start + 1, min(start + CHUNK, count) + 1)
            session.execute(
                insert(Person),
                [
                    {
                        "id": i,
                        "kind": PersonKind.RESIDENT,
                        "display_name": f"Innbygger {i}",
                        "created_at": now,
                    }
                    for i in ids
                ],
            )
            session.execute(insert(GroupMember), [{"group_id": group.id, "person_id": i} for i in ids])
            session.execute(
                insert(Credential),
                [
                    {
                        "id": i,
                        "person_id": i,
                        "kind": CredentialKind.CARD,
                        "uid_hash": f"{i:064x}",
                        "pin_hash": PIN_HASH,
                        "valid_from": now,
                        "created_at": now,
                    }
                    for i in ids
                ],
            )
        if engine.dialect.name == "postgresql":  # explicit ids: move the sequences past them
            for table in ("persons", "credentials"):
                session.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {count})"))
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")


def best_of(runs: int, action: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - started)
    return best, result


def measure(url: str, count: int) -> dict[str, Any]:
    migrate(url)
    engine = make_engine(url)
    try:
        started = time.perf_counter()
        populate(engine, count)
        populate_s = time.perf_counter() - started
        sessions = session_factory(engine)

        def build() -> Any:
            with sessions() as session:
                return build_snapshot(session, SITE)

        build_s, snapshot = best_of(3, build)
        encode_s, payload = best_of(3, lambda: codec.encode(snapshot))
        decode_s, _ = best_of(1, lambda: codec.decode(payload, type(snapshot)))
        assert len(snapshot.credentials) == count
        return {
            "populate_s": round(populate_s, 2),
            "build_s": round(build_s, 3),
            "encode_s": round(encode_s, 3),
            "decode_s": round(decode_s, 3),
            "encoded_bytes": len(payload),
        }
    finally:
        engine.dispose()


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    from tests.infra import running_postgres_cluster

    with running_postgres_cluster() as cluster:
        yield cluster.create_database("bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--credentials", type=int, default=100_000)
    parser.add_argument("--no-postgresql", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-replica-") as tmp:
        sqlite = measure(f"sqlite:///{Path(tmp) / 'central.db'}", args.credentials)
    result: dict[str, Any] = {
        "bench": "replica",
        "credentials": args.credentials,
        "build_s": sqlite["build_s"],
        "encoded_bytes": sqlite["encoded_bytes"],
        "encode_s": sqlite["encode_s"],
        "decode_s": sqlite["decode_s"],
        "database": "sqlite",
    }
    if not args.no_postgresql:
        with postgres_url() as url:
            pg = measure(url, args.credentials)
        result["postgresql_build_s"] = pg["build_s"]
    slowest = max(result["build_s"], result.get("postgresql_build_s", 0.0))
    result["goal_2s"] = slowest <= 2.0
    result["cpus"] = os.cpu_count()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
