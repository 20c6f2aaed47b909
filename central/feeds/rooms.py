"""Which room an event books: the feed's one room, or the room its resource property names (no I/O).

For a site feed the text of the configured property (LOCATION by default; RESOURCES or an X- property of
the booking system work the same) is matched, ignoring case and spacing, against, in order of precedence:
the feed's own `room_map`, each room's `calendar_resource`, its slug and its name. A value matching no room
whole is split at commas ("Møterom 1, Møterom 2" or a RESOURCES list) and each part tried.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RoomInfo:
    slug: str
    name: str
    calendar_resource: str | None


def normalise(text: str) -> str:
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class RoomIndex:
    """`fixed` for a room feed; else the lookup from normalised text to room slug."""

    property_name: str
    fixed: str | None = None
    lookup: Mapping[str, str] | None = None

    def rooms_for(self, values: Sequence[str]) -> tuple[str, ...] | str:
        """The slugs of the rooms the event books, or why there are none (a sentence for the admin)."""
        if self.fixed is not None:
            return (self.fixed,)
        lookup = self.lookup or {}
        found: list[str] = []
        for value in values:
            whole = lookup.get(normalise(value))
            parts = [whole] if whole else [lookup.get(normalise(part)) for part in value.split(",")]
            found.extend(slug for slug in parts if slug and slug not in found)
        if found:
            return tuple(found)
        if not values:
            return f"it has no {self.property_name}, so the room is unknown"
        shown = ", ".join(f"'{v}'" for v in values)
        return f"no room matches {self.property_name} {shown} (add it to the feed's room_map)"


def room_index(
    property_name: str, fixed: str | None, room_map: Mapping[str, str], rooms: Iterable[RoomInfo]
) -> RoomIndex:
    """The index for a feed; `room_map` targets that are not rooms of the site are left out."""
    if fixed is not None:
        return RoomIndex(property_name, fixed=fixed)
    rooms = list(rooms)
    slugs = {room.slug for room in rooms}
    lookup: dict[str, str] = {}
    for room in rooms:  # weakest first: later entries win
        lookup[normalise(room.name)] = room.slug
    for room in rooms:
        lookup[normalise(room.slug)] = room.slug
    for room in rooms:
        if room.calendar_resource:
            lookup[normalise(room.calendar_resource)] = room.slug
    for text, slug in room_map.items():
        if slug in slugs:
            lookup[normalise(text)] = slug
    lookup.pop("", None)
    return RoomIndex(property_name, lookup=lookup)
