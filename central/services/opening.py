"""Online opening: the "Open" button on a resident's phone page.

Central does a few quick checks that give the person a clear answer at once (blocked, no phone key, no such
door), then sends the site's agent an `open_for` command with a nonce and a short expiry. The agent decides
with its own rules (the person's card rules without the PIN, its clock and lock-down) and answers with a
command result, which the gateway stores as an event whose id is the command id; `wait_for_outcome` reads it.
No HTTP here: the phone page's router calls these functions.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.gateway.service import GatewayUnavailable
from central.models import Event
from central.replica import person_ref
from central.services import audit
from central.services.commands import COMMAND_TTL, NONCE_BYTES, CommandPublisher
from central.services.credentials import phone_refusal
from central.services.errors import ConflictError, UnavailableError
from central.services.people import get_person
from central.services.sites import get_door, get_site
from protocol import messages as m

OPEN_REASON = "Open pressed on the phone page"


class OpenRefusedError(ConflictError):
    """Central can already tell the door would not open; `reason` says why in the door's own words."""

    def __init__(self, message: str, reason: m.Reason) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class OpenOutcome:
    """What the door said: opened, or not and why (`reason` None when the agent refused the command itself,
    e.g. a replayed or expired one; `detail` is the agent's line then)."""

    opened: bool
    reason: m.Reason | None = None
    detail: str = ""


_PHONE_MESSAGES = {
    m.Reason.UNKNOWN_CREDENTIAL: "this person has no phone key",
    m.Reason.CREDENTIAL_REVOKED: "this person's phone key is revoked",
    m.Reason.CREDENTIAL_BLOCKED: "this person's phone key is blocked",
    m.Reason.CREDENTIAL_NOT_YET_VALID: "this person's phone key is not valid yet",
    m.Reason.CREDENTIAL_EXPIRED: "this person's phone key has expired",
}


def open_door_for(
    session: Session,
    publisher: CommandPublisher | None,
    person_id: int,
    site_slug: str,
    door_slug: str,
    now: datetime,
) -> m.Command:
    """Check, audit and send an `open_for` command; returns it (its `command_id` is what to wait for).

    NotFoundError for an unknown person, site or door; OpenRefusedError when the person is blocked or has no
    usable phone key; UnavailableError when the command cannot be handed to the gateway.
    """
    person = get_person(session, person_id)
    site = get_site(session, site_slug)
    door = get_door(session, site, door_slug)
    if person.blocked:
        raise OpenRefusedError("this person is blocked", m.Reason.PERSON_BLOCKED)
    refusal = phone_refusal(person.credentials, now)
    if refusal is not None:
        raise OpenRefusedError(_PHONE_MESSAGES[refusal], refusal)
    if publisher is None:
        raise UnavailableError("this server runs without the MQTT gateway, so doors cannot be opened online")
    holder = person_ref(person.id)
    command = m.Command(
        command_id=uuid.uuid4(),
        site=site.slug,
        action=m.Action.OPEN_FOR,
        nonce=secrets.token_hex(NONCE_BYTES),
        issued_at=now,
        expires_at=now + COMMAND_TTL,
        issued_by=holder,
        reason=OPEN_REASON,
        door=door.slug,
        holder=holder,
    )
    audit.record(
        session,
        holder,
        "open_for",
        "door",
        f"{site.slug}/{door.slug}",
        {"command_id": str(command.command_id), "person": person.id},
    )
    session.flush()
    try:
        publisher.publish_command(command)
    except GatewayUnavailable as exc:
        raise UnavailableError(f"the door could not be asked to open: {exc}") from None
    return command


def command_outcome(session: Session, command_id: uuid.UUID) -> OpenOutcome | None:
    """The agent's answer to an `open_for` command, or None while there is none."""
    event = session.scalars(select(Event).where(Event.event_id == str(command_id))).one_or_none()
    if event is None:
        return None
    data = event.data or {}
    opened = data.get("outcome") == m.CommandOutcome.DONE.value
    reason = None if opened else _reason(data.get("deny_reason"))
    return OpenOutcome(opened=opened, reason=reason, detail=str(data.get("reason") or ""))


def _reason(raw: object) -> m.Reason | None:
    try:
        return m.Reason(raw) if isinstance(raw, str) else None
    except ValueError:
        return None


def wait_for_outcome(
    session_factory: Callable[[], Session], command_id: uuid.UUID, timeout_s: float, poll_s: float = 0.1
) -> OpenOutcome | None:
    """Wait up to `timeout_s` for the agent's answer (polling the database); None if none came in time."""
    deadline = time.monotonic() + timeout_s
    while True:
        with session_factory() as session:
            outcome = command_outcome(session, command_id)
        left = deadline - time.monotonic()
        if outcome is not None or left <= 0:
            return outcome
        time.sleep(min(poll_s, left))
