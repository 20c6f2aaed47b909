"""Database plumbing: engines for SQLite and PostgreSQL, sessions, UTC datetimes and migrations.

One code path serves both databases (sync SQLAlchemy + psycopg 3). SQLite needs per-connection pragmas
(foreign keys are off by default there) and returns naive datetimes, which `UTCDateTime` hides.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Dialect, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 5000


class DatabaseUrlError(ValueError):
    """The database URL cannot be used; the message says why."""


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (the only kind of datetime central stores)."""
    return datetime.now(UTC)


def normalise_url(url: str | URL) -> URL:
    """Parse a database URL and pick our drivers: psycopg 3 for PostgreSQL, the stdlib for SQLite."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseUrlError(
            f"not a database URL: {url!r} (expected sqlite:///PATH or postgresql://...)"
        ) from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if parsed.get_driver_name() not in ("pysqlite", ""):
            raise DatabaseUrlError(f"unsupported SQLite driver in {parsed.drivername!r}; use sqlite:///PATH")
        return parsed.set(drivername="sqlite")
    raise DatabaseUrlError(f"unsupported database {backend!r}: use sqlite:///PATH or postgresql://...")


def _is_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or bool(url.query.get("mode") == "memory")


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An Engine for `url`; SQLite files get their directory created and WAL, foreign keys, busy timeout."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True, **kwargs)
    if not _is_memory(parsed) and parsed.database:
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, **kwargs)
    memory = _is_memory(parsed)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay usable after commit (handy for returning them from services)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit if the block succeeds, roll back if it raises."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware UTC, on SQLite as on PostgreSQL.

    Naive datetimes are refused on write: their meaning (local? UTC?) is a guess we will not make.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} refused: give a timezone-aware (UTC) datetime"
            )
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def alembic_config(url: str | URL) -> Any:
    """An Alembic Config built in code (no alembic.ini): our script location, the given database.

    Developers create a new revision with
    `alembic.command.revision(alembic_config(url), autogenerate=True, message="...")`.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Kept out of the ini-style main options, whose %-interpolation would mangle passwords.
    config.attributes["url"] = normalise_url(url)
    return config


def migrate(url: str | URL, revision: str = "head") -> None:
    """Bring the schema at `url` up to `revision` (default: the newest). Safe to run again."""
    from alembic import command

    config = alembic_config(url)
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            connection.commit()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    """The newest migration revision shipped with this code."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The migration revision the database is at (None if never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def ensure_migrated(engine: Engine) -> None:
    """Raise a clear error if the schema is not at the newest revision."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        state = "not migrated" if current is None else f"at revision {current}, code expects {head}"
        raise SchemaOutOfDateError(f"database schema is {state}: run `meraapent central migrate`")


class SchemaOutOfDateError(RuntimeError):
    """The database schema does not match this code's migrations."""
