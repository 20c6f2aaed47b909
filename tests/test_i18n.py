"""The translation catalogue: complete where it must be, the same placeholders everywhere, good fallbacks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from protocol import i18n

ROOT = Path(__file__).resolve().parent.parent


def test_every_text_is_in_bokmal_and_english_and_every_language_keeps_the_placeholders() -> None:
    entries = i18n.catalogue()
    assert entries, "the catalogue is empty"
    for key, entry in entries.items():
        assert set(i18n.COMPLETE_LANGUAGES) <= set(entry), key
        for lang, value in entry.items():
            assert i18n.placeholders(value) == i18n.placeholders(entry["nb"]), (key, lang)


def test_a_broken_entry_is_refused_with_its_key() -> None:
    with pytest.raises(i18n.CatalogueError, match=r"door\.open has no text in en"):
        i18n.check_entry("door.open", {"nb": "Åpne"})
    with pytest.raises(i18n.CatalogueError, match=r"door\.until in en has placeholders \['tid'\]"):
        i18n.check_entry("door.until", {"nb": "Åpen til {time}", "en": "Open until {tid}"})


def test_every_text_key_used_in_templates_and_code_is_in_the_catalogue() -> None:
    used: set[str] = set()
    pattern = re.compile(r"""\b(?:t|text|message_page\([^,]+,)\(?\s*["']([a-z_]+(?:\.[a-z_0-9]+)+)["']""")
    sources = (
        "central/web/**/*.html",
        "central/web/**/*.py",
        "central/console/**/*.html",
        "central/console/**/*.py",
        "kiosk/**/*.py",
    )
    for path in (path for pattern_ in sources for path in ROOT.glob(pattern_)):
        used.update(pattern.findall(path.read_text("utf-8")))
    assert used, "no keys found: the pattern is wrong"
    assert used - set(i18n.catalogue()) == set()


def test_an_unknown_language_falls_back_to_bokmal() -> None:
    assert i18n.text("landing.sign_in", "de") == "Logg inn"
    assert i18n.from_accept_language("de-DE,en;q=0.5") == "en"
    assert i18n.from_accept_language(None) == "nb"


def test_arabic_reads_right_to_left_and_everything_else_left_to_right() -> None:
    assert i18n.direction("ar") == "rtl"
    assert {i18n.direction(lang) for lang in i18n.LANGUAGES if lang != "ar"} == {"ltr"}


def test_the_phone_pages_offer_bokmal_and_english_and_the_kiosk_every_language() -> None:
    assert i18n.from_accept_language("nn-NO") == "nb"  # the phone pages offer bokmål and English
    assert i18n.from_accept_language("nn-NO", offered=i18n.LANGUAGES) == "nn"
