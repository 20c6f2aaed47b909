"""The kiosk app, driven like a person would (Textual's Pilot: taps, keys, a card, a scanner) against the
FakeLink; the SocketLink against a real Unix socket; the command line; and text snapshots of the main
screens in two languages (tests/snapshots/kiosk/, rewritten with UPDATE_SNAPSHOTS=1)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import unicodedata
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from textual import events
from textual.pilot import Pilot
from textual.widgets import Button
from typer.testing import CliRunner

from controller.inputs import CardPresented, CardRemoved, ReaderStatus
from kiosk import words
from kiosk.app import CardTapped, KioskApp, screen_text
from kiosk.cli import app as kiosk_cli
from kiosk.link import FakeLink, LinkDownError, SocketLink
from kiosk.look import YELLOW
from kiosk.reader import card_sink
from kiosk.wedge import Verdict, Wedge
from protocol import kiosk as k
from protocol.i18n import catalogue, text

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots" / "kiosk"
NOW = datetime(2026, 11, 23, 17, 10, tzinfo=UTC)  # 18:10 in Oslo
SIZE = (100, 30)
CARD = "04a1b2c3d4e5f6"
CODE = "482615"
QR = "MA2:6BFOXN*TS0BI$ZD 0-9"
SESSION = "s" * 24


def oslo(hour: int, minute: int = 0, days: int = 0) -> datetime:
    """A time on the test day given in Oslo wall-clock time (UTC+1 in November)."""
    return datetime(2026, 11, 23, hour - 1, minute, tzinfo=UTC) + timedelta(days=days)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def today(**changes: object) -> k.TodayReply:
    base: dict[str, object] = dict(
        site="heggedal", name="Heggedal innbyggertorg", timezone="Europe/Oslo", now=NOW, open=True,
        closes_at=oslo(21), contact_phone="66 90 00 00", caretaker_phone="400 00 001",
        help_text_nb="Toalettet er i første etasje.", help_text_en="The toilet is on the ground floor.",
        rooms=[
            k.RoomToday(slug="moterom-1", name="Møterom 1", bookings=[
                k.BookingToday(starts_at=oslo(16), ends_at=oslo(17), shown_as="Strikkekafeen"),
                k.BookingToday(
                    starts_at=oslo(18), ends_at=oslo(20), shown_as="Sjakkklubben", title="Styremøte"
                ),
            ]),
            k.RoomToday(slug="verksted", name="Verkstedet", bookings=[
                k.BookingToday(starts_at=oslo(19), ends_at=oslo(21), shown_as="Kari"),
            ]),
        ],
    )  # fmt: skip
    base.update(changes)
    return k.TodayReply(**base)  # type: ignore[arg-type]


BOOKING = k.BookingCard(
    ref="b17", room="verksted", room_name="Verkstedet", starts_at=oslo(18), ends_at=oslo(20),
    zone_name="Andre etasje", door="verksted", door_name="Verkstedsdøra", title="Hemmelig tittel",
)  # fmt: skip


def checked_in(**changes: object) -> k.CheckInReply:
    base: dict[str, object] = dict(
        outcome=k.CheckInOutcome.CHECKED_IN,
        booking=BOOKING,
        session=SESSION,
        extend_minutes=[30, 60, 120],
        can_end=True,
    )
    base.update(changes)
    return k.CheckInReply(**base)  # type: ignore[arg-type]


class Ticker:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeCards:
    """The kiosk's reader as the app sees it: `tap` does what the reader thread does with a card."""

    def __init__(self) -> None:
        self.on_card: Callable[[str], None] | None = None
        self.on_status: Callable[[bool], None] | None = None
        self.stopped = False

    def start(self, on_card: Callable[[str], None], on_status: Callable[[bool], None]) -> None:
        self.on_card, self.on_status = on_card, on_status

    def stop(self) -> None:
        self.stopped = True

    def tap(self, uid: str) -> None:
        assert self.on_card is not None
        self.on_card(uid)


def last(link: FakeLink) -> k.KioskRequest:
    """The request the agent got last."""
    return link.requests[-1]


def make_app(link: FakeLink, **options: object) -> KioskApp:
    options.setdefault("refresh_seconds", 3600.0)
    options.setdefault("monotonic", Ticker())
    return KioskApp(link, site="heggedal", clock=lambda: NOW, **options)  # type: ignore[arg-type]


def fake(**check_ins: k.CheckInReply) -> FakeLink:
    replies = {CARD: checked_in(), CODE: checked_in(), QR: checked_in()}
    replies.update({key.removeprefix("_"): reply for key, reply in check_ins.items()})
    return FakeLink(today(), check_ins=replies, clock=lambda: NOW)


async def settle(pilot: Pilot[None]) -> None:
    """Let every key, worker and screen change run to the end."""
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@contextlib.asynccontextmanager
async def running(app: KioskApp) -> AsyncIterator[Pilot[None]]:
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        yield pilot


def shown(app: KioskApp) -> str:
    return screen_text(app)


