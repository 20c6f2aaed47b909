"""What the phone page tells a resident about today, on the injectable clock: when they may come, which
doors they may open now, their bookings and what they may do with them, or why their phone opens nothing.

The town: Holmen is open for meråpent 07:00-22:00 every day (staffed 10:00-15:00 on Mondays); residents may
use the torg and the library in those hours, the evening group only the library 18:00-20:00 on Mondays, the
caretakers everything at any time. Monday 23 November 2026 is the day.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from central.checkin import CheckinRules
from central.db import make_engine, session_factory
from central.models import (
    AccessGroup,
    Base,
    Booking,
    BookingStatus,
    Credential,
    CredentialKind,
    CredentialStatus,
    Door,
    DoorKind,
    ExceptionKind,
    GroupScheduleInterval,
    HoursKind,
    OpeningException,
    OpeningHours,
    Person,
    PersonKind,
    Room,
    Site,
    Zone,
)
from central.services.errors import NotFoundError
from central.services.my_access import MyDay, SiteToday, my_day
from protocol import messages as m

OSLO = ZoneInfo("Europe/Oslo")
MONDAY = date(2026, 11, 23)
RULES = CheckinRules()


def at(hour: int, minute: int = 0, day: date = MONDAY) -> datetime:
    """A moment on the torg's wall clock, as UTC."""
    return datetime.combine(day, time(hour, minute), OSLO).astimezone(UTC)


def local(moment: datetime) -> str:
    return f"{moment.astimezone(OSLO):%H:%M}"


def spans(site: SiteToday) -> list[str]:
    return [f"{local(s)}-{local(e)}" for s, e in site.intervals]


def doors(site: SiteToday) -> list[str]:
    return sorted(d.slug for d in site.doors)


@dataclass
class Town:
    """The rows the tests look at, by slug or name."""

    sites: dict[str, Site] = field(default_factory=dict)
    zones: dict[str, Zone] = field(default_factory=dict)
    rooms: dict[str, Room] = field(default_factory=dict)
    groups: dict[str, AccessGroup] = field(default_factory=dict)
    people: dict[str, Person] = field(default_factory=dict)


def add_site(session: Session, town: Town, slug: str, name: str) -> Site:
    """A site with zones torg/bibliotek/moterom/kontor, a door into each and a meeting room; open 07-22."""
    site = Site(slug=slug, name=name)
    session.add(site)
    zones = {z: Zone(site=site, slug=z, name=z.title()) for z in ("torg", "bibliotek", "moterom", "kontor")}
    kinds = {"torg": DoorKind.ENTRANCE, "moterom": DoorKind.ROOM}
    door_slugs = {
        "torg": "hovedinngang",
        "bibliotek": "bibliotekdor",
        "moterom": "moterom-1",
        "kontor": "kontor",
    }
    made = {
        z: Door(
            site=site,
            zone=zone,
            slug=door_slugs[z],
            name=door_slugs[z].title(),
            kind=kinds.get(z, DoorKind.INTERNAL),
        )
        for z, zone in zones.items()
    }
    room = Room(site=site, zone=zones["moterom"], door=made["moterom"], slug="moterom-1", name="Møterom 1")
    session.add_all([room, *made.values()])
    for weekday in range(7):
        session.add(OpeningHours(site=site, weekday=weekday, opens=time(7), closes=time(22)))
    session.add(OpeningHours(site=site, weekday=0, opens=time(10), closes=time(15), kind=HoursKind.STAFFED))
    town.sites[slug] = site
    town.zones.update({f"{slug}/{z}": zone for z, zone in zones.items()})
    town.rooms[f"{slug}/moterom-1"] = room
    return site


def add_person(
    session: Session, town: Town, name: str, *groups: str, phone: bool = True, **fields: object
) -> Person:
    person = Person(kind=PersonKind.RESIDENT, display_name=name, **fields)
    person.groups = [town.groups[g] for g in groups]
    if phone:
        person.credentials.append(
            Credential(kind=CredentialKind.PHONE, valid_from=at(0, day=MONDAY - timedelta(days=30)))
        )
    session.add(person)
    town.people[name] = person
    return person


