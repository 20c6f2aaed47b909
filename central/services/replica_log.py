"""The per-site ordered change log that replica deltas are made from.

Whoever changes a credential, a person, a group or a booking calls the matching `record_*` function in the
SAME transaction, after the change (flushed or not). Each call appends ReplicaChange rows with the site's next
sequence numbers; the gateway later turns the unpublished rows of a site into one `ReplicaDelta`
(`build_delta`) that carries the CURRENT state: an upsert if the credential still belongs in that site's
replica, a remove otherwise.

Changes are recorded at EVERY site (there are few), not only where the credential is eligible now: the log
cannot know where a credential was before the change, and a remove for something an agent does not hold is
a no-op. That is how "the credential left this site" reaches the agent.

Sequence numbers come from SiteReplicaState with one `UPDATE ... SET seq = seq + n RETURNING` over all the
sites a call logs at (a revoke: every site): the row locks are held until commit, so two transactions can
never commit out of order or leave a gap on PostgreSQL; SQLite serialises writers anyway. The gateway
relies on that: a site's unpublished entries are consecutive numbers.

What callers must know (the log only sees the state AFTER the change):
- a person removed from a group: call `record_person_change` for that person (or pass them to
  `record_group_change(..., former_member_ids=...)`);
- a group or credential about to be deleted: call the record function before deleting it (a credential id
  that no longer exists is still recorded, as a remove everywhere);
- a booking whose holder was replaced or co-holders removed, or a booking about to be deleted: pass the
  people it no longer names to `record_booking_change(..., former_holder_ids=...)`;
- a booking moved to a room at another site: the old site learns nothing; its agent drops the booking when it
  ends (bookings are cancelled, not deleted).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    union,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from central.db import utcnow
from central.models import (
    Base,
    Booking,
    BookingCoHolder,
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
    bookings_at_sites,
    credential_ref,
    credentials_at_sites,
    parse_ref,
    site_bookings,
    site_credentials,
    site_scope,
)
from protocol import messages as m

# Sites per change-log query in build_deltas (on SQLite each adds three bind parameters).
SITES_PER_QUERY = 500

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


def _allocate_seqs(session: Session, site_ids: Collection[int], count: int) -> dict[int, int]:
    """Reserve `count` consecutive sequence numbers at each site; returns the first of each site's range.

    Per IN_CHUNK sites: a SELECT ... FOR UPDATE that takes the row locks in site order (so two transactions
    that both log at many sites queue behind each other instead of deadlocking; SQLite has no row locks and
    serialises writers), an INSERT only for sites that never logged anything, and one UPDATE ... RETURNING.
    The locks are held until commit.
    """
    ordered = sorted(site_ids)
    first: dict[int, int] = {}
    for chunk in (ordered[start : start + IN_CHUNK] for start in range(0, len(ordered), IN_CHUNK)):
        in_chunk = SiteReplicaState.site_id.in_(chunk)
        locked = session.execute(
            select(SiteReplicaState.site_id)
            .where(in_chunk)
            .order_by(SiteReplicaState.site_id)
            .with_for_update()
        )
        known = set(locked.scalars())
        if missing := [site_id for site_id in chunk if site_id not in known]:
            session.execute(
                insert_ignoring_duplicates(session, SiteReplicaState, ["site_id"]).values(
                    [{"site_id": site_id, "seq": 0} for site_id in missing]
                )
            )
        allocated = session.execute(
            update(SiteReplicaState)
            .where(in_chunk)
            .values(seq=SiteReplicaState.seq + count)
            .returning(SiteReplicaState.site_id, SiteReplicaState.seq)
            .execution_options(synchronize_session=False)
        )
        first.update((int(site_id), int(last) - count + 1) for site_id, last in allocated)
    return first


def _append(session: Session, entries: Mapping[int, Sequence[Entry]]) -> None:
    """Log the entries of each site under the site's next sequence numbers, in the given order.

    Every site gets the same number of entries (the same credentials or booking, with the op for that site),
    so one UPDATE allocates them all.
    """
    counts = {len(site_entries) for site_entries in entries.values()}
    if len(counts) > 1:
        raise ValueError(f"replica log entries per site differ in number: {sorted(counts)}")
    count = max(counts, default=0)
    if count == 0:
        return
    first = _allocate_seqs(session, entries.keys(), count)
    now = utcnow()
    rows = [
        {
            "site_id": site_id,
            "seq": first[site_id] + offset,
            "op": op,
            "credential_id": cid,
            "credential_ref": ref,
            "created_at": now,
        }
        for site_id in sorted(entries)
        for offset, (op, cid, ref) in enumerate(entries[site_id])
    ]
    session.connection().execute(insert(ReplicaChange), rows)  # Core executemany: no ORM work per row


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
    live_booking = (
        Booking.status.in_(LIVE_BOOKING_STATUSES),
        Booking.ends_at > now,
        Booking.starts_at < now + BOOKING_HORIZON,
    )
    via_bookings = (
        select(Credential.id, Room.site_id)
        .join(Booking, Booking.holder_id == Credential.person_id)
        .join(Room, Room.id == Booking.room_id)
        .where(Credential.id.in_(ids), live, *live_booking)
    )
    via_co_holdings = (
        select(Credential.id, Room.site_id)
        .join(BookingCoHolder, BookingCoHolder.person_id == Credential.person_id)
        .join(Booking, Booking.id == BookingCoHolder.booking_id)
        .join(Room, Room.id == Booking.room_id)
        .where(Credential.id.in_(ids), live, *live_booking)
    )
    found = session.execute(union(via_groups, via_bookings, via_co_holdings))
    return {(int(c), int(s)) for c, s in found}


def record_credential_changes(session: Session, credential_ids: Iterable[int]) -> None:
    """Log these credentials at every site: upsert where they belong now, remove everywhere else."""
    ids = sorted(set(credential_ids))
    for start in range(0, len(ids), IN_CHUNK):
        _record_credentials(session, ids[start : start + IN_CHUNK])


def _record_credentials(session: Session, ids: list[int]) -> None:
    existing = set(session.execute(select(Credential.id).where(Credential.id.in_(ids))).scalars())
    eligible = _eligible_pairs(session, existing, utcnow())
    entries: dict[int, list[Entry]] = defaultdict(list)
    for site_id in _all_site_ids(session):
        for cid in ids:
            op = ReplicaOp.UPSERT if (cid, site_id) in eligible else ReplicaOp.REMOVE
            entries[site_id].append((op, cid if cid in existing else None, credential_ref(cid)))
    _append(session, entries)


def record_credential_change(session: Session, credential_id: int) -> None:
    record_credential_changes(session, [credential_id])


def _credentials_of(session: Session, person_ids: Collection[int]) -> list[int]:
    if not person_ids:
        return []
    stmt = select(Credential.id).where(Credential.person_id.in_(list(person_ids)))
    return list(session.execute(stmt).scalars())


def _people_of(session: Session, booking_id: int) -> list[int]:
    """The holder and the co-holders of a booking (person ids, in order), in one query."""
    holder = select(Booking.holder_id).where(Booking.id == booking_id, Booking.holder_id.is_not(None))
    co_holders = select(BookingCoHolder.person_id).where(BookingCoHolder.booking_id == booking_id)
    return sorted(int(p) for p in session.execute(union(holder, co_holders)).scalars())


def record_person_change(session: Session, person_id: int) -> None:
    """A person's kind, block, birth year, consent or group memberships changed: all their credentials."""
    record_credential_changes(session, _credentials_of(session, [person_id]))


