"""The credential replica a site agent holds: who may come in at this site, and which bookings are coming.

A credential belongs in a site's replica when it is not revoked and its person either is a member of an
access group with a zone at that site, or holds or co-holds a live booking (confirmed or checked in, not yet
ended, starting within `BOOKING_HORIZON`) of a room at that site: a booking's co-holders count exactly like
its holder, everywhere. Blocked credentials and blocked persons stay in the replica with status `blocked`, so
the door can say "blocked" instead of "unknown card".

Everything here is set-based Core selects (no per-row ORM loads): a snapshot of 100,000 credentials has to be
built in well under two seconds. `site_credentials` and `site_bookings` also serve the deltas of one site
(`central.services.replica_log.build_delta`); `credentials_at_sites` and `bookings_at_sites` answer the same
question for many sites at once (the gateway's deltas after a change that concerns every site). All of them
share the conditions below, so a snapshot and a delta can never disagree about eligibility.

References on the wire are opaque: credentials "c<id>", persons "p<id>", bookings "b<id>".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, CompoundSelect, cast, func, null, select, union
from sqlalchemy.orm import Session

from central.db import utcnow
from central.models import (
    AccessGroup,
    Booking,
    BookingCoHolder,
    BookingStatus,
    Credential,
    CredentialStatus,
    GroupMember,
    GroupZone,
    Person,
    ReplicaChange,
    Room,
    Site,
    SiteReplicaState,
    Zone,
)
from protocol import messages as m

BOOKING_HORIZON = timedelta(days=14)
LIVE_BOOKING_STATUSES = (BookingStatus.CONFIRMED, BookingStatus.CHECKED_IN)
ADULT_AGE = 18
# Keeps every IN (...) list far below SQLite's and PostgreSQL's bind-parameter limits.
IN_CHUNK = 5000
OSLO = ZoneInfo("Europe/Oslo")

_PERSON_KIND = {kind.value: m.PersonKind(kind.value) for kind in m.PersonKind}
_CREDENTIAL_KIND = {kind.value: m.CredentialKind(kind.value) for kind in m.CredentialKind}
_BOOKING_STATUS = {status.value: m.BookingStatus(status.value) for status in m.BookingStatus}

T = TypeVar("T")


class UnknownSiteError(LookupError):
    """The site slug names no site in the database."""


def credential_ref(credential_id: int) -> str:
    return f"c{credential_id}"


def person_ref(person_id: int) -> str:
    return f"p{person_id}"


def booking_ref(booking_id: int) -> str:
    return f"b{booking_id}"


def parse_ref(ref: str | None, prefix: str) -> int | None:
    """The id in a wire reference such as "p42" (prefix "p"), or None if it is not one of ours."""
    if not ref or not ref.startswith(prefix) or not ref[len(prefix) :].isdigit():
        return None
    return int(ref[len(prefix) :])


def is_minor(birth_year: int | None, today_year: int) -> bool:
    """Born less than 18 years ago, to the year (when only the birth year is known).

    Someone born in `today_year - 18` counts as adult from 1 January of the year they turn 18.
    """
    return birth_year is not None and today_year - birth_year < ADULT_AGE


def age_on(today: date, birth_date: date | None, birth_year: int | None) -> int | None:
    """Whole years of age on `today` (site-local date): exact from the birth date (born 29 February: a year
    older on 1 March in other years), else to the year from the birth year; None when neither is known."""
    if birth_date is not None:
        before_birthday = (today.month, today.day) < (birth_date.month, birth_date.day)
        return today.year - birth_date.year - before_birthday
    return None if birth_year is None else today.year - birth_year


def lacks_consent(age: int | None, min_age: int, guardian_consent: bool) -> bool:
    """Under the site's `min_age` without a recorded guardian consent: the agent refuses (consent_missing).

    The site's `min_age_with_consent` is the floor for signing up alone (central.services.enrolment); a
    younger child whom staff registered with a guardian's consent is let in, as before.
    """
    return age is not None and age < min_age and not guardian_consent


@dataclass(frozen=True)
class SiteScope:
    """What decides eligibility at one site at one moment: its groups and the live-booking window."""

    site_id: int
    slug: str
    groups: dict[int, str]  # access group id -> slug, for groups with at least one zone at this site
    now: datetime
    min_age: int = ADULT_AGE  # younger needs a guardian's consent at this site

    @property
    def booking_horizon(self) -> datetime:
        return self.now + BOOKING_HORIZON


def site_scope(session: Session, site_slug: str, now: datetime | None = None) -> SiteScope:
    session.flush()  # what follows reads through the connection, past the ORM's autoflush
    found = session.execute(select(Site.id, Site.min_age).where(Site.slug == site_slug)).one_or_none()
    if found is None:
        raise UnknownSiteError(f"site {site_slug!r} does not exist")
    site_id, min_age = found
    groups = session.execute(
        select(AccessGroup.id, AccessGroup.slug)
        .join(GroupZone, GroupZone.group_id == AccessGroup.id)
        .join(Zone, Zone.id == GroupZone.zone_id)
        .where(Zone.site_id == site_id)
        .distinct()
    )
    return SiteScope(site_id, site_slug, dict(groups.all()), now or utcnow(), min_age)


def _chunks(ids: Collection[T] | None) -> Iterator[list[T] | None]:
    """None (no restriction) once, or the ids in slices small enough for one IN (...) list."""
    if ids is None:
        yield None
        return
    values = list(ids)
    for start in range(0, len(values), IN_CHUNK):
        yield values[start : start + IN_CHUNK]


def _live_booking_window(now: datetime) -> list[ColumnElement[bool]]:
    """A booking that counts: confirmed or checked in, not yet ended, starting within the horizon."""
    return [
        Booking.status.in_(LIVE_BOOKING_STATUSES),
        Booking.ends_at > now,
        Booking.starts_at < now + BOOKING_HORIZON,
    ]


def _live_booking_conditions(scope: SiteScope) -> list[ColumnElement[bool]]:
    return [Room.site_id == scope.site_id, *_live_booking_window(scope.now)]


def _eligible_persons(scope: SiteScope) -> CompoundSelect[int]:
    members = select(GroupMember.person_id).where(GroupMember.group_id.in_(list(scope.groups)))
    holders = (
        select(Booking.holder_id)
        .join(Room, Room.id == Booking.room_id)
        .where(Booking.holder_id.is_not(None), *_live_booking_conditions(scope))
    )
    co_holders = (
        select(BookingCoHolder.person_id)
        .join(Booking, Booking.id == BookingCoHolder.booking_id)
        .join(Room, Room.id == Booking.room_id)
        .where(*_live_booking_conditions(scope))
    )
    return union(members, holders, co_holders)


def _site_groups_of(
    session: Session, scope: SiteScope, person_ids: Collection[int] | None
) -> dict[int, list[str]]:
    """Person id -> sorted slugs of that person's groups that matter at this site.

    People with the same groups share one list (a site has a handful of combinations, not 100,000).
    """
    found: defaultdict[int, list[str]] = defaultdict(list)
    if not scope.groups:
        return found
    connection = session.connection()
    for chunk in _chunks(person_ids):
        stmt = select(GroupMember.person_id, GroupMember.group_id).where(
            GroupMember.group_id.in_(list(scope.groups))
        )
        if chunk is not None:
            stmt = stmt.where(GroupMember.person_id.in_(chunk))
        for person_id, group_id in connection.execute(stmt).all():
            found[person_id].append(scope.groups[group_id])
    shared: dict[tuple[str, ...], list[str]] = {}
    return {pid: shared.setdefault(tuple(sorted(slugs)), sorted(slugs)) for pid, slugs in found.items()}


_CREDENTIAL_COLUMNS = (
    Credential.id,
    Credential.person_id,
    Credential.kind,
    Credential.uid_hash,
    Credential.pin_hash,
    Credential.status,
    Credential.valid_from,
    Credential.valid_until,
    Person.kind,
    Person.birth_year,
    Person.guardian_consent,
    Person.blocked,
    Person.birth_date,
)


def _credential(row: Sequence[Any], groups: list[str], today: date, min_age: int) -> m.Credential:
    cid, pid, kind, uid_hash, pin_hash, status, valid_from, valid_until = row[:8]
    pkind, birth, consent, pblocked, birth_date = row[8:]
    blocked = status == CredentialStatus.BLOCKED or pblocked
    # Positional: this runs 100,000 times for a big site's snapshot. Order = m.Credential's fields.
    return m.Credential(
        f"c{cid}",
        f"p{pid}",
        _PERSON_KIND[pkind],
        _CREDENTIAL_KIND[kind],
        groups,
        m.CredentialStatus.BLOCKED if blocked else m.CredentialStatus.ACTIVE,
        uid_hash,
        pin_hash,
        valid_from,
        valid_until,
        lacks_consent(age_on(today, birth_date, birth), min_age, consent),
    )


def site_credentials(
    session: Session, scope: SiteScope, credential_ids: Collection[int] | None = None
) -> dict[int, m.Credential]:
    """Credential id -> wire credential, for the credentials eligible at the site (all, or among the ids)."""
    eligible = _eligible_persons(scope).subquery()
    connection = session.connection()  # Core rows: no ORM bookkeeping per row
    rows: list[Sequence[Any]] = []
    for chunk in _chunks(credential_ids):
        stmt = (
            select(*_CREDENTIAL_COLUMNS)
            .join(Person, Person.id == Credential.person_id)
            .where(Credential.status != CredentialStatus.REVOKED)
            .where(Credential.person_id.in_(select(eligible.c[0])))
        )
        if chunk is not None:
            stmt = stmt.where(Credential.id.in_(chunk))
        rows.extend(connection.execute(stmt.order_by(Credential.id)).all())
    person_ids = None if credential_ids is None else {row[1] for row in rows}
    groups = _site_groups_of(session, scope, person_ids)
    today = scope.now.astimezone(OSLO).date()
    return {row[0]: _credential(row, groups.get(row[1], []), today, scope.min_age) for row in rows}


def credentials_at_sites(
    session: Session, wanted: Mapping[int, Collection[int]], now: datetime
) -> dict[int, dict[int, m.Credential]]:
    """Site id -> {credential id -> wire credential}, for the wanted credentials eligible at each site.

    The rules of `site_credentials`, for many sites at once: two queries (per IN_CHUNK of persons) in all,
    not three per site. A credential wanted at a thousand sites is built once per combination of groups.
    """
    found: dict[int, dict[int, m.Credential]] = {site_id: {} for site_id in wanted}
    rows = {row[0]: row for row in _live_credential_rows(session, set().union(*wanted.values()))}
    access = _access_at_sites(session, {row[1] for row in rows.values()}, list(wanted), now)
    ages = session.connection().execute(select(Site.id, Site.min_age).where(Site.id.in_(list(wanted))))
    min_ages: dict[int, int] = {site_id: min_age for site_id, min_age in ages}
    today = now.astimezone(OSLO).date()
    built: dict[tuple[int, int, int], m.Credential] = {}  # (credential id, id of its groups list, min age)
    for site_id, credential_ids in wanted.items():
        for cid in credential_ids:
            row = rows.get(cid)
            groups = None if row is None else access.get((row[1], site_id))
            if row is None or groups is None:
                continue
            min_age = min_ages.get(site_id, ADULT_AGE)
            key = (cid, id(groups), min_age)
            if key not in built:
                built[key] = _credential(row, groups, today, min_age)
            found[site_id][cid] = built[key]
    return found


def _live_credential_rows(session: Session, credential_ids: Collection[int]) -> list[Sequence[Any]]:
    """The `_CREDENTIAL_COLUMNS` of those of the ids that exist and are not revoked."""
    connection = session.connection()
    rows: list[Sequence[Any]] = []
    for chunk in _chunks(sorted(credential_ids)):
        stmt = (
            select(*_CREDENTIAL_COLUMNS)
            .join(Person, Person.id == Credential.person_id)
            .where(Credential.status != CredentialStatus.REVOKED, Credential.id.in_(chunk or []))
        )
        rows.extend(connection.execute(stmt).all())
    return rows


def _access_at_sites(
    session: Session, person_ids: Collection[int], site_ids: Sequence[int], now: datetime
) -> dict[tuple[int, int], list[str]]:
    """(person id, site id) -> sorted slugs of the person's groups with a zone at the site, for every pair
    where the person may come in: as a member of such a group, or holding or co-holding a live booking of a
    room there (then possibly with no group at all). Pairs that are not eligible are missing."""
    slugs: defaultdict[tuple[int, int], set[str]] = defaultdict(set)
    connection = session.connection()
    no_group = cast(null(), AccessGroup.slug.type)
    for persons in _chunks(sorted(person_ids)):
        for sites in _chunks(site_ids):
            members = (
                select(GroupMember.person_id, Zone.site_id, AccessGroup.slug)
                .join(AccessGroup, AccessGroup.id == GroupMember.group_id)
                .join(GroupZone, GroupZone.group_id == GroupMember.group_id)
                .join(Zone, Zone.id == GroupZone.zone_id)
                .where(GroupMember.person_id.in_(persons or []), Zone.site_id.in_(sites or []))
            )
            holders = (
                select(Booking.holder_id, Room.site_id, no_group)
                .join(Room, Room.id == Booking.room_id)
                .where(
                    Booking.holder_id.in_(persons or []),
                    Room.site_id.in_(sites or []),
                    *_live_booking_window(now),
                )
            )
            co_holders = (
                select(BookingCoHolder.person_id, Room.site_id, no_group)
                .join(Booking, Booking.id == BookingCoHolder.booking_id)
                .join(Room, Room.id == Booking.room_id)
                .where(
                    BookingCoHolder.person_id.in_(persons or []),
                    Room.site_id.in_(sites or []),
                    *_live_booking_window(now),
                )
            )
            for person_id, site_id, slug in connection.execute(union(members, holders, co_holders)):
                pair_slugs = slugs[(person_id, site_id)]
                if slug is not None:
                    pair_slugs.add(slug)
    shared: dict[tuple[str, ...], list[str]] = {}
    return {pair: shared.setdefault(tuple(sorted(s)), sorted(s)) for pair, s in slugs.items()}


_BOOKING_COLUMNS = (
    Booking.id,
    Room.slug,
    Booking.holder_id,
    Booking.starts_at,
    Booking.ends_at,
    Booking.status,
    Booking.title,
    Booking.checkin_code,
    Booking.organisation,
    Person.display_name,  # of the holder (outer join): only the first name leaves central
)


def _co_holders(session: Session, booking_ids: Collection[int]) -> dict[int, list[int]]:
    """Booking id -> person ids of its co-holders in id order, for those of the bookings that have any (one
    query per IN_CHUNK bookings, whatever their number)."""
    found: defaultdict[int, list[int]] = defaultdict(list)
    connection = session.connection()
    for chunk in _chunks(sorted(booking_ids)):
        stmt = (
            select(BookingCoHolder.booking_id, BookingCoHolder.person_id)
            .where(BookingCoHolder.booking_id.in_(chunk or []))
            .order_by(BookingCoHolder.booking_id, BookingCoHolder.person_id)
        )
        for booking_id, person_id in connection.execute(stmt):
            found[booking_id].append(person_id)
    return found


def shown_as(organisation: str | None, holder_name: str | None) -> str:
    """Who booked, as anyone at the torg may read it on the kiosk: the organisation if the booking has one,
    else the holder's first name; never more."""
    if organisation and organisation.strip():
        return " ".join(organisation.split())[:120]
    words = (holder_name or "").split()
    return words[0][:120] if words else ""