async def tap(pilot: Pilot[None], *ids: str) -> None:
    for widget_id in ids:
        await pilot.click(f"#{widget_id}")
        await settle(pilot)


async def press_buttons(pilot: Pilot[None], *ids: str) -> None:
    """Press buttons as a tap does (Button.press), without the pointer's travel: for long sequences."""
    for widget_id in ids:
        pilot.app.screen.query_one(f"#{widget_id}", Button).press()
        await pilot.pause()
    await settle(pilot)


async def type_keys(pilot: Pilot[None], keys: str) -> None:
    await pilot.press(*keys)
    await settle(pilot)


async def scan(pilot: Pilot[None], code: str, *, enter: bool = True) -> None:
    """What a keyboard-wedge scanner does: the code's characters in one quick burst, then Enter."""
    for character in code:
        name = character if character.isalnum() else unicodedata.name(character).lower().replace(" ", "_")
        pilot.app.post_message(events.Key(name, character))
    if enter:
        pilot.app.post_message(events.Key("enter", "\r"))
    await settle(pilot)


# --- home -------------------------------------------------------------------------------------------------


async def test_home_shows_the_site_the_clock_the_opening_hours_and_todays_programme() -> None:
    app = make_app(fake())
    async with running(app):
        screen = shown(app)
        assert app.shown() == "home"
        assert "Heggedal innbyggertorg" in screen
        assert "Åpent til 21:00" in screen
        assert "Hold kortet mot leseren eller vis koden din for å sjekke inn" not in screen  # no reader here
        assert "Vis koden din til skanneren eller skriv bookingkoden for å sjekke inn" in screen
        assert "18:00–20:00   Møterom 1    Sjakkklubben" in screen
        assert "19:00–21:00   Verkstedet   Kari" in screen
        assert "Strikkekafeen" not in screen  # over already
        assert "Styremøte" not in screen  # only time, room and the name it is shown as
        for label in ("Skriv bookingkode", "Hjelp", "Språk / Language"):
            assert label in screen


async def test_home_with_a_card_reader_asks_for_the_card_and_says_when_the_reader_is_broken() -> None:
    cards = FakeCards()
    app = make_app(fake(), cards=cards)
    async with running(app) as pilot:
        assert "Hold kortet mot leseren eller vis koden din for å sjekke inn" in shown(app)
        assert cards.on_status is not None
        cards.on_status(False)
        await settle(pilot)
        assert "Kortleseren virker ikke akkurat nå" in shown(app)
    assert cards.stopped


async def test_home_warns_before_closing() -> None:
    app = make_app(FakeLink(today(closing_in_minutes=5, closes_at=oslo(18, 15))))
    async with running(app):
        assert "Stenger om 5 minutter" in shown(app)
        assert "Åpent til" not in shown(app)


async def test_home_says_when_a_closed_torg_opens() -> None:
    app = make_app(FakeLink(today(open=False, closes_at=None, opens_at=oslo(19))))
    async with running(app):
        assert "Stengt – åpner 19:00" in shown(app)


def test_a_torg_closed_until_tomorrow_names_the_day() -> None:
    reply = today(open=False, closes_at=None, opens_at=oslo(7, days=1))
    assert words.status(reply, NOW, "nb").line == "Stengt – åpner tir. 24. nov. 07:00"
    assert words.status(reply, NOW, "en").line == "Closed – opens Tue, Nov 24 07:00"


async def test_a_dead_agent_is_a_plain_message_on_home_and_the_kiosk_recovers_when_it_answers() -> None:
    link = fake()
    link.down = True
    app = make_app(link)
    async with running(app) as pilot:
        screen = shown(app)
        assert "Dørsystemet svarer ikke akkurat nå" in screen
        assert "Sjakkklubben" not in screen
        link.down = False
        app.refresh_today()
        await settle(pilot)
        assert "Åpent til 21:00" in shown(app)
        assert "Dørsystemet svarer ikke" not in shown(app)


async def test_a_kiosk_talking_to_another_sites_agent_does_not_pretend_to_work() -> None:
    app = make_app(FakeLink(today(site="holmen", name="Holmen innbyggertorg")))
    async with running(app):
        assert "Holmen" not in shown(app)
        assert "Dørsystemet svarer ikke akkurat nå" in shown(app)
        assert "holmen" in app.problem


# --- check-in by card, QR code and booking code -----------------------------------------------------------


