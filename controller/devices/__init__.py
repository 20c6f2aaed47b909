"""Device adapters: each wraps one device library behind a small interface and speaks only controller.inputs.

- gpio: lock relays, plain outputs (buzzer, lights, intruder arm, speaker), debounced binary inputs and the
  fire release that unlocks every door without the agent's loop (gpiozero; MockFactory in tests).
- pcsc: contactless readers through pcscd (pyscard).
- keyboard: PIN keypads and keyboard-wedge QR scanners (evdev).
- serial_scanner: QR scanners on a serial port (pyserial).

The readers run a thread that reconnects on its own; the two helpers below are what they share: a back-off
between attempts and a reporter that says ReaderStatus only when online/offline really changes.
"""

from __future__ import annotations

import threading

import structlog

from controller.inputs import InputSink, ReaderStatus

log = structlog.get_logger(__name__)


class Backoff:
    """Growing waits between reconnect attempts: `initial_s`, doubled up to `max_s`, reset after success."""

    def __init__(self, initial_s: float = 0.25, max_s: float = 5.0) -> None:
        if not 0 < initial_s <= max_s:
            raise ValueError(f"back-off needs 0 < initial ({initial_s}) <= max ({max_s})")
        self.initial_s = initial_s
        self.max_s = max_s
        self._next = initial_s

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.max_s)
        return delay

    def reset(self) -> None:
        self._next = self.initial_s


class ReaderLink:
    """Tells the sink when a reader goes offline or comes back, once per change, never twice in a row."""

    def __init__(self, reader_id: str, sink: InputSink) -> None:
        self.reader_id = reader_id
        self._sink = sink
        self._online: bool | None = None
        self._lock = threading.Lock()

    @property
    def online(self) -> bool:
        return bool(self._online)

    def set(self, online: bool, detail: str = "") -> None:
        with self._lock:
            if self._online == online:
                return
            self._online = online
        if online:
            log.info("reader online", reader=self.reader_id)
        else:
            log.warning("reader offline", reader=self.reader_id, detail=detail)
        self._sink(ReaderStatus(self.reader_id, online, detail))