def book(
    session: Session,
    town: Town,
    holder: str,
    starts: datetime,
    ends: datetime,
    *,
    room: str = "holmen/moterom-1",
    status: BookingStatus = BookingStatus.CONFIRMED,
    title: str = "Sjakk",
) -> Booking:
    booking = Booking(
        room=town.rooms[room],
        holder=town.people[holder],
        starts_at=starts,
        ends_at=ends,
        status=status,
        title=title,
    )
    session.add(booking)
    session.flush()
    return booking


def build_town(session: Session) -> Town:
    town = Town()
    holmen = add_site(session, town, "holmen", "Holmen innbyggertorg")
    add_site(session, town, "tofte", "Tofte innbyggertorg")
    z = town.zones
    town.groups["innbyggere"] = AccessGroup(
        slug="innbyggere", name="Innbyggere", zones=[z["holmen/torg"], z["holmen/bibliotek"]]
    )
    town.groups["kveld"] = AccessGroup(
        slug="kveld",
        name="Kveld",
        zones=[z["holmen/bibliotek"]],
        intervals=[GroupScheduleInterval(weekday=0, starts=time(18), ends=time(20))],
    )
    town.groups["vaktmestere"] = AccessGroup(
        slug="vaktmestere",
        name="Vaktmestere",
        any_time=True,
        zones=[zone for key, zone in z.items() if key.startswith("holmen/")],
    )
    town.groups["tofte"] = AccessGroup(slug="tofte", name="Tofte", zones=[z["tofte/torg"]])
    session.add_all(town.groups.values())
    add_person(session, town, "Kari", "innbyggere")
    add_person(session, town, "Ola", "kveld")
    add_person(session, town, "Vidar", "vaktmestere")
    add_person(session, town, "Nora")
    add_person(session, town, "Tone", "innbyggere", "tofte")
    session.flush()
    assert holmen.id is not None
    return town


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    made = make_engine(db_url)
    Base.metadata.create_all(made)  # the migrations build exactly this (tests/test_migrations.py), faster
    yield made
    made.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with session_factory(engine)() as opened:
        yield opened


@pytest.fixture
def town(session: Session) -> Town:
    built = build_town(session)
    session.commit()
    return built


def day_of(session: Session, town: Town, name: str, now: datetime) -> MyDay:
    return my_day(session, town.people[name].id, now, RULES)


def only_site(day: MyDay) -> SiteToday:
    assert day.refusal is None
    [site] = day.sites
    return site


# --- groups and opening hours -------------------------------------------------------------------------------


def test_a_resident_sees_todays_opening_and_the_doors_of_her_zones_while_it_is_open(
    session: Session, town: Town
) -> None:
    noon = only_site(day_of(session, town, "Kari", at(12)))
    assert (noon.slug, noon.name) == ("holmen", "Holmen innbyggertorg")
    assert spans(noon) == ["07:00-22:00"]
    assert doors(noon) == ["bibliotekdor", "hovedinngang"]  # not the meeting room, not the office
    assert noon.zones == ("bibliotek", "torg")
    late = only_site(day_of(session, town, "Kari", at(22, 30)))
    assert spans(late) == ["07:00-22:00"] and late.doors == ()


def test_a_group_with_its_own_hours_gets_only_those_within_the_opening(session: Session, town: Town) -> None:
    assert spans(only_site(day_of(session, town, "Ola", at(12)))) == ["18:00-20:00"]
    assert doors(only_site(day_of(session, town, "Ola", at(12)))) == []
    assert doors(only_site(day_of(session, town, "Ola", at(19)))) == ["bibliotekdor"]
    tuesday = day_of(session, town, "Ola", at(19, day=MONDAY + timedelta(days=1)))
    assert tuesday.sites == ()  # the evening group has no hours on Tuesdays: no rights today


