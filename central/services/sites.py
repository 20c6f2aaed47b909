"""Sites (innbyggertorg) and their layout: zones, doors and rooms, addressed by slug within a site.

Slugs are fixed once created: they appear in MQTT topics, in the agents' configuration and in stored
events, so renaming one would orphan history. Deleting refuses while something still depends on the thing,
because the database would otherwise cascade silently (a zone takes its doors and rooms with it).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from central.models import AccessGroup, Alarm, Booking, Door, Event, GroupZone, Room, Site, Zone
from central.services import audit
from central.services.errors import ConflictError, InvalidError, NotFoundError
from central.services.query import Slice, changed_fields, like_pattern, paginate


def _detail(fields: dict[str, Any]) -> dict[str, Any]:
    """What to keep in the audit row of a create: the fields except the slug (already the entity id)."""
    return {k: v for k, v in fields.items() if k != "slug"}


# --- sites ------------------------------------------------------------------------------------------------


def get_site(session: Session, slug: str) -> Site:
    site = session.scalars(select(Site).where(Site.slug == slug)).one_or_none()
    if site is None:
        raise NotFoundError(f"site '{slug}' does not exist")
    return site


def list_sites(session: Session, *, limit: int, offset: int, name: str | None = None) -> Slice[Site]:
    stmt = select(Site)
    if name is not None:
        pattern = like_pattern(name)
        stmt = stmt.where(Site.name.ilike(pattern, escape="\\") | Site.slug.ilike(pattern, escape="\\"))
    return paginate(session, stmt.order_by(Site.slug), limit, offset)


def create_site(session: Session, actor: str, fields: dict[str, Any]) -> Site:
    slug = fields["slug"]
    if session.scalar(select(exists().where(Site.slug == slug))):
        raise ConflictError(f"site '{slug}' already exists")
    site = Site(**fields)
    session.add(site)
    session.flush()
    audit.record(session, actor, "create", "site", slug, _detail(fields))
    return site


def update_site(session: Session, actor: str, slug: str, changes: dict[str, Any]) -> Site:
    site = get_site(session, slug)
    diff = changed_fields(site, changes)
    if diff:
        session.flush()
        audit.record(session, actor, "update", "site", slug, diff)
    return site


def delete_site(session: Session, actor: str, slug: str) -> None:
    """Remove a site with its layout and hours; refused while events, alarms or bookings refer to it."""
    site = get_site(session, slug)
    history = {
        "events": session.scalar(select(func.count()).where(Event.site_id == site.id)),
        "alarms": session.scalar(select(func.count()).where(Alarm.site_id == site.id)),
        "bookings": session.scalar(
            select(func.count()).select_from(Booking).join(Room).where(Room.site_id == site.id)
        ),
    }
    kept = [f"{n} {what}" for what, n in history.items() if n]
    if kept:
        raise ConflictError(f"site '{slug}' cannot be deleted: it still has {', '.join(kept)}")
    session.delete(site)
    session.flush()
    audit.record(session, actor, "delete", "site", slug)


# --- zones ------------------------------------------------------------------------------------------------


def get_zone(session: Session, site: Site, slug: str) -> Zone:
    zone = session.scalars(select(Zone).where(Zone.site_id == site.id, Zone.slug == slug)).one_or_none()
    if zone is None:
        raise NotFoundError(f"zone '{slug}' does not exist at site '{site.slug}'")
    return zone


def zone_for_field(session: Session, site: Site, slug: str, field: str = "zone") -> Zone:
    """A zone named in a request body: unknown is bad input (422), not a missing resource (404)."""
    try:
        return get_zone(session, site, slug)
    except NotFoundError as exc:
        raise InvalidError(str(exc), field) from None


def list_zones(session: Session, site_slug: str, *, limit: int, offset: int) -> Slice[Zone]:
    site = get_site(session, site_slug)
    return paginate(session, select(Zone).where(Zone.site_id == site.id).order_by(Zone.slug), limit, offset)


def create_zone(session: Session, actor: str, site_slug: str, slug: str, name: str) -> Zone:
    site = get_site(session, site_slug)
    if session.scalar(select(exists().where(Zone.site_id == site.id, Zone.slug == slug))):
        raise ConflictError(f"zone '{slug}' already exists at site '{site_slug}'")
    zone = Zone(site=site, slug=slug, name=name)
    session.add(zone)
    session.flush()
    audit.record(session, actor, "create", "zone", f"{site_slug}/{slug}", {"name": name})
    return zone


def update_zone(session: Session, actor: str, site_slug: str, slug: str, changes: dict[str, Any]) -> Zone:
    zone = get_zone(session, get_site(session, site_slug), slug)
    diff = changed_fields(zone, changes)
    if diff:
        session.flush()
        audit.record(session, actor, "update", "zone", f"{site_slug}/{slug}", diff)
    return zone


def delete_zone(session: Session, actor: str, site_slug: str, slug: str) -> None:
    site = get_site(session, site_slug)
    zone = get_zone(session, site, slug)
    doors = session.scalars(select(Door.slug).where(Door.zone_id == zone.id).order_by(Door.slug)).all()
    rooms = session.scalars(select(Room.slug).where(Room.zone_id == zone.id).order_by(Room.slug)).all()
    groups = session.scalars(
        select(AccessGroup.slug)
        .join(GroupZone)
        .where(GroupZone.zone_id == zone.id)
        .order_by(AccessGroup.slug)
    ).all()
    if groups:
        raise ConflictError(
            f"zone '{slug}' at site '{site_slug}' is granted by access group(s) {', '.join(groups)}: "
            "remove it from them first"
        )
    if doors or rooms:
        parts = [
            f"{label} {', '.join(names)}" for label, names in (("doors", doors), ("rooms", rooms)) if names
        ]
        raise ConflictError(
            f"zone '{slug}' at site '{site_slug}' is still used by {'; '.join(parts)}: "
            "move or delete them first"
        )
    session.delete(zone)
    session.flush()
    audit.record(session, actor, "delete", "zone", f"{site_slug}/{slug}")


# --- doors ------------------------------------------------------------------------------------------------


def get_door(session: Session, site: Site, slug: str) -> Door:
    door = session.scalars(select(Door).where(Door.site_id == site.id, Door.slug == slug)).one_or_none()
    if door is None:
        raise NotFoundError(f"door '{slug}' does not exist at site '{site.slug}'")
    return door


def door_for_field(session: Session, site: Site, slug: str, field: str = "door") -> Door:
    """A door named in a request body: unknown is bad input (422) naming the field."""
    try:
        return get_door(session, site, slug)
    except NotFoundError as exc:
        raise InvalidError(str(exc), field) from None


def list_doors(session: Session, site_slug: str, *, limit: int, offset: int) -> Slice[Door]:
    site = get_site(session, site_slug)
    return paginate(session, select(Door).where(Door.site_id == site.id).order_by(Door.slug), limit, offset)


def create_door(session: Session, actor: str, site_slug: str, fields: dict[str, Any]) -> Door:
    site = get_site(session, site_slug)
    values = dict(fields)
    slug = values["slug"]
    if session.scalar(select(exists().where(Door.site_id == site.id, Door.slug == slug))):
        raise ConflictError(f"door '{slug}' already exists at site '{site_slug}'")
    zone = zone_for_field(session, site, values.pop("zone"))
    door = Door(site=site, zone=zone, **values)
    session.add(door)
    session.flush()
    audit.record(session, actor, "create", "door", f"{site_slug}/{slug}", _detail(fields))
    return door


def update_door(session: Session, actor: str, site_slug: str, slug: str, changes: dict[str, Any]) -> Door:
    site = get_site(session, site_slug)
    door = get_door(session, site, slug)
    values = dict(changes)
    if "zone" in values:
        values["zone"] = zone_for_field(session, site, values["zone"])
    diff = changed_fields(door, values)
    if diff:
        session.flush()
        audit.record(session, actor, "update", "door", f"{site_slug}/{slug}", diff)
    return door


def delete_door(session: Session, actor: str, site_slug: str, slug: str) -> None:
    """Remove a door; rooms behind it keep existing without a door of their own."""
    door = get_door(session, get_site(session, site_slug), slug)
    session.delete(door)
    session.flush()
    audit.record(session, actor, "delete", "door", f"{site_slug}/{slug}")


# --- rooms ------------------------------------------------------------------------------------------------


def get_room(session: Session, site: Site, slug: str) -> Room:
    room = session.scalars(select(Room).where(Room.site_id == site.id, Room.slug == slug)).one_or_none()
    if room is None:
        raise NotFoundError(f"room '{slug}' does not exist at site '{site.slug}'")
    return room


def room_for_field(session: Session, site: Site, slug: str, field: str = "room") -> Room:
    try:
        return get_room(session, site, slug)
    except NotFoundError as exc:
        raise InvalidError(str(exc), field) from None


def list_rooms(session: Session, site_slug: str, *, limit: int, offset: int) -> Slice[Room]:
    site = get_site(session, site_slug)
    return paginate(session, select(Room).where(Room.site_id == site.id).order_by(Room.slug), limit, offset)


def _check_calendar_resource(session: Session, resource: str | None, room_id: int | None) -> None:
    if resource is None:
        return
    clash = session.scalars(select(Room).where(Room.calendar_resource == resource)).one_or_none()
    if clash is not None and clash.id != room_id:
        raise ConflictError(
            f"calendar resource '{resource}' already belongs to room '{clash.slug}' "
            f"at site '{clash.site.slug}'"
        )


def _room_links(session: Session, site: Site, values: dict[str, Any]) -> None:
    """Replace zone/door slugs in `values` by the rows they name (in place)."""
    if "zone" in values:
        values["zone"] = zone_for_field(session, site, values["zone"])
    if values.get("door") is not None:
        values["door"] = door_for_field(session, site, values["door"])


def create_room(session: Session, actor: str, site_slug: str, fields: dict[str, Any]) -> Room:
    site = get_site(session, site_slug)
    values = dict(fields)
    slug = values["slug"]
    if session.scalar(select(exists().where(Room.site_id == site.id, Room.slug == slug))):
        raise ConflictError(f"room '{slug}' already exists at site '{site_slug}'")
    _check_calendar_resource(session, values.get("calendar_resource"), None)
    _room_links(session, site, values)
    room = Room(site=site, **values)
    session.add(room)
    session.flush()
    audit.record(session, actor, "create", "room", f"{site_slug}/{slug}", _detail(fields))
    return room


def update_room(session: Session, actor: str, site_slug: str, slug: str, changes: dict[str, Any]) -> Room:
    site = get_site(session, site_slug)
    room = get_room(session, site, slug)
    values = dict(changes)
    if "calendar_resource" in values:
        _check_calendar_resource(session, values["calendar_resource"], room.id)
    _room_links(session, site, values)
    diff = changed_fields(room, values)
    if diff:
        session.flush()
        audit.record(session, actor, "update", "room", f"{site_slug}/{slug}", diff)
    return room


def delete_room(session: Session, actor: str, site_slug: str, slug: str) -> None:
    room = get_room(session, get_site(session, site_slug), slug)
    bookings = session.scalar(select(func.count()).where(Booking.room_id == room.id)) or 0
    if bookings:
        raise ConflictError(
            f"room '{slug}' at site '{site_slug}' cannot be deleted: it has {bookings} booking(s)"
        )
    session.delete(room)
    session.flush()
    audit.record(session, actor, "delete", "room", f"{site_slug}/{slug}")
