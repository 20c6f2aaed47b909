"""Gauges computed from the database at scrape time: agents online, open alarms, webhook and replica backlogs.

Five aggregate queries per scrape, whatever the number of sites, alarms or events (bench/metrics.py measures
it). Reading (`read_gauges`) is split from naming (`gauge_families`, pure) so the names are tested without a
database. A database that cannot be reached does not fail the scrape: `meraapent_database_up` says 0 and
the other metrics still come, which is what an alert wants to see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import structlog
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, func, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from central.db import utcnow
from central.models import Agent, Alarm, AlarmSeverity, NotificationOutbox, ReplicaChange, Site, WebhookOutbox
from protocol.messages import AlarmKind

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SiteAgent:
    site: str
    online: bool  # False too for a site whose agent has never reported
    last_seen_at: datetime | None
    known: bool  # an agent has reported from this site at least once


@dataclass(frozen=True)
class AlarmCount:
    severity: str
    kind: str
    open: int  # not cleared at the door yet (the API's `active`)
    unacknowledged: int  # no person has acknowledged it yet, cleared or not


@dataclass(frozen=True)
class Backlog:
    count: int
    oldest_at: datetime | None
    failing: int = 0


@dataclass(frozen=True)
class DatabaseGauges:
    agents: list[SiteAgent]
    alarms: list[AlarmCount]
    webhooks: Backlog
    replica: Backlog
    notifications: Backlog = Backlog(0, None)


def _ones(condition: object) -> object:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)  # type: ignore[arg-type]


def read_gauges(session: Session) -> DatabaseGauges:
    """The five aggregate queries of one scrape."""
    agents = [
        SiteAgent(slug, bool(online), last_seen, agent_id is not None)
        for slug, agent_id, online, last_seen in session.execute(
            select(Site.slug, Agent.id, Agent.online, Agent.last_seen_at)
            .outerjoin(Agent, Agent.site_id == Site.id)
            .order_by(Site.slug)
        )
    ]
    open_, unacknowledged = Alarm.cleared_at.is_(None), Alarm.acknowledged_at.is_(None)
    alarms = [
        AlarmCount(str(severity), kind, int(n_open), int(n_unacknowledged))
        for severity, kind, n_open, n_unacknowledged in session.execute(
            select(Alarm.severity, Alarm.kind, _ones(open_), _ones(unacknowledged))  # type: ignore[call-overload]
            .where(or_(open_, unacknowledged))
            .group_by(Alarm.severity, Alarm.kind)
        )
    ]
    pending, oldest, failing = session.execute(
        select(func.count(), func.min(WebhookOutbox.created_at), _ones(WebhookOutbox.attempts > 0)).where(  # type: ignore[call-overload]
            WebhookOutbox.delivered_at.is_(None)
        )
    ).one()
    unpublished, oldest_change = session.execute(
        select(func.count(), func.min(ReplicaChange.created_at)).where(ReplicaChange.published_at.is_(None))
    ).one()
    waiting = NotificationOutbox.delivered_at.is_(None) & NotificationOutbox.cancelled_at.is_(None)
    notices, oldest_notice, notices_failing = session.execute(
        select(func.count(), func.min(NotificationOutbox.created_at), _ones(NotificationOutbox.attempts > 0))  # type: ignore[call-overload]
        .where(waiting)
    ).one()
    return DatabaseGauges(
        agents=agents,
        alarms=alarms,
        webhooks=Backlog(int(pending), oldest, int(failing)),
        replica=Backlog(int(unpublished), oldest_change),
        notifications=Backlog(int(notices), oldest_notice, int(notices_failing)),
    )


def gauge_families(gauges: DatabaseGauges, now: datetime) -> Iterator[Metric]:
    """Name what `read_gauges` found; ages are seconds before `now` (0 when nothing waits)."""
    yield from _agent_families(gauges.agents)
    yield from _alarm_families(gauges.alarms)
    yield _gauge(
        "meraapent_webhook_outbox_pending", "Booking webhooks not delivered yet.", gauges.webhooks.count
    )
    yield _gauge(
        "meraapent_webhook_outbox_failing",
        "Undelivered booking webhooks that failed at least once.",
        gauges.webhooks.failing,
    )
    yield _gauge(
        "meraapent_webhook_outbox_oldest_pending_age_seconds",
        "Age of the oldest undelivered booking webhook (0 when none waits).",
        _age(gauges.webhooks.oldest_at, now),
    )
    yield _gauge(
        "meraapent_notification_outbox_pending",
        "Alarm notifications (e-mail, webhook) to the caretaker on call not delivered yet.",
        gauges.notifications.count,
    )
    yield _gauge(
        "meraapent_notification_outbox_failing",
        "Undelivered alarm notifications that failed at least once.",
        gauges.notifications.failing,
    )
    yield _gauge(
        "meraapent_notification_outbox_oldest_pending_age_seconds",
        "Age of the oldest undelivered alarm notification (0 when none waits).",
        _age(gauges.notifications.oldest_at, now),
    )
    yield _gauge(
        "meraapent_replica_changes_unpublished",
        "Credential replica changes not yet published to the sites.",
        gauges.replica.count,
    )
    yield _gauge(
        "meraapent_replica_oldest_unpublished_age_seconds",
        "Age of the oldest replica change not yet published (0 when none waits).",
        _age(gauges.replica.oldest_at, now),
    )


def _agent_families(agents: list[SiteAgent]) -> Iterator[Metric]:
    yield _gauge("meraapent_sites", "Sites in the database.", len(agents))
    yield _gauge("meraapent_agents", "Site agents that have ever reported.", sum(a.known for a in agents))
    yield _gauge("meraapent_agents_online", "Site agents online now.", sum(a.online for a in agents))
    online = GaugeMetricFamily(
        "meraapent_agent_online",
        "1 if the site's agent is online (0 also if it never reported).",
        labels=["site"],
    )
    seen = GaugeMetricFamily(
        "meraapent_agent_last_seen_timestamp_seconds",
        "When central last heard from the site's agent (Unix time).",
        labels=["site"],
    )
    for agent in agents:
        online.add_metric([agent.site], int(agent.online))
        if agent.last_seen_at is not None:
            seen.add_metric([agent.site], agent.last_seen_at.timestamp())
    yield online
    yield seen


def _alarm_families(alarms: list[AlarmCount]) -> Iterator[Metric]:
    """Every severity x kind, zeros included, so graphs and alerts see 0 instead of a missing series."""
    found = {(a.severity, a.kind): a for a in alarms}
    kinds = sorted({k.value for k in AlarmKind} | {a.kind for a in alarms})
    severities = sorted({s.value for s in AlarmSeverity} | {a.severity for a in alarms})
    labels = ["severity", "kind"]
    open_ = GaugeMetricFamily("meraapent_alarms_open", "Alarms not cleared at the door yet.", labels=labels)
    unacknowledged = GaugeMetricFamily(
        "meraapent_alarms_unacknowledged", "Alarms no person has acknowledged yet.", labels=labels
    )
    for severity in severities:
        for kind in kinds:
            count = found.get((severity, kind))
            open_.add_metric([severity, kind], 0 if count is None else count.open)
            unacknowledged.add_metric([severity, kind], 0 if count is None else count.unacknowledged)
    yield open_
    yield unacknowledged


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _age(oldest: datetime | None, now: datetime) -> float:
    return 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())


class DatabaseCollector(Collector):
    """Runs `read_gauges` in a short session of its own on every scrape."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime] = utcnow) -> None:
        self._sessions = sessions
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        try:
            with self._sessions() as session:
                gauges = read_gauges(session)
        except SQLAlchemyError as exc:
            log.warning("metrics.database_unavailable", error=type(exc).__name__)
            yield _gauge("meraapent_database_up", "1 if the database answered the scrape's queries.", 0)
            return
        yield _gauge("meraapent_database_up", "1 if the database answered the scrape's queries.", 1)
        yield from gauge_families(gauges, self._clock())
