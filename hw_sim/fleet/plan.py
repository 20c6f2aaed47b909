"""The fleet's plan: how many sites, residents and caretakers, the sites' layout and hours, and the
names and card UIDs that follow from it, so central's side and the agents agree without asking.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time as clock_time

from central.models import DoorKind, LockType

SITE_PREFIX = "fleet"
ENTRANCE = "hovedinngang"
ZONES = (("torg", "Torget"), ("bibliotek", "Biblioteket"))
DOORS = (
    (ENTRANCE, "Hovedinngang", "torg", DoorKind.ENTRANCE, LockType.FAIL_SECURE),
    ("bibliotek", "Biblioteket", "bibliotek", DoorKind.INTERNAL, LockType.FAIL_SAFE),
)
OPENS, CLOSES = clock_time(7), clock_time(22)
ROAMING_GROUP = "fleet-vaktmestere"
FLEET_PIN = "1234"  # simulated residents type it right most of the time (WRONG_PIN_SHARE)
CARD_MARK = b"\xf1\xee"  # first bytes of every fleet card UID: never a real card's
UNKNOWN_MARK = b"\xf1\xef"  # cards nobody registered


@dataclass(frozen=True)
class FleetPlan:
    """How many sites, residents per site and caretakers (whose cards open every fleet site)."""

    sites: int
    residents: int = 5
    roaming: int = 2

    def __post_init__(self) -> None:
        for name, value, top in (("sites", self.sites, 99_999), ("residents", self.residents, 1000)):
            if not 1 <= value <= top:
                raise ValueError(f"{name} must be 1–{top}, got {value}")
        if not 1 <= self.roaming <= 100:
            raise ValueError(f"roaming caretakers must be 1–100, got {self.roaming}")

    @property
    def slugs(self) -> list[str]:
        return [site_slug(i) for i in range(1, self.sites + 1)]


def site_slug(index: int) -> str:
    return f"{SITE_PREFIX}-{index:04d}"


def agent_name(site: str) -> str:
    return f"{site}-sim"


def card_uid(site_index: int, person: int) -> bytes:
    """Resident `person` of site `site_index` (site 0: the caretakers); 7 bytes like a MIFARE UID."""
    return CARD_MARK + site_index.to_bytes(3, "big") + person.to_bytes(2, "big")


def roaming_uid(caretaker: int) -> bytes:
    return card_uid(0, caretaker)
