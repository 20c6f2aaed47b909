"""`meraapent sim ...`: simulated sites on virtual hardware, for newcomers, demos and CI.

`sim site` plays one torg interactively against a running central and broker: tap demo cards, type PINs,
push doors, raise the fire alarm, and watch what the agent decides and what central records. With
`--commands FILE`, or with stdin not a terminal, it reads the same commands line by line and stops at the
first one that fails (exit code 1), which is how scripts and tests drive it.

The simulator's libraries (pcscd, pyscard, gpiozero) load only when a simulation really runs.
"""

from __future__ import annotations

import cmd
import contextlib
import json
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING, Annotated, NoReturn
from zoneinfo import ZoneInfo

import typer

if TYPE_CHECKING:
    from controller.clock import Clock
    from hw_sim.pcscd import PcscDaemon
    from hw_sim.site import SimulatedSite
    from protocol import messages as m

app = typer.Typer(no_args_is_help=True, help="Simulated sites on virtual hardware.")

DEFAULT_API = "http://127.0.0.1:8000"
SYNC_TIMEOUT_S = 30.0
KIOSK_HOLD_S = 3.0  # long enough for pcscd to poll the virtual reader and the kiosk to answer
LAST_EVENTS = 6


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@app.command("site")
def site_command(
    site: Annotated[str, typer.Option("--site", help="The site's slug in central, e.g. heggedal.")],
    api: Annotated[str, typer.Option("--api", help="Central's REST API (for `central`).")] = DEFAULT_API,
    mqtt_host: Annotated[
        str | None,
        typer.Option("--mqtt-host", help="Broker host (default: MERAAPENT_MQTT_HOST or 127.0.0.1)."),
    ] = None,
    mqtt_port: Annotated[
        int | None, typer.Option("--mqtt-port", help="Broker port (default: MERAAPENT_MQTT_PORT or 1883).")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Central's data directory (default: MERAAPENT_DATA_DIR or ./var); the simulated agent "
            "keeps its own data in <data-dir>/sim/<site>.",
        ),
    ] = None,
    uid_hash_key: Annotated[
        Path | None,
        typer.Option("--uid-hash-key", help="Card UID hash key (default: <data-dir>/secrets/uid-hash.key)."),
    ] = None,
    at: Annotated[
        str,
        typer.Option(
            "--at",
            help="Simulated time, running on in real time from there: 'now', 'open' (now if the site is "
            "open, else its next evening at 19:00) or an ISO 8601 time (site time without an offset).",
        ),
    ] = "now",
    commands: Annotated[
        Path | None, typer.Option("--commands", help="Read commands from this file instead of a prompt.")
    ] = None,
    kiosk_port: Annotated[
        int,
        typer.Option(
            "--kiosk-port", help="Serve the torg's kiosk to browsers on this port (textual-serve); 0: don't."
        ),
    ] = 0,
) -> None:
    """Run a simulated site agent against a running central and broker, with a prompt to play it."""
    from central.config import ConfigError, load_settings

    try:
        settings = load_settings(data_dir=data_dir, mqtt_host=mqtt_host, mqtt_port=mqtt_port)
    except ConfigError as exc:
        _fail(str(exc))
    script: IO[str] | None = None
    if commands is not None:
        try:
            script = commands.open(encoding="utf-8")
        except OSError as exc:
            _fail(f"cannot read {commands}: {exc.strerror or exc}")
    elif not sys.stdin.isatty():
        script = sys.stdin
    key_file = uid_hash_key or settings.secrets_dir / "uid-hash.key"
    if not 0 <= kiosk_port < 65536:
        _fail(f"--kiosk-port must be 1–65535 (or 0 for none), got {kiosk_port}")
    play = SitePlay(site, settings.mqtt_host, settings.mqtt_port, settings.data_dir, key_file, api)
    play.kiosk_port = kiosk_port
    raise typer.Exit(play.run(at, script))


# --- running a site ----------------------------------------------------------------------------------------


