"""The one translation catalogue: every text a resident or caretaker reads, in the languages of Asker.

Texts are gettext catalogues per language: protocol/locale/<lang>/LC_MESSAGES/meraapent.po (and the
caretakers' console in console-<area>.po beside it, bokmål and English), read with Babel, so translators use
the tools they know (Poedit, Weblate). The msgid is a stable dotted key ("kiosk.home.tap_card"), never the
Norwegian sentence, so fixing a bokmål typo does not orphan the other languages. It sits in protocol/ because
the phone pages (central), the kiosk and the agent's reader displays all show the same words for the same
things (a deny reason reads the same at the door, on the phone and at the kiosk).

Bokmål is the source and must have every key; English too (the phone pages offer both). The other languages
may lag behind: a missing or empty text falls back to bokmål, and tests/test_i18n.py says which keys must be
complete everywhere (the kiosk's). `text(key, lang, **values)` formats with str.format; an unknown key is a
programming error (KeyError), an unknown language falls back to bokmål.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Final

from babel.messages.pofile import read_po

DEFAULT_LANGUAGE: Final = "nb"
# In the order the language choosers show them; each by its own name.
LANGUAGE_NAMES: Final = {
    "nb": "Norsk (bokmål)",
    "nn": "Norsk (nynorsk)",
    "en": "English",
    "ar": "العربية",
    "pl": "Polski",
    "uk": "Українська",
    "so": "Soomaali",
}
LANGUAGES: Final = tuple(LANGUAGE_NAMES)
COMPLETE_LANGUAGES: Final = ("nb", "en")  # every key in these; the phone pages offer exactly these
RIGHT_TO_LEFT: Final = frozenset({"ar"})
DOMAIN: Final = "meraapent"


class CatalogueError(ValueError):
    """A catalogue file is broken: a key missing in a complete language, or placeholders that differ."""


@cache
def catalogue() -> Mapping[str, Mapping[str, str]]:
    """All texts by key, then language (only languages that have the text); loaded and checked once."""
    entries: dict[str, dict[str, str]] = {}
    for lang in LANGUAGES:
        for key, value in _read(lang).items():
            entries.setdefault(key, {})[lang] = value
    for key, entry in entries.items():
        check_entry(key, entry)
    return entries


def _read(lang: str) -> dict[str, str]:
    """Every .po file of `lang`: meraapent.po (residents, kiosk, doors) and one console-<area>.po per part of
    the caretakers' console; a key may live in one file only."""
    folder = resources.files("protocol").joinpath("locale", lang, "LC_MESSAGES")
    if not folder.is_dir():
        return {}
    texts: dict[str, str] = {}
    for source in sorted((f for f in folder.iterdir() if f.name.endswith(".po")), key=lambda f: f.name):
        with source.open("rb") as fh:
            po = read_po(fh, locale=lang, domain=DOMAIN)
        for message in po:
            if not message.id or not isinstance(message.string, str) or not message.string:
                continue
            key = str(message.id)
            if key in texts:
                raise CatalogueError(f"catalogue: {key} is in two files of {lang} (again in {source.name})")
            texts[key] = message.string
    return texts


def check_entry(key: str, entry: Mapping[str, str]) -> None:
    missing = [lang for lang in COMPLETE_LANGUAGES if not entry.get(lang)]
    if missing:
        raise CatalogueError(f"catalogue: {key} has no text in {', '.join(missing)}")
    expected = placeholders(entry[DEFAULT_LANGUAGE])
    for lang, value in entry.items():
        if placeholders(value) != expected:
            raise CatalogueError(
                f"catalogue: {key} in {lang} has placeholders {sorted(placeholders(value))}, "
                f"bokmål has {sorted(expected)}"
            )


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def language(candidate: str | None) -> str:
    """`candidate` if we have texts in it, else bokmål."""
    return candidate if candidate in LANGUAGE_NAMES else DEFAULT_LANGUAGE


def direction(lang: str) -> str:
    """"rtl" for a right-to-left language (Arabic), else "ltr"."""
    return "rtl" if lang in RIGHT_TO_LEFT else "ltr"


def from_accept_language(header: str | None, offered: tuple[str, ...] = COMPLETE_LANGUAGES) -> str:
    """The first language of an Accept-Language header that is `offered` (nb, nn and no read bokmål when
    nynorsk is not offered), else bokmål."""
    for part in (header or "").split(","):
        primary = part.split(";")[0].strip().lower().split("-")[0]
        if primary in ("nn", "no") and "nn" not in offered:
            primary = "nb"
        if primary == "no":
            primary = "nb"
        if primary in offered:
            return primary
    return DEFAULT_LANGUAGE


def text(key: str, lang: str, /, **values: object) -> str:
    """The text for `key` in `lang` (bokmål where `lang` has none), filled with `values`."""
    entry = catalogue()[key]
    template = entry.get(language(lang)) or entry[DEFAULT_LANGUAGE]
    return template.format(**values) if values else template
