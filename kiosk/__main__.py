"""`python -m kiosk`: the kiosk without the rest of the `meraapent` command (textual-serve starts this)."""

from kiosk.cli import main

main()
