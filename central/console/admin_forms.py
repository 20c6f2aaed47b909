"""What the administration pages share: errors in words next to the field, paging, form values, and the
service call that either succeeds or leaves the database exactly as it was.

The pages never validate on their own: a form is checked by the API's own input models (so a page accepts
exactly what the API accepts) and by the services, and a refusal becomes a message beside the field it is
about. Common refusals have their own sentence in the catalogue; the rest are the service's plain words in
a sentence ("Kunne ikke lagre: ...").
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

from fastapi import Form
from pydantic import BaseModel, StringConstraints, ValidationError
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from central.api.problems import field_errors
from central.api.routers.common import (
    EMAIL_PATTERN,
    LINE_PATTERN,
    MAX_ID,
    PHONE_PATTERN,
    PIN_PATTERN,
    TEXT_PATTERN,
    UID_PATTERN,
    Input,
)
from central.console.pages import OSLO
from central.models import CrossSiteError
from central.schedules import ScheduleError
from central.security import CardUidError, PinFormatError
from central.services.errors import NotFoundError, ServiceError
from protocol.topics import SLUG_PATTERN

PAGE_SIZE = 25
M = TypeVar("M", bound=BaseModel)

# Form fields are taken as they come (no max_length here: FastAPI would answer a too-long value with JSON);
# the API's input models bound every value and the page says what is wrong beside the field.
FormText = Annotated[str, Form()]
FormList = Annotated[list[str] | None, Form()]

# Everything a service or the schedule logic refuses with a message meant for people.
REFUSALS = (ServiceError, ScheduleError, PinFormatError, CardUidError, CrossSiteError)

_PATTERN_KEYS = {
    PIN_PATTERN: "console.admin.error.pin_format",
    UID_PATTERN: "console.admin.error.uid_format",
    EMAIL_PATTERN: "console.admin.error.email_format",
    PHONE_PATTERN: "console.admin.error.phone_format",
    SLUG_PATTERN: "console.admin.error.slug_format",
    LINE_PATTERN: "console.admin.error.one_line",
    TEXT_PATTERN: "console.admin.error.one_line",
}


Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300, pattern=LINE_PATTERN)
]


class ReasonIn(Input):
    """Why a caretaker blocks or unblocks someone, or cancels a booking: kept in the audit trail."""

    reason: Reason


@dataclass(frozen=True)
class Message:
    """A catalogue key with its values: translated in the template, in the page's language."""

    key: str
    values: Mapping[str, object] = field(default_factory=dict)


Errors = dict[str, Message]


class FormError(Exception):
    """A form cannot be saved: what is wrong, by the name of the field (unique within the page)."""

    def __init__(self, errors: Errors) -> None:
        super().__init__(", ".join(errors))
        self.errors = errors


def form_error(name: str, key: str, **values: object) -> FormError:
    return FormError({name: Message(key, values)})


def not_saved(name: str, exc: Exception) -> FormError:
    return form_error(name, "console.admin.error.not_saved", detail=str(exc))


@contextmanager
def saving(session: Session, name: str, fields: Mapping[str, str] | None = None) -> Iterator[None]:
    """Run service changes; if one is refused, roll back all of them and raise FormError for the form field
    the service named (mapped through `fields`), else for `name`."""
    try:
        yield
    except REFUSALS as exc:
        session.rollback()
        named = getattr(exc, "field", None) or ""
        raise not_saved((fields or {}).get(named, name), exc) from exc


@contextmanager
def found() -> Iterator[None]:
    """Loading what the URL names: a NotFoundError is the console's 'page not found'."""
    try:
        yield
    except NotFoundError:
        raise HTTPException(404) from None


def path_id(text: str) -> int:
    """An id from the URL; anything else is 'page not found' (never a validation error as JSON)."""
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_ID:
        raise HTTPException(404)
    return int(text)


