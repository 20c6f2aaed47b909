"""The one translation catalogue: every text a resident or caretaker reads, Norwegian bokmål first, English.

Texts live in protocol/catalogue.toml as ``[key]`` tables with ``nb`` and ``en`` strings, so a translator
edits one file and a test proves every key has both languages and every placeholder matches. It sits in
protocol/ because the phone pages (central), the kiosk and the agent's reader displays all show the same words
for the same things (a deny reason reads the same at the door, on the phone and at the kiosk).

`text(key, lang, **values)` formats with str.format; an unknown key is a programming error (KeyError), an
unknown language falls back to bokmål.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import resources
from typing import Final

LANGUAGES: Final = ("nb", "en")
DEFAULT_LANGUAGE: Final = "nb"
LANGUAGE_NAMES: Final = {"nb": "Norsk (bokmål)", "en": "English"}


class CatalogueError(ValueError):
    """The catalogue file is broken: a key without a language, or placeholders that differ."""


@cache
def catalogue() -> Mapping[str, Mapping[str, str]]:
    """All texts by key, then language; loaded and checked once."""
    raw = tomllib.loads(resources.files("protocol").joinpath("catalogue.toml").read_text("utf-8"))
    entries = dict(_flatten(raw))
    for key, entry in entries.items():
        check_entry(key, entry)
    return entries


def _flatten(table: Mapping[str, object], prefix: str = "") -> Iterable[tuple[str, dict[str, str]]]:
    """Dotted keys: a table holding language strings is an entry, any other table a section."""
    for name, value in table.items():
        if not isinstance(value, dict):
            raise CatalogueError(f"catalogue: {prefix}{name} must be a table")
        if all(isinstance(v, str) for v in value.values()):
            yield f"{prefix}{name}", value
        else:
            yield from _flatten(value, f"{prefix}{name}.")


def check_entry(key: str, entry: Mapping[str, str]) -> None:
    missing = [lang for lang in LANGUAGES if not entry.get(lang)]
    if missing:
        raise CatalogueError(f"catalogue: {key} has no text in {', '.join(missing)}")
    fields = {lang: placeholders(entry[lang]) for lang in LANGUAGES}
    if len({frozenset(f) for f in fields.values()}) != 1:
        raise CatalogueError(f"catalogue: {key} has different placeholders per language: {fields}")


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def language(candidate: str | None) -> str:
    """`candidate` if we have texts in it, else bokmål."""
    return candidate if candidate in LANGUAGES else DEFAULT_LANGUAGE


def from_accept_language(header: str | None) -> str:
    """The first language of an Accept-Language header we speak (nb, nn and no read bokmål), else bokmål."""
    for part in (header or "").split(","):
        tag = part.split(";")[0].strip().lower()
        primary = tag.split("-")[0]
        if primary in ("nb", "nn", "no"):
            return "nb"
        if primary == "en":
            return "en"
    return DEFAULT_LANGUAGE


def text(key: str, lang: str, /, **values: object) -> str:
    """The text for `key` in `lang` (bokmål if `lang` is not one we have), filled with `values`."""
    template = catalogue()[key][language(lang)]
    return template.format(**values) if values else template