def _booking(row: Sequence[Any], co_holders: Sequence[int] = ()) -> m.Booking:
    """The wire booking; `holders` names the holder first, then the co-holders (each person once)."""
    bid, room, holder, starts, ends, status, title, code, organisation, holder_name = row
    people = ([] if holder is None else [holder]) + [p for p in co_holders if p != holder]
    return m.Booking(
        ref=booking_ref(bid),
        room=room,
        holders=[person_ref(p) for p in people],
        starts_at=starts,
        ends_at=ends,
        status=_BOOKING_STATUS[status],
        title=title or "",
        code=code,
        shown_as=shown_as(organisation, holder_name),
    )


def site_bookings(
    session: Session, scope: SiteScope, booking_ids: Collection[int] | None = None
) -> dict[int, m.Booking]:
    """Booking id -> wire booking, for the live bookings of rooms at the site (all, or among the ids)."""
    rows: list[Sequence[Any]] = []
    for chunk in _chunks(booking_ids):
        stmt = (
            select(*_BOOKING_COLUMNS)
            .join(Room, Room.id == Booking.room_id)
            .outerjoin(Person, Person.id == Booking.holder_id)
            .where(*_live_booking_conditions(scope))
        )
        if chunk is not None:
            stmt = stmt.where(Booking.id.in_(chunk))
        rows.extend(session.execute(stmt.order_by(Booking.starts_at)).all())
    co_holders = _co_holders(session, {row[0] for row in rows})
    return {row[0]: _booking(row, co_holders.get(row[0], ())) for row in rows}


