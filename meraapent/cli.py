"""The `meraapent` command: one entry point, one sub-command per part of the system.

Errors reach the operator as one line on stderr and a non-zero exit code; a traceback is shown only when
MERAAPENT_DEBUG=1, because the people running this on a Pi at a library are not Python developers.
"""

from __future__ import annotations

import os
import sys

import typer

from central.cli import app as central_app
from kiosk.cli import app as kiosk_app
from meraapent.agent_cli import app as agent_app
from meraapent.keys_cli import app as keys_app
from meraapent.sim_cli import app as sim_app
from meraapent.token_cli import app as token_app

app = typer.Typer(
    no_args_is_help=True,
    help="Meråpent door access and kiosk controller.",
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(central_app, name="central", help="The central authorisation service.")
app.add_typer(agent_app, name="agent", help="The site agent on a Raspberry Pi.")
app.add_typer(keys_app, name="keys", help="Signing keys for phone tokens.")
app.add_typer(token_app, name="token", help="Issue and verify phone tokens.")
app.add_typer(sim_app, name="sim", help="Simulated sites on virtual hardware.")
app.add_typer(kiosk_app, name="kiosk", help="The touchscreen kiosk at the torg (check-in, help).")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # the last line of defence: one clear line instead of a traceback
        if os.environ.get("MERAAPENT_DEBUG") == "1":
            raise
        typer.echo(f"error: {exc or type(exc).__name__} (set MERAAPENT_DEBUG=1 for details)", err=True)
        sys.exit(1)
