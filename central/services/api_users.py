"""API users: who may call central's HTTP API, with which role. Tokens are shown once, stored hashed.

The last active admin cannot be deactivated, demoted or deleted: that would lock everyone out of the API.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from central.models import ApiRole, ApiUser
from central.security import new_api_token
from central.services import audit
from central.services.errors import ConflictError, NotFoundError
from central.services.query import Slice, changed_fields, paginate


def get_user(session: Session, user_id: int) -> ApiUser:
    user = session.get(ApiUser, user_id)
    if user is None:
        raise NotFoundError(f"API user {user_id} does not exist")
    return user


def list_users(
    session: Session, *, limit: int, offset: int, role: ApiRole | None = None, active: bool | None = None
) -> Slice[ApiUser]:
    stmt = select(ApiUser)
    if role is not None:
        stmt = stmt.where(ApiUser.role == role)
    if active is not None:
        stmt = stmt.where(ApiUser.active == active)
    return paginate(session, stmt.order_by(ApiUser.username), limit, offset)


def create_user(session: Session, actor: str, username: str, role: ApiRole) -> tuple[ApiUser, str]:
    """A new API user and its bearer token (the only time the token is available)."""
    if session.scalar(select(exists().where(ApiUser.username == username))):
        raise ConflictError(f"API user '{username}' already exists")
    token, token_hash = new_api_token()
    user = ApiUser(username=username, role=role, token_hash=token_hash, active=True)
    session.add(user)
    session.flush()
    audit.record(session, actor, "create", "api_user", user.id, {"username": username, "role": role})
    return user, token


def _other_active_admins(session: Session, user_id: int) -> int:
    stmt = select(func.count()).where(
        ApiUser.role == ApiRole.ADMIN, ApiUser.active.is_(True), ApiUser.id != user_id
    )
    return session.scalar(stmt) or 0


def _keep_an_admin(session: Session, user: ApiUser, doing: str) -> None:
    if user.role is ApiRole.ADMIN and user.active and not _other_active_admins(session, user.id):
        raise ConflictError(f"API user '{user.username}' is the last active admin and cannot be {doing}")


def update_user(session: Session, actor: str, user_id: int, changes: dict[str, Any]) -> ApiUser:
    user = get_user(session, user_id)
    if changes.get("active") is False:
        _keep_an_admin(session, user, "deactivated")
    if "role" in changes and changes["role"] is not ApiRole.ADMIN:
        _keep_an_admin(session, user, "given another role")
    diff = changed_fields(user, changes)
    if diff:
        session.flush()
        audit.record(session, actor, "update", "api_user", user.id, diff)
    return user


def rotate_token(session: Session, actor: str, user_id: int) -> tuple[ApiUser, str]:
    """Replace a user's token (the old one stops working at once); returns the new token."""
    user = get_user(session, user_id)
    token, token_hash = new_api_token()
    user.token_hash = token_hash
    session.flush()
    audit.record(session, actor, "rotate_token", "api_user", user.id, {"username": user.username})
    return user, token


def delete_user(session: Session, actor: str, user_id: int) -> None:
    user = get_user(session, user_id)
    _keep_an_admin(session, user, "deleted")
    session.delete(user)
    session.flush()
    audit.record(session, actor, "delete", "api_user", user_id, {"username": user.username})
