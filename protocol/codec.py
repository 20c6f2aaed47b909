"""Encoding and strict decoding of messages.

``decode`` is the only way a received payload becomes a message. It refuses oversized, malformed,
unknown-type, unknown-version and schema-violating input with a ``ProtocolError`` carrying a short machine
reason and a human message, and it never raises anything else: a bad message from one agent must not take a
gateway down.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from typing import Any, TypeVar

import msgspec

from protocol import messages as m
from protocol.topics import Channel

T = TypeVar("T", bound=m.Message)

SUPPORTED_VERSIONS = frozenset({m.SCHEMA_VERSION})

CHANNEL_MESSAGES: dict[Channel, tuple[type[m.Message], ...]] = {
    Channel.CONFIG: (m.SiteConfig,),
    Channel.KEYS: (m.SigningKeys,),
    Channel.REVOCATIONS: (m.Revocations,),
    Channel.REPLICA_SNAPSHOT: (m.ReplicaSnapshot,),
    Channel.REPLICA_DELTA: (m.ReplicaDelta,),
    Channel.REPLICA_REQUEST: (m.ReplicaRequest,),
    Channel.COMMAND: (m.Command,),
    Channel.COMMAND_RESULT: (m.CommandResult,),
    Channel.EVENT: (
        m.AccessEvent,
        m.AlarmEvent,
        m.SystemEvent,
        m.CardEnrolment,
        m.BookingCheckIn,
        m.BookingChange,
    ),
    Channel.ACK: (m.Ack,),
    Channel.DOOR_STATE: (m.DoorState,),
    Channel.STATUS: (m.AgentStatus,),
}


class Refusal(StrEnum):
    TOO_LARGE = "too_large"
    NOT_JSON = "not_json"
    NO_TYPE = "no_type"
    UNKNOWN_TYPE = "unknown_type"
    WRONG_TYPE = "wrong_type"
    UNSUPPORTED_VERSION = "unsupported_version"
    INVALID = "invalid"


class ProtocolError(ValueError):
    """A payload refused by the contract; ``reason`` is for counters, ``str()`` for the log."""

    def __init__(self, reason: Refusal, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason


class _Header(msgspec.Struct):
    type: str | None = None
    v: int | None = None


_header_decoder = msgspec.json.Decoder(_Header)
_encoder = msgspec.json.Encoder()
_ALL_TYPES: dict[str, type[m.Message]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for types in CHANNEL_MESSAGES.values()
    for cls in types
}


def tag_of(cls: type[m.Message]) -> str:
    tag = cls.__struct_config__.tag
    assert isinstance(tag, str)
    return tag


def encode(message: m.Message) -> bytes:
    return _encoder.encode(message)


@cache
def _decoder(cls: type[m.Message]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(cls)


def decode(payload: bytes | bytearray | memoryview, expected: type[T] | tuple[type[T], ...]) -> T:
    """Decode ``payload`` as one of the ``expected`` message types, or raise ``ProtocolError``."""
    choices = expected if isinstance(expected, tuple) else (expected,)
    data = bytes(payload)
    limit = max(cls.max_bytes for cls in choices)
    if len(data) > limit:
        raise ProtocolError(Refusal.TOO_LARGE, f"{len(data)} bytes, at most {limit} accepted")
    cls = _pick_type(data, choices)
    try:
        result: T = _decoder(cls).decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ProtocolError(Refusal.INVALID, f"{tag_of(cls)}: {_short(str(exc))}") from None
    except Exception as exc:  # the contract: nothing but ProtocolError escapes
        raise ProtocolError(Refusal.INVALID, f"{tag_of(cls)}: {type(exc).__name__}") from None
    return result


def decode_for_channel(payload: bytes | bytearray | memoryview, channel: Channel) -> m.Message:
    """Decode a payload received on ``channel`` as one of the message types that channel carries."""
    return decode(payload, CHANNEL_MESSAGES[channel])


def _pick_type(data: bytes, choices: tuple[type[T], ...]) -> type[T]:
    try:
        header = _header_decoder.decode(data)
    except msgspec.ValidationError:
        raise ProtocolError(Refusal.NO_TYPE, "not a JSON object with string 'type' and integer 'v'") from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(Refusal.NOT_JSON, _short(str(exc))) from None
    except Exception as exc:  # e.g. recursion depth on hostile nesting
        raise ProtocolError(Refusal.NOT_JSON, type(exc).__name__) from None
    if header.type is None:
        raise ProtocolError(Refusal.NO_TYPE, "message has no 'type'")
    wanted = {tag_of(cls): cls for cls in choices}
    if header.type not in wanted:
        if header.type in _ALL_TYPES:
            names = ", ".join(sorted(wanted))
            raise ProtocolError(Refusal.WRONG_TYPE, f"got {header.type!r}, expected {names}")
        raise ProtocolError(Refusal.UNKNOWN_TYPE, f"unknown message type {header.type[:40]!r}")
    if header.v not in SUPPORTED_VERSIONS:
        raise ProtocolError(
            Refusal.UNSUPPORTED_VERSION,
            f"{header.type} schema version {header.v} is not supported "
            f"(supported: {sorted(SUPPORTED_VERSIONS)})",
        )
    return wanted[header.type]


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
