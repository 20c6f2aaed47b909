"""What every kiosk screen shares: the app's language and clock, right-to-left layout, Escape for back."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, cast

from textual.binding import Binding, BindingType
from textual.screen import Screen

from protocol.i18n import direction, text

if TYPE_CHECKING:
    from kiosk.app import KioskApp


class KioskScreen(Screen[None]):
    """A screen in the app's current language; `name` is what the status file reports."""

    NAME: ClassVar[str] = "screen"

    @property
    def kiosk(self) -> KioskApp:
        return cast("KioskApp", self.app)

    @property
    def lang(self) -> str:
        return self.kiosk.lang

    def t(self, key: str, /, **values: object) -> str:
        return text(key, self.lang, **values)

    def now(self) -> datetime:
        return self.kiosk.clock()

    def apply_direction(self) -> None:
        """Right-aligned text and buttons for a right-to-left language."""
        self.set_class(direction(self.lang) == "rtl", "-rtl")

    def on_mount(self) -> None:
        self.apply_direction()

    def on_screen_resume(self) -> None:
        self.apply_direction()
        self.kiosk.report()


class BackScreen(KioskScreen):
    """A screen above the home screen: Escape (or its back button) returns."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "back", "Back", show=False)]

    def action_back(self) -> None:
        self.kiosk.go_home()
