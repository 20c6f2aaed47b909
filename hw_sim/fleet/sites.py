"""Central's side of the plan: the fleet's sites, residents, caretakers and cards created in central's
database with bulk inserts, and the caretakers' credentials looked up for revoking or blocking.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from central.db import utcnow
from central.models import (
    AccessGroup,
    Credential,
    CredentialKind,
    Door,
    GroupMember,
    GroupZone,
    HoursKind,
    OpeningHours,
    Person,
    PersonKind,
    Site,
    Zone,
)
from central.security import card_uid_hash as central_uid_hash
from central.security import hash_pin
from central.services import credentials as credential_service
from central.services import replica_log
from hw_sim.fleet.plan import (
    CLOSES,
    DOORS,
    FLEET_PIN,
    OPENS,
    ROAMING_GROUP,
    SITE_PREFIX,
    ZONES,
    FleetPlan,
    card_uid,
    roaming_uid,
)

INSERT_CHUNK = 500  # sites per bulk insert


def create_sites(session: Session, plan: FleetPlan, uid_key: bytes, now: datetime | None = None) -> int:
    """Add the plan's sites that are missing (with their layout, hours, group, residents and cards) and the
    caretakers, in the caller's transaction; returns how many sites were created.

    Bulk inserts through the models, without replica-log entries for the residents: their cards are
    eligible only at sites that did not exist before, whose agents start from a snapshot anyway.
    """
    now = now or utcnow()
    existing = set(session.scalars(select(Site.slug).where(Site.slug.like(f"{SITE_PREFIX}-%"))))
    missing = [(i, slug) for i, slug in enumerate(plan.slugs, 1) if slug not in existing]
    roaming_group = _caretakers(session, plan, uid_key, now)
    pin_hash = hash_pin(FLEET_PIN) if missing else ""
    for start in range(0, len(missing), INSERT_CHUNK):
        _insert_sites(session, missing[start : start + INSERT_CHUNK], plan, uid_key, pin_hash, roaming_group)
    return len(missing)


def _caretakers(session: Session, plan: FleetPlan, uid_key: bytes, now: datetime) -> int:
    """The any-time group and its caretakers with their cards (created once); returns the group id."""
    group = session.scalars(select(AccessGroup).where(AccessGroup.slug == ROAMING_GROUP)).one_or_none()
    if group is None:
        group = AccessGroup(
            slug=ROAMING_GROUP, name="Vaktmestere (fleet)", description="Simulated caretakers", any_time=True
        )
        session.add(group)
        session.flush()
    created: list[int] = []
    for k in range(1, plan.roaming + 1):
        ref = f"fleet:vaktmester:{k}"
        if session.scalars(select(Person.id).where(Person.external_ref == ref)).first() is not None:
            continue
        person = Person(kind=PersonKind.CARETAKER, display_name=f"Vaktmester {k} (fleet)", external_ref=ref)
        person.credentials.append(
            Credential(
                kind=CredentialKind.CARD,
                uid_hash=central_uid_hash(roaming_uid(k), uid_key),
                label="Nøkkelkort (fleet)",
                valid_from=now - timedelta(days=1),
            )
        )
        group.members.append(person)
        session.flush()
        created.extend(c.id for c in person.credentials)
    replica_log.record_credential_changes(session, created)  # existing fleet sites learn of new caretakers
    return group.id


def _insert_sites(
    session: Session,
    chunk: Sequence[tuple[int, str]],
    plan: FleetPlan,
    uid_key: bytes,
    pin_hash: str,
    roaming_group: int,
) -> None:
    sites = _returning(
        session,
        Site,
        [{"slug": slug, "name": f"Fleet {i:04d} innbyggertorg", "address": "Simulert"} for i, slug in chunk],
    )
    site_ids = [sites[slug] for _i, slug in chunk]
    zone_rows = [{"site_id": s, "slug": z, "name": name} for s in site_ids for z, name in ZONES]
    zone_ids = (
        session.execute(insert(Zone).returning(Zone.id, sort_by_parameter_order=True), zone_rows)
        .scalars()
        .all()
    )
    zone_of = {(row["site_id"], row["slug"]): zid for row, zid in zip(zone_rows, zone_ids, strict=True)}
    session.execute(
        insert(Door),
        [
            {
                "site_id": s,
                "zone_id": zone_of[(s, zone)],
                "slug": slug,
                "name": name,
                "kind": kind,
                "lock_type": lt,
            }
            for s in site_ids
            for slug, name, zone, kind, lt in DOORS
        ],
    )
    session.execute(
        insert(OpeningHours),
        [
            {"site_id": s, "weekday": d, "opens": OPENS, "closes": CLOSES, "kind": HoursKind.MERAAPENT}
            for s in site_ids
            for d in range(7)
        ],
    )
    groups = _returning(
        session, AccessGroup, [{"slug": slug, "name": f"Innbyggere {slug}"} for _i, slug in chunk]
    )
    session.execute(
        insert(GroupZone),
        [
            {"group_id": groups[slug], "zone_id": zone_of[(sites[slug], z)]}
            for _i, slug in chunk
            for z, _n in ZONES
        ]
        + [{"group_id": roaming_group, "zone_id": zone_of[(s, "torg")]} for s in site_ids],
    )
    people = [(i, slug, j) for i, slug in chunk for j in range(1, plan.residents + 1)]
    person_ids = (
        session.execute(
            insert(Person).returning(Person.id, sort_by_parameter_order=True),
            [
                {
                    "kind": PersonKind.RESIDENT,
                    "display_name": f"Innbygger {j} ({slug})",
                    "external_ref": f"fleet:{slug}:{j}",
                }
                for _i, slug, j in people
            ],
        )
        .scalars()
        .all()
    )
    session.execute(
        insert(GroupMember),
        [
            {"group_id": groups[slug], "person_id": pid}
            for (_i, slug, _j), pid in zip(people, person_ids, strict=True)
        ],
    )
    valid_from = utcnow() - timedelta(days=1)
    session.execute(
        insert(Credential),
        [
            {
                "person_id": pid,
                "kind": CredentialKind.CARD,
                "uid_hash": central_uid_hash(card_uid(i, j), uid_key),
                "pin_hash": pin_hash,
                "label": "Lånekort (fleet)",
                "valid_from": valid_from,
            }
            for (i, _slug, j), pid in zip(people, person_ids, strict=True)
        ],
    )


def _returning(
    session: Session, model: type[Site] | type[AccessGroup], rows: list[dict[str, Any]]
) -> dict[str, int]:
    """Insert rows that have a slug; slug -> new id."""
    ids = (
        session.execute(insert(model).returning(model.id, sort_by_parameter_order=True), rows).scalars().all()
    )
    return {row["slug"]: rid for row, rid in zip(rows, ids, strict=True)}


def caretaker_credential(session: Session, caretaker: int, uid_key: bytes) -> int:
    """The credential id of caretaker `caretaker`'s card (to revoke or block it through the services)."""
    credential, _person = credential_service.lookup_card(session, roaming_uid(caretaker).hex(), uid_key)
    return credential.id
