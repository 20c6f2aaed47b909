"""/statistics: the municipality's numbers as CSV files, one per table, for a site or all sites and a period.

The same files the console's statistics page offers for download (central.services.statistics.csv_export):
semicolons, decimal commas and a UTF-8 BOM, so Excel in Norway opens them as they are.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from central.api.auth import Staff
from central.api.deps import DbSession
from central.services import statistics as service
from central.services.errors import NotFoundError
from central.web.pages import Now

router = APIRouter(prefix="/statistics", tags=["statistics"])

TABLES = ", ".join(t.value for t in service.CsvTable)


@router.get(
    "/{table}.csv",
    summary="One statistics table as CSV for the municipality's reporting",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}}, "description": "The table, UTF-8 with a BOM, ';'-separated"}
    },
)
def statistics_csv(
    session: DbSession,
    _: Staff,
    now: Now,
    table: str,
    site: Annotated[str | None, Query(max_length=100, description="A site's slug; empty: all sites.")] = None,
    first: Annotated[
        str | None, Query(alias="from", max_length=40, description="First day (local), e.g. 2025-05-01.")
    ] = None,
    to: Annotated[
        str | None, Query(max_length=40, description="The day after the last (local), e.g. 2025-06-01.")
    ] = None,
    lang: Annotated[Literal["nb", "en"], Query(description="Language of the header row and words.")] = "nb",
) -> Response:
    """Tables: visits-per-day, visits-per-hour, meraapent-staffed, rooms, occupancy, denials; one row per
    site and day, hour, kind of hours, room, quarter hour or deny reason.

    The period is whole local days from `from` up to, not including, `to` (at most 366 days; without both,
    the last 30 days including today). What counts as a visit and how occupancy is estimated:
    central.services.statistics.
    """
    if table not in TABLES.split(", "):
        raise NotFoundError(f"there is no statistics table {table[:40]!r}; there are: {TABLES}")
    period = service.parse_period(first, to, service.local_today(now))
    file = service.csv_export(session, table, site or None, period, lang)
    return Response(
        file.content,
        media_type=file.MEDIA_TYPE,
        headers={"Content-Disposition": file.disposition, "Cache-Control": "no-store"},
    )
