"""The fault matrix: each fault on a fresh rig (hw_sim.faults.rig), each checked for the same properties
(hw_sim.faults.row). `FAULTS` names them for `python -m hw_sim.faults --only` and the tests.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from hw_sim.broker import MosquittoBroker
from hw_sim.faults.clock_faults import clock_jumps
from hw_sim.faults.disk import SmallDisk
from hw_sim.faults.rig import SITE, Golden, Rig
from hw_sim.faults.row import KARI, RESIDENTS, Plan, Row, timed
from hw_sim.faults.row import agent_now as _agent_now
from hw_sim.faults.rpc import ChildError
from protocol import messages as m

# --- the faults ---------------------------------------------------------------------------------------------


@timed
def broker_restart(base: Golden, plan: Plan, rnd: random.Random) -> Row:
    """The broker dies (-9, or stops cleanly every other time) in the middle of traffic; central goes down
    too, so the site is on its own; then both come back."""
    row = Row("broker restart (kill -9 / stop) + central down", plan.broker_restarts)
    with Rig(base, "broker") as rig:
        broker = rig.central_broker
        assert isinstance(broker, MosquittoBroker)
        rig.revoke_before_fault("ola")
        row.resident(rig, "kari")
        for i in range(plan.broker_restarts):
            rig.agent.send("storm", count=plan.storm, uid=KARI)
            time.sleep(rnd.uniform(0.1, 0.5))
            if i % 2 == 0:
                broker.kill()
            else:
                broker.stop()
            rig.agent.result("storm")
            rig.kill_central()
            row.outage(rig, RESIDENTS[: plan.outage_residents])
            broker.start()
            rig.start_central()
        row.finish(rig)
    return row


@timed
def central_kill(base: Golden, plan: Plan, rnd: random.Random) -> Row:
    """Central's process is killed (-9) while events pour in, and started again."""
    row = Row("central killed (-9) and restarted", plan.central_kills)
    with Rig(base, "central") as rig:
        rig.revoke_before_fault("ola")
        for _ in range(plan.central_kills):
            rig.agent.send("storm", count=plan.storm, uid=KARI)
            time.sleep(rnd.uniform(0.2, 0.8))
            rig.kill_central()
            rig.agent.result("storm")
            row.outage(rig, RESIDENTS[: plan.outage_residents])
            rig.start_central()
        row.finish(rig)
    return row


@timed
def wan_day(base: Golden, plan: Plan, rnd: random.Random) -> Row:
    """The WAN between the site and central is cut for a day: an evening of residents, the night, the next
    evening; then it comes back. The site has its own broker, bridged to central's."""
    return _wan_cut(Row("WAN cut for a simulated day (site broker bridged)", 1), base, plan, rnd, "bridged")


@timed
def wan_day_direct(base: Golden, plan: Plan, rnd: random.Random) -> Row:
    """The same day without a site broker: the agent's own connection to central's broker dies silently,
    its watchdog must notice and it must reconnect by itself once the line is back."""
    return _wan_cut(
        Row("WAN cut for a simulated day (agent direct to central)", 1), base, plan, rnd, "direct"
    )


def _wan_cut(row: Row, base: Golden, plan: Plan, rnd: random.Random, wan: str) -> Row:
    with Rig(base, f"wan-{wan}", wan=wan) as rig:
        assert rig.wan is not None
        row.notes.append(f"WAN cut by {rig.wan.mechanism}")
        rig.revoke_before_fault("ola")
        row.resident(rig, "kari")
        if not rig.drained(60):
            row.problems.append("before the cut, events did not reach central")
        cut_at, in_central = _agent_now(rig), rig.delivery().in_central
        rig.wan.cut()
        _day_alone(row, rig, plan, rnd, cut_at)
        _during_cut(row, rig, cut_at, rig.delivery().in_central - in_central)
        row.secure(rig)
        rig.wan.restore()
        row.finish(rig, drain_s=180.0)
        ingest = rig.central.call("status")["ingest"]
        row.notes.append(
            f"central stored {ingest['events_inserted']} events and dropped {ingest['events_duplicate']} "
            "resent copies (the agent resends what is unacknowledged every 30 s of its clock)"
        )
    return row