def validated(model: type[M], data: Mapping[str, Any], fields: Mapping[str, str] | None = None) -> M:
    """`data` checked by an API input model; FormError with a message per form field if it does not fit."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        errors: Errors = {}
        for raw, plain in zip(exc.errors(), field_errors(exc.errors()), strict=True):
            name = (fields or {}).get(plain.field, plain.field)
            errors.setdefault(name, message_of(raw, plain.message))
        raise FormError(errors) from None


def message_of(error: Mapping[str, Any], plain: str) -> Message:
    """A pydantic error in the catalogue's words where there is a sentence for it, else the API's."""
    kind = str(error.get("type", ""))
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    if kind == "missing" or (kind == "string_too_short" and ctx.get("min_length") == 1):
        return Message("console.admin.error.required")
    if kind == "string_too_long":
        return Message("console.admin.error.too_long", {"max": ctx.get("max_length")})
    if kind == "string_pattern_mismatch" and str(ctx.get("pattern")) in _PATTERN_KEYS:
        return Message(_PATTERN_KEYS[str(ctx["pattern"])])
    if kind in {"int_parsing", "int_type", "int_from_float"}:
        return Message("console.admin.error.whole_number")
    if kind in {"greater_than_equal", "less_than_equal"}:
        return Message("console.admin.error.out_of_range")
    if kind in {"time_parsing", "time_type"}:
        return Message("console.admin.error.time_format")
    if kind in {"date_parsing", "date_type", "date_from_datetime_parsing"}:
        return Message("console.admin.error.date_format")
    return Message("console.admin.error.not_saved", {"detail": plain})


def blank_to_none(data: Mapping[str, str]) -> dict[str, str | None]:
    """Form fields as a model wants them: an empty optional field is 'not given', not an empty string."""
    return {k: (v.strip() or None) for k, v in data.items()}


# --- paging -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pager:
    """Page `page` (from 1) of `total` rows, `size` a page."""

    page: int
    total: int
    size: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def page_number(text: str) -> int:
    """The page asked for in the query (?side=N); anything odd is the first page."""
    return int(text) if text.isascii() and text.isdigit() and 0 < len(text) < 7 and int(text) > 0 else 1


def offset_of(page: int, size: int = PAGE_SIZE) -> int:
    return (page - 1) * size


def search_text(text: str, limit: int = 200) -> str | None:
    """A search box's text: trimmed, bounded, control characters dropped; None when empty."""
    cleaned = "".join(ch for ch in text if ch.isprintable())[:limit].strip()
    return cleaned or None


# --- dates and times --------------------------------------------------------------------------------------


def parse_day(text: str, name: str) -> date | None:
    """A date field (YYYY-MM-DD from <input type=date>); empty is None."""
    text = text.strip()
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise form_error(name, "console.admin.error.date_format") from None
    if not date(2000, 1, 1) <= day <= date(2199, 12, 31):
        raise form_error(name, "console.admin.error.date_format")
    return day


def parse_time(text: str, name: str) -> time:
    """A time of day (HH:MM from <input type=time>)."""
    try:
        value = time.fromisoformat(text.strip())
    except ValueError:
        raise form_error(name, "console.admin.error.time_format") from None
    if value.tzinfo is not None:
        raise form_error(name, "console.admin.error.time_format")
    return value


def day_start(day: date, zone: ZoneInfo = OSLO) -> datetime:
    """Midnight at the start of a local day, in UTC."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def day_end(day: date, zone: ZoneInfo = OSLO) -> datetime:
    """Midnight at the end of a local day (the start of the next), in UTC: 'valid to and with this day'."""
    return day_start(day + timedelta(days=1), zone)


def local_today(now: datetime, zone: ZoneInfo = OSLO) -> date:
    return now.astimezone(zone).date()


# --- weekly tables (opening hours, group schedules) -------------------------------------------------------


@dataclass(frozen=True)
class WeekRow:
    """One row of a weekly table as typed: its position (for errors), weekday, start, end and kind."""

    index: int
    weekday: int
    starts: time
    ends: time
    kind: str


def week_rows(
    prefix: str,
    weekdays: Sequence[str],
    starts: Sequence[str],
    ends: Sequence[str],
    kinds: Sequence[str] | None = None,
    remove: Sequence[str] = (),
) -> list[WeekRow]:
    """The rows of a weekly table form; rows ticked 'remove' and rows with both times empty are left out.

    Field names are `<prefix>-<what>-<row>` so a message lands beside the cell it is about.
    """
    if not len(weekdays) == len(starts) == len(ends) or (kinds is not None and len(kinds) != len(weekdays)):
        raise form_error(f"{prefix}-form", "console.admin.error.stale_form")
    rows: list[WeekRow] = []
    errors: Errors = {}
    for index, (weekday, start, end) in enumerate(zip(weekdays, starts, ends, strict=True)):
        if str(index) in remove or not (start.strip() or end.strip()):
            continue
        try:
            day = int(weekday) if weekday.isascii() and weekday.isdigit() and len(weekday) < 3 else -1
            if not 0 <= day <= 6:
                raise form_error(f"{prefix}-weekday-{index}", "console.admin.error.out_of_range")
            opens = parse_time(start, f"{prefix}-starts-{index}")
            closes = parse_time(end, f"{prefix}-ends-{index}")
        except FormError as error:
            errors.update(error.errors)
            continue
        rows.append(WeekRow(index, day, opens, closes, kinds[index] if kinds is not None else ""))
    if errors:
        raise FormError(errors)
    return rows
