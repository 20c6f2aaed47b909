"""The kiosk's languages: every text a resident reads at the kiosk or the door exists in all seven languages,
keeps bokmål's placeholders, and is a real translation, not a copy of the bokmål text."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from protocol import i18n

LOCALE = Path(i18n.__file__).resolve().parent / "locale"
TRANSLATED = tuple(lang for lang in i18n.LANGUAGES if lang not in i18n.COMPLETE_LANGUAGES)
# Texts the kiosk and the door readers show: they must be complete in every language.
EVERYWHERE = ("app.", "reason.", "kiosk.")
# Translations that are rightly the same as bokmål although bokmål has more than two words.
SAME_AS_BOKMAL: frozenset[tuple[str, str]] = frozenset(
    {
        ("kiosk.home.language", "nn"),  # "Språk / Language" is nynorsk too
        ("kiosk.help.emergency", "nn"),  # "Brann 110 · Politi 112 · Ambulanse 113"
        ("kiosk.confirm.zone", "nn"),  # "Gå til: {zone}"
        ("kiosk.outcome.not_answering_next", "nn"),  # "Prøv igjen om litt."
    }
)


def _bokmal() -> dict[str, str]:
    return {key: entry["nb"] for key, entry in i18n.catalogue().items()}


def _required_keys() -> list[str]:
    return sorted(key for key in _bokmal() if key.startswith(EVERYWHERE))


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_every_language_file_parses_with_its_own_language_and_plural_rules(lang: str) -> None:
    path = LOCALE / lang / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"
    with path.open("rb") as fh:
        po = read_po(fh, locale=lang, domain=i18n.DOMAIN, abort_invalid=True)
    assert str(po.locale) == lang
    assert po.mime_headers and dict(po.mime_headers)["Language"] == lang
    assert po.num_plurals == {"ar": 6, "pl": 3, "uk": 3}.get(lang, 2)
    assert not po.fuzzy
    assert [m.id for m in po if m.id and not m.string] == [], "empty texts: leave the key out instead"


def test_the_catalogue_loads_with_bokmal_placeholders_in_every_language() -> None:
    i18n.catalogue.cache_clear()
    entries = i18n.catalogue()
    for key, entry in entries.items():
        assert set(entry) <= set(i18n.LANGUAGES), key
        for lang, value in entry.items():
            assert i18n.placeholders(value) == i18n.placeholders(entry["nb"]), (key, lang)


def test_what_the_kiosk_and_the_doors_say_is_there_in_all_seven_languages() -> None:
    required = _required_keys()
    assert len([key for key in required if key.startswith("reason.")]) >= 30, "the deny reasons are missing"
    assert {"app.name", "app.tagline"} <= set(required)
    missing = [
        (key, lang)
        for key in required
        for lang in i18n.LANGUAGES
        if not i18n.catalogue()[key].get(lang, "").strip()
    ]
    assert missing == []


@pytest.mark.parametrize("lang", TRANSLATED)
def test_no_text_is_a_copy_of_bokmal(lang: str) -> None:
    copies = [
        key
        for key, entry in i18n.catalogue().items()
        if entry.get(lang) == entry["nb"]
        and len(entry["nb"].split()) > 2
        and (key, lang) not in SAME_AS_BOKMAL
    ]
    assert copies == []


def test_a_resident_reads_a_deny_reason_in_their_own_language_and_script() -> None:
    expired = {lang: i18n.text("reason.token_expired", lang) for lang in i18n.LANGUAGES}
    assert len(set(expired.values())) == len(i18n.LANGUAGES)
    assert any("\u0600" <= ch <= "\u06ff" for ch in expired["ar"])  # Arabic script
    assert any("\u0400" <= ch <= "\u04ff" for ch in expired["uk"])  # Cyrillic
    assert not any(
        ch in "ыэъё" for ch in "".join(i18n.catalogue()[k].get("uk", "") for k in _required_keys())
    )
    assert i18n.direction("ar") == "rtl"


def test_arabic_uses_arabic_punctuation() -> None:
    arabic = [entry["ar"] for key, entry in i18n.catalogue().items() if "ar" in entry]
    assert arabic
    assert not [value for value in arabic if "," in value or "?" in value]