async def test_card_check_in_then_extend_then_done_leaves_nothing_behind() -> None:
    link, cards = fake(), FakeCards()
    app = make_app(link, cards=cards)
    async with running(app) as pilot:
        cards.tap(CARD)
        await settle(pilot)
        assert last(link) == k.CheckInRequest(method=k.CheckInMethod.CARD, uid=CARD)
        screen = shown(app)
        assert app.shown() == "confirmation"
        assert "Velkommen! Du er sjekket inn." in screen
        assert "Rom: Verkstedet" in screen
        assert "Tid: 18:00–20:00" in screen
        assert "Gå til: Andre etasje" in screen
        assert "Døra som åpner for deg: Verkstedsdøra" in screen
        assert CARD not in screen and "Hemmelig tittel" not in screen
        for label in ("Forleng 30 min", "Forleng 60 min", "Forleng 2 t", "Avslutt nå", "Ferdig"):
            assert label in screen
        await tap(pilot, "extend-30", "extend-30")  # a double tap extends once
        assert [r for r in link.requests if isinstance(r, k.ExtendRequest)] == [
            k.ExtendRequest(session=SESSION, minutes=30)
        ]
        assert "Bookingen er forlenget til 20:30." in shown(app)
        assert "Tid: 18:00–20:30" in shown(app)
        changes = [b for b in app.screen.query("#change Button").results(Button) if b.id != "done"]
        assert len(changes) == 4 and all(
            b.disabled for b in changes
        )  # once: the next booking may have moved closer
        await tap(pilot, "done")
        assert app.shown() == "home"
        assert "Verkstedsdøra" not in shown(app) and "Andre etasje" not in shown(app)
        assert len(app.screen_stack) == 1


async def test_only_the_extensions_the_agent_offers_are_shown_and_ending_needs_can_end() -> None:
    cards = FakeCards()
    app = make_app(fake(_04a1b2c3d4e5f6=checked_in(extend_minutes=[30], can_end=False)), cards=cards)
    async with running(app) as pilot:
        cards.tap(CARD)
        await settle(pilot)
        screen = shown(app)
        assert "Forleng 30 min" in screen
        assert "Forleng 60 min" not in screen and "Forleng 2 t" not in screen
        assert "Avslutt nå" not in screen


async def test_without_a_session_the_booking_is_shown_but_cannot_be_changed() -> None:
    app = make_app(fake(_04a1b2c3d4e5f6=checked_in(session=None)))
    async with running(app) as pilot:
        await check_in_by(pilot, app, "card")
        assert "Rom: Verkstedet" in shown(app)
        assert "Forleng" not in shown(app) and "Avslutt nå" not in shown(app)
        assert "Ferdig" in shown(app)


async def test_ending_early_asks_first_and_then_frees_the_room() -> None:
    link = fake()
    app = make_app(link)
    async with running(app) as pilot:
        await check_in_by(pilot, app, "card")
        await tap(pilot, "end")
        assert "Vil du avslutte bookingen nå? Rommet blir ledig for andre." in shown(app)
        await tap(pilot, "end-no")
        assert "Vil du avslutte" not in shown(app)
        assert not any(isinstance(r, k.EndRequest) for r in link.requests)
        await tap(pilot, "end", "end-yes")
        assert last(link) == k.EndRequest(session=SESSION)
        assert "Bookingen er avsluttet. Takk! Rommet er ledig for andre nå." in shown(app)
        assert "Tid: 18:00–18:10" in shown(app)


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (k.ChangeReply(outcome=k.ChangeOutcome.ROOM_TAKEN, until=oslo(20, 15)),
         "Noen andre har booket rommet etter deg. Du kan forlenge til 20:15."),
        (k.ChangeReply(outcome=k.ChangeOutcome.ROOM_TAKEN),
         "Noen andre har booket rommet etter deg, så bookingen kan ikke forlenges."),
        (k.ChangeReply(outcome=k.ChangeOutcome.NOT_ALLOWED), "Denne endringen kan ikke gjøres her."),
        (k.ChangeReply(outcome=k.ChangeOutcome.SESSION_EXPIRED),
         "Det tok for lang tid. Hold kortet mot leseren eller vis koden på nytt"),
    ],
    ids=["room-taken-until", "room-taken", "not-allowed", "session-expired"],
)  # fmt: skip
async def test_an_extension_that_cannot_be_made_says_why(reply: k.ChangeReply, said: str) -> None:
    link = fake()
    link.extend_replies[60] = reply
    app = make_app(link)
    async with running(app) as pilot:
        await check_in_by(pilot, app, "card")
        await tap(pilot, "extend-60")
        assert said in " ".join(shown(app).split())
        assert "Tid: 18:00–20:00" in shown(app)


async def test_a_qr_code_typed_by_the_scanner_checks_in_without_any_input_field() -> None:
    link = fake()
    app = make_app(link)
    async with running(app) as pilot:
        await scan(pilot, QR, enter=False)  # digits and spaces inside the code must not reach the screens
        assert app.shown() == "home"
        await pilot.press("enter")
        await settle(pilot)
        assert last(link) == k.CheckInRequest(method=k.CheckInMethod.QR, text=QR)
        assert app.shown() == "confirmation"
        assert QR not in shown(app)


async def test_the_scanner_also_works_on_top_of_another_screen() -> None:
    link = fake()
    app = make_app(link)
    async with running(app) as pilot:
        await tap(pilot, "help")
        await scan(pilot, QR)
        assert app.shown() == "confirmation"
        assert len(app.screen_stack) == 2  # home + confirmation: help is gone


