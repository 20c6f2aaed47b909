"""MQTT gateway metrics, read at scrape time from the counters the gateway already keeps (`Gateway.status()`).

No second set of counters to keep in step: the ingest worker, the publisher and the link count for their own
status, and this collector only renames what they report. Counters restart at zero with the process, which
Prometheus' rate() handles. Without a gateway in this process (tests, or `central gateway` run apart) only
`meraapent_gateway_running 0` is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = structlog.get_logger(__name__)

# publisher.status() key -> the `kind` label of meraapent_mqtt_published_total
_PUBLISHED = {"state_published": "state", "deltas_published": "delta", "snapshots_published": "snapshot"}


class GatewayCollector(Collector):
    """Collects from whatever gateway `current()` returns at scrape time (the app's may come and go)."""

    def __init__(self, current: Callable[[], Any]) -> None:
        self._current = current

    def collect(self) -> Iterator[Metric]:
        gateway = self._current()
        status: Mapping[str, Any] | None = None
        if gateway is not None:
            try:
                status = gateway.status()
            except Exception as exc:  # a scrape must not fail because the gateway is in trouble
                log.warning("metrics.gateway_status_failed", error=type(exc).__name__)
        yield GaugeMetricFamily(
            "meraapent_gateway_running",
            "1 if the MQTT gateway runs in this process.",
            value=int(gateway is not None),
        )
        if status is not None:
            yield from gateway_families(status)


def gateway_families(status: Mapping[str, Any]) -> Iterator[Metric]:
    """The metric families for one `Gateway.status()` (keys it lacks are left out, never guessed)."""
    if "connected" in status:
        yield GaugeMetricFamily(
            "meraapent_mqtt_connected",
            "1 while the gateway is connected to the broker.",
            value=int(bool(status["connected"])),
        )
    if "connects" in status:
        yield _counter("meraapent_mqtt_connects", "Connections made to the broker.", status["connects"])
    ingest: Mapping[str, Any] = status.get("ingest") or {}
    if "received" in ingest:
        yield _labelled_counter(
            "meraapent_mqtt_messages_received",
            "MQTT messages received from agents, by channel.",
            "channel",
            ingest["received"],
        )
    if "refused" in ingest:
        yield _labelled_counter(
            "meraapent_mqtt_messages_refused",
            "MQTT messages refused (not acted on), by reason.",
            "reason",
            ingest["refused"],
        )
    if "events_inserted" in ingest:
        yield _labelled_counter(
            "meraapent_events_ingested",
            "Agent events committed: new, or a duplicate of one already stored (a resend).",
            "outcome",
            {"new": ingest["events_inserted"], "duplicate": ingest.get("events_duplicate", 0)},
        )
    if "backlog" in ingest:
        yield GaugeMetricFamily(
            "meraapent_ingest_backlog", "Messages received but not yet processed.", value=ingest["backlog"]
        )
    if last_commit := ingest.get("last_commit_at"):
        yield GaugeMetricFamily(
            "meraapent_ingest_last_commit_timestamp_seconds",
            "When ingest last committed a batch (Unix time).",
            value=datetime.fromisoformat(last_commit).timestamp(),
        )
    yield from _publisher_families(status.get("publisher") or {})
    if "commands" in status:
        yield _labelled_counter(
            "meraapent_commands_published",
            "Remote commands handed to the broker (sent) or not (failed).",
            "outcome",
            status["commands"],
        )


def _publisher_families(publisher: Mapping[str, Any]) -> Iterator[Metric]:
    published = {kind: publisher[key] for key, kind in _PUBLISHED.items() if key in publisher}
    if published:
        yield _labelled_counter(
            "meraapent_mqtt_published",
            "Messages published to agents, by kind (state, delta, snapshot).",
            "kind",
            published,
        )
    if "errors" in publisher:
        yield _counter("meraapent_publisher_errors", "Publishing rounds that failed.", publisher["errors"])


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _labelled_counter(name: str, documentation: str, label: str, values: Mapping[str, float]) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family
