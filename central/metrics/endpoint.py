"""GET /metrics: the app's registry in the Prometheus text format (or OpenMetrics, if the scraper asks).

Behind the `monitoring` role (admin may too): a Prometheus server scrapes with a bearer token from a file
(`authorization: {credentials_file: ...}` in its scrape config); no other role needs these numbers.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client.exposition import choose_encoder

from central.api.auth import Principal, require
from central.models import ApiRole

MONITORING = require(ApiRole.MONITORING)
Monitoring = Annotated[Principal, Depends(MONITORING)]

router = APIRouter(tags=["monitoring"])


@router.get(
    "/metrics",
    summary="Metrics for Prometheus",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "The metrics, Prometheus text format"}},
)
def metrics(request: Request, _: Monitoring) -> Response:
    """Requests, MQTT messages, events ingested, agents online, open alarms and backlogs, as counted now.

    Roles: monitoring, admin."""
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    body = encode(request.app.state.metrics.registry)
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})
