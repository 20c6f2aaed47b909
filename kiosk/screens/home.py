"""The home screen: where you are, what time it is, whether the torg is open, what is on today, and one thing
to do: hold your card to the reader or show your code. A scanned code is caught by the app (kiosk.wedge);
digits typed on a keyboard open the code keypad with that digit.
"""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Digits, Label, Static

from kiosk import words
from kiosk.screens.base import KioskScreen
from protocol.i18n import direction

CSS = """
HomeScreen #masthead {
    height: 3;
    margin-top: 1;
}
HomeScreen #site {
    width: 1fr;
    height: 3;
    content-align: left middle;
    text-style: bold;
}
HomeScreen.-rtl #site {
    content-align: right middle;
}
HomeScreen #clock {
    width: auto;
}
HomeScreen #status {
    margin-top: 1;
    text-style: bold;
}
HomeScreen #status.closing {
    background: $warning;
    color: $background;
    padding: 0 1;
}
HomeScreen #cta {
    border: heavy $foreground;
    padding: 0 1;
    margin-top: 1;
    text-style: bold;
    height: auto;
}
HomeScreen #cta.down {
    border: heavy $error;
}
HomeScreen #programme-heading {
    margin-top: 1;
    text-style: bold underline;
}
HomeScreen #programme {
    height: 1fr;
}
"""


class HomeScreen(KioskScreen):
    NAME = "home"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(str(digit), f"type_code('{digit}')", show=False) for digit in range(10)
    ]

    def compose(self) -> ComposeResult:
        with Horizontal(id="masthead"):
            yield Label(self._site_name(), id="site")
            yield Digits(self._clock(), id="clock")
        yield Label("", id="status")
        yield Static("", id="cta")
        yield Label(self.t("kiosk.home.today"), id="programme-heading")
        with VerticalScroll(id="programme", can_focus=False):
            yield Static("", id="rows")
        with Horizontal(classes="actions"):
            yield Button(self.t("kiosk.home.type_code"), id="type-code")
            yield Button(self.t("kiosk.home.help"), id="help")
            yield Button(self.t("kiosk.home.language"), id="language")

    _ready = False  # composed and mounted: show() has widgets to fill

    def on_mount(self) -> None:
        super().on_mount()
        self._ready = True
        self.show()

    def show(self) -> None:
        """Fill in everything from the app's latest overview (or say the door system is not answering)."""
        if not self._ready:
            return
        self.apply_direction()
        self.query_one("#site", Label).update(self._site_name())
        self.show_clock()
        self._show_status()
        self._show_call_to_action()
        self._show_programme()

    def show_clock(self) -> None:
        """Called every second by the app's timer, which may still fire while the app shuts down and this
        screen's widgets are already gone: then there is no clock to update."""
        if self._ready:
            for clock in self.query("#clock").results(Digits):
                clock.update(self._clock())

    def _site_name(self) -> str:
        today = self.kiosk.today
        return today.name if today is not None else self.kiosk.site

    def _clock(self) -> str:
        return words.clock(self.now(), self.kiosk.tz)

    def _show_status(self) -> None:
        label = self.query_one("#status", Label)
        today = self.kiosk.today
        if today is None or not self.kiosk.link_ok:
            label.update("")
            label.set_classes("")
            return
        status = words.status(today, self.now(), self.lang)
        label.update(status.line)
        label.set_classes(status.mood)

    def _show_call_to_action(self) -> None:
        cta = self.query_one("#cta", Static)
        kiosk = self.kiosk
        if kiosk.link_ok is None:
            cta.update(self.t("kiosk.home.connecting"))
        elif not kiosk.link_ok:
            cta.update(self.t("kiosk.home.not_answering"))
        elif not kiosk.has_reader:
            cta.update(self.t("kiosk.home.call_to_action_no_reader"))
        elif kiosk.reader_online is False:
            cta.update(self.t("kiosk.home.reader_offline"))
        else:
            cta.update(self.t("kiosk.home.call_to_action"))
        cta.set_class(kiosk.link_ok is False, "down")

    def _show_programme(self) -> None:
        rows = self.query_one("#rows", Static)
        today = self.kiosk.today if self.kiosk.link_ok else None
        self.query_one("#programme-heading", Label).display = today is not None
        found = words.programme(today, self.now()) if today is not None else []
        if not found:
            rows.update(self.t("kiosk.home.no_bookings") if today is not None else "")
            return
        rtl = direction(self.lang) == "rtl"
        table = Table.grid(padding=(0, 3), expand=rtl)
        columns = [[r.time for r in found], [r.room for r in found], [r.who for r in found]]
        if rtl:
            columns.reverse()
        for _ in columns:
            table.add_column(justify="right" if rtl else "left")
        for cells in zip(*columns, strict=True):
            table.add_row(*cells)
        rows.update(table)

    def action_type_code(self, digit: str) -> None:
        self.kiosk.open_keypad(digit)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "type-code":
            self.kiosk.open_keypad("")
        elif event.button.id == "help":
            self.kiosk.open_help()
        elif event.button.id == "language":
            self.kiosk.open_languages()
