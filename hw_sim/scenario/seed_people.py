"""The seed people (central/seed.py) a scenario may name without describing them, by their first name."""

from __future__ import annotations

from dataclasses import dataclass

from central import seed
from protocol import messages as m


@dataclass(frozen=True)
class _SeedPerson:
    ref: str
    kind: m.PersonKind
    card_uid: str | None
    phone: bool
    groups: tuple[str, ...]


_SEED = {
    spec.ref.split("-")[0]: _SeedPerson(
        spec.ref, m.PersonKind(spec.kind.value), spec.card_uid, spec.phone_credential, spec.groups
    )
    for spec in seed.PEOPLE
}
SEED_NAMES = tuple(_SEED)


def seed_external_ref(name: str) -> str:
    """How central's seed names the seed person `name` (Person.external_ref)."""
    return f"demo:{_SEED[name].ref}"
