"""Bearer-token authentication and role checks.

A caller sends `Authorization: Bearer <token>`; we look up the SHA-256 of the token among active API users.
Every endpoint declares its roles with `require(...)`; admin may always act. Roles:

- admin: everything;
- caretaker: read everything except API users and the audit log; act on doors and alarms; manage people,
  cards, phone tokens, group membership and bookings;
- booking_integration: bookings only;
- monitoring: GET /metrics only (a Prometheus server's token; the guard is central.metrics.endpoint).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select

from central.api.deps import DbSession
from central.db import utcnow
from central.models import ApiRole, ApiUser
from central.security import api_token_hash

# Writing last_used_at on every request would turn each read into a write; minute precision is plenty.
LAST_USED_RESOLUTION = timedelta(minutes=1)
MAX_TOKEN_LENGTH = 512

_bearer = HTTPBearer(auto_error=False, description="An API token from `POST /api-users` or the seed.")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    id: int
    username: str
    role: ApiRole


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": 'Bearer realm="meraapent"'})


def current_principal(
    session: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller behind the bearer token; 401 if there is none, or it is unknown or deactivated."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("send an API token as 'Authorization: Bearer <token>'")
    token = credentials.credentials
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise _unauthorized("the API token is not valid")
    user = session.scalars(select(ApiUser).where(ApiUser.token_hash == api_token_hash(token))).one_or_none()
    if user is None or not user.active:
        raise _unauthorized("the API token is not valid or has been deactivated")
    now = utcnow()
    if user.last_used_at is None or now - user.last_used_at >= LAST_USED_RESOLUTION:
        user.last_used_at = now
        session.flush()
    return Principal(id=user.id, username=user.username, role=ApiRole(user.role))


RoleGuard = Callable[[Principal], Principal]


def require(*roles: ApiRole) -> RoleGuard:
    """A dependency that lets admin and the given roles through and answers 403 to anyone else."""
    allowed = frozenset({ApiRole.ADMIN, *roles})

    def guard(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in allowed:
            needed = ", ".join(sorted(r.value for r in allowed))
            raise HTTPException(
                403, f"role '{principal.role.value}' may not do this (needs one of: {needed})"
            )
        return principal

    guard.allowed_roles = allowed  # type: ignore[attr-defined]  # read by the route audit test
    return guard


# The role sets the routers use; named by what they allow.
ADMIN_ONLY = require()
STAFF = require(ApiRole.CARETAKER)
BOOKINGS = require(ApiRole.CARETAKER, ApiRole.BOOKING_INTEGRATION)

Admin = Annotated[Principal, Depends(ADMIN_ONLY)]
Staff = Annotated[Principal, Depends(STAFF)]
BookingCaller = Annotated[Principal, Depends(BOOKINGS)]
