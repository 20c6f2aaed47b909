"""Choosing a language: every language we have, each named in itself, so anyone finds their own."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Grid, Horizontal
from textual.widgets import Button, Label

from kiosk.screens.base import BackScreen
from protocol.i18n import LANGUAGE_NAMES

CSS = """
LanguageScreen #languages {
    grid-size: 2;
    grid-gutter: 1 2;
    grid-rows: 3;
    height: auto;
}
LanguageScreen #languages Button {
    width: 100%;
}
"""


class LanguageScreen(BackScreen):
    NAME = "language"

    def compose(self) -> ComposeResult:
        yield Label(self.t("kiosk.language.heading"), classes="heading")
        with Grid(id="languages"):
            for lang, name in LANGUAGE_NAMES.items():
                yield Button(name, id=f"lang-{lang}")
        with Horizontal(classes="actions"):
            yield Button(self.t("kiosk.back"), id="back")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(f"#lang-{self.lang}", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        button = event.button.id or ""
        if button.startswith("lang-"):
            self.kiosk.choose_language(button.removeprefix("lang-"))
        else:
            self.action_back()
