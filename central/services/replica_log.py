"""The per-site ordered change log that replica deltas are made from.

Whoever changes a credential, a person, a group or a booking calls the matching `record_*` function in the
SAME transaction, after the change (flushed or not). Each call appends ReplicaChange rows with the site's next
sequence numbers; the gateway later turns the unpublished rows of a site into one `ReplicaDelta`
(`build_delta`) that carries the CURRENT state: an upsert if the credential still belongs in that site's
replica, a remove otherwise.

Changes are recorded at EVERY site (there are few), not only where the credential is eligible now: the log
cannot know where a credential was before the change, and a remove for something an agent does not hold is
a no-op. That is how "the credential left this site" reaches the agent.

Sequence numbers come from SiteReplicaState with `UPDATE ... SET seq = seq + n RETURNING seq`: the row lock is
held until commit, so two transactions can never commit out of order or leave a gap on PostgreSQL; SQLite
serialises writers anyway.

What callers must know (the log only sees the state AFTER the change):
- a person removed from a group: call `record_person_change` for that person (or pass them to
  `record_group_change(..., former_member_ids=...)`);
- a group or credential about to be deleted: call the record function before deleting it (a credential id
  that no longer exists is still recorded, as a remove everywhere);
- a booking moved to a room at another site: the old site learns nothing; its agent drops the booking when it
  ends (bookings are cancelled, not deleted).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, union, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from central.db import utcnow
from central.models import (
    Base,
    Booking,
    Credential,
    CredentialStatus,
    GroupMember,
    GroupZone,
    ReplicaChange,
    ReplicaOp,
    Room,
    Site,
    SiteReplicaState,
    Zone,
)
from central.replica import (
    BOOKING_HORIZON,
    IN_CHUNK,
    LIVE_BOOKING_STATUSES,
    booking_ref,
    credential_ref,
    parse_ref,
    site_bookings,
    site_credentials,
    site_scope,
)
from protocol import messages as m

# One delta stays far below ReplicaDelta.max_bytes (8 MiB) even if every change is an upsert with a PIN hash.
DELTA_MAX_CHANGES = 2000

# Published changes are never read again (an agent that missed one asks for a snapshot), so they are kept
# only this long, for a person investigating what reached a site when.
PUBLISHED_KEEP = timedelta(days=7)

# op, credential id (None for bookings and deleted credentials), ref
Entry = tuple[ReplicaOp, int | None, str]


def insert_ignoring_duplicates(session: Session, model: type[Base], index_elements: Sequence[str]) -> Any:
    """An INSERT that skips rows clashing on `index_elements` (ON CONFLICT DO NOTHING), per dialect."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model).on_conflict_do_nothing(index_elements=list(index_elements))
    if dialect == "sqlite":
        return sqlite.insert(model).on_conflict_do_nothing(index_elements=list(index_elements))
    raise NotImplementedError(f"no INSERT ... ON CONFLICT for database {dialect!r}")


