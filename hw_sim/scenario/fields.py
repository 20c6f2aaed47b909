"""One mapping of a scenario file with where it is, read key by key with one-line errors (the parser's
typed getters: text, slug, choice, flag, count, slugs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hw_sim.scenario.model import ScenarioError
from hw_sim.scenario.vocabulary import MAX_LISTED
from hw_sim.scenario.wording import _kind, _shown, _suggest
from protocol.topics import is_slug

if TYPE_CHECKING:
    from hw_sim.scenario.parser import _Parser


class _Fields:
    """One mapping of the file and where it is, for messages; each key read is ticked off."""

    def __init__(self, parser: _Parser, where: str, data: object) -> None:
        if not isinstance(data, dict):
            raise parser.fail(where, f"expected a mapping of keys, got {_kind(data)}")
        self.parser = parser
        self.where = where
        self.data: dict[Any, Any] = data

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, default: object = None) -> Any:
        return self.data.get(key, default)

    def fail(self, what: str, key: str | None = None) -> ScenarioError:
        return self.parser.fail(self.where, f"{key}: {what}" if key else what)

    def only(self, allowed: Sequence[str], known: Sequence[str] = ()) -> None:
        """Refuse keys not in `allowed`, suggesting the closest of `allowed` and `known`."""
        for key in self.data:
            if key not in allowed:
                hint = _suggest(str(key), [*allowed, *known])
                raise self.fail(f"unknown key {key!r}{hint} (allowed here: {', '.join(allowed)})")

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str:
        value = self.data.get(key)
        if value is None:
            if required or default is None:
                raise self.fail("is required", key)
            return default
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.fail(f"expected text, got {_kind(value)}", key)
        return str(value).strip()

    def slug(self, key: str, default: str | None = None, *, required: bool = False) -> str:
        value = self.text(key, default, required=required)
        if not is_slug(value):
            raise self.fail(f"{value!r} is not a slug (lowercase letters, digits and '-')", key)
        return value

    def choice(self, key: str, options: Sequence[str], default: str | None = None) -> str:
        value = self.data.get(key)
        if value is None and default is not None:
            return default
        if isinstance(value, bool):
            value = str(value).lower()
        if not isinstance(value, str) or value.strip() not in options:
            hint = _suggest(str(value), options)
            if hint and len(options) > MAX_LISTED:
                raise self.fail(f"{_shown(value)} is not a known {key}{hint}", key)
            raise self.fail(f"{_shown(value)} is not one of {', '.join(options)}{hint}", key)
        return value.strip()

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(f"expected true or false, got {_shown(value)}", key)
        return value

    def count(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(f"expected a whole number 0 or more, got {_shown(value)}", key)
        return value

    def slugs(self, key: str) -> tuple[str, ...] | None:
        value = self.data.get(key)
        if value is None:
            return None
        items = value if isinstance(value, list) else [value]
        for item in items:
            if not isinstance(item, str) or not is_slug(item):
                raise self.fail(f"{_shown(item)} is not a slug (lowercase letters, digits and '-')", key)
        return tuple(items)