def bookings_at_sites(
    session: Session, booking_ids: Collection[int], now: datetime
) -> dict[int, tuple[int, m.Booking]]:
    """Booking id -> (site id of its room, wire booking), for those of the ids that are live (the rules of
    `site_bookings`; a booking is at one site, that of its room)."""
    rows: list[Sequence[Any]] = []
    connection = session.connection()
    for chunk in _chunks(sorted(booking_ids)):
        stmt = (
            select(Room.site_id, *_BOOKING_COLUMNS)
            .join(Room, Room.id == Booking.room_id)
            .outerjoin(Person, Person.id == Booking.holder_id)
            .where(Booking.id.in_(chunk or []), *_live_booking_window(now))
        )
        rows.extend(connection.execute(stmt).all())
    co_holders = _co_holders(session, {row[1] for row in rows})
    return {row[1]: (row[0], _booking(row[1:], co_holders.get(row[1], ()))) for row in rows}


def snapshot_seq(session: Session, site_id: int) -> int:
    """The delta sequence number a snapshot built now is consistent with.

    That is the site's SiteReplicaState.seq, unless changes are still waiting to be published: then the seq
    just before the first of them, so the next delta the agent gets continues exactly from the snapshot.
    Read BEFORE the data: data newer than the seq is harmless (deltas carry current state, so re-applying
    one is a no-op), data older than the seq would lose a change.
    """
    first_pending = session.execute(
        select(func.min(ReplicaChange.seq)).where(
            ReplicaChange.site_id == site_id, ReplicaChange.published_at.is_(None)
        )
    ).scalar_one()
    if first_pending is not None:
        return int(first_pending) - 1
    seq = session.execute(
        select(SiteReplicaState.seq).where(SiteReplicaState.site_id == site_id)
    ).scalar_one_or_none()
    return int(seq or 0)


def build_snapshot(
    session: Session, site_slug: str, now: datetime | None = None, seq: int | None = None
) -> m.ReplicaSnapshot:
    """The whole replica of a site, consistent with delta `seq` (default: `snapshot_seq`)."""
    scope = site_scope(session, site_slug, now)
    if seq is None:
        seq = snapshot_seq(session, scope.site_id)
    credentials = site_credentials(session, scope)
    bookings = site_bookings(session, scope)
    return m.ReplicaSnapshot(
        site=site_slug,
        seq=seq,
        generated_at=scope.now,
        credentials=list(credentials.values()),
        bookings=list(bookings.values()),
    )
