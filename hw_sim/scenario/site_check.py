"""Checking a parsed scenario against central's configuration of its site: the doors, rooms and zones
it names must exist there (site data, so not known to the parser).
"""

from __future__ import annotations

from hw_sim.scenario.actions import Scan
from hw_sim.scenario.expectations import LightsExpectation
from hw_sim.scenario.model import Scenario
from hw_sim.scenario.vocabulary import ALL_DOORS
from hw_sim.scenario.wording import _suggest
from protocol import messages as m


def check_site(scenario: Scenario, config: m.SiteConfig) -> None:
    """Refuse doors, rooms and zones the site does not have, before anything is played."""
    doors = [door.slug for door in config.doors]
    zones = [zone.slug for zone in config.zones]
    rooms = [room.slug for room in config.rooms]
    for step in scenario.steps:
        where = f"step {step.number}"
        named = [getattr(step.action, "door", None), *(getattr(e, "door", None) for e in step.expect)]
        for door in named:
            if isinstance(door, str) and door != ALL_DOORS and door not in doors:
                hint = _suggest(door, doors)
                raise scenario.error(
                    where, f"no door {door!r} at {config.site}{hint} (doors: {', '.join(doors)})"
                )
        for expectation in step.expect:
            if (
                isinstance(expectation, LightsExpectation)
                and expectation.zone
                and expectation.zone not in zones
            ):
                raise scenario.error(
                    where, f"no zone {expectation.zone!r} at {config.site} ({', '.join(zones)})"
                )
        if isinstance(step.action, Scan) and step.action.token is not None:
            token = step.action.token
            if token.site in (None, config.site):
                for door in token.doors or ():
                    if door not in doors:
                        raise scenario.error(where, f"the token names no door of {config.site}: {door!r}")
                for zone in token.zones:
                    if zone not in zones:
                        raise scenario.error(where, f"the token names no zone of {config.site}: {zone!r}")
    if scenario.door not in doors:
        raise scenario.error(
            "door", f"no door {scenario.door!r} at {config.site} (doors: {', '.join(doors)})"
        )
    for index, booking in enumerate(scenario.bookings, 1):
        if booking.room not in rooms:
            raise scenario.error(
                f"booking {index}", f"no room {booking.room!r} at {config.site} (rooms: {', '.join(rooms)})"
            )
