"""POST /sites/{site}/commands: remote unlock, lock-down, release and back to normal, via the gateway."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter
from pydantic import Field, StringConstraints

from central.api.auth import Staff
from central.api.deps import DbSession, Gateway
from central.api.routers.common import LINE_PATTERN, Input, Output, PathSlug, Slug
from central.services import commands as service
from central.services.commands import CommandAction

router = APIRouter(tags=["commands"])


class CommandIn(Input):
    action: CommandAction
    door: Slug | None = Field(default=None, description="The door; required for unlock, else all doors.")
    duration_seconds: int | None = Field(default=None, ge=1, le=24 * 3600, description="How long it lasts.")
    reason: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=300, pattern=LINE_PATTERN),
        Field(description="Why (kept in the audit log), e.g. 'resident locked out, called at 21:40'."),
    ]


class CommandOut(Output):
    command_id: uuid.UUID
    site: str
    action: CommandAction
    door: str | None
    duration_seconds: int | None
    issued_by: str
    issued_at: datetime
    expires_at: datetime


@router.post(
    "/sites/{site}/commands",
    status_code=202,
    summary="Send a command to a site's agent",
    description="Accepted means handed to the MQTT broker; the agent's result arrives as an event. "
    "The command expires after a short time, so a late delivery is refused by the agent.",
)
def send_command(
    session: DbSession, user: Staff, gateway: Gateway, site: PathSlug, body: CommandIn
) -> CommandOut:
    command = service.send_command(
        session,
        user.username,
        gateway,
        site,
        action=body.action,
        reason=body.reason,
        door=body.door,
        duration_seconds=body.duration_seconds,
    )
    return CommandOut(
        command_id=command.command_id,
        site=command.site,
        action=body.action,
        door=command.door,
        duration_seconds=command.duration_seconds,
        issued_by=command.issued_by,
        issued_at=command.issued_at,
        expires_at=command.expires_at,
    )