async def test_booking_code_on_the_touch_keypad() -> None:
    link = fake()
    app = make_app(link)
    async with running(app) as pilot:
        await tap(pilot, "type-code")
        assert app.shown() == "keypad"
        assert app.screen.query_one("#ok", Button).disabled
        await tap(pilot, "key-4", "key-8", "key-9", "delete")
        await press_buttons(pilot, "key-2", "key-6", "key-1", "key-5")
        assert "4 8 2 6 1 5" in shown(app)
        assert not app.screen.query_one("#ok", Button).disabled
        await tap(pilot, "ok")
        assert last(link) == k.CheckInRequest(method=k.CheckInMethod.CODE, code=CODE)
        assert app.shown() == "confirmation"


async def test_booking_code_from_a_keyboard_starts_on_the_home_screen() -> None:
    link = fake()
    app = make_app(link)
    async with running(app) as pilot:
        await type_keys(pilot, "4")
        assert app.shown() == "keypad"
        await type_keys(pilot, "8261")
        await pilot.press("enter")  # five digits: Enter sends nothing and types nothing
        await settle(pilot)
        assert not any(isinstance(r, k.CheckInRequest) for r in link.requests)
        assert "4 8 2 6 1 _" in shown(app)
        await pilot.press("backspace")
        assert "4 8 2 6 _ _" in shown(app)
        await type_keys(pilot, "159")  # a seventh digit is ignored
        await pilot.press("enter")
        await settle(pilot)
        assert last(link) == k.CheckInRequest(method=k.CheckInMethod.CODE, code=CODE)


# --- every outcome in plain words ---------------------------------------------------------------------------


OUTCOMES = [
    ("too-early", k.CheckInReply(outcome=k.CheckInOutcome.TOO_EARLY, booking=BOOKING, opens_at=oslo(17, 45)),
     "card", "Bookingen din starter 18:00 – innsjekking åpner 17:45.", "Kom tilbake da og sjekk inn"),
    ("too-early-no-booking", k.CheckInReply(outcome=k.CheckInOutcome.TOO_EARLY, opens_at=oslo(19, 45)),
     "card", "Innsjekking åpner 19:45.", "Kom tilbake da"),
    ("too-late", k.CheckInReply(outcome=k.CheckInOutcome.TOO_LATE, closes_at=oslo(18, 15)),
     "card", "Innsjekkingen for denne bookingen stengte 18:15.", "Rommet kan være gitt til andre."),
    ("no-booking", k.CheckInReply(outcome=k.CheckInOutcome.NO_BOOKING),
     "card", "Vi fant ingen booking for deg her i dag.", "Sjekk dato og sted i bekreftelsen"),
    ("unknown-card", k.CheckInReply(outcome=k.CheckInOutcome.UNKNOWN),
     "card", "Vi kjenner ikke igjen dette kortet.", "Prøv igjen, eller skriv bookingkoden"),
    ("unknown-qr", k.CheckInReply(outcome=k.CheckInOutcome.UNKNOWN),
     "qr", "Vi kjenner ikke igjen denne koden.", "Prøv igjen, eller skriv bookingkoden"),
    ("unknown-code", k.CheckInReply(outcome=k.CheckInOutcome.UNKNOWN),
     "code", "Vi fant ingen booking med denne koden.", "Sjekk koden i bekreftelsen din og prøv igjen."),
    ("refused-blocked", k.CheckInReply(outcome=k.CheckInOutcome.REFUSED, reason="person_blocked"),
     "card", "Du er sperret. Ta kontakt med innbyggertorget.", "Trenger du hjelp, ring 400 00 001."),
    ("refused-token-expired", k.CheckInReply(outcome=k.CheckInOutcome.REFUSED, reason="token_expired"),
     "qr", text("reason.token_expired", "nb"), "Trenger du hjelp, ring 400 00 001."),
    ("refused-unknown-reason", k.CheckInReply(outcome=k.CheckInOutcome.REFUSED, reason="moon_phase"),
     "card", "Du kan ikke sjekke inn her.", "Trenger du hjelp, ring 400 00 001."),
    ("too-many-tries", k.CheckInReply(outcome=k.CheckInOutcome.TOO_MANY_TRIES),
     "code", "For mange feil koder.", "Vent fem minutter og prøv igjen, eller hold kortet ditt mot leseren."),
    ("not-ready", k.CheckInReply(outcome=k.CheckInOutcome.NOT_READY),
     "card", "Dørsystemet starter opp og er ikke klart ennå.", "Prøv igjen om et par minutter."),
]  # fmt: skip


async def check_in_by(pilot: Pilot[None], app: KioskApp, method: str) -> None:
    if method == "card":
        app.post_message(CardTapped(CARD))
    elif method == "qr":
        await scan(pilot, QR)
    else:
        await type_keys(pilot, CODE)
        await pilot.press("enter")
    await settle(pilot)


@pytest.mark.parametrize(("reply", "method", "heading", "next_step"), [o[1:] for o in OUTCOMES],
                         ids=[o[0] for o in OUTCOMES])  # fmt: skip
