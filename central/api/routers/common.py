"""Field types shared by the API schemas: slugs, names, ids, UTC datetimes, local times.

Every input is bounded so nothing a caller sends can reach the database as a value it refuses (PostgreSQL
rejects NUL characters, over-long strings and integers beyond 32 bits; SQLite would silently store them).
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Annotated, Any, ClassVar, Self

from fastapi import Path
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from protocol.topics import SLUG_PATTERN

MAX_ID = 2**31 - 1
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)

# One line of printable text (no control characters); multi-line text may also hold tab and newlines.
LINE_PATTERN = r"^[^\x00-\x1f\x7f]*$"
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
PHONE_PATTERN = r"^\+?[0-9 ()-]+$"
EMAIL_PATTERN = r"^[^@\s\x00-\x1f]+@[^@\s\x00-\x1f]+$"
UID_PATTERN = r"^[0-9A-Fa-f]{2}([: -]?[0-9A-Fa-f]{2}){3,15}$"
PIN_PATTERN = r"^[0-9]{4,8}$"
TOKEN_ID_PATTERN = r"^[0-9a-f]{8,64}$"  # noqa: S105 (a format, not a secret)

# What each format means, in words: a regular expression means nothing to the person reading the error.
PATTERN_HINTS: dict[str, str] = {
    SLUG_PATTERN: "must be a slug: lowercase letters a-z, digits and '-', at most 40, e.g. 'holmen'",
    LINE_PATTERN: "must be one line of text without control characters",
    TEXT_PATTERN: "must be text without control characters",
    PHONE_PATTERN: "must be a phone number: digits, spaces, '-', '(' ')' and an optional leading '+'",
    EMAIL_PATTERN: "must be an e-mail address like name@example.no",
    UID_PATTERN: "must be the card UID in hex, 4 to 16 bytes, e.g. 04A1B2C3D4E5F6",
    PIN_PATTERN: "must be 4 to 8 digits",
    TOKEN_ID_PATTERN: "must be a token id: 8 to 64 lowercase hex digits",
}

Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN, max_length=40)]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120, pattern=LINE_PATTERN)
]
Line = Annotated[str, StringConstraints(strip_whitespace=True, max_length=300, pattern=LINE_PATTERN)]
Text = Annotated[str, StringConstraints(max_length=4000, pattern=TEXT_PATTERN)]
Phone = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=3, max_length=32, pattern=PHONE_PATTERN)
]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254, pattern=EMAIL_PATTERN),
]
Ref = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=LINE_PATTERN)
]
SearchText = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=LINE_PATTERN)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
PathSlug = Annotated[str, Path(pattern=SLUG_PATTERN, max_length=40)]


def _utc(value: datetime) -> datetime:
    if not EARLIEST <= value <= LATEST:
        raise ValueError("must be between 2000-01-01 and 2200-01-01")
    return value.astimezone(UTC)


def _local(value: time) -> time:
    if value.tzinfo is not None:
        raise ValueError("must be a local time of day without a timezone, e.g. 07:30")
    return value


UtcDateTime = Annotated[AwareDatetime, AfterValidator(_utc)]
LocalTime = Annotated[time, AfterValidator(_local)]


class Input(BaseModel):
    """Base of request bodies: unknown fields are refused, so a typo is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Output(BaseModel):
    """Base of response bodies, built from ORM rows."""

    model_config = ConfigDict(from_attributes=True)


def set_fields(body: BaseModel) -> dict[str, Any]:
    """The fields a PATCH body actually carries (omitted ones stay as they are)."""
    return body.model_dump(exclude_unset=True)


class Patch(Input):
    """Base of PATCH bodies: omitted fields stay; `null` is accepted only for fields listed in `nullable`."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _no_null(self) -> Self:
        for name in sorted(self.model_fields_set):
            if getattr(self, name) is None and name not in self.nullable:
                raise ValueError(f"{name} must not be null (leave it out to keep the current value)")
        return self
