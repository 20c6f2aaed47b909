"""Migrations build exactly the schema the models describe, on SQLite and PostgreSQL, and `migrate` is safe
to run again; the `central migrate` command reports problems in one line."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect
from typer.testing import CliRunner

from central.cli import app
from central.db import (
    SchemaOutOfDateError,
    alembic_config,
    current_revision,
    ensure_migrated,
    head_revision,
    make_engine,
    migrate,
)
from central.models import Base


def schema_diff(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def test_migrated_schema_matches_the_models_exactly(db_url: str) -> None:
    migrate(db_url)
    engine = make_engine(db_url)
    try:
        assert schema_diff(engine) == []
        assert current_revision(engine) == head_revision()
        ensure_migrated(engine)
        with engine.begin() as conn:  # the comparison notices a difference when there is one
            conn.exec_driver_sql("DROP INDEX ix_events_received_at")
        assert [d[0] for d in schema_diff(engine)] == ["add_index"]
    finally:
        engine.dispose()


def test_migrate_again_changes_nothing(db_url: str) -> None:
    migrate(db_url)
    engine = make_engine(db_url)
    try:
        before = sorted(inspect(engine).get_table_names())
        migrate(db_url)
        engine.dispose()
        assert sorted(inspect(engine).get_table_names()) == before
        assert "sites" in before and "alembic_version" in before
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_downgrade_to_nothing_and_back(db_url: str) -> None:
    migrate(db_url)
    command.downgrade(alembic_config(db_url), "base")
    engine = make_engine(db_url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        with pytest.raises(SchemaOutOfDateError, match="not migrated: run `meraapent central migrate`"):
            ensure_migrated(engine)
        migrate(db_url)
        engine.dispose()
        assert schema_diff(engine) == []
    finally:
        engine.dispose()


def test_cli_migrate_reports_success(db_url: str) -> None:
    result = CliRunner().invoke(app, ["migrate", "--db", db_url])
    assert result.exit_code == 0, result.output
    assert "Database is up to date" in result.stdout


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("no-such-scheme", "not a database URL"),
        ("mysql://u@localhost/x", "unsupported database 'mysql'"),
        (
            "postgresql://meraapent:hemmelig@127.0.0.1:9/x",
            "database error at postgresql://meraapent:***@127.0.0.1:9/x",
        ),
    ],
)
def test_cli_migrate_fails_in_one_line(url: str, message: str) -> None:
    result = CliRunner().invoke(app, ["migrate", "--db", url])
    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "hemmelig" not in result.stderr
    assert "Traceback" not in result.output