def _day_alone(row: Row, rig: Rig, plan: Plan, rnd: random.Random, cut_at: datetime) -> None:
    """An evening of residents, a fire drill, the night in 10-minute steps, the next evening's residents."""
    _evening(row, rig, plan.evening_visits, rnd)
    row.outage(rig, ())
    night = cut_at + timedelta(hours=24) - _agent_now(rig) - timedelta(minutes=10)
    rig.agent.call("advance", seconds=night.total_seconds(), step=600)
    for person in RESIDENTS[: plan.outage_residents]:  # the next evening: the schedule decides
        row.resident(rig, person, expect_in=rig.open_at(_agent_now(rig)))
    rig.agent.call("advance", seconds=600, step=60)


def _during_cut(row: Row, rig: Rig, cut_at: datetime, through: int) -> None:
    """What the cut looked like from both ends; an event through a cut WAN means the cut is not real."""
    hours = (_agent_now(rig) - cut_at).total_seconds() / 3600
    link = "up (to the site broker)" if rig.status()["connected"] else "seen down by the agent"
    presence = "offline (the agent's Last Will)" if rig.agent_online() is False else "still online"
    row.notes.append(
        f"the agent's clock ran {hours:.1f} h with the WAN cut; {through} events got through; its MQTT link "
        f"at the end of the cut: {link}; central's view of the agent: {presence}"
    )
    if through:
        row.problems.append(f"{through} events reached central while the WAN was cut: the cut is not real")


def _evening(row: Row, rig: Rig, visits: int, rnd: random.Random) -> None:
    """Residents come every two minutes (the schedule decides), now and then the revoked card and a card
    nobody knows."""
    for n in range(visits):
        row.resident(rig, RESIDENTS[n % len(RESIDENTS)], expect_in=rig.open_at(_agent_now(rig)))
        if n % 4 == 3:
            row.revoked(rig)
        rig.agent.call("tap", uid="04" + rnd.randbytes(6).hex())
        rig.agent.call("advance", seconds=120, step=30)


@timed
def agent_kill(base: Golden, plan: Plan, rnd: random.Random) -> Row:
    """The agent is killed (-9) in the middle of writing events (or while a door is unlocked for a grant)
    and started again, over and over, with central and the broker up."""
    row = Row("agent killed (-9) during writes", plan.agent_kills)
    energised_at_kill = 0
    with Rig(base, "agent") as rig:
        rig.revoke_before_fault("ola")
        for i in range(plan.agent_kills):
            if i % 2:
                rig.agent.call("hold_grant", uid=KARI)
                time.sleep(rnd.uniform(0.0, 0.3))
            else:
                rig.agent.send("storm", count=0, uid=KARI)
                time.sleep(rnd.uniform(0.05, 1.0))
            energised_at_kill += bool(rig.kill_agent())
            still = rig.restart_agent_after_kill()
            if still:
                row.left_unlocked += len(still)
                row.problems.append(f"after restart {i + 1} doors {still} were still unlocked")
            if (i + 1) % plan.resident_every == 0 or i == plan.agent_kills - 1:
                row.resident(rig, "kari")
        _kill_during_fire(row, rig)
        row.revoked(rig)
        row.fire(rig)
        row.secure(rig)
        row.finish(rig)
        windows = rig.unlocked_after_kill_s
        row.notes.append(
            f"{energised_at_kill} kills left a relay at its unlocked level; the restarted agent locked it "
            f"{_span(windows)} after the kill (process start, no systemd delay)"
        )
    return row


