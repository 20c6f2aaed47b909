"""Play a scenario (hw_sim.scenario) on the full stack and say, for each expectation, met or not and what was
seen instead.

The site's clock is a ManualClock set to the scenario's start: between steps the runner advances it (finely
for the first minute, so door closers and timers run as they would, then in coarser strides), and actions
happen at an instant. Real time passes only where processes must talk: a card read through pcscd, events
crossing the broker into central's database. Expectations are polled for a short real-time while (longer for
central's side); a count in central must also stay put for a moment, so an event stored twice is caught.
"""

from __future__ import annotations

import logging
import os
import sys
import time as real_time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import structlog
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from central.models import Alarm, Credential, CredentialKind, Door, Event, Person, Site, SiteReplicaState
from central.models import PersonKind as CentralPersonKind
from central.replica import UnknownSiteError, person_ref
from central.services import bookings as booking_service
from central.services import credentials as credential_service
from central.services import groups as group_service
from central.services import people as people_service
from central.services import tokens as token_service
from controller.clock import ManualClock
from controller.schedule import SiteCalendar
from hw_sim import scenario as sc
from hw_sim.broker import BrokerError
from hw_sim.pcscd import PcscdError
from hw_sim.site import SimulatedSite, default_osdp, sim_agent_config
from hw_sim.stack import Evening, Stack, StackError, running_stack
from protocol import messages as m

OSLO = ZoneInfo("Europe/Oslo")
LIBRARY_DIR = Path(__file__).resolve().parent.parent / "scenarios"
ACTOR = "scenario"
START_MARGIN = timedelta(minutes=1)  # the start lies at least this far after real now
LOOKAHEAD_DAYS = 15
SITE_WAIT_S = 2.0  # the agent's thread, a card read through pcscd
CENTRAL_WAIT_S = 15.0  # through the broker into central's database, acknowledgements back
SYNC_WAIT_S = 30.0  # the agent's first sync with central
STEADY_S = 0.5  # a count in central must stay put this long
FINE_STEP_S = 0.5
COARSE_STEP_S = 10.0
FINE_SPAN_S = 60.0  # after every step, the first minute is lived in fine steps

SiteEvent = m.JournaledEvent


@dataclass(frozen=True)
class Outcome:
    step: int
    at: datetime  # the site's local time when it was checked
    expectation: str
    met: bool
    seen: str


@dataclass
class Report:
    path: Path
    name: str
    start: datetime | None = None  # local (Europe/Oslo)
    outcomes: list[Outcome] = field(default_factory=list)
    error: str | None = None  # the scenario could not be played to its end

    @property
    def met(self) -> bool:
        return self.error is None and all(outcome.met for outcome in self.outcomes)

    @property
    def not_met(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if not outcome.met]


class PlayError(RuntimeError):
    """A step could not be carried out (not an expectation that failed)."""


# --- the start ----------------------------------------------------------------------------------------------


def resolve_start(start: sc.Start, calendar: SiteCalendar, now: datetime) -> datetime:
    """The next moment (UTC) after `now` that matches `start` in Europe/Oslo wall-clock time."""
    earliest = now + START_MARGIN
    today = now.astimezone(OSLO).date()
    for days in range(LOOKAHEAD_DAYS):
        day = today + timedelta(days=days)
        if start.day == "tomorrow" and days != 1:
            continue
        if start.day in sc.WEEKDAYS and day.weekday() != sc.WEEKDAYS.index(start.day):
            continue
        moment = datetime.combine(day, start.clock, OSLO).astimezone(UTC)
        if moment <= earliest:
            continue
        if start.day == "open evening" and not calendar.is_open(moment):
            continue
        return moment
    raise sc.ScenarioError(f"start: the site is not open at {start.clock:%H:%M} on any of the next 14 days")


def checked_site(scenario: sc.Scenario, read: Callable[[str], m.SiteConfig]) -> m.SiteConfig:
    """The scenario's site as central configures it, after checking the doors, rooms and zones it names."""
    try:
        config = read(scenario.site)
    except UnknownSiteError:
        raise scenario.error("site", f"central has no site {scenario.site!r}") from None
    sc.check_site(scenario, config)
    return config


