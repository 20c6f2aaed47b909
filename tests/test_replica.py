"""The credential replica and the site config an agent gets: who is in it, deltas that keep it right.

The `Agent` helper below applies snapshots and deltas the way the site agent must (refusing a delta that does
not continue from its seq), so the tests check what a door would actually know.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session

from central.checkin import CheckinRules
from central.db import session_factory
from central.models import (
    AccessGroup,
    Booking,
    BookingStatus,
    Credential,
    CredentialKind,
    CredentialStatus,
    Door,
    DoorKind,
    GroupMember,
    GroupZone,
    IssuedToken,
    OpeningException,
    OpeningHours,
    Person,
    PersonKind,
    ReplicaChange,
    Room,
    Site,
    Zone,
)
from central.models import ExceptionKind as DbExceptionKind
from central.models import HoursKind as DbHoursKind
from central.replica import build_snapshot
from central.services import bookings as booking_service
from central.services import replica_log
from central.services.site_config import build_revocations, build_site_config
from controller.decide import SiteView, decide_card
from protocol import codec
from protocol import messages as m

NOW = datetime.now(UTC)


# --- a small world: two sites, three groups, a handful of people ------------------------------------------


def add_site(session: Session, slug: str) -> Site:
    site = Site(slug=slug, name=f"{slug.title()} innbyggertorg")
    torg, moterom = Zone(slug="torg", name="Torget"), Zone(slug="moterom", name="Møterom")
    site.zones.extend([torg, moterom])
    session.add(site)
    session.flush()
    door = Door(site=site, zone=torg, slug="inngang", name="Inngang", kind=DoorKind.ENTRANCE)
    session.add_all([door, Room(site=site, zone=moterom, slug="moterom-1", name="Møterom 1", capacity=10)])
    session.flush()
    return site


def zone(session: Session, site: Site, slug: str) -> Zone:
    return session.execute(select(Zone).where(Zone.site_id == site.id, Zone.slug == slug)).scalar_one()


def add_group(session: Session, slug: str, zones: list[Zone], any_time: bool = False) -> AccessGroup:
    group = AccessGroup(slug=slug, name=slug.title(), any_time=any_time)
    group.zones.extend(zones)
    session.add(group)
    session.flush()
    return group


def add_person(
    session: Session,
    name: str,
    groups: list[AccessGroup],
    kind: PersonKind = PersonKind.RESIDENT,
    **fields: object,
) -> Person:
    person = Person(kind=kind, display_name=name, **fields)
    person.groups.extend(groups)
    uid_hash = hashlib.sha256(name.encode()).hexdigest()
    person.credentials.append(Credential(kind=CredentialKind.CARD, uid_hash=uid_hash, valid_from=NOW))
    session.add(person)
    session.flush()
    return person


def card_of(person: Person) -> Credential:
    return person.credentials[0]


@dataclass
class World:
    nord: Site
    sor: Site
    innbyggere: AccessGroup
    ansatte: AccessGroup
    sor_lag: AccessGroup
    people: dict[str, Person] = field(default_factory=dict)
    bookings: dict[str, Booking] = field(default_factory=dict)


def build_world(session: Session, nord: str = "nord", sor: str = "sor") -> World:
    """nord and sor; 'innbyggere' may enter nord's torg, 'sor-lag' sor's torg, 'ansatte' everything."""
    n, s = add_site(session, nord), add_site(session, sor)
    w = World(
        nord=n,
        sor=s,
        innbyggere=add_group(session, f"innbyggere-{nord}", [zone(session, n, "torg")]),
        ansatte=add_group(
            session,
            f"ansatte-{nord}",
            [zone(session, n, "torg"), zone(session, n, "moterom"), zone(session, s, "torg")],
            any_time=True,
        ),
        sor_lag=add_group(session, f"lag-{sor}", [zone(session, s, "torg")]),
    )
    p = w.people
    p["kari"] = add_person(session, "Kari", [w.innbyggere])
    p["sofie"] = add_person(session, "Sofie", [w.sor_lag])
    p["siri"] = add_person(session, "Siri", [w.ansatte, w.sor_lag], PersonKind.STAFF)
    p["per"] = add_person(session, "Per", [w.innbyggere], blocked=True)
    p["emil"] = add_person(session, "Emil", [w.innbyggere], birth_year=NOW.year - 12)
    p["ida"] = add_person(session, "Ida", [w.innbyggere], birth_year=NOW.year - 12, guardian_consent=True)
    p["rolf"] = add_person(session, "Rolf", [w.innbyggere])
    card_of(p["rolf"]).status = CredentialStatus.REVOKED
    p["nora"] = add_person(session, "Nora", [], PersonKind.ASSOCIATION_MEMBER)
    p["jonas"] = add_person(session, "Jonas", [], PersonKind.VOLUNTEER)
    room = session.execute(select(Room).where(Room.site_id == n.id)).scalar_one()
    w.bookings["sjakk"] = add_booking(session, room, p["nora"], NOW + timedelta(hours=2))
    w.bookings["cancelled"] = add_booking(
        session, room, p["jonas"], NOW + timedelta(hours=3), BookingStatus.CANCELLED
    )
    w.bookings["far"] = add_booking(session, room, p["jonas"], NOW + timedelta(days=20))
    w.bookings["over"] = add_booking(session, room, p["jonas"], NOW - timedelta(hours=3))
    session.flush()
    return w


def add_booking(
    session: Session,
    room: Room,
    holder: Person,
    starts: datetime,
    status: BookingStatus = BookingStatus.CONFIRMED,
) -> Booking:
    booking = Booking(
        room=room,
        holder=holder,
        starts_at=starts,
        ends_at=starts + timedelta(hours=2),
        status=status,
        title="Møte",
    )
    session.add(booking)
    session.flush()
    return booking


@dataclass
class Agent:
    """What a site agent holds: a snapshot, kept current by deltas that must continue from its seq."""

    seq: int = -1
    credentials: dict[str, m.Credential] = field(default_factory=dict)
    bookings: dict[str, m.Booking] = field(default_factory=dict)

    def load(self, snapshot: m.ReplicaSnapshot) -> None:
        snapshot = codec.decode(codec.encode(snapshot), m.ReplicaSnapshot)  # the agent's strict decoder
        self.seq = snapshot.seq
        self.credentials = {c.ref: c for c in snapshot.credentials}
        self.bookings = {b.ref: b for b in snapshot.bookings}

    def apply(self, delta: m.ReplicaDelta) -> None:
        delta = codec.decode(codec.encode(delta), m.ReplicaDelta)
        assert delta.prev_seq == self.seq, (
            f"gap: replica at {self.seq}, delta continues from {delta.prev_seq}"
        )
        for ref in delta.remove:
            self.credentials.pop(ref, None)
        self.credentials.update({c.ref: c for c in delta.upsert})
        for ref in delta.remove_bookings:
            self.bookings.pop(ref, None)
        self.bookings.update({b.ref: b for b in delta.upsert_bookings})
        self.seq = delta.seq

    def same_as(self, snapshot: m.ReplicaSnapshot) -> bool:
        return self.credentials == {c.ref: c for c in snapshot.credentials} and self.bookings == {
            b.ref: b for b in snapshot.bookings
        }


def publish_pending(session: Session, site: Site, agent: Agent) -> list[m.ReplicaDelta]:
    """What the gateway does: every unpublished change of the site, as deltas, in order."""
    deltas: list[m.ReplicaDelta] = []
    pending = {site_id: first for site_id, _slug, first in replica_log.pending_sites(session)}
    if site.id not in pending:
        return deltas
    after = pending[site.id] - 1
    while (delta := replica_log.build_delta(session, site.slug, after, max_changes=2)) is not None:
        agent.apply(delta)
        replica_log.mark_published(session, site.id, delta.seq)
        deltas.append(delta)
        after = delta.seq
    return deltas


@pytest.fixture
def world(session: Session) -> World:
    w = build_world(session)
    session.commit()
    return w


def refs(*people: Person) -> set[str]:
    return {f"c{card_of(p).id}" for p in people}


# --- snapshot ---------------------------------------------------------------------------------------------


def test_snapshot_holds_exactly_who_may_come_in_at_the_site(session: Session, world: World) -> None:
    snap = build_snapshot(session, "nord")
    p = world.people
    by_ref = {c.ref: c for c in snap.credentials}
    # sofie's group has no zone at nord; rolf's card is revoked; jonas only has bookings that do not count
    assert set(by_ref) == refs(p["kari"], p["siri"], p["per"], p["emil"], p["ida"], p["nora"])
    assert by_ref[f"c{card_of(p['siri']).id}"].groups == [world.ansatte.slug]  # not sor's group
    assert by_ref[f"c{card_of(p['kari']).id}"].person == f"p{p['kari'].id}"
    assert by_ref[f"c{card_of(p['per']).id}"].status is m.CredentialStatus.BLOCKED
    assert by_ref[f"c{card_of(p['emil']).id}"].consent_missing
    assert not by_ref[f"c{card_of(p['ida']).id}"].consent_missing
    assert by_ref[f"c{card_of(p['nora']).id}"].groups == []  # in only because of her booking
    assert [b.ref for b in snap.bookings] == [f"b{world.bookings['sjakk'].id}"]
    assert snap.bookings[0].holders == [f"p{p['nora'].id}"]
    assert snap.bookings[0].room == "moterom-1"
    assert snap.seq == 0
    codec.decode(codec.encode(snap), m.ReplicaSnapshot)  # an agent accepts it


def test_snapshot_of_the_other_site(session: Session, world: World) -> None:
    snap = build_snapshot(session, "sor")
    assert {c.ref for c in snap.credentials} == refs(world.people["sofie"], world.people["siri"])
    siri = next(c for c in snap.credentials if c.ref in refs(world.people["siri"]))
    assert siri.groups == sorted([world.ansatte.slug, world.sor_lag.slug])
    assert snap.bookings == []


# --- deltas -----------------------------------------------------------------------------------------------


def test_blocking_then_revoking_a_card_reaches_the_agent_in_order(session: Session, world: World) -> None:
    agent = Agent()
    agent.load(build_snapshot(session, "nord"))
    kari = card_of(world.people["kari"])
    kari.status = CredentialStatus.BLOCKED
    replica_log.record_credential_change(session, kari.id)
    session.commit()
    [first] = publish_pending(session, world.nord, agent)
    assert (first.prev_seq, first.seq) == (0, 1)
    assert [c.status for c in first.upsert] == [m.CredentialStatus.BLOCKED]

    kari.status = CredentialStatus.REVOKED
    replica_log.record_credential_change(session, kari.id)
    session.commit()
    [second] = publish_pending(session, world.nord, agent)
    assert (second.prev_seq, second.seq) == (1, 2)
    assert second.remove == [f"c{kari.id}"] and second.upsert == []
    assert f"c{kari.id}" not in agent.credentials
    assert agent.same_as(build_snapshot(session, "nord"))


def test_a_group_losing_its_zone_at_a_site_removes_its_members_there(session: Session, world: World) -> None:
    nord_agent, sor_agent = Agent(), Agent()
    nord_agent.load(build_snapshot(session, "nord"))
    sor_agent.load(build_snapshot(session, "sor"))
    session.execute(
        delete(GroupZone).where(
            GroupZone.group_id == world.ansatte.id,
            GroupZone.zone_id.in_(select(Zone.id).where(Zone.site_id == world.nord.id)),
        )
    )
    replica_log.record_group_change(session, world.ansatte.id)
    session.commit()
    publish_pending(session, world.nord, nord_agent)
    publish_pending(session, world.sor, sor_agent)
    siri = f"c{card_of(world.people['siri']).id}"
    assert siri not in nord_agent.credentials
    assert sor_agent.credentials[siri].groups == sorted([world.ansatte.slug, world.sor_lag.slug])
    assert nord_agent.same_as(build_snapshot(session, "nord"))
    assert sor_agent.same_as(build_snapshot(session, "sor"))


def test_a_person_leaving_their_only_group_is_removed(session: Session, world: World) -> None:
    agent = Agent()
    agent.load(build_snapshot(session, "nord"))
    kari = world.people["kari"]
    session.execute(delete(GroupMember).where(GroupMember.person_id == kari.id))
    replica_log.record_person_change(session, kari.id)
    session.commit()
    publish_pending(session, world.nord, agent)
    assert refs(kari).isdisjoint(agent.credentials)
    assert agent.same_as(build_snapshot(session, "nord"))


def test_a_new_member_and_a_cancelled_booking(session: Session, world: World) -> None:
    agent = Agent()
    agent.load(build_snapshot(session, "nord"))
    sjakk = world.bookings["sjakk"]
    sjakk.status = BookingStatus.CANCELLED
    replica_log.record_booking_change(session, sjakk.id)
    newcomer = add_person(session, "Amina", [world.innbyggere])
    replica_log.record_person_change(session, newcomer.id)
    session.commit()
    deltas = publish_pending(session, world.nord, agent)
    assert len(deltas) > 1  # max_changes=2 splits the log; each delta continues the previous one
    assert f"b{sjakk.id}" not in agent.bookings
    assert refs(world.people["nora"]).isdisjoint(agent.credentials)  # her booking was her only way in
    assert refs(newcomer) <= agent.credentials.keys()
    assert agent.same_as(build_snapshot(session, "nord"))


def room_with_door(session: Session, world: World) -> Room:
    """Nord's meeting room, given a door of its own ("moterom-1") that only its bookings open."""
    room = world.bookings["sjakk"].room
    room.door = Door(site=world.nord, zone=room.zone, slug="moterom-1", name="Møterom 1", kind=DoorKind.ROOM)
    session.flush()
    return room


