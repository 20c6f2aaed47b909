"""The audit log, read-only (admin only, as GET /audit-log): who changed what, when, newest first, with
filters for who, what kind of thing and a period."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from central.api.deps import DbSession
from central.console.admin_forms import (
    PAGE_SIZE,
    FormError,
    Pager,
    day_end,
    day_start,
    offset_of,
    page_number,
    parse_day,
    search_text,
)
from central.console.pages import PREFIX, render
from central.console.session import AdminStaff
from central.services import audit

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def detail_text(detail: dict[str, Any]) -> str:
    """An entry's detail on one line: 'key: value; ...' (values as JSON when they are not plain text)."""
    parts = []
    for key, value in detail.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}: {shown}")
    return "; ".join(parts)


@router.get("/admin/logg")
def audit_page(
    request: Request,
    session: DbSession,
    staff: AdminStaff,
    actor: Annotated[str, Query()] = "",
    entity: Annotated[str, Query()] = "",
    entity_id: Annotated[str, Query()] = "",
    fra: Annotated[str, Query()] = "",
    til: Annotated[str, Query()] = "",
    side: Annotated[str, Query()] = "",
) -> Response:
    filters = {
        "actor": search_text(actor, 100),
        "entity": search_text(entity, 64),
        "entity_id": search_text(entity_id, 64),
        "fra": fra[:20],
        "til": til[:20],
    }
    errors = {}
    try:
        since, until = parse_day(fra[:20], "fra"), parse_day(til[:20], "til")
    except FormError as error:
        errors, since, until = error.errors, None, None
    page = page_number(side)
    entries = audit.list_entries(
        session,
        limit=PAGE_SIZE,
        offset=offset_of(page),
        actor=filters["actor"],
        entity=filters["entity"],
        entity_id=filters["entity_id"],
        since=day_start(since) if since else None,
        until=day_end(until) if until else None,
    )
    query = urlencode({k: v for k, v in filters.items() if v})
    context = {
        "active": "admin",
        "entries": [{"row": row, "detail": detail_text(row.detail)} for row in entries.items],
        "entities": audit.entity_names(session),
        "filters": {k: v or "" for k, v in filters.items()},
        "pager": Pager(page, entries.total),
        "pager_query": f"{query}&" if query else "",
        "errors": errors,
    }
    return render(request, "admin_audit.html", context, status_code=422 if errors else 200)
