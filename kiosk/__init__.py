"""The touchscreen kiosk at the torg (Textual): check in by card, phone QR code or booking code; today's
bookings, opening hours, help, in every language of the catalogue. It talks only to its site's agent over
the agent's Unix socket (kiosk.link, protocol.kiosk), so it works while central is unreachable.

app (KioskApp) · screens/ (home, keypad, check-in results, help, language) · link (SocketLink, FakeLink) ·
words (what it says) · wedge (QR scanner keys) · reader (PC/SC card reader) · look (theme, styles) ·
cli (`meraapent kiosk`) · serve (textual-serve) · demo (`--demo`).
"""
