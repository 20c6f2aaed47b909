"""Prometheus metrics for central: one registry per app, served at GET /metrics (role `monitoring`).

- HTTP requests and latency by route template (`central.metrics.http`, an ASGI middleware);
- the MQTT gateway's own counters, read at scrape time (`central.metrics.gateway`);
- gauges from the database at scrape time: agents online, open alarms, backlogs (`central.metrics.database`).

A registry of its own per app (never prometheus_client's global one) keeps two apps in one process, as in
the tests, from sharing or clashing over series. `install(app)` is all `create_app` calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from central.db import utcnow
from central.metrics.database import DatabaseCollector
from central.metrics.endpoint import router
from central.metrics.gateway import GatewayCollector
from central.metrics.http import RequestMetrics, RequestMetricsMiddleware

__all__ = ["AppMetrics", "install"]


@dataclass(frozen=True)
class AppMetrics:
    """What `install` put on `app.state.metrics`."""

    registry: CollectorRegistry
    requests: RequestMetrics


def install(app: FastAPI, clock: Callable[[], datetime] = utcnow) -> AppMetrics:
    """Give `app` its registry, the request middleware (outermost, so it sees every response) and
    GET /metrics. Call after the routes are added and before the app starts."""
    registry = CollectorRegistry()
    requests = RequestMetrics(registry, lambda: app.routes)
    registry.register(GatewayCollector(lambda: app.state.gateway))
    registry.register(DatabaseCollector(app.state.session_factory, clock))
    metrics = AppMetrics(registry, requests)
    app.state.metrics = metrics
    app.include_router(router)
    app.add_middleware(RequestMetricsMiddleware, metrics=requests)
    return metrics