def test_a_co_holders_card_opens_the_booked_room_until_they_are_taken_off(
    session: Session, world: World
) -> None:
    room_with_door(session, world)
    agent = Agent()
    agent.load(build_snapshot(session, "nord"))
    sjakk, nora, jonas = world.bookings["sjakk"], world.people["nora"], world.people["jonas"]
    jonas_card = f"c{card_of(jonas).id}"
    assert jonas_card not in agent.credentials  # his own bookings here do not count (cancelled, far, over)

    booking_service.update_booking(session, "vega", sjakk.id, {"co_holder_ids": [jonas.id]})
    session.commit()
    publish_pending(session, world.nord, agent)
    card, booking = agent.credentials[jonas_card], agent.bookings[f"b{sjakk.id}"]
    assert card.groups == [] and booking.holders == [f"p{nora.id}", f"p{jonas.id}"]
    view = SiteView.from_config(build_site_config(session, "nord", NOW))
    for door in ("inngang", "moterom-1"):
        verdict = decide_card(view, door, card, [booking], sjakk.starts_at, pin_ok=True)
        assert (verdict.decision, verdict.reason, verdict.booking_ref) == (
            m.Decision.GRANT,
            m.Reason.BOOKING,
            f"b{sjakk.id}",
        )
    assert agent.same_as(build_snapshot(session, "nord"))
    assert jonas_card not in {c.ref for c in build_snapshot(session, "sor").credentials}

    booking_service.update_booking(session, "vega", sjakk.id, {"co_holder_ids": []})
    session.commit()
    publish_pending(session, world.nord, agent)
    assert jonas_card not in agent.credentials
    assert agent.bookings[f"b{sjakk.id}"].holders == [f"p{nora.id}"]
    assert agent.same_as(build_snapshot(session, "nord"))


