"""A fleet of lightweight simulated site agents against one central and one broker, for load and latency.

No one can put a thousand Raspberry Pis on a desk, yet central must serve a country's worth of sites. Each
simulated agent here is a real MQTT 5 client (its own client id, a Last Will, its site's topics) holding its
own credential replica (controller.replica.Replica in memory: the snapshot and delta semantics of a Pi) and
deciding card taps with controller.decide.decide_card against its site config. Its decisions reach central
as access events that central acknowledges. What it leaves out is the hardware: no GPIO, no pcscd, and no
thread per agent.

The parts, top down (module in brackets):
- `run` (measure; what `meraapent sim fleet` does): create the sites, start the workers, wait until every
  agent is synced, drive taps and changes (a caretaker's card blocked and unblocked), and say what was
  measured; `FleetReport` and `latency_figures` (report) merge and sum up what the workers said;
- `Fleet` (coordinator): the coordinator. It starts `python -m hw_sim.fleet` worker processes (worker,
  __main__) and talks to them in JSON lines (commands on stdin; progress, transitions and a final report on
  stdout);
- `Worker` (loop): many agents in one process, all driven by one selector loop through paho's external-loop
  API (socket callbacks, loop_read / loop_write / loop_misc);
- `SimAgent` (agent): one agent;
- `FleetPlan` (plan) and `create_sites` (sites): the sites fleet-0001, fleet-0002 ... in central's database,
  each with two zones and doors, meråpent hours, a residents' group and residents with cards (PIN 1234), plus
  caretakers whose cards open every fleet site at any time. Their card UIDs follow from the plan
  (`card_uid`), so a worker knows which cards exist without asking central.

Every agent watches the caretakers' cards: after each change to its replica or config it decides them again
and notes the monotonic time whenever the verdict flips. CLOCK_MONOTONIC is system-wide on Linux, so a
coordinator that notes when it committed a revoke can tell how long the refusal took to reach each agent.

This package re-exports the names the CLI, the benches and the tests use.
"""

from __future__ import annotations

from hw_sim.fleet.coordinator import Fleet
from hw_sim.fleet.errors import FleetError
from hw_sim.fleet.measure import RunOptions, run
from hw_sim.fleet.plan import ENTRANCE, FleetPlan, card_uid, roaming_uid
from hw_sim.fleet.report import FleetReport, latency_figures
from hw_sim.fleet.sites import caretaker_credential, create_sites

__all__ = [
    "ENTRANCE",
    "Fleet",
    "FleetError",
    "FleetPlan",
    "FleetReport",
    "RunOptions",
    "card_uid",
    "caretaker_credential",
    "create_sites",
    "latency_figures",
    "roaming_uid",
    "run",
]