async def test_every_outcome_says_what_happened_and_what_to_do_next(
    reply: k.CheckInReply, method: str, heading: str, next_step: str
) -> None:
    app = make_app(fake(**{"_" + CARD: reply, "_" + QR: reply, "_" + CODE: reply}))
    async with running(app) as pilot:
        await check_in_by(pilot, app, method)
        assert app.shown() == "outcome"
        screen = " ".join(shown(app).split())
        assert heading in screen
        assert next_step in screen
        assert bool(app.screen.query("#retry")) == (method == "code")  # "Prøv igjen" on an empty keypad


async def test_a_wrong_code_offers_to_try_again_on_an_empty_keypad() -> None:
    app = make_app(fake(_482615=k.CheckInReply(outcome=k.CheckInOutcome.UNKNOWN)))
    async with running(app) as pilot:
        await check_in_by(pilot, app, "code")
        await tap(pilot, "retry")
        assert app.shown() == "keypad"
        assert "_ _ _ _ _ _" in shown(app)


async def test_a_check_in_while_the_agent_is_down_says_so_and_whom_to_call() -> None:
    link = fake()
    app = make_app(link)
    async with running(app) as pilot:
        link.down = True
        await check_in_by(pilot, app, "card")
        screen = " ".join(shown(app).split())
        assert "Dørsystemet svarer ikke akkurat nå." in screen
        assert "Prøv igjen om litt. Haster det, ring 400 00 001." in screen
        await tap(pilot, "done")
        assert "Dørsystemet svarer ikke akkurat nå" in shown(app)  # home says so too, until it answers


async def test_outcomes_in_english() -> None:
    reply = k.CheckInReply(outcome=k.CheckInOutcome.TOO_EARLY, booking=BOOKING, opens_at=oslo(17, 45))
    app = make_app(fake(_04a1b2c3d4e5f6=reply), lang="en")
    async with running(app) as pilot:
        await check_in_by(pilot, app, "card")
        assert "Your booking starts at 18:00 – check-in opens at 17:45." in shown(app)
        assert "Come back then and check in again." in shown(app)


# --- help and languages -----------------------------------------------------------------------------------


async def test_help_gives_emergency_numbers_whom_to_call_the_rules_and_the_sites_own_text() -> None:
    app = make_app(fake())
    async with running(app) as pilot:
        await tap(pilot, "help")
        screen = shown(app)
        assert app.shown() == "help"
        assert "Brann 110 · Politi 112 · Ambulanse 113" in screen
        assert "Vaktmester: 400 00 001" in screen
        assert "Innbyggertorget: 66 90 00 00" in screen
        assert "Slik fungerer meråpent" in screen and "Husregler" in screen
        assert "Toalettet er i første etasje." in screen
        await pilot.press("escape")
        await settle(pilot)
        assert app.shown() == "home"


async def test_choosing_english_changes_every_word_and_the_sites_help_text() -> None:
    app = make_app(fake())
    async with running(app) as pilot:
        await tap(pilot, "language")
        assert app.shown() == "language"
        screen = shown(app)
        for name in (
            "Norsk (bokmål)",
            "Norsk (nynorsk)",
            "English",
            "العربية",
            "Polski",
            "Українська",
            "Soomaali",
        ):
            assert name in screen
        await tap(pilot, "lang-en")
        assert app.shown() == "home"
        assert "Open until 21:00" in shown(app)
        assert "Type booking code" in shown(app)
        await tap(pilot, "help")
        assert "The toilet is on the ground floor." in shown(app)
        assert "Fire 110 · Police 112 · Ambulance 113" in shown(app)


async def test_arabic_lays_the_screen_out_right_to_left() -> None:
    app = make_app(fake())
    async with running(app) as pilot:
        await tap(pilot, "language", "lang-ar")
        assert app.lang == "ar"
        assert app.home.has_class("-rtl")
        lines = shown(app).splitlines()
        status = next(line for line in lines if "21:00" in line and "–" not in line)
        assert status.startswith(" " * 40)  # right-aligned
        await tap(pilot, "language", "lang-nb")
        assert not app.home.has_class("-rtl")


# --- idle reset, keyboard only, contrast ------------------------------------------------------------------


async def test_walking_away_from_a_confirmation_resets_to_home_in_the_default_language() -> None:
    ticker = Ticker()
    app = make_app(fake(), monotonic=ticker, idle_seconds=30.0)
    async with running(app) as pilot:
        await tap(pilot, "language", "lang-en")
        await check_in_by(pilot, app, "card")
        assert app.shown() == "confirmation"
        ticker.now += 29
        app.reset_if_idle()
        await settle(pilot)
        assert app.shown() == "confirmation"
        ticker.now += 2
        app.reset_if_idle()
        await settle(pilot)
        assert app.shown() == "home"
        assert app.lang == "nb"
        assert len(app.screen_stack) == 1
        screen = shown(app)
        assert "Åpent til 21:00" in screen
        for personal in ("Verkstedsdøra", "Andre etasje", "Welcome", "Velkommen"):
            assert personal not in screen


