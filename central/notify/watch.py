"""The agent watch: an agent central has heard go away (its Last Will: `agents.online` false) for
`agent_offline_alarm_minutes` raises its site's agent_offline alarm; hearing it again clears the alarm.

Only the online flag counts, not the age of `last_seen_at`. Agents do publish their status every minute
(controller/runtime.py), but over the same MQTT connection whose loss the broker already reports with the
Last Will (within 1.5 keepalives); a stale `last_seen_at` would add little beyond false alarms for every site
whenever central's own link to the broker is down. The grace is counted from `last_seen_at`, which for a
Last Will is when central heard it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from central.models import Agent, Alarm, AlarmSeverity, Site
from central.notify.rules import AGENT_OFFLINE, AgentVerdict, agent_verdict

log = structlog.get_logger(__name__)


@dataclass
class Watched:
    raised: list[str] = field(default_factory=list)  # site slugs
    cleared: list[str] = field(default_factory=list)


def watch_agents(session: Session, now: datetime, grace: timedelta) -> Watched:
    """Raise or clear agent_offline alarms in the caller's transaction; returns the sites concerned."""
    open_alarms: dict[int, list[Alarm]] = defaultdict(list)
    for alarm in session.scalars(
        select(Alarm).where(Alarm.kind == AGENT_OFFLINE, Alarm.cleared_at.is_(None))
    ):
        open_alarms[alarm.site_id].append(alarm)
    done = Watched()
    for agent, slug in session.execute(select(Agent, Site.slug).join(Site, Site.id == Agent.site_id)).all():
        alarms = open_alarms.get(agent.site_id, [])
        verdict = agent_verdict(agent.online, agent.last_seen_at, bool(alarms), now, grace)
        if verdict is AgentVerdict.RAISE:
            session.add(
                Alarm(
                    site_id=agent.site_id,
                    door_id=None,
                    kind=AGENT_OFFLINE,
                    severity=AlarmSeverity.CRITICAL,
                    raised_at=agent.last_seen_at or now,
                    comment="",
                )
            )
            done.raised.append(slug)
            log.warning("notify.agent_offline", site=slug, since=agent.last_seen_at)
        elif verdict is AgentVerdict.CLEAR:
            for alarm in alarms:
                alarm.cleared_at = now
            done.cleared.append(slug)
            log.info("notify.agent_back", site=slug)
    session.flush()
    return done