class SitePlay:
    """One `sim site` session: fetch the site's configuration, start pcscd and the agent, then play."""

    def __init__(self, site: str, host: str, port: int, data_dir: Path, key_file: Path, api: str) -> None:
        self.site, self.host, self.port = site, host, port
        self.data_dir, self.key_file, self.api = data_dir, key_file, api.rstrip("/")
        self.kiosk_port = 0

    def run(self, at: str, script: IO[str] | None) -> int:
        from controller.config import ConfigError, read_uid_hash_key
        from hw_sim.broker import BrokerError, retained_site_config
        from hw_sim.pcscd import PcscdError, running_pcscd
        from hw_sim.site import SimSiteError, SimulatedSite, default_osdp, sim_agent_config

        try:
            read_uid_hash_key(self.key_file)
        except ValueError as exc:
            _fail(f"{exc} (is --data-dir central's data directory? `make demo` uses var/demo)")
        from rich.console import Console

        out = Console(highlight=False)
        out.print(f"Fetching {self.site}'s configuration from central (MQTT {self.host}:{self.port}) ...")
        try:
            config = retained_site_config(self.host, self.port, self.site)
            clock = sim_clock(at, config)
        except (BrokerError, SimSiteError, ValueError) as exc:
            _fail(str(exc))
        sim_dir = self.data_dir / "sim" / self.site
        log_file = _log_to_file(sim_dir / "agent.log")
        try:
            with (
                _stop_on_hangup(),
                running_pcscd(export_socket=True, readers=max(2, len(config.doors) + 1)) as pcscd,
            ):
                path = sim_agent_config(
                    config,
                    data_dir=sim_dir,
                    uid_key_file=self.key_file,
                    mqtt_host=self.host,
                    mqtt_port=self.port,
                    pcscd=pcscd,
                    osdp=default_osdp(config),
                    kiosk=True,
                )
                with (
                    SimulatedSite(path, clock=clock, pcscd=pcscd) as sim,
                    self._kiosk_web(sim, config, pcscd),
                ):
                    sim.wait_synced(SYNC_TIMEOUT_S)
                    console = SiteConsole(sim, config, self, log_file)
                    return console.play(script)
        except (PcscdError, SimSiteError, ConfigError, BrokerError) as exc:
            _fail(str(exc))
        except AssertionError as exc:  # the site did not get what it waited for (central's data, a reaction)
            _fail(str(exc))
        finally:
            if script is not None and script is not sys.stdin:
                script.close()

    @contextlib.contextmanager
    def _kiosk_web(self, sim: SimulatedSite, config: m.SiteConfig, pcscd: PcscDaemon) -> Iterator[None]:
        """With --kiosk-port, the torg's kiosk served to browsers beside the prompt, on the simulated agent's
        kiosk socket and the kiosk's own virtual reader (lay a card there with `kiosk PERSON`)."""
        if not self.kiosk_port:
            yield
            return
        from hw_sim.site import default_osdp, kiosk_reader_name

        reader = re.escape(kiosk_reader_name(config, pcscd, default_osdp(config)))
        args = ["kiosk", "serve", "--host", "127.0.0.1", "--port", str(self.kiosk_port), "--site", self.site]
        args += ["--socket", str(sim.kiosk_socket), "--reader", f"^{reader}$"]
        log = (self.data_dir / "sim" / self.site / "kiosk.log").open("ab")
        command = [str(Path(sys.executable).with_name("meraapent")), *args]
        process = subprocess.Popen(  # noqa: S603 (our own command, with our own arguments)
            command, stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
        try:
            yield
        finally:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
            log.close()

    def central_events(self, limit: int) -> list[dict[str, object]]:
        """The site's latest events as central stored them."""
        return _items(self._api("GET", f"/events?site={self.site}&limit={limit}"))

    def book(self, person_ref: str, room: str, starts_at: datetime, minutes: int) -> int:
        """Book `room` for a demo person from `starts_at` (in simulated time) as the booking system would;
        returns the booking's id."""
        person_id = self._demo_person_id(person_ref)
        ends_at = starts_at + timedelta(minutes=minutes)
        body = {
            "site": self.site, "room": room, "holder_id": person_id, "title": "Demo",
            "starts_at": starts_at.isoformat(), "ends_at": ends_at.isoformat(),
        }  # fmt: skip
        created = self._api("POST", "/bookings", body)
        booking_id = created.get("id") if isinstance(created, dict) else None
        if not isinstance(booking_id, int):
            raise RuntimeError("central's answer holds no booking id")
        return booking_id

    def _demo_person_id(self, person_ref: str) -> object:
        found = _items(self._api("GET", f"/people?external_ref=demo:{person_ref}"))
        if not found:
            raise RuntimeError(f"central knows no demo person {person_ref}; was it seeded?")
        return found[0]["id"]

    def issue_token(self, person_ref: str, door: str, starts_at: datetime) -> str:
        """Ask central to issue a demo person's phone a token for `door`, valid from `starts_at` (the
        simulated now) for an hour, as a booking system or the caretaker's page would."""
        person_id = self._demo_person_id(person_ref)
        body = {"site": self.site, "doors": [door], "minutes": 60, "starts_at": starts_at.isoformat()}
        issued = self._api("POST", f"/people/{person_id}/tokens", body)
        token = issued.get("token") if isinstance(issued, dict) else None
        if not isinstance(token, str):
            raise RuntimeError("central's answer holds no token")
        return token

    def _api(self, method: str, path: str, body: object = None) -> object:
        """One call to central's REST API with the demo admin token; RuntimeError (one line) if it fails."""
        token_file = self.data_dir / "admin-token"
        try:
            token = token_file.read_text().strip()
        except OSError:
            raise RuntimeError(f"no admin token in {token_file} to ask central's API with") from None
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the operator's own --api URL
            self.api + path, data=data, headers=headers, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return json.load(response)
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"central's API refused {method} {path}: {_problem(exc)}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise RuntimeError(f"central's API at {self.api} did not answer: {exc}") from None


def _items(page: object) -> list[dict[str, object]]:
    items = page.get("items", []) if isinstance(page, dict) else []
    return [item for item in items if isinstance(item, dict)]


def _problem(error: urllib.error.HTTPError) -> str:
    """The `detail` of central's problem-details answer, else the HTTP status."""
    try:
        detail = json.load(error).get("detail")
    except (ValueError, AttributeError, OSError):
        detail = None
    return str(detail) if detail else f"HTTP {error.code}"


def sim_clock(at: str, config: m.SiteConfig) -> Clock:
    """The simulated site's clock for --at: real time, or real time shifted to another moment."""
    from controller.clock import SystemClock
    from controller.schedule import SiteCalendar
    from hw_sim.site import ShiftedClock, open_evening

    now = datetime.now(UTC)
    if at == "now":
        return SystemClock()
    if at == "open":
        if SiteCalendar.from_config(config).is_open(now):
            return SystemClock()
        return ShiftedClock(open_evening(config, now))
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise ValueError(
            f"--at must be 'now', 'open' or an ISO 8601 time like 2030-06-03T19:00, not {at!r}"
        ) from None
    if moment.utcoffset() is None:
        moment = moment.replace(tzinfo=ZoneInfo(config.timezone))
    return ShiftedClock(moment)


@contextlib.contextmanager
def _stop_on_hangup() -> Iterator[None]:
    """SIGTERM and a closed terminal stop the site like Ctrl-C does: cleanly, pcscd included."""

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _log_to_file(path: Path) -> Path:
    """The agent logs (structlog) into a file: the prompt stays readable."""
    import structlog

    path.parent.mkdir(parents=True, exist_ok=True)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.KeyValueRenderer(key_order=["timestamp", "level", "event"]),
        ],
        logger_factory=structlog.WriteLoggerFactory(file=path.open("a", encoding="utf-8")),
        cache_logger_on_first_use=False,
    )
    return path