async def test_a_half_typed_code_is_gone_after_the_idle_reset() -> None:
    ticker = Ticker()
    app = make_app(fake(), monotonic=ticker, idle_seconds=30.0)
    async with running(app) as pilot:
        await type_keys(pilot, "482")
        assert "4 8 2 _ _ _" in shown(app)
        ticker.now += 31
        app.reset_if_idle()
        await settle(pilot)
        assert app.shown() == "home"
        await type_keys(pilot, "1")
        assert "1 _ _ _ _ _" in shown(app)


async def test_everything_works_with_the_keyboard_alone() -> None:
    link = fake()
    app = make_app(link)
    async with running(app) as pilot:
        await pilot.press("tab", "enter")  # the first button: type booking code
        await settle(pilot)
        assert app.shown() == "keypad"
        await type_keys(pilot, CODE)
        await pilot.press("enter")
        await settle(pilot)
        assert app.shown() == "confirmation"
        await pilot.press("shift+tab", "shift+tab", "enter")  # from "Ferdig" back past "Avslutt nå" to "2 t"
        await settle(pilot)
        assert last(link) == k.ExtendRequest(session=SESSION, minutes=120)
        await pilot.press("escape")
        await settle(pilot)
        assert app.shown() == "home"
        assert app.focused is None  # home starts afresh for the next person
        await pilot.press("tab", "tab", "enter")  # help
        await settle(pilot)
        assert app.shown() == "help"
        await pilot.press("enter")  # its back button has focus
        await settle(pilot)
        await pilot.press("tab", "tab", "tab", "enter")
        await settle(pilot)
        assert app.shown() == "language"
        await pilot.press("escape")
        await settle(pilot)
        assert app.shown() == "home"


async def test_the_theme_is_high_contrast_with_yellow_focus_and_large_buttons() -> None:
    app = make_app(fake())
    async with running(app) as pilot:
        assert app.theme == "meraapent-contrast"
        await pilot.press("tab")
        await settle(pilot)
        focused = app.focused
        assert isinstance(focused, Button)
        assert focused.styles.background.hex.upper() == YELLOW
        for screen_ids in ((), ("type-code",), ("language",), ("help",)):
            if screen_ids:
                app.go_home()
                await settle(pilot)
                await tap(pilot, *screen_ids)
            for button in app.screen.query(Button):
                assert button.outer_size.height >= 3, button.id
        await check_in_by(pilot, app, "card")
        shown_buttons = [b for b in app.screen.query(Button) if b.region.area]
        assert len(shown_buttons) == 5 and all(b.outer_size.height >= 3 for b in shown_buttons)


async def test_the_status_file_names_the_screen_shown(tmp_path: Path) -> None:
    status = tmp_path / "kiosk.json"
    app = make_app(fake(), status_file=status)
    async with running(app) as pilot:
        assert json.loads(status.read_text()) == {"screen": "home", "lang": "nb", "link": "up", "problem": ""}
        await tap(pilot, "help")
        assert json.loads(status.read_text())["screen"] == "help"
        await check_in_by(pilot, app, "card")
        assert json.loads(status.read_text())["screen"] == "confirmation"


# --- text snapshots --------------------------------------------------------------------------------------


def compare_snapshot(name: str, screen: str) -> None:
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(screen, "utf-8")
        return
    if not path.exists():
        pytest.fail(
            f"no snapshot {path.relative_to(ROOT)}: run with UPDATE_SNAPSHOTS=1 to write it, then review it"
        )
    assert screen == path.read_text("utf-8"), (
        f"{name} differs from its snapshot (UPDATE_SNAPSHOTS=1 rewrites it)"
    )


@pytest.mark.parametrize("lang", ["nb", "en"])
async def test_snapshots_of_home_confirmation_and_help(lang: str) -> None:
    app = make_app(fake(), lang=lang, cards=FakeCards())
    async with running(app) as pilot:
        compare_snapshot(f"home-{lang}", shown(app))
        await tap(pilot, "help")
        compare_snapshot(f"help-{lang}", shown(app))
        await check_in_by(pilot, app, "card")
        compare_snapshot(f"confirmation-{lang}", shown(app))


# --- the pieces: scanner, reader, words ---------------------------------------------------------------------


def test_the_wedge_holds_a_scanned_code_and_lets_everything_else_through() -> None:
    ticker = Ticker()
    wedge = Wedge(ticker)
    assert [wedge.feed(c, c) for c in "MA1:"] == [Verdict.HOLD] * 4
    assert wedge.feed("A", "A") is Verdict.HOLD
    assert wedge.feed("enter", "\r") is Verdict.SCANNED and wedge.scanned == "MA1:A"
    assert wedge.feed("enter", "\r") is Verdict.NOT_OURS  # nothing held: Enter is the focused button's
    assert wedge.feed("5", "5") is Verdict.NOT_OURS
    assert wedge.feed("M", "M") is Verdict.HOLD
    assert wedge.feed("5", "5") is Verdict.NOT_OURS  # "M5" is no code: the digit goes through
    wedge.feed("M", "M")
    ticker.now += 2  # a person who pressed M and walked on
    assert wedge.feed("enter", "\r") is Verdict.NOT_OURS
    wedge.feed("M", "M")
    assert wedge.feed("tab", None) is Verdict.NOT_OURS and wedge.buffer == ""


