"""Caretaker commands to a site (remote unlock, lock-down, release, back to normal).

A command carries a random nonce and a short expiry, so the agent can refuse a replay or a command that
arrives late (e.g. after a broker outage). Each command is audited in the same transaction in which it is
handed to the gateway; if the gateway cannot take it, the transaction is rolled back and the caller is told.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from sqlalchemy.orm import Session

from central.db import utcnow
from central.gateway.service import GatewayUnavailable
from central.services import audit
from central.services.errors import InvalidError, UnavailableError
from central.services.sites import door_for_field, get_site
from protocol import messages as m

COMMAND_TTL = timedelta(seconds=30)
NONCE_BYTES = 16


class CommandAction(StrEnum):
    """What a caretaker may ask a site to do (a subset of the wire's actions)."""

    UNLOCK = "unlock"
    LOCK_DOWN = "lock_down"
    RELEASE = "release"
    NORMAL = "normal"


class CommandPublisher(Protocol):
    """What the API needs from the gateway: hand over a command, or raise GatewayUnavailable."""

    def publish_command(self, command: m.Command) -> None: ...


def build_command(
    *,
    site: str,
    action: CommandAction,
    issued_by: str,
    reason: str,
    now: datetime,
    door: str | None = None,
    duration_seconds: int | None = None,
    ttl: timedelta = COMMAND_TTL,
) -> m.Command:
    """A fresh command with a random id and nonce, valid for `ttl` from `now`."""
    return m.Command(
        command_id=uuid.uuid4(),
        site=site,
        action=m.Action(action.value),
        nonce=secrets.token_hex(NONCE_BYTES),
        issued_at=now,
        expires_at=now + ttl,
        issued_by=issued_by,
        reason=reason,
        door=door,
        duration_seconds=duration_seconds,
    )


def _check(action: CommandAction, door: str | None, duration_seconds: int | None) -> None:
    if action is CommandAction.UNLOCK and door is None:
        raise InvalidError("unlock needs the door to unlock", "door")
    if action is CommandAction.NORMAL and duration_seconds is not None:
        raise InvalidError("normal takes no duration (it ends lock-down or release now)", "duration_seconds")


def send_command(
    session: Session,
    actor: str,
    gateway: CommandPublisher | None,
    site_slug: str,
    *,
    action: CommandAction,
    reason: str,
    door: str | None = None,
    duration_seconds: int | None = None,
) -> m.Command:
    """Check, audit and publish a command; UnavailableError if there is no connected gateway."""
    site = get_site(session, site_slug)
    if door is not None:
        door_for_field(session, site, door)
    _check(action, door, duration_seconds)
    if gateway is None:
        raise UnavailableError(
            "this server runs without the MQTT gateway, so commands cannot be sent to sites"
        )
    command = build_command(
        site=site.slug,
        action=action,
        issued_by=actor,
        reason=reason,
        now=utcnow(),
        door=door,
        duration_seconds=duration_seconds,
    )
    audit.record(
        session,
        actor,
        "command",
        "site",
        site.slug,
        {
            "command_id": str(command.command_id),
            "action": action,
            "door": door,
            "duration_seconds": duration_seconds,
            "reason": reason,
        },
    )
    session.flush()
    try:
        gateway.publish_command(command)
    except GatewayUnavailable as exc:
        raise UnavailableError(f"the command could not be sent to site '{site.slug}': {exc}") from None
    return command
