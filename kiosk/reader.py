"""The kiosk's own contactless reader: the agent's PC/SC adapter, with its events turned into check-ins.

controller.devices.pcsc.PcscReader watches the reader in its own thread and reports CardPresented (raw UID)
and ReaderStatus; `KioskReader` passes on only what the kiosk needs: the UID as lowercase hex for a card
check-in (the agent hashes it; the kiosk neither shows, logs nor keeps it) and whether the reader works.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from controller.inputs import CardPresented, InputEvent, ReaderStatus

READER_ID = "kiosk"


class CardSource(Protocol):
    """Something that reports cards held to the kiosk, from its own thread."""

    def start(self, on_card: Callable[[str], None], on_status: Callable[[bool], None]) -> None: ...

    def stop(self) -> None: ...


def card_sink(
    on_card: Callable[[str], None], on_status: Callable[[bool], None]
) -> Callable[[InputEvent], None]:
    """An InputSink for PcscReader: a card's UID as hex, the reader's online state; nothing else."""

    def sink(event: InputEvent) -> None:
        if isinstance(event, CardPresented):
            on_card(event.uid.hex())
        elif isinstance(event, ReaderStatus):
            on_status(event.online)

    return sink


class KioskReader:
    """The first PC/SC reader whose name matches `name_pattern` (a regular expression, as for the agent)."""

    def __init__(self, name_pattern: str) -> None:
        from controller.devices.pcsc import PcscReader  # pyscard loads only when a reader is configured

        self._factory = PcscReader
        self.name_pattern = name_pattern
        self._reader: PcscReader | None = None

    def start(self, on_card: Callable[[str], None], on_status: Callable[[bool], None]) -> None:
        self._reader = self._factory(self.name_pattern, READER_ID, card_sink(on_card, on_status))
        self._reader.start()

    def stop(self) -> None:
        if self._reader is not None:
            self._reader.stop()
            self._reader = None
