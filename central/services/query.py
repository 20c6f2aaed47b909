"""Paging for list queries: one page of rows plus the total, so callers can page without guessing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

T = TypeVar("T")


@dataclass(frozen=True)
class Slice(Generic[T]):
    """`items` is rows [offset, offset + limit) of a query whose full result has `total` rows."""

    items: list[T]
    total: int
    limit: int
    offset: int


def paginate(session: Session, stmt: Select[T], limit: int, offset: int) -> Slice[T]:
    """Run `stmt` (already filtered and ordered) for one page, plus a COUNT over the same filters."""
    count_stmt: Select[int] = select(func.count()).select_from(stmt.order_by(None).subquery())
    total = session.scalar(count_stmt) or 0
    items = list(session.scalars(stmt.limit(limit).offset(offset)))
    return Slice(items=items, total=total, limit=limit, offset=offset)


def like_pattern(text: str) -> str:
    """A case-insensitive LIKE pattern matching `text` anywhere, with LIKE wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def changed_fields(obj: Any, changes: dict[str, Any]) -> dict[str, Any]:
    """Apply `changes` to `obj`; return only those that really changed (old value, new value)."""
    diff: dict[str, Any] = {}
    for name, value in changes.items():
        old = getattr(obj, name)
        if old != value:
            setattr(obj, name, value)
            diff[name] = value
    return diff
