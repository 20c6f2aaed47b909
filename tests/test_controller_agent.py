"""The agent's own thread, end to end without hardware or network: inputs in, relay levels and events out.

Fake door hardware records what the lock was told; a fake link records what would go to central; the clock
is manual, so an evening takes milliseconds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import argon2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.agent import Agent, AgentSettings, Connected, Received
from controller.clock import ManualClock
from controller.inputs import CardPresented, CodeScanned, Feedback, InputChanged, KeyPressed, Signal
from controller.uid import card_uid_hash
from protocol import codec
from protocol import messages as m
from protocol.keys import PublicKeySet, PublishedKey, key_id
from protocol.token import TokenClaims, issue_token
from tests.test_controller_schedule import heggedal_config, oslo

KEY = bytes(range(32))
KARI_UID = bytes.fromhex("04a1b2c3d4e5f6")
VIDAR_UID = bytes.fromhex("04ffeeddccbbaa")
PIN_HASH = argon2.PasswordHasher.from_parameters(argon2.profiles.CHEAPEST).hash("1234")
MONDAY_EVENING = oslo("2026-11-23T20:30")  # meråpent until 21:00
ISSUER = Ed25519PrivateKey.generate()


class FakeDoor:
    def __init__(self) -> None:
        self.unlocked: list[bool] = []
        self.buzzing: list[bool] = []
        self.shown: list[Feedback] = []

    def set_unlocked(self, unlocked: bool) -> None:
        self.unlocked.append(unlocked)

    def buzzer(self, on: bool) -> None:
        self.buzzing.append(on)

    def feedback(self, feedback: Feedback) -> None:
        self.shown.append(feedback)

    @property
    def is_unlocked(self) -> bool:
        return bool(self.unlocked) and self.unlocked[-1]


class FakeLink:
    def __init__(self) -> None:
        self.connected = True
        self.events: list[m.AgentEvent] = []  # each event once, however often it was published
        self.publishes = 0
        self.door_states: list[m.DoorState] = []
        self.results: list[m.CommandResult] = []
        self.snapshot_requests: list[tuple[int | None, str]] = []

    def publish_event(self, payload: bytes) -> None:
        event = codec.decode(payload, (m.AccessEvent, m.AlarmEvent, m.SystemEvent))
        assert isinstance(event, m.AccessEvent | m.AlarmEvent | m.SystemEvent)
        self.publishes += 1
        if all(e.event_id != event.event_id for e in self.events):  # unacked events are sent again
            self.events.append(event)

    def publish_door_state(self, state: m.DoorState) -> None:
        self.door_states.append(state)

    def publish_command_result(self, result: m.CommandResult) -> None:
        self.results.append(result)

    def request_snapshot(self, have_seq: int | None, reason: str) -> None:
        self.snapshot_requests.append((have_seq, reason))

    def access(self) -> list[m.AccessEvent]:
        return [e for e in self.events if isinstance(e, m.AccessEvent)]

    def alarms(self) -> list[m.AlarmEvent]:
        return [e for e in self.events if isinstance(e, m.AlarmEvent)]


def card(ref: str, person: str, kind: m.PersonKind, group: str, uid: bytes, pin: bool) -> m.Credential:
    return m.Credential(
        ref=ref,
        person=person,
        person_kind=kind,
        kind=m.CredentialKind.CARD,
        groups=[group],
        uid_hash=card_uid_hash(uid, KEY),
        pin_hash=PIN_HASH if pin else None,
    )


KARI = card("c1", "p-kari", m.PersonKind.RESIDENT, "innbyggere", KARI_UID, pin=True)
VIDAR = card("c6", "p-vidar", m.PersonKind.CARETAKER, "vaktmestere", VIDAR_UID, pin=False)


def snapshot(*credentials: m.Credential, seq: int = 10) -> m.ReplicaSnapshot:
    return m.ReplicaSnapshot(
        site="heggedal", seq=seq, generated_at=MONDAY_EVENING, credentials=list(credentials)
    )


def signing_keys() -> m.SigningKeys:
    keys = PublicKeySet([PublishedKey(ISSUER.public_key())]).to_messages()
    return m.SigningKeys(issuer="asker", issued_at=MONDAY_EVENING, keys=keys)


class FakeSiteOutputs:
    def __init__(self) -> None:
        self.lit: dict[str, bool] = {}
        self.armed: list[bool] = []
        self.announced: list[int] = []

    def lights(self, zone: str, on: bool) -> None:
        self.lit[zone] = on

    def intruder_armed(self, armed: bool) -> None:
        self.armed.append(armed)

    def announce_closing(self, minutes_left: int) -> None:
        self.announced.append(minutes_left)


class Site:
    """An agent at Heggedal with two doors, fed like the real runtime feeds it."""

    def __init__(self, data_dir: Path, clock: ManualClock, link: FakeLink | None) -> None:
        self.clock = clock
        self.link = link
        self.doors = {"hovedinngang": FakeDoor(), "moterom-1": FakeDoor()}
        self.outputs = FakeSiteOutputs()
        settings = AgentSettings(site="heggedal", name="heggedal-pi", data_dir=data_dir, uid_hash_key=KEY)
        self.agent = Agent(settings, clock, dict(self.doors), site_hardware=self.outputs, link=link)

    def feed(self, *work: object) -> None:
        for item in work:
            self.agent.submit(item)  # type: ignore[arg-type]
        self.agent.drain()
        self.agent.tick()

    def wait(self, seconds: float, step: float = 0.5) -> None:
        """Let time pass with the agent's timers running, as its loop would."""
        elapsed = 0.0
        while elapsed < seconds:
            self.clock.advance(step)
            elapsed += step
            self.agent.tick()

    def tap(self, uid: bytes, door: str = "hovedinngang") -> None:
        self.feed(CardPresented(door, uid))

    def type(self, keys: str, door: str = "hovedinngang") -> None:
        self.feed(*(KeyPressed(door, k) for k in keys))

    def contact(self, door: str, is_open: bool) -> None:
        self.feed(InputChanged(Signal.DOOR_CONTACT, is_open, door))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(MONDAY_EVENING)


