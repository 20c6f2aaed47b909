"""A whole simulated site: the real agent (controller.runtime) on virtual hardware, driven like a torg.

Everything below the agent is a twin: gpiozero MockFactory pins with door physics (hw_sim.door) on every
relay, contact and exit button; virtual contactless cards behind a real pcscd (hw_sim.pcscd, hw_sim.vcard);
a fire panel, beam counters, zone lights and the intruder alarm's arm line on pins too. Keypads and QR
scanners hand the agent their events directly (KeyPressed, CodeScanned), as their adapters would.

`sim_agent_config` wires a site configuration from central to such hardware (a site.toml); `SimulatedSite`
runs the agent on it, with an injectable clock, and offers what people and hardware do (tap, keys, push,
fire, network) and what can be observed (relays, door states, lights, the agent's events). Every action
returns once the agent has handled what it caused, so a scenario reads as a sequence, not as a race:
inputs are debounced in real time (controller.devices.gpio), so an action that moves a pin waits out the
debounce window and then until the agent's queue is drained and its doors agree with the physical ones.

With a ManualClock time moves only in `advance`, step by step, running the door closers and the agent's
timers at each step on the agent's own thread. With any other clock the site lives in real time: a
background thread runs the door closers and `advance` just sleeps.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from types import TracebackType
from typing import Protocol
from zoneinfo import ZoneInfo

from gpiozero.pins.mock import MockFactory

from controller.agent import Agent
from controller.clock import Clock, ManualClock
from controller.config import AgentConfig, DoorHardware, load_config
from controller.devices.gpio import DEFAULT_DEBOUNCE_S
from controller.hardware import FeedbackTarget
from controller.inputs import CodeScanned, Feedback, KeyPressed
from controller.journal import AgentEvent, Journal
from controller.link import AgentLink
from controller.outbox import Outbox
from controller.runtime import RunningAgent
from controller.runtime import start as start_agent
from controller.schedule import SiteCalendar
from firmware_bridge.keys import KeyFile
from hw_sim.door import SimBeam, SimDoor, SimFirePanel
from hw_sim.osdp_reader import SimOsdpReader
from hw_sim.pcscd import SOCKET_ENV, PcscDaemon
from hw_sim.vcard import VirtualCard
from protocol import messages as m

# BCM GPIO2..27, the header's GPIOs, handed out in this order: doors first (relay, contact, exit button each,
# in central's door order), then the site's fire and intruder-arm lines, zone lights and beams.
PIN_POOL = tuple(range(2, 28))
# After a pin moved: the debouncer reports a release within its quiet window one window later and may open
# a second window then, so wait two windows and a margin before asking whether the agent is up to date.
EDGE_WAIT_S = 2 * DEFAULT_DEBOUNCE_S + 0.05
SETTLE_TIMEOUT_S = 5.0
TAP_TIMEOUT_S = 10.0
PHYSICS_TICK_S = 0.1
KEEPALIVE_S = 5
EVENING = day_time(19)


class SimSiteError(RuntimeError):
    """The simulated site cannot do what was asked (no such door, no fire pin, too many doors)."""


# --- the wiring --------------------------------------------------------------------------------------------


class _Pins:
    """Hands out GPIO numbers from PIN_POOL in order; a clear error when a site needs more than a Pi has."""

    def __init__(self, site: str) -> None:
        self._site = site
        self._next = 0

    def take(self) -> str:
        if self._next >= len(PIN_POOL):
            raise SimSiteError(f"site {self._site} needs more than the {len(PIN_POOL)} GPIO pins of one Pi")
        self._next += 1
        return f"GPIO{PIN_POOL[self._next - 1]}"


def door_readers(site: m.SiteConfig, pcscd: PcscDaemon, osdp: Mapping[str, int]) -> dict[str, str]:
    """Each door's reader as site.toml names it: the next virtual PC/SC reader in door order, or
    "osdp:<bus address>" for the doors in `osdp` (door slug -> address; OSDP readers simulated through
    firmware_bridge)."""
    unknown = set(osdp) - {door.slug for door in site.doors}
    if unknown:
        raise SimSiteError(f"site {site.site} has no door {', '.join(sorted(unknown))} for an OSDP reader")
    readers: dict[str, str] = {}
    slot = 0
    for door in site.doors:
        if door.slug in osdp:
            readers[door.slug] = f"osdp:{osdp[door.slug]}"
            continue
        if slot >= pcscd.readers:
            raise SimSiteError(
                f"site {site.site} has more card-reader doors than the {pcscd.readers} virtual readers of "
                "this pcscd; start it with more (running_pcscd(readers=...))"
            )
        readers[door.slug] = f"pcsc:{pcscd.reader_name(slot)}"
        slot += 1
    return readers


def sim_agent_config(
    site: m.SiteConfig,
    *,
    data_dir: Path,
    uid_key_file: Path,
    mqtt_host: str,
    mqtt_port: int,
    pcscd: PcscDaemon,
    osdp: Mapping[str, int] | None = None,
    kiosk: bool = False,
) -> Path:
    """Write <data_dir>/site.toml wiring every door of `site` to simulated hardware; the agent keeps its
    stores in <data_dir>/agent. Pins are allocated deterministically (see PIN_POOL). With `kiosk` the agent
    also serves a kiosk at <data_dir>/kiosk.sock (its reader: `kiosk_reader_name`)."""
    if not site.doors:
        raise SimSiteError(f"site {site.site} has no doors in central's configuration")
    readers = door_readers(site, pcscd, osdp or {})
    pins = _Pins(site.site)
    q = json.dumps  # a JSON string is a valid TOML basic string
    lines = [
        f"# The simulated {site.name} (hw_sim.site.sim_agent_config): every pin is a MockFactory pin.",
        "[agent]",
        f"site = {q(site.site)}",
        f"name = {q(site.site + '-sim')}",
        f"data_dir = {q(str(data_dir / 'agent'))}",
        f"uid_hash_key_file = {q(str(uid_key_file))}",
        "",
        "[mqtt]",
        f"host = {q(mqtt_host)}",
        f"port = {mqtt_port}",
        f"keepalive = {KEEPALIVE_S}",
    ]
    if osdp:
        lines += osdp_section(site.site, data_dir, osdp.values())
    for door in site.doors:
        lines += [
            "",
            "[[doors]]",
            f"slug = {q(door.slug)}",
            f"relay = {q(pins.take())}",
            f"lock_type = {q(door.lock_type.value)}",
            f"contact = {q(pins.take())}",
            f"exit_button = {q(pins.take())}",
            f"reader = {q(readers[door.slug])}",
        ]
    lines += ["", "[site]"]
    # No speaker line: closing warnings are in the events, and its 2-second pulse timer outlives a short run.
    lines += [f"{key} = {q(pins.take())}" for key in ("fire", "intruder_arm")]
    lines += ["", "[site.lights]"] + [f"{q(zone.slug)} = {q(pins.take())}" for zone in site.zones]
    entrances = [door.slug for door in site.doors if door.kind is m.DoorKind.ENTRANCE]
    lines += ["", "[site.beams]"] + [f"{q(slug)} = {q(pins.take())}" for slug in entrances]
    if kiosk:
        kiosk_reader_name(site, pcscd, osdp or {})  # refuses a pcscd without a reader to spare
        lines += ["", "[kiosk]", f"socket = {q(str(kiosk_socket(data_dir)))}"]
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "site.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def kiosk_socket(data_dir: Path) -> Path:
    """Where the simulated agent serves its kiosk (sim_agent_config(kiosk=True))."""
    return data_dir / "kiosk.sock"


def kiosk_slot(site: m.SiteConfig, osdp: Mapping[str, int]) -> int:
    """The kiosk's virtual PC/SC reader: the one after the doors' (door_readers takes them in door order)."""
    return sum(1 for door in site.doors if door.slug not in osdp)


def kiosk_reader_name(site: m.SiteConfig, pcscd: PcscDaemon, osdp: Mapping[str, int]) -> str:
    slot = kiosk_slot(site, osdp)
    if slot >= pcscd.readers:
        raise SimSiteError(
            f"the kiosk at {site.site} needs a virtual reader of its own: start pcscd with {slot + 1} readers"
        )
    return pcscd.reader_name(slot)


def default_osdp(site: m.SiteConfig) -> dict[str, int]:
    """The simulator's usual wiring: entrances keep a PC/SC reader, every other door has an OSDP reader on
    the site's one RS-485 bus (addresses 1, 2, ... in door order), so both reader stacks are exercised."""
    inner = [door.slug for door in site.doors if door.kind is not m.DoorKind.ENTRANCE]
    return {slug: address for address, slug in enumerate(inner, start=1)}