def record_group_change(session: Session, group_id: int, *, former_member_ids: Iterable[int] = ()) -> None:
    """A group's zones, schedule or members changed: the credentials of its members (and former members)."""
    members = set(
        session.execute(select(GroupMember.person_id).where(GroupMember.group_id == group_id)).scalars()
    )
    record_credential_changes(session, _credentials_of(session, members | set(former_member_ids)))


def record_booking_change(
    session: Session, booking_id: int, *, former_holder_ids: Iterable[int] = ()
) -> None:
    """A booking was created, moved, cancelled or checked in, or its people changed: the booking at its
    site, and the credentials of its holder and co-holders.

    Their credentials are logged because a live booking puts them into that site's replica; pass the people
    the booking no longer names (a replaced holder, removed co-holders, everyone on a deleted booking) as
    `former_holder_ids`, so they leave it. The credentials go first, so this takes the sites' sequence locks
    in the same order as every other change (a transaction that locked one site and then waits for all of
    them could deadlock with one doing the opposite).
    """
    found = session.execute(
        select(Room.site_id).join(Booking, Booking.room_id == Room.id).where(Booking.id == booking_id)
    ).first()
    people = set(former_holder_ids) | set(_people_of(session, booking_id))
    if people:  # first: it locks every site, in site order
        record_credential_changes(session, _credentials_of(session, sorted(people)))
    site_ids = [found[0]] if found is not None else _all_site_ids(session)
    ref = booking_ref(booking_id)
    _append(session, {site_id: [(ReplicaOp.UPSERT, None, ref)] for site_id in site_ids})


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