def _allocate_seqs(session: Session, site_id: int, count: int) -> int:
    """Reserve `count` consecutive sequence numbers for a site; returns the first."""
    session.execute(
        insert_ignoring_duplicates(session, SiteReplicaState, ["site_id"]).values(site_id=site_id, seq=0)
    )
    last = session.execute(
        update(SiteReplicaState)
        .where(SiteReplicaState.site_id == site_id)
        .values(seq=SiteReplicaState.seq + count)
        .returning(SiteReplicaState.seq)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    return int(last) - count + 1


def _append(session: Session, site_ids: Iterable[int], entries: dict[int, list[Entry]]) -> None:
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for site_id in sorted(site_ids):
        site_entries = entries.get(site_id, [])
        if not site_entries:
            continue
        first = _allocate_seqs(session, site_id, len(site_entries))
        rows.extend(
            {
                "site_id": site_id,
                "seq": first + offset,
                "op": op,
                "credential_id": cid,
                "credential_ref": ref,
                "created_at": now,
            }
            for offset, (op, cid, ref) in enumerate(site_entries)
        )
    if rows:
        session.execute(insert(ReplicaChange), rows)


def _all_site_ids(session: Session) -> list[int]:
    return list(session.execute(select(Site.id).order_by(Site.id)).scalars())


def _eligible_pairs(session: Session, credential_ids: Collection[int], now: datetime) -> set[tuple[int, int]]:
    """(credential id, site id) for each site whose replica the credential belongs in (central.replica)."""
    if not credential_ids:
        return set()
    ids = list(credential_ids)
    live = Credential.status != CredentialStatus.REVOKED
    via_groups = (
        select(Credential.id, Zone.site_id)
        .join(GroupMember, GroupMember.person_id == Credential.person_id)
        .join(GroupZone, GroupZone.group_id == GroupMember.group_id)
        .join(Zone, Zone.id == GroupZone.zone_id)
        .where(Credential.id.in_(ids), live)
    )
    via_bookings = (
        select(Credential.id, Room.site_id)
        .join(Booking, Booking.holder_id == Credential.person_id)
        .join(Room, Room.id == Booking.room_id)
        .where(
            Credential.id.in_(ids),
            live,
            Booking.status.in_(LIVE_BOOKING_STATUSES),
            Booking.ends_at > now,
            Booking.starts_at < now + BOOKING_HORIZON,
        )
    )
    return {(int(c), int(s)) for c, s in session.execute(union(via_groups, via_bookings))}


def record_credential_changes(session: Session, credential_ids: Iterable[int]) -> None:
    """Log these credentials at every site: upsert where they belong now, remove everywhere else."""
    ids = sorted(set(credential_ids))
    for start in range(0, len(ids), IN_CHUNK):
        _record_credentials(session, ids[start : start + IN_CHUNK])


def _record_credentials(session: Session, ids: list[int]) -> None:
    existing = set(session.execute(select(Credential.id).where(Credential.id.in_(ids))).scalars())
    eligible = _eligible_pairs(session, existing, utcnow())
    site_ids = _all_site_ids(session)
    entries: dict[int, list[Entry]] = defaultdict(list)
    for site_id in site_ids:
        for cid in ids:
            op = ReplicaOp.UPSERT if (cid, site_id) in eligible else ReplicaOp.REMOVE
            entries[site_id].append((op, cid if cid in existing else None, credential_ref(cid)))
    _append(session, site_ids, entries)


def record_credential_change(session: Session, credential_id: int) -> None:
    record_credential_changes(session, [credential_id])


def _credentials_of(session: Session, person_ids: Collection[int]) -> list[int]:
    if not person_ids:
        return []
    stmt = select(Credential.id).where(Credential.person_id.in_(list(person_ids)))
    return list(session.execute(stmt).scalars())


def record_person_change(session: Session, person_id: int) -> None:
    """A person's kind, block, birth year, consent or group memberships changed: all their credentials."""
    record_credential_changes(session, _credentials_of(session, [person_id]))


def record_group_change(session: Session, group_id: int, *, former_member_ids: Iterable[int] = ()) -> None:
    """A group's zones, schedule or members changed: the credentials of its members (and former members)."""
    members = set(
        session.execute(select(GroupMember.person_id).where(GroupMember.group_id == group_id)).scalars()
    )
    record_credential_changes(session, _credentials_of(session, members | set(former_member_ids)))


def record_booking_change(session: Session, booking_id: int) -> None:
    """A booking was created, moved, cancelled or checked in: the booking at its site, and its holder.

    The holder's credentials are logged too, because a live booking puts them into that site's replica.
    """
    found = session.execute(
        select(Room.site_id, Booking.holder_id)
        .join(Room, Room.id == Booking.room_id)
        .where(Booking.id == booking_id)
    ).first()
    site_ids = [found[0]] if found is not None else _all_site_ids(session)
    ref = booking_ref(booking_id)
    _append(session, site_ids, {site_id: [(ReplicaOp.UPSERT, None, ref)] for site_id in site_ids})
    if found is not None and found[1] is not None:
        record_person_change(session, found[1])


def pending_sites(session: Session) -> list[tuple[int, str, int]]:
    """(site id, slug, first unpublished seq) for every site with changes not yet published."""
    stmt = (
        select(Site.id, Site.slug, func.min(ReplicaChange.seq))
        .join(ReplicaChange, ReplicaChange.site_id == Site.id)
        .where(ReplicaChange.published_at.is_(None))
        .group_by(Site.id, Site.slug)
        .order_by(Site.id)
    )
    return [(int(i), str(s), int(q)) for i, s, q in session.execute(stmt)]


def build_delta(
    session: Session,
    site: str,
    after_seq: int,
    *,
    now: datetime | None = None,
    max_changes: int = DELTA_MAX_CHANGES,
) -> m.ReplicaDelta | None:
    """The changes of site `site` (slug) after `after_seq` as one delta of current state; None if none.

    A credential or booking changed several times in the range appears once. At most `max_changes` log
    entries go into one delta; the next call (with the returned seq) continues.
    """
    scope = site_scope(session, site, now)
    rows = session.execute(
        select(ReplicaChange.seq, ReplicaChange.credential_id, ReplicaChange.credential_ref)
        .where(ReplicaChange.site_id == scope.site_id, ReplicaChange.seq > after_seq)
        .order_by(ReplicaChange.seq)
        .limit(max_changes)
    ).all()
    if not rows:
        return None
    credential_ids: set[int] = set()
    booking_ids: set[int] = set()
    gone: set[str] = set()  # credentials deleted since they were logged
    for _seq, cid, ref in rows:
        bid = parse_ref(ref, "b")
        if bid is not None:
            booking_ids.add(bid)
        elif cid is not None:
            credential_ids.add(cid)
        else:
            gone.add(ref)
    credentials = site_credentials(session, scope, credential_ids)
    bookings = site_bookings(session, scope, booking_ids)
    return m.ReplicaDelta(
        site=site,
        seq=rows[-1][0],
        prev_seq=after_seq,
        generated_at=scope.now,
        upsert=[credentials[c] for c in sorted(credentials)],
        remove=sorted(gone | {credential_ref(c) for c in credential_ids - credentials.keys()}),
        upsert_bookings=[bookings[b] for b in sorted(bookings)],
        remove_bookings=sorted(booking_ref(b) for b in booking_ids - bookings.keys()),
    )


def mark_published(session: Session, site_id: int, up_to_seq: int, at: datetime | None = None) -> None:
    """Remember that the site's changes up to `up_to_seq` reached the broker."""
    session.execute(
        update(ReplicaChange)
        .where(
            ReplicaChange.site_id == site_id,
            ReplicaChange.seq <= up_to_seq,
            ReplicaChange.published_at.is_(None),
        )
        .values(published_at=at or utcnow())
        .execution_options(synchronize_session=False)
    )


def prune_published(session: Session, now: datetime | None = None, keep: timedelta = PUBLISHED_KEEP) -> int:
    """Delete changes published longer than `keep` ago; returns how many. Unpublished ones always stay."""
    cutoff = (now or utcnow()) - keep
    result = session.execute(
        delete(ReplicaChange)
        .where(ReplicaChange.published_at.is_not(None), ReplicaChange.published_at < cutoff)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