def osdp_section(site: str, data_dir: Path, addresses: Iterable[int]) -> list[str]:
    """The `[osdp]` lines for a simulated bus, with a secure-channel key made for each reader (as install
    mode would) in <data_dir>/osdp.keys; the reader twins read their keys from there."""
    key_file = data_dir / "osdp.keys"
    data_dir.mkdir(parents=True, exist_ok=True)
    KeyFile(key_file).keys_for(addresses, install_mode=True)
    tag = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]
    bus = f"sim:{site}-{tag}"  # one bus per simulated site in a process
    return ["", "[osdp]", f"bus = {json.dumps(bus)}", f"key_file = {json.dumps(str(key_file))}"]


# --- time --------------------------------------------------------------------------------------------------


class ShiftedClock:
    """Real time, moved to another moment: the wall clock reads `start` now and runs on at real speed.
    For playing a site in the evening at any hour (interactive simulator, demo)."""

    def __init__(self, start: datetime) -> None:
        if start.utcoffset() is None:
            raise ValueError("ShiftedClock needs a timezone-aware start time")
        self._offset = start - datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def monotonic(self) -> float:
        return time.monotonic()


def open_evening(site: m.SiteConfig, now: datetime, at: day_time = EVENING, days: int = 14) -> datetime:
    """The first day from `now` on whose `at` (site time, 19:00 by default) is after `now` and inside the
    site's opening hours, in UTC. Cards are valid from their creation, so a simulated evening must not lie
    before the real now."""
    zone = ZoneInfo(site.timezone)
    calendar = SiteCalendar.from_config(site)
    today = now.astimezone(zone).date()
    for offset in range(days):
        moment = datetime.combine(today + timedelta(days=offset), at, zone).astimezone(UTC)
        if moment > now and calendar.is_open(moment):
            return moment
    raise SimSiteError(f"site {site.site} is not open at {at:%H:%M} on any of the next {days} days")