def test_everyone_on_a_replaced_or_deleted_booking_leaves_the_replica(session: Session, world: World) -> None:
    agent = Agent()
    agent.load(build_snapshot(session, "nord"))
    sjakk, p = world.bookings["sjakk"], world.people
    booking_service.update_booking(session, "vega", sjakk.id, {"co_holder_ids": [p["jonas"].id]})
    session.commit()
    publish_pending(session, world.nord, agent)
    assert refs(p["nora"], p["jonas"]) <= agent.credentials.keys()

    newcomer = add_person(session, "Amina", [])  # the booking system names someone else as the holder
    booking_service.update_booking(session, "vega", sjakk.id, {"holder_id": newcomer.id})
    session.commit()
    publish_pending(session, world.nord, agent)
    assert refs(p["nora"]).isdisjoint(agent.credentials)
    assert refs(newcomer, p["jonas"]) <= agent.credentials.keys()

    booking_service.delete_booking(session, "staff", sjakk.id)
    session.commit()
    publish_pending(session, world.nord, agent)
    assert refs(newcomer, p["jonas"]).isdisjoint(agent.credentials)
    assert agent.bookings == {}
    assert agent.same_as(build_snapshot(session, "nord"))


def test_snapshot_taken_while_changes_wait_continues_with_them(session: Session, world: World) -> None:
    kari = card_of(world.people["kari"])
    kari.valid_until = NOW + timedelta(days=30)
    replica_log.record_credential_change(session, kari.id)
    session.commit()
    agent = Agent()
    agent.load(build_snapshot(session, "nord"))  # the change is not published yet
    assert agent.seq == 0
    assert agent.credentials[f"c{kari.id}"].valid_until == kari.valid_until
    publish_pending(session, world.nord, agent)  # would fail on a gap
    assert agent.seq == 1
    assert build_snapshot(session, "nord").seq == 1


