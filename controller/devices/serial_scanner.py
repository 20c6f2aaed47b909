"""A QR/barcode scanner on a serial port (RS-232, or USB in CDC/serial mode): one code per line.

Lines end in CR, LF or CR LF (scanners differ); inner spaces are kept, since base45 uses them. When the port
goes away (USB scanner unplugged) the reader goes offline and reopens the same path with a growing back-off;
point it at a stable /dev/serial/by-id/... link so the scanner is found again under a new ttyACMn.
"""

from __future__ import annotations

import re
import threading

import serial
import structlog

from controller.devices import Backoff, ReaderLink
from controller.inputs import CodeScanned, InputSink

log = structlog.get_logger(__name__)

_LINE_END = re.compile(rb"[\r\n]")


class LineSplitter:
    """Bytes as they arrive → complete lines, without their CR/LF; empty lines (the LF of CR LF) vanish and
    a line longer than `max_length` is dropped instead of buffered without end."""

    def __init__(self, max_length: int = 4096) -> None:
        self.max_length = max_length
        self._pending = b""
        self._overflow = False

    def feed(self, data: bytes) -> list[str]:
        *lines, pending = _LINE_END.split(self._pending + data)
        texts: list[str] = []
        for line in lines:
            if self._overflow or len(line) > self.max_length:
                self._overflow = False  # this was the end of a line already too long
                log.warning("scanned code too long, ignored", limit=self.max_length)
            elif line:
                texts.append(line.decode("utf-8", errors="replace"))
        if len(pending) > self.max_length:
            pending, self._overflow = b"", True
        self._pending = pending
        return texts


class SerialScanner:
    def __init__(
        self,
        port: str,
        reader_id: str,
        sink: InputSink,
        baudrate: int = 9600,
        *,
        backoff: Backoff | None = None,
        read_timeout_s: float = 0.2,
    ) -> None:
        self.port = port
        self.reader_id = reader_id
        self.baudrate = baudrate
        self._sink = sink
        self._backoff = backoff or Backoff()
        self._read_timeout_s = read_timeout_s  # how soon stop() is noticed
        self._link = ReaderLink(reader_id, sink)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def online(self) -> bool:
        return self._link.online

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"serial:{self.reader_id}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with serial.Serial(
                    self.port, self.baudrate, timeout=self._read_timeout_s, exclusive=True
                ) as port:
                    self._link.set(True)
                    self._backoff.reset()
                    self._pump(port)
            except (serial.SerialException, OSError) as exc:
                self._link.set(False, f"{self.port}: {exc}")
                self._stop.wait(self._backoff.next_delay())

    def _pump(self, port: serial.Serial) -> None:
        lines = LineSplitter()
        while not self._stop.is_set():
            data = port.read(max(1, port.in_waiting))
            for text in lines.feed(data):
                self._sink(CodeScanned(self.reader_id, text))
