"""The kiosk in a web browser: textual-serve runs one kiosk process per browser tab and relays its screen.

textual-serve's own page fetches its font from Google Fonts; ours (kiosk/web/templates/app_index.html)
takes the same font files from textual-serve's static folder, so a kiosk browser needs no internet.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import textual_serve
from textual_serve.server import Server

from kiosk.cli import command_line

TEMPLATES = Path(str(resources.files("kiosk").joinpath("web", "templates")))
STATIC = Path(textual_serve.__file__).resolve().parent / "static"


def server(argv: list[str], *, host: str = "localhost", port: int = 8001) -> Server:
    """A server that starts `python -m kiosk <argv>` for each browser that connects."""
    return Server(
        command_line(argv),
        host=host,
        port=port,
        title="meråpent kiosk",
        templates_path=TEMPLATES,
        statics_path=STATIC,
    )
