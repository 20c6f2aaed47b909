"""The kiosk app: the home screen below, one screen at a time above it, and back home when the person is done
or walks away.

The app holds what every screen needs: the line to the agent (`link`), the latest overview of today, the
language, the site's clock and timezone. It refreshes the overview every few seconds, checks people in from
the card reader, the QR scanner (caught among the key presses by kiosk.wedge) and the keypad, and resets to
the home screen in the default language after `idle_seconds` without a touch or key, removing every screen
that showed anything personal. With `status_file` it writes one JSON line naming the screen shown, so a test
or a caretaker's script can see from outside where the kiosk is.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from textual import events, work
from textual.app import App
from textual.message import Message
from textual.screen import Screen

from kiosk import words
from kiosk.link import KioskLink, LinkDownError
from kiosk.look import CONTRAST
from kiosk.look import CSS as LOOK
from kiosk.reader import CardSource
from kiosk.screens import checkin, help, home, keypad
from kiosk.screens import language as languages
from kiosk.screens.base import KioskScreen
from kiosk.screens.checkin import ConfirmationScreen, OutcomeScreen, WaitScreen
from kiosk.screens.help import HelpScreen
from kiosk.screens.home import HomeScreen
from kiosk.screens.keypad import KeypadScreen
from kiosk.screens.language import LanguageScreen
from kiosk.wedge import Verdict, Wedge, scan_request
from protocol.i18n import language
from protocol.kiosk import CheckInMethod, CheckInOutcome, CheckInReply, CheckInRequest, TodayReply

# One stylesheet, so the screens' own rules and the shared ones meet under the usual CSS specificity.
CSS = "\n".join((LOOK, home.CSS, keypad.CSS, checkin.CSS, help.CSS, languages.CSS))
FOUND = (CheckInOutcome.CHECKED_IN, CheckInOutcome.ALREADY_CHECKED_IN)


def utc_now() -> datetime:
    return datetime.now(UTC)


class CardTapped(Message):
    """A card at the kiosk's reader (posted from the reader's thread)."""

    def __init__(self, uid: str) -> None:
        super().__init__()
        self.uid = uid


class ReaderChanged(Message):
    def __init__(self, online: bool) -> None:
        super().__init__()
        self.online = online


class KioskApp(App[None]):
    TITLE = "meråpent"
    CSS = CSS
    ENABLE_COMMAND_PALETTE = False
    AUTO_FOCUS = None  # home has nothing chosen until someone touches or tabs; the other screens choose

    def __init__(
        self,
        link: KioskLink,
        *,
        site: str = "",
        lang: str = "nb",
        idle_seconds: float = 30.0,
        refresh_seconds: float = 5.0,
        cards: CardSource | None = None,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        status_file: Path | None = None,
    ) -> None:
        super().__init__()
        self.link = link
        self.site = site
        self.default_lang = language(lang)
        self.lang = self.default_lang
        self.idle_seconds = idle_seconds
        self.refresh_seconds = refresh_seconds
        self.cards = cards
        self.clock = clock
        self.monotonic = monotonic
        self.status_file = status_file
        self.today: TodayReply | None = None
        self.link_ok: bool | None = None  # None until the agent has answered or failed once
        self.problem = ""  # why the link is down, for the status file (never shown)
        self.has_reader = cards is not None
        self.reader_online: bool | None = None
        self.home = HomeScreen()
        self._wedge = Wedge(monotonic)
        self._last_touch = monotonic()
        self._refreshing = False

    # --- life cycle ---------------------------------------------------------------------------------------

    def get_default_screen(self) -> Screen[None]:
        return self.home

    def on_mount(self) -> None:
        self.register_theme(CONTRAST)
        self.theme = CONTRAST.name
        self.set_interval(self.refresh_seconds, self.refresh_today)
        self.set_interval(1.0, self.tick)
        self.refresh_today()
        if self.cards is not None:
            self.cards.start(self._card_from_reader, self._reader_from_reader)

    def _card_from_reader(self, uid: str) -> None:
        """Called on the reader's thread: post_message is the thread-safe way in."""
        self.post_message(CardTapped(uid))

    def _reader_from_reader(self, online: bool) -> None:
        self.post_message(ReaderChanged(online))

    async def on_unmount(self) -> None:
        if self.cards is not None:
            self.cards.stop()
        await self.link.close()

    @property
    def tz(self) -> ZoneInfo:
        return words.zone(self.today.timezone if self.today is not None else None)

    def phone(self) -> str:
        """Whom to call when the kiosk cannot help: the caretaker, else the torg."""
        if self.today is None:
            return ""
        return self.today.caretaker_phone or self.today.contact_phone

    # --- input: touches, keys, the scanner, the reader -----------------------------------------------------

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key | events.MouseDown) and not event.is_forwarded:
            self.touch()
            if isinstance(event, events.Key) and self._scanned(event):
                return
        await super().on_event(event)

    def _scanned(self, key: events.Key) -> bool:
        """True when the key belongs to a scanned code (and is kept from the screens)."""
        verdict = self._wedge.feed(key.key, key.character)
        if verdict is Verdict.SCANNED:
            self.check_in(scan_request(self._wedge.scanned))
        return verdict is not Verdict.NOT_OURS

    def on_card_tapped(self, message: CardTapped) -> None:
        self.touch()
        try:
            request = CheckInRequest(method=CheckInMethod.CARD, uid=message.uid)
        except ValueError:
            return  # a UID outside the contract's 4–10 bytes: no card we could know
        self.check_in(request)

    def on_reader_changed(self, message: ReaderChanged) -> None:
        self.reader_online = message.online
        self.home.show()

    def touch(self) -> None:
        self._last_touch = self.monotonic()

    # --- the overview --------------------------------------------------------------------------------------

    def refresh_today(self) -> None:
        if not self._refreshing:
            self._refreshing = True
            self._fetch_today()

    @work(group="today", exit_on_error=False)
    async def _fetch_today(self) -> None:
        try:
            reply = await self.link.today()
            if self.site and reply.site != self.site:
                raise LinkDownError(f"the agent serves site {reply.site!r}, this kiosk is for {self.site!r}")
        except LinkDownError as exc:
            self.link_failed(str(exc))
        else:
            self.today, self.link_ok, self.problem = reply, True, ""
        finally:
            self._refreshing = False
        self.home.show()
        self.report()

    def link_failed(self, problem: str = "the agent did not answer") -> None:
        self.link_ok, self.problem = False, problem

    def tick(self) -> None:
        self.home.show_clock()
        self.reset_if_idle()

    # --- check-in ------------------------------------------------------------------------------------------

    def check_in(self, request: CheckInRequest) -> None:
        """Check in whoever identified themselves, from any screen: a new person starts from scratch."""
        self._check_in(request)

    @work(group="screens", exclusive=True, exit_on_error=False)
    async def _check_in(self, request: CheckInRequest) -> None:
        await self.return_home()
        waiting = WaitScreen()
        await self.push_screen(waiting)
        try:
            reply = await self.link.check_in(request)
        except Exception as exc:  # LinkDownError, or a bug: the person gets words either way, no traceback
            self.link_failed(str(exc) or type(exc).__name__)
            result: KioskScreen = OutcomeScreen(words.not_answering(self.lang, self.phone()))
        else:
            self.link_ok = True
            result = self._result(request, reply)
        if self.screen is waiting:  # not reset meanwhile
            self.touch()
            await self.switch_screen(result)

    def _result(self, request: CheckInRequest, reply: CheckInReply) -> KioskScreen:
        said = words.check_in_words(reply, request.method, self.clock(), self.tz, self.lang, self.phone())
        if reply.outcome in FOUND and reply.booking is not None:
            return ConfirmationScreen(reply, said.heading)
        return OutcomeScreen(said, retry_code=request.method is CheckInMethod.CODE)

    # --- navigation ----------------------------------------------------------------------------------------

    def open_keypad(self, first_digit: str) -> None:
        self.push_screen(KeypadScreen(first_digit))

    def open_help(self) -> None:
        self.push_screen(HelpScreen())

    def open_languages(self) -> None:
        self.push_screen(LanguageScreen())

    def go_home(self, then: KioskScreen | None = None) -> None:
        """Back to the home screen (and on to `then`); safe to call from a screen that is about to go."""
        self._navigate(None, then)

    def choose_language(self, lang: str) -> None:
        self._navigate(language(lang), None)

    @work(group="screens", exclusive=True, exit_on_error=False)
    async def _navigate(self, lang: str | None, then: KioskScreen | None) -> None:
        await self.return_home()
        if lang is not None:
            await self._set_language(lang)
        if then is not None:
            await self.push_screen(then)

    async def return_home(self, *, reset_language: bool = False) -> None:
        """Remove every screen above the home screen (and what they showed)."""
        for _ in range(len(self.screen_stack) - 1):
            if len(self.screen_stack) > 1:  # one pop may still be finishing from a cancelled worker
                await self.pop_screen()
        self._wedge.clear()
        self.home.set_focus(None)
        if reset_language:
            await self._set_language(self.default_lang)
        self.home.show()
        self.report()

    async def _set_language(self, lang: str) -> None:
        if lang != self.lang:
            self.lang = lang
            await self.home.recompose()
            self.home.show()
        self.report()

    def reset_if_idle(self) -> None:
        """After `idle_seconds` without a touch: home, in the default language, with nothing personal."""
        if self.monotonic() - self._last_touch < self.idle_seconds:
            return
        if len(self.screen_stack) > 1 or self.lang != self.default_lang or self.focused is not None:
            self.touch()
            self._reset()

    @work(group="screens", exclusive=True, exit_on_error=False)
    async def _reset(self) -> None:
        await self.return_home(reset_language=True)

    # --- seen from outside ---------------------------------------------------------------------------------

    def shown(self) -> str:
        screen = self.screen
        return screen.NAME if isinstance(screen, KioskScreen) else type(screen).__name__

    def report(self) -> None:
        """One JSON line in `status_file`, replaced atomically: the screen shown, the language, the link."""
        if self.status_file is None:
            return
        link = {None: "connecting", True: "up", False: "down"}[self.link_ok]
        line = json.dumps({"screen": self.shown(), "lang": self.lang, "link": link, "problem": self.problem})
        temporary = self.status_file.with_name(self.status_file.name + ".tmp")
        with contextlib.suppress(OSError):
            temporary.write_text(line + "\n", "utf-8")
            os.replace(temporary, self.status_file)


def screen_text(app: App[None]) -> str:
    """The screen shown, as plain text (one line per row, trailing blanks dropped): what a person sees,
    without the colours; for text snapshots and for looking at a running kiosk from a test."""
    strips = app.screen._compositor.render_strips()
    return "\n".join(strip.text.rstrip() for strip in strips).rstrip("\n") + "\n"