def test_a_closed_day_takes_the_site_off_the_page_but_not_for_caretakers(
    session: Session, town: Town
) -> None:
    holmen = town.sites["holmen"]
    session.add(OpeningException(site=holmen, day=MONDAY, kind=ExceptionKind.CLOSED, note="Vannlekkasje"))
    session.commit()
    assert day_of(session, town, "Kari", at(12)).sites == ()
    caretaker = only_site(day_of(session, town, "Vidar", at(3)))
    assert spans(caretaker) == ["00:00-00:00"]  # the whole local day
    assert doors(caretaker) == ["bibliotekdor", "hovedinngang", "kontor", "moterom-1"]


def test_special_hours_replace_the_week(session: Session, town: Town) -> None:
    session.add(
        OpeningException(
            site=town.sites["holmen"],
            day=MONDAY,
            kind=ExceptionKind.SPECIAL_HOURS,
            opens=time(9),
            closes=time(12),
        )
    )
    session.commit()
    # meråpent 09-12 today, and the staffed hours (10-15) still count: the door is open when either is
    assert spans(only_site(day_of(session, town, "Kari", at(12)))) == ["09:00-15:00"]


def test_the_site_open_now_comes_first(session: Session, town: Town) -> None:
    tofte = town.sites["tofte"]
    for hours in list(tofte.opening_hours):
        if hours.weekday == 0:
            hours.opens, hours.closes = time(6), time(8)
    session.commit()
    early = day_of(session, town, "Tone", at(6, 30))
    assert [s.slug for s in early.sites] == ["tofte", "holmen"]
    later = day_of(session, town, "Tone", at(12))
    assert [s.slug for s in later.sites] == ["holmen", "tofte"]


# --- bookings -----------------------------------------------------------------------------------------------


def test_a_booking_opens_the_way_to_its_room_from_15_minutes_before_until_15_after(
    session: Session, town: Town
) -> None:
    booking = book(session, town, "Nora", at(18), at(20))
    session.commit()
    assert day_of(session, town, "Nora", at(12)).sites[0].doors == ()
    before = only_site(day_of(session, town, "Nora", at(17, 50)))
    assert spans(before) == ["17:45-20:15"]
    assert doors(before) == ["hovedinngang", "moterom-1"]  # the entrance and the room, not the library
    assert before.zones == ("moterom", "torg")
    [today] = before.bookings
    assert (today.id, today.title, today.room, today.status) == (
        booking.id,
        "Sjakk",
        "Møterom 1",
        "confirmed",
    )
    assert (local(today.checkin_opens), local(today.checkin_closes)) == ("17:45", "18:15")
    assert (today.can_check_in, today.can_extend, today.can_end) == (True, True, False)
    during = only_site(day_of(session, town, "Nora", at(18, 30))).bookings[0]
    assert (during.can_check_in, during.can_extend, during.can_end) == (False, True, True)
    after = only_site(day_of(session, town, "Nora", at(20, 20)))
    assert after.doors == () and not after.bookings[0].can_end


def test_a_cancelled_booking_is_listed_but_opens_nothing(session: Session, town: Town) -> None:
    book(session, town, "Nora", at(18), at(20), status=BookingStatus.CANCELLED)
    session.commit()
    site = only_site(day_of(session, town, "Nora", at(18, 30)))
    assert site.intervals == () and site.doors == () and site.zones == ()
    assert [b.status for b in site.bookings] == [BookingStatus.CANCELLED]
    assert not any(b.can_check_in or b.can_extend or b.can_end for b in site.bookings)


def test_a_booking_on_a_closed_day_still_lets_the_holder_in(session: Session, town: Town) -> None:
    holmen = town.sites["holmen"]
    session.add(OpeningException(site=holmen, day=MONDAY, kind=ExceptionKind.CLOSED))
    book(session, town, "Kari", at(18), at(20))
    session.commit()
    site = only_site(day_of(session, town, "Kari", at(18)))
    assert spans(site) == ["17:45-20:15"]
    assert doors(site) == ["hovedinngang", "moterom-1"]


