"""The agent's Feedback as OSDP reader commands: what the person at the reader sees and hears.

- granted: green for 3 s and one short beep;
- denied: red for 3 s and three short beeps;
- PIN needed: amber while the PIN is expected (25.5 s at most: libosdp's Python binding carries the LED timer
  in one byte of 100 ms units; the agent's own PIN timeout decides, the amber only fades);
- alarm: red flashing (0.5 s on, 0.5 s off) until the door is back to idle;
- enrol ready: amber blinking while a card to register is expected (after the one-time code was typed);
- enrolled: green blinking for 3 s and two beeps (card taken for registration; the door does not open);
- idle: any temporary colour cancelled, the LED off.

Green, red and amber are "temporary" states (OSDP): the reader shows them for their time, then falls back
to its permanent state, which alarm and idle set. A grant during an alarm shows green, then flashing red.
"""

from __future__ import annotations

from typing import Any

from controller.inputs import Feedback

# osdp_sys command ids and LED colours (osdp.Command, osdp.CommandLEDColor)
COMMAND_LED = 2
COMMAND_BUZZER = 3
OFF, RED, GREEN, AMBER = 0, 1, 2, 3

SHOW_S = 3.0
PIN_SHOW_S = 25.5
FLASH_S = 0.5
BLINK_S = 0.2
BEEP_S = 0.1

OsdpCommand = dict[str, Any]


def _units(seconds: float) -> int:
    """OSDP times are in 100 ms units."""
    return max(0, min(255, round(seconds * 10)))


def led(
    color: int, *, seconds: float | None = None, flash_s: float = 0.0, cancel: bool = False
) -> OsdpCommand:
    """An LED command for reader 0, LED 0. `seconds` makes it temporary; `cancel` ends the temporary state."""
    on, off = (_units(flash_s), _units(flash_s)) if flash_s else (1, 0)  # off time 0 = steady
    command: OsdpCommand = {
        "command": COMMAND_LED,
        "reader": 0,
        "led_number": 0,
        "temporary": seconds is not None or cancel,
        "control_code": 1 if cancel or seconds is None else 2,
        "on_color": color,
        "off_color": OFF,
        "on_count": on,
        "off_count": off,
    }
    if command["temporary"]:
        command["timer_count"] = 0 if cancel else _units(seconds or 0.0)
    return command


def beep(times: int, seconds: float = BEEP_S) -> OsdpCommand:
    """`times` beeps of the reader's default tone, as long as the pauses between them."""
    return {
        "command": COMMAND_BUZZER,
        "reader": 0,
        "control_code": 2,  # default tone
        "on_count": _units(seconds),
        "off_count": _units(seconds),
        "rep_count": times,
    }


def feedback_commands(feedback: Feedback) -> list[OsdpCommand]:
    """The commands that show `feedback` on an OSDP reader, in the order to send them."""
    if feedback is Feedback.GRANTED:
        return [led(GREEN, seconds=SHOW_S), beep(1, 0.2)]
    if feedback is Feedback.DENIED:
        return [led(RED, seconds=SHOW_S), beep(3)]
    if feedback is Feedback.PIN_NEEDED:
        return [led(AMBER, seconds=PIN_SHOW_S)]
    if feedback is Feedback.ALARM:
        return [led(RED, flash_s=FLASH_S)]
    if feedback is Feedback.ENROL_READY:
        return [led(AMBER, seconds=PIN_SHOW_S, flash_s=BLINK_S)]
    if feedback is Feedback.ENROLLED:
        return [led(GREEN, seconds=SHOW_S, flash_s=BLINK_S), beep(2)]
    return [led(OFF, cancel=True), led(OFF)]
