"""Which alarms need a person, when a repeat is folded into an earlier notification, when nobody has
acknowledged in time, and whether a message is still worth sending: pure, no I/O, the clock is a parameter.

Kinds that need a person: the ones the issue names (forced_open, held_open, agent_offline, fire,
pin_brute_force, tailgating) and also `tamper` (someone opened a reader or the controller's housing: vandalism
in unstaffed hours, and the door may no longer be secure) and `intruder` (an intrusion sensor saw someone
in a closed area). Lock faults, readers offline, a full disk or an unset clock are for the technician on the
next working day; they stay in the console.

Two sorts among them:
- incidents (forced_open, fire, tamper, intruder, pin_brute_force, tailgating) happened, and the caretaker
  must know even if the door has closed again: notified and escalated while not acknowledged, cleared or not;
- passing states (held_open, agent_offline) are over once cleared: a notification or escalation not yet
  sent is dropped when the door is shut or the site is back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from central.config import Settings

AGENT_OFFLINE = "agent_offline"
INCIDENT_KINDS = frozenset({"forced_open", "fire", "tamper", "intruder", "pin_brute_force", "tailgating"})
PASSING_KINDS = frozenset({"held_open", AGENT_OFFLINE})
PERSON_KINDS = INCIDENT_KINDS | PASSING_KINDS
DEFAULT_FOLD_WINDOW = timedelta(minutes=30)


@dataclass(frozen=True)
class Rules:
    """`fold_window`: a repeat within this time of the notification is folded into it (not sent again);
    `escalate_after`: a notification nobody has acknowledged by then goes to the escalation addresses."""

    escalate_after: timedelta = timedelta(minutes=15)
    fold_window: timedelta = DEFAULT_FOLD_WINDOW

    @classmethod
    def from_settings(cls, settings: Settings) -> Rules:
        return cls(escalate_after=timedelta(minutes=settings.notify_escalate_minutes))


def needs_person(kind: str) -> bool:
    return kind in PERSON_KINDS


@dataclass(frozen=True)
class Standing:
    """Where an alarm, or a notification and the alarms folded into it, stands now."""

    kind: str
    acknowledged: bool  # a person has acknowledged (one of) its alarm(s)
    cleared: bool  # every one of its alarms has cleared at the door


def worth_sending(standing: Standing) -> bool:
    """Is a message about it still news? Not once acknowledged, nor once a passing state is over."""
    if standing.acknowledged:
        return False
    return not (standing.cleared and standing.kind in PASSING_KINDS)


@dataclass(frozen=True)
class Earlier:
    """An earlier notification of the same site, door and kind."""

    id: int
    created_at: datetime
    acknowledged: bool


class Verdict(StrEnum):
    NOTIFY = "notify"  # a new notification to the caretaker on call
    FOLD = "fold"  # a repeat: counted on an earlier notification, nothing sent
    SKIP = "skip"  # no person needed (or no longer: acknowledged, or a passing state already over)


@dataclass(frozen=True)
class Placement:
    verdict: Verdict
    into: int | None = None  # the notification a repeat is folded into


def place(alarm: Standing, earlier: list[Earlier], now: datetime, rules: Rules) -> Placement:
    """What to do with an alarm the notifier sees for the first time at `now`.

    A repeat is folded into the newest earlier notification that nobody has acknowledged and that is less
    than `fold_window` old; ages are by central's clock (an agent's clock may be off).
    """
    if not needs_person(alarm.kind) or not worth_sending(alarm):
        return Placement(Verdict.SKIP)
    candidates = [
        e for e in earlier if not e.acknowledged and timedelta(0) <= now - e.created_at < rules.fold_window
    ]
    if candidates:
        newest = max(candidates, key=lambda e: (e.created_at, e.id))
        return Placement(Verdict.FOLD, newest.id)
    return Placement(Verdict.NOTIFY)


def escalation_due(standing: Standing, created_at: datetime, now: datetime, rules: Rules) -> bool:
    """Nobody acknowledged within `escalate_after` and it is still news (see `worth_sending`)."""
    return now - created_at >= rules.escalate_after and worth_sending(standing)


def finished(standing: Standing, escalated: bool) -> bool:
    """Nothing more will ever be sent for this notification: escalated already, or no longer news."""
    return escalated or not worth_sending(standing)


class AgentVerdict(StrEnum):
    RAISE = "raise"
    CLEAR = "clear"
    NOTHING = "nothing"


def agent_verdict(
    online: bool, last_seen_at: datetime | None, alarm_open: bool, now: datetime, grace: timedelta
) -> AgentVerdict:
    """An agent offline for `grace` (counted from when central heard it go: its Last Will) raises the
    site's agent_offline alarm; back online clears it. Without a time it has been offline since forever."""
    if online:
        return AgentVerdict.CLEAR if alarm_open else AgentVerdict.NOTHING
    if alarm_open:
        return AgentVerdict.NOTHING
    if last_seen_at is None or now - last_seen_at >= grace:
        return AgentVerdict.RAISE
    return AgentVerdict.NOTHING
