"""After a card, code or QR code: a moment's wait, then either the confirmation (room, time, the way there,
the door that opens; extend or end the booking) or the outcome in plain words with what to do next.

These screens hold the only personal things the kiosk ever shows; the app removes them when the person is
done, presses Escape, or walks away (idle reset).
"""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Label

from kiosk import words
from kiosk.link import LinkDownError
from kiosk.screens.base import BackScreen, KioskScreen
from kiosk.screens.keypad import KeypadScreen
from protocol.kiosk import BookingCard, ChangeOutcome, ChangeReply, CheckInReply

CSS = """
ConfirmationScreen #booking Label {
    margin-bottom: 1;
}
ConfirmationScreen #booking {
    height: auto;
    border: heavy $foreground;
    padding: 1 2 0 2;
}
ConfirmationScreen #change {
    height: auto;
}
"""


class WaitScreen(KioskScreen):
    """While the agent decides (a fraction of a second, at most the link's timeout)."""

    NAME = "wait"

    def compose(self) -> ComposeResult:
        yield Label(self.t("kiosk.wait"), classes="heading")


class OutcomeScreen(BackScreen):
    """Any result but a booking found: what happened and what to do next; "Try again" for a typed code."""

    NAME = "outcome"

    def __init__(self, said: words.Words, *, retry_code: bool = False) -> None:
        super().__init__()
        self.said = said
        self.retry_code = retry_code

    def compose(self) -> ComposeResult:
        yield Label(self.said.heading, classes="heading", id="heading")
        for line in self.said.lines:
            yield Label(line)
        if self.said.next_step:
            yield Label(self.said.next_step, classes="next", id="next")
        with Horizontal(classes="actions"):
            if self.retry_code:
                yield Button(self.t("kiosk.outcome.try_again"), id="retry")
            yield Button(self.t("kiosk.done"), id="done")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#retry" if self.retry_code else "#done", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.kiosk.go_home(then=KeypadScreen() if event.button.id == "retry" else None)


class ConfirmationScreen(BackScreen):
    """The booking checked in: where to go and which door opens; extend or end it; done."""

    NAME = "confirmation"

    def __init__(self, reply: CheckInReply, heading: str) -> None:
        super().__init__()
        assert reply.booking is not None
        self.reply = reply
        self.booking: BookingCard = reply.booking
        self.heading = heading
        self.ends_at = reply.booking.ends_at

    def compose(self) -> ComposeResult:
        yield Label(self.heading, classes="heading", id="heading")
        with Vertical(id="booking"):
            yield from self._booking_lines()
        yield Label("", id="result", classes="next hidden")
        changeable = self.reply.session is not None  # extend and end need the agent's session
        with Horizontal(classes="actions", id="change"):
            for minutes in self.reply.extend_minutes if changeable else []:
                label = words.extend_label(minutes, self.lang)
                yield Button(label, id=f"extend-{minutes}", classes="extend")
            if self.reply.can_end and changeable:
                yield Button(self.t("kiosk.confirm.end"), id="end")
            yield Button(self.t("kiosk.done"), id="done")
        with Horizontal(classes="actions hidden", id="end-confirm"):
            yield Label(self.t("kiosk.confirm.end_question"), id="end-question")
        with Horizontal(classes="actions hidden", id="end-buttons"):
            yield Button(self.t("kiosk.confirm.end_yes"), id="end-yes")
            yield Button(self.t("kiosk.confirm.end_no"), id="end-no")

    def _booking_lines(self) -> ComposeResult:
        b = self.booking
        yield Label(self.t("kiosk.confirm.room", room=b.room_name), id="room")
        yield Label(self._when(), id="when")
        yield Label(self.t("kiosk.confirm.zone", zone=b.zone_name), id="zone")
        if b.door_name or b.door:
            yield Label(self.t("kiosk.confirm.door", door=b.door_name or b.door), id="door")

    def _when(self) -> str:
        tz, now = self.kiosk.tz, self.now()
        return self.t(
            "kiosk.confirm.when",
            start=words.moment(self.booking.starts_at, now, tz, self.lang),
            end=words.moment(self.ends_at, now, tz, self.lang),
        )

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#done", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        button = event.button.id or ""
        if button.startswith("extend-"):
            self._only_done()
            self._change(int(button.removeprefix("extend-")))
        elif button == "end":
            self._ask_to_end(True)
        elif button == "end-no":
            self._ask_to_end(False)
        elif button == "end-yes":
            self._ask_to_end(False)
            self._only_done()
            self._change(None)
        elif button == "done":
            self.kiosk.go_home()

    def _only_done(self) -> None:
        """One change per check-in: the other buttons are disabled at once (and stay where they are, so the
        second tap of a double tap lands on nothing), and a further extension would need a fresh look at
        the room's next booking anyway."""
        for button in self.query("#change Button"):
            button.disabled = button.id != "done"
        self.query_one("#done", Button).focus()

    def _ask_to_end(self, asking: bool) -> None:
        self.query_one("#change").set_class(asking, "hidden")
        self.query_one("#end-confirm").set_class(not asking, "hidden")
        self.query_one("#end-buttons").set_class(not asking, "hidden")
        self.query_one("#end-no" if asking else "#done", Button).focus()

    @work(group="change", exit_on_error=False)
    async def _change(self, minutes: int | None) -> None:
        """Extend by `minutes`, or end now (None), and say in one sentence how it went."""
        session = self.reply.session or ""
        try:
            if minutes is None:
                reply = await self.kiosk.link.end(session)
            else:
                reply = await self.kiosk.link.extend(session, minutes)
        except LinkDownError:
            self.kiosk.link_failed()
            said = words.not_answering(self.lang, self.kiosk.phone()).heading
        else:
            said = words.change_words(reply, minutes is not None, self.now(), self.kiosk.tz, self.lang)
            self._apply(reply)
        self.kiosk.touch()
        result = self.query_one("#result", Label)
        result.update(said)
        result.remove_class("hidden")

    def _apply(self, reply: ChangeReply) -> None:
        if reply.outcome is ChangeOutcome.ACCEPTED and reply.ends_at is not None:
            self.ends_at = reply.ends_at
            self.query_one("#when", Label).update(self._when())
