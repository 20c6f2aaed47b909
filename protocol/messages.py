"""Versioned message schemas: everything central and the site agents say to each other.

Messages are msgspec Structs encoded as JSON (readable with ``mosquitto_sub``). Each carries ``type``
(its tag) and ``v`` (its schema version). Unknown fields are refused rather than ignored: a message that does
not match the contract exactly is a fault to be seen, not guessed at. Times are timezone-aware, sent as UTC.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from protocol.topics import SLUG_PATTERN

SCHEMA_VERSION = 1

Slug = Annotated[str, Meta(pattern=SLUG_PATTERN)]
Ref = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
Name = Annotated[str, Meta(min_length=1, max_length=120)]
Text = Annotated[str, Meta(max_length=4000)]
ShortText = Annotated[str, Meta(max_length=300)]
UtcTime = Annotated[datetime, Meta(tz=True)]
Seq = Annotated[int, Meta(ge=0, le=2**63 - 1)]
Weekday = Annotated[int, Meta(ge=0, le=6)]
HexDigest = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
TokenId = Annotated[str, Meta(pattern=r"^[0-9a-f]{8,64}$")]
Nonce = Annotated[str, Meta(pattern=r"^[0-9a-f]{16,64}$")]
PinHash = Annotated[str, Meta(pattern=r"^\$argon2(id|i|d)\$[ -~]{1,200}$")]
Base64Url = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,100}$")]


class Message(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type", kw_only=True):
    """Base of every message; ``max_bytes`` bounds what a decoder accepts before parsing."""

    v: int = SCHEMA_VERSION
    max_bytes: ClassVar[int] = 64 * 1024


def _ordered(first: Any, last: Any, first_name: str, last_name: str) -> None:
    """Cross-field check; msgspec turns the ValueError into a validation error naming the message."""
    if not first < last:
        raise ValueError(f"{first_name} must be before {last_name}")


# --- shared vocabulary -------------------------------------------------------------------------------------


class Decision(StrEnum):
    GRANT = "grant"
    DENY = "deny"


class Reason(StrEnum):
    """Why a door did or did not open: a fixed list, so caretakers and statistics can say why."""

    # grants
    SCHEDULE = "schedule"
    ANY_TIME = "any_time"
    BOOKING = "booking"
    REMOTE_UNLOCK = "remote_unlock"
    EXIT_REQUEST = "exit_request"
    FIRE_RELEASE = "fire_release"
    # denials
    UNKNOWN_CREDENTIAL = "unknown_credential"
    CREDENTIAL_BLOCKED = "credential_blocked"
    CREDENTIAL_REVOKED = "credential_revoked"
    CREDENTIAL_EXPIRED = "credential_expired"
    CREDENTIAL_NOT_YET_VALID = "credential_not_yet_valid"
    PERSON_BLOCKED = "person_blocked"
    WRONG_PIN = "wrong_pin"
    PIN_TIMEOUT = "pin_timeout"
    PIN_LOCKED = "pin_locked"
    SITE_CLOSED = "site_closed"
    OUTSIDE_SCHEDULE = "outside_schedule"
    NO_ACCESS_TO_ZONE = "no_access_to_zone"
    NO_BOOKING = "no_booking"
    CONSENT_MISSING = "consent_missing"
    TOKEN_INVALID = "token_invalid"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_NOT_YET_VALID = "token_not_yet_valid"
    TOKEN_WRONG_SITE = "token_wrong_site"
    TOKEN_WRONG_DOOR = "token_wrong_door"
    TOKEN_REVOKED = "token_revoked"
    TOKEN_UNKNOWN_KEY = "token_unknown_key"
    PHONE_PROOF_MISSING = "phone_proof_missing"  # a phone-bound QR shown without the phone's signature
    PHONE_PROOF_STALE = "phone_proof_stale"  # the phone's signature is for another time (a screenshot)
    PHONE_PROOF_INVALID = "phone_proof_invalid"  # signed by another key or for another token
    CLOCK_UNSET = "clock_unset"
    LOCKDOWN = "lockdown"


class Method(StrEnum):
    CARD = "card"
    CARD_PIN = "card_pin"
    PHONE_QR = "phone_qr"
    PHONE_ONLINE = "phone_online"
    REMOTE = "remote"
    EXIT_BUTTON = "exit_button"
    KIOSK = "kiosk"


class PersonKind(StrEnum):
    RESIDENT = "resident"
    VOLUNTEER = "volunteer"
    ASSOCIATION_MEMBER = "association_member"
    STAFF = "staff"
    CARETAKER = "caretaker"


class DoorKind(StrEnum):
    ENTRANCE = "entrance"
    INTERNAL = "internal"
    ROOM = "room"


class LockType(StrEnum):
    FAIL_SECURE = "fail_secure"
    FAIL_SAFE = "fail_safe"


class HoursKind(StrEnum):
    MERAAPENT = "meraapent"
    STAFFED = "staffed"


class ExceptionKind(StrEnum):
    CLOSED = "closed"
    SPECIAL_HOURS = "special_hours"


# --- central → agent: site configuration -------------------------------------------------------------------


class Zone(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    slug: Slug
    name: Name


class Door(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    slug: Slug
    name: Name
    zone: Slug
    kind: DoorKind
    unlock_seconds: Annotated[int, Meta(ge=1, le=300)] = 5
    held_open_seconds: Annotated[int, Meta(ge=5, le=3600)] = 30
    lock_type: LockType = LockType.FAIL_SECURE


class Room(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    slug: Slug
    name: Name
    zone: Slug
    door: Slug | None = None
    capacity: Annotated[int, Meta(ge=0, le=10_000)] | None = None


class Hours(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One weekly opening interval in the site's local time (Europe/Oslo)."""

    weekday: Weekday
    opens: time
    closes: time
    kind: HoursKind = HoursKind.MERAAPENT

    def __post_init__(self) -> None:
        _ordered(self.opens, self.closes, "opens", "closes")


