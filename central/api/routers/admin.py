"""/api-users and /audit-log: admin only. A new or rotated token is in the response once, never again."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import Field, StringConstraints

from central.api.auth import Admin
from central.api.deps import DbSession
from central.api.paging import Page, Paging, page_of
from central.api.routers.common import LINE_PATTERN, Input, Output, Patch, PathId, UtcDateTime
from central.models import ApiRole, ApiUser, AuditLog
from central.services import api_users as service
from central.services import audit
from protocol.topics import SLUG_PATTERN

router = APIRouter(tags=["administration"])

Username = Annotated[
    str,
    StringConstraints(pattern=SLUG_PATTERN, max_length=40),
    Field(description="Lowercase letters, digits and '-', e.g. 'vega-import'."),
]
Short = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=LINE_PATTERN)]


class ApiUserIn(Input):
    username: Username
    role: ApiRole


class ApiUserPatch(Patch):
    role: ApiRole | None = None
    active: bool | None = None


class ApiUserOut(Output):
    id: int
    username: str
    role: ApiRole
    active: bool
    created_at: datetime
    last_used_at: datetime | None


class ApiUserWithToken(ApiUserOut):
    token: str = Field(description="The bearer token. Shown only now: store it safely.")


def _user(user: ApiUser) -> ApiUserOut:
    return ApiUserOut.model_validate(user)


def _with_token(user: ApiUser, token: str) -> ApiUserWithToken:
    return ApiUserWithToken(**_user(user).model_dump(), token=token)


@router.get("/api-users", summary="List API users", tags=["api users"])
def list_users(
    session: DbSession, _: Admin, paging: Paging, role: ApiRole | None = None, active: bool | None = None
) -> Page[ApiUserOut]:
    found = service.list_users(session, limit=paging.limit, offset=paging.offset, role=role, active=active)
    return page_of(found, _user)


@router.post(
    "/api-users",
    status_code=201,
    summary="Create an API user (the token is returned once)",
    tags=["api users"],
)
def create_user(session: DbSession, admin: Admin, body: ApiUserIn, response: Response) -> ApiUserWithToken:
    user, token = service.create_user(session, admin.username, body.username, body.role)
    response.headers["Location"] = f"/api-users/{user.id}"
    response.headers["Cache-Control"] = "no-store"
    return _with_token(user, token)


@router.get("/api-users/{user_id}", summary="Get an API user", tags=["api users"])
def get_user(session: DbSession, _: Admin, user_id: PathId) -> ApiUserOut:
    return _user(service.get_user(session, user_id))


@router.patch("/api-users/{user_id}", summary="Change role or deactivate", tags=["api users"])
def update_user(session: DbSession, admin: Admin, user_id: PathId, body: ApiUserPatch) -> ApiUserOut:
    return _user(service.update_user(session, admin.username, user_id, body.model_dump(exclude_unset=True)))


@router.post(
    "/api-users/{user_id}/rotate-token", summary="Replace the token (returned once)", tags=["api users"]
)
def rotate_token(session: DbSession, admin: Admin, user_id: PathId, response: Response) -> ApiUserWithToken:
    user, token = service.rotate_token(session, admin.username, user_id)
    response.headers["Cache-Control"] = "no-store"
    return _with_token(user, token)


@router.delete("/api-users/{user_id}", status_code=204, summary="Delete an API user", tags=["api users"])
def delete_user(session: DbSession, admin: Admin, user_id: PathId) -> None:
    service.delete_user(session, admin.username, user_id)


class AuditOut(Output):
    id: int
    at: datetime
    actor: str
    action: str
    entity: str
    entity_id: str | None
    detail: dict[str, object]


@router.get("/audit-log", summary="Who changed what, newest first", tags=["audit"])
def audit_log(
    session: DbSession,
    _: Admin,
    paging: Paging,
    actor: Annotated[Short | None, Query()] = None,
    entity: Annotated[Short | None, Query()] = None,
    entity_id: Annotated[Short | None, Query()] = None,
    action: Annotated[Short | None, Query()] = None,
    since: Annotated[UtcDateTime | None, Query()] = None,
    until: Annotated[UtcDateTime | None, Query()] = None,
) -> Page[AuditOut]:
    found = audit.list_entries(
        session,
        limit=paging.limit,
        offset=paging.offset,
        actor=actor,
        entity=entity,
        entity_id=entity_id,
        action=action,
        since=since,
        until=until,
    )
    return page_of(found, _audit)


def _audit(row: AuditLog) -> AuditOut:
    return AuditOut.model_validate(row)
