"""The booking-code keypad: six digits on large keys, or from a keyboard (digits, Backspace, Enter).

OK is enabled only with six digits; then focus moves to it, so Enter sends the code from a keyboard too.
Nothing has focus before that, so a stray Enter types nothing; Tab reaches every key as everywhere else.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Button, Label

from kiosk.screens.base import BackScreen
from protocol.kiosk import CheckInMethod, CheckInRequest

CODE_LENGTH = 6

CSS = """
KeypadScreen #pad {
    height: auto;
}
KeypadScreen #keys {
    grid-size: 3 4;
    grid-gutter: 0 1;
    grid-columns: 12;
    grid-rows: 3;
    width: 40;
    height: 12;
}
KeypadScreen #keys Button {
    width: 12;
    min-width: 12;
    margin: 0;
}
KeypadScreen #side {
    width: 1fr;
    height: auto;
    padding: 0 2;
}
KeypadScreen #code {
    border: heavy $foreground;
    height: 3;
    width: 21;
    content-align: center middle;
    text-style: bold;
}
KeypadScreen #back {
    margin-top: 1;
}
"""


class KeypadScreen(BackScreen):
    NAME = "keypad"
    BINDINGS: ClassVar[list[BindingType]] = [
        *[Binding(str(digit), f"digit('{digit}')", show=False) for digit in range(10)],
        Binding("backspace", "delete", show=False),
        Binding("enter", "send", show=False, priority=True),
    ]

    def __init__(self, first_digit: str = "") -> None:
        super().__init__()
        self.code = first_digit if first_digit.isdigit() else ""

    def compose(self) -> ComposeResult:
        yield Label(self.t("kiosk.keypad.heading"), classes="heading")
        yield Label(self.t("kiosk.keypad.hint"))
        with Horizontal(id="pad"):
            with Grid(id="keys"):
                for digit in "123456789":
                    yield Button(digit, id=f"key-{digit}", classes="digit")
                yield Button(self.t("kiosk.keypad.delete"), id="delete")
                yield Button("0", id="key-0", classes="digit")
                yield Button(self.t("kiosk.keypad.ok"), id="ok", disabled=True)
            with Vertical(id="side"):
                yield Label(self._shown(), id="code")
                yield Button(self.t("kiosk.back"), id="back")

    def on_mount(self) -> None:
        super().on_mount()
        self._show()

    def _shown(self) -> str:
        return " ".join(self.code.ljust(CODE_LENGTH, "_"))

    def _show(self) -> None:
        self.query_one("#code", Label).update(self._shown())
        ok = self.query_one("#ok", Button)
        complete = len(self.code) == CODE_LENGTH
        ok.disabled = not complete
        if complete:
            ok.focus()
        self.refresh_bindings()

    def action_digit(self, digit: str) -> None:
        if len(self.code) < CODE_LENGTH:
            self.code += digit
            self._show()

    def action_delete(self) -> None:
        self.code = self.code[:-1]
        self._show()

    def action_send(self) -> None:
        if len(self.code) == CODE_LENGTH:
            code, self.code = self.code, ""
            self.kiosk.check_in(CheckInRequest(method=CheckInMethod.CODE, code=code))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "send":  # Enter sends a complete code; otherwise it presses the focused key
            return len(self.code) == CODE_LENGTH
        return True

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        button = event.button.id or ""
        if button.startswith("key-"):
            self.action_digit(button.removeprefix("key-"))
        elif button == "delete":
            self.action_delete()
        elif button == "ok":
            self.action_send()
        elif button == "back":
            self.action_back()
