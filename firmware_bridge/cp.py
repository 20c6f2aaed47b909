"""The OSDP control panel of a site: every OSDP reader on one RS-485 bus, each seen by the agent as one door's
reader, exactly like a PC/SC reader (controller.inputs), plus LEDs and a beeper the agent's Feedback drives.

One libosdp ControlPanel serves the whole bus; `OsdpBus.reader()` adds a reader (bus address -> door) before
the bus starts, and the returned OsdpReader is the device controller.hardware starts, stops and hands
feedback to. What the readers report becomes:

- a card read -> CardPresented(door, uid) (firmware_bridge.formats fixes the UID bytes; a misread is refused
  and logged, never passed on);
- keypad keys -> KeyPressed(door, '0'-'9' / '#' enter / '*' clear);
- the reader's tamper switch -> InputChanged(Signal.TAMPER, active, door);
- a reader going silent or coming back -> ReaderStatus(door, online, detail).

Secure channel is always on: each reader has its own key (firmware_bridge.keys). Normally libosdp is told to
enforce it, so a reader with another key never comes online; the detail says whether the reader answered at
all (wrong key) or not (wiring, power, address). With `install_mode`, a reader still on the default key
SCBK-D is accepted just long enough for libosdp to give it its key from the key file, then the secure channel
restarts with that key; a reader that answers without any secure channel is never accepted.

libosdp keeps a reader it lost offline for 300 s before trying again; the bus asks it again after a short,
growing back-off instead, so a reader that gets its power back is in service within seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import osdp_sys
import structlog
from osdp import Command, Event, EventNotification, LibFlag, LogLevel, PDInfo, StatusReportType

from controller.devices import Backoff, ReaderLink
from controller.inputs import CardPresented, Feedback, InputChanged, InputSink, KeyPressed, Signal
from firmware_bridge.channel import BusChannel
from firmware_bridge.feedback import OsdpCommand, feedback_commands
from firmware_bridge.formats import RefusedRead, decode_card, decode_keys
from firmware_bridge.loop import POLL_S, RefreshLoop

log = structlog.get_logger(__name__)

STARTUP_GRACE_S = 3.0  # a reader not in service this long after start is reported offline
SUPERVISE_EVERY_S = 0.1
HEARD_RECENTLY_S = 2.0
REPLY_BIT = 0x80
SOM = 0x53


class ReplyWatch:
    """Notes when each address last answered on the bus (OSDP frames: SOM, address | 0x80 for a reply, length
    LSB/MSB, ...). Only for saying *why* a reader is offline: answering with the wrong key is not the same
    repair as not answering at all."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.heard: dict[int, float] = {}

    def feed(self, data: bytes, now: float) -> None:
        buf = self._buffer
        buf += data
        while True:
            start = buf.find(SOM)
            if start < 0:
                buf.clear()
                return
            del buf[:start]
            if len(buf) < 4:
                return
            length = buf[2] | buf[3] << 8
            if not 7 <= length <= 1500:
                del buf[:1]  # not a frame start after all
                continue
            if len(buf) < length:
                return
            if buf[1] & REPLY_BIT:
                self.heard[buf[1] & 0x7F] = now
            del buf[:length]


class _WatchedChannel(BusChannel):
    """The bus channel as libosdp sees it, with replies noted on the way in."""

    def __init__(self, inner: BusChannel, watch: ReplyWatch) -> None:
        super().__init__()
        self.inner, self.watch = inner, watch

    def __str__(self) -> str:
        return str(self.inner)

    def read(self, max_bytes: int) -> bytes:
        data = self.inner.read(max_bytes)
        if data:
            self.watch.feed(data, time.monotonic())
        return data

    def write(self, buf: bytes) -> int:
        return self.inner.write(buf)

    def flush(self) -> None:
        self.inner.flush()


class OsdpReader:
    """One door's reader on the bus: start/stop like any device, `feedback` lights its LEDs."""

    def __init__(self, bus: OsdpBus, address: int, reader_id: str, sink: InputSink) -> None:
        self.bus = bus
        self.address = address
        self.reader_id = reader_id
        self.sink = sink
        self.link = ReaderLink(reader_id, sink)

    def __repr__(self) -> str:
        return f"OsdpReader({self.reader_id!r}, address={self.address})"

    @property
    def online(self) -> bool:
        """In service: answering, with the secure channel up."""
        return self.link.online

    def start(self) -> None:
        self.bus._started(self)

    def stop(self, timeout: float = 5.0) -> None:
        self.bus._stopped(self, timeout)

    def feedback(self, feedback: Feedback) -> None:
        self.bus.send(self.address, feedback_commands(feedback))


@dataclass
class _Reader:
    """What the bus thread knows of one reader (only ever touched on that thread)."""

    reader: OsdpReader
    backoff: Backoff
    active: bool = False
    secure: bool = False  # secure channel up with the reader's own key
    online: bool = False  # libosdp's view
    was_secure: bool = False  # in this attempt to bring it up
    reported: bool = False
    tamper: bool | None = None
    retry_at: float | None = None
    reenable: bool = False

    @property
    def in_service(self) -> bool:
        return self.online and self.secure