class HoursException(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    day: date
    kind: ExceptionKind
    opens: time | None = None
    closes: time | None = None
    note: ShortText = ""


class Interval(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    weekday: Weekday
    starts: time
    ends: time

    def __post_init__(self) -> None:
        _ordered(self.starts, self.ends, "starts", "ends")


class AccessGroup(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Which zones of this site a group may enter, and when.

    ``any_time`` groups (staff, caretakers) ignore opening hours; otherwise entry needs the site's meråpent
    hours and, when ``intervals`` is non-empty, one of those intervals too.
    """

    slug: Slug
    zones: list[Slug]
    any_time: bool = False
    intervals: list[Interval] = []


class SiteConfig(Message, tag="site_config", frozen=True):
    site: Slug
    name: Name
    revision: Seq
    issued_at: UtcTime
    timezone: Annotated[str, Meta(pattern=r"^[A-Za-z_]+(/[A-Za-z_+-]+){0,2}$")] = "Europe/Oslo"
    zones: list[Zone] = []
    doors: list[Door] = []
    rooms: list[Room] = []
    hours: list[Hours] = []
    exceptions: list[HoursException] = []
    closed_on_public_holidays: bool = True
    public_holidays: list[date] = []
    groups: list[AccessGroup] = []
    contact_phone: ShortText = ""
    caretaker_phone: ShortText = ""
    help_text_nb: Text = ""
    help_text_en: Text = ""
    # Central's check-in window (MERAAPENT_CHECKIN_*): the kiosk at the site judges check-ins by the same one.
    checkin_opens_minutes: Annotated[int, Meta(ge=0, le=24 * 60)] = 15
    checkin_closes_minutes: Annotated[int, Meta(ge=0, le=24 * 60)] = 15
    max_bytes: ClassVar[int] = 1024 * 1024


class PublicKey(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An Ed25519 token verification key as JWK members (kty OKP, crv Ed25519)."""

    kid: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,16}$")]
    x: Base64Url
    kty: Literal["OKP"] = "OKP"
    crv: Literal["Ed25519"] = "Ed25519"
    alg: Literal["EdDSA"] = "EdDSA"
    active: bool = True
    not_before: UtcTime | None = None
    not_after: UtcTime | None = None

    def __post_init__(self) -> None:
        if self.not_before is not None and self.not_after is not None:
            _ordered(self.not_before, self.not_after, "not_before", "not_after")


class SigningKeys(Message, tag="signing_keys", frozen=True):
    issuer: Slug
    issued_at: UtcTime
    keys: Annotated[list[PublicKey], Meta(max_length=4)]


class RevokedToken(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    token_id: TokenId
    expires_at: UtcTime


class Revocations(Message, tag="revocations", frozen=True):
    """Phone tokens revoked before they expire; the whole list, retained, replaced on every change."""

    site: Slug
    revision: Seq
    issued_at: UtcTime
    tokens: list[RevokedToken] = []
    max_bytes: ClassVar[int] = 4 * 1024 * 1024


# --- central → agent: credential replica -------------------------------------------------------------------


class CredentialStatus(StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"


class CredentialKind(StrEnum):
    CARD = "card"
    PHONE = "phone"


class Credential(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One credential as the agent needs it: never a raw card UID, never a plain PIN."""

    ref: Ref
    person: Ref
    person_kind: PersonKind
    kind: CredentialKind
    groups: list[Slug]
    status: CredentialStatus = CredentialStatus.ACTIVE
    uid_hash: HexDigest | None = None
    pin_hash: PinHash | None = None
    valid_from: UtcTime | None = None
    valid_until: UtcTime | None = None
    consent_missing: bool = False


class BookingStatus(StrEnum):
    CONFIRMED = "confirmed"
    CHECKED_IN = "checked_in"


CheckinCode = Annotated[str, Meta(pattern=r"^[0-9]{6}$")]


class Booking(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A live booking at the site. `code` is the six-digit check-in code typed at the kiosk; `shown_as` is
    what anyone at the torg may read about who booked it: the organisation, else the holder's first name."""

    ref: Ref
    room: Slug
    holders: list[Ref]
    starts_at: UtcTime
    ends_at: UtcTime
    status: BookingStatus = BookingStatus.CONFIRMED
    title: ShortText = ""
    code: CheckinCode | None = None
    shown_as: ShortText = ""

    def __post_init__(self) -> None:
        _ordered(self.starts_at, self.ends_at, "starts_at", "ends_at")


class ReplicaSnapshot(Message, tag="replica_snapshot", frozen=True):
    """The whole credential set for a site, consistent with delta ``seq``; applied atomically."""

    site: Slug
    seq: Seq
    generated_at: UtcTime
    credentials: list[Credential] = []
    bookings: list[Booking] = []
    max_bytes: ClassVar[int] = 128 * 1024 * 1024


class ReplicaDelta(Message, tag="replica_delta", frozen=True):
    """Changes since ``prev_seq``; an agent whose replica is not at ``prev_seq`` asks for a snapshot."""

    site: Slug
    seq: Seq
    prev_seq: Seq
    generated_at: UtcTime
    upsert: list[Credential] = []
    remove: list[Ref] = []
    upsert_bookings: list[Booking] = []
    remove_bookings: list[Ref] = []
    max_bytes: ClassVar[int] = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        _ordered(self.prev_seq, self.seq, "prev_seq", "seq")


class ReplicaRequest(Message, tag="replica_request", frozen=True):
    site: Slug
    agent: Ref
    have_seq: Seq | None = None
    reason: ShortText = ""


# --- central → agent: commands -----------------------------------------------------------------------------


class Action(StrEnum):
    UNLOCK = "unlock"
    LOCK_DOWN = "lock_down"
    RELEASE = "release"
    NORMAL = "normal"
    RESYNC = "resync"
    OPEN_FOR = "open_for"  # a person asked from their phone: the agent decides by its own rules


class Command(Message, tag="command", frozen=True):
    """A caretaker's command; the nonce and expiry let the agent refuse a replayed or stale one.

    ``open_for`` (the Open button on a resident's phone page) names the ``door`` and the ``holder`` (a person
    ref as in the replica); the agent opens only if that person may open that door now by its own rules.
    """

    command_id: uuid.UUID
    site: Slug
    action: Action
    nonce: Nonce
    issued_at: UtcTime
    expires_at: UtcTime
    issued_by: Name
    reason: ShortText
    door: Slug | None = None
    duration_seconds: Annotated[int, Meta(ge=1, le=24 * 3600)] | None = None
    holder: Ref | None = None

    def __post_init__(self) -> None:
        _ordered(self.issued_at, self.expires_at, "issued_at", "expires_at")
        if self.action is Action.OPEN_FOR and (self.door is None or self.holder is None):
            raise ValueError("open_for needs the door and the holder")


class CommandOutcome(StrEnum):
    DONE = "done"
    REFUSED = "refused"


class CommandResult(Message, tag="command_result", frozen=True):
    command_id: uuid.UUID
    site: Slug
    outcome: CommandOutcome
    at: UtcTime
    reason: ShortText = ""
    deny_reason: Reason | None = None  # why an open_for was refused by the door's rules


# --- agent → central: journaled events ---------------------------------------------------------------------


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlarmKind(StrEnum):
    FORCED_OPEN = "forced_open"
    HELD_OPEN = "held_open"
    TAMPER = "tamper"
    FIRE = "fire"
    PIN_BRUTE_FORCE = "pin_brute_force"
    TAILGATING = "tailgating"
    LOCK_FAULT = "lock_fault"
    READER_OFFLINE = "reader_offline"
    DISK_LOW = "disk_low"
    CLOCK_UNSET = "clock_unset"
    INTRUDER = "intruder"


class AccessEvent(Message, tag="access_event", frozen=True):
    """A decision at a door; journaled by the agent before it is published, acknowledged by central."""

    event_id: uuid.UUID
    site: Slug
    agent: Ref
    seq: Seq
    device_time: UtcTime
    door: Slug
    decision: Decision
    reason: Reason
    method: Method
    credential_ref: Ref | None = None
    person_ref: Ref | None = None
    booking_ref: Ref | None = None


class AlarmEvent(Message, tag="alarm", frozen=True):
    event_id: uuid.UUID
    site: Slug
    agent: Ref
    seq: Seq
    device_time: UtcTime
    kind: AlarmKind
    severity: Severity
    raised: bool = True
    door: Slug | None = None
    detail: ShortText = ""


class SystemEvent(Message, tag="system_event", frozen=True):
    """Anything else worth keeping: agent started, replica resynced, command refused, passage counted."""

    event_id: uuid.UUID
    site: Slug
    agent: Ref
    seq: Seq
    device_time: UtcTime
    kind: Slug
    door: Slug | None = None
    detail: ShortText = ""


AgentEvent = AccessEvent | AlarmEvent | SystemEvent

EnrolmentCode = Annotated[str, Meta(pattern=r"^[0-9]{8}$")]


class CardEnrolment(Message, tag="card_enrolment", frozen=True):
    """A card tapped at ``door`` right after its holder typed the one-time code their phone shows.

    Journaled and acknowledged like an access event; central registers the card for the code's person if
    the code is good. The code is a short-lived secret: never log this message.
    """

    event_id: uuid.UUID
    site: Slug
    agent: Ref
    seq: Seq
    device_time: UtcTime
    door: Slug
    code: EnrolmentCode
    uid_hash: HexDigest


class CheckInVia(StrEnum):
    """How a booking was checked in at the site's kiosk."""

    CARD = "card"  # the holder's card at the kiosk reader
    QR = "qr"  # the holder's phone QR code at the kiosk scanner
    CODE = "code"  # the booking's six-digit code typed on the screen
    KIOSK = "kiosk"  # any other way the kiosk found the booking


class BookingCheckIn(Message, tag="booking_check_in", frozen=True):
    """A booking checked in at the kiosk, decided by the agent from its replica (also while central was
    unreachable). Central checks it in as of ``device_time``; a refusal is kept for the caretaker and the
    next replica delta corrects the agent."""

    event_id: uuid.UUID
    site: Slug
    agent: Ref
    seq: Seq
    device_time: UtcTime
    booking: Ref
    method: CheckInVia
    person: Ref | None = None  # who identified themselves (None for a typed booking code)


class BookingChangeKind(StrEnum):
    EXTEND = "extend"
    END = "end"


class BookingChange(Message, tag="booking_change", frozen=True):
    """A booking extended or ended early at the kiosk; ``ends_at`` is its new end (for ``end``, the moment
    it was ended). Applied by central like the same change made on the phone page."""

    event_id: uuid.UUID
    site: Slug
    agent: Ref
    seq: Seq
    device_time: UtcTime
    booking: Ref
    change: BookingChangeKind
    ends_at: UtcTime
    person: Ref | None = None


KioskEvent = BookingCheckIn | BookingChange
JournaledEvent = AgentEvent | CardEnrolment | KioskEvent  # what goes through the agent's journal and outbox


class Ack(Message, tag="ack", frozen=True):
    """Central committed these events; the agent may drop them from its journal."""

    site: Slug
    event_ids: Annotated[list[uuid.UUID], Meta(max_length=10_000)]
    max_bytes: ClassVar[int] = 512 * 1024


# --- agent → central: retained state -----------------------------------------------------------------------


class DoorStateName(StrEnum):
    LOCKED = "locked"
    UNLOCKED = "unlocked"
    OPEN = "open"
    HELD_OPEN = "held_open"
    FORCED_OPEN = "forced_open"
    RELEASED = "released"
    LOCKED_DOWN = "locked_down"
    FAULT = "fault"


class DoorState(Message, tag="door_state", frozen=True):
    site: Slug
    door: Slug
    state: DoorStateName
    since: UtcTime
    device_time: UtcTime


class AgentStatus(Message, tag="agent_status", frozen=True):
    """Retained; the Last Will is the same message with ``online`` false."""

    site: Slug
    agent: Ref
    online: bool
    at: UtcTime
    software_version: ShortText = ""
    replica_seq: Seq | None = None
    config_revision: Seq | None = None
    outbox_pending: Annotated[int, Meta(ge=0)] = 0
    clock_ok: bool = True