def test_the_reader_passes_on_the_uid_as_hex_and_whether_it_works() -> None:
    cards: list[str] = []
    states: list[bool] = []
    sink = card_sink(cards.append, states.append)
    sink(CardPresented("kiosk", bytes.fromhex(CARD)))
    sink(CardRemoved("kiosk"))
    sink(ReaderStatus("kiosk", False, "unplugged"))
    assert cards == [CARD]
    assert states == [False]


def test_extension_labels_use_hours_from_two_hours_on() -> None:
    assert [words.extend_label(m, "nb") for m in (30, 60, 90, 120, 180)] == [
        "Forleng 30 min", "Forleng 60 min", "Forleng 90 min", "Forleng 2 t", "Forleng 3 t",
    ]  # fmt: skip
    assert words.extend_label(120, "en") == "Extend 2 h"


def test_every_kiosk_text_is_in_bokmal_and_english() -> None:
    source = "\n".join(p.read_text("utf-8") for p in (ROOT / "kiosk").rglob("*.py"))
    used = set(re.findall(r"[\"'](kiosk\.[a-z_]+(?:\.[a-z_]+)*)[\"']", source))
    assert len(used) > 50
    entries = catalogue()
    for key in used:
        assert {"nb", "en"} <= set(entries[key]), key


async def test_the_demo_plays_a_torg_that_opens_warns_and_closes() -> None:
    from kiosk.demo import DEMO_CARD, demo_link

    def at(hour: int, minute: int) -> k.TodayReply:
        return words_today(demo_link(lambda: oslo(hour, minute)))

    assert words.status(at(6, 30), oslo(6, 30), "nb").line == "Stengt – åpner 07:00"
    assert words.status(at(12, 0), oslo(12, 0), "nb").line == "Åpent til 22:00"
    assert words.status(at(21, 50), oslo(21, 50), "nb").line == "Stenger om 15 minutter"
    assert words.status(at(21, 56), oslo(21, 56), "nb").line == "Stenger om 5 minutter"
    assert words.status(at(22, 30), oslo(22, 30), "nb").line == "Stengt – åpner tir. 24. nov. 07:00"
    link = demo_link(lambda: NOW)
    for code, outcome in [("123456", k.CheckInOutcome.CHECKED_IN), ("111111", k.CheckInOutcome.TOO_EARLY)]:
        reply = await link.check_in(k.CheckInRequest(method=k.CheckInMethod.CODE, code=code))
        assert reply.outcome is outcome
    card = await link.check_in(k.CheckInRequest(method=k.CheckInMethod.CARD, uid=DEMO_CARD))
    assert card.session is not None
    assert (await link.extend(card.session, 30)).outcome is k.ChangeOutcome.ACCEPTED


def words_today(link: FakeLink) -> k.TodayReply:
    reply = link.today_reply() if callable(link.today_reply) else link.today_reply
    assert reply is not None
    return reply


# --- the socket link against a real Unix socket -------------------------------------------------------------


class Agent:
    """A stand-in agent on a Unix socket: answers from `answer`, counting requests; can hang or hang up."""

    def __init__(self, path: Path, answer: Callable[[k.Request], bytes]) -> None:
        self.path = path
        self.answer = answer
        self.requests: list[k.Request] = []
        self.hang = False
        self.delay = 0.0
        self.close_after_reply = False
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_unix_server(self._serve, path=str(self.path))

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while line := await reader.readline():
                self.requests.append(k.decode_request(line))
                if self.hang:
                    await asyncio.sleep(10)
                await asyncio.sleep(self.delay)
                writer.write(self.answer(self.requests[-1]))
                await writer.drain()
                if self.close_after_reply:
                    break
        writer.close()


def answer_today(request: k.Request) -> bytes:
    if isinstance(request, k.TodayRequest):
        return k.encode(today())
    return k.encode(k.ChangeReply(outcome=k.ChangeOutcome.ACCEPTED, ends_at=oslo(21)))


@pytest.fixture
def socket_path() -> Iterator[Path]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="kiosk-") as directory:  # short: AF_UNIX paths are limited
        yield Path(directory) / "k.sock"


async def test_socket_link_asks_and_reconnects_after_the_agent_restarts(socket_path: Path) -> None:
    agent = Agent(socket_path, answer_today)
    await agent.start()
    link = SocketLink(socket_path, reply_timeout=1.0)
    try:
        assert (await link.today()).name == "Heggedal innbyggertorg"
        agent.close_after_reply = True  # the agent restarts between two requests
        assert (await link.today()).site == "heggedal"
        assert (await link.today()).site == "heggedal"
        assert len(agent.requests) == 3
    finally:
        await link.close()
        await agent.stop()