class OsdpBus:
    """The control panel for every OSDP reader on one bus (see the module docstring).

    `channel` is the panel's end of the bus (firmware_bridge.channel.open_bus); `keys` maps each reader's
    address to its 16-byte key (firmware_bridge.keys.KeyFile.keys_for); `key_file` is only named in messages.
    """

    def __init__(
        self,
        channel: BusChannel,
        keys: Mapping[int, bytes],
        *,
        install_mode: bool = False,
        key_file: str = "the key file",
        poll_s: float = POLL_S,
        startup_grace_s: float = STARTUP_GRACE_S,
        backoff: Callable[[], Backoff] = lambda: Backoff(1.0, 30.0),
        log_level: int = LogLevel.Error,
    ) -> None:
        self.channel = channel
        self.install_mode = install_mode
        self.key_file = key_file
        self._keys = dict(keys)
        self._watch = ReplyWatch()
        self._wire = _WatchedChannel(channel, self._watch)
        self._startup_grace_s = startup_grace_s
        self._backoff = backoff
        self._log_level = log_level
        self._readers: list[_Reader] = []
        self._ctx: Any = None
        self._loop = RefreshLoop(f"osdp:{channel}", self._refresh, poll_s=poll_s)
        self._started_at = 0.0
        self._next_check = 0.0

    def __str__(self) -> str:
        return str(self.channel)

    @property
    def running(self) -> bool:
        return self._loop.running

    def reader(self, address: int, reader_id: str, sink: InputSink) -> OsdpReader:
        """Add the reader at bus `address` for the door `reader_id`; every reader is added before start."""
        if self._ctx is not None:
            raise RuntimeError(f"OSDP bus {self}: add every reader before the bus starts")
        if any(r.reader.address == address for r in self._readers):
            raise ValueError(f"OSDP bus {self}: two readers at address {address}")
        if address not in self._keys:
            raise ValueError(f"OSDP bus {self}: no secure channel key for the reader at address {address}")
        reader = OsdpReader(self, address, reader_id, sink)
        self._readers.append(_Reader(reader, self._backoff()))
        return reader

    def readers(self) -> list[OsdpReader]:
        return [r.reader for r in self._readers]

    # --- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the bus and bring every reader up (idempotent)."""
        if self._loop.running:
            return
        if not self._readers:
            raise RuntimeError(f"OSDP bus {self}: no readers")
        secure = LibFlag.InstallMode if self.install_mode else LibFlag.EnforceSecure
        flags = [LibFlag.EnableNotification, secure]
        infos = [
            PDInfo(r.reader.address, self._wire, scbk=self._keys[r.reader.address], name=r.reader.reader_id,
                   flags=flags).get()
            for r in self._readers
        ]  # fmt: skip
        osdp_sys.set_loglevel(self._log_level)
        with self._loop.lock:
            self._ctx = osdp_sys.ControlPanel(infos)
            self._ctx.set_event_callback(self._on_event)
        self._started_at = time.monotonic()
        if self.install_mode:
            log.warning("osdp.install_mode", bus=str(self), note="readers on the default key get their key")
        log.info("osdp.bus_started", bus=str(self), readers=[r.reader.address for r in self._readers])
        self._loop.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling the readers and let go of the bus (the readers' LEDs keep their last state)."""
        self._loop.stop(timeout)
        with self._loop.lock:
            self._ctx = None
        self.channel.close()
        for state in self._readers:
            state.active = state.secure = state.online = state.reported = state.reenable = False
            state.retry_at = None

    def _started(self, reader: OsdpReader) -> None:
        self._state(reader).active = True
        self.start()

    def _stopped(self, reader: OsdpReader, timeout: float) -> None:
        self._state(reader).active = False
        if self.running and not any(state.active for state in self._readers):
            self.stop(timeout)

    def _state(self, reader: OsdpReader) -> _Reader:
        return next(state for state in self._readers if state.reader is reader)

    # --- commands ------------------------------------------------------------------------------------------

    def send(self, address: int, commands: list[OsdpCommand]) -> bool:
        """Queue commands for the reader at `address`; False (logged) if it is not in service."""
        index = next((i for i, r in enumerate(self._readers) if r.reader.address == address), None)
        if index is None or not self._readers[index].in_service:
            log.debug("osdp.command_skipped", bus=str(self), address=address, reason="reader not in service")
            return False
        with self._loop.lock:
            if self._ctx is None:
                return False
            sent = all([bool(self._ctx.submit_command(index, command)) for command in commands])
        if not sent:
            log.warning("osdp.command_refused", bus=str(self), address=address)
        return sent

    # --- the bus thread ------------------------------------------------------------------------------------

    def _refresh(self) -> None:
        with self._loop.lock:
            if self._ctx is None:
                return
            self._ctx.refresh()
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + SUPERVISE_EVERY_S
            self._supervise(now)

    def _supervise(self, now: float) -> None:
        """Report readers that never came up; ask libosdp again for readers it gave up on."""
        for index, state in enumerate(self._readers):
            if state.reenable:
                state.reenable = False
                with self._loop.lock:
                    if self._ctx is not None:
                        self._ctx.enable_pd(index)
            elif state.retry_at is not None and now >= state.retry_at and not state.online:
                state.retry_at, state.was_secure, state.reenable = None, False, True
                with self._loop.lock:
                    if self._ctx is not None:
                        self._ctx.disable_pd(index)
            if not state.reported and now - self._started_at >= self._startup_grace_s:
                state.reported = True
                if not state.in_service:
                    self._report(state, False, self._why_offline(state, now))

    def _on_event(self, index: int, event: dict[str, Any]) -> int:
        """libosdp's callback (bus thread, inside refresh): one reader's event."""
        try:
            state = self._readers[index]
            if event.get("event") == Event.Notification:
                self._notification(state, event)
            elif not state.in_service:
                log.warning("osdp.event_ignored", reader=state.reader.reader_id, reason="not in service")
            elif state.active:
                self._reader_event(state, event)
        except Exception as exc:
            log.exception("osdp.event_failed", error=f"{type(exc).__name__}: {exc}")
        return 0

    def _reader_event(self, state: _Reader, event: dict[str, Any]) -> None:
        reader = state.reader
        kind = event.get("event")
        if kind == Event.CardRead:
            read = decode_card(event["format"], event.get("length", 0), event["data"], event["direction"])
            if isinstance(read, RefusedRead):
                log.warning("osdp.card_refused", reader=reader.reader_id, reason=read.reason)
                return
            reader.sink(CardPresented(reader.reader_id, read.uid))
        elif kind == Event.KeyPress:
            keys, unknown = decode_keys(event["data"])
            if unknown:
                log.info("osdp.keys_ignored", reader=reader.reader_id, count=unknown)
            for key in keys:
                reader.sink(KeyPressed(reader.reader_id, key))
        elif kind == Event.Status and event.get("type") == StatusReportType.Local:
            report = bytes(event.get("report", b""))
            tamper = bool(report[0]) if report else False
            if tamper != state.tamper:
                state.tamper = tamper
                reader.sink(InputChanged(Signal.TAMPER, tamper, reader.reader_id))
            if len(report) > 1 and report[1]:
                log.warning("osdp.reader_power_fault", reader=reader.reader_id)

    def _notification(self, state: _Reader, event: dict[str, Any]) -> None:
        kind, arg0, arg1 = event.get("type"), event.get("arg0"), event.get("arg1")
        reader = state.reader
        if kind == EventNotification.SecureChannelStatus:
            state.secure = arg0 == 1 and arg1 == 0  # arg1 = 1: up with the default key SCBK-D
            state.was_secure |= state.secure
            if state.in_service:  # the secure channel came up after the reader was already online
                self._report(state, True)
            if arg0 == 1 and arg1 == 1:
                log.warning("osdp.reader_on_default_key", reader=reader.reader_id, address=reader.address)
        elif kind == EventNotification.PeripheralDeviceStatus:
            self._peripheral_status(state, online=arg0 == 1)
        elif kind == EventNotification.Command and arg0 == Command.Keyset:
            if arg1:
                log.warning("osdp.reader_keyed", reader=reader.reader_id, address=reader.address)
            else:
                log.error("osdp.reader_key_not_set", reader=reader.reader_id, address=reader.address)

    def _peripheral_status(self, state: _Reader, *, online: bool) -> None:
        now = time.monotonic()
        state.online = online
        if online and state.secure:
            state.backoff.reset()
            self._report(state, True)
        elif online:
            detail = f"{self._where(state)} answers without a secure channel; refused, its events are ignored"
            log.error("osdp.reader_not_secure", reader=state.reader.reader_id, address=state.reader.address)
            self._report(state, False, detail)
        else:
            state.secure = False
            if state.reenable:
                return  # our own disable, just before asking again
            state.retry_at = now + state.backoff.next_delay()
            self._report(state, False, self._why_offline(state, now))

    def _report(self, state: _Reader, online: bool, detail: str = "") -> None:
        state.reported = True
        if state.active:
            state.reader.link.set(online, detail)

    def _where(self, state: _Reader) -> str:
        return f"the reader at address {state.reader.address} on {self}"

    def _why_offline(self, state: _Reader, now: float) -> str:
        problem = self.channel.problem
        if problem:
            return f"OSDP bus {self}: {problem}"
        if state.was_secure:
            return f"{self._where(state)} stopped answering"
        heard = self._watch.heard.get(state.reader.address, -math.inf)
        if now - heard <= HEARD_RECENTLY_S:
            return (
                f"{self._where(state)} answers, but the secure channel fails: its key is not the one in "
                f"{self.key_file} (a new reader still on its default key needs install_mode = true once)"
            )
        return f"no answer from {self._where(state)} (wiring, power or address?)"
