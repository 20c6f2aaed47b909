"""The contract between the kiosk and its site agent: requests and replies over the agent's local socket.

The kiosk runs on the torg's own Pi and talks only to the agent there, never to central, so check-in works
while central is unreachable: the agent decides from its replica, records the check-in as a journaled event
(central applies it when it hears of it) and answers at once.

Transport: a Unix stream socket owned by the agent (path in the agent's site.toml, [kiosk] socket; file
permissions decide who may connect). Framing: one JSON object per line (UTF-8, "\\n"-terminated), each
request answered by exactly one reply line, in order. `encode` and the two decoders below are the only way
either side turns bytes into messages; anything malformed is a `KioskProtocolError` with a one-line reason.

Card UIDs travel raw from the kiosk's reader to the agent (hex), because only the agent holds the key that
turns them into the keyed hash the replica knows; neither side logs or stores them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, TypeVar

import msgspec
from msgspec import Meta

from protocol.messages import BookingStatus, Name, Ref, ShortText, Slug, Text, UtcTime

MAX_LINE_BYTES = 256 * 1024
T = TypeVar("T")
CardUid = Annotated[str, Meta(pattern=r"^[0-9a-f]{8,20}$")]  # 4–10 bytes as lowercase hex
BookingCode = Annotated[str, Meta(pattern=r"^[0-9]{6}$")]
SessionId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{16,64}$")]
Minutes = Annotated[int, Meta(ge=15, le=240)]


class KioskProtocolError(ValueError):
    """A line that is not a valid request or reply; the message says why in one line."""


# --- requests (kiosk → agent) -------------------------------------------------------------------------------


class KioskRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type"):
    """Base of every request."""


class TodayRequest(KioskRequest, tag="today", frozen=True):
    """What the home screen shows: the site, whether and until when it is open, today's bookings."""


class CheckInMethod(StrEnum):
    CARD = "card"
    QR = "qr"
    CODE = "code"


_FIELD_OF = {CheckInMethod.CARD: "uid", CheckInMethod.QR: "text", CheckInMethod.CODE: "code"}


class CheckInRequest(KioskRequest, tag="check_in", frozen=True):
    """Check in the booking of whoever identifies themselves: a card at the kiosk reader (`uid`), a phone
    QR code (`text`, as the scanner typed it) or the booking's six-digit code typed on the screen (`code`)."""

    method: CheckInMethod
    uid: CardUid | None = None
    text: Annotated[str, Meta(max_length=2048)] | None = None
    code: BookingCode | None = None

    def __post_init__(self) -> None:
        wanted = _FIELD_OF[self.method]
        given = [name for name in ("uid", "text", "code") if getattr(self, name) is not None]
        if given != [wanted]:
            raise ValueError(f"a {self.method.value} check-in carries {wanted} and nothing else")


class ExtendRequest(KioskRequest, tag="extend", frozen=True):
    """Extend the booking checked in during this kiosk session (the session comes from CheckInReply)."""

    session: SessionId
    minutes: Minutes


class EndRequest(KioskRequest, tag="end", frozen=True):
    """End the booking checked in during this kiosk session now."""

    session: SessionId


Request = TodayRequest | CheckInRequest | ExtendRequest | EndRequest


# --- replies (agent → kiosk) --------------------------------------------------------------------------------


class KioskReply(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="type"):
    """Base of every reply."""


