"""MQTT topic layout: versioned and namespaced per site so broker ACLs can be written per site.

Every topic is ``meraapent/v1/site/<site>/<channel>`` (door state adds ``/<door>``), so a site agent's broker
user (``site-<slug>``) can be confined to its own site's channels, each in one direction only: the ACL that
``meraapent central mqtt-config`` writes (central/mqtt_security/acl.py) lists them from this module.

Which channels are retained is part of the contract: only state that stays true until replaced (site
configuration, signing keys, the token revocation list, door state, agent status). Commands, events and card
reads are never retained: a retained command would be replayed on every reconnect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

ROOT = "meraapent/v1"
SITE_ROOT = f"{ROOT}/site"
SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$"
_SLUG = re.compile(SLUG_PATTERN)


class Channel(StrEnum):
    """What a message on a site's topic is about; the value is the topic suffix."""

    CONFIG = "config"
    KEYS = "keys"
    REVOCATIONS = "revocations"
    REPLICA_SNAPSHOT = "replica/snapshot"
    REPLICA_DELTA = "replica/delta"
    REPLICA_REQUEST = "replica/request"
    COMMAND = "command"
    COMMAND_RESULT = "command/result"
    EVENT = "event"
    ACK = "ack"
    DOOR_STATE = "door"
    STATUS = "status"


class Direction(StrEnum):
    TO_AGENT = "to_agent"
    TO_CENTRAL = "to_central"


@dataclass(frozen=True, slots=True)
class ChannelRule:
    direction: Direction
    retained: bool


RULES: dict[Channel, ChannelRule] = {
    Channel.CONFIG: ChannelRule(Direction.TO_AGENT, retained=True),
    Channel.KEYS: ChannelRule(Direction.TO_AGENT, retained=True),
    Channel.REVOCATIONS: ChannelRule(Direction.TO_AGENT, retained=True),
    Channel.REPLICA_SNAPSHOT: ChannelRule(Direction.TO_AGENT, retained=False),
    Channel.REPLICA_DELTA: ChannelRule(Direction.TO_AGENT, retained=False),
    Channel.REPLICA_REQUEST: ChannelRule(Direction.TO_CENTRAL, retained=False),
    Channel.COMMAND: ChannelRule(Direction.TO_AGENT, retained=False),
    Channel.COMMAND_RESULT: ChannelRule(Direction.TO_CENTRAL, retained=False),
    Channel.EVENT: ChannelRule(Direction.TO_CENTRAL, retained=False),
    Channel.ACK: ChannelRule(Direction.TO_AGENT, retained=False),
    Channel.DOOR_STATE: ChannelRule(Direction.TO_CENTRAL, retained=True),
    Channel.STATUS: ChannelRule(Direction.TO_CENTRAL, retained=True),
}

# Longest channel first so "replica/snapshot" is not mistaken for a door named "snapshot".
_BY_SUFFIX = sorted(((c.value, c) for c in Channel if c is not Channel.DOOR_STATE), key=lambda p: -len(p[0]))


class TopicError(ValueError):
    """A topic that is not part of the contract, or a slug that cannot be put in one."""


def is_slug(value: str) -> bool:
    return bool(_SLUG.match(value))


def _checked(kind: str, value: str) -> str:
    if not is_slug(value):
        raise TopicError(f"{kind} {value!r} is not a valid slug (lowercase letters, digits and '-', max 40)")
    return value


def site_topic(site: str, channel: Channel, door: str | None = None) -> str:
    """The topic for one site and channel; door state needs the door slug."""
    base = f"{SITE_ROOT}/{_checked('site', site)}"
    if channel is Channel.DOOR_STATE:
        if door is None:
            raise TopicError("door state topics need a door slug")
        return f"{base}/door/{_checked('door', door)}"
    if door is not None:
        raise TopicError(f"channel {channel.value!r} takes no door")
    return f"{base}/{channel.value}"


def site_filter(site: str | None = None, channel: Channel | None = None) -> str:
    """A subscription filter: one site's channel, all of one site, or a channel across all sites."""
    site_part = "+" if site is None else _checked("site", site)
    if channel is None:
        return f"{SITE_ROOT}/{site_part}/#"
    if channel is Channel.DOOR_STATE:
        return f"{SITE_ROOT}/{site_part}/door/+"
    return f"{SITE_ROOT}/{site_part}/{channel.value}"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    site: str
    channel: Channel
    door: str | None = None


def parse_topic(topic: str) -> ParsedTopic:
    """Split a received topic into site, channel and door; anything else is refused."""
    prefix = f"{SITE_ROOT}/"
    if not topic.startswith(prefix):
        raise TopicError(f"topic {topic[:120]!r} is outside {SITE_ROOT}/")
    site, _, rest = topic[len(prefix) :].partition("/")
    _checked("site", site)
    if rest.startswith("door/"):
        return ParsedTopic(site, Channel.DOOR_STATE, _checked("door", rest[len("door/") :]))
    for suffix, channel in _BY_SUFFIX:
        if rest == suffix:
            return ParsedTopic(site, channel)
    raise TopicError(f"unknown channel {rest[:60]!r} in topic for site {site!r}")