def test_pruning_drops_only_long_published_changes_and_the_log_continues(
    session: Session, world: World
) -> None:
    kari = card_of(world.people["kari"])
    agent = Agent()
    agent.load(build_snapshot(session, "nord"))
    for days_ago in (8, 6):  # one change published eight days ago, one six days ago
        kari.valid_until = NOW + timedelta(days=days_ago)
        replica_log.record_credential_change(session, kari.id)
        publish_pending(session, world.nord, agent)
        session.execute(
            update(ReplicaChange)
            .where(ReplicaChange.site_id == world.nord.id, ReplicaChange.seq == agent.seq)
            .values(published_at=NOW - timedelta(days=days_ago))
        )
    kari.valid_until = NOW + timedelta(days=1)
    replica_log.record_credential_change(session, kari.id)  # waiting to be published
    session.commit()

    def logged() -> list[int]:
        return sorted(
            session.execute(select(ReplicaChange.seq).where(ReplicaChange.site_id == world.nord.id)).scalars()
        )

    assert logged() == [1, 2, 3]
    assert replica_log.prune_published(session, NOW) == 1  # sor's changes were never published: they stay
    assert logged() == [2, 3]
    assert build_snapshot(session, "nord").seq == 2  # a fresh agent still continues with seq 3
    publish_pending(session, world.nord, agent)
    assert agent.seq == 3
    assert agent.credentials[f"c{kari.id}"].valid_until == NOW + timedelta(days=1)


