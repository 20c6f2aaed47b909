"""Help: how meråpent works, the house rules, emergency numbers, whom to call, and the site's own text."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Label

from kiosk import words
from kiosk.screens.base import BackScreen

CSS = """
HelpScreen #help-text {
    height: 1fr;
}
HelpScreen .section {
    text-style: bold underline;
    margin-top: 1;
}
HelpScreen #emergency {
    text-style: bold;
    color: $warning;
}
"""


class HelpScreen(BackScreen):
    NAME = "help"

    def compose(self) -> ComposeResult:
        today = self.kiosk.today
        yield Label(self.t("kiosk.help.heading"), classes="heading")
        with VerticalScroll(id="help-text"):
            yield Label(self.t("kiosk.help.emergency_heading"), classes="section")
            yield Label(self.t("kiosk.help.emergency"), id="emergency")
            if today is not None and (today.caretaker_phone or today.contact_phone):
                yield Label(self.t("kiosk.help.contact_heading"), classes="section")
                if today.caretaker_phone:
                    yield Label(self.t("kiosk.help.caretaker", phone=today.caretaker_phone), id="caretaker")
                if today.contact_phone:
                    yield Label(self.t("kiosk.help.torg", phone=today.contact_phone), id="torg")
            yield Label(self.t("kiosk.help.how_heading"), classes="section")
            yield Label(self.t("kiosk.help.how"))
            yield Label(self.t("kiosk.help.rules_heading"), classes="section")
            for rule in self.t("kiosk.help.rules").splitlines():
                yield Label(f"• {rule}")
            site_text = words.help_text(today, self.lang)
            if site_text:
                yield Label(self.t("kiosk.help.site_heading"), classes="section")
                yield Label(site_text, id="site-text")
        with Horizontal(classes="actions"):
            yield Button(self.t("kiosk.back"), id="back")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#back", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_back()
