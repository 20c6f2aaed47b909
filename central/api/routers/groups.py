"""/access-groups: who may enter which zones when; zones and weekly intervals are replaced as a whole."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import Field

from central.api.auth import Admin, Staff
from central.api.deps import DbSession
from central.api.paging import Page, Paging, page_of
from central.api.routers.common import (
    Input,
    LocalTime,
    Name,
    Output,
    Patch,
    PathId,
    PathSlug,
    SearchText,
    Slug,
    Text,
)
from central.api.routers.people import PersonOut, person_out
from central.models import AccessGroup, GroupScheduleInterval, Zone
from central.services import groups as service

router = APIRouter(prefix="/access-groups", tags=["access groups"])

MAX_ROWS = 500


class GroupIn(Input):
    slug: Slug
    name: Name
    description: Text = ""
    any_time: bool = Field(default=False, description="Members may enter at any hour (staff, caretakers).")
    self_enrolment: bool = Field(
        default=False, description="Residents who finish self-enrolment become members of this group."
    )


class GroupPatch(Patch):
    name: Name | None = None
    description: Text | None = None
    any_time: bool | None = None
    self_enrolment: bool | None = None


class GroupOut(Output):
    id: int
    slug: str
    name: str
    description: str
    any_time: bool
    self_enrolment: bool
    follows_site_hours: bool = Field(
        description="No own intervals: members follow the sites' meråpent hours."
    )


def _group(group: AccessGroup) -> GroupOut:
    return GroupOut.model_validate(group)


@router.get("", summary="List access groups")
def list_groups(
    session: DbSession, _: Staff, paging: Paging, name: Annotated[SearchText | None, Query()] = None
) -> Page[GroupOut]:
    return page_of(service.list_groups(session, limit=paging.limit, offset=paging.offset, name=name), _group)


@router.post("", status_code=201, summary="Create an access group")
def create_group(session: DbSession, user: Admin, body: GroupIn, response: Response) -> GroupOut:
    group = service.create_group(session, user.username, body.model_dump())
    response.headers["Location"] = f"/access-groups/{group.slug}"
    return _group(group)


@router.get("/{group}", summary="Get an access group")
def get_group(session: DbSession, _: Staff, group: PathSlug) -> GroupOut:
    return _group(service.get_group(session, group))


@router.patch("/{group}", summary="Change an access group")
def update_group(session: DbSession, user: Admin, group: PathSlug, body: GroupPatch) -> GroupOut:
    return _group(service.update_group(session, user.username, group, body.model_dump(exclude_unset=True)))


@router.delete("/{group}", status_code=204, summary="Delete an access group")
def delete_group(session: DbSession, user: Admin, group: PathSlug) -> None:
    service.delete_group(session, user.username, group)


# --- zones ------------------------------------------------------------------------------------------------


class ZoneRefBody(Input):
    site: Slug
    zone: Slug


class GroupZones(Input):
    zones: list[ZoneRefBody] = Field(max_length=MAX_ROWS)


def _zones(zones: list[Zone]) -> GroupZones:
    return GroupZones(zones=[ZoneRefBody(site=z.site.slug, zone=z.slug) for z in zones])


@router.get("/{group}/zones", summary="The zones a group grants")
def get_zones(session: DbSession, _: Staff, group: PathSlug) -> GroupZones:
    return _zones(service.group_zones(session, group))


@router.put("/{group}/zones", summary="Replace the zones a group grants")
def put_zones(session: DbSession, user: Admin, group: PathSlug, body: GroupZones) -> GroupZones:
    refs = [service.ZoneRef(site=z.site, zone=z.zone) for z in body.zones]
    return _zones(service.replace_zones(session, user.username, group, refs))


# --- intervals --------------------------------------------------------------------------------------------


class IntervalBody(Input):
    weekday: int = Field(ge=0, le=6, description="0 = Monday ... 6 = Sunday.")
    starts: LocalTime
    ends: LocalTime = Field(description="Local time; 00:00 means midnight at the end of the day.")


class GroupIntervals(Input):
    """The group's own weekly schedule; empty = follow the sites' meråpent hours."""

    intervals: list[IntervalBody] = Field(max_length=MAX_ROWS)


def _intervals(rows: list[GroupScheduleInterval]) -> GroupIntervals:
    return GroupIntervals(
        intervals=[IntervalBody(weekday=i.weekday, starts=i.starts, ends=i.ends) for i in rows]
    )


@router.get("/{group}/intervals", summary="The group's own weekly schedule")
def get_intervals(session: DbSession, _: Staff, group: PathSlug) -> GroupIntervals:
    return _intervals(service.group_intervals(session, group))


@router.put("/{group}/intervals", summary="Replace the group's own weekly schedule")
def put_intervals(session: DbSession, user: Admin, group: PathSlug, body: GroupIntervals) -> GroupIntervals:
    wanted = [service.Interval(i.weekday, i.starts, i.ends) for i in body.intervals]
    return _intervals(service.replace_intervals(session, user.username, group, wanted))


# --- members ----------------------------------------------------------------------------------------------


@router.get("/{group}/members", summary="The group's members")
def list_members(
    session: DbSession,
    _: Staff,
    group: PathSlug,
    paging: Paging,
    name: Annotated[SearchText | None, Query()] = None,
) -> Page[PersonOut]:
    found = service.list_members(session, group, limit=paging.limit, offset=paging.offset, name=name)
    return page_of(found, person_out)


class MembershipOut(Output):
    group: str
    person_id: int
    added: bool = Field(description="False if the person already was a member.")


@router.put("/{group}/members/{person_id}", summary="Add a person to the group (idempotent)")
def add_member(session: DbSession, user: Staff, group: PathSlug, person_id: PathId) -> MembershipOut:
    added = service.add_member(session, user.username, group, person_id)
    return MembershipOut(group=group, person_id=person_id, added=added)


@router.delete("/{group}/members/{person_id}", status_code=204, summary="Remove a person from the group")
def remove_member(session: DbSession, user: Staff, group: PathSlug, person_id: PathId) -> None:
    service.remove_member(session, user.username, group, person_id)
