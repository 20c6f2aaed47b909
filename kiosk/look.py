"""How the kiosk looks: our own high-contrast theme and the shared styles (large targets, yellow focus).

White on black, yellow for whatever has focus and for warnings, so the screen reads in a bright torg and for
people with low vision; every button is at least three rows high, so a finger finds it. The styles live here
as Textual CSS in Python, so they travel with the package.
"""

from __future__ import annotations

from textual.theme import Theme

BLACK = "#000000"
WHITE = "#FFFFFF"
YELLOW = "#FFE000"
GREY = "#3A3A3A"

CONTRAST = Theme(
    name="meraapent-contrast",
    primary=YELLOW,
    secondary=WHITE,
    accent=YELLOW,
    foreground=WHITE,
    background=BLACK,
    surface=BLACK,
    panel=BLACK,
    boost=GREY,
    success="#5CFF8A",
    warning=YELLOW,
    error="#FF6B6B",
    dark=True,
    variables={
        "border": YELLOW,
        "border-blurred": WHITE,
        "button-focus-text-style": "bold",
        "footer-background": BLACK,
        "scrollbar": WHITE,
        "scrollbar-background": BLACK,
    },
)

CSS = f"""
Screen {{
    background: {BLACK};
    color: {WHITE};
    padding: 0 2;
}}
Label, Static {{
    width: 100%;
}}
.-rtl Label, .-rtl Static {{
    text-align: right;
}}
.heading {{
    text-style: bold;
    margin: 1 0 1 0;
}}
.next {{
    text-style: bold;
    color: {YELLOW};
    margin-top: 1;
}}
Button {{
    height: 3;
    min-width: 16;
    margin: 0 1 0 0;
    background: {BLACK};
    color: {WHITE};
    border: tall {WHITE};
    text-style: bold;
}}
Button:hover {{
    background: {GREY};
    border: tall {WHITE};
}}
Button:focus {{
    background: {YELLOW};
    color: {BLACK};
    border: tall {YELLOW};
    text-style: bold;
}}
Button.-active {{
    background: {WHITE};
    color: {BLACK};
    border: tall {WHITE};
}}
Button:disabled {{
    color: {GREY};
    border: tall {GREY};
}}
.actions {{
    height: auto;
    margin-top: 1;
}}
.-rtl .actions {{
    align-horizontal: right;
}}
.hidden {{
    display: none;
}}
"""
