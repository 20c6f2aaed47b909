"""Scenarios: the YAML format (hw_sim.scenario), the runner on the full stack (hw_sim.runner) and the library
of real evenings in scenarios/, each played as one test, as CI does.

The format tests need nothing running. The runner tests share one stack for the module (pcscd, central's
migrated and seeded golden database, its keys); each scenario gets a fresh broker, database copy, gateway
and agent from it, so one evening cannot leak into the next.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from controller.schedule import SiteCalendar
from hw_sim import scenario as sc
from hw_sim.pcscd import PcscDaemon
from hw_sim.runner import Report, library, resolve_start, run_scenario
from hw_sim.stack import Stack
from meraapent.cli import app
from protocol import messages as m
from tests.pcsc_fixtures import pcscd  # noqa: F401 (the session's pcscd fixture)

OSLO = ZoneInfo("Europe/Oslo")
REPO = Path(__file__).resolve().parent.parent

GOOD = """\
name: Test evening
description: Kari comes in.
start: next open evening
people:
  kari:
  lise: {kind: association_member, phone: true, pin: "2468"}
bookings:
  - {holder: lise, room: moterom-1, from: "19:30", until: "+2:00", title: Styremøte}
timeline:
  - at: "+0:01"
    tap: kari
  - pin: "1234"
    expect:
      - access: grant
        reason: schedule
      - relay: energised
  - wait: 5s
    expect:
      - door_state: locked
        door: all
  - at: "19:45"
    scan: {person: lise, valid_from: -2h, valid_for: 1h}
    door: moterom-1
  - at: "+2:00"
    expect:
      - central_events: 1
        person: kari
      - journal: empty