def local_moment(moment: sc.Moment, start: datetime, *, wrap: bool = True) -> datetime:
    """A scenario moment as UTC; a clock time earlier than the start is the next day when `wrap`."""
    if moment.offset is not None:
        return start + moment.offset
    assert moment.clock is not None
    local_start = start.astimezone(OSLO)
    at = datetime.combine(local_start.date(), moment.clock, OSLO)
    if wrap and at < local_start:
        at = datetime.combine(local_start.date() + timedelta(days=1), moment.clock, OSLO)
    return at.astimezone(UTC)


# --- running ------------------------------------------------------------------------------------------------


def run_scenario(scenario: sc.Scenario, stack: Stack, *, now: datetime | None = None) -> Report:
    """Play one scenario on a fresh evening of `stack`; problems end up in the report, never raised."""
    report = Report(scenario.path, scenario.name)
    try:
        with stack.evening(scenario.path.stem) as evening:
            player = _Player(scenario, stack, evening, report)
            with player.site_running(now or datetime.now(UTC)):
                player.play()
    except (sc.ScenarioError, PlayError) as exc:
        report.error = str(exc)
    except Exception as exc:  # a broken stack is reported with the scenario, the next one still runs
        report.error = f"{type(exc).__name__}: {exc}"
    return report


def library() -> list[Path]:
    """The scenario library CI runs: every scenarios/*.yaml of this checkout."""
    return sorted(LIBRARY_DIR.glob("*.yaml"))


def run_command(paths: Sequence[Path], *, console: Console, log_file: Path | None = None) -> int:
    """`meraapent sim run`: check every file first (exit 2 on a bad one), play them on one stack, print a
    table per scenario; exit 1 if any expectation is not met or a scenario could not be played."""
    if not paths:
        console.print("[red]error:[/] no scenario files given (or use --all)", soft_wrap=True)
        return 2
    try:
        scenarios = [sc.load(path) for path in paths]
    except sc.ScenarioError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return 2
    _quiet_logs(log_file)
    reports = []
    try:
        with running_stack() as stack:
            try:
                for scenario in scenarios:
                    checked_site(scenario, stack.site_config)
            except sc.ScenarioError as exc:
                console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
                return 2
            for scenario in scenarios:
                name = f"[bold]{escape(scenario.name)}[/] ({escape(str(scenario.path))})"
                console.print(f"{name} ...", soft_wrap=True)
                report = run_scenario(scenario, stack)
                reports.append(report)
                console.print(report_table(report))
    except (PcscdError, BrokerError, StackError, OSError) as exc:  # the stack itself did not come up
        console.print(f"[red]error:[/] the simulated stack did not start: {escape(str(exc))}", soft_wrap=True)
        return 1
    met = sum(report.met for report in reports)
    colour = "green" if met == len(reports) else "red"
    console.print(f"[{colour}]{met} of {len(reports)} scenarios met every expectation[/]", soft_wrap=True)
    return 0 if met == len(reports) else 1


def report_table(report: Report) -> Table:
    """One scenario's expectations as a table: step, site time, expectation, result, what was seen."""
    start = f"{report.start:%A %d %B %Y %H:%M}" if report.start else "not started"
    title = f"{escape(report.name)} — {escape(report.path.name)}, from {start}"
    table = Table(title=title, title_justify="left")
    for column in ("step", "time", "expected", "result", "seen"):
        table.add_column(column, overflow="fold")
    for outcome in report.outcomes:
        result = "[green]met[/]" if outcome.met else "[bold red]NOT MET[/]"
        table.add_row(
            str(outcome.step), f"{outcome.at:%H:%M:%S}", outcome.expectation, result, escape(outcome.seen)
        )
    if report.error is not None:
        table.add_row("", "", "the scenario plays to its end", "[bold red]FAILED[/]", escape(report.error))
    return table


def _quiet_logs(log_file: Path | None) -> None:
    """The stack's logs go to `log_file`, or only errors to stderr: the tables stay readable."""
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
                structlog.processors.KeyValueRenderer(key_order=["timestamp", "level", "event"]),
            ],
            logger_factory=structlog.WriteLoggerFactory(file=log_file.open("a", encoding="utf-8")),
            cache_logger_on_first_use=False,
        )
    else:
        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
            logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
            cache_logger_on_first_use=False,
        )


@dataclass
class _Person:
    spec: sc.PersonSpec
    person_id: int
    card_uid: bytes | None


