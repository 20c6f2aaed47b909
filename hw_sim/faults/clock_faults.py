"""Clock jumps: the agent's wall clock jumps forwards and back and to 1970, while residents come and central
sends commands with its own time."""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta
from datetime import time as day_time
from typing import Any

from hw_sim.broker import MosquittoBroker
from hw_sim.faults import remote
from hw_sim.faults.rig import ENTRANCE, SITE, Golden, Rig
from hw_sim.faults.row import GRANT_WAIT_S, Plan, Row, timed
from hw_sim.faults.row import agent_now as _agent_now
from hw_sim.site import open_evening
from protocol import messages as m

UNSET_CLOCK = datetime.fromisoformat("1970-01-01T12:00:00+00:00")


@timed
def clock_jumps(base: Golden, plan: Plan, rnd: random.Random) -> Row:
    """The agent's wall clock jumps forwards 1 h and 1 day, back 1 h, and to 1970 (a Pi without its RTC)."""
    row = Row("clock jumps (+1 h, -1 h, +1 day, 1970 and back)", 4)
    start = open_evening(base.stack.site_config(SITE), datetime.now().astimezone(), at=day_time(20, 30))
    with Rig(base, "clock", start_at=start) as rig:
        rig.revoke_before_fault("ola")
        row.resident(rig, "kari")
        true_time = _agent_now(rig)
        _commands(row, rig, true_time, "in step")
        for label, jump in (("+1 h", timedelta(hours=1)), ("-1 h", timedelta(hours=-1)),
                            ("+1 day", timedelta(days=1))):  # fmt: skip
            at = _agent_now(rig) + jump
            rig.agent.call("set_wall", at=at.isoformat())
            row.resident(rig, "kari", expect_in=rig.open_at(_agent_now(rig)))
            row.notes.append(f"{label}: site {'open' if rig.open_at(at) else 'closed'} at the new time")
            if label == "+1 day":
                _commands(row, rig, _agent_now(rig) - timedelta(days=1), "agent a day ahead")
            if label == "-1 h":
                _commands(row, rig, _agent_now(rig) + timedelta(hours=1), "agent an hour behind")
        _replay_after_jumps(row, rig)
        _unset_clock(row, rig)
        row.revoked(rig)
        row.fire(rig)
        row.secure(rig)
        row.finish(rig)
    return row


def _unset_clock(row: Row, rig: Rig) -> None:
    """The wall clock reads 1970: residents wait for a trusted clock, the caretaker gets in on his zones, and
    the agent says so (clock_unset); when the clock is right again, so are the decisions."""
    back = _agent_now(rig)
    rig.agent.call("set_wall", at=UNSET_CLOCK.isoformat())
    if not rig.status()["clock_alarm"]:
        row.notes.append(
            "FINDING: the agent notices a clock at 1970 only at its next decision (no clock_unset alarm, "
            "status clock_ok, until someone taps)"
        )
    row.resident(rig, "kari", expect_in=False)
    row.resident(rig, "vidar")
    if not rig.status()["clock_alarm"]:
        row.problems.append("the clock read 1970 and the agent did not say so (clock_unset)")
    rig.agent.call("set_wall", at=(back + timedelta(minutes=5)).isoformat())
    row.resident(rig, "kari", expect_in=rig.open_at(_agent_now(rig)))
    if rig.status()["clock_alarm"]:
        row.problems.append("the clock is right again and the agent still says it is unset")


def _replay_after_jumps(row: Row, rig: Rig) -> None:
    """A command accepted, the clock a day ahead while another command comes, then right again: a replay
    of the first within its validity must still be refused."""
    issued = _agent_now(rig)
    first = remote.unlock(SITE, ENTRANCE, issued)
    _send_command(rig, first)
    rig.agent.call("set_wall", at=(issued + timedelta(days=1)).isoformat())
    _send_command(rig, remote.unlock(SITE, ENTRANCE, issued + timedelta(days=1)))
    rig.agent.call("advance", seconds=GRANT_WAIT_S)
    rig.agent.call("set_wall", at=(issued + timedelta(seconds=20)).isoformat())
    replay = _send_command(rig, first)
    if replay["kind"] == "command-refused":
        row.notes.append(
            f"replayed command after the clock jumped a day and back: refused ({replay['detail'][:40]})"
        )
    else:
        row.notes.append(
            "FINDING: a remote unlock replayed after the agent's clock jumped a day ahead (while another "
            "command came) and back was carried out again: the nonce was forgotten by the jumped clock"
        )
    rig.agent.call("advance", seconds=GRANT_WAIT_S)


def _commands(row: Row, rig: Rig, central_now: datetime, situation: str) -> None:
    """A remote unlock issued by central at `central_now`: done when the clocks agree, refused (never
    carried out) when the agent's clock is a day ahead or an hour behind."""
    command = remote.unlock(SITE, ENTRANCE, central_now)
    skew = _agent_now(rig) - central_now
    expect = "command-done" if abs(skew) < timedelta(minutes=1) else "command-refused"
    outcome = _send_command(rig, command)
    row.notes.append(f"remote unlock with {situation}: {outcome['kind']} ({outcome.get('detail', '')[:60]})")
    if outcome["kind"] != expect:
        row.problems.append(f"remote unlock with {situation}: {outcome}, expected {expect}")
    rig.agent.call("advance", seconds=GRANT_WAIT_S)


def _send_command(rig: Rig, command: m.Command) -> dict[str, Any]:
    broker = rig.central_broker
    assert isinstance(broker, MosquittoBroker)
    seen = {e["seq"] for e in rig.agent.call("recent", count=50)}
    remote.send(broker.host, broker.port, command)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for event in rig.agent.call("recent", count=50):
            if event["seq"] not in seen and str(event.get("kind", "")).startswith("command-"):
                result: dict[str, Any] = event
                return result
        time.sleep(0.1)
    return {"kind": "no answer"}
