"""The scenario format's defaults and the words it accepts (reasons, event kinds, groups, weekdays).

Kept apart so the model, the parser and the runner agree on one list of each.
"""

from __future__ import annotations

from datetime import time, timedelta

from central import seed
from protocol import messages as m

DEFAULT_SITE = "heggedal"
DEFAULT_DOOR = "hovedinngang"
DEFAULT_START_TIME = time(19, 0)
DEFAULT_PIN = seed.DEMO_PIN
DEFAULT_TOKEN_VALIDITY = timedelta(hours=1)
ALL_DOORS = "all"
MAX_LISTED = 12  # longer lists of allowed values are not spelt out when a close match can be suggested
UNKNOWN_CARD = "unknown"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
GRANT_REASONS = frozenset(
    {
        m.Reason.SCHEDULE,
        m.Reason.ANY_TIME,
        m.Reason.BOOKING,
        m.Reason.REMOTE_UNLOCK,
        m.Reason.EXIT_REQUEST,
        m.Reason.FIRE_RELEASE,
    }
)
# What the agent journals as system events (controller/agent.py `_system`).
SITE_EVENT_KINDS = (
    "agent-started",
    "closing-warning",
    "site-closed",
    "still-occupied",
    "intruder-alarm-armed",
    "intruder-alarm-disarmed",
    "replica-resynced",
    "command-done",
    "command-refused",
)
CENTRAL_EVENT_KINDS = ("access", "door", "alarm", "system", "checkin")
GROUPS = tuple(spec.slug for spec in seed.GROUPS)
DEFAULT_GROUPS = {
    m.PersonKind.RESIDENT: ("innbyggere",),
    m.PersonKind.CARETAKER: ("vaktmestere",),
    m.PersonKind.STAFF: ("ansatte",),
}
