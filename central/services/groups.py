"""Access groups: which zones (at any sites) their members may enter, and when.

Zones are site-scoped, so a group's zones are given as (site, zone) slug pairs. Zone lists and weekly
intervals are replaced as a whole (PUT): they are edited as one table. Every change that alters who gets in
where is logged for the replica in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import time
from typing import Any

from sqlalchemy import delete, exists, select
from sqlalchemy.orm import Session

from central.models import AccessGroup, GroupMember, GroupScheduleInterval, Person, Site, Zone
from central.schedules import MIDNIGHT, ScheduleError
from central.services import audit, replica_log
from central.services.errors import ConflictError, InvalidError, NotFoundError
from central.services.people import get_person
from central.services.query import Slice, changed_fields, like_pattern, paginate


@dataclass(frozen=True)
class ZoneRef:
    site: str
    zone: str


@dataclass(frozen=True)
class Interval:
    weekday: int
    starts: time
    ends: time

    def __post_init__(self) -> None:
        if not 0 <= self.weekday <= 6:
            raise ScheduleError(f"weekday must be 0 (Monday) to 6 (Sunday), got {self.weekday}")
        if self.ends != MIDNIGHT and self.ends <= self.starts:
            raise ScheduleError(
                f"weekday {self.weekday}: ends {self.ends:%H:%M} is not after starts {self.starts:%H:%M}"
            )


def get_group(session: Session, slug: str) -> AccessGroup:
    group = session.scalars(select(AccessGroup).where(AccessGroup.slug == slug)).one_or_none()
    if group is None:
        raise NotFoundError(f"access group '{slug}' does not exist")
    return group


def list_groups(session: Session, *, limit: int, offset: int, name: str | None = None) -> Slice[AccessGroup]:
    stmt = select(AccessGroup)
    if name is not None:
        pattern = like_pattern(name)
        stmt = stmt.where(
            AccessGroup.name.ilike(pattern, escape="\\") | AccessGroup.slug.ilike(pattern, escape="\\")
        )
    return paginate(session, stmt.order_by(AccessGroup.slug), limit, offset)


def create_group(session: Session, actor: str, fields: dict[str, Any]) -> AccessGroup:
    slug = fields["slug"]
    if session.scalar(select(exists().where(AccessGroup.slug == slug))):
        raise ConflictError(f"access group '{slug}' already exists")
    group = AccessGroup(**fields)
    session.add(group)
    session.flush()
    audit.record(
        session, actor, "create", "access_group", slug, {k: v for k, v in fields.items() if k != "slug"}
    )
    return group


def update_group(session: Session, actor: str, slug: str, changes: dict[str, Any]) -> AccessGroup:
    group = get_group(session, slug)
    diff = changed_fields(group, changes)
    if diff:
        session.flush()
        replica_log.record_group_change(session, group.id)
        audit.record(session, actor, "update", "access_group", slug, diff)
    return group


def delete_group(session: Session, actor: str, slug: str) -> None:
    group = get_group(session, slug)
    members = _member_ids(session, group.id)
    group_id = group.id
    session.delete(group)
    session.flush()
    replica_log.record_group_change(session, group_id, former_member_ids=members)
    audit.record(session, actor, "delete", "access_group", slug, {"members": len(members)})


def _member_ids(session: Session, group_id: int) -> set[int]:
    return set(session.scalars(select(GroupMember.person_id).where(GroupMember.group_id == group_id)))


def _resolve_zones(session: Session, refs: Iterable[ZoneRef]) -> list[Zone]:
    zones: dict[int, Zone] = {}
    for index, ref in enumerate(refs):
        zone = session.scalars(
            select(Zone).join(Site).where(Site.slug == ref.site, Zone.slug == ref.zone)
        ).one_or_none()
        if zone is None:
            raise InvalidError(f"zone '{ref.zone}' does not exist at site '{ref.site}'", f"{index}.zone")
        zones[zone.id] = zone
    return list(zones.values())


def group_zones(session: Session, slug: str) -> list[Zone]:
    group = get_group(session, slug)
    return sorted(group.zones, key=lambda z: (z.site.slug, z.slug))


def replace_zones(session: Session, actor: str, slug: str, refs: list[ZoneRef]) -> list[Zone]:
    group = get_group(session, slug)
    group.zones = _resolve_zones(session, refs)
    session.flush()
    replica_log.record_group_change(session, group.id)
    audit.record(
        session, actor, "replace_zones", "access_group", slug, {"zones": [f"{r.site}/{r.zone}" for r in refs]}
    )
    return group_zones(session, slug)


def group_intervals(session: Session, slug: str) -> list[GroupScheduleInterval]:
    group = get_group(session, slug)
    return sorted(group.intervals, key=lambda i: (i.weekday, i.starts))


def replace_intervals(
    session: Session, actor: str, slug: str, intervals: list[Interval]
) -> list[GroupScheduleInterval]:
    """The group's own weekly schedule; an empty list means "the site's meråpent hours"."""
    group = get_group(session, slug)
    group.intervals = [
        GroupScheduleInterval(weekday=i.weekday, starts=i.starts, ends=i.ends) for i in intervals
    ]
    session.flush()
    replica_log.record_group_change(session, group.id)
    audit.record(
        session,
        actor,
        "replace_intervals",
        "access_group",
        slug,
        {"intervals": [f"{i.weekday} {i.starts:%H:%M}-{i.ends:%H:%M}" for i in intervals]},
    )
    return group_intervals(session, slug)


def list_members(
    session: Session, slug: str, *, limit: int, offset: int, name: str | None = None
) -> Slice[Person]:
    group = get_group(session, slug)
    stmt = (
        select(Person)
        .join(GroupMember, GroupMember.person_id == Person.id)
        .where(GroupMember.group_id == group.id)
    )
    if name is not None:
        stmt = stmt.where(Person.display_name.ilike(like_pattern(name), escape="\\"))
    return paginate(session, stmt.order_by(Person.display_name, Person.id), limit, offset)


def add_member(session: Session, actor: str, slug: str, person_id: int) -> bool:
    """Add a person to a group; False if they already were a member (nothing changes)."""
    group = get_group(session, slug)
    person = get_person(session, person_id)
    if person.id in _member_ids(session, group.id):
        return False
    session.add(GroupMember(group_id=group.id, person_id=person.id))
    session.flush()
    replica_log.record_person_change(session, person.id)
    audit.record(session, actor, "add_member", "access_group", slug, {"person": person.id})
    return True


def remove_member(session: Session, actor: str, slug: str, person_id: int) -> None:
    group = get_group(session, slug)
    if person_id not in _member_ids(session, group.id):
        raise NotFoundError(f"person {person_id} is not a member of access group '{slug}'")
    session.execute(
        delete(GroupMember).where(GroupMember.group_id == group.id, GroupMember.person_id == person_id)
    )
    session.expire(group, ["members"])
    replica_log.record_person_change(session, person_id)
    audit.record(session, actor, "remove_member", "access_group", slug, {"person": person_id})


def person_groups(session: Session, person_id: int) -> list[AccessGroup]:
    get_person(session, person_id)
    stmt = (
        select(AccessGroup)
        .join(GroupMember, GroupMember.group_id == AccessGroup.id)
        .where(GroupMember.person_id == person_id)
        .order_by(AccessGroup.slug)
    )
    return list(session.scalars(stmt))
