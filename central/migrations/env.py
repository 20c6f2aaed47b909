"""Alembic environment, configured in code by central.db.alembic_config (no alembic.ini).

The caller passes either an open connection (config.attributes["connection"], used by central.db.migrate)
or a URL (config.attributes["url"]). SQLite gets batch mode (ALTER TABLE there is limited) and runs with
foreign keys off during the migration, checked afterwards, as Alembic's batch table rebuilds require.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection, Enum
from sqlalchemy.types import TypeEngine

from central.db import UTCDateTime, make_engine
from central.models import Base

config = context.config
target_metadata = Base.metadata


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render our Python-side types as the plain column types they are in the database."""
    if type_ != "type" or not isinstance(obj, TypeEngine):
        return False
    if isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if isinstance(obj, Enum) and not obj.native_enum:
        return f"sa.String(length={obj.length})"
    return False


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        render_item=render_item,
        **kwargs,
    )


def run_on(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    _configure(connection=connection, render_as_batch=sqlite)
    with context.begin_transaction():
        context.run_migrations()
    if sqlite:
        problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        if problems:
            raise RuntimeError(f"migration left {len(problems)} broken foreign key(s): {problems[:3]}")


def run_offline() -> None:
    url = config.attributes["url"]
    _configure(url=url, literal_binds=True, render_as_batch=url.get_backend_name() == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
elif "connection" in config.attributes:
    run_on(config.attributes["connection"])
else:
    engine = make_engine(config.attributes["url"])
    try:
        with engine.connect() as conn:
            run_on(conn)
            conn.commit()
    finally:
        engine.dispose()
