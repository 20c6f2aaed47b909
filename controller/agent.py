"""The site agent: one thread that turns hardware inputs and central's messages into door actions and events.

Everything arrives in one queue (card taps, key presses, scanned codes and pin edges from the device adapters;
config, replica, keys, revocations, commands and acks from the MQTT link) and is handled in order on the
agent's thread, so the pure parts (decision engine, door and site machines) never see a lock or a device.
Timers are the machines' `next_deadline()`s: `tick()` runs them.

Order of work for a decision: drive the door first (the resident is waiting), then write the event to the
journal, then publish it. An event leaves the journal only when central acknowledges that it is committed.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import structlog

from controller import door as d
from controller import site as s
from controller.clock import Clock
from controller.commands import CommandGuard, SqliteNonceStore
from controller.decide import ClockPolicy, SiteView, Verdict, clock_trusted, decide_phone_holder
from controller.inputs import (
    CardPresented,
    CodeScanned,
    Feedback,
    InputChanged,
    InputEvent,
    KeyPressed,
    ReaderStatus,
    Signal,
)
from controller.journal import Journal, JournalError, JournalFull
from controller.kiosk_desk import Answer, CheckIn, CheckinRules, DeskContext, KioskDesk
from controller.outbox import Outbox
from controller.reception import (
    CardLocked,
    EnrolmentArmed,
    EnrolmentEnded,
    EnrolmentTap,
    Outcome,
    PinPrompt,
    Reception,
    Result,
)
from controller.replica import DeltaResult, Replica, ReplicaError
from protocol import kiosk as k
from protocol import messages as m
from protocol.keys import KeySetError, PublicKeySet

log = structlog.get_logger("controller.agent")

SITE_TICK_S = 1.0
DISK_CHECK_S = 60.0
ALARM_SEVERITY = {
    m.AlarmKind.FORCED_OPEN: m.Severity.CRITICAL,
    m.AlarmKind.HELD_OPEN: m.Severity.WARNING,
    m.AlarmKind.TAMPER: m.Severity.CRITICAL,
    m.AlarmKind.FIRE: m.Severity.CRITICAL,
    m.AlarmKind.PIN_BRUTE_FORCE: m.Severity.WARNING,
    m.AlarmKind.TAILGATING: m.Severity.WARNING,
    m.AlarmKind.LOCK_FAULT: m.Severity.CRITICAL,
    m.AlarmKind.READER_OFFLINE: m.Severity.WARNING,
    m.AlarmKind.DISK_LOW: m.Severity.CRITICAL,
    m.AlarmKind.CLOCK_UNSET: m.Severity.WARNING,
    m.AlarmKind.INTRUDER: m.Severity.CRITICAL,
}


class DoorHardware(Protocol):
    """What the agent drives at one door (controller.hardware builds it from gpiozero devices)."""

    def set_unlocked(self, unlocked: bool) -> None: ...

    def buzzer(self, on: bool) -> None: ...

    def feedback(self, feedback: Feedback) -> None:
        """Show the person at this door's reader what happened (LEDs, beeps)."""
        ...


class SiteHardware(Protocol):
    def lights(self, zone: str, on: bool) -> None: ...

    def intruder_armed(self, armed: bool) -> None: ...

    def announce_closing(self, minutes_left: int) -> None: ...


class Link(Protocol):
    """The MQTT side as the agent uses it (controller.link.AgentLink)."""

    @property
    def connected(self) -> bool: ...

    def publish_event(self, payload: bytes) -> object: ...

    def publish_door_state(self, state: m.DoorState) -> object: ...

    def publish_command_result(self, result: m.CommandResult) -> object: ...

    def request_snapshot(self, have_seq: int | None, reason: str) -> object: ...


class NoSiteHardware:
    def lights(self, zone: str, on: bool) -> None:
        pass

    def intruder_armed(self, armed: bool) -> None:
        pass

    def announce_closing(self, minutes_left: int) -> None:
        pass