@pytest.fixture
def site(tmp_path: Path, clock: ManualClock) -> Iterator[Site]:
    running = Site(tmp_path / "agent", clock, FakeLink())
    running.feed(Received(heggedal_config()), Received(snapshot(KARI, VIDAR)), Received(signing_keys()))
    yield running
    running.agent.close()


def test_kari_taps_types_her_pin_and_walks_in(site: Site) -> None:
    door = site.doors["hovedinngang"]
    site.tap(KARI_UID)
    assert not door.is_unlocked  # the PIN comes first
    assert door.shown == [Feedback.PIN_NEEDED]
    site.type("1234#")
    assert door.is_unlocked
    assert door.shown == [Feedback.PIN_NEEDED, Feedback.GRANTED]
    site.contact("hovedinngang", True)
    site.wait(2)
    site.contact("hovedinngang", False)
    assert not door.is_unlocked  # relocked as soon as the door closed behind her
    assert site.link is not None
    [event] = site.link.access()
    assert (event.decision, event.reason) == (m.Decision.GRANT, m.Reason.SCHEDULE)
    assert event.method is m.Method.CARD_PIN
    assert (event.credential_ref, event.person_ref, event.door) == ("c1", "p-kari", "hovedinngang")
    states = [s.state for s in site.link.door_states if s.door == "hovedinngang"]
    assert states[-3:] == [m.DoorStateName.UNLOCKED, m.DoorStateName.OPEN, m.DoorStateName.LOCKED]


def test_a_grant_not_used_relocks_after_the_unlock_time(site: Site) -> None:
    site.tap(VIDAR_UID)  # a caretaker's card without PIN
    door = site.doors["hovedinngang"]
    assert door.is_unlocked
    site.wait(6)
    assert not door.is_unlocked


def test_five_wrong_pins_lock_the_card_and_raise_an_alarm(site: Site) -> None:
    for _ in range(5):
        site.tap(KARI_UID)
        site.type("9999#")
    assert site.link is not None
    assert [e.reason for e in site.link.access()] == [m.Reason.WRONG_PIN] * 5
    [alarm] = site.link.alarms()
    assert alarm.kind is m.AlarmKind.PIN_BRUTE_FORCE
    site.tap(KARI_UID)  # even the right PIN does not help for 15 minutes
    assert site.link.access()[-1].reason is m.Reason.PIN_LOCKED
    site.wait(15 * 60, step=30)
    site.tap(KARI_UID)
    site.type("1234#")
    assert site.link.access()[-1].decision is m.Decision.GRANT
    assert site.doors["hovedinngang"].unlocked.count(True) == 1  # never unlocked before that


def test_a_pin_never_finished_is_denied_with_pin_timeout(site: Site) -> None:
    site.tap(KARI_UID)
    site.type("12")
    site.wait(20)
    assert site.link is not None
    assert [e.reason for e in site.link.access()] == [m.Reason.PIN_TIMEOUT]
    assert not site.doors["hovedinngang"].is_unlocked


