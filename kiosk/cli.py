"""`meraapent kiosk ...`: the touchscreen kiosk in a terminal, or in a browser through textual-serve.

    meraapent kiosk --site heggedal --socket /run/meraapent/kiosk.sock [--reader NAME] [--lang nb]
                    [--idle-seconds 30] [--status-file PATH] [--log-file PATH]
    meraapent kiosk --demo
    meraapent kiosk serve --port 8001 [--host localhost] [the same options]

Bad options stop it before the screen opens, with one line on stderr and exit code 2. Logs (the card
reader's, for instance) go to --log-file or nowhere: the screen belongs to the people at the torg.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from protocol.i18n import LANGUAGES

DEFAULT_SOCKET = Path("/run/meraapent/kiosk.sock")
OPTIONS_EXIT_CODE = 2
MIN_IDLE_S, MAX_IDLE_S = 5.0, 3600.0

app = typer.Typer(
    help="The touchscreen kiosk at the torg: check in, today's bookings, help.", add_completion=False
)

Site = Annotated[str, typer.Option("--site", help="The site this kiosk stands at (its agent serves it).")]
Socket = Annotated[Path, typer.Option("--socket", help="The agent's kiosk socket.", show_default=True)]
Reader = Annotated[
    str,
    typer.Option(
        "--reader", help="Regular expression matching the kiosk's PC/SC reader name; none: no reader."
    ),
]
Lang = Annotated[str, typer.Option("--lang", help=f"Default language: {', '.join(LANGUAGES)}.")]
Idle = Annotated[
    str, typer.Option("--idle-seconds", help="Back to the home screen after this long untouched.")
]
Demo = Annotated[
    bool,
    typer.Option(
        "--demo",
        help="Play a made-up torg instead of talking to an agent; booking codes 123456 (checks in), 111111 "
        "(too early), 222222 (too late), 333333 (refused), 444444 (no booking).",
    ),
]
Status = Annotated[
    Path | None, typer.Option("--status-file", help="Keep one JSON line here naming the screen shown.")
]
LogFile = Annotated[Path | None, typer.Option("--log-file", help="Write the kiosk's logs here.")]


@dataclass(frozen=True)
class KioskOptions:
    site: str
    socket: Path
    reader: str
    lang: str
    idle_seconds: float
    demo: bool
    status_file: Path | None
    log_file: Path | None

    def argv(self) -> list[str]:
        """The same options as command-line arguments (for the per-browser processes of `serve`)."""
        args = ["--lang", self.lang, "--idle-seconds", f"{self.idle_seconds:g}"]
        if self.demo:
            args.append("--demo")
        else:
            args += ["--site", self.site, "--socket", str(self.socket)]
        if self.reader:
            args += ["--reader", self.reader]
        if self.log_file is not None:
            args += ["--log-file", str(self.log_file)]
        return args


def options(
    site: str, socket: Path, reader: str, lang: str, idle_seconds: str, demo: bool,
    status_file: Path | None, log_file: Path | None,
) -> KioskOptions:  # fmt: skip
    """Checked options, or a one-line error."""
    if not demo and not site:
        _fail("give --site (the site this kiosk stands at), or --demo to try the kiosk without an agent")
    if lang not in LANGUAGES:
        _fail(f"--lang {lang!r} is not one of {', '.join(LANGUAGES)}")
    try:
        idle = float(idle_seconds)
    except ValueError:
        _fail(f"--idle-seconds {idle_seconds!r} is not a number of seconds")
    if not MIN_IDLE_S <= idle <= MAX_IDLE_S:
        _fail(f"--idle-seconds must be between {MIN_IDLE_S:g} and {MAX_IDLE_S:g}, got {idle:g}")
    if reader:
        try:
            re.compile(reader)
        except re.error as exc:
            _fail(f"--reader {reader!r} is not a valid regular expression: {exc}")
    return KioskOptions(site, socket, reader, lang, idle, demo, status_file, log_file)


@app.callback(invoke_without_command=True)
def kiosk(
    ctx: typer.Context,
    site: Site = "",
    socket: Socket = DEFAULT_SOCKET,
    reader: Reader = "",
    lang: Lang = "nb",
    idle_seconds: Idle = "30",
    demo: Demo = False,
    status_file: Status = None,
    log_file: LogFile = None,
) -> None:
    """Run the kiosk in this terminal until stopped (Ctrl+Q, or SIGTERM)."""
    if ctx.invoked_subcommand is not None:
        sources = (ctx.get_parameter_source(name) for name in ctx.params)
        if any(source is not None and source.name != "DEFAULT" for source in sources):
            _fail(f"put the kiosk's options after {ctx.invoked_subcommand!r}")
        return
    run(options(site, socket, reader, lang, idle_seconds, demo, status_file, log_file))


@app.command("serve")
def serve(
    port: Annotated[int, typer.Option("--port", help="The port to serve the kiosk on.")] = 8001,
    host: Annotated[str, typer.Option("--host", help="The address to listen on.")] = "localhost",
    site: Site = "",
    socket: Socket = DEFAULT_SOCKET,
    reader: Reader = "",
    lang: Lang = "nb",
    idle_seconds: Idle = "30",
    demo: Demo = False,
    log_file: LogFile = None,
) -> None:
    """Serve the kiosk to web browsers (textual-serve); every browser tab runs its own kiosk."""
    checked = options(site, socket, reader, lang, idle_seconds, demo, None, log_file)
    if not 1 <= port <= 65535:
        _fail(f"--port must be between 1 and 65535, got {port}")
    from kiosk.serve import server

    server(checked.argv(), host=host, port=port).serve()


def run(checked: KioskOptions) -> None:
    """Build the link, the reader and the app from checked options, and run it in this terminal."""
    from kiosk.app import KioskApp, utc_now
    from kiosk.link import KioskLink, SocketLink

    _quiet_logs(checked.log_file)
    link: KioskLink
    if checked.demo:
        from kiosk.demo import SITE, demo_link

        link, site = demo_link(utc_now), SITE
    else:
        link, site = SocketLink(checked.socket), checked.site
    cards = None
    if checked.reader:
        from kiosk.reader import KioskReader

        cards = KioskReader(checked.reader)
    KioskApp(
        link, site=site, lang=checked.lang, idle_seconds=checked.idle_seconds, cards=cards,
        status_file=checked.status_file,
    ).run()  # fmt: skip


def _quiet_logs(path: Path | None) -> None:
    """structlog into `path`, or nowhere: a log line on the terminal would tear the screen."""
    import logging

    import structlog

    if path is None:
        structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL),
            logger_factory=structlog.ReturnLoggerFactory(),  # writes nothing anywhere
        )
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sink = path.open("a", encoding="utf-8")
    except OSError as exc:
        _fail(f"--log-file {path}: {exc.strerror or exc}")
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.KeyValueRenderer(key_order=["timestamp", "level", "event"]),
        ],
        logger_factory=structlog.WriteLoggerFactory(file=sink),
        cache_logger_on_first_use=False,
    )


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(OPTIONS_EXIT_CODE)


def main() -> None:
    """`python -m kiosk`: the same as `meraapent kiosk` (what `serve` starts for each browser)."""
    try:
        app(prog_name="meraapent kiosk")
    except KeyboardInterrupt:
        sys.exit(130)


def command_line(argv: list[str]) -> str:
    """The shell command that runs the kiosk with `argv` in this Python."""
    return shlex.join([sys.executable, "-m", "kiosk", *argv])
