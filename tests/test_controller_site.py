"""The site during meråpent hours: an evening at Heggedal (16:00–22:00, Europe/Oslo) on injected times."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from controller.site import (
    Closed,
    ClosingWarning,
    IntruderAlarm,
    Intrusion,
    Lights,
    Occupancy,
    SiteMachine,
    SiteOutput,
    StillOccupied,
    Tailgating,
)

OSLO = ZoneInfo("Europe/Oslo")
ZONES = ("torg", "bibliotek", "verksted")
DAY = (2025, 11, 12)  # a Wednesday in winter time (UTC+1)


def local(hhmm: str, day: tuple[int, int, int] = DAY) -> datetime:
    """A local wall-clock time at Heggedal, as the UTC datetime the agent works with."""
    h, mi = (int(x) for x in hhmm.split(":"))
    return datetime(*day, h, mi, tzinfo=OSLO).astimezone(UTC)


def hhmm(t: datetime) -> str:
    return t.astimezone(OSLO).strftime("%H:%M")


Calendar = Callable[[datetime], tuple[datetime | None, bool]]


def hours(opens: str, closes: str) -> Calendar:
    def calendar(now: datetime) -> tuple[datetime | None, bool]:
        is_open = local(opens) <= now < local(closes)
        return (local(closes) if is_open else None), is_open

    return calendar


@dataclass
class SiteRig:
    machine: SiteMachine
    calendar: Calendar = field(default_factory=lambda: hours("16:00", "22:00"))
    log: list[tuple[str, SiteOutput]] = field(default_factory=list)

    def tick(self, now: datetime) -> list[SiteOutput]:
        out = self.machine.tick(now, *self.calendar(now))
        self.log += [(hhmm(now), o) for o in out]
        return out

    def run(self, start: str, end: str, step_s: int = 30) -> None:
        """Tick every `step_s` seconds from `start` to `end` (local), as the agent's loop does."""
        t, stop = local(start), local(end)
        while t <= stop:
            self.tick(t)
            t += timedelta(seconds=step_s)

    def record(self, at: str, out: list[SiteOutput]) -> None:
        self.log += [(at, o) for o in out]

    def of(self, kind: type) -> list[tuple[str, SiteOutput]]:
        return [(at, o) for at, o in self.log if isinstance(o, kind)]


def heggedal(**kw: object) -> SiteRig:
    return SiteRig(SiteMachine(ZONES, ["hovedinngang", "bakdor"], **kw))  # type: ignore[arg-type]


def test_an_evening_at_heggedal() -> None:
    rig = heggedal(armed=True)  # the night before left it armed
    rig.run("15:50", "18:00")
    assert rig.of(Lights) == [("16:00", Lights(z, True)) for z in ZONES]
    assert rig.of(IntruderAlarm) == [], "opening alone does not disarm: the first valid entry does"

    rig.record("18:00", rig.machine.entry("hovedinngang", local("18:00"), granted=True))
    rig.record("18:01", rig.machine.entry("hovedinngang", local("18:01"), granted=True))
    rig.record("18:05", rig.machine.entry("bibliotek-dor", local("18:05"), granted=True))  # internal
    rig.run("18:00", "21:57")
    rig.record("21:57", rig.machine.exit("hovedinngang", local("21:57")))
    rig.record("21:58", rig.machine.exit("bakdor", local("21:58")))
    rig.run("21:58", "23:00")

    assert rig.of(IntruderAlarm) == [("18:00", IntruderAlarm(False)), ("22:10", IntruderAlarm(True))]
    assert rig.of(ClosingWarning) == [("21:45", ClosingWarning(15)), ("21:55", ClosingWarning(5))]
    assert rig.of(Closed) == [("22:00", Closed())]
    assert rig.of(Occupancy) == [
        ("18:00", Occupancy(1)),
        ("18:01", Occupancy(2)),
        ("21:57", Occupancy(1)),
        ("21:58", Occupancy(0)),
    ]
    assert rig.of(Lights)[3:] == [("22:10", Lights(z, False)) for z in ZONES]
    assert rig.of(StillOccupied) == [] and rig.of(Intrusion) == []


def test_closing_warnings_are_not_repeated_or_announced_late() -> None:
    site = SiteMachine(ZONES, ["hovedinngang"])
    closes = local("22:00")
    assert site.tick(local("21:46"), closes, True)[-1] == ClosingWarning(14)
    assert site.tick(local("21:47"), closes, True) == []
    assert site.tick(local("21:44"), closes, True) == [], "the wall clock set back does not warn again"
    assert site.tick(local("21:55"), closes, True) == [ClosingWarning(5)]

    late = SiteMachine(ZONES, ["hovedinngang"])  # an agent (re)started at 21:57
    out = late.tick(local("21:57"), closes, True)
    assert [o for o in out if isinstance(o, ClosingWarning)] == [ClosingWarning(3)]
    assert late.tick(local("21:58"), closes, True) == []
    assert late.tick(local("21:50"), closes, True) == [], "the skipped 15-minute warning stays skipped"

    after = SiteMachine(ZONES, ["hovedinngang"])  # started after closing: no warnings, no Closed
    out = after.tick(local("22:01"), None, False)
    assert not [o for o in out if isinstance(o, ClosingWarning | Closed)]