def test_a_deleted_credential_is_removed(session: Session, world: World) -> None:
    agent = Agent()
    agent.load(build_snapshot(session, "nord"))
    kari = card_of(world.people["kari"])
    session.delete(kari)
    session.flush()
    replica_log.record_credential_change(session, kari.id)
    session.commit()
    [delta] = publish_pending(session, world.nord, agent)
    assert delta.remove == [f"c{kari.id}"]


# --- site config and revocations ---------------------------------------------------------------------------


def test_site_config_carries_what_the_agent_decides_with(session: Session, world: World) -> None:
    nord = world.nord
    session.add_all(
        [
            OpeningHours(site=nord, weekday=0, opens=time(7), closes=time(0)),  # until midnight
            OpeningHours(site=nord, weekday=0, opens=time(10), closes=time(16), kind=DbHoursKind.STAFFED),
            OpeningException(site=nord, day=NOW.date() - timedelta(days=2), kind=DbExceptionKind.CLOSED),
            OpeningException(
                site=nord, day=NOW.date() + timedelta(days=9), kind=DbExceptionKind.CLOSED, note="Dugnad"
            ),
            OpeningException(
                site=nord,
                day=NOW.date() + timedelta(days=10),
                kind=DbExceptionKind.SPECIAL_HOURS,
                opens=time(9),
                closes=time(12),
                hours_kind=DbHoursKind.STAFFED,
            ),
        ]
    )
    session.flush()
    config = build_site_config(session, "nord", NOW, revision=7)
    codec.decode(codec.encode(config), m.SiteConfig)
    assert [(h.opens, h.closes, h.kind) for h in config.hours] == [
        (time(7), time(23, 59, 59, 999999), m.HoursKind.MERAAPENT),
        (time(10), time(16), m.HoursKind.STAFFED),
    ]
    assert [(e.day, e.note) for e in config.exceptions] == [(NOW.date() + timedelta(days=9), "Dugnad")]
    groups = {g.slug: g for g in config.groups}
    assert set(groups) == {world.innbyggere.slug, world.ansatte.slug}  # sor's group has no zone here
    assert groups[world.ansatte.slug].zones == ["moterom", "torg"] and groups[world.ansatte.slug].any_time
    assert [d.slug for d in config.doors] == ["inngang"] and config.doors[0].zone == "torg"
    assert config.rooms[0].zone == "moterom"
    next_17_may = date(NOW.year if NOW.date() <= date(NOW.year, 5, 17) else NOW.year + 1, 5, 17)
    assert next_17_may in config.public_holidays
    assert all(NOW.date() <= d < NOW.date() + timedelta(days=400) for d in config.public_holidays)
    nord.closed_on_public_holidays = False
    assert build_site_config(session, "nord", NOW).public_holidays == []
    assert (config.checkin_opens_minutes, config.checkin_closes_minutes) == (15, 15)
    wider = CheckinRules(opens_before=timedelta(minutes=60), closes_after=timedelta(minutes=20))
    published = build_site_config(session, "nord", NOW, checkin=wider)
    assert (published.checkin_opens_minutes, published.checkin_closes_minutes) == (60, 20)


