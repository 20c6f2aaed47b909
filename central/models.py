"""Central's tables: sites and doors, people and credentials, bookings, events and the replica log.

Conventions: integer primary keys; site-scoped things have a slug unique within their site; every timestamp is
a `UTCDateTime` (aware UTC in Python); enums are Python StrEnums stored as short strings (portable, no native
DB enum types to migrate); constraints follow a naming convention so Alembic's batch mode on SQLite can
find them. Configuration children cascade with their site; history (events, alarms, bookings) does not.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    Time,
    UniqueConstraint,
    event,
    false,
    inspect,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from central.db import UTCDateTime, utcnow
from central.schedules import DEFAULT_TIMEZONE, ExceptionKind, HoursKind
from protocol import messages as m

# The vocabulary central shares with the agents is protocol's, so a value means the same on both sides.
DoorKind = m.DoorKind
LockType = m.LockType  # fail secure: locked without power; fail safe: unlocked (escape routes)
PersonKind = m.PersonKind
CredentialKind = m.CredentialKind
Decision = m.Decision
AlarmSeverity = m.Severity

__all__ = [
    "AccessGroup",
    "Agent",
    "Alarm",
    "AlarmSeverity",
    "ApiRole",
    "ApiUser",
    "AuditLog",
    "Base",
    "Booking",
    "BookingCoHolder",
    "BookingFeed",
    "BookingStatus",
    "CardCodeFailure",
    "CardEnrolmentCode",
    "Credential",
    "CredentialKind",
    "CredentialStatus",
    "Decision",
    "Door",
    "DoorKind",
    "Event",
    "EventKind",
    "ExceptionKind",
    "GroupMember",
    "GroupScheduleInterval",
    "GroupZone",
    "HoursKind",
    "IssuedToken",
    "LockType",
    "OpeningException",
    "OpeningHours",
    "Person",
    "PersonKind",
    "PhoneKey",
    "ReplicaChange",
    "ReplicaOp",
    "Room",
    "Site",
    "SiteReplicaState",
    "TermsAcceptance",
    "WebhookKind",
    "WebhookOutbox",
    "Zone",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SLUG = 64
NAME = 200
PHONE = 32
REF = 128


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def str_enum(cls: type[StrEnum], length: int = 32) -> Enum:
    """Store a StrEnum by value as a plain VARCHAR; unknown strings are refused in Python."""
    return Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=length,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )


class CredentialStatus(StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"
    REVOKED = "revoked"


class BookingStatus(StrEnum):
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    CHECKED_IN = "checked_in"
    NO_SHOW = "no_show"
    COMPLETED = "completed"


class EventKind(StrEnum):
    ACCESS = "access"
    DOOR = "door"
    ALARM = "alarm"
    SYSTEM = "system"
    CHECKIN = "checkin"


class ReplicaOp(StrEnum):
    UPSERT = "upsert"
    REMOVE = "remove"


class ApiRole(StrEnum):
    ADMIN = "admin"
    CARETAKER = "caretaker"
    BOOKING_INTEGRATION = "booking_integration"
    MONITORING = "monitoring"  # a Prometheus server: GET /metrics and nothing else


def _fk(target: str, ondelete: str = "CASCADE") -> ForeignKey:
    return ForeignKey(target, ondelete=ondelete)


def _site_fk() -> Mapped[int]:
    return mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)


# Children that live and die with their parent; the database cascades the delete.
_OWNED: dict[str, Any] = {"cascade": "all, delete-orphan", "passive_deletes": True}


def _created_at() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), default=utcnow)


# --- sites, zones, doors, rooms, hours -------------------------------------------------------------------


class Site(Base):
    """An innbyggertorg (citizen square, often with a library)."""

    __tablename__ = "sites"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(SLUG), unique=True)
    name: Mapped[str] = mapped_column(String(NAME))
    address: Mapped[str] = mapped_column(String(300), default="")
    timezone: Mapped[str] = mapped_column(String(64), default=DEFAULT_TIMEZONE)
    closed_on_public_holidays: Mapped[bool] = mapped_column(Boolean, default=True)
    contact_phone: Mapped[str | None] = mapped_column(String(PHONE))
    caretaker_phone: Mapped[str | None] = mapped_column(String(PHONE))
    help_text_nb: Mapped[str] = mapped_column(Text, default="")
    help_text_en: Mapped[str] = mapped_column(Text, default="")
    # Age limits: younger than min_age needs a recorded guardian consent; younger than min_age_with_consent
    # cannot sign up on their own at all (the lowest of all sites decides; central.services.enrolment).
    min_age: Mapped[int] = mapped_column(SmallInteger, default=18, server_default="18")
    min_age_with_consent: Mapped[int] = mapped_column(SmallInteger, default=15, server_default="15")
    created_at: Mapped[datetime] = _created_at()

    zones: Mapped[list[Zone]] = relationship(back_populates="site", **_OWNED)
    doors: Mapped[list[Door]] = relationship(back_populates="site", **_OWNED)
    rooms: Mapped[list[Room]] = relationship(back_populates="site", **_OWNED)
    opening_hours: Mapped[list[OpeningHours]] = relationship(back_populates="site", **_OWNED)
    opening_exceptions: Mapped[list[OpeningException]] = relationship(back_populates="site", **_OWNED)


class Zone(Base):
    """An area behind doors (torg, bibliotek, møterom); access groups grant zones, not doors."""

    __tablename__ = "zones"
    __table_args__ = (UniqueConstraint("site_id", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = _site_fk()
    slug: Mapped[str] = mapped_column(String(SLUG))
    name: Mapped[str] = mapped_column(String(NAME))

    site: Mapped[Site] = relationship(back_populates="zones")
    doors: Mapped[list[Door]] = relationship(back_populates="zone", passive_deletes=True)


class Door(Base):
    """A controlled door; `zone` is the zone it leads INTO (what a grant for that zone opens)."""

    __tablename__ = "doors"
    __table_args__ = (
        UniqueConstraint("site_id", "slug"),
        CheckConstraint("unlock_seconds > 0 AND held_open_seconds > 0", name="positive_times"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = _site_fk()
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(SLUG))
    name: Mapped[str] = mapped_column(String(NAME))
    kind: Mapped[DoorKind] = mapped_column(str_enum(DoorKind))
    unlock_seconds: Mapped[int] = mapped_column(Integer, default=5)
    held_open_seconds: Mapped[int] = mapped_column(Integer, default=30)
    lock_type: Mapped[LockType] = mapped_column(str_enum(LockType), default=LockType.FAIL_SECURE)
    last_state: Mapped[str | None] = mapped_column(String(32))
    last_state_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    site: Mapped[Site] = relationship(back_populates="doors")
    zone: Mapped[Zone] = relationship(back_populates="doors")


class Room(Base):
    """A bookable room; `calendar_resource` is its id in the booking system (Vega), if imported."""

    __tablename__ = "rooms"
    __table_args__ = (
        UniqueConstraint("site_id", "slug"),
        CheckConstraint("capacity >= 0", name="capacity_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = _site_fk()
    zone_id: Mapped[int] = mapped_column(ForeignKey("zones.id", ondelete="CASCADE"), index=True)
    door_id: Mapped[int | None] = mapped_column(ForeignKey("doors.id", ondelete="SET NULL"), index=True)
    slug: Mapped[str] = mapped_column(String(SLUG))
    name: Mapped[str] = mapped_column(String(NAME))
    capacity: Mapped[int] = mapped_column(Integer, default=0)
    calendar_resource: Mapped[str | None] = mapped_column(String(NAME), unique=True)
    # The holder's first entry through the room's own door checks the booking in (off: kiosk or phone only).
    implicit_checkin: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    site: Mapped[Site] = relationship(back_populates="rooms")
    zone: Mapped[Zone] = relationship()
    door: Mapped[Door | None] = relationship()


class OpeningHours(Base):
    """One weekly opening interval (local time); several rows per weekday are allowed."""

    __tablename__ = "opening_hours"
    __table_args__ = (CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = _site_fk()
    weekday: Mapped[int] = mapped_column(SmallInteger)
    opens: Mapped[time] = mapped_column(Time)
    closes: Mapped[time] = mapped_column(Time)
    kind: Mapped[HoursKind] = mapped_column(str_enum(HoursKind), default=HoursKind.MERAAPENT)

    site: Mapped[Site] = relationship(back_populates="opening_hours")


class OpeningException(Base):
    """A date that differs from the weekly hours: closed (both kinds), or special hours for `hours_kind`."""

    __tablename__ = "opening_exceptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = _site_fk()
    day: Mapped[date] = mapped_column(Date)
    kind: Mapped[ExceptionKind] = mapped_column(str_enum(ExceptionKind))
    opens: Mapped[time | None] = mapped_column(Time)
    closes: Mapped[time | None] = mapped_column(Time)
    hours_kind: Mapped[HoursKind] = mapped_column(str_enum(HoursKind), default=HoursKind.MERAAPENT)
    note: Mapped[str] = mapped_column(String(300), default="")

    site: Mapped[Site] = relationship(back_populates="opening_exceptions")


# --- people, groups, credentials -------------------------------------------------------------------------


class Person(Base):
    """Someone who may get in: resident, volunteer, association member, staff or caretaker."""

    __tablename__ = "persons"
    # A resident who signed in is known by their provider's (issuer, subject), never by a national id number.
    __table_args__ = (Index(None, "oidc_issuer", "oidc_subject", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[PersonKind] = mapped_column(str_enum(PersonKind))
    display_name: Mapped[str] = mapped_column(String(NAME))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(PHONE))
    organisation: Mapped[str | None] = mapped_column(String(NAME))
    birth_year: Mapped[int | None] = mapped_column(SmallInteger)
    birth_date: Mapped[date | None] = mapped_column(Date)  # only for the age rule (data minimisation)
    guardian_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    guardian_consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    guardian_consent_by: Mapped[str | None] = mapped_column(String(REF))  # who recorded it
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    external_ref: Mapped[str | None] = mapped_column(String(NAME), unique=True)
    oidc_issuer: Mapped[str | None] = mapped_column(String(300))
    oidc_subject: Mapped[str | None] = mapped_column(String(REF))
    enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # finished self-enrolment
    created_at: Mapped[datetime] = _created_at()

    credentials: Mapped[list[Credential]] = relationship(
        back_populates="person", cascade="all, delete-orphan", passive_deletes=True
    )
    groups: Mapped[list[AccessGroup]] = relationship(
        secondary="group_members", back_populates="members", passive_deletes=True
    )


class AccessGroup(Base):
    """Who may enter which zones when.

    When: `any_time` (staff, caretakers) beats everything; otherwise the group's own weekly intervals
    if it has any; otherwise (no intervals) the site's meråpent hours.
    """

    __tablename__ = "access_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(SLUG), unique=True)
    name: Mapped[str] = mapped_column(String(NAME))
    description: Mapped[str] = mapped_column(Text, default="")
    any_time: Mapped[bool] = mapped_column(Boolean, default=False)
    # Residents who finish self-enrolment become members of every group with this flag.
    self_enrolment: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    intervals: Mapped[list[GroupScheduleInterval]] = relationship(
        back_populates="group", cascade="all, delete-orphan", passive_deletes=True
    )
    zones: Mapped[list[Zone]] = relationship(secondary="group_zones", passive_deletes=True)
    members: Mapped[list[Person]] = relationship(
        secondary="group_members", back_populates="groups", passive_deletes=True
    )

    @property
    def follows_site_hours(self) -> bool:
        return not self.any_time and not self.intervals


class GroupScheduleInterval(Base):
    """One weekly interval (site-local time) of a group's own schedule."""

    __tablename__ = "group_schedule_intervals"
    __table_args__ = (CheckConstraint("weekday BETWEEN 0 AND 6", name="weekday_range"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("access_groups.id", ondelete="CASCADE"), index=True)
    weekday: Mapped[int] = mapped_column(SmallInteger)
    starts: Mapped[time] = mapped_column(Time)
    ends: Mapped[time] = mapped_column(Time)

    group: Mapped[AccessGroup] = relationship(back_populates="intervals")


class GroupZone(Base):
    __tablename__ = "group_zones"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("access_groups.id", ondelete="CASCADE"), primary_key=True
    )
    zone_id: Mapped[int] = mapped_column(
        ForeignKey("zones.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("access_groups.id", ondelete="CASCADE"), primary_key=True
    )
    person_id: Mapped[int] = mapped_column(
        ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Credential(Base):
    """A card (keyed UID hash + optional argon2 PIN hash) or a phone (tokens issued per visit)."""

    __tablename__ = "credentials"
    __table_args__ = (
        CheckConstraint(
            "(kind = 'card' AND uid_hash IS NOT NULL)"
            " OR (kind = 'phone' AND uid_hash IS NULL AND pin_hash IS NULL)",
            name="kind_fields",
        ),
        CheckConstraint("failed_pin_count >= 0", name="failed_pin_count_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    kind: Mapped[CredentialKind] = mapped_column(str_enum(CredentialKind))
    uid_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    pin_hash: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[CredentialStatus] = mapped_column(
        str_enum(CredentialStatus), default=CredentialStatus.ACTIVE
    )
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    label: Mapped[str] = mapped_column(String(NAME), default="")
    created_at: Mapped[datetime] = _created_at()
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failed_pin_count: Mapped[int] = mapped_column(Integer, default=0)

    person: Mapped[Person] = relationship(back_populates="credentials")


class IssuedToken(Base):
    """A signed phone token we handed out, remembered so it can be revoked before it expires."""

    __tablename__ = "issued_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    site_id: Mapped[int] = _site_fk()
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id", ondelete="SET NULL"), index=True)
    token_id: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    person: Mapped[Person] = relationship()
    site: Mapped[Site] = relationship()


# --- bookings, events, alarms ----------------------------------------------------------------------------


class Booking(Base):
    """A room booking, usually imported from the booking system; `(source, external_id)` is its identity."""

    __tablename__ = "bookings"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        Index(None, "room_id", "starts_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id", ondelete="RESTRICT"))
    holder_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id", ondelete="SET NULL"), index=True)
    organisation: Mapped[str | None] = mapped_column(String(NAME))
    title: Mapped[str] = mapped_column(String(300), default="")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[BookingStatus] = mapped_column(str_enum(BookingStatus), default=BookingStatus.CONFIRMED)
    source: Mapped[str] = mapped_column(String(32), default="manual")
    external_id: Mapped[str | None] = mapped_column(String(NAME))
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The end the booking system (feed or integration) last sent. An extension or early end made here
    # changes ends_at only, so a re-import that still says the same end leaves it alone (see upsert_external).
    source_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Typed at the site's kiosk to check in; unique among the site's live bookings (services/bookings.py).
    checkin_code: Mapped[str | None] = mapped_column(String(6), index=True)
    created_at: Mapped[datetime] = _created_at()

    room: Mapped[Room] = relationship()
    holder: Mapped[Person | None] = relationship()
    if TYPE_CHECKING:  # mapped at the end of the module, with BookingCoHolder
        co_holders: Mapped[list[Person]]  # named people who may use the booking like its holder


class Event(Base):
    """Something an agent saw (access decision, door state, alarm...). `event_id` makes ingest idempotent."""

    __tablename__ = "events"
    __table_args__ = (Index(None, "site_id", "device_time"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    agent_client_id: Mapped[str] = mapped_column(String(REF))
    agent_seq: Mapped[int] = mapped_column(BigInteger)
    device_time: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    kind: Mapped[EventKind] = mapped_column(str_enum(EventKind))
    door_slug: Mapped[str | None] = mapped_column(String(SLUG))
    credential_ref: Mapped[str | None] = mapped_column(String(REF))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id", ondelete="SET NULL"), index=True)
    decision: Mapped[Decision | None] = mapped_column(str_enum(Decision, 16))
    reason: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    site: Mapped[Site] = relationship()
    person: Mapped[Person | None] = relationship()


class Alarm(Base):
    """Something a caretaker must see: door forced or held open, tamper, agent offline..."""

    __tablename__ = "alarms"
    __table_args__ = (Index(None, "site_id", "raised_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="RESTRICT"))
    door_id: Mapped[int | None] = mapped_column(ForeignKey("doors.id", ondelete="SET NULL"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[AlarmSeverity] = mapped_column(str_enum(AlarmSeverity), default=AlarmSeverity.WARNING)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(REF))
    comment: Mapped[str] = mapped_column(Text, default="")  # the caretaker's, when acknowledging
    detail: Mapped[str] = mapped_column(Text, default="", server_default="")  # what the agent said
    event_id: Mapped[str | None] = mapped_column(String(36), index=True)

    site: Mapped[Site] = relationship()
    door: Mapped[Door | None] = relationship()


# --- agents and the credential replica -------------------------------------------------------------------


class Agent(Base):
    """The controller at a site (one per site) as central last heard from it."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), unique=True)
    client_id: Mapped[str] = mapped_column(String(REF), unique=True)
    mqtt_username: Mapped[str | None] = mapped_column(String(REF))
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    replica_seq_applied: Mapped[int] = mapped_column(BigInteger, default=0)
    software_version: Mapped[str | None] = mapped_column(String(64))

    site: Mapped[Site] = relationship()


class ReplicaChange(Base):
    """One entry of a site's ordered credential delta log; agents apply them by `seq` and resync on a gap."""

    __tablename__ = "replica_changes"
    __table_args__ = (
        UniqueConstraint("site_id", "seq"),
        # The publisher looks for unpublished changes every fraction of a second; a partial index keeps
        # that cheap however long the published log grows.
        Index(
            "ix_replica_changes_unpublished",
            "site_id",
            "seq",
            sqlite_where=text("published_at IS NULL"),
            postgresql_where=text("published_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    op: Mapped[ReplicaOp] = mapped_column(str_enum(ReplicaOp, 16))
    credential_id: Mapped[int | None] = mapped_column(
        ForeignKey("credentials.id", ondelete="SET NULL"), index=True
    )
    credential_ref: Mapped[str] = mapped_column(String(REF))
    created_at: Mapped[datetime] = _created_at()
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    site: Mapped[Site] = relationship()
    credential: Mapped[Credential | None] = relationship()


class SiteReplicaState(Base):
    """The last sequence number handed out for a site's replica log (row-locked when allocating)."""

    __tablename__ = "site_replica_state"

    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)

    site: Mapped[Site] = relationship()


# --- API users and audit ---------------------------------------------------------------------------------


class ApiUser(Base):
    """A caller of central's HTTP API (only the SHA-256 of its bearer token is stored) and, with a password
    (argon2id), a caretaker or admin who signs in to the console at /drift."""

    __tablename__ = "api_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(SLUG), unique=True)
    role: Mapped[ApiRole] = mapped_column(str_enum(ApiRole))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = _created_at()
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    password_hash: Mapped[str | None] = mapped_column(String(200))
    failed_sign_ins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditLog(Base):
    """Who changed what, when (administrative actions; access events live in `events`)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(REF))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# --- invariants the schema cannot express portably -------------------------------------------------------


class CrossSiteError(ValueError):
    """A door or room points at a zone or door of another site."""


def _related(session: Session, obj: Base, rel: str, fk: str) -> Any:
    """What `obj.<rel>` will point at after the flush, even when only the raw foreign key was changed."""
    state = inspect(obj)
    if not state.attrs[rel].history.has_changes() and state.attrs[fk].history.has_changes():
        value = getattr(obj, fk)
        target = state.mapper.relationships[rel].mapper.class_
        return None if value is None else session.get(target, value)
    return getattr(obj, rel)


def _site_identity(obj: Door | Room | Zone) -> object:
    """The site an object belongs to: its id, or the Site object itself while that has no id yet."""
    if obj.site_id is not None and not inspect(cast(Base, obj)).attrs["site"].history.has_changes():
        return obj.site_id  # unchanged, or changed through the raw foreign key: no query needed
    site = obj.site
    if site is None:
        return None
    return site.id if site.id is not None else site


def _check_same_site(session: Session, obj: Door | Room, rel: str) -> None:
    other = _related(session, obj, rel, f"{rel}_id")
    if other is None:
        return
    mine, theirs = _site_identity(obj), _site_identity(other)
    if mine is not None and theirs is not None and mine != theirs:
        raise CrossSiteError(f"{type(obj).__name__} {obj.slug!r}: its {rel} belongs to another site")


_DOOR_LINKS = ("site", "site_id", "zone", "zone_id")
_ROOM_LINKS = (*_DOOR_LINKS, "door", "door_id")


def _links_changed(obj: Base, names: tuple[str, ...]) -> bool:
    """Only new rows and changed links are checked, so frequent door-state updates cost no extra query."""
    state = inspect(obj)
    return state.transient or state.pending or any(state.attrs[n].history.has_changes() for n in names)


@event.listens_for(Session, "before_flush")
def _refuse_cross_site_links(session: Session, _ctx: object, _instances: object) -> None:
    for obj in (*session.new, *session.dirty):
        if isinstance(obj, Door) and _links_changed(obj, _DOOR_LINKS):
            _check_same_site(session, obj, "zone")
        elif isinstance(obj, Room) and _links_changed(obj, _ROOM_LINKS):
            _check_same_site(session, obj, "zone")
            _check_same_site(session, obj, "door")


def _aware_utc(_target: object, value: object, _old: object, initiator: Any) -> object:
    """Refuse naive datetimes as soon as they are assigned (not only at flush), and keep UTC in memory."""
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"{initiator.key}: naive datetime {value.isoformat()} refused; give a timezone-aware datetime"
            )
        return value.astimezone(UTC)
    return value


for _mapper in Base.registry.mappers:
    for _prop in _mapper.column_attrs:
        if any(isinstance(col.type, UTCDateTime) for col in _prop.columns):
            event.listen(_prop.class_attribute, "set", _aware_utc, retval=True)


# --- booking feeds (appended: iCalendar import) ----------------------------------------------------------


class BookingFeed(Base):
    """An iCalendar feed whose events become bookings under source `ical:<id>`.

    With `room` every event books that room; without, `resource_property` of each event (LOCATION by
    default) is looked up in `room_map` (text -> room slug), then among the site's rooms. The HTTP validators
    (`etag`, `last_modified`) make polling cheap; the `last_*` columns are the feed's status for admins.
    """

    __tablename__ = "booking_feeds"
    __table_args__ = (CheckConstraint("horizon_days BETWEEN 1 AND 366", name="horizon_range"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    url: Mapped[str] = mapped_column(String(2000))
    site_id: Mapped[int] = _site_fk()
    room_id: Mapped[int | None] = mapped_column(ForeignKey("rooms.id", ondelete="CASCADE"), index=True)
    resource_property: Mapped[str] = mapped_column(String(SLUG), default="LOCATION")
    room_map: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    horizon_days: Mapped[int] = mapped_column(Integer, default=60)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    etag: Mapped[str | None] = mapped_column(String(300))
    last_modified: Mapped[str | None] = mapped_column(String(64))
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_ok_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = _created_at()

    site: Mapped[Site] = relationship()
    room: Mapped[Room | None] = relationship()


for _prop in BookingFeed.__mapper__.column_attrs:  # the loop above ran before this class existed
    if any(isinstance(col.type, UTCDateTime) for col in _prop.columns):
        event.listen(_prop.class_attribute, "set", _aware_utc, retval=True)


# --- webhook outbox (appended: telling the booking system about check-ins, no-shows, changes) -------------


class WebhookKind(StrEnum):
    NO_SHOW = "no_show"
    CHECKED_IN = "checked_in"
    EXTENDED = "extended"
    ENDED_EARLY = "ended_early"


class WebhookOutbox(Base):
    """A booking change the booking system must hear about, written in the same transaction as the change.

    The sender POSTs `payload` until the receiver answers 2xx (`delivered_at`); `event_id` travels as the
    idempotency key, so a retry after a lost answer is recognisable as the same event. A new row is due at
    once; `next_attempt_at` matters after a failure.
    """

    __tablename__ = "webhook_outbox"
    __table_args__ = (
        # The sender reads undelivered rows in order every few seconds; delivered ones only wait to be pruned.
        Index(
            "ix_webhook_outbox_pending",
            "id",
            sqlite_where=text("delivered_at IS NULL"),
            postgresql_where=text("delivered_at IS NULL"),
        ),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    kind: Mapped[WebhookKind] = mapped_column(str_enum(WebhookKind))
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id", ondelete="SET NULL"), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = _created_at()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(500))


for _prop in WebhookOutbox.__mapper__.column_attrs:  # appended after the listener loop, like BookingFeed
    if any(isinstance(col.type, UTCDateTime) for col in _prop.columns):
        event.listen(_prop.class_attribute, "set", _aware_utc, retval=True)


# --- card registration with a one-time code (appended: self-enrolment at a reader or the kiosk) ----------


class CardEnrolmentCode(Base):
    """A one-time code shown on a signed-in person's phone; typed at a reader before tapping a card, it
    registers that card for the person. Only the code's HMAC (under the UID-hash key) is stored."""

    __tablename__ = "card_enrolment_codes"
    __table_args__ = (CheckConstraint("attempts >= 0", name="attempts_not_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = _created_at()
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # claims with this code that were refused
    credential_id: Mapped[int | None] = mapped_column(ForeignKey("credentials.id", ondelete="SET NULL"))

    person: Mapped[Person] = relationship()


class CardCodeFailure(Base):
    """A wrong one-time code typed at a site: too many in a short time close the site to claims a while."""

    __tablename__ = "card_code_failures"
    __table_args__ = (Index(None, "site_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


for _model in (CardEnrolmentCode, CardCodeFailure):  # appended after the listener loop, like BookingFeed
    for _prop in _model.__mapper__.column_attrs:
        if any(isinstance(col.type, UTCDateTime) for col in _prop.columns):
            event.listen(_prop.class_attribute, "set", _aware_utc, retval=True)


# --- phone keys (appended: holder-bound QR codes on the resident's phone) --------------------------------

MAX_PHONE_KEYS = 5  # a person's phones with a registered key; a sixth retires the least recently used


class PhoneKey(Base):
    """The public key of one of a person's phones (WebCrypto ECDSA P-256; the private key never leaves the
    phone). The phone page's QR tokens are bound to it, so only that phone can show them. Stored as the
    33-byte compressed point; `label` says which phone (its browser) so the person can tell them apart."""

    __tablename__ = "phone_keys"
    __table_args__ = (UniqueConstraint("person_id", "public_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"))
    public_key: Mapped[bytes] = mapped_column(LargeBinary(33))
    label: Mapped[str] = mapped_column(String(NAME), default="")
    created_at: Mapped[datetime] = _created_at()
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    person: Mapped[Person] = relationship()


for _prop in PhoneKey.__mapper__.column_attrs:  # appended after the listener loop, like BookingFeed
    if any(isinstance(col.type, UTCDateTime) for col in _prop.columns):
        event.listen(_prop.class_attribute, "set", _aware_utc, retval=True)


# --- the meråpent agreement (appended: self-enrolment) ----------------------------------------------------


class TermsAcceptance(Base):
    """A person accepted version `version` of the meråpent agreement (central/terms/) at `accepted_at`."""

    __tablename__ = "terms_acceptances"
    __table_args__ = (UniqueConstraint("person_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(32))
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime())

    person: Mapped[Person] = relationship()


for _prop in TermsAcceptance.__mapper__.column_attrs:  # appended after the listener loop, like BookingFeed
    if any(isinstance(col.type, UTCDateTime) for col in _prop.columns):
        event.listen(_prop.class_attribute, "set", _aware_utc, retval=True)


# --- co-holders of a booking (appended: the holder and named co-holders may use a booking) ----------------


class BookingCoHolder(Base):
    """A person named on a booking besides its holder, whom the booking lets in exactly like the holder."""

    __tablename__ = "booking_co_holders"

    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), primary_key=True)
    person_id: Mapped[int] = mapped_column(
        ForeignKey("persons.id", ondelete="CASCADE"), primary_key=True, index=True
    )


# Mapped here, not in Booking: the UTC listener loop above configured the mappers before this table existed.
Booking.co_holders = relationship(
    Person, secondary=BookingCoHolder.__table__, order_by=Person.id, passive_deletes=True
)


# --- alarm notifications (appended: e-mail and webhook to the caretaker on call, central.notify) ----------


class NotifyChannel(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"


class AlarmNotification(Base):
    """The caretaker on call was told about `alarm`; repeats of the same site, door and kind soon after are
    folded into it (`repeats`) rather than told again. `closed_at`: nothing more will be sent for it
    (acknowledged, escalated, or a passing state that ended), so the notifier stops looking at it."""

    __tablename__ = "alarm_notifications"
    __table_args__ = (
        Index(None, "site_id", "kind", "created_at"),
        Index(
            "ix_alarm_notifications_open",
            "id",
            sqlite_where=text("closed_at IS NULL"),
            postgresql_where=text("closed_at IS NULL"),
        ),
        CheckConstraint("repeats >= 0", name="repeats_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarms.id", ondelete="CASCADE"), unique=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    door_id: Mapped[int | None] = mapped_column(ForeignKey("doors.id", ondelete="SET NULL"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    repeats: Mapped[int] = mapped_column(Integer, default=0)
    last_repeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    alarm: Mapped[Alarm] = relationship()
    site: Mapped[Site] = relationship()
    door: Mapped[Door | None] = relationship()


class NoticedAlarm(Base):
    """Every alarm the notifier has looked at, once: with the notification it opened or was folded into,
    or none (no person needed, raised before notifications existed, or its notification went with the
    first alarm when retention deleted that: the repeat stays noticed and is never told again)."""

    __tablename__ = "noticed_alarms"

    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarms.id", ondelete="CASCADE"), primary_key=True)
    notification_id: Mapped[int | None] = mapped_column(
        ForeignKey("alarm_notifications.id", ondelete="SET NULL"), index=True
    )
    noticed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class NotificationOutbox(Base):
    """One message to send (an e-mail to the on-call or escalation addresses, or a webhook POST), kept until
    it is delivered or no longer worth sending (`cancelled_at`: acknowledged meanwhile, or the state passed).
    Recipients come from the settings at send time; `message_id` is the webhook's idempotency key."""

    __tablename__ = "notification_outbox"
    __table_args__ = (
        Index(
            "ix_notification_outbox_pending",
            "id",
            sqlite_where=text("delivered_at IS NULL AND cancelled_at IS NULL"),
            postgresql_where=text("delivered_at IS NULL AND cancelled_at IS NULL"),
        ),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(36), unique=True)
    notification_id: Mapped[int] = mapped_column(
        ForeignKey("alarm_notifications.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[NotifyChannel] = mapped_column(str_enum(NotifyChannel, 16))
    escalation: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(500))

    notification: Mapped[AlarmNotification] = relationship()


for _notify_model in (AlarmNotification, NoticedAlarm, NotificationOutbox):  # after the listener loop
    for _prop in _notify_model.__mapper__.column_attrs:
        if any(isinstance(col.type, UTCDateTime) for col in _prop.columns):
            event.listen(_prop.class_attribute, "set", _aware_utc, retval=True)
