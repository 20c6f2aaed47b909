"""The audit trail: who changed what, written in the same transaction as the change itself."""

from __future__ import annotations

from datetime import date, datetime, time
from enum import Enum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.models import AuditLog
from central.services.query import Slice, paginate


def _plain(value: Any) -> Any:
    """JSON-friendly copy of a detail value (dates as ISO text, enums by value)."""
    if hasattr(value, "slug") and hasattr(value, "__tablename__"):  # an ORM row: name it by its slug
        return value.slug
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


def record(
    session: Session,
    actor: str,
    action: str,
    entity: str,
    entity_id: object | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditLog:
    """Add one audit row; never put secrets (UIDs, PINs, tokens) in `detail`."""
    row = AuditLog(
        actor=actor,
        action=action,
        entity=entity,
        entity_id=None if entity_id is None else str(entity_id),
        detail=_plain(detail or {}),
    )
    session.add(row)
    return row


def list_entries(
    session: Session,
    *,
    limit: int,
    offset: int,
    actor: str | None = None,
    entity: str | None = None,
    entity_id: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Slice[AuditLog]:
    stmt = select(AuditLog)
    if actor is not None:
        stmt = stmt.where(AuditLog.actor == actor)
    if entity is not None:
        stmt = stmt.where(AuditLog.entity == entity)
    if entity_id is not None:
        stmt = stmt.where(AuditLog.entity_id == entity_id)
    if action is not None:
        stmt = stmt.where(AuditLog.action == action)
    if since is not None:
        stmt = stmt.where(AuditLog.at >= since)
    if until is not None:
        stmt = stmt.where(AuditLog.at < until)
    return paginate(session, stmt.order_by(AuditLog.at.desc(), AuditLog.id.desc()), limit, offset)


def entity_names(session: Session) -> list[str]:
    """The kinds of thing the trail has entries about (for a filter to choose from)."""
    return list(session.scalars(select(AuditLog.entity).distinct().order_by(AuditLog.entity)))