def test_special_hours_closing_earlier_get_their_own_warnings() -> None:
    rig = heggedal()
    rig.calendar = hours("16:00", "20:00")
    rig.run("15:59", "20:30")
    assert rig.of(ClosingWarning) == [("19:45", ClosingWarning(15)), ("19:55", ClosingWarning(5))]
    assert rig.of(Closed) == [("20:00", Closed())]


def test_people_still_inside_keep_the_lights_on_until_they_leave() -> None:
    rig = heggedal()
    rig.run("15:59", "19:00")
    rig.machine.entry("bakdor", local("19:00"), granted=True)
    rig.run("19:00", "22:20")
    assert rig.of(StillOccupied) == [("22:10", StillOccupied(1))]
    assert rig.of(Lights) == [("16:00", Lights(z, True)) for z in ZONES]
    assert not rig.machine.armed
    rig.record("22:20", rig.machine.exit("bakdor", local("22:20")))
    assert rig.log[-4:] == [("22:20", Lights(z, False)) for z in ZONES] + [("22:20", IntruderAlarm(True))]


def test_lights_go_off_after_the_max_delay_but_the_alarm_waits_for_an_empty_site() -> None:
    rig = heggedal(sweep_minutes=10, max_sweep_minutes=45)
    rig.run("15:59", "19:00")
    rig.machine.entry("hovedinngang", local("19:00"), granted=True)
    rig.run("19:00", "23:30")
    assert [at for at, _ in rig.of(Lights)][3:] == ["22:45"] * 3
    assert not rig.machine.armed
    rig.record("23:30", rig.machine.exit("hovedinngang", local("23:30")))
    assert rig.log[-1] == ("23:30", IntruderAlarm(True))


def test_entry_without_a_valid_one_while_armed_is_an_intrusion() -> None:
    rig = heggedal()
    rig.run("15:59", "22:30")
    assert rig.machine.armed
    out = rig.machine.entry("bakdor", local("23:00"), granted=False)
    assert out == [Intrusion("bakdor"), Occupancy(1)]
    assert rig.machine.exit("bakdor", local("23:01")) == [Intrusion("bakdor"), Occupancy(0)]
    assert rig.machine.exit("bakdor", local("23:02")) == [Intrusion("bakdor")], "never below 0"


def test_caretaker_at_night_disarms_and_the_site_rearms_when_empty_again() -> None:
    rig = heggedal()
    rig.run("15:59", "22:30")
    night = rig.machine
    assert night.valid_entry(local("23:00")) == [IntruderAlarm(False)]
    assert night.entry("hovedinngang", local("23:01"), granted=True) == [Occupancy(1)]
    rig.run("23:01", "23:20")
    assert rig.of(StillOccupied)[-1] == ("23:10", StillOccupied(1))
    assert night.exit("hovedinngang", local("23:20")) == [Occupancy(0), IntruderAlarm(True)]

    assert night.valid_entry(local("23:30")) == [IntruderAlarm(False)]  # a grant, but nobody came in
    rig.run("23:30", "23:40")
    assert rig.of(IntruderAlarm)[-1] == ("23:40", IntruderAlarm(True))


def test_first_tick_while_closed_sweeps_and_arms() -> None:
    rig = heggedal()
    rig.run("02:00", "02:15")
    assert rig.of(IntruderAlarm) == [("02:10", IntruderAlarm(True))]
    assert rig.of(Lights) == [("02:10", Lights(z, False)) for z in ZONES]


def test_beam_passages_beyond_grants_are_tailgating() -> None:
    site = SiteMachine(ZONES, ["hovedinngang"], grant_window_seconds=10)
    t = local("18:00")
    assert site.grant("hovedinngang", t) == []
    assert site.beam("hovedinngang", t + timedelta(seconds=3)) == []
    out = site.beam("hovedinngang", t + timedelta(seconds=4))
    assert out == [Tailgating("hovedinngang", "more beam passages than grants within 10 s")]

    site.grant("hovedinngang", t + timedelta(minutes=1))
    site.grant("hovedinngang", t + timedelta(minutes=1, seconds=1))
    assert site.beam("hovedinngang", t + timedelta(minutes=1, seconds=5)) == []
    assert site.beam("hovedinngang", t + timedelta(minutes=1, seconds=6)) == []

    site.grant("bakdor", t + timedelta(minutes=2))
    assert site.beam("bakdor", t + timedelta(minutes=2, seconds=11)) != [], "a grant's window runs out"
    site.grant("bakdor", t + timedelta(minutes=3))
    assert site.beam("hovedinngang", t + timedelta(minutes=3, seconds=1)) != [], "grants count per door"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"zones": []}, "zones must be a non-empty list"),
        ({"warnings_min": (15, 0)}, "warnings_min must be distinct positive minutes"),
        ({"sweep_minutes": -1}, "sweep_minutes must be zero or more"),
        ({"max_sweep_minutes": 5}, "max_sweep_minutes must be at least sweep_minutes"),
        ({"occupancy": -2}, "occupancy must be zero or more"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_message(kw: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"zones": ZONES, "entrance_doors": ["d"], **kw}
    with pytest.raises(ValueError, match=message):
        SiteMachine(**args)  # type: ignore[arg-type]


def test_naive_times_are_refused() -> None:
    site = SiteMachine(ZONES, ["d"])
    with pytest.raises(ValueError, match="now must be a timezone-aware datetime"):
        site.tick(datetime(2025, 11, 12, 21, 45), None, True)
    with pytest.raises(ValueError, match="closes_at must be a timezone-aware"):
        site.tick(local("21:45"), datetime(2025, 11, 12, 22, 0), True)