"""


def parse(text: str) -> sc.Scenario:
    return sc.parse(text, Path("s.yaml"))


# --- the format ---------------------------------------------------------------------------------------------


def test_a_readable_file_becomes_a_timeline_with_people_bookings_and_expectations() -> None:
    s = parse(GOOD)
    assert (s.name, s.site, s.door, str(s.start)) == (
        "Test evening",
        "heggedal",
        "hovedinngang",
        "next open evening 19:00",
    )
    kari, lise = s.people["kari"], s.people["lise"]
    assert (kari.seed_ref, kari.card_uid, kari.pin, kari.groups) == (
        "kari-nordmann", "04A1B2C3D4E5F6", "1234", ("innbyggere",),
    )  # fmt: skip
    assert (lise.seed_ref, lise.kind, lise.groups, lise.pin, lise.phone) == (
        None, m.PersonKind.ASSOCIATION_MEMBER, (), "2468", True,
    )  # fmt: skip
    [booking] = s.bookings
    assert (booking.holder, booking.room, str(booking.starts), str(booking.ends)) == (
        "lise", "moterom-1", "19:30:00", "+2:00",
    )  # fmt: skip
    tap, pin, wait, scan, check = s.steps
    assert tap.action == sc.Tap("hovedinngang", "kari")
    assert pin.action == sc.Pin("hovedinngang", "1234") and pin.at == tap.at  # no `at`: the same moment
    assert pin.expect == (
        sc.AccessExpectation("hovedinngang", "grant", reason=m.Reason.SCHEDULE),
        sc.DoorExpectation("relay", "hovedinngang", "energised"),
    )
    assert wait.action == sc.Wait(timedelta(seconds=5))
    assert wait.expect == (sc.DoorExpectation("door_state", sc.ALL_DOORS, "locked"),)
    assert scan.action == sc.Scan(
        "moterom-1", sc.TokenSpec("lise", valid_from=timedelta(hours=-2), valid_for=timedelta(hours=1))
    )
    assert check.expect == (sc.CentralEventsExpectation(1, person="kari"), sc.JournalExpectation(0))
    assert [str(e) for e in pin.expect] == [
        "grant (schedule) at hovedinngang",
        "relay at hovedinngang: energised",
    ]


def test_yaml_is_read_as_people_write_it_on_off_times_and_pins_stay_text() -> None:
    s = parse(
        GOOD.replace('pin: "1234"', "pin: 0123")
        .replace('at: "19:45"', "at: 19:45")
        .replace("  - wait: 5s\n", "  - fire: on\n  - wan: down\n  - wait: 5s\n")
    )
    assert s.steps[1].action == sc.Pin("hovedinngang", "0123")
    assert s.steps[2].action == sc.Switch("fire", True)
    assert s.steps[3].action == sc.Switch("wan", False)
    assert s.steps[5].at == sc.Moment(clock=time(19, 45))


def test_a_step_without_at_happens_right_after_the_wait_before_it() -> None:
    s = parse(GOOD)
    after_wait = parse(GOOD.replace('  - at: "19:45"\n', "  - note: right after the wait\n"))
    assert after_wait.steps[3].at == sc.Moment(offset=timedelta(minutes=1, seconds=5))
    assert s.steps[3].at == sc.Moment(clock=time(19, 45))


BAD = [
    (
        "unknown top-level key",
        GOOD.replace("timeline:", "timelin:"),
        "s.yaml: top level: unknown key 'timelin' (did you mean 'timeline'?) "
        "(allowed here: name, description, site, door, start, people, bookings, timeline)",
    ),
    ("missing name", GOOD.replace("name: Test evening\n", ""), "s.yaml: top level: name: is required"),
    (
        "start",
        GOOD.replace("next open evening", "someday at noon"),
        "s.yaml: top level: start: 'someday at noon' is not a start; write e.g. 'next open evening', "
        "'next open evening 20:40', 'monday 19:30' or 'tomorrow 21:10'",
    ),
    (
        "misspelt step key",
        GOOD.replace("    tap: kari\n", "    tap: kari\n    dor: bibliotek\n"),
        "s.yaml: step 1 (tap): unknown key 'dor' (did you mean 'door'?) "
        "(allowed here: at, tap, door, expect, note)",
    ),
    (
        "misspelt action",
        GOOD.replace('  - pin: "1234"\n', "  - tapp: kari\n"),
        "s.yaml: step 2: unknown key 'tapp' (did you mean 'tap'?) (allowed here: at, expect, note)",
    ),
    (
        "two actions in a step",
        GOOD.replace("    tap: kari\n", "    tap: kari\n    push: hovedinngang\n"),
        "s.yaml: step 1: one action per step, got tap, push",
    ),
    (
        "a step doing nothing",
        GOOD.replace("    tap: kari\n", "    note: nothing\n"),
        "s.yaml: step 1: needs an action (tap, pin, scan, push, force, hold_open, let_go, exit, beam, fire, "
        "wan, central, revoke, block, wait) or `expect:`",
    ),
    (
        "time going back",
        GOOD.replace('  - pin: "1234"\n', '  - at: "+0:00:30"\n    pin: "1234"\n'),
        "s.yaml: step 2: at +0:00:30 is earlier than where the timeline already is (+0:01 after the start); "
        "time only moves forward",
    ),
    (
        "someone not in people",
        GOOD.replace("tap: kari", "tap: ola"),
        "s.yaml: step 1 (tap): tap: 'ola' is not in people: (kari, lise)",
    ),
    (
        "a misspelt seed person",
        GOOD.replace("  kari:\n", "  karri:\n").replace("person: kari", "person: karri"),
        "s.yaml: people.karri: 'karri' is not a seed person (kari, ola, amina, emil, per, vidar, siri, nora, "
        "jonas); to create someone new give their details, e.g. `karri: {kind: resident}`",
    ),
    (
        "settings for a seed person",
        GOOD.replace("  kari:\n", "  kari: {pin: '1111'}\n"),
        "s.yaml: people.kari: 'kari' is a seed person and takes no settings; "
        "choose another name for a new person",
    ),
    (
        "a PIN with a letter",
        GOOD.replace('pin: "1234"', "pin: 12a4"),
        "s.yaml: step 2 (pin): pin: '12a4' is not a PIN (4 to 8 digits)",
    ),
    (
        "a denial's reason for a grant",
        GOOD.replace("reason: schedule", "reason: wrong_pin"),
        "s.yaml: step 2 (pin) expect 1 (access): reason: wrong_pin is a reason to deny",
    ),
    (
        "a misspelt reason",
        GOOD.replace("reason: schedule", "reason: schedul"),
        "s.yaml: step 2 (pin) expect 1 (access): reason: 'schedul' is not a known reason "
        "(did you mean 'schedule'?)",
    ),
    (
        "a key given twice",
        GOOD.replace("    tap: kari\n", "    tap: kari\n    tap: lise\n"),
        "s.yaml: line 12: YAML error: key 'tap' is given twice",
    ),
    (
        "YAML syntax",
        GOOD.replace("description: Kari comes in.", "description: Kari: comes in."),
        "s.yaml: line 2: YAML error: mapping values are not allowed here",
    ),
    (
        "a tap without a card",
        GOOD.replace("tap: kari", "tap: lise")
        .replace("phone: true,", "phone: true, card: false,")
        .replace(', pin: "2468"', ""),
        "s.yaml: step 1 (tap): tap: lise has no card",
    ),
    (
        "a token without a phone",
        GOOD.replace("tap: kari", "scan: kari"),
        "s.yaml: step 1 (scan): scan: kari has no phone credential to show a token (give them phone: true)",
    ),
    (
        "a wait that is no duration",
        GOOD.replace("wait: 5s", "wait: soon"),
        "s.yaml: step 3 (wait): wait: 'soon' is not a duration like 40s, 5m or 1h30m",
    ),
    (
        "two things in one expectation",
        GOOD.replace("        reason: schedule\n", "        reason: schedule\n        relay: energised\n"),
        "s.yaml: step 2 (pin) expect 1: needs exactly one of relay, lock, door_state, awaiting_pin, access, "
        "alarm, lights, intruder_alarm, site_event, occupancy, central_events, central_alarm, journal, "
        "replica; "
        "it has access, relay",
    ),
    (
        "a misspelt expectation",
        GOOD.replace("      - access: grant\n        reason: schedule\n", "      - acces: grant\n"),
        "s.yaml: step 2 (pin) expect 1: needs exactly one of relay, lock, door_state, awaiting_pin, access, "
        "alarm, lights, intruder_alarm, site_event, occupancy, central_events, central_alarm, journal, "
        "replica; "
        "'acces' is none of them (did you mean 'access'?)",
    ),
    (
        "a booking ending before it starts",
        GOOD.replace('until: "+2:00"', 'until: "19:00"'),
        "s.yaml: booking 1: until: ends at 19:00:00, not after it starts (19:30:00)",
    ),
    (
        "fire maybe",
        GOOD.replace("wait: 5s", "fire: maybe"),
        "s.yaml: step 3 (fire): fire: 'maybe' is not one of on, off",
    ),
    (
        "a PIN asked at every door",
        GOOD.replace("      - door_state: locked\n", "      - awaiting_pin: true\n"),
        "s.yaml: step 3 (wait) expect 1 (awaiting_pin): door: a PIN is asked for at one door at a time; "
        "name the door",
    ),
    ("an empty file", "", "s.yaml: the file is empty; a scenario needs name, start and timeline"),
    ("a list, not a scenario", "- a\n- b\n", "s.yaml: top level: expected a mapping of keys, got a list"),
]


@pytest.mark.parametrize(("text", "message"), [(t, msg) for _, t, msg in BAD], ids=[i for i, _, _ in BAD])
def test_a_bad_file_is_refused_with_one_line_naming_the_place_and_the_problem(
    text: str, message: str
) -> None:
    with pytest.raises(sc.ScenarioError) as caught:
        parse(text)
    assert str(caught.value) == message


def test_a_missing_file_is_one_line_too(tmp_path: Path) -> None:
    with pytest.raises(sc.ScenarioError, match=r"^.*nowhere\.yaml: no such scenario file$"):
        sc.load(tmp_path / "nowhere.yaml")


def site_config(*, open_weekdays: range = range(5)) -> m.SiteConfig:
    """Heggedal as central describes it, open 07-21 on the given weekdays."""
    return m.SiteConfig(
        site="heggedal",
        name="Heggedal innbyggertorg",
        revision=1,
        issued_at=datetime(2026, 1, 1, tzinfo=UTC),
        zones=[m.Zone("torg", "Torget"), m.Zone("moterom", "Møterommene")],
        doors=[
            m.Door("hovedinngang", "Hovedinngang", "torg", m.DoorKind.ENTRANCE),
            m.Door("moterom-1", "Møterom 1", "moterom", m.DoorKind.ROOM),
        ],
        rooms=[m.Room("moterom-1", "Møterom 1", "moterom", door="moterom-1")],
        hours=[m.Hours(day, time(7), time(21)) for day in open_weekdays],
        closed_on_public_holidays=False,
    )


def test_doors_and_rooms_the_site_does_not_have_are_refused_before_anything_runs() -> None:
    config = site_config()
    sc.check_site(parse(GOOD), config)
    with pytest.raises(sc.ScenarioError) as caught:
        sc.check_site(parse(GOOD.replace("door: all", "door: hovedinngnag")), config)
    assert str(caught.value) == (
        "s.yaml: step 3: no door 'hovedinngnag' at heggedal (did you mean 'hovedinngang'?) "
        "(doors: hovedinngang, moterom-1)"
    )
    with pytest.raises(sc.ScenarioError) as caught:
        sc.check_site(parse(GOOD.replace("room: moterom-1", "room: moterom-9")), config)
    assert str(caught.value) == "s.yaml: booking 1: no room 'moterom-9' at heggedal (rooms: moterom-1)"


def oslo(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), OSLO).astimezone(UTC)


def start_of(start: str) -> sc.Start:
    return parse(f"name: n\ndescription: d\nstart: {start}\ntimeline:\n  - wait: 1m\n").start


SATURDAY = date(2026, 11, 28)
MONDAY = date(2026, 11, 30)


@pytest.mark.parametrize(
    ("start", "now", "expected"),
    [
        ("next open evening", oslo(SATURDAY, 12), oslo(MONDAY, 19)),  # closed at weekends here
        (
            "next open evening 20:40",
            oslo(MONDAY, 20, 39, 30),
            oslo(MONDAY + timedelta(1), 20, 40),
        ),  # too close
        ("next open evening", oslo(MONDAY, 18), oslo(MONDAY, 19)),
        ("monday 19:30", oslo(MONDAY, 20), oslo(MONDAY + timedelta(7), 19, 30)),
        ("saturday 17:50", oslo(MONDAY, 20), oslo(SATURDAY + timedelta(7), 17, 50)),
        ("tomorrow 21:10", oslo(SATURDAY, 23, 59), oslo(SATURDAY + timedelta(1), 21, 10)),
    ],
)
def test_the_start_is_the_next_such_moment_after_real_now(
    start: str, now: datetime, expected: datetime
) -> None:
    parsed = start_of(start)
    assert resolve_start(parsed, SiteCalendar.from_config(site_config()), now) == expected


def test_a_site_never_open_at_that_time_is_said_so() -> None:
    parsed = start_of("next open evening 22:30")
    with pytest.raises(sc.ScenarioError, match="the site is not open at 22:30 on any of the next 14 days"):
        resolve_start(parsed, SiteCalendar.from_config(site_config()), oslo(MONDAY, 12))


# --- the runner on the full stack ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(pcscd: PcscDaemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:  # noqa: F811
    if not pcscd.running:
        pcscd.start()
    shared = Stack(tmp_path_factory.mktemp("scenarios"), pcscd)
    shared.prepare()
    yield shared


def explain(report: Report) -> str:
    lines = [f"{report.path.name}: {report.error or 'expectations not met'}"]
    lines += [f"  step {o.step} {o.at:%H:%M:%S} {o.expectation}: saw {o.seen}" for o in report.not_met]
    return "\n".join(lines)


@pytest.mark.mqtt
@pytest.mark.parametrize("path", library(), ids=lambda path: path.stem)
def test_library_scenario(path: Path, stack: Stack) -> None:
    report = run_scenario(sc.load(path), stack)
    assert report.outcomes, f"{path.name} checks nothing"
    assert report.met, explain(report)


def test_the_library_covers_every_evening_of_the_mission() -> None:
    assert {path.stem for path in library()} == {
        "normal-evening", "closing-sweep", "booking-holder", "central-down", "wan-lost", "forced-door",
        "held-open", "fire-alarm", "tailgating", "revoked-card", "pin-brute-force", "phone-token",
    }  # fmt: skip


WRONG = """\
name: Kari's card alone opens the door (it does not)
description: A scenario that expects the wrong thing, to show how a miss is reported.
start: next open evening
people:
  kari:
timeline:
  - at: "+0:01"
    tap: kari
    expect:
      - access: grant
      - relay: energised
      - awaiting_pin: true
"""


@pytest.mark.mqtt
def test_an_expectation_not_met_is_reported_with_what_was_seen_instead(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "wrong.yaml"
    path.write_text(WRONG, encoding="utf-8")
    report = run_scenario(sc.load(path), stack)
    assert not report.met and report.error is None
    assert [(o.expectation, o.met, o.seen) for o in report.outcomes] == [
        ("grant at hovedinngang", False, "no decision at hovedinngang"),
        ("relay at hovedinngang: energised", False, "de-energised"),
        ("hovedinngang asks for a PIN", True, "true"),
    ]
    assert report.start is not None and report.outcomes[0].at == report.start + timedelta(minutes=1)


@pytest.mark.mqtt
def test_sim_run_prints_the_report_and_exits_1_when_an_expectation_is_not_met(tmp_path: Path) -> None:
    """The real command in its own process (it starts its own pcscd, which a process can do only once)."""
    path = tmp_path / "wrong.yaml"
    path.write_text(WRONG, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", "from meraapent.cli import main; main()", "sim", "run", str(path)],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
        cwd=REPO,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "NOT MET" in done.stdout
    assert "no decision at hovedinngang" in done.stdout
    assert "0 of 1 scenarios met every expectation" in done.stdout


def test_sim_run_refuses_a_bad_file_with_one_line_and_exit_2_before_starting_anything(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace("tap: kari", "tap: ola"), encoding="utf-8")
    result = CliRunner().invoke(app, ["sim", "run", str(path)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {path}: step 1 (tap): tap: 'ola' is not in people: (kari, lise)"


def test_sim_run_without_files_says_what_to_give() -> None:
    result = CliRunner().invoke(app, ["sim", "run"])
    assert (result.exit_code, result.output.strip()) == (2, "error: no scenario files given (or use --all)")