# --- the prompt ------------------------------------------------------------------------------------------


class CommandError(Exception):
    """A command the console cannot carry out; the message says why and what would work."""


class SiteConsole(cmd.Cmd):
    """The prompt: one method per command (`do_tap` is `tap`); output through rich."""

    def __init__(self, sim: SimulatedSite, config: m.SiteConfig, play: SitePlay, log_file: Path) -> None:
        super().__init__()
        from rich.console import Console

        self.sim, self.config, self.play_ = sim, config, play
        self.log_file = log_file
        self.out = Console(highlight=False)
        self.prompt = f"{config.site}> "
        self.people = demo_cards()
        self.phones = demo_phones()
        self._reported = len(sim.events())
        self._states = self._door_states()
        self._shown = {slug: len(sim.feedback(slug)) for slug in sim.doors}
        self.failed = False

    # --- driving -------------------------------------------------------------------------------------

    def play(self, script: IO[str] | None) -> int:
        self.welcome()
        if script is None:
            with contextlib.suppress(KeyboardInterrupt):
                self.cmdloop()
            self.out.print("bye")
            return 0
        for number, raw in enumerate(script, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            self.out.print(f"[bold]{self.prompt}{line}[/]")
            if self.onecmd(line):
                break
            if self.failed:
                self.out.print(f"[red]stopped at line {number}[/]")
                return 1
        return 0

    def onecmd(self, line: str) -> bool:
        self.failed = False
        try:
            stop = super().onecmd(line)
        except (CommandError, ValueError, KeyError, RuntimeError, AssertionError) as exc:
            self.out.print(f"[red]error:[/] {exc}")
            self.failed = True
            return False
        self.report()
        return bool(stop)

    def emptyline(self) -> bool:
        return False

    def default(self, line: str) -> None:
        raise CommandError(f"unknown command {line.split()[0]!r}; `help` lists the commands")

    # --- commands ------------------------------------------------------------------------------------

    def do_tap(self, arg: str) -> None:
        """tap DOOR PERSON|UID   lay a demo person's card (or a UID in hex) on the reader"""
        door, who = self._args(arg, 2, "tap DOOR PERSON|UID")
        self.sim.tap(self._door(door), self._uid(who))

    def do_pin(self, arg: str) -> None:
        """pin DOOR 1234         type a PIN on the door's keypad (# is added)"""
        door, pin = self._args(arg, 2, "pin DOOR 1234")
        if not pin.isdigit():
            raise CommandError("a PIN is digits, e.g. `pin hovedinngang 1234`")
        self.sim.keys(self._door(door), pin + "#")

    def do_keys(self, arg: str) -> None:
        """keys DOOR *12345678#  press keys on the keypad (* a card code # then a tap registers the card)"""
        door, keys = self._args(arg, 2, "keys DOOR *12345678#")
        if not all(key.isdigit() or key in "*#" for key in keys):
            raise CommandError("a keypad has the digits, * and #, e.g. `keys hovedinngang *12345678#`")
        self.sim.keys(self._door(door), keys)

    def do_book(self, arg: str) -> None:
        """book PERSON ROOM      central books ROOM for PERSON from 5 minutes from now, for an hour"""
        who, room = self._args(arg, 2, "book PERSON ROOM")
        ref = demo_refs().get(who.lower())
        if ref is None:
            raise CommandError(f"{who!r} is not a demo person; people: {', '.join(demo_refs())}")
        rooms = {r.slug for r in self.config.rooms}
        if room not in rooms:
            raise CommandError(f"no room {room!r} here; rooms: {', '.join(sorted(rooms))}")
        starts = self.sim.clock.now().replace(microsecond=0) + timedelta(minutes=5)
        booking_id = self.play_.book(ref, room, starts, 60)
        ref_on_wire = f"b{booking_id}"
        self.sim.wait_for(
            lambda: self.sim.agent.replica.booking(ref_on_wire) is not None, SYNC_TIMEOUT_S,
            f"booking {booking_id} reaches the site",
        )  # fmt: skip
        local = starts.astimezone(ZoneInfo(self.config.timezone))
        self.out.print(f"  central booked {room} for {who} from {local:%H:%M} for an hour; the site has it")

    def do_kiosk(self, arg: str) -> None:
        """kiosk PERSON|UID      hold a card to the kiosk's reader for a few seconds (to check in)"""
        (who,) = self._args(arg, 1, "kiosk PERSON|UID")
        reader = self.sim.kiosk_reader
        reader.present(self._uid(who))
        time.sleep(KIOSK_HOLD_S)
        reader.remove()
        self.out.print(f"  the card lay on the kiosk's reader for {KIOSK_HOLD_S:g} s (see the kiosk)")

    def do_scan(self, arg: str) -> None:
        """scan DOOR TEXT        show a QR code's text to the door's scanner"""
        door, text = self._args(arg, 2, "scan DOOR TEXT", rest=True)
        self.sim.scan(self._door(door), text)

    def do_qr(self, arg: str) -> None:
        """qr DOOR PERSON        a demo phone gets a token from central and shows it"""
        door, who = self._args(arg, 2, "qr DOOR PERSON")
        ref = self.phones.get(who.lower())
        if ref is None:
            raise CommandError(f"{who!r} has no demo phone; phones: {', '.join(self.phones)}")
        token = self.play_.issue_token(ref, self._door(door), self.sim.clock.now())
        self.out.print(
            f"central issued {who}'s phone a token for {door}, valid for an hour; shown to the scanner"
        )
        self.sim.scan(door, token)

    def do_push(self, arg: str) -> None:
        """push DOOR             push the door (it opens while the lock is released)"""
        (door,) = self._args(arg, 1, "push DOOR")
        opened = self.sim.push(self._door(door))
        self.out.print(
            f"{door}: " + ("the door swings open" if opened else "[yellow]locked, it does not open[/]")
        )

    def do_force(self, arg: str) -> None:
        """force DOOR            force the door open whatever the lock says"""
        (door,) = self._args(arg, 1, "force DOOR")
        self.sim.force(self._door(door))

    def do_hold(self, arg: str) -> None:
        """hold DOOR             keep the open door from closing (until `letgo`)"""
        (door,) = self._args(arg, 1, "hold DOOR")
        self.sim.hold_open(self._door(door))

    def do_letgo(self, arg: str) -> None:
        """letgo DOOR            let go of a held door: its closer shuts it"""
        (door,) = self._args(arg, 1, "letgo DOOR")
        self.sim.let_go(self._door(door))

    def do_exit(self, arg: str) -> None:
        """exit DOOR             press the request-to-exit button inside the door"""
        (door,) = self._args(arg, 1, "exit DOOR")
        self.sim.press_exit(self._door(door))

    def do_beam(self, arg: str) -> None:
        """beam DOOR             one person walks through the entrance's counting beam"""
        (door,) = self._args(arg, 1, "beam DOOR")
        self.sim.beam(self._door(door))

    def do_fire(self, arg: str) -> None:
        """fire on|off           the fire panel raises or clears its alarm"""
        (state,) = self._args(arg, 1, "fire on|off")
        self.sim.fire(_on_off(state, "fire on|off"))

    def do_network(self, arg: str) -> None:
        """network up|down       the site's internet connection"""
        (state,) = self._args(arg, 1, "network up|down")
        up = {"up": True, "down": False}.get(state.lower())
        if up is None:
            raise CommandError("usage: network up|down")
        self.sim.network(up)
        if up:
            self.out.print("network up: the agent reconnects and sends central what it has not acknowledged")
        else:
            self.out.print("network down: the agent decides alone and keeps its events for central")

    def do_wait(self, arg: str) -> None:
        """wait SECONDS          let time pass (doors close, locks relock)"""
        (seconds,) = self._args(arg, 1, "wait SECONDS")
        self.sim.advance(float(seconds))

    def do_status(self, arg: str) -> None:
        """status                doors, relays, the site and the latest events"""
        self.show_status()

    def do_people(self, arg: str) -> None:
        """people                the demo people and their cards"""
        self.show_people()

    def do_central(self, arg: str) -> None:
        """central               the latest events central stored (its REST API)"""
        zone = ZoneInfo(self.config.timezone)
        for item in self.play_.central_events(LAST_EVENTS):
            try:
                when = f"{datetime.fromisoformat(str(item.get('device_time'))).astimezone(zone):%H:%M:%S}"
            except ValueError:
                when = "?"
            parts = [item.get("kind"), item.get("door"), item.get("decision"), item.get("reason")]
            self.out.print(f"  {when}  " + "  ".join(str(p) for p in parts if p))

    def do_quit(self, arg: str) -> bool:
        """quit                  stop the simulated site"""
        return True

    def do_EOF(self, arg: str) -> bool:  # noqa: N802 (cmd's name for end of input)
        self.out.print()
        return True

    def do_help(self, arg: str) -> None:
        """help                  this list"""
        self.out.print("Commands (DOOR is a door's slug; see `status`):")
        for name in COMMANDS:
            doc = getattr(self, f"do_{name}").__doc__ or ""
            self.out.print(f"  {doc.strip()}", markup=False)

    # --- output --------------------------------------------------------------------------------------

    def welcome(self) -> None:
        from protocol.messages import DoorKind

        c = self.config
        now = self.sim.clock.now().astimezone(ZoneInfo(c.timezone))
        self.out.print(f"\n[bold]{c.name}[/] is running on simulated hardware (agent log: {self.log_file})")
        self.out.print(f"Simulated time: {now:%A %d %B %Y %H:%M} ({c.timezone}), {self._open_words()}")
        self.show_status(events=False)
        self.show_people()
        entrances = [d.slug for d in c.doors if d.kind is DoorKind.ENTRANCE]
        first = (entrances or [c.doors[0].slug])[0]
        self.out.print(
            f"\nTry: [bold]tap {first} kari[/], then [bold]pin {first} 1234[/], then [bold]push {first}[/]."
            "  [bold]help[/] lists every command, [bold]quit[/] stops.\n"
        )

    def show_people(self) -> None:
        self.out.print("Demo people with a library card (every PIN is 1234):")
        for name, (full, uid, note) in self.people.items():
            self.out.print(f"  {name:<8} {full:<18} card {uid.hex().upper():<16} {note}")
        if self.phones:
            self.out.print(f"Demo people with a phone (qr DOOR NAME): {', '.join(self.phones)}")

    def show_status(self, *, events: bool = True) -> None:
        from rich.table import Table

        table = Table(title=None, show_edge=False, pad_edge=False)
        for column in ("door", "name", "kind", "state", "lock", "relay", "door leaf"):
            table.add_column(column)
        for door in self.config.doors:
            sim_door = self.sim.doors[door.slug]
            table.add_row(
                door.slug,
                door.name,
                door.kind.value,
                self.sim.door_state(door.slug).value,
                "unlocked" if sim_door.is_unlocked else "locked",
                "energised" if self.sim.relay_energised(door.slug) else "off",
                "open" if sim_door.is_open else "closed",
            )
        self.out.print(table)
        agent = self.sim.agent
        lights = ", ".join(
            f"{z.slug} {'on' if self.sim.lights(z.slug) else 'off'}" for z in self.config.zones
        )
        self.out.print(
            f"site {self._open_words()}; lights: {lights or 'none'}; intruder alarm "
            f"{'armed' if self.sim.intruder_armed() else 'off'}; central link "
            f"{'up' if self.sim.running.link.connected else 'DOWN'}; {agent.replica.count()} credentials; "
            f"events not yet acknowledged by central: {agent.journal.pending_count()}"
        )
        if events:
            for event in self.sim.events()[-LAST_EVENTS:]:
                self.out.print("  " + describe_event(event, self.config.timezone))

    def report(self) -> None:
        """What happened since the last command: the agent's new events, what its readers showed and the doors
        that changed."""
        from controller.inputs import Feedback

        for event in self.sim.events()[self._reported :]:
            self._reported += 1
            self.out.print("  " + describe_event(event, self.config.timezone))
        for slug in self.sim.doors:
            shown = self.sim.feedback(slug)
            for feedback in shown[self._shown[slug] :]:
                hint = f" (type it: pin {slug} 1234)" if feedback is Feedback.PIN_NEEDED else ""
                self.out.print(f"  {slug} reader shows: {feedback.value.replace('_', ' ')}{hint}")
            self._shown[slug] = len(shown)
        states = self._door_states()
        for slug, state in states.items():
            if state != self._states.get(slug):
                self.out.print(f"  {slug}: {self._states.get(slug, '?')} -> {state}")
        self._states = states

    def _door_states(self) -> dict[str, str]:
        states = {}
        for slug in self.sim.doors:
            relay = "relay energised" if self.sim.relay_energised(slug) else "relay off"
            states[slug] = f"{self.sim.door_state(slug).value} ({relay})"
        return states

    def _open_words(self) -> str:
        view = self.sim.agent.view
        if view is None:
            return "hours unknown"
        return "open" if view.calendar.is_open(self.sim.clock.now()) else "closed"

    # --- parsing -------------------------------------------------------------------------------------

    def _args(self, arg: str, count: int, usage: str, *, rest: bool = False) -> list[str]:
        if rest:
            parts = arg.split(maxsplit=count - 1)
        else:
            try:
                parts = shlex.split(arg)
            except ValueError as exc:
                raise CommandError(f"{exc}; usage: {usage}") from None
        if len(parts) != count:
            raise CommandError(f"usage: {usage}")
        return parts

    def _door(self, door: str) -> str:
        if door not in self.sim.doors:
            raise CommandError(f"no door {door!r} here; doors: {', '.join(self.sim.doors)}")
        return door

    def _uid(self, who: str) -> bytes:
        person = self.people.get(who.lower())
        if person is not None:
            return person[1]
        try:
            uid = bytes.fromhex(who)
        except ValueError:
            uid = b""
        if 4 <= len(uid) <= 10:
            return uid
        raise CommandError(
            f"{who!r} is neither a demo person ({', '.join(self.people)}) nor a card UID in hex"
        )


COMMANDS = (
    "tap", "pin", "keys", "book", "kiosk", "scan", "qr", "push", "force", "hold", "letgo", "exit", "beam",
    "fire", "network", "wait", "status", "people", "central", "help", "quit",
)  # fmt: skip


def demo_cards() -> dict[str, tuple[str, bytes, str]]:
    """The seeded demo people with a card (central/seed.py): first name -> (name, card UID, note)."""
    from central.seed import PEOPLE

    cards: dict[str, tuple[str, bytes, str]] = {}
    for person in PEOPLE:
        if person.card_uid is None:
            continue
        notes = [person.kind.value.replace("_", " ")]
        if person.blocked:
            notes.append("blocked")
        if person.birth_year is not None:
            notes.append(f"born {person.birth_year}")
        cards[person.ref.split("-")[0]] = (person.name, bytes.fromhex(person.card_uid), ", ".join(notes))
    return cards


def demo_refs() -> dict[str, str]:
    """Every seeded demo person: first name -> their reference in central/seed.py."""
    from central.seed import PEOPLE

    return {person.ref.split("-")[0]: person.ref for person in PEOPLE}


def demo_phones() -> dict[str, str]:
    """The seeded demo people with a phone credential: first name -> their reference in central/seed.py."""
    from central.seed import PEOPLE

    return {person.ref.split("-")[0]: person.ref for person in PEOPLE if person.phone_credential}


def describe_event(event: m.JournaledEvent, timezone: str) -> str:
    """One line a person reads: when, what, where, why."""
    from protocol import messages as m

    when = f"{event.device_time.astimezone(ZoneInfo(timezone)):%H:%M:%S}"
    if isinstance(event, m.AccessEvent):
        mark = "[green]GRANTED[/]" if event.decision is m.Decision.GRANT else "[red]DENIED[/]"
        who = f" {event.person_ref}" if event.person_ref else ""
        return f"{when} {mark} at {event.door}{who} ({event.method.value}, {event.reason.value})"
    if isinstance(event, m.AlarmEvent):
        where = f" at {event.door}" if event.door else ""
        state = "[bold red]ALARM[/]" if event.raised else "[yellow]alarm cleared[/]"
        return f"{when} {state} {event.kind.value}{where}" + (f": {event.detail}" if event.detail else "")
    if isinstance(event, m.CardEnrolment):
        return f"{when} card tapped for registration at {event.door} (sent to central)"
    if isinstance(event, m.BookingCheckIn):
        return f"{when} booking {event.booking} checked in at the kiosk ({event.method.value})"
    if isinstance(event, m.BookingChange):
        done = "extended" if event.change is m.BookingChangeKind.EXTEND else "ended"
        return f"{when} booking {event.booking} {done} at the kiosk, now ends {event.ends_at:%H:%M} UTC"
    where = f" at {event.door}" if event.door else ""
    return f"{when} {event.kind}{where}" + (f": {event.detail}" if event.detail else "")


def _on_off(value: str, usage: str) -> bool:
    state = {"on": True, "off": False}.get(value.lower())
    if state is None:
        raise CommandError(f"usage: {usage}")
    return state


# --- scenarios (hw_sim.scenario, hw_sim.runner) ----------------------------------------------------------


@app.command("run")
def run(
    file: Annotated[
        list[Path] | None, typer.Argument(help="Scenario files (YAML); see scenarios/README.md.")
    ] = None,
    all_scenarios: Annotated[
        bool, typer.Option("--all", help="Run every scenario of the library (scenarios/*.yaml).")
    ] = False,
    log: Annotated[
        Path | None, typer.Option("--log", help="Write the stack's logs to this file (default: errors only).")
    ] = None,
) -> None:
    """Play scenarios on a private stack (mosquitto, central, pcscd, the agent on virtual hardware) and
    report every expectation as met or not; exit 1 if any is not met, 2 if a file is not a scenario."""
    from rich.console import Console

    from hw_sim.runner import library, run_command

    paths = list(file or []) + (library() if all_scenarios else [])
    raise typer.Exit(run_command(paths, console=Console(highlight=False), log_file=log))


# --- a fleet of simulated sites (hw_sim.fleet) -------------------------------------------------------------


@app.command("fleet")
def fleet_command(
    sites: Annotated[int, typer.Option("--sites", help="How many simulated sites (fleet-0001, ...).")],
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Central's database URL (default: MERAAPENT_DB_URL or SQLite in the data dir)."
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Central's data directory: the card UID hash key is read from it."),
    ] = None,
    mqtt_host: Annotated[
        str | None,
        typer.Option("--mqtt-host", help="Broker host (default: MERAAPENT_MQTT_HOST or 127.0.0.1)."),
    ] = None,
    mqtt_port: Annotated[
        int | None, typer.Option("--mqtt-port", help="Broker port (default: MERAAPENT_MQTT_PORT or 1883).")
    ] = None,
    taps_per_second: Annotated[
        float, typer.Option("--taps-per-second", help="Card taps a second across the whole fleet.")
    ] = 20.0,
    duration: Annotated[
        float, typer.Option("--duration", help="Seconds of taps once every agent is synced.")
    ] = 30.0,
    residents: Annotated[int, typer.Option("--residents", help="Residents with a card per new site.")] = 5,
    processes: Annotated[
        int | None, typer.Option("--processes", help="Worker processes (default: one per 500 sites).")
    ] = None,
    change_every: Annotated[
        float,
        typer.Option("--change-every", help="Seconds between blocking and unblocking a caretaker's card."),
    ] = 5.0,
    gateway: Annotated[
        bool, typer.Option("--gateway/--no-gateway", help="Run central's MQTT gateway in this process too.")
    ] = False,
) -> None:
    """Run N lightweight simulated agents against central and the broker: create the sites, sync, tap cards
    and change a caretaker's card meanwhile; print what was measured as one JSON line (progress on stderr)."""
    import structlog
    from sqlalchemy.exc import SQLAlchemyError

    from central.config import ConfigError
    from central.db import DatabaseUrlError, SchemaOutOfDateError
    from hw_sim.fleet import FleetError, RunOptions
    from hw_sim.fleet import run as run_fleet

    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(30),
    )
    options = RunOptions(
        sites=sites,
        db_url=db,
        data_dir=data_dir,
        mqtt_host=mqtt_host,
        mqtt_port=mqtt_port,
        taps_per_second=taps_per_second,
        duration=duration,
        residents=residents,
        processes=processes,
        change_every=change_every,
        gateway=gateway,
    )
    try:
        result = run_fleet(options, say=lambda text: typer.echo(text, err=True))
    except (FleetError, ValueError, ConfigError, DatabaseUrlError, SchemaOutOfDateError, OSError) as exc:
        _fail(str(exc))
    except SQLAlchemyError as exc:
        _fail(f"database error: {str(getattr(exc, 'orig', None) or exc).strip().splitlines()[0]}")
    typer.echo(json.dumps(result))