# --- what the sim watches inside the agent -----------------------------------------------------------------


class _RecordingOutbox(Outbox):
    """The agent's outbox, also telling the site every event the agent journaled (acknowledged or not)."""

    def __init__(self, journal: Journal, clock: Clock, record: Callable[[AgentEvent], None]) -> None:
        super().__init__(journal, clock)
        self._record = record

    def publish(self, event: AgentEvent) -> None:
        self._record(event)
        super().publish(event)


class _FeedbackLog:
    """Sits where a door's reader LEDs would (GpioDoor.reader): records what the person at the reader was
    shown, and passes it on to a reader that shows feedback itself (OSDP)."""

    def __init__(
        self, door: str, seen: Callable[[str, Feedback], None], inner: FeedbackTarget | None
    ) -> None:
        self._door, self._seen, self._inner = door, seen, inner

    def feedback(self, feedback: Feedback) -> None:
        self._seen(self._door, feedback)
        if self._inner is not None:
            self._inner.feedback(feedback)


def _events_of_this_run(journal: Journal) -> list[AgentEvent]:
    """What the journal still holds from the agent's latest start on (its "agent-started" event)."""
    found: list[AgentEvent] = []
    after = 0
    while batch := journal.pending(limit=1000, after_seq=after):
        for event, _payload in batch:
            if isinstance(event, m.SystemEvent) and event.kind == "agent-started":
                found = []
            found.append(event)
        after = batch[-1][0].seq
    return found


# --- card readers ------------------------------------------------------------------------------------------


class CardReaderTwin(Protocol):
    """Where a simulated card is laid: the other side of one door's reader."""

    def present(self, uid: bytes) -> None: ...

    def remove(self) -> None: ...

    def close(self) -> None: ...


class PcscReaderTwin:
    """A virtual PC/SC reader slot of the simulator's pcscd."""

    def __init__(self, pcscd: PcscDaemon, slot: int) -> None:
        self._pcscd, self._slot = pcscd, slot
        self._card: VirtualCard | None = None

    def present(self, uid: bytes) -> None:
        self.remove()
        self._card = VirtualCard(uid, port=self._pcscd.port(self._slot))
        self._card.present()

    def remove(self) -> None:
        card, self._card = self._card, None
        if card is not None:
            card.remove()

    def close(self) -> None:
        self.remove()


def _pcsc_slot(pcscd: PcscDaemon, name: str) -> int:
    for slot in range(pcscd.readers):
        if pcscd.reader_name(slot) == name:
            return slot
    raise SimSiteError(f"reader {name!r} is not one of the simulator's virtual readers")