@dataclass(frozen=True)
class _Logged:
    """What a range of one site's log entries names: the last seq, credentials, bookings, deleted ones."""

    seq: int
    credential_ids: set[int]
    booking_ids: set[int]
    gone: set[str]  # refs of credentials deleted since they were logged

    @classmethod
    def of(cls, rows: Sequence[Sequence[Any]]) -> _Logged:
        """From (seq, credential id, ref) rows in seq order."""
        logged = cls(int(rows[-1][0]), set(), set(), set())
        for _seq, cid, ref in rows:
            bid = parse_ref(ref, "b")
            if bid is not None:
                logged.booking_ids.add(bid)
            elif cid is not None:
                logged.credential_ids.add(cid)
            else:
                logged.gone.add(ref)
        return logged

    def delta(
        self,
        site: str,
        after_seq: int,
        now: datetime,
        credentials: Mapping[int, m.Credential],
        bookings: Mapping[int, m.Booking],
    ) -> m.ReplicaDelta:
        """The delta of current state: an upsert for what is eligible at the site now, a remove otherwise."""
        return m.ReplicaDelta(
            site=site,
            seq=self.seq,
            prev_seq=after_seq,
            generated_at=now,
            upsert=[credentials[c] for c in sorted(self.credential_ids & credentials.keys())],
            remove=sorted(self.gone | {credential_ref(c) for c in self.credential_ids - credentials.keys()}),
            upsert_bookings=[bookings[b] for b in sorted(self.booking_ids & bookings.keys())],
            remove_bookings=sorted(booking_ref(b) for b in self.booking_ids - bookings.keys()),
        )


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
    logged = _Logged.of(rows)
    credentials = site_credentials(session, scope, logged.credential_ids)
    bookings = site_bookings(session, scope, logged.booking_ids)
    return logged.delta(site, after_seq, scope.now, credentials, bookings)


def build_deltas(
    session: Session,
    pending: Sequence[tuple[int, str, int]],
    *,
    now: datetime | None = None,
    max_changes: int = DELTA_MAX_CHANGES,
) -> list[tuple[int, m.ReplicaDelta]]:
    """The next delta of each of many sites, the same as `build_delta` would build them one by one.

    `pending` holds (site id, slug, first seq) as `pending_sites` returns them: each site's delta starts at
    its first seq and holds at most `max_changes` entries (`seq - prev_seq` entries: their numbers are
    consecutive); to continue a site whose delta is full, pass it again with the delta's seq + 1. Sites with
    nothing from their first seq on get no delta. The whole batch costs four queries (per SITES_PER_QUERY
    sites or IN_CHUNK ids), not four per site: after a revoke every site has a change.
    """
    session.flush()  # what follows reads through the connection, past the ORM's autoflush
    now = now or utcnow()
    logged: dict[int, _Logged] = {}
    for start in range(0, len(pending), SITES_PER_QUERY):
        logged.update(_logged_at_sites(session, pending[start : start + SITES_PER_QUERY], max_changes))
    credentials = credentials_at_sites(
        session, {site_id: entries.credential_ids for site_id, entries in logged.items()}, now
    )
    bookings: defaultdict[int, dict[int, m.Booking]] = defaultdict(dict)  # site id -> live ones there
    booking_ids = set().union(*(entries.booking_ids for entries in logged.values()))
    for bid, (site_id, booking) in bookings_at_sites(session, booking_ids, now).items():
        bookings[site_id][bid] = booking
    return [
        (site_id, logged[site_id].delta(slug, first_seq - 1, now, credentials[site_id], bookings[site_id]))
        for site_id, slug, first_seq in pending
        if site_id in logged
    ]


