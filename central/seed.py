"""Demo data for the Asker innbyggertorg: sites, doors, rooms, hours, groups, people, cards, bookings.

DEMO ONLY: the card UIDs below are made up and every demo PIN is 1234. Never seed a production database.

Seeding is idempotent: it only creates what is missing, found by natural keys (slugs, external refs,
card hashes, booking ids), and never overwrites what an administrator has changed since. Running it twice
changes nothing; running it on a later day adds demo bookings for that day and the next.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.config import Settings, write_private_file
from central.db import ensure_migrated, make_engine, session_factory, session_scope
from central.models import (
    AccessGroup,
    ApiRole,
    ApiUser,
    Base,
    Booking,
    Credential,
    CredentialKind,
    Door,
    DoorKind,
    HoursKind,
    LockType,
    OpeningHours,
    Person,
    PersonKind,
    Room,
    Site,
    Zone,
)
from central.schedules import DEFAULT_TIMEZONE
from central.security import card_uid_hash, hash_pin, new_api_token
from central.services.bookings import new_checkin_code

DEMO_PIN = "1234"
DEMO_SOURCE = "demo"
ADMIN_USERNAME = "admin"
ADMIN_TOKEN_FILE = "admin-token"  # noqa: S105 (a file name, not a secret)
OSLO = ZoneInfo(DEFAULT_TIMEZONE)
WEEKDAYS = range(5)
WEEKEND = (5, 6)

T = TypeVar("T", bound=Base)


def _t(text: str) -> time:
    return time.fromisoformat(text)


@dataclass(frozen=True)
class SiteSpec:
    slug: str
    name: str
    address: str
    weekday_hours: tuple[str, str]
    weekend_hours: tuple[str, str]
    staffed_hours: tuple[str, str]
    rooms: tuple[tuple[str, str, int], ...] = (("moterom-1", "Møterom 1", 12),)


SITES = (
    SiteSpec(
        "asker-sentrum",
        "Asker sentrum innbyggertorg",
        "Asker kulturhus, 1384 Asker",
        ("07:00", "22:00"),
        ("09:00", "20:00"),
        ("10:00", "19:00"),
        (("moterom-1", "Møterom 1", 12), ("moterom-2", "Møterom 2", 8)),
    ),
    SiteSpec(
        "holmen",
        "Holmen innbyggertorg",
        "Holmen senter, 1394 Nesbru",
        ("07:00", "22:00"),
        ("09:00", "18:00"),
        ("10:00", "16:00"),
        (("moterom-1", "Møterom 1", 10), ("moterom-2", "Grupperom", 6)),
    ),
    SiteSpec(
        "heggedal",
        "Heggedal innbyggertorg",
        "Heggedal torg, 1389 Heggedal",
        ("07:00", "21:00"),
        ("10:00", "18:00"),
        ("10:00", "15:00"),
    ),
    SiteSpec(
        "slemmestad",
        "Slemmestad innbyggertorg",
        "Slemmestad sentrum, 3470 Slemmestad",
        ("07:00", "22:00"),
        ("09:00", "20:00"),
        ("10:00", "16:00"),
    ),
    SiteSpec(
        "spikkestad",
        "Spikkestad innbyggertorg",
        "Spikkestad sentrum, 3430 Spikkestad",
        ("07:00", "21:00"),
        ("10:00", "18:00"),
        ("10:00", "15:00"),
    ),
    SiteSpec(
        "saetre",
        "Sætre innbyggertorg",
        "Sætre sentrum, 3475 Sætre",
        ("07:00", "21:00"),
        ("10:00", "18:00"),
        ("10:00", "15:00"),
    ),
    SiteSpec(
        "tofte",
        "Tofte innbyggertorg",
        "Tofte sentrum, 3482 Tofte",
        ("08:00", "21:00"),
        ("10:00", "17:00"),
        ("11:00", "15:00"),
    ),
    SiteSpec(
        "borgen",
        "Borgen innbyggertorg",
        "Borgen, 1388 Borgen",
        ("07:00", "22:00"),
        ("09:00", "20:00"),
        ("10:00", "16:00"),
    ),
)

ZONES = (("torg", "Torget"), ("bibliotek", "Biblioteket"), ("moterom", "Møterommene"))
CARETAKER_PHONE = "+47 00 00 00 01"  # deliberately not a real number


@dataclass(frozen=True)
class GroupSpec:
    slug: str
    name: str
    description: str
    any_time: bool
    zone_slugs: tuple[str, ...]
    self_enrolment: bool = False  # residents who sign up on their phone join it


GROUPS = (
    GroupSpec(
        "innbyggere",
        "Innbyggere",
        "Alle innbyggere med lånekort: torg og bibliotek i meråpen tid.",
        False,
        ("torg", "bibliotek"),
        self_enrolment=True,
    ),
    GroupSpec(
        "vaktmestere",
        "Vaktmestere",
        "Vaktmestere: alle soner, hele døgnet.",
        True,
        ("torg", "bibliotek", "moterom"),
    ),
    GroupSpec(
        "ansatte",
        "Ansatte",
        "Ansatte i Asker kommune: alle soner, hele døgnet.",
        True,
        ("torg", "bibliotek", "moterom"),
    ),
)


@dataclass(frozen=True)
class PersonSpec:
    ref: str
    name: str
    kind: PersonKind
    card_uid: str | None = None
    groups: tuple[str, ...] = ()
    organisation: str | None = None
    birth_year: int | None = None
    guardian_consent: bool = False
    blocked: bool = False
    phone_credential: bool = False


PEOPLE = (
    PersonSpec("kari-nordmann", "Kari Nordmann", PersonKind.RESIDENT, "04A1B2C3D4E5F6", ("innbyggere",)),
    PersonSpec("ola-nordmann", "Ola Nordmann", PersonKind.RESIDENT, "04B2C3D4E5F6A7", ("innbyggere",)),
    PersonSpec("amina-hassan", "Amina Hassan", PersonKind.RESIDENT, "04C3D4E5F6A7B8", ("innbyggere",)),
    PersonSpec(
        "emil-berg",
        "Emil Berg",
        PersonKind.RESIDENT,
        "04D4E5F6A7B8C9",
        ("innbyggere",),
        birth_year=2011,
        guardian_consent=True,
    ),
    PersonSpec(
        "per-sperret", "Per Sperret", PersonKind.RESIDENT, "04E5F6A7B8C9DA", ("innbyggere",), blocked=True
    ),
    PersonSpec(
        "vidar-vaktmester", "Vidar Vaktmester", PersonKind.CARETAKER, "04F6A7B8C9DAEB", ("vaktmestere",)
    ),
    PersonSpec("siri-ansatt", "Siri Ansatt", PersonKind.STAFF, "04112233445566", ("ansatte",)),
    PersonSpec(
        "nora-lie",
        "Nora Lie",
        PersonKind.ASSOCIATION_MEMBER,
        organisation="Asker sjakklubb",
        phone_credential=True,
    ),
    PersonSpec(
        "jonas-frivillig",
        "Jonas Frivillig",
        PersonKind.VOLUNTEER,
        organisation="Frivilligsentralen",
        phone_credential=True,
    ),
)


@dataclass(frozen=True)
class BookingSpec:
    day_offset: int
    site: str
    room: str
    starts: str
    ends: str
    title: str
    holder_ref: str | None
    organisation: str | None


BOOKINGS = (
    BookingSpec(
        0, "asker-sentrum", "moterom-1", "17:00", "19:00", "Sjakkveld", "nora-lie", "Asker sjakklubb"
    ),
    BookingSpec(
        0, "holmen", "moterom-1", "18:00", "20:00", "Leksehjelp", "jonas-frivillig", "Frivilligsentralen"
    ),
    BookingSpec(0, "heggedal", "moterom-1", "19:00", "20:30", "Styremøte", None, "Heggedal vel"),
    BookingSpec(
        1,
        "asker-sentrum",
        "moterom-2",
        "12:00",
        "14:00",
        "Norskkafé",
        "jonas-frivillig",
        "Frivilligsentralen",
    ),
    BookingSpec(
        1, "asker-sentrum", "moterom-1", "19:30", "21:30", "Sjakkturnering", "nora-lie", "Asker sjakklubb"
    ),
)


@dataclass
class SeedReport:
    """What one seed run created (table name → rows) and where a new admin token was written."""

    created: Counter[str] = field(default_factory=Counter)
    admin_token_path: Path | None = None

    def summary(self) -> str:
        if not self.created:
            return "Seed: nothing to add, the demo data is already there."
        parts = ", ".join(f"{n} {table}" for table, n in sorted(self.created.items()))
        return f"Seed: created {parts}."


class _Seeder:
    def __init__(self, session: Session, settings: Settings, today: date) -> None:
        self.session = session
        self.settings = settings
        self.today = today
        self.report = SeedReport()
        self._demo_pin_hash: str | None = None

    @property
    def demo_pin_hash(self) -> str:
        """One argon2 hash for all demo cards: the PIN is public anyway, and hashing is slow on purpose."""
        if self._demo_pin_hash is None:
            self._demo_pin_hash = hash_pin(DEMO_PIN)
        return self._demo_pin_hash

    def get_or_create(self, model: type[T], lookup: dict[str, Any], **values: Any) -> T:
        found = self.session.scalars(select(model).filter_by(**lookup)).one_or_none()
        if found is not None:
            return found
        obj = model(**lookup, **values)
        self.session.add(obj)
        self.session.flush()
        self.report.created[model.__tablename__] += 1
        return obj

    def run(self) -> SeedReport:
        sites = [self.site(spec) for spec in SITES]
        groups = {spec.slug: self.group(spec, sites) for spec in GROUPS}
        people = {spec.ref: self.person(spec, groups) for spec in PEOPLE}
        for booking in BOOKINGS:
            self.booking(booking, people)
        self.admin_user()
        return self.report

    def site(self, spec: SiteSpec) -> Site:
        site = self.get_or_create(
            Site,
            {"slug": spec.slug},
            name=spec.name,
            address=spec.address,
            caretaker_phone=CARETAKER_PHONE,
            help_text_nb=f"Trenger du hjelp? Ring vaktmester på {CARETAKER_PHONE}.",
            help_text_en=f"Need help? Call the caretaker at {CARETAKER_PHONE}.",
        )
        zones = {
            slug: self.get_or_create(Zone, {"site_id": site.id, "slug": slug}, name=name)
            for slug, name in ZONES
        }
        self.door(site, zones["torg"], "hovedinngang", "Hovedinngang", DoorKind.ENTRANCE)
        self.door(site, zones["bibliotek"], "bibliotek", "Biblioteket", DoorKind.INTERNAL, LockType.FAIL_SAFE)
        for slug, name, capacity in spec.rooms:
            door = self.door(site, zones["moterom"], slug, name, DoorKind.ROOM)
            self.get_or_create(
                Room,
                {"site_id": site.id, "slug": slug},
                zone_id=zones["moterom"].id,
                door_id=door.id,
                name=name,
                capacity=capacity,
                calendar_resource=f"demo:{spec.slug}:{slug}",
            )
        self.hours(site, spec)
        return site

    def door(
        self,
        site: Site,
        zone: Zone,
        slug: str,
        name: str,
        kind: DoorKind,
        lock: LockType = LockType.FAIL_SECURE,
    ) -> Door:
        return self.get_or_create(
            Door, {"site_id": site.id, "slug": slug}, zone_id=zone.id, name=name, kind=kind, lock_type=lock
        )

    def hours(self, site: Site, spec: SiteSpec) -> None:
        """Weekly hours are added only to a site that has none of that kind (admins may have edited them)."""
        plan = {
            HoursKind.MERAAPENT: [(d, spec.weekday_hours) for d in WEEKDAYS]
            + [(d, spec.weekend_hours) for d in WEEKEND],
            HoursKind.STAFFED: [(d, spec.staffed_hours) for d in WEEKDAYS],
        }
        for kind, rows in plan.items():
            exists = self.session.scalars(
                select(OpeningHours.id).filter_by(site_id=site.id, kind=kind).limit(1)
            ).first()
            if exists is not None:
                continue
            for weekday, (opens, closes) in rows:
                self.session.add(
                    OpeningHours(site=site, weekday=weekday, opens=_t(opens), closes=_t(closes), kind=kind)
                )
                self.report.created[OpeningHours.__tablename__] += 1
        self.session.flush()

    def group(self, spec: GroupSpec, sites: list[Site]) -> AccessGroup:
        group = self.get_or_create(
            AccessGroup,
            {"slug": spec.slug},
            name=spec.name,
            description=spec.description,
            any_time=spec.any_time,
            self_enrolment=spec.self_enrolment,
        )
        linked = {zone.id for zone in group.zones}
        for site in sites:
            for zone in site.zones:
                if zone.slug in spec.zone_slugs and zone.id not in linked:
                    group.zones.append(zone)
                    self.report.created["group_zones"] += 1
        return group

    def person(self, spec: PersonSpec, groups: dict[str, AccessGroup]) -> Person:
        person = self.get_or_create(
            Person,
            {"external_ref": f"demo:{spec.ref}"},
            kind=spec.kind,
            display_name=spec.name,
            organisation=spec.organisation,
            birth_year=spec.birth_year,
            guardian_consent=spec.guardian_consent,
            blocked=spec.blocked,
        )
        for slug in spec.groups:
            if person not in groups[slug].members:
                groups[slug].members.append(person)
                self.report.created["group_members"] += 1
        if spec.card_uid is not None:
            self.card(person, spec.card_uid)
        if spec.phone_credential and not any(c.kind is CredentialKind.PHONE for c in person.credentials):
            person.credentials.append(Credential(kind=CredentialKind.PHONE, label="Mobil (demo)"))
            self.report.created[Credential.__tablename__] += 1
        self.session.flush()
        return person

    def card(self, person: Person, uid: str) -> None:
        uid_hash = card_uid_hash(uid, self.settings.uid_hash_key())
        if self.session.scalars(select(Credential.id).filter_by(uid_hash=uid_hash)).first() is not None:
            return
        person.credentials.append(
            Credential(
                kind=CredentialKind.CARD,
                uid_hash=uid_hash,
                pin_hash=self.demo_pin_hash,
                label="Lånekort (demo)",
            )
        )
        self.report.created[Credential.__tablename__] += 1

    def booking(self, spec: BookingSpec, people: dict[str, Person]) -> None:
        day = self.today + timedelta(days=spec.day_offset)
        room = self.session.scalars(
            select(Room).join(Site).where(Site.slug == spec.site, Room.slug == spec.room)
        ).one_or_none()
        if room is None:  # an administrator removed the room: nothing to book
            return
        booking = self.get_or_create(
            Booking,
            {
                "source": DEMO_SOURCE,
                "external_id": f"demo:{day.isoformat()}:{spec.site}:{spec.room}:{spec.starts}",
            },
            room_id=room.id,
            holder_id=people[spec.holder_ref].id if spec.holder_ref else None,
            organisation=spec.organisation,
            title=spec.title,
            starts_at=_oslo_to_utc(day, spec.starts),
            ends_at=_oslo_to_utc(day, spec.ends),
        )
        if booking.checkin_code is None:  # typed at the kiosk, like the code of any booking
            booking.checkin_code = new_checkin_code(self.session, room.site_id, datetime.now(UTC))

    def admin_user(self) -> None:
        """Create the admin API user once; its token is written to a 0600 file and never logged."""
        if self.session.scalars(select(ApiUser.id).filter_by(username=ADMIN_USERNAME)).first() is not None:
            return
        token, token_hash = new_api_token()
        self.get_or_create(ApiUser, {"username": ADMIN_USERNAME}, role=ApiRole.ADMIN, token_hash=token_hash)
        path = self.settings.data_dir / ADMIN_TOKEN_FILE
        write_private_file(path, token + "\n")
        self.report.admin_token_path = path


def _oslo_to_utc(day: date, clock: str) -> datetime:
    return datetime.combine(day, _t(clock), tzinfo=OSLO).astimezone(UTC)


def oslo_today() -> date:
    return datetime.now(OSLO).date()


def seed(session: Session, settings: Settings, today: date | None = None) -> SeedReport:
    """Add the demo data that is missing, in the caller's transaction. `today` is a Europe/Oslo date."""
    return _Seeder(session, settings, today or oslo_today()).run()


def run_seed(settings: Settings, today: date | None = None) -> SeedReport:
    """Seed the database of `settings` in one transaction; the schema must be migrated first."""
    engine = make_engine(settings.db_url)
    try:
        ensure_migrated(engine)
        with session_scope(session_factory(engine)) as session:
            return seed(session, settings, today)
    finally:
        engine.dispose()