def test_an_unknown_card_is_denied_and_a_closed_site_says_so(site: Site, clock: ManualClock) -> None:
    site.tap(bytes.fromhex("0411223344"))
    clock.set_wall(oslo("2026-11-23T22:30"))  # after closing
    site.tap(KARI_UID)
    site.tap(VIDAR_UID)  # caretakers come any time
    assert site.link is not None
    reasons = [e.reason for e in site.link.access()]
    assert reasons == [m.Reason.UNKNOWN_CREDENTIAL, m.Reason.SITE_CLOSED, m.Reason.ANY_TIME]


def test_a_phone_token_opens_the_door_it_names_and_no_other(site: Site) -> None:
    claims = TokenClaims(
        issuer="asker",
        holder="p-kari",
        site="heggedal",
        doors=("hovedinngang",),
        not_before=MONDAY_EVENING - timedelta(minutes=5),
        expires=MONDAY_EVENING + timedelta(hours=1),
    )
    text = issue_token(claims, ISSUER, key_id(ISSUER))
    site.feed(CodeScanned("moterom-1", text), CodeScanned("hovedinngang", text))
    assert site.link is not None
    assert [(e.door, e.reason) for e in site.link.access()] == [
        ("moterom-1", m.Reason.TOKEN_WRONG_DOOR),
        ("hovedinngang", m.Reason.SCHEDULE),
    ]
    assert site.doors["hovedinngang"].is_unlocked and not site.doors["moterom-1"].is_unlocked


def test_fire_releases_every_door_and_relocks_when_it_clears(site: Site) -> None:
    site.feed(InputChanged(Signal.FIRE, True))
    assert all(door.is_unlocked for door in site.doors.values())
    site.feed(InputChanged(Signal.FIRE, False))
    assert not any(door.is_unlocked for door in site.doors.values())
    assert site.link is not None
    assert [(a.kind, a.raised) for a in site.link.alarms()] == [
        (m.AlarmKind.FIRE, True),
        (m.AlarmKind.FIRE, False),
    ]


def command(action: m.Action, *, nonce: str = "n-0001", door: str | None = "moterom-1") -> m.Command:
    return m.Command(
        command_id=uuid.uuid4(),
        site="heggedal",
        action=action,
        nonce=nonce,
        issued_at=MONDAY_EVENING,
        expires_at=MONDAY_EVENING + timedelta(minutes=1),
        issued_by="vaktmester Vidar",
        reason="Leverandør står utenfor",
        door=door,
        duration_seconds=60 if action is m.Action.UNLOCK else None,
    )


def test_remote_unlock_runs_once_and_a_replay_is_refused(site: Site) -> None:
    unlock = command(m.Action.UNLOCK)
    site.feed(Received(unlock))
    door = site.doors["moterom-1"]
    assert door.is_unlocked
    site.wait(30)
    assert door.is_unlocked  # a timed unlock of 60 s
    site.wait(31)
    assert not door.is_unlocked
    site.feed(Received(unlock))  # the same command again
    assert not door.is_unlocked
    assert site.link is not None
    assert [r.outcome for r in site.link.results] == [m.CommandOutcome.DONE, m.CommandOutcome.REFUSED]
    assert "replayed" in site.link.results[1].reason


def test_lock_down_stops_cards_until_normal(site: Site) -> None:
    site.feed(Received(command(m.Action.LOCK_DOWN, door=None, nonce="n-lock")))
    site.tap(VIDAR_UID)
    assert not site.doors["hovedinngang"].is_unlocked
    site.feed(Received(command(m.Action.NORMAL, door=None, nonce="n-normal")))
    site.tap(VIDAR_UID)
    assert site.doors["hovedinngang"].is_unlocked
    assert site.link is not None
    assert [e.reason for e in site.link.access()] == [m.Reason.LOCKDOWN, m.Reason.ANY_TIME]


def test_events_stay_until_central_acknowledges_them(site: Site) -> None:
    assert site.link is not None
    site.tap(VIDAR_UID)
    pending = site.agent.journal.pending_count()
    assert pending >= 2  # agent started, replica resynced, the decision...
    sent = [e.event_id for e in site.link.events]
    site.link.events.clear()
    site.feed(Connected())  # a reconnect: everything unacknowledged goes again
    assert sorted(str(e.event_id) for e in site.link.events) == sorted(str(i) for i in sent)
    site.link.events.clear()
    site.wait(31)  # and so it does every 30 s until central acknowledges it
    assert len(site.link.events) == len(sent)
    site.feed(Received(m.Ack(site="heggedal", event_ids=sent)))
    assert site.agent.journal.pending_count() == pending - len(sent)