def _logged_at_sites(
    session: Session, pending: Sequence[tuple[int, str, int]], max_changes: int
) -> dict[int, _Logged]:
    """Site id -> its next `max_changes` log entries, in one query over the (site_id, seq) unique index.

    Sequence numbers have no gaps (module docstring), so `first <= seq < first + max_changes` holds the same
    entries as build_delta's ORDER BY seq LIMIT max_changes.
    """
    if not pending:
        return {}
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        sites = [site_id for site_id, _slug, _first in pending]
        firsts = [first_seq for _site_id, _slug, first_seq in pending]
        params = {"sites": sites, "firsts": firsts, "max_changes": max_changes}
        found = connection.execute(_LOG_RANGES_POSTGRESQL, params)
    else:
        ranges: dict[str, int] = {}
        for n, (site_id, _slug, first_seq) in enumerate(pending):
            ranges.update({f"site{n}": site_id, f"from{n}": first_seq, f"to{n}": first_seq + max_changes})
        found = connection.execute(_log_ranges(len(pending)), ranges)
    rows: defaultdict[int, list[Sequence[Any]]] = defaultdict(list)
    for site_id, seq, cid, ref in found:
        rows[site_id].append((seq, cid, ref))
    return {site_id: _Logged.of(site_rows) for site_id, site_rows in rows.items()}


_LOG_COLUMNS = (
    ReplicaChange.site_id,
    ReplicaChange.seq,
    ReplicaChange.credential_id,
    ReplicaChange.credential_ref,
)


def _log_ranges_postgresql() -> Select[int, int, int | None, str]:
    """The log entries of many sites, each from its first seq on: a join with the (site, first seq) pairs
    passed as two arrays, which PostgreSQL turns into one index range scan per site however long the
    published log is (an OR of 200 ranges takes it twenty times longer on a week of history)."""
    wanted = (
        func.unnest(
            bindparam("sites", type_=postgresql.ARRAY(Integer)),
            bindparam("firsts", type_=postgresql.ARRAY(BigInteger)),
        )
        .table_valued("site_id", "first_seq")
        .render_derived(name="wanted")
    )
    return (
        select(*_LOG_COLUMNS)
        .join(
            wanted,
            and_(
                ReplicaChange.site_id == wanted.c.site_id,
                ReplicaChange.seq >= wanted.c.first_seq,
                ReplicaChange.seq < wanted.c.first_seq + bindparam("max_changes", type_=BigInteger),
            ),
        )
        .order_by(ReplicaChange.site_id, ReplicaChange.seq)
    )


_LOG_RANGES_POSTGRESQL = _log_ranges_postgresql()


@functools.lru_cache(maxsize=16)
def _log_ranges(sites: int) -> Select[int, int, int | None, str]:
    """The same for other databases (SQLite): an OR of `sites` ranges (site<n>, from<n> <= seq < to<n>).

    Built once per number of sites, values bound at execution: building 200 ranges as expressions costs more
    than the query itself.
    """
    ranges = [
        and_(
            ReplicaChange.site_id == bindparam(f"site{n}"),
            ReplicaChange.seq >= bindparam(f"from{n}"),
            ReplicaChange.seq < bindparam(f"to{n}"),
        )
        for n in range(sites)
    ]
    return select(*_LOG_COLUMNS).where(or_(*ranges)).order_by(ReplicaChange.site_id, ReplicaChange.seq)


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


def mark_all_published(session: Session, up_to: Mapping[int, int], at: datetime | None = None) -> None:
    """`mark_published` for many sites (site id -> up to which seq), as one executemany."""
    if not up_to:
        return
    stmt = (
        update(ReplicaChange)
        .where(
            ReplicaChange.site_id == bindparam("mark_site"),
            ReplicaChange.seq <= bindparam("mark_seq"),
            ReplicaChange.published_at.is_(None),
        )
        .values(published_at=bindparam("mark_at"))
    )
    at = at or utcnow()
    params = [
        {"mark_site": site_id, "mark_seq": seq, "mark_at": at} for site_id, seq in sorted(up_to.items())
    ]
    session.connection().execute(stmt, params)


def prune_published(session: Session, now: datetime | None = None, keep: timedelta = PUBLISHED_KEEP) -> int:
    """Delete changes published longer than `keep` ago; returns how many. Unpublished ones always stay."""
    cutoff = (now or utcnow()) - keep
    result = session.execute(
        delete(ReplicaChange)
        .where(ReplicaChange.published_at.is_not(None), ReplicaChange.published_at < cutoff)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
