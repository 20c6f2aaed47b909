"""A contactless reader behind pcscd: a card on the reader → CardPresented with its UID, gone → CardRemoved.

One thread per reader waits in SCardGetStatusChange (pcscd wakes it on every card event). On insertion it
connects in shared mode, asks for the UID with GET DATA (`FF CA 00 00 00`, PC/SC part 3, understood by every
PC/SC contactless reader) and disconnects at once, leaving the card to others. pcscd stopping or the reader
being unplugged make the reader offline; the thread keeps retrying with a growing back-off and says when the
reader is back. UIDs are never logged: they identify residents.
"""

from __future__ import annotations

import re
import threading
import time

import structlog
from smartcard import scard

from controller.devices import Backoff, ReaderLink
from controller.inputs import CardPresented, CardRemoved, InputSink

log = structlog.get_logger(__name__)

GET_UID = [0xFF, 0xCA, 0x00, 0x00, 0x00]
_GONE = scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE
_PROTOCOLS = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
_READ_ATTEMPTS = 3
_RETRY_MS = 150
_UNREADABLE = object()  # the card did not answer at all (as opposed to answering without a UID)


def _error(hresult: int) -> str:
    return f"{scard.SCardGetErrorMessage(hresult).strip().rstrip('.')} ({hresult & 0xFFFFFFFF:#x})"


def parse_uid_response(response: list[int]) -> bytes | None:
    """The UID from a GET DATA response (UID bytes + SW1 SW2), or None if the card did not give one."""
    if len(response) < 2 or response[-2:] != [0x90, 0x00]:
        return None
    uid = bytes(response[:-2])
    return uid if 4 <= len(uid) <= 10 else None


class PcscReader:
    """Reports the cards on the first PC/SC reader whose name matches `name_pattern` (a regular expression
    searched in names such as "ACS ACR1252 Dual Reader [ACR1252 Dual Reader PICC] 00 00")."""

    def __init__(
        self,
        name_pattern: str,
        reader_id: str,
        sink: InputSink,
        *,
        poll_ms: int = 1000,
        backoff: Backoff | None = None,
    ) -> None:
        try:
            self._pattern = re.compile(name_pattern)
        except re.error as exc:
            raise ValueError(
                f"reader name pattern {name_pattern!r} is not a valid regular expression: {exc}"
            ) from exc
        self.reader_id = reader_id
        self._sink = sink
        self._poll_ms = poll_ms
        self._backoff = backoff or Backoff()
        self._link = ReaderLink(reader_id, sink)
        self._stop = threading.Event()
        self._context_lock = threading.Lock()
        self._context: int | None = None
        self._card_present = False  # a CardPresented was sent and its CardRemoved not yet
        self._handled: int | None = None  # pcscd's event counter of the card on the reader, once dealt with
        self._unread: int | None = None  # ... of a card present but not read yet (retry pending)
        self._attempts = 0
        self._thread: threading.Thread | None = None

    @property
    def online(self) -> bool:
        return self._link.online

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"pcsc:{self.reader_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop watching; wakes the thread out of pcscd at once and joins it."""
        self._stop.set()
        thread, self._thread = self._thread, None
        deadline = time.monotonic() + timeout
        while thread is not None and thread.is_alive() and time.monotonic() < deadline:
            # Repeated: a cancel that lands just before the thread enters SCardGetStatusChange is lost.
            with self._context_lock:
                if self._context is not None:
                    scard.SCardCancel(self._context)
            thread.join(0.05)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                problem = self._session()
            except Exception as exc:  # pyscard raises bare SystemError on some pcscd failures
                problem = f"PC/SC error: {type(exc).__name__}: {exc}"
            self._card_gone()
            self._handled = self._unread = None
            if self._stop.is_set():
                return
            self._link.set(False, problem)
            self._stop.wait(self._backoff.next_delay())

    def _session(self) -> str:
        """One connection to pcscd, watching the reader until something breaks; returns what broke."""
        hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hresult != scard.SCARD_S_SUCCESS:
            return f"pcscd not reachable: {_error(hresult)}"
        with self._context_lock:
            self._context = context
        try:
            if self._stop.is_set():
                return "stopping"
            name = self._find_reader(context)
            if name is None:
                return f"no reader matches {self._pattern.pattern!r}"
            return self._watch(context, name)
        finally:
            with self._context_lock:
                self._context = None
            scard.SCardReleaseContext(context)

    def _find_reader(self, context: int) -> str | None:
        hresult, names = scard.SCardListReaders(context, [])
        if hresult != scard.SCARD_S_SUCCESS:
            return None
        return next((name for name in names if self._pattern.search(name)), None)

    def _watch(self, context: int, name: str) -> str:
        state = scard.SCARD_STATE_UNAWARE
        while not self._stop.is_set():
            retry_due = self._unread is not None
            wait_ms = _RETRY_MS if retry_due else self._poll_ms
            hresult, states = scard.SCardGetStatusChange(context, wait_ms, [(name, state)])
            if hresult == scard.SCARD_E_TIMEOUT:
                if retry_due:
                    self._read_card(context, name)
                continue
            if hresult == scard.SCARD_E_CANCELLED:
                return "stopping"
            if hresult != scard.SCARD_S_SUCCESS:
                return f"pcscd lost: {_error(hresult)}"
            event = int(states[0][1])
            if event & _GONE:
                return "reader unplugged"
            self._link.set(True)
            self._backoff.reset()
            self._on_state(context, name, event)
            state = event & ~scard.SCARD_STATE_CHANGED
        return "stopping"

    def _on_state(self, context: int, name: str, event: int) -> None:
        """Report insertions and removals; pcscd's event counter (upper 16 bits) also reveals a card swapped
        between two polls."""
        counter = event >> 16
        if not event & scard.SCARD_STATE_PRESENT or event & scard.SCARD_STATE_MUTE:
            self._card_gone()
            self._handled = self._unread = None
            return
        if counter in (self._handled, self._unread):
            return
        self._card_gone()
        self._unread, self._attempts = counter, 0
        self._read_card(context, name)

    def _read_card(self, context: int, name: str) -> None:
        """Read the UID of the card not yet read; a card that fails to answer (pulled away mid-read, or
        still on its way into the field) is tried again a few times while it stays present."""
        self._attempts += 1
        uid = self._read_uid(context, name)
        if uid is _UNREADABLE and self._attempts < _READ_ATTEMPTS:
            return
        self._handled, self._unread = self._unread, None
        if isinstance(uid, bytes):
            self._card_present = True
            self._sink(CardPresented(self.reader_id, uid))

    def _read_uid(self, context: int, name: str) -> bytes | object | None:
        """The UID; None if the card answered without one; _UNREADABLE if it did not answer at all."""
        hresult, card, protocol = scard.SCardConnect(context, name, scard.SCARD_SHARE_SHARED, _PROTOCOLS)
        if hresult != scard.SCARD_S_SUCCESS:
            log.warning("card could not be connected", reader=self.reader_id, error=_error(hresult))
            return _UNREADABLE
        try:
            hresult, response = scard.SCardTransmit(card, protocol, GET_UID)
        finally:
            scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
        if hresult != scard.SCARD_S_SUCCESS:
            log.warning("card did not answer", reader=self.reader_id, error=_error(hresult))
            return _UNREADABLE
        uid = parse_uid_response(response)
        if uid is None:
            status = bytes(response[-2:]).hex() if len(response) >= 2 else "none"
            log.warning("card gave no UID", reader=self.reader_id, status=status)
        return uid

    def _card_gone(self) -> None:
        if self._card_present:
            self._card_present = False
            self._sink(CardRemoved(self.reader_id))