@dataclass(frozen=True)
class Received:
    """A message from central, handed over from the MQTT thread."""

    message: m.Message


@dataclass(frozen=True)
class Connected:
    """The link (re)connected: resend what central has not acknowledged."""


Work = InputEvent | Received | Connected | Callable[[], None]


@dataclass
class AgentSettings:
    site: str
    name: str
    data_dir: Path
    uid_hash_key: bytes = field(repr=False)
    clock_policy: ClockPolicy = ClockPolicy.STAFF_ONLY
    journal_max_bytes: int = 256 * 1024 * 1024
    kiosk_session_seconds: float = 120.0
    checkin_rules: CheckinRules = field(default_factory=CheckinRules)


class Agent:
    """The site's decisions and door control. Thread-safe entry points: `submit` and the link handler
    methods; everything else runs on the agent's thread (`run`, or `drain`/`tick` in tests)."""

    def __init__(
        self,
        settings: AgentSettings,
        clock: Clock,
        doors: dict[str, DoorHardware],
        *,
        site_hardware: SiteHardware | None = None,
        link: Link | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.hardware = doors
        self.site_hardware = site_hardware or NoSiteHardware()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.replica = open_replica(settings.data_dir / "replica.db", settings.site)
        self.journal = Journal(
            settings.data_dir / "journal.db",
            site=settings.site,
            agent=settings.name,
            max_bytes=settings.journal_max_bytes,
        )
        self._nonces = SqliteNonceStore(settings.data_dir / "nonces.db")
        self.commands = CommandGuard(settings.site, remember=self._nonces)
        self.reception = Reception(
            doors,
            self.replica,
            clock,
            settings.uid_hash_key,
            clock_policy=settings.clock_policy,
            clock_trusted=self._clock_trusted,
            locked_down=lambda door: self.doors[door].mode is d.DoorMode.LOCKED_DOWN,
        )
        self._inbox: queue.Queue[Work] = queue.Queue()
        self.outbox = Outbox(self.journal, clock)
        self.link = link
        self._next_site_tick = 0.0
        self._next_disk_check = 0.0
        self._disk_alarm = False
        self._offline_readers: set[str] = set()
        self._clock_alarm = False
        self.view: SiteView | None = None
        self.site_machine: s.SiteMachine | None = None
        self._site_layout: tuple[list[str], list[str]] | None = None
        self.desk = KioskDesk(
            settings.uid_hash_key,
            rules=settings.checkin_rules,
            session_seconds=settings.kiosk_session_seconds,
        )
        self.closing_warned_for: datetime | None = None  # the closing the last closing warning was about
        now = clock.monotonic()
        self.doors = {slug: d.DoorMachine(d.DoorSettings(slug=slug), now) for slug in doors}
        for slug in doors:
            self._drive(slug, d.DoorMachine.safe_outputs())
        self._load_retained()
        try:
            self.journal.system(clock.now(), kind="agent-started", detail=f"{len(doors)} doors")
        except JournalFull as exc:  # a full disk must not keep the doors (and the fire release) down
            log.error("agent.journal_full", error=str(exc))
            self._raise_disk_alarm(str(exc))

    @property
    def link(self) -> Link | None:
        return self._link

    @link.setter
    def link(self, link: Link | None) -> None:
        """Set once the MQTT link exists (the link needs the agent as its handler, so it comes second)."""
        self._link = link
        self.outbox.link = link

    # --- thread-safe entry points ------------------------------------------------------------------------

    def submit(self, work: Work) -> None:
        """The InputSink of every device adapter, and how the link hands over messages."""
        self._inbox.put(work)

    def on_message(self, message: m.Message) -> None:
        self.submit(Received(message))

    on_config = on_keys = on_revocations = on_snapshot = on_delta = on_command = on_ack = on_message

    def on_connected(self) -> None:
        self.submit(Connected())

    # --- the loop ----------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Handle work until `stop` is set; sleeps exactly until the next timer when idle."""
        while not stop.is_set():
            self.drain(timeout=self._sleep_for())
            if not self._handle(self.tick):  # logged like failing work; the doors go on
                stop.wait(0.1)

    def drain(self, timeout: float = 0.0) -> int:
        """Handle everything queued (waiting up to `timeout` for the first item); returns how many."""
        handled = 0
        try:
            work = self._inbox.get(timeout=timeout) if timeout > 0 else self._inbox.get_nowait()
        except queue.Empty:
            return 0
        while True:
            self._handle(work)
            handled += 1
            try:
                work = self._inbox.get_nowait()
            except queue.Empty:
                return handled

    def _sleep_for(self) -> float:
        now = self.clock.monotonic()
        deadlines = [self._next_site_tick]
        deadlines += [t for t in (m_.next_deadline() for m_ in self.doors.values()) if t is not None]
        return min(max(min(deadlines) - now, 0.001), 0.5)

    def tick(self) -> None:
        """Run the timers that are due: door timeouts, PIN timeouts, the site's hours, resends."""
        mono = self.clock.monotonic()
        for slug, machine in self.doors.items():
            due = machine.next_deadline()
            if due is not None and due <= mono:
                self._drive(slug, machine.tick(mono))
        self._reception_results(self.reception.expire())
        if mono >= self._next_site_tick:
            self._next_site_tick = mono + SITE_TICK_S
            self._clock_trusted(self.clock.now())  # a clock at 1970 is told now, not at the next tap
            self._tick_site()
            self.outbox.pump()
        if mono >= self._next_disk_check:
            self._next_disk_check = mono + DISK_CHECK_S
            self._check_disk()

    def _handle(self, work: Work) -> bool:
        """Do one piece of work; False (after logging it) if it failed."""
        try:
            self._dispatch(work)
            return True
        except JournalFull as exc:
            log.error("agent.journal_full", error=str(exc))
            self._raise_disk_alarm(str(exc))
        except JournalError as exc:
            log.error("agent.journal_error", error=str(exc))
        except Exception as exc:  # one bad input must never stop the doors
            log.exception("agent.work_failed", work=type(work).__name__, error=f"{type(exc).__name__}: {exc}")
        return False

    def _dispatch(self, work: Work) -> None:
        if isinstance(work, CardPresented):
            self._reception_results(self.reception.card(work))
        elif isinstance(work, KeyPressed):
            self._reception_results(self.reception.key(work))
        elif isinstance(work, CodeScanned):
            self._reception_results(self.reception.code(work))
        elif isinstance(work, InputChanged):
            self._signal(work)
        elif isinstance(work, ReaderStatus):
            self._reader_status(work)
        elif isinstance(work, Received):
            self._received(work.message)
        elif isinstance(work, Connected):
            self._connected()
        elif callable(work):
            work()

    # --- retained state from central ---------------------------------------------------------------------

    def _load_retained(self) -> None:
        """After a restart: decide with what central last sent, even before the network is back."""
        config = self.replica.config()
        if config is not None:
            self._use_config(config)
        keys = self.replica.keys()
        if keys is not None:
            self._use_keys(keys)

    def _received(self, message: m.Message) -> None:
        if isinstance(message, m.SiteConfig):
            if self.replica.save_config(message):
                self._use_config(message)
        elif isinstance(message, m.SigningKeys):
            if self.replica.save_keys(message):
                self._use_keys(message)
        elif isinstance(message, m.Revocations):
            self.replica.save_revocations(message)
        elif isinstance(message, m.ReplicaSnapshot):
            self._snapshot(message)
        elif isinstance(message, m.ReplicaDelta):
            self._delta(message)
        elif isinstance(message, m.Command):
            self._command(message)
        elif isinstance(message, m.Ack):
            self._ack(message)

    def _use_config(self, config: m.SiteConfig) -> None:
        try:
            view = SiteView.from_config(config)
        except ValueError as exc:
            log.error("agent.config_unusable", revision=config.revision, error=str(exc))
            return
        self.view = view
        self.reception.view = view
        self.desk.rules = CheckinRules(
            opens_before=timedelta(minutes=config.checkin_opens_minutes),
            closes_after=timedelta(minutes=config.checkin_closes_minutes),
        )
        mono = self.clock.monotonic()
        for slug, machine in self.doors.items():
            door = view.doors.get(slug)
            if door is None:
                log.warning("agent.door_not_in_config", door=slug)
                continue
            wanted = d.DoorSettings.from_door(door, has_lock_monitor=machine.settings.has_lock_monitor)
            idle = machine.state is m.DoorStateName.LOCKED and not machine.door_open
            if wanted != machine.settings and idle:
                self.doors[slug] = d.DoorMachine(wanted, mono)
                self.doors[slug].handle(d.SetMode(machine.mode), mono)
        zones = sorted(view.zones) or ["site"]
        entrances = sorted(door.slug for door in view.doors.values() if door.kind is m.DoorKind.ENTRANCE)
        if self._site_layout != (zones, entrances):  # keep warnings given, lights and sweep otherwise
            self._site_layout = (zones, entrances)
            previous = self.site_machine
            self.site_machine = s.SiteMachine(
                zones,
                entrances,
                occupancy=previous.occupancy if previous else 0,
                armed=previous.armed if previous else False,
            )
        self._next_site_tick = 0.0
        log.info("agent.config_applied", revision=config.revision, doors=len(view.doors))

    def _use_keys(self, keys: m.SigningKeys) -> None:
        try:
            self.reception.keys = PublicKeySet.from_messages(keys.keys)
        except KeySetError as exc:
            log.error("agent.keys_unusable", error=str(exc))

    def _snapshot(self, snapshot: m.ReplicaSnapshot) -> None:
        self.replica.apply_snapshot(snapshot)
        log.info("agent.snapshot_applied", seq=snapshot.seq, credentials=len(snapshot.credentials))
        self._system("replica-resynced", f"seq {snapshot.seq}")

    def _delta(self, delta: m.ReplicaDelta) -> None:
        result = self.replica.apply_delta(delta)
        if result is DeltaResult.GAP:
            have = self.replica.seq
            log.warning("agent.replica_gap", have=have, prev_seq=delta.prev_seq, seq=delta.seq)
            if self.link is not None:
                self.link.request_snapshot(have, f"gap: have {have}, delta continues {delta.prev_seq}")

    def _ack(self, ack: m.Ack) -> None:
        self.outbox.acknowledged(ack.event_ids)

    # --- cards, PINs and codes ---------------------------------------------------------------------------

    def _reception_results(self, results: list[Result]) -> None:
        for result in results:
            if isinstance(result, Outcome):
                self._finish(result.door, result.verdict, result.method)
            elif isinstance(result, PinPrompt):
                self.hardware[result.door].feedback(Feedback.PIN_NEEDED)
                log.info("agent.pin_requested", door=result.door, credential=result.credential_ref)
            elif isinstance(result, CardLocked):
                detail = f"card {result.credential_ref} locked after wrong PINs"
                self._alarm(m.AlarmKind.PIN_BRUTE_FORCE, door=result.door, detail=detail)
            elif isinstance(result, EnrolmentArmed):
                self.hardware[result.door].feedback(Feedback.ENROL_READY)
                log.info("agent.card_enrolment_armed", door=result.door)
            elif isinstance(result, EnrolmentEnded):
                self.hardware[result.door].feedback(Feedback.IDLE)
            elif isinstance(result, EnrolmentTap):
                self._card_enrolment(result)

    def _card_enrolment(self, tap: EnrolmentTap) -> None:
        """A card tapped after its one-time code: the door stays locked, central registers the card."""
        self.hardware[tap.door].feedback(Feedback.ENROLLED)
        now = self.clock.now()
        event = self.journal.card_enrolment(now, door=tap.door, code=tap.code, uid_hash=tap.uid_hash)
        log.info("agent.card_enrolment", door=tap.door, event_id=str(event.event_id))  # never the code
        self.outbox.publish(event)

    def _finish(self, door: str, verdict: Verdict, method: m.Method) -> None:
        """Open (or not), tell the person, then journal and publish the decision."""
        self.hardware[door].feedback(Feedback.GRANTED if verdict.granted else Feedback.DENIED)
        if verdict.granted:
            self._door_event(door, d.Grant())
            if self.site_machine is not None:
                self._site_outputs(self.site_machine.grant(door, self.clock.now()))
                self._site_outputs(self.site_machine.valid_entry(self.clock.now()))
        event = self.journal.access(
            self.clock.now(),
            door=door,
            decision=verdict.decision,
            reason=verdict.reason,
            method=method,
            credential_ref=verdict.credential_ref,
            person_ref=verdict.person_ref,
            booking_ref=verdict.booking_ref,
        )
        log.info("agent.decision", door=door, decision=verdict.decision.value, reason=verdict.reason.value)
        self.outbox.publish(event)

    def awaiting_pin(self, door: str) -> bool:
        """Whether the reader at `door` waits for a PIN after a card tap."""
        return self.reception.awaiting_pin(door)

    @property
    def clock_alarm(self) -> bool:
        """Whether the wall clock is currently considered unset."""
        return self._clock_alarm

    def _clock_trusted(self, now: datetime) -> bool:
        trusted = clock_trusted(now)
        if trusted == self._clock_alarm:  # changed since we last said so
            self._clock_alarm = not trusted
            detail = f"wall clock reads {now:%Y-%m-%d}"
            self._alarm(m.AlarmKind.CLOCK_UNSET, raised=not trusted, detail=detail)
        return trusted

    # --- pins, doors and the site ------------------------------------------------------------------------

    def _signal(self, change: InputChanged) -> None:
        if change.signal is Signal.FIRE:
            self._fire(change.active)
            return
        door = change.door
        if door is None or door not in self.doors:
            log.warning("agent.signal_without_door", signal=change.signal.value, door=door)
            return
        if change.signal is Signal.DOOR_CONTACT:
            self._door_event(door, d.Contact(open=change.active))
        elif change.signal is Signal.EXIT_BUTTON and change.active:
            self._door_event(door, d.ExitRequest())
        elif change.signal is Signal.LOCK_MONITOR:
            self._door_event(door, d.LockMonitor(secured=change.active))
        elif change.signal is Signal.TAMPER:
            self._door_event(door, d.Tamper(active=change.active))
        elif change.signal is Signal.BEAM and change.active and self.site_machine is not None:
            self._site_outputs(self.site_machine.beam(door, self.clock.now()))

    def _fire(self, active: bool) -> None:
        """The hardware path (controller.devices.gpio.FireRelease) has already released the locks; this
        keeps the door machines, the events and central in step."""
        self._alarm(m.AlarmKind.FIRE, raised=active, detail="fire panel input")
        for slug in self.doors:
            self._door_event(slug, d.Fire(active=active))

    def _door_event(self, slug: str, event: d.DoorEvent) -> None:
        self._drive(slug, self.doors[slug].handle(event, self.clock.monotonic()))

    def _drive(self, slug: str, outputs: Iterable[d.DoorOutput]) -> None:
        hardware = self.hardware[slug]
        for output in outputs:
            if isinstance(output, d.Lock):
                hardware.set_unlocked(output.unlocked)
            elif isinstance(output, d.Buzzer):
                hardware.buzzer(output.on)
            elif isinstance(output, d.Alarm):
                self._alarm(output.kind, raised=output.raised, door=slug, detail=output.detail)
                hardware.feedback(Feedback.ALARM if output.raised else Feedback.IDLE)
            elif isinstance(output, d.StateChanged):
                self._door_state(slug, output.state)
            elif isinstance(output, d.Passage):
                self._passage(slug, output)
            elif isinstance(output, d.Tailgate):
                self._alarm(m.AlarmKind.TAILGATING, door=slug, detail="door opened again within one grant")

    def _door_state(self, slug: str, state: m.DoorStateName) -> None:
        now = self.clock.now()
        log.info("agent.door_state", door=slug, state=state.value)
        if self.link is not None and self.link.connected:
            message = m.DoorState(site=self.settings.site, door=slug, state=state, since=now, device_time=now)
            self.link.publish_door_state(message)

    def _passage(self, slug: str, passage: d.Passage) -> None:
        if self.site_machine is None:
            return
        now = self.clock.now()
        if passage.exit:
            self._site_outputs(self.site_machine.exit(slug, now))
        else:
            self._site_outputs(self.site_machine.entry(slug, now, granted=passage.authorised))

    def _tick_site(self) -> None:
        if self.site_machine is None or self.view is None:
            return
        now = self.clock.now()
        opening = self.view.calendar.opening(now)
        closes_at = opening.closes_at if opening else None
        outputs = self.site_machine.tick(now, closes_at, opening is not None)
        if any(isinstance(output, s.ClosingWarning) for output in outputs):
            self.closing_warned_for = closes_at  # the kiosk counts down from here
        self._site_outputs(outputs)

    def _site_outputs(self, outputs: Iterable[s.SiteOutput]) -> None:
        now = self.clock.now()
        for output in outputs:
            if isinstance(output, s.ClosingWarning):
                self.site_hardware.announce_closing(output.minutes_left)
                self._system("closing-warning", f"{output.minutes_left} min")
            elif isinstance(output, s.Closed):
                self._system("site-closed", "")
            elif isinstance(output, s.Lights):
                self.site_hardware.lights(output.zone, output.on)
            elif isinstance(output, s.IntruderAlarm):
                self.site_hardware.intruder_armed(output.armed)
                self._system("intruder-alarm-armed" if output.armed else "intruder-alarm-disarmed", "")
            elif isinstance(output, s.Intrusion):
                self._alarm(m.AlarmKind.INTRUDER, door=output.door, detail="entry while armed")
            elif isinstance(output, s.StillOccupied):
                self._system("still-occupied", f"{output.count} inside after closing")
            elif isinstance(output, s.Occupancy):
                log.info("agent.occupancy", count=output.count, at=now.isoformat())
            elif isinstance(output, s.Tailgating):
                self._alarm(m.AlarmKind.TAILGATING, door=output.door, detail=output.detail)

    def _reader_status(self, status: ReaderStatus) -> None:
        """Alarm when a reader goes offline, clear it when back; a reader found at start says nothing."""
        was_offline = status.reader in self._offline_readers
        if status.online == was_offline:
            self._offline_readers ^= {status.reader}
            door = status.reader if status.reader in self.doors else None
            self._alarm(m.AlarmKind.READER_OFFLINE, raised=not status.online, door=door, detail=status.detail)

    # --- commands from central -----------------------------------------------------------------------------

    def _command(self, command: m.Command) -> None:
        check = self.commands.check(command, self.clock.now())
        if not check.accepted:
            reason = f"{check.refusal}: {check.detail}"
            log.warning("agent.command_refused", action=command.action.value, reason=reason)
            self._command_result(command, m.CommandOutcome.REFUSED, reason)
            self._system("command-refused", f"{command.action.value}: {reason}", door=command.door)
            return
        if command.action is m.Action.OPEN_FOR:
            self._open_for(command)
            return
        problem = self._execute(command)
        outcome = m.CommandOutcome.REFUSED if problem else m.CommandOutcome.DONE
        self._command_result(command, outcome, problem)
        self._system(
            "command-done" if not problem else "command-refused",
            f"{command.action.value} by {command.issued_by}: {problem or command.reason}",
            door=command.door,
        )

    def _execute(self, command: m.Command) -> str:
        """Carry out an accepted command; returns why it could not be done, or ''."""
        doors = [command.door] if command.door else list(self.doors)
        if command.door is not None and command.door not in self.doors:
            return f"no door {command.door!r} at this agent"
        if command.action is m.Action.UNLOCK:
            seconds = float(command.duration_seconds) if command.duration_seconds else None
            for slug in doors:
                if self.doors[slug].mode is d.DoorMode.LOCKED_DOWN:
                    return f"door {slug} is locked down"
                self._door_event(slug, d.Grant(seconds=seconds))
        elif command.action is m.Action.RESYNC:
            if self.link is not None:
                self.link.request_snapshot(self.replica.seq, "resync command")
        else:
            mode = {
                m.Action.LOCK_DOWN: d.DoorMode.LOCKED_DOWN,
                m.Action.RELEASE: d.DoorMode.RELEASED,
                m.Action.NORMAL: d.DoorMode.NORMAL,
            }[command.action]
            for slug in doors:
                self._door_event(slug, d.SetMode(mode))
        return ""

    def _open_for(self, command: m.Command) -> None:
        """The Open button on a person's phone page: judged like their card at the door, without the PIN,
        and carried out (or not) like a card; the access event is the record."""
        door, holder = command.door, command.holder
        if door is None or holder is None or door not in self.doors:
            problem = f"no door {door!r} at this agent"
        elif self.view is None or door not in self.view.doors:
            problem = f"door {door!r} is not in this agent's site configuration yet"
        else:
            verdict = self._phone_holder_verdict(self.view, door, holder)
            self._finish(door, verdict, m.Method.PHONE_ONLINE)
            if verdict.granted:
                self._command_result(command, m.CommandOutcome.DONE, verdict.reason.value)
            else:
                self._command_result(
                    command, m.CommandOutcome.REFUSED, verdict.reason.value, deny_reason=verdict.reason
                )
            return
        self._command_result(command, m.CommandOutcome.REFUSED, problem)
        self._system("command-refused", f"open_for by {command.issued_by}: {problem}", door=door)

    def _phone_holder_verdict(self, view: SiteView, door: str, holder: str) -> Verdict:
        now = self.clock.now()
        return decide_phone_holder(
            view,
            door,
            self.replica.credentials_of(holder),
            self.replica.bookings_for(holder, now),
            now,
            clock_trusted=self._clock_trusted(now),
            lockdown=self.doors[door].mode is d.DoorMode.LOCKED_DOWN,
        )

    def _command_result(
        self,
        command: m.Command,
        outcome: m.CommandOutcome,
        reason: str,
        *,
        deny_reason: m.Reason | None = None,
    ) -> None:
        if self.link is None:
            return
        result = m.CommandResult(
            command_id=command.command_id,
            site=self.settings.site,
            outcome=outcome,
            at=self.clock.now(),
            reason=reason[:200],
            deny_reason=deny_reason,
        )
        self.link.publish_command_result(result)

    # --- the kiosk ------------------------------------------------------------------------------------------

    def ask_kiosk(self, request: k.Request, timeout: float = 5.0) -> k.KioskReply:
        """Thread-safe: the kiosk's request answered on the agent's thread (the kiosk server calls this).
        Raises TimeoutError when the agent does not get to it in time, or what answering it raised."""
        answer: Future[k.KioskReply] = Future()

        def work() -> None:
            if not answer.set_running_or_notify_cancel():
                return  # the kiosk gave up waiting: do nothing it would not hear of
            try:
                answer.set_result(self.kiosk(request))
            except BaseException as exc:
                answer.set_exception(exc)
                raise

        self.submit(work)
        try:
            return answer.result(timeout)
        except TimeoutError:
            answer.cancel()
            raise

    def kiosk(self, request: k.Request) -> k.KioskReply:
        """Answer a kiosk request from the replica; a check-in, extension or end is journaled for central
        first and then applied to the replica, so the doors follow it at once."""
        now = self.clock.now()
        context = DeskContext(
            config=self.replica.config(),
            view=self.view,
            keys=self.reception.keys,
            replica=self.replica,
            now=now,
            mono=self.clock.monotonic(),
            clock_trusted=self._clock_trusted(now),
            central_online=self.link is not None and self.link.connected,
            closing_warned_for=self.closing_warned_for,
        )
        answer = self.desk.answer(request, context)
        self._kiosk_effect(answer, now)
        outcome = getattr(answer.reply, "outcome", None)
        log.info("agent.kiosk", request=type(request).__name__, outcome=getattr(outcome, "value", None))
        return answer.reply

    def _kiosk_effect(self, answer: Answer, now: datetime) -> None:
        effect = answer.effect
        if effect is None:
            return
        event: m.KioskEvent
        if isinstance(effect, CheckIn):
            event = self.journal.booking_check_in(
                now, booking=effect.booking.ref, method=effect.method, person=effect.person
            )
        else:
            event = self.journal.booking_change(
                now,
                booking=effect.booking.ref,
                change=effect.change,
                ends_at=effect.booking.ends_at,
                person=effect.person,
            )
        self.replica.put_booking(effect.booking)
        log.info("agent.kiosk_booking", booking=effect.booking.ref, event_id=str(event.event_id))
        self.outbox.publish(event)

    # --- events: journal first, then publish ----------------------------------------------------------------

    def _alarm(
        self, kind: m.AlarmKind, *, raised: bool = True, door: str | None = None, detail: str = ""
    ) -> None:
        event = self.journal.alarm(
            self.clock.now(),
            kind=kind,
            severity=ALARM_SEVERITY[kind],
            raised=raised,
            door=door,
            detail=detail[:200],
        )
        log.warning("agent.alarm", kind=kind.value, raised=raised, door=door)
        self.outbox.publish(event)

    def _system(self, kind: str, detail: str, door: str | None = None) -> None:
        event = self.journal.system(self.clock.now(), kind=kind, door=door, detail=detail[:200])
        self.outbox.publish(event)

    def _connected(self) -> None:
        if self.replica.seq is None and self.link is not None:
            self.link.request_snapshot(None, "no replica yet")
        for slug, machine in self.doors.items():
            self._door_state(slug, machine.state)
        self.outbox.reconnected()

    def _check_disk(self) -> None:
        usage = self.journal.usage()
        low = usage.warn or usage.disk_low
        if low != self._disk_alarm:
            self._disk_alarm = low
            detail = f"journal at {usage.fraction:.0%}, {usage.disk_free_bytes // 2**20} MiB free on disk"
            self._raise_disk_alarm(detail, raised=low)

    def _raise_disk_alarm(self, detail: str, raised: bool = True) -> None:
        try:
            self._alarm(m.AlarmKind.DISK_LOW, raised=raised, detail=detail)
        except JournalError:  # the journal itself is what is full: say it in the log, loudly
            log.critical("agent.disk_alarm_not_recorded", detail=detail)

    # --- shutdown ------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Leave every door in its safe locked state and close the stores."""
        for slug in self.doors:
            self._drive(slug, d.DoorMachine.safe_outputs())
        self.journal.close()
        self.replica.close()
        self._nonces.close()


def open_replica(path: Path, site: str) -> Replica:
    """The replica, or a fresh empty one when the file is unusable (kept aside for a person to look at):
    the agent then asks central for a snapshot instead of refusing to start."""
    try:
        return Replica(path, site=site)
    except ReplicaError as exc:
        aside = path.with_name(f"{path.name}.unusable-{int(time.time())}")
        log.error("agent.replica_unusable", error=str(exc), moved_to=str(aside))
        path.rename(aside)
        return Replica(path, site=site)