def test_offline_then_back_every_event_is_published_once_connected(site: Site) -> None:
    assert site.link is not None
    site.link.connected = False
    site.link.events.clear()
    site.tap(VIDAR_UID)
    site.tap(KARI_UID)
    site.type("1234#")
    assert site.link.events == []  # nothing goes out while offline; the journal keeps it
    site.link.connected = True
    site.feed(Connected())
    assert [e.reason for e in site.link.access()] == [m.Reason.ANY_TIME, m.Reason.SCHEDULE]


def test_a_restarted_agent_decides_from_what_it_had_before_the_network_is_back(
    tmp_path: Path, clock: ManualClock
) -> None:
    first = Site(tmp_path / "agent", clock, FakeLink())
    first.feed(Received(heggedal_config()), Received(snapshot(KARI, VIDAR)))
    first.agent.close()
    second = Site(tmp_path / "agent", clock, None)  # no network at all
    second.tap(VIDAR_UID)
    assert second.doors["hovedinngang"].is_unlocked
    second.agent.close()


def test_a_replica_gap_asks_central_for_a_snapshot(site: Site) -> None:
    delta = m.ReplicaDelta(site="heggedal", seq=13, prev_seq=12, generated_at=MONDAY_EVENING, remove=["c6"])
    site.feed(Received(delta))
    assert site.link is not None
    assert site.link.snapshot_requests and site.link.snapshot_requests[-1][0] == 10
    site.tap(VIDAR_UID)  # the gapped delta was not applied
    assert site.doors["hovedinngang"].is_unlocked


def test_an_unset_clock_lets_only_staff_and_caretakers_in(site: Site, clock: ManualClock) -> None:
    clock.set_wall(datetime(1970, 1, 1, 0, 1, tzinfo=UTC))
    site.tap(KARI_UID)
    site.tap(VIDAR_UID)
    assert site.link is not None
    assert [e.reason for e in site.link.access()] == [m.Reason.CLOCK_UNSET, m.Reason.ANY_TIME]
    assert [a.kind for a in site.link.alarms()] == [m.AlarmKind.CLOCK_UNSET]


def test_a_clock_falling_back_to_1970_raises_its_alarm_without_waiting_for_a_tap(
    site: Site, clock: ManualClock
) -> None:
    clock.set_wall(datetime(1970, 1, 1, 0, 1, tzinfo=UTC))
    site.wait(5)
    assert site.link is not None
    assert [a.kind for a in site.link.alarms()] == [m.AlarmKind.CLOCK_UNSET]
    assert site.agent.clock_alarm and site.link.access() == []


def test_closing_time_warns_twice_then_the_empty_torg_goes_dark_and_armed(site: Site) -> None:
    assert site.link is not None
    site.wait(60)
    assert site.outputs.lit == {"bibliotek": True, "moterom": True, "torg": True}  # open: lights on
    site.wait(30 * 60, step=5)  # 20:31 → 21:01: closing is at 21:00
    assert site.outputs.announced == [15, 5]
    said = [e for e in site.link.events if isinstance(e, m.SystemEvent)]
    warnings = [e.detail for e in said if e.kind == "closing-warning"]
    assert warnings == ["15 min", "5 min"]
    site.wait(15 * 60, step=5)  # the closing sweep finds nobody inside
    assert site.outputs.lit == {"bibliotek": False, "moterom": False, "torg": False}
    assert site.outputs.armed[-1] is True
    site.tap(VIDAR_UID)  # the caretaker comes by at night: the alarm is disarmed by his valid entry
    assert site.outputs.armed[-1] is False


def test_a_forced_door_makes_its_reader_show_the_alarm_until_it_is_closed(site: Site) -> None:
    door = site.doors["hovedinngang"]
    site.contact("hovedinngang", True)  # opened while locked, no exit request: forced
    while_forced = door.shown[-1]
    assert site.link is not None
    assert [(a.kind, a.raised) for a in site.link.alarms()] == [(m.AlarmKind.FORCED_OPEN, True)]
    site.contact("hovedinngang", False)
    assert (while_forced, door.shown[-1]) == (Feedback.ALARM, Feedback.IDLE)
    assert [(a.kind, a.raised) for a in site.link.alarms()][-1] == (m.AlarmKind.FORCED_OPEN, False)