def test_tomorrows_booking_is_not_today(session: Session, town: Town) -> None:
    tomorrow = MONDAY + timedelta(days=1)
    book(session, town, "Nora", at(18, day=tomorrow), at(20, day=tomorrow))
    session.commit()
    assert day_of(session, town, "Nora", at(12)).sites == ()


def test_a_co_holder_sees_the_booking_and_opens_its_doors_but_only_the_holder_extends_or_ends_it(
    session: Session, town: Town
) -> None:
    booking = book(session, town, "Nora", at(18), at(20))
    booking.co_holders.append(town.people["Ola"])  # Ola's own group opens the library 18-20 on Mondays
    session.commit()
    ola = only_site(day_of(session, town, "Ola", at(18, 5)))
    assert spans(ola) == ["17:45-20:15"]
    assert doors(ola) == ["bibliotekdor", "hovedinngang", "moterom-1"]
    assert ola.zones == ("bibliotek", "moterom", "torg")
    [shared] = ola.bookings
    assert (shared.id, shared.is_holder) == (booking.id, False)
    assert (shared.can_check_in, shared.can_extend, shared.can_end) == (True, False, False)
    nora = only_site(day_of(session, town, "Nora", at(18, 30))).bookings[0]
    assert (nora.is_holder, nora.can_extend, nora.can_end) == (True, True, True)
    assert day_of(session, town, "Kari", at(18)).sites[0].bookings == ()  # not named on it


def test_someone_elses_booking_gives_nothing(session: Session, town: Town) -> None:
    book(session, town, "Kari", at(18), at(20))
    session.commit()
    assert day_of(session, town, "Nora", at(18)).sites == ()


# --- why a phone opens nothing ------------------------------------------------------------------------------


REFUSALS = {
    "blocked": m.Reason.PERSON_BLOCKED,
    "no_phone": m.Reason.UNKNOWN_CREDENTIAL,
    "phone_revoked": m.Reason.CREDENTIAL_REVOKED,
    "phone_blocked": m.Reason.CREDENTIAL_BLOCKED,
    "phone_expired": m.Reason.CREDENTIAL_EXPIRED,
    "minor_without_consent": m.Reason.CONSENT_MISSING,
}


def spoil(kari: Person, change: str) -> None:
    phone = kari.credentials[0]
    if change == "blocked":
        kari.blocked = True
    elif change == "no_phone":
        kari.credentials.remove(phone)
    elif change == "phone_revoked":
        phone.status = CredentialStatus.REVOKED
    elif change == "phone_blocked":
        phone.status = CredentialStatus.BLOCKED
    elif change == "phone_expired":
        phone.valid_until = at(11)
    else:
        kari.birth_year, kari.guardian_consent = 2012, False


def test_a_person_whose_phone_opens_nothing_is_told_why_instead(session: Session, town: Town) -> None:
    for change, reason in REFUSALS.items():
        spoil(town.people["Kari"], change)
        session.flush()
        day = day_of(session, town, "Kari", at(12))
        assert (change, day.refusal, day.sites) == (change, reason, ())
        session.rollback()
    assert only_site(day_of(session, town, "Kari", at(12))).doors


def test_a_minor_with_consent_and_a_second_good_phone_are_fine(session: Session, town: Town) -> None:
    kari = town.people["Kari"]
    kari.birth_year, kari.guardian_consent = 2012, True
    kari.credentials[0].status = CredentialStatus.REVOKED
    kari.credentials.append(Credential(kind=CredentialKind.PHONE, valid_from=at(0)))
    session.commit()
    assert only_site(day_of(session, town, "Kari", at(12))).doors


def test_an_unknown_person_and_a_naive_clock_are_refused(session: Session, town: Town) -> None:
    with pytest.raises(NotFoundError):
        my_day(session, 999_999, at(12), RULES)
    with pytest.raises(ValueError, match="timezone-aware"):
        my_day(session, town.people["Kari"].id, datetime(2026, 11, 23, 12), RULES)
