"""The `meraapent` command: one entry point, one sub-command per part of the system."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Meråpent door access and kiosk controller.")


def main() -> None:
    app()