def card_reader_twin(door: DoorHardware, pcscd: PcscDaemon, config: AgentConfig) -> CardReaderTwin | None:
    """The twin of a door's reader: a virtual PC/SC slot, or an OSDP reader (libosdp peripheral device) on
    the site's simulated bus with the key the agent's key file gives it."""
    if door.reader.kind == "pcsc":
        return PcscReaderTwin(pcscd, _pcsc_slot(pcscd, door.reader.target))
    if door.reader.kind == "osdp" and config.osdp is not None and config.osdp.bus.kind == "sim":
        address = int(door.reader.target)
        key = KeyFile(config.osdp.key_file).read().get(address)
        return SimOsdpReader(config.osdp.bus.target, address, scbk=key)
    return None


# --- the site ----------------------------------------------------------------------------------------------


class SimulatedSite:
    """The agent of one site on simulated hardware; see the module docstring."""

    def __init__(
        self, config_path: Path, *, clock: Clock, pcscd: PcscDaemon, closer_seconds: float = 3.0
    ) -> None:
        self.config: AgentConfig = load_config(config_path)
        self.clock = clock
        self.pcscd = pcscd
        self.closer_seconds = closer_seconds
        self.factory = MockFactory()
        self.doors: dict[str, SimDoor] = {}
        self.readers: dict[str, CardReaderTwin] = {}
        self._kiosk_reader: CardReaderTwin | None = None
        self._running: RunningAgent | None = None
        self._fire: SimFirePanel | None = None
        self._beams: dict[str, SimBeam] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._changed = threading.Condition()
        self._events: list[AgentEvent] = []
        self._feedback: dict[str, list[Feedback]] = {door.slug: [] for door in self.config.doors}
        self._last_edge = 0.0
        self._network_up = True

    # --- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the agent (hardware safe, stores, inputs, MQTT) and its loop, with the twins attached."""
        if self._running is not None:
            return
        self._check_pcsc_socket()
        running = start_agent(self.config, clock=self.clock, factory=self.factory)
        self._running = running
        try:
            self._attach(running)
        except Exception:
            self._running = None
            running.close()
            raise
        self._stop.clear()
        self._network_up = True
        self._spawn(running.agent.run, f"agent:{self.config.agent.site}", self._stop)
        if not isinstance(self.clock, ManualClock):
            self._spawn(self._physics, "sim-physics")

    def stop(self) -> None:
        """Stop the loop, take every card away, then close the agent (locks locked, site offline)."""
        running, self._running = self._running, None
        if running is None:
            return
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        self._threads = []
        for reader in [*self.readers.values(), *([self._kiosk_reader] if self._kiosk_reader else [])]:
            reader.close()
        self.readers, self._kiosk_reader = {}, None
        running.close()

    def __enter__(self) -> SimulatedSite:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> RunningAgent:
        if self._running is None:
            raise SimSiteError("the simulated site is not running; call start() first")
        return self._running

    @property
    def agent(self) -> Agent:
        return self.running.agent

    def _check_pcsc_socket(self) -> None:
        """The agent's PC/SC readers talk to whatever pcscd this process was pointed at, once, for good."""
        if not any(door.reader.kind == "pcsc" for door in self.config.doors):
            return
        exported = os.environ.get(SOCKET_ENV)
        if exported != str(self.pcscd.socket_path):
            raise SimSiteError(
                f"this process's PC/SC clients use {exported or 'the system pcscd'}, not the simulator's "
                f"pcscd at {self.pcscd.socket_path}: start it with running_pcscd(export_socket=True) before "
                "anything in the process uses PC/SC"
            )

    def _attach(self, running: RunningAgent) -> None:
        agent = running.agent
        with self._changed:  # a restarted site keeps what it saw before
            self._events += _events_of_this_run(agent.journal)
        outbox = _RecordingOutbox(agent.journal, self.clock, self._record_event)
        outbox.link = agent.link
        agent.outbox = outbox  # the loop is not running yet: nothing has gone through the old one
        for slug, outputs in running.hardware.doors.items():
            outputs.reader = _FeedbackLog(slug, self._record_feedback, outputs.reader)
        for door in self.config.doors:
            self.doors[door.slug] = SimDoor(
                self.factory,
                str(door.relay),
                str(door.contact),
                str(door.exit_button),
                door.lock_type,
                self.closer_seconds,
                clock=self.clock,
                relay_active_high=door.relay_active_high,
            )
            twin = card_reader_twin(door, self.pcscd, self.config)
            if twin is not None:
                self.readers[door.slug] = twin
        site = self.config.site
        self._fire = SimFirePanel(self.factory, str(site.fire)) if site.fire is not None else None
        self._beams = {slug: SimBeam(self.factory, str(pin)) for slug, pin in site.beams.items()}

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _physics(self) -> None:
        """Real time: the door closers do their work on their own."""
        while not self._stop.wait(PHYSICS_TICK_S):
            for door in self.doors.values():
                door.tick()

    # --- what the agent did ------------------------------------------------------------------------------

    def _record_event(self, event: AgentEvent) -> None:
        with self._changed:
            self._events.append(event)
            self._changed.notify_all()

    def _record_feedback(self, door: str, feedback: Feedback) -> None:
        with self._changed:
            self._feedback.setdefault(door, []).append(feedback)
            self._changed.notify_all()

    def events(self) -> list[AgentEvent]:
        """Every event the agent journaled since it (first) started, acknowledged by central or not, oldest
        first."""
        with self._changed:
            return list(self._events)

    def feedback(self, door: str) -> list[Feedback]:
        """What the person at `door`'s reader was shown (granted, denied, PIN needed), oldest first."""
        self._door(door)
        with self._changed:
            return list(self._feedback[door])

    # --- people and hardware -----------------------------------------------------------------------------

    @property
    def kiosk_socket(self) -> Path:
        """The socket the agent serves its kiosk on; SimSiteError when this site has no kiosk."""
        if self.config.kiosk is None:
            raise SimSiteError("this simulated site has no kiosk (sim_agent_config(kiosk=True) adds one)")
        return self.config.kiosk.socket

    @property
    def kiosk_reader(self) -> CardReaderTwin:
        """The kiosk's own card reader: the virtual PC/SC slot after the doors' (see kiosk_slot). The kiosk
        is another process, so a card laid here stays until `remove()`."""
        self.kiosk_socket  # noqa: B018 (refuses a site without a kiosk)
        if self._kiosk_reader is None:
            slot = sum(1 for door in self.config.doors if door.reader.kind == "pcsc")
            if slot >= self.pcscd.readers:
                raise SimSiteError(f"the kiosk needs a virtual reader of its own: give pcscd {slot + 1}")
            self._kiosk_reader = PcscReaderTwin(self.pcscd, slot)
        return self._kiosk_reader

    def tap(self, door: str, uid: bytes, timeout: float = TAP_TIMEOUT_S) -> None:
        """Lay a card on `door`'s reader until the agent has reacted to it (its reader shows granted,
        denied or PIN needed), then take it away."""
        self._door(door)
        reader = self.readers.get(door)
        if reader is None:
            kind = self.config.door(door).reader.kind
            raise SimSiteError(f"door {door}: cards on a {kind} reader are not simulated yet")
        seen = len(self.feedback(door))
        reader.present(uid)
        try:
            self.wait_for(
                lambda: len(self.feedback(door)) > seen, timeout, f"the agent reacts to the card at {door}"
            )
        finally:
            reader.remove()
        self.settle()

    def keys(self, door: str, keys: str) -> None:
        """Press keys on `door`'s keypad: digits, '#' (enter), '*' (clear)."""
        self._door(door)
        bad = sorted(set(keys) - set("0123456789#*"))
        if bad:
            raise SimSiteError(f"a keypad has 0-9, # and *, not {''.join(bad)!r}")
        for key in keys:
            self.agent.submit(KeyPressed(door, key))
        self.settle()

    def scan(self, door: str, text: str) -> None:
        """Show a QR code (a phone token, or anything else) to `door`'s scanner."""
        self._door(door)
        self.agent.submit(CodeScanned(door, text))
        self.settle()

    def push(self, door: str) -> bool:
        """Someone pushes the door: it opens only if the lock is released. Returns whether it opened."""
        opened = self._door(door).push()
        if opened:
            self._edge()
        self.settle()
        return opened

    def force(self, door: str) -> None:
        """The door is forced open whatever the lock says."""
        self._door(door).force()
        self._edge()
        self.settle()

    def hold_open(self, door: str) -> None:
        """Someone keeps the (open) door from closing until let_go()."""
        self._door(door).hold_open()

    def let_go(self, door: str) -> None:
        """The held door is let go: its closer shuts it `closer_seconds` later."""
        self._door(door).let_go()

    def press_exit(self, door: str) -> None:
        """Someone inside presses the request-to-exit button."""
        self._door(door).press_exit()
        self._edge()
        self.settle()

    def fire(self, on: bool) -> None:
        """The fire panel raises (or clears) its alarm: every door is released by the hardware itself."""
        if self._fire is None:
            raise SimSiteError(f"site {self.config.agent.site} has no fire input wired")
        self._fire.alarm(on)
        self._edge()
        self.settle()

    def beam(self, door: str) -> None:
        """One person walks through `door`'s passage-counting beam."""
        self._door(door)
        beam = self._beams.get(door)
        if beam is None:
            raise SimSiteError(f"door {door} has no beam counter (only entrances have one)")
        beam.person_passes()
        self._edge()
        self.settle()

    def network(self, up: bool) -> None:
        """The site's WAN: down stops the agent's MQTT link (the agent goes on deciding alone), up gives it
        a new link that connects and resends what central has not acknowledged."""
        running = self.running
        if up == self._network_up:
            return
        if not up:
            running.link.stop()
        else:
            agent, a = running.agent, self.config.agent
            link = AgentLink(
                self.config.mqtt, a.site, a.name, agent, self.clock, on_connected=agent.on_connected
            )

            def attach() -> None:
                agent.link = link

            self._on_agent(attach)
            running.link = link
            link.start()
        self._network_up = up

    @property
    def network_up(self) -> bool:
        return self._network_up

    # --- time --------------------------------------------------------------------------------------------

    def advance(self, seconds: float, step: float = 0.5) -> None:
        """Let `seconds` pass. ManualClock: in steps of `step`, each running the door closers, then the
        agent's timers on its own thread; other clocks: sleep (the site runs in real time)."""
        if seconds < 0 or step <= 0:
            raise ValueError("time moves forward, in steps greater than zero")
        if not isinstance(self.clock, ManualClock):
            time.sleep(seconds)
            return
        left = seconds
        while left > 1e-9:
            dt = min(step, left)
            self.clock.advance(dt)
            left -= dt
            for door in self.doors.values():
                was_open = door.is_open
                door.tick()
                if door.is_open != was_open:
                    self._edge()
            self.settle()
            self._on_agent(self.agent.tick)

    def settle(self, timeout: float = SETTLE_TIMEOUT_S) -> None:
        """Wait until the agent has handled everything queued so far, including the inputs the simulated
        hardware just moved, and its door contacts agree with the doors."""
        deadline = time.monotonic() + timeout
        wait = self._last_edge + EDGE_WAIT_S - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        while True:
            self._on_agent(lambda: None, max(deadline - time.monotonic(), 0.01))
            disagree = [s for s, door in self.doors.items() if self.agent.doors[s].door_open != door.is_open]
            if not disagree:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the agent does not see doors {', '.join(disagree)} as they are")
            time.sleep(0.01)

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Wait (real time) until `predicate()` holds; AssertionError naming `what` if it does not in time."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout:g} s")
            time.sleep(0.02)

    def wait_synced(self, timeout: float = 20.0) -> None:
        """Wait until central's configuration and a replica snapshot have arrived."""
        agent = self.agent
        self.wait_for(
            lambda: agent.view is not None and agent.replica.seq is not None,
            timeout,
            f"site {self.config.agent.site} gets its configuration and credentials from central",
        )

    def _on_agent(self, work: Callable[[], None], timeout: float = SETTLE_TIMEOUT_S) -> None:
        """Run `work` on the agent's thread after everything queued before it; return when it ran."""
        done = threading.Event()

        def run() -> None:
            try:
                work()
            finally:
                done.set()

        self.agent.submit(run)
        if not done.wait(timeout):
            raise AssertionError(f"the agent did not get through its queue within {timeout:g} s")

    def _edge(self) -> None:
        self._last_edge = time.monotonic()

    # --- observations ------------------------------------------------------------------------------------

    def relay_energised(self, door: str) -> bool:
        self._door(door)
        return self.running.hardware.doors[door].relay.energised

    def door_state(self, door: str) -> m.DoorStateName:
        """The door's state as the agent reports it to central."""
        self._door(door)
        return self.agent.doors[door].state

    def lights(self, zone: str) -> bool:
        light = self.running.hardware.site.lights_by_zone.get(zone)
        if light is None:
            raise SimSiteError(f"no lights wired for zone {zone!r}")
        return light.is_on

    def intruder_armed(self) -> bool:
        intruder = self.running.hardware.site.intruder
        return intruder is not None and intruder.is_on

    def _door(self, door: str) -> SimDoor:
        found = self.doors.get(door)
        if found is None:
            known = ", ".join(self.doors) or "none"
            raise SimSiteError(f"no door {door!r} at {self.config.agent.site} (doors: {known})")
        return found
