"""Opening the agent's own SQLite files (replica, journal) safely: WAL, full sync, and a check that the file
is really ours and of a schema version this agent reads, so a wrong or newer file is refused by name
instead of being misread.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FileFormat:
    what: str  # "journal", "replica": used in every error message
    application_id: int  # PRAGMA application_id marks the file as ours
    version: int  # PRAGMA user_version
    schema: str  # statements separated by ';', run once in a new file
    probe: str  # a query that must work on a good file
    pragmas: tuple[str, ...] = ()  # tuning beyond WAL + synchronous=FULL
    error: type[Exception] = RuntimeError


def open_file(path: Path, fmt: FileFormat) -> sqlite3.Connection:
    """Open (creating if new) `path`; anything unusable becomes `fmt.error` naming the file."""
    db: sqlite3.Connection | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL").fetchone()
        db.execute("PRAGMA synchronous=FULL")
        for pragma in fmt.pragmas:
            db.execute(pragma)
        _ensure_schema(db, path, fmt)
        return db
    except (sqlite3.Error, OSError) as exc:
        if db is not None:
            db.close()
        raise fmt.error(f"{path}: not a usable {fmt.what} database ({exc})") from None
    except fmt.error:
        if db is not None:
            db.close()
        raise


def _ensure_schema(db: sqlite3.Connection, path: Path, fmt: FileFormat) -> None:
    app_id = db.execute("PRAGMA application_id").fetchone()[0]
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if app_id == fmt.application_id and version == fmt.version:
        db.execute(fmt.probe).fetchone()
        return
    if app_id == fmt.application_id:
        raise fmt.error(f"{path}: {fmt.what} schema version {version}, this agent reads {fmt.version}")
    tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if app_id != 0 or tables:
        raise fmt.error(f"{path}: not a {fmt.what} database (another application's SQLite file)")
    db.execute("BEGIN IMMEDIATE")
    try:
        for statement in fmt.schema.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA application_id = {fmt.application_id}")
        db.execute(f"PRAGMA user_version = {fmt.version}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