def test_revocations_list_revoked_tokens_until_they_expire(session: Session, world: World) -> None:
    nora = world.people["nora"]

    def token(token_id: str, expires: timedelta, revoked: bool) -> IssuedToken:
        return IssuedToken(
            person=nora,
            site=world.nord,
            token_id=token_id,
            issued_at=NOW - timedelta(hours=1),
            expires_at=NOW + expires,
            revoked_at=NOW if revoked else None,
        )

    session.add_all(
        [
            token("aaaa0001", timedelta(hours=2), True),
            token("aaaa0002", timedelta(hours=2), False),
            token("aaaa0003", timedelta(hours=-1), True),
        ]
    )
    session.flush()
    revocations = build_revocations(session, "nord", NOW)
    assert [t.token_id for t in revocations.tokens] == ["aaaa0001"]
    assert build_revocations(session, "sor", NOW).tokens == []


# --- many sites at once -----------------------------------------------------------------------------------


def add_vest(session: Session, w: World) -> Site:
    """A third site, reached by 'ansatte' and a group of its own that also opens nord's meeting room."""
    vest = add_site(session, "vest")
    w.ansatte.zones.append(zone(session, vest, "torg"))
    vest_lag = add_group(session, "lag-vest", [zone(session, vest, "torg"), zone(session, w.nord, "moterom")])
    w.people["kari"].groups.append(vest_lag)
    w.people["tor"] = add_person(session, "Tor", [vest_lag])
    session.flush()
    return vest


def make_mixed_changes(session: Session, w: World, vest: Site) -> None:
    """Blocks, a revoke, group and membership changes, bookings and a deleted card, logged as services do."""
    p, log = w.people, replica_log
    card_of(p["kari"]).status = CredentialStatus.BLOCKED
    card_of(p["sofie"]).status = CredentialStatus.REVOKED
    log.record_credential_changes(session, [card_of(p["kari"]).id, card_of(p["sofie"]).id])
    p["per"].blocked = False
    log.record_person_change(session, p["per"].id)
    session.execute(  # sor's own group no longer opens sor
        delete(GroupZone).where(GroupZone.group_id == w.sor_lag.id)
    )
    log.record_group_change(session, w.sor_lag.id)
    session.execute(
        delete(GroupMember).where(
            GroupMember.group_id == w.innbyggere.id, GroupMember.person_id == p["emil"].id
        )
    )
    log.record_group_change(session, w.innbyggere.id, former_member_ids=[p["emil"].id])
    vest_room = session.execute(select(Room).where(Room.site_id == vest.id)).scalar_one()
    w.bookings["vest"] = add_booking(session, vest_room, p["jonas"], NOW + timedelta(hours=1))
    w.bookings["vest"].co_holders.append(p["nora"])
    log.record_booking_change(session, w.bookings["vest"].id)
    w.bookings["sjakk"].status = BookingStatus.CANCELLED
    log.record_booking_change(session, w.bookings["sjakk"].id)
    ida = card_of(p["ida"])
    session.delete(ida)
    session.flush()
    log.record_credential_change(session, ida.id)
    p["amina"] = add_person(session, "Amina", [w.innbyggere, w.sor_lag])
    log.record_person_change(session, p["amina"].id)