def _kill_during_fire(row: Row, rig: Rig) -> None:
    """The agent dies while the fire panel holds its alarm: the doors it released must stay released once
    it is back (the panel still says fire), and lock when the alarm clears."""
    row.fire_drills += 1
    released = rig.agent.call("fire", on=True)
    rig.kill_agent()
    rig.restart_agent_after_kill(measure=False)
    back = sorted(rig.unlocked_by_wire()) == sorted(rig.doors())
    relocked = not rig.agent.call("fire", on=False) and not rig.doors_unlocked()
    if released and back and relocked:
        row.fire_ok += 1
        row.notes.append("killed during a fire alarm: the restarted agent kept every door released")
    else:
        row.problems.append(
            f"kill during fire: released {released}, after restart {back}, relocked {relocked}"
        )


@timed
def disk_full(base: Golden, plan: Plan, rnd: random.Random) -> Row:
    """The agent's disk fills up while central is unreachable and the power goes: the agent comes back,
    decisions go on, what cannot be journaled is counted, the disk-low alarm reaches central, and once there
    is room again nothing else is lost."""
    row = Row("agent's disk full (and a restart on it)", 1)
    with Rig(base, "disk", disk_mib=8) as rig:
        assert rig.disk is not None
        row.notes.append(f"disk: {rig.disk.mechanism}")
        rig.revoke_before_fault("ola")
        rig.kill_central()
        if not _fill_and_restart(row, rig, rig.disk):
            return row
        _on_full_disk(row, rig, plan)
        rig.disk.free()
        rig.start_central()
        if row.resident(rig, "kari").get("decision") is None:
            row.problems.append("with room on the disk again, Kari's entry was not journaled")
        row.finish(rig)
        alarms = rig.alarms(m.AlarmKind.DISK_LOW)
        row.notes.append(f"disk-low alarms in central: {alarms}")
        if not alarms:
            row.problems.append("central never heard of the full disk (no disk_low alarm)")
    return row


def _fill_and_restart(row: Row, rig: Rig, disk: SmallDisk) -> bool:
    """Fill the disk (or the journal), then start the agent on it as after a power cut; False if it
    cannot start (a problem: the doors and the fire release would be without their agent)."""
    if disk.mounted:
        disk.fill()
        rig.kill_agent()
    else:
        rig.agent.stop()
        made = disk.fill_journal(SITE, rig.agent_config.agent.name, rig.journal_max_mb)
        row.notes.append(f"{made} events stuffed into the journal up to its bound")
    try:
        rig.restart_agent_after_kill()
    except ChildError as exc:
        row.residents_tried += 1
        row.problems.append(f"the agent does not start with its disk full: {str(exc).splitlines()[-1]}")
        return False
    return True


def _on_full_disk(row: Row, rig: Rig, plan: Plan) -> None:
    """The outage checks on the full disk; every decision must be journaled or counted as refused."""
    access_before = rig.ledger.count("AccessEvent")
    decisions = plan.outage_residents + 1  # the residents and the revoked card
    row.outage(rig, RESIDENTS[: plan.outage_residents])
    journaled = rig.ledger.count("AccessEvent") - access_before
    lost = int(rig.status()["logged"].get("agent.journal_full", 0))
    uncounted = max(0, decisions - journaled - lost)
    row.notes.append(
        f"{decisions} decisions on a full disk: {journaled} journaled, {lost} events refused by the "
        f"journal and counted in the agent's log (agent.journal_full), {uncounted} uncounted"
    )
    if uncounted:
        row.problems.append(f"{uncounted} decisions were neither journaled nor counted as lost")
    if lost:
        row.notes.append(
            "FINDING: how many events the journal refused is counted only in the agent's log; central "
            "gets the disk-low alarm, not the count"
        )


def _span(values: list[float]) -> str:
    if not values:
        return "(never needed)"
    return f"within {min(values):.2f}-{max(values):.2f} s"


FAULTS: dict[str, Callable[[Golden, Plan], Row]] = {
    "broker": broker_restart,
    "central": central_kill,
    "wan": wan_day,
    "wan-direct": wan_day_direct,
    "agent": agent_kill,
    "disk": disk_full,
    "clock": clock_jumps,
}