class _Player:
    def __init__(self, scenario: sc.Scenario, stack: Stack, evening: Evening, report: Report) -> None:
        self.scenario = scenario
        self.stack = stack
        self.evening = evening
        self.report = report
        self.config = checked_site(scenario, evening.site_config)
        self.people: dict[str, _Person] = {}
        self.start = datetime.now(UTC)
        self.clock = ManualClock(self.start)
        self._site: SimulatedSite | None = None
        self._window = 0  # events before this index belong to earlier `expect:` steps

    @property
    def site(self) -> SimulatedSite:
        assert self._site is not None
        return self._site

    # --- setting the evening up ------------------------------------------------------------------------

    @contextmanager
    def site_running(self, now: datetime) -> Iterator[None]:
        self.start = resolve_start(self.scenario.start, SiteCalendar.from_config(self.config), now)
        self.report.start = self.start.astimezone(OSLO)
        self.clock = ManualClock(self.start)
        self._create_people()
        self._create_bookings()
        self.evening.poke()
        config_path = sim_agent_config(
            self.config,
            data_dir=self.evening.directory / "agent",
            uid_key_file=self.stack.uid_key_file,
            mqtt_host=self.evening.broker.host,
            mqtt_port=self.evening.broker.port,
            pcscd=self.stack.pcscd,
            osdp=default_osdp(self.config),
        )
        self._site = SimulatedSite(config_path, clock=self.clock, pcscd=self.stack.pcscd)
        self._site.start()
        try:
            if not self._until(self._synced, SYNC_WAIT_S):
                raise PlayError(
                    f"the site did not get central's configuration and cards within {SYNC_WAIT_S:g} s"
                )
            yield
        finally:
            self._site.stop()

    def _create_people(self) -> None:
        key = self.evening.settings.uid_hash_key()
        with self.evening.session() as session:
            for name, spec in self.scenario.people.items():
                if spec.seed_ref is not None:
                    person = session.scalars(
                        select(Person).where(Person.external_ref == sc.seed_external_ref(name))
                    ).one()
                    uid = bytes.fromhex(spec.card_uid) if spec.card_uid else None
                    self.people[name] = _Person(spec, person.id, uid)
                    continue
                self.people[name] = self._create_person(session, spec, key)

    def _create_person(self, session: Session, spec: sc.PersonSpec, key: bytes) -> _Person:
        person = people_service.create_person(
            session,
            ACTOR,
            {
                "kind": CentralPersonKind(spec.kind.value),
                "display_name": spec.name.capitalize(),
                "external_ref": f"scenario:{spec.name}",
                "blocked": spec.blocked,
            },
        )
        uid = None
        if spec.card:
            uid = bytes([0x04]) + os.urandom(6)
            credential_service.register_card(
                session, ACTOR, person.id, uid=uid.hex().upper(), uid_key=key, pin=spec.pin, label="Scenario"
            )
        if spec.phone:
            credential_service.register_phone(session, ACTOR, person.id, label="Scenario phone")
        for group in spec.groups:
            group_service.add_member(session, ACTOR, group, person.id)
        return _Person(spec, person.id, uid)

    def _create_bookings(self) -> None:
        with self.evening.session() as session:
            for booking in self.scenario.bookings:
                booking_service.create_booking(
                    session,
                    ACTOR,
                    {
                        "site": self.scenario.site,
                        "room": booking.room,
                        "holder_id": self.people[booking.holder].person_id if booking.holder else None,
                        "title": booking.title,
                        "starts_at": local_moment(booking.starts, self.start, wrap=False),
                        "ends_at": local_moment(booking.ends, self.start, wrap=False),
                    },
                )

    def _central_seq(self) -> int:
        with self.evening.session() as session:
            seq = session.scalar(
                select(SiteReplicaState.seq)
                .join(Site, Site.id == SiteReplicaState.site_id)
                .where(Site.slug == self.scenario.site)
            )
        return int(seq or 0)

    def _synced(self) -> bool:
        agent = self.site.agent
        have = agent.replica.seq
        return (
            agent.view is not None
            and have is not None
            and have >= self._central_seq()
            and agent.replica.keys() is not None
        )

    # --- playing ---------------------------------------------------------------------------------------

    def play(self) -> None:
        for step in self.scenario.steps:
            self._advance_to(local_moment(step.at, self.start))
            if step.action is not None:
                try:
                    self._act(step.action)
                except Exception as exc:  # the stack or a service said no: the evening cannot go on
                    raise PlayError(f"step {step.number} ({step.action}): {_one_line(exc)}") from None
            if step.expect:
                for expectation in step.expect:
                    self.report.outcomes.append(self._check(step.number, expectation))
                self._window = len(self.site.events())

    def _advance_to(self, target: datetime) -> None:
        self._advance((target - self.clock.now()).total_seconds())

    def _advance(self, seconds: float) -> None:
        if seconds <= 0:
            return
        fine = min(seconds, FINE_SPAN_S)
        self.site.advance(fine, step=FINE_STEP_S)
        if seconds > fine:
            self.site.advance(seconds - fine, step=COARSE_STEP_S)

    def _act(self, action: sc.Action) -> None:
        site = self.site
        if isinstance(action, sc.Tap):
            self._tap(action)
        elif isinstance(action, sc.Pin):
            site.keys(action.door, action.pin + "#")
        elif isinstance(action, sc.Scan):
            token = action.token
            site.scan(action.door, action.text or "" if token is None else self._token(action.door, token))
        elif isinstance(action, sc.DoorAction):
            self._door_action(action)
        elif isinstance(action, sc.Switch):
            self._switch(action)
        elif isinstance(action, sc.CentralChange):
            self._central_change(action)
        elif isinstance(action, sc.Wait):
            self._advance(action.duration.total_seconds())
        site.settle()

    def _tap(self, tap: sc.Tap) -> None:
        uid = bytes([0x04]) + os.urandom(6) if tap.person is None else self.people[tap.person].card_uid
        if uid is None:
            raise PlayError(f"{tap.person} has no card")
        self.site.tap(tap.door, uid)  # returns once the reader showed the agent's answer

    def _door_action(self, action: sc.DoorAction) -> None:
        site, door = self.site, action.door
        handlers: dict[str, Callable[[str], object]] = {
            "push": site.push,
            "force": site.force,
            "hold_open": site.hold_open,
            "let_go": site.let_go,
            "exit": site.press_exit,
            "beam": site.beam,
        }
        handlers[action.kind](door)

    def _switch(self, switch: sc.Switch) -> None:
        if switch.what == "fire":
            self.site.fire(switch.on)
        elif switch.what == "wan":
            self.site.network(switch.on)
        elif switch.on:
            self.evening.central_up()
        else:
            self.evening.central_down()

    def _central_change(self, change: sc.CentralChange) -> None:
        person = self.people[change.person]
        with self.evening.session() as session:
            cards = session.scalars(
                select(Credential.id).where(
                    Credential.person_id == person.person_id, Credential.kind == CredentialKind.CARD
                )
            ).all()
            if not cards:
                raise PlayError(f"{change.person} has no card in central")
            for credential_id in cards:
                if change.kind == "revoke":
                    credential_service.revoke(session, ACTOR, credential_id)
                else:
                    credential_service.block(session, ACTOR, credential_id)
        self.evening.poke()

    def _token(self, door: str, token: sc.TokenSpec) -> str:
        person = self.people[token.person]
        minutes = max(1, round(token.valid_for.total_seconds() / 60))
        doors = token.doors if token.doors is not None else (() if token.zones else (door,))
        request = token_service.TokenRequest(
            site=token.site or self.scenario.site,
            minutes=minutes,
            doors=doors,
            zones=token.zones,
            starts_at=self.clock.now() + token.valid_from,
        )
        with self.evening.session() as session:
            issued = token_service.issue(
                session,
                ACTOR,
                person.person_id,
                request,
                data_dir=self.evening.settings.data_dir,
                issuer=self.evening.settings.token_issuer,
            )
        return issued.text

    # --- observing -------------------------------------------------------------------------------------

    def _until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Poll `predicate` in real time (the site's clock stands still meanwhile)."""
        deadline = real_time.monotonic() + timeout
        while True:
            if predicate():
                return True
            if real_time.monotonic() > deadline:
                return False
            real_time.sleep(0.02)

    def _check(self, step: int, expectation: sc.Expectation) -> Outcome:
        check, timeout, steady = self._checker(expectation)
        deadline = real_time.monotonic() + timeout
        while True:
            met, seen = check()
            if met or real_time.monotonic() > deadline:
                break
            real_time.sleep(0.05)
        if met and steady:
            real_time.sleep(STEADY_S)
            met, later = check()
            if not met:
                seen = f"{seen}, then {later}"
        at = self.clock.now().astimezone(OSLO)
        return Outcome(step, at, str(expectation), met, seen)

    def _checker(self, e: sc.Expectation) -> tuple[Callable[[], tuple[bool, str]], float, bool]:
        """The check for one expectation, how long to poll for it, and whether it must then stay met."""
        if isinstance(e, sc.DoorExpectation):
            return (lambda: self._check_door(e)), SITE_WAIT_S, False
        if isinstance(e, sc.AccessExpectation):
            return (lambda: self._check_access(e)), SITE_WAIT_S, False
        if isinstance(e, sc.AlarmExpectation):
            if e.central:
                return (lambda: self._check_central_alarm(e)), CENTRAL_WAIT_S, False
            return (lambda: self._check_alarm(e)), SITE_WAIT_S, False
        if isinstance(e, sc.LightsExpectation):
            return (lambda: self._check_lights(e)), SITE_WAIT_S, False
        if isinstance(e, sc.IntruderExpectation):
            return (lambda: self._check_intruder(e)), SITE_WAIT_S, False
        if isinstance(e, sc.SiteEventExpectation):
            return (lambda: self._check_site_event(e)), SITE_WAIT_S, False
        if isinstance(e, sc.OccupancyExpectation):
            return (lambda: self._check_occupancy(e)), SITE_WAIT_S, False
        if isinstance(e, sc.CentralEventsExpectation):
            return (lambda: self._check_central_events(e)), CENTRAL_WAIT_S, True
        if isinstance(e, sc.JournalExpectation):
            return (lambda: self._check_journal(e)), CENTRAL_WAIT_S, False
        return (lambda: (self._synced(), self._sync_seen())), CENTRAL_WAIT_S, False

    def _check_door(self, e: sc.DoorExpectation) -> tuple[bool, str]:
        doors = [door.slug for door in self.config.doors] if e.door == sc.ALL_DOORS else [e.door]
        seen = {door: self._door_reading(e.what, door) for door in doors}
        wrong = {door: value for door, value in seen.items() if value != e.value}
        if e.door != sc.ALL_DOORS:
            return not wrong, seen[e.door]
        return not wrong, ", ".join(f"{door}: {value}" for door, value in (wrong or seen).items())

    def _door_reading(self, what: str, door: str) -> str:
        site = self.site
        if what == "awaiting_pin":
            return str(site.agent.awaiting_pin(door)).lower()
        if what == "door_state":
            state = site.door_state(door)
            return str(getattr(state, "value", state))
        energised = site.relay_energised(door)
        if what == "relay":
            return "energised" if energised else "de-energised"
        lock_type = next(d.lock_type for d in self.config.doors if d.slug == door)
        unlocked = energised if lock_type is m.LockType.FAIL_SECURE else not energised
        return "unlocked" if unlocked else "locked"

    def _window_events(self) -> list[SiteEvent]:
        return list(self.site.events()[self._window :])

    def _ref(self, person: str | None) -> str | None:
        return None if person is None else person_ref(self.people[person].person_id)

    def _check_access(self, e: sc.AccessExpectation) -> tuple[bool, str]:
        decisions = [
            ev for ev in self._window_events() if isinstance(ev, m.AccessEvent) and ev.door == e.door
        ]
        if e.decision == "none":
            return not decisions, "; ".join(map(self._describe_access, decisions)) or "no decision"
        ref = self._ref(e.person)

        def matches(ev: m.AccessEvent) -> bool:
            return (
                ev.decision.value == e.decision
                and (e.reason is None or ev.reason is e.reason)
                and (ref is None or ev.person_ref == ref)
            )

        if e.count is not None:
            matching = [ev for ev in decisions if matches(ev)]
            shown = "; ".join(map(self._describe_access, decisions)) or "no decision"
            return len(matching) == e.count, f"{len(matching)} matching of {len(decisions)}: {shown}"
        if not decisions:
            return False, f"no decision at {e.door}"
        latest = decisions[-1]
        return matches(latest), self._describe_access(latest)

    def _describe_access(self, event: m.AccessEvent) -> str:
        names = {person_ref(p.person_id): name for name, p in self.people.items()}
        who = f" for {names.get(event.person_ref or '', event.person_ref)}" if event.person_ref else ""
        at = event.device_time.astimezone(OSLO)
        return f"{event.decision.value} ({event.reason.value}){who} at {at:%H:%M:%S}"

    def _check_alarm(self, e: sc.AlarmExpectation) -> tuple[bool, str]:
        alarms = [
            ev
            for ev in self.site.events()
            if isinstance(ev, m.AlarmEvent) and ev.kind is e.kind and (e.door is None or ev.door == e.door)
        ]
        if not alarms:
            return e.state == "none", f"no {e.kind.value} alarm"
        latest = alarms[-1]
        state = "raised" if latest.raised else "cleared"
        at = latest.device_time.astimezone(OSLO)
        where = f" at {latest.door}" if latest.door else ""
        return state == e.state, f"{state}{where} at {at:%H:%M:%S}"

    def _check_lights(self, e: sc.LightsExpectation) -> tuple[bool, str]:
        zones = [e.zone] if e.zone else [zone.slug for zone in self.config.zones]
        seen = {zone: self.site.lights(zone) for zone in zones}
        wrong = {zone: value for zone, value in seen.items() if value is not e.on}
        shown = wrong or seen
        return not wrong, ", ".join(f"{zone}: {_on_off(value)}" for zone, value in shown.items())

    def _check_intruder(self, e: sc.IntruderExpectation) -> tuple[bool, str]:
        armed = self.site.intruder_armed()
        return armed == e.armed, "armed" if armed else "disarmed"

    def _check_site_event(self, e: sc.SiteEventExpectation) -> tuple[bool, str]:
        events = [ev for ev in self._window_events() if isinstance(ev, m.SystemEvent)]
        found = any(ev.kind == e.kind and (e.detail is None or ev.detail == e.detail) for ev in events)
        shown = ", ".join(f"{ev.kind} ({ev.detail})" if ev.detail else ev.kind for ev in events)
        return found, shown or "no site events since the previous check"

    def _check_occupancy(self, e: sc.OccupancyExpectation) -> tuple[bool, str]:
        machine = self.site.agent.site_machine
        count = machine.occupancy if machine is not None else 0
        return count == e.count, f"{count} inside"

    def _check_central_events(self, e: sc.CentralEventsExpectation) -> tuple[bool, str]:
        with self.evening.session() as session:
            stmt = (
                select(func.count())
                .select_from(Event)
                .join(Site, Site.id == Event.site_id)
                .where(Site.slug == self.scenario.site)
            )
            if e.person is not None:
                stmt = stmt.where(Event.person_id == self.people[e.person].person_id)
            if e.kind is not None:
                stmt = stmt.where(Event.kind == e.kind)
            if e.decision is not None:
                stmt = stmt.where(Event.decision == e.decision)
            if e.reason is not None:
                stmt = stmt.where(Event.reason == e.reason.value)
            if e.door is not None:
                stmt = stmt.where(Event.door_slug == e.door)
            count = int(session.scalar(stmt) or 0)
        return count == e.count, f"{count} in central"

    def _check_central_alarm(self, e: sc.AlarmExpectation) -> tuple[bool, str]:
        with self.evening.session() as session:
            stmt = (
                select(Alarm.cleared_at, Door.slug)
                .join(Site, Site.id == Alarm.site_id)
                .outerjoin(Door, Door.id == Alarm.door_id)
                .where(Site.slug == self.scenario.site, Alarm.kind == e.kind.value)
            )
            if e.door is not None:
                stmt = stmt.where(Door.slug == e.door)
            rows = session.execute(stmt).all()
        if not rows:
            return e.state == "none", f"no {e.kind.value} alarm in central"
        active = sum(1 for cleared, _door in rows if cleared is None)
        state = "raised" if active else "cleared"
        return state == e.state, f"{len(rows)} in central, {active} not cleared"

    def _check_journal(self, e: sc.JournalExpectation) -> tuple[bool, str]:
        pending = self.site.agent.journal.pending_count()
        return pending == e.pending, f"{pending} waiting"

    def _sync_seen(self) -> str:
        return f"site at replica seq {self.site.agent.replica.seq}, central at {self._central_seq()}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _on_off(value: bool | None) -> str:
    return "unknown" if value is None else ("on" if value else "off")