class BookingToday(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A booking as anyone at the torg may see it: who is the organisation or the holder's first name only."""

    starts_at: UtcTime
    ends_at: UtcTime
    shown_as: ShortText
    title: ShortText = ""
    status: BookingStatus = BookingStatus.CONFIRMED


class RoomToday(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    slug: Slug
    name: Name
    bookings: list[BookingToday] = []


class TodayReply(KioskReply, tag="today", frozen=True):
    site: Slug
    name: Name
    timezone: str
    now: UtcTime
    open: bool
    closes_at: UtcTime | None = None  # while open: when the meråpent hours end today
    opens_at: UtcTime | None = None  # while closed: when they next begin
    closing_in_minutes: int | None = None  # set from the agent's closing warnings (15, then 5 minutes)
    rooms: list[RoomToday] = []
    contact_phone: ShortText = ""
    caretaker_phone: ShortText = ""
    help_text_nb: Text = ""
    help_text_en: Text = ""
    central_online: bool = True


class CheckInOutcome(StrEnum):
    CHECKED_IN = "checked_in"
    ALREADY_CHECKED_IN = "already_checked_in"
    TOO_EARLY = "too_early"  # opens_at says when check-in opens
    TOO_LATE = "too_late"  # the check-in window closed (the booking was or will be released)
    NO_BOOKING = "no_booking"  # known person, no booking here today
    UNKNOWN = "unknown"  # card, code or QR code not recognised
    REFUSED = "refused"  # blocked card, invalid or expired QR code, ...: `reason` says which
    TOO_MANY_TRIES = "too_many_tries"  # too many wrong booking codes: typed codes rest for a few minutes
    NOT_READY = "not_ready"  # the agent has no configuration yet


class BookingCard(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The booking checked in (or found), with the way to it: the room's zone and the door that opens."""

    ref: Ref
    room: Slug
    room_name: Name
    starts_at: UtcTime
    ends_at: UtcTime
    zone_name: Name
    door: Slug | None = None
    door_name: Name | None = None
    title: ShortText = ""


class CheckInReply(KioskReply, tag="check_in", frozen=True):
    outcome: CheckInOutcome
    reason: str = ""  # a protocol.messages.Reason value when outcome is refused
    booking: BookingCard | None = None
    opens_at: UtcTime | None = None  # check-in window
    closes_at: UtcTime | None = None
    session: SessionId | None = None  # for extend / end, valid for a couple of minutes
    extend_minutes: list[int] = []  # the extensions the room's next booking leaves room for
    can_end: bool = False


class ChangeOutcome(StrEnum):
    ACCEPTED = "accepted"  # done here; central applies it when it hears of it
    ROOM_TAKEN = "room_taken"  # `until` says how far it could be extended
    NOT_ALLOWED = "not_allowed"  # e.g. ending a booking that has not started
    SESSION_EXPIRED = "session_expired"


class ChangeReply(KioskReply, tag="change", frozen=True):
    outcome: ChangeOutcome
    ends_at: UtcTime | None = None
    until: UtcTime | None = None


class ErrorReply(KioskReply, tag="error", frozen=True):
    """The request could not be understood or served; `message` is one line for the log, not for people."""

    message: ShortText


Reply = TodayReply | CheckInReply | ChangeReply | ErrorReply


# --- framing ------------------------------------------------------------------------------------------------

_encoder = msgspec.json.Encoder()
_requests: msgspec.json.Decoder[Request] = msgspec.json.Decoder(Request)
_replies: msgspec.json.Decoder[Reply] = msgspec.json.Decoder(Reply)


def encode(message: KioskRequest | KioskReply) -> bytes:
    """One line: the message as JSON plus the newline."""
    return _encoder.encode(message) + b"\n"


def decode_request(line: bytes) -> Request:
    _check_size(line, "request")
    return _decode(_requests, line, "request")


def decode_reply(line: bytes) -> Reply:
    _check_size(line, "reply")
    return _decode(_replies, line, "reply")


def _decode(decoder: msgspec.json.Decoder[T], line: bytes, what: str) -> T:
    """Nothing but KioskProtocolError escapes: msgspec raises UnicodeDecodeError for a string that is not
    UTF-8, and one such line must not end the agent's kiosk server."""
    try:
        return decoder.decode(line.rstrip(b"\r\n"))
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise KioskProtocolError(f"not a valid kiosk {what}: {exc}") from None
    except Exception as exc:
        raise KioskProtocolError(f"not a valid kiosk {what}: {type(exc).__name__}") from None


def _check_size(line: bytes, what: str) -> None:
    if len(line) > MAX_LINE_BYTES:
        raise KioskProtocolError(f"a kiosk {what} has {MAX_LINE_BYTES} bytes at most, got {len(line)}")


__all__ = [
    "BookingCard",
    "BookingToday",
    "ChangeOutcome",
    "ChangeReply",
    "CheckInMethod",
    "CheckInOutcome",
    "CheckInReply",
    "CheckInRequest",
    "EndRequest",
    "ErrorReply",
    "ExtendRequest",
    "KioskProtocolError",
    "Reply",
    "Request",
    "RoomToday",
    "TodayReply",
    "TodayRequest",
    "decode_reply",
    "decode_request",
    "encode",
]
