"""HTTP request metrics: a pure ASGI middleware counting requests and timing them by route TEMPLATE.

Labels are bounded on purpose: the route is the template the request matched ("/sites/{site}/doors/{door}"),
never the raw path, and anything that matched no route is "<unmatched>", so a scanner probing random URLs
adds no series. Methods outside the standard set are "OTHER" (HTTP allows any token there).

The latency is the time until the response headers leave: for an ordinary response that is the whole work
of the endpoint, and a long-lived stream (server-sent events) counts its set-up instead of its hours.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from fastapi.routing import iter_route_contexts
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RouteTemplates:
    """The full template of the route a request matched, looked up after routing has run.

    FastAPI keeps included routers nested, and a route's own `path` lacks the prefixes it was included
    under; the full template comes from `iter_route_contexts`, indexed once by route and endpoint identity
    (routes are neither hashable nor changed after start-up; a route not seen yet triggers one re-index).
    """

    def __init__(self, routes: Callable[[], Sequence[BaseRoute]]) -> None:
        self._routes = routes
        self._by_id: dict[int, str] = {}

    def of(self, scope: Scope, root_path_before: str) -> str:
        route = scope.get("route")
        if route is not None:
            return self._lookup(route, getattr(route, "path", None) or UNMATCHED)
        root_path = scope.get("root_path", "")
        if root_path != root_path_before and root_path.startswith(root_path_before):
            return f"{root_path[len(root_path_before) :]}/{{path}}"  # a mount (static files)
        endpoint = scope.get("endpoint")  # a plain Starlette route (/docs, /openapi.json)
        return UNMATCHED if endpoint is None else self._lookup(endpoint, UNMATCHED)

    def _lookup(self, thing: Any, fallback: str) -> str:
        key = id(thing)
        found = self._by_id.get(key)
        if found is None:
            self._index()
            found = self._by_id.setdefault(key, fallback)
        return found

    def _index(self) -> None:
        for context in iter_route_contexts(self._routes()):
            path = context.path
            if not path:
                continue
            self._by_id.setdefault(id(context.original_route), path)
            endpoint = getattr(context.original_route, "endpoint", None)
            if endpoint is not None:
                self._by_id.setdefault(id(endpoint), path)


class RequestMetrics:
    """The request counter and latency histogram of one app, in that app's registry."""

    def __init__(self, registry: CollectorRegistry, routes: Callable[[], Sequence[BaseRoute]]) -> None:
        self.templates = RouteTemplates(routes)
        self.requests = Counter(
            "meraapent_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "meraapent_http_request_duration_seconds",
            "Seconds from receiving a request until its response headers were sent, by route template.",
            ["method", "route"],
            registry=registry,
        )

    def observe(self, scope: Scope, root_path_before: str, status: int, seconds: float) -> None:
        method = scope.get("method", "")
        method = method if method in METHODS else "OTHER"
        route = self.templates.of(scope, root_path_before)
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)


class RequestMetricsMiddleware:
    """Counts every HTTP request once, when its response starts (or as 500 if the app failed before)."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        root_path_before = scope.get("root_path", "")
        answered = False

        async def send_and_observe(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start" and not answered:
                answered = True
                elapsed = time.perf_counter() - started
                self.metrics.observe(scope, root_path_before, int(message["status"]), elapsed)
            await send(message)

        try:
            await self.app(scope, receive, send_and_observe)
        except Exception:
            if not answered:  # the server's error handler outside us answers 500
                self.metrics.observe(scope, root_path_before, 500, time.perf_counter() - started)
            raise