async def test_socket_link_never_repeats_an_extension(socket_path: Path) -> None:
    agent = Agent(socket_path, answer_today)
    await agent.start()
    link = SocketLink(socket_path, reply_timeout=1.0)
    try:
        await link.today()
        agent.close_after_reply = True
        await link.today()  # answered, then the connection is closed under the link
        with pytest.raises(LinkDownError, match=r"closed the connection|broke"):
            await link.extend(SESSION, 30)
        assert sum(isinstance(r, k.ExtendRequest) for r in agent.requests) <= 1
        agent.close_after_reply = False
        assert (await link.extend(SESSION, 30)).outcome is k.ChangeOutcome.ACCEPTED
    finally:
        await link.close()
        await agent.stop()


async def test_a_request_cancelled_half_way_does_not_leave_its_reply_for_the_next(socket_path: Path) -> None:
    def answer(request: k.Request) -> bytes:
        if isinstance(request, k.CheckInRequest):
            return k.encode(checked_in())
        return k.encode(today())

    agent = Agent(socket_path, answer)
    await agent.start()
    link = SocketLink(socket_path, reply_timeout=2.0)
    try:
        agent.delay = 0.3
        asking = asyncio.ensure_future(link.today())
        await asyncio.sleep(0.05)
        asking.cancel()  # a new card cancelled the check-in in flight, say
        with contextlib.suppress(asyncio.CancelledError):
            await asking
        agent.delay = 0.0
        reply = await link.check_in(k.CheckInRequest(method=k.CheckInMethod.CARD, uid=CARD))
        assert reply.booking == BOOKING
    finally:
        await link.close()
        await agent.stop()


async def test_socket_link_turns_every_failure_into_link_down(socket_path: Path) -> None:
    with pytest.raises(LinkDownError, match="cannot reach the agent's socket"):
        await SocketLink(socket_path).today()
    replies = {
        "garbage": b"not json\n",
        "error": k.encode(k.ErrorReply(message="no replica yet")),
        "wrong": k.encode(k.ChangeReply(outcome=k.ChangeOutcome.ACCEPTED)),
    }
    for name, line in replies.items():
        agent = Agent(socket_path, lambda _request, line=line: line)  # type: ignore[misc]
        await agent.start()
        link = SocketLink(socket_path, reply_timeout=1.0)
        with pytest.raises(LinkDownError):
            await link.today()
        await link.close()
        await agent.stop()
        socket_path.unlink(missing_ok=True)
        del name
    agent = Agent(socket_path, answer_today)
    agent.hang = True
    await agent.start()
    link = SocketLink(socket_path, reply_timeout=0.2)
    with pytest.raises(LinkDownError, match=r"did not answer within 0\.2 s"):
        await link.today()
    await link.close()
    await agent.stop()


async def test_socket_link_talks_to_the_agents_kiosk_server(socket_path: Path) -> None:
    from controller.kiosk_server import KioskServer

    def answer(request: k.Request) -> k.KioskReply:
        if isinstance(request, k.CheckInRequest) and request.uid == CARD:
            return checked_in()
        return today()

    server = KioskServer(socket_path, answer)
    server.start()
    link = SocketLink(socket_path, reply_timeout=2.0)
    try:
        assert (await link.today()).name == "Heggedal innbyggertorg"
        reply = await link.check_in(k.CheckInRequest(method=k.CheckInMethod.CARD, uid=CARD))
        assert reply.booking == BOOKING
    finally:
        await link.close()
        server.stop()


# --- the command line and the browser -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ([], "give --site"),
        (["--site", "heggedal", "--lang", "de"], "--lang 'de' is not one of nb, nn, en"),
        (["--demo", "--idle-seconds", "soon"], "--idle-seconds 'soon' is not a number"),
        (["--demo", "--idle-seconds", "1"], "--idle-seconds must be between 5 and 3600"),
        (["--demo", "--reader", "ACS ["], "--reader 'ACS [' is not a valid regular expression"),
        (["--demo", "serve"], "put the kiosk's options after 'serve'"),
        (["serve", "--demo", "--port", "70000"], "--port must be between 1 and 65535"),
    ],
)
def test_bad_options_give_one_line(args: list[str], error: str) -> None:
    result = CliRunner().invoke(kiosk_cli, args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and error in lines[0], result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_browser_page_loads_nothing_from_the_internet() -> None:
    port = _free_port()
    env = {**os.environ, "COLUMNS": "120"}
    process = subprocess.Popen(
        [sys.executable, "-c", "from meraapent.cli import main; main()", "kiosk", "serve", "--demo",
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        page = _get(f"http://127.0.0.1:{port}/", process)
        assert "googleapis" not in page and "https://" not in page
        assert 'class="textual-terminal"' in page
        for asset in ("fonts/RobotoMono-VariableFont_wght.ttf", "js/textual.js", "css/xterm.css"):
            assert f"http://127.0.0.1:{port}/static/{asset}" in page
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/{asset}", timeout=5) as response:
                assert response.status == 200
    finally:
        process.terminate()
        process.wait(10)


def _get(url: str, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return str(response.read().decode("utf-8"))
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
