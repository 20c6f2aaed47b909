"""Shared fixtures: databases and MQTT brokers that are the real thing (see tests/infra.py).

- `db_url`: every test that takes it runs twice, on SQLite and on PostgreSQL, each time with a fresh empty
  database, because production runs both and they differ (types, time zones, locking).
- `postgres_url`: the session's throwaway cluster (its `postgres` database); prefer `db_url`.
- `engine`, `session`, `sessions`: that database migrated to the head revision, as an engine, an open
  session, or a session factory.
- `mosquitto`: one broker for the whole session. Use unique site slugs per test: retained messages stay.
- `private_mosquitto`: a broker of the test's own, for tests that stop(), kill() or restart() it.

Tests using PostgreSQL or a broker are marked `postgres` / `mqtt` automatically, so `-m "not postgres"` works.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import argon2
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from central.db import make_engine, migrate, session_factory
from central.security import use_pin_hash_parameters
from tests.infra import (
    MosquittoBroker,
    PostgresCluster,
    running_mosquitto,
    running_postgres_cluster,
    unique_db_name,
)

_POSTGRES_FIXTURES = {"postgres_cluster", "postgres_url"}
_MQTT_FIXTURES = {"mosquitto", "private_mosquitto"}


@pytest.fixture(scope="session", autouse=True)
def cheap_pin_hashing() -> Iterator[None]:
    """Every test hashes PINs with argon2's cheapest parameters; stored hashes stay verifiable either way."""
    previous = use_pin_hash_parameters(argon2.profiles.CHEAPEST)
    yield
    use_pin_hash_parameters(previous)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """The session's PostgreSQL cluster: .url(db), .create_database(name), .drop_database(name)."""
    with running_postgres_cluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """SQLAlchemy URL of the cluster's `postgres` database: postgresql+psycopg://postgres@127.0.0.1:PORT/postgres."""
    return postgres_cluster.url()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for this test only: a SQLite file or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    name = unique_db_name()
    url = cluster.create_database(name)
    yield url
    cluster.drop_database(name)


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[MosquittoBroker]:
    """The session's broker (.host, .port). Do not stop it; take `private_mosquitto` for that."""
    with running_mosquitto() as broker:
        yield broker


@pytest.fixture
def private_mosquitto() -> Iterator[MosquittoBroker]:
    """A broker for this test alone: stop()/start()/kill()/restart() keep its port and persistence."""
    with running_mosquitto() as broker:
        yield broker


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & _POSTGRES_FIXTURES:
            item.add_marker(pytest.mark.postgres)
        if names & _MQTT_FIXTURES:
            item.add_marker(pytest.mark.mqtt)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    migrate(db_url)
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with session_factory(engine)() as session:
        yield session


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)