def deltas_one_site_at_a_time(
    session: Session, pending: list[tuple[int, str, int]], max_changes: int
) -> dict[int, list[m.ReplicaDelta]]:
    found: dict[int, list[m.ReplicaDelta]] = {}
    for site_id, slug, first in pending:
        after, found[site_id] = first - 1, []
        while (
            delta := replica_log.build_delta(session, slug, after, now=NOW, max_changes=max_changes)
        ) is not None:
            found[site_id].append(delta)
            after = delta.seq
    return found


def deltas_together(
    session: Session, pending: list[tuple[int, str, int]], max_changes: int
) -> dict[int, list[m.ReplicaDelta]]:
    """As the gateway does: every site's next delta at once, then the sites that got one, from its end."""
    found: dict[int, list[m.ReplicaDelta]] = {site_id: [] for site_id, _slug, _first in pending}
    slugs = {site_id: slug for site_id, slug, _first in pending}
    while pending:
        deltas = replica_log.build_deltas(session, pending, now=NOW, max_changes=max_changes)
        for site_id, delta in deltas:
            found[site_id].append(delta)
        pending = [(site_id, slugs[site_id], delta.seq + 1) for site_id, delta in deltas]
    return found


@pytest.mark.parametrize("max_changes", [1, 3, replica_log.DELTA_MAX_CHANGES])
def test_deltas_built_for_many_sites_at_once_are_those_built_one_by_one(
    session: Session, world: World, max_changes: int
) -> None:
    vest = add_vest(session, world)
    session.commit()
    agents = {site.id: Agent() for site in (world.nord, world.sor, vest)}
    for site in (world.nord, world.sor, vest):
        agents[site.id].load(build_snapshot(session, site.slug))
    make_mixed_changes(session, world, vest)
    session.commit()

    pending = replica_log.pending_sites(session)
    assert [site_id for site_id, _slug, _first in pending] == sorted(agents)
    together = deltas_together(session, pending, max_changes)
    assert together == deltas_one_site_at_a_time(session, pending, max_changes)

    everything = [d for deltas in together.values() for d in deltas]
    assert any(d.upsert for d in everything) and any(d.remove for d in everything)
    assert any(d.upsert_bookings for d in everything) and any(d.remove_bookings for d in everything)
    for site in (world.nord, world.sor, vest):
        for delta in together[site.id]:
            agents[site.id].apply(delta)  # asserts that each delta continues the previous one
        assert agents[site.id].same_as(build_snapshot(session, site.slug, NOW))
    kari_at_vest = agents[vest.id].credentials[f"c{card_of(world.people['kari']).id}"]
    assert kari_at_vest.status is m.CredentialStatus.BLOCKED and kari_at_vest.groups == ["lag-vest"]
    assert refs(world.people["sofie"]).isdisjoint(agents[world.sor.id].credentials)
    vest_booking = agents[vest.id].bookings[f"b{world.bookings['vest'].id}"]
    nora = world.people["nora"]
    assert vest_booking.holders == [f"p{world.people['jonas'].id}", f"p{nora.id}"]
    assert agents[vest.id].credentials[f"c{card_of(nora).id}"].groups == []  # in as the co-holder
    assert refs(nora).isdisjoint(agents[world.nord.id].credentials)  # her nord booking was cancelled


