"""The wire under OSDP: libosdp reads and writes bytes through a Channel (read/write/flush, never blocking).

- SerialChannel: a real RS-485 bus on a serial port (a USB adapter or the Pi's UART with a transceiver);
  it reopens the port by itself when it goes away, and says why it is unusable (`problem`).
- SimBus: an RS-485 bus in memory, found by name in this process ("sim:<name>" in site.toml), for the
  simulator and tests: what the control panel sends, every attached reader hears; what a reader sends,
  only the panel hears.
- SocketChannel: one end of a socket (socket_channel_pair() for two ends in one process).

libosdp calls these from its refresh thread through C: they must return, never raise.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import ClassVar

import serial
import structlog
from osdp import Channel

log = structlog.get_logger(__name__)

OSDP_BAUD_RATES = (9600, 19200, 38400, 57600, 115200, 230400)
REOPEN_EVERY_S = 2.0


class BusChannel(Channel):  # type: ignore[misc]  # osdp is untyped
    """A Channel that can say why it cannot carry bytes right now (None when it can)."""

    problem: str | None = None

    def read(self, max_bytes: int) -> bytes:
        raise NotImplementedError

    def write(self, buf: bytes) -> int:
        raise NotImplementedError

    def flush(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Let go of the underlying device."""


class SerialChannel(BusChannel):
    """An OSDP bus on serial `port` at `baud` (8N1, as OSDP requires)."""

    def __init__(self, port: str, baud: int = 9600) -> None:
        super().__init__()
        if baud not in OSDP_BAUD_RATES:
            raise ValueError(f"OSDP runs at {', '.join(map(str, OSDP_BAUD_RATES))} baud, not {baud}")
        self.port, self.baud = port, baud
        self._serial: serial.Serial | None = None
        self._next_open = 0.0
        self.problem = "not opened yet"

    def __str__(self) -> str:
        return f"serial:{self.port}@{self.baud}"

    def _open(self) -> serial.Serial | None:
        if self._serial is not None:
            return self._serial
        now = time.monotonic()
        if now < self._next_open:
            return None
        self._next_open = now + REOPEN_EVERY_S
        try:
            self._serial = serial.Serial(self.port, self.baud, timeout=0, write_timeout=1.0)
        except (serial.SerialException, OSError, ValueError) as exc:
            self._failed(f"cannot open {self.port}: {exc}")
            return None
        if self.problem is not None:
            log.info("osdp.serial_open", port=self.port, baud=self.baud)
        self.problem = None
        return self._serial

    def _failed(self, problem: str) -> None:
        if problem != self.problem:
            log.error("osdp.serial_problem", port=self.port, problem=problem)
        self.problem = problem
        self.close()

    def read(self, max_bytes: int) -> bytes:
        port = self._open()
        if port is None:
            return b""
        try:
            return bytes(port.read(max_bytes))
        except (serial.SerialException, OSError) as exc:
            self._failed(f"{self.port} failed: {exc}")
            return b""

    def write(self, buf: bytes) -> int:
        port = self._open()
        if port is None:
            return 0
        try:
            return int(port.write(buf) or 0)
        except (serial.SerialException, OSError) as exc:
            self._failed(f"{self.port} failed: {exc}")
            return 0

    def flush(self) -> None:
        if self._serial is not None:
            try:
                self._serial.reset_input_buffer()
            except (serial.SerialException, OSError) as exc:
                self._failed(f"{self.port} failed: {exc}")

    def close(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                port.close()


class SimBus:
    """A named RS-485 bus in memory. `SimBus.named(name)` gives every caller in the process the same bus."""

    _buses: ClassVar[dict[str, SimBus]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._to_panel = bytearray()
        self._readers: list[SimReaderPort] = []

    @classmethod
    def named(cls, name: str) -> SimBus:
        with cls._registry_lock:
            bus = cls._buses.get(name)
            if bus is None:
                bus = cls._buses[name] = SimBus(name)
            return bus

    @classmethod
    def forget(cls, name: str) -> None:
        """Drop the bus of that name (the next `named` call makes a new, empty one)."""
        with cls._registry_lock:
            cls._buses.pop(name, None)

    def panel_channel(self) -> SimPanelPort:
        """The control panel's end of the bus."""
        return SimPanelPort(self)

    def reader_port(self) -> SimReaderPort:
        """A reader's end of the bus, attached until closed (a reader losing power)."""
        port = SimReaderPort(self)
        with self._lock:
            self._readers.append(port)
        return port

    def _detach(self, port: SimReaderPort) -> None:
        with self._lock:
            if port in self._readers:
                self._readers.remove(port)

    def _from_panel(self, data: bytes) -> None:
        with self._lock:
            for port in self._readers:
                port.inbox += data

    def _from_reader(self, data: bytes) -> None:
        with self._lock:
            self._to_panel += data

    def _take(self, buffer: bytearray, max_bytes: int) -> bytes:
        with self._lock:
            data = bytes(buffer[:max_bytes])
            del buffer[:max_bytes]
            return data

    def _clear(self, buffer: bytearray) -> None:
        with self._lock:
            buffer.clear()


class SimPanelPort(BusChannel):
    def __init__(self, bus: SimBus) -> None:
        super().__init__()
        self.bus = bus

    def __str__(self) -> str:
        return f"sim:{self.bus.name}"

    def read(self, max_bytes: int) -> bytes:
        return self.bus._take(self.bus._to_panel, max_bytes)

    def write(self, buf: bytes) -> int:
        self.bus._from_panel(bytes(buf))
        return len(buf)

    def flush(self) -> None:
        self.bus._clear(self.bus._to_panel)


class SimReaderPort(BusChannel):
    def __init__(self, bus: SimBus) -> None:
        super().__init__()
        self.bus = bus
        self.inbox = bytearray()
        self.attached = True

    def read(self, max_bytes: int) -> bytes:
        return self.bus._take(self.inbox, max_bytes)

    def write(self, buf: bytes) -> int:
        if self.attached:
            self.bus._from_reader(bytes(buf))
        return len(buf)

    def flush(self) -> None:
        self.bus._clear(self.inbox)

    def close(self) -> None:
        self.attached = False
        self.bus._detach(self)


class SocketChannel(BusChannel):
    """One end of a connected stream socket (non-blocking)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        sock.setblocking(False)
        self._sock = sock

    def read(self, max_bytes: int) -> bytes:
        try:
            return self._sock.recv(max_bytes)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError as exc:
            self.problem = f"socket failed: {exc}"
            return b""

    def write(self, buf: bytes) -> int:
        try:
            return self._sock.send(buf)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            self.problem = f"socket failed: {exc}"
            return 0

    def flush(self) -> None:
        while self.read(4096):
            pass

    def close(self) -> None:
        self._sock.close()


def socket_channel_pair() -> tuple[SocketChannel, SocketChannel]:
    """Two connected ends: one for a control panel, one for a reader."""
    one, two = socket.socketpair()
    return SocketChannel(one), SocketChannel(two)


def open_bus(kind: str, target: str, baud: int | None = None) -> BusChannel:
    """The panel's end of the bus site.toml names: ("serial", "/dev/ttyAMA0", 9600) or ("sim", "<name>")."""
    if kind == "serial":
        return SerialChannel(target, baud or 9600)
    if kind == "sim":
        return SimBus.named(target).panel_channel()
    raise ValueError(f"unknown OSDP bus kind {kind!r}: use serial or sim")
