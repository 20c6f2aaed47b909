"""`meraapent agent ...`: run the site agent on a Raspberry Pi, or check its configuration first.

A bad configuration stops the agent before it touches a pin: one line naming the file, the key and the
problem, exit code 2 (systemd shows it in `systemctl status`). Secrets are never printed, only the files
that hold them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer

from controller.config import AgentConfig, ConfigError, DoorHardware, load_config

DEFAULT_CONFIG = Path("/etc/meraapent/site.toml")
CONFIG_EXIT_CODE = 2

app = typer.Typer(help="The site agent: opens the right doors, offline too.")

ConfigOption = Annotated[
    Path,
    typer.Option(
        "--config",
        "-c",
        envvar="MERAAPENT_AGENT_CONFIG",
        help="The site's configuration file (TOML).",
        show_default=True,
    ),
]


@app.callback(invoke_without_command=True)
def agent(ctx: typer.Context, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Run the agent for the site in --config until stopped (SIGTERM or Ctrl-C)."""
    if ctx.invoked_subcommand is not None:
        return
    loaded = _load(config)
    from controller.runtime import run  # the device libraries load only when the agent really runs

    raise typer.Exit(run(loaded))


@app.command("check-config")
def check_config(
    config: ConfigOption = DEFAULT_CONFIG,
    skip_files: Annotated[
        bool,
        typer.Option(
            "--skip-files",
            help="Do not check the key, password and CA files (when checking away from the Pi).",
        ),
    ] = False,
) -> None:
    """Validate the configuration and show what the agent would drive."""
    loaded = _load(config, check_files=not skip_files)
    typer.echo(f"{config}: valid")
    for line in summary(loaded):
        typer.echo(line)


def summary(config: AgentConfig) -> list[str]:
    """What an installer checks against the wiring: site, broker, and each door's hardware."""
    a, q, s = config.agent, config.mqtt, config.site
    scheme = "mqtts" if q.tls is not None else "mqtt"
    login = f" as {q.username}" if q.username else " anonymously"
    if q.password_file is not None:
        login += f" (password in {q.password_file})"
    lines = [
        f"site {a.site}, agent {a.name}, data in {a.data_dir}",
        f"clock policy {a.clock_policy.value}, journal up to {a.journal_max_mb} MB",
        f"broker {scheme}://{q.host}:{q.port}{login}, keepalive {q.keepalive} s",
    ]
    lines += [_door_line(d) for d in config.doors]
    site_io = _pairs(("fire", s.fire), ("intruder alarm", s.intruder_arm), ("speaker", s.speaker))
    site_io += [f"light {zone} {pin}" for zone, pin in s.lights.items()]
    site_io += [f"beam {door} {pin}" for door, pin in s.beams.items()]
    lines.append("site: " + (", ".join(site_io) if site_io else "no site-wide inputs or outputs"))
    return lines


def _door_line(door: DoorHardware) -> str:
    polarity = "" if door.relay_active_high else ", active low"
    parts = [f"relay {door.relay} ({door.lock_type.value}{polarity})"]
    parts += _pairs(
        ("contact", door.contact),
        ("exit button", door.exit_button),
        ("lock monitor", door.lock_monitor),
        ("tamper", door.tamper),
        ("buzzer", door.buzzer),
        ("reader", door.reader),
        ("keypad", door.keypad),
        ("scanner", door.scanner),
    )
    return f"door {door.slug}: " + ", ".join(parts)


def _pairs(*items: tuple[str, object | None]) -> list[str]:
    return [f"{name} {value}" for name, value in items if value is not None]


def _load(path: Path, *, check_files: bool = True) -> AgentConfig:
    try:
        return load_config(path, check_files=check_files)
    except ConfigError as exc:
        _fail(str(exc), CONFIG_EXIT_CODE)


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
