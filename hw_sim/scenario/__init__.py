"""Scenarios: a readable YAML timeline of what people and hardware do at a site, and what must be observed.

Parsing and validation only (pure: no clock, no network); hw_sim.runner plays a scenario on the full stack.
Every problem is refused as ONE line naming the file, the place (``step 4 (tap)``, ``people.lise``) and what
is wrong, never a traceback. scenarios/README.md is the guide with examples; in short::

    name: A normal meråpent evening
    description: Kari comes in with her card and PIN, ...
    site: heggedal                  # default heggedal
    door: hovedinngang              # the door steps mean when they name none (default hovedinngang)
    start: next open evening        # or "next open evening 20:40", "monday 19:30", "tomorrow 21:10"
    people:
      kari:                         # a seed person (central/seed.py): kari ola amina emil per vidar ...
      lise: {kind: association_member, groups: [], pin: "2468", phone: true}   # created for this scenario
    bookings:
      - {holder: lise, room: moterom-1, from: "19:30", until: "21:00", title: Styremøte}
    timeline:
      - at: "+0:01"                 # offset from the start (+H:MM, +H:MM:SS, +5m, +40s) or local "19:45"
        tap: kari                   # whose card (or "unknown")
      - pin: "1234"                 # no `at`: the same moment as the step before
        expect:
          - access: grant
            reason: schedule
          - relay: energised

Start: the next such moment (Europe/Oslo wall clock) after real now, because cards are valid from their
creation and central runs on real time; "open evening" is the next day the site is open at that time
(19:00 if no time is given).

Actions (one per step): tap PERSON|unknown, pin "DIGITS", scan PERSON|{person, site, doors, zones,
valid_from, valid_for}|{text}, push, force, hold_open, let_go, exit, beam (each takes a door, or nothing for
the default door), fire on|off, wan down|up, central down|up, revoke PERSON (their cards, for good),
block PERSON (their cards), wait DURATION (40s, 5m, 1h30m). tap, pin and scan take `door:`.

Expectations (a list under `expect:`, checked after the step's action):
relay energised|de-energised, lock locked|unlocked, door_state STATE (each with `door:`, "all" for
every door), awaiting_pin true|false, access grant|deny|none (door, person, reason, count), alarm KIND (door,
state raised|cleared|none), lights on|off (zone), intruder_alarm armed|disarmed, site_event KIND (detail),
occupancy N, central_events N (person, kind, decision, reason, door), central_alarm KIND (door, state),
journal empty|N, replica current. `access` and `site_event` look at what happened since the previous step
with an `expect:`; alarms are their latest state since the start.

Doors, rooms and zones are site data: `check_site` checks them against central's configuration of the
site (the runner does so before playing anything). YAML is read the YAML 1.2 way for what people write
here: ``on``/``off``/``yes``/``no`` stay words, ``19:45`` stays a time, ``0123`` stays a PIN. A key given
twice is refused.

Layout: vocabulary (defaults and accepted words), model, actions and expectations (the frozen dataclasses),
seed_people, times (clock times and durations), parser (load, parse; with fields, strict_yaml and wording
for reading keys, YAML and one-line errors) and site_check (check_site). This package re-exports the names
the runner, the CLI and the tests use.
"""

from __future__ import annotations

from hw_sim.scenario.actions import Action, CentralChange, DoorAction, Pin, Scan, Switch, Tap, TokenSpec, Wait
from hw_sim.scenario.expectations import (
    AccessExpectation,
    AlarmExpectation,
    CentralEventsExpectation,
    DoorExpectation,
    Expectation,
    IntruderExpectation,
    JournalExpectation,
    LightsExpectation,
    OccupancyExpectation,
    SiteEventExpectation,
)
from hw_sim.scenario.model import Moment, PersonSpec, Scenario, ScenarioError, Start
from hw_sim.scenario.parser import load, parse
from hw_sim.scenario.seed_people import seed_external_ref
from hw_sim.scenario.site_check import check_site
from hw_sim.scenario.vocabulary import ALL_DOORS, WEEKDAYS

__all__ = [
    "ALL_DOORS",
    "WEEKDAYS",
    "AccessExpectation",
    "Action",
    "AlarmExpectation",
    "CentralChange",
    "CentralEventsExpectation",
    "DoorAction",
    "DoorExpectation",
    "Expectation",
    "IntruderExpectation",
    "JournalExpectation",
    "LightsExpectation",
    "Moment",
    "OccupancyExpectation",
    "PersonSpec",
    "Pin",
    "Scan",
    "Scenario",
    "ScenarioError",
    "SiteEventExpectation",
    "Start",
    "Switch",
    "Tap",
    "TokenSpec",
    "Wait",
    "check_site",
    "load",
    "parse",
    "seed_external_ref",
]