def test_building_deltas_of_sites_with_nothing_pending_gives_none(session: Session, world: World) -> None:
    kari = card_of(world.people["kari"])
    kari.status = CredentialStatus.BLOCKED
    replica_log.record_credential_change(session, kari.id)
    session.commit()
    assert replica_log.build_deltas(session, [(world.nord.id, "nord", 2), (world.sor.id, "sor", 2)]) == []
    assert replica_log.build_deltas(session, []) == []


# --- sequence numbers -------------------------------------------------------------------------------------


def logged_seqs(session: Session) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for site_id, seq in session.execute(select(ReplicaChange.site_id, ReplicaChange.seq)):
        found.setdefault(site_id, []).append(seq)
    return {site_id: sorted(seqs) for site_id, seqs in found.items()}


def test_a_change_logged_at_every_site_continues_each_sites_numbers(session: Session, world: World) -> None:
    kari, siri = card_of(world.people["kari"]), card_of(world.people["siri"])
    replica_log.record_booking_change(session, world.bookings["sjakk"].id)  # nord is ahead of sor
    vest = add_site(session, "vest")  # has never logged anything
    session.commit()
    nord_before = len(logged_seqs(session)[world.nord.id])

    replica_log.record_credential_changes(session, [siri.id, kari.id])
    session.commit()
    seqs = logged_seqs(session)
    assert seqs[vest.id] == [1, 2]
    assert seqs[world.sor.id] == list(range(1, len(seqs[world.sor.id]) + 1))
    assert seqs[world.nord.id] == list(range(1, nord_before + 3))
    order = session.execute(
        select(ReplicaChange.credential_ref)
        .where(ReplicaChange.site_id == vest.id)
        .order_by(ReplicaChange.seq)
    ).scalars()
    assert list(order) == [f"c{min(kari.id, siri.id)}", f"c{max(kari.id, siri.id)}"]
    agent = Agent()
    agent.load(build_snapshot(session, "sor"))
    assert agent.seq == 0  # nothing of sor's log has been published: the snapshot continues before it


def test_marking_many_sites_published_at_once_keeps_later_changes_pending(
    session: Session, world: World
) -> None:
    kari, siri = card_of(world.people["kari"]).id, card_of(world.people["siri"]).id
    replica_log.record_credential_change(session, kari)
    replica_log.record_credential_change(session, siri)
    session.commit()
    replica_log.mark_all_published(session, {world.nord.id: 1, world.sor.id: 2}, at=NOW)
    session.commit()
    assert replica_log.pending_sites(session) == [(world.nord.id, "nord", 2)]
    published = session.execute(
        select(ReplicaChange.published_at).where(ReplicaChange.published_at.is_not(None))
    ).scalars()
    assert list(published) == [NOW] * 3
    replica_log.mark_all_published(session, {})  # nothing acknowledged: nothing to do
    assert build_snapshot(session, "nord").seq == 1


def test_two_transactions_logging_at_every_site_at_once_leave_no_gap(engine: Engine, world: World) -> None:
    """The second waits for the first's row locks (PostgreSQL) or write lock (SQLite), then continues it."""
    sessions = session_factory(engine)
    kari, siri = card_of(world.people["kari"]).id, card_of(world.people["siri"]).id
    first, second = sessions(), sessions()
    try:
        replica_log.record_credential_change(first, kari)
        failures: list[BaseException] = []

        def record_second() -> None:
            try:
                replica_log.record_credential_change(second, siri)
                second.commit()
            except BaseException as exc:
                failures.append(exc)

        worker = threading.Thread(target=record_second)
        worker.start()
        worker.join(0.3)
        first.commit()
        worker.join(30)
        assert not worker.is_alive() and failures == []
    finally:
        first.close()
        second.close()
    with sessions() as session:
        for site in (world.nord, world.sor):
            logged = session.execute(
                select(ReplicaChange.seq, ReplicaChange.credential_ref)
                .where(ReplicaChange.site_id == site.id)
                .order_by(ReplicaChange.seq)
            ).all()
            assert [tuple(row) for row in logged] == [(1, f"c{kari}"), (2, f"c{siri}")]
