"""The attack suite at the door: every attack of issue #8 played against the agent's own decision path.

Each attack goes in where an attacker would put it (a QR code at the scanner, a card and keys at the reader,
a command from the broker) into the real agent (controller.agent: reception, decision engine, replica,
command guard, journal) on fake door hardware and a manual clock. Each must be refused with its reason in the
journaled access event or the command result central records, and the door must never have been unlocked.

What "replay" means here, read from the rules (controller/decide.py, protocol/holder.py):
- a plain phone token (``MA1:``, a visitor's printed or forwarded code) is a pass for its validity window,
  like a key: showing it again inside the window opens again, by design. It is replay-proof only at its
  edges: after it expires (plus 60 s clock skew) or once central revokes it, every showing is refused;
- a phone-bound code (``MA2:``) carries the phone's signature of the current 30-second step, and the agent
  takes the step before and after too: a screenshot of it opens for at most 60 seconds after the step it was
  drawn in began, then it is refused as stale;
- a command (remote unlock, lock-down) carries a nonce: accepted once, a second delivery is refused, also
  after the agent restarted (the nonces are on disk), and so is one outside its validity (60 s skew both
  ways).
"""

from __future__ import annotations

import secrets
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import base45
import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.agent import Received
from controller.clock import ManualClock
from controller.inputs import CodeScanned
from controller.kiosk_server import KioskServer
from protocol import kiosk as k
from protocol import messages as m
from protocol.holder import TIME_STEP_SECONDS, present, time_step
from protocol.keys import PublicKeySet, PublishedKey, key_id, kid_to_bytes
from protocol.token import PREFIX, TokenClaims, issue_token, token_bytes
from tests.test_controller_agent import KARI, KARI_UID, FakeLink, Site, snapshot
from tests.test_controller_schedule import heggedal_config, oslo
from tests.test_holder_binding import Phone, phone_credential

R = m.Reason
DOOR = "hovedinngang"
MONDAY_EVENING = oslo("2026-11-23T20:30")  # Heggedal is open until 21:00
MONDAY_NOON = oslo("2026-11-23T12:00")
ISSUER = Ed25519PrivateKey.generate()
RETIRED = Ed25519PrivateKey.generate()  # central's previous key: published, but only until yesterday
ATTACKER = Ed25519PrivateKey.generate()
TOKEN_ID = bytes.fromhex("a1a2a3a4a5a6a7a8")
KARIS_PHONE, OTHER_PHONE = Phone(), Phone()


def signing_keys(now: datetime) -> m.SigningKeys:
    keys = PublicKeySet(
        [
            PublishedKey(ISSUER.public_key()),
            PublishedKey(RETIRED.public_key(), active=False, not_after=now - timedelta(days=1)),
        ]
    )
    return m.SigningKeys(issuer="asker", issued_at=now, keys=keys.to_messages())


def token(now: datetime = MONDAY_EVENING, *, key: Ed25519PrivateKey = ISSUER, **changes: Any) -> str:
    """Kari's phone token for the main door, valid from 5 minutes ago for an hour, unless `changes` say."""
    values: dict[str, Any] = {
        "issuer": "asker",
        "holder": "p-kari",
        "site": "heggedal",
        "doors": (DOOR,),
        "not_before": now - timedelta(minutes=5),
        "expires": now + timedelta(hours=1),
        "token_id": TOKEN_ID,
    }
    return issue_token(TokenClaims(**(values | changes)), key, key_id(key))


def bound(now: datetime = MONDAY_EVENING, **changes: Any) -> str:
    return token(now, holder_key=KARIS_PHONE.public_raw, **changes)


def cose_parts(text: str) -> list[bytes]:
    parts: list[bytes] = cbor2.loads(token_bytes(text)).value
    return parts


def cose_text(protected: bytes, payload: bytes, signature: bytes) -> str:
    raw = cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature]))
    text: str = PREFIX + base45.b45encode(raw).decode()
    return text


def forged_signature() -> str:
    """Claims of the attacker's choosing, a random signature, the kid of central's real key."""
    protected, _, payload, _ = cose_parts(token(key=ISSUER))
    return cose_text(protected, payload, secrets.token_bytes(64))


def with_claims_of(signed: str, claims_from: str) -> str:
    """A genuine token's signature kept, its claims swapped for those of another token."""
    protected, _, _, signature = cose_parts(signed)
    return cose_text(protected, cose_parts(claims_from)[2], signature)


def resigned_under_issuer_kid() -> str:
    """Signed by the attacker's own key, claiming to be central's key in the protected header."""
    protected = cbor2.dumps({1: -8, 4: kid_to_bytes(key_id(ISSUER))})
    payload = cose_parts(token())[2]
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
    return cose_text(protected, payload, ATTACKER.sign(to_sign))


def proof_for_another_token() -> str:
    """Kari's phone's fresh signature, moved onto another token bound to the same phone."""
    shown = KARIS_PHONE.show(bound(), MONDAY_EVENING)
    _token, step, signature = cbor2.loads(base45.b45decode(shown[len("MA2:") :]))
    return present(bound(doors=("moterom-1", DOOR), token_id=bytes(8)), step, signature)


@dataclass(frozen=True)
class Attack:
    name: str
    code: Callable[[], str]
    reason: m.Reason
    door: str = DOOR


TOKEN_ATTACKS = [
    Attack(
        "forged: any claims, a random signature under the issuer's kid", forged_signature, R.TOKEN_INVALID
    ),
    Attack(
        "forged: a genuine token for another door, its door changed",
        lambda: with_claims_of(token(doors=("bibliotek",)), token()),
        R.TOKEN_INVALID,
    ),
    Attack(
        "forged: an expired token, its expiry pushed a year",
        lambda: with_claims_of(
            token(not_before=MONDAY_EVENING - timedelta(days=2), expires=MONDAY_EVENING - timedelta(days=1)),
            token(expires=MONDAY_EVENING + timedelta(days=365)),
        ),
        R.TOKEN_INVALID,
    ),
    Attack("truncated: the last character missing", lambda: token()[:-1], R.TOKEN_INVALID),
    Attack("truncated: half the code", lambda: token()[: len(token()) // 2], R.TOKEN_INVALID),
    Attack("truncated: the prefix only", lambda: PREFIX, R.TOKEN_INVALID),
    Attack("re-signed with the attacker's own key", lambda: token(key=ATTACKER), R.TOKEN_UNKNOWN_KEY),
    Attack("re-signed by the attacker under the issuer's kid", resigned_under_issuer_kid, R.TOKEN_INVALID),
    Attack("signed with a retired key", lambda: token(key=RETIRED), R.TOKEN_UNKNOWN_KEY),
    Attack(
        "expired two minutes ago (beyond the 60 s skew)",
        lambda: token(
            not_before=MONDAY_EVENING - timedelta(hours=1), expires=MONDAY_EVENING - timedelta(minutes=2)
        ),
        R.TOKEN_EXPIRED,
    ),
    Attack(
        "not valid for another two minutes",
        lambda: token(not_before=MONDAY_EVENING + timedelta(minutes=2)),
        R.TOKEN_NOT_YET_VALID,
    ),
    Attack("for another site", lambda: token(site="holmen"), R.TOKEN_WRONG_SITE),
    Attack("for another door", lambda: token(doors=("moterom-1",)), R.TOKEN_WRONG_DOOR),
    Attack("revoked by central", lambda: token(token_id=bytes.fromhex("dead0000beef0000")), R.TOKEN_REVOKED),
    Attack(
        "replayed: a screenshot of a phone code, two steps old",
        lambda: KARIS_PHONE.show(bound(), MONDAY_EVENING - timedelta(seconds=2 * TIME_STEP_SECONDS)),
        R.PHONE_PROOF_STALE,
    ),
    Attack(
        "replayed: a phone code drawn for two steps ahead",
        lambda: KARIS_PHONE.show(bound(), MONDAY_EVENING + timedelta(seconds=2 * TIME_STEP_SECONDS)),
        R.PHONE_PROOF_STALE,
    ),
    Attack("copied: a phone-bound token without the phone's proof", bound, R.PHONE_PROOF_MISSING),
    Attack(
        "copied: a phone-bound token with another phone's proof",
        lambda: OTHER_PHONE.show(bound(), MONDAY_EVENING),
        R.PHONE_PROOF_INVALID,
    ),
    Attack(
        "moved: the phone's proof on another of its tokens", proof_for_another_token, R.PHONE_PROOF_INVALID
    ),
]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(MONDAY_EVENING)


def open_site(data_dir: Path, clock: ManualClock) -> Site:
    """Heggedal's agent with Kari's card and phone in its replica, central's keys and one revoked token."""
    site = Site(data_dir, clock, FakeLink())
    now = clock.now()
    revoked = m.RevokedToken(token_id="dead0000beef0000", expires_at=now + timedelta(days=1))
    site.feed(
        Received(heggedal_config()),
        Received(snapshot(KARI, phone_credential("p-kari", "innbyggere"))),
        Received(signing_keys(now)),
        Received(m.Revocations(site="heggedal", revision=1, issued_at=now, tokens=[revoked])),
    )
    return site


@pytest.fixture
def site(tmp_path: Path, clock: ManualClock) -> Iterator[Site]:
    running = open_site(tmp_path / "agent", clock)
    yield running
    running.agent.close()


def link(site: Site) -> FakeLink:
    assert isinstance(site.link, FakeLink)
    return site.link


def scan(site: Site, text: str, door: str = DOOR) -> m.AccessEvent:
    """Show a code at `door`'s scanner; the decision the agent journaled and published for it."""
    before = len(link(site).access())
    site.feed(CodeScanned(door, text))
    [event] = link(site).access()[before:]
    assert (event.door, event.method) == (door, m.Method.PHONE_QR)
    return event


def never_unlocked(site: Site) -> bool:
    return not any(any(door.unlocked) for door in site.doors.values())


# --- phone codes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("attack", TOKEN_ATTACKS, ids=[a.name for a in TOKEN_ATTACKS])
def test_a_false_phone_code_is_refused_with_its_reason(site: Site, attack: Attack) -> None:
    event = scan(site, attack.code(), attack.door)
    assert (event.decision, event.reason) == (m.Decision.DENY, attack.reason)
    assert never_unlocked(site)


def test_the_genuine_codes_the_attacks_were_made_from_open_the_door(site: Site) -> None:
    """The control: without the attack, the same codes open (so each refusal above is the attack's doing)."""
    assert scan(site, token()).decision is m.Decision.GRANT
    assert scan(site, KARIS_PHONE.show(bound(), MONDAY_EVENING)).decision is m.Decision.GRANT


def test_a_plain_token_opens_for_its_window_only_and_not_after_revocation(
    site: Site, clock: ManualClock
) -> None:
    """A plain token is a pass: shown again it opens again, until it expires or central revokes it."""
    text = token(expires=MONDAY_EVENING + timedelta(minutes=10))
    assert [scan(site, text).decision for _ in range(2)] == [m.Decision.GRANT, m.Decision.GRANT]
    clock.advance(10 * 60 + 61)  # expired, and the 60 s skew used up
    assert scan(site, text).reason is R.TOKEN_EXPIRED

    other = token(clock.now(), token_id=bytes.fromhex("0000000000000001"))
    assert scan(site, other).decision is m.Decision.GRANT
    revocation = m.RevokedToken(token_id="0000000000000001", expires_at=clock.now() + timedelta(hours=2))
    site.feed(
        Received(m.Revocations(site="heggedal", revision=2, issued_at=clock.now(), tokens=[revocation]))
    )
    assert scan(site, other).reason is R.TOKEN_REVOKED


def test_a_screenshot_of_a_phone_code_opens_for_at_most_a_minute(site: Site, clock: ManualClock) -> None:
    step_start = datetime.fromtimestamp(time_step(clock.now()) * TIME_STEP_SECONDS, clock.now().tzinfo)
    clock.set_wall(step_start)
    shown = KARIS_PHONE.show(bound(step_start), step_start)
    assert scan(site, shown).decision is m.Decision.GRANT
    clock.advance(2 * TIME_STEP_SECONDS - 1)  # the last second of the next step: still taken
    assert scan(site, shown).decision is m.Decision.GRANT
    clock.advance(1)
    assert scan(site, shown).reason is R.PHONE_PROOF_STALE


# --- commands ----------------------------------------------------------------------------------------------


def unlock(now: datetime, **changes: object) -> m.Command:
    values: dict[str, object] = {
        "command_id": uuid.uuid4(),
        "site": "heggedal",
        "action": m.Action.UNLOCK,
        "nonce": secrets.token_hex(16),
        "issued_at": now,
        "expires_at": now + timedelta(seconds=30),
        "issued_by": "vaktmester Vidar",
        "reason": "leverandør",
        "door": DOOR,
        "duration_seconds": 5,
    }
    return m.Command(**(values | changes))  # type: ignore[arg-type]


STALE_COMMANDS: list[tuple[str, Callable[[datetime], m.Command], str]] = [
    (
        "expired 61 s ago",
        lambda now: unlock(
            now, issued_at=now - timedelta(seconds=91), expires_at=now - timedelta(seconds=61)
        ),
        "expired",
    ),
    (
        "issued 61 s ahead of the agent's clock",
        lambda now: unlock(
            now, issued_at=now + timedelta(seconds=61), expires_at=now + timedelta(seconds=91)
        ),
        "issued_in_future",
    ),
    (
        "valid for a day",
        lambda now: unlock(now, expires_at=now + timedelta(days=1)),
        "validity_too_long",
    ),
    ("for another site", lambda now: unlock(now, site="holmen"), "wrong_site"),
]


def results(site: Site) -> list[tuple[m.CommandOutcome, str]]:
    return [(r.outcome, r.reason.split(":")[0]) for r in link(site).results]


@pytest.mark.parametrize(
    ("make", "refusal"),
    [(make, why) for _name, make, why in STALE_COMMANDS],
    ids=[n for n, *_ in STALE_COMMANDS],
)
def test_a_stale_command_is_refused(
    site: Site, clock: ManualClock, make: Callable[[datetime], m.Command], refusal: str
) -> None:
    site.feed(Received(make(clock.now())))
    assert results(site) == [(m.CommandOutcome.REFUSED, refusal)]
    assert never_unlocked(site)
    refused = [e for e in link(site).events if isinstance(e, m.SystemEvent) and e.kind == "command-refused"]
    assert len(refused) == 1  # the caretaker sees it in the event list too


def test_a_replayed_command_is_refused_also_under_a_new_id_and_after_a_restart(
    tmp_path: Path, clock: ManualClock
) -> None:
    command = unlock(clock.now())
    site = open_site(tmp_path / "agent", clock)
    try:
        site.feed(Received(command), Received(command), Received(unlock(clock.now(), nonce=command.nonce)))
        assert results(site) == [
            (m.CommandOutcome.DONE, ""),
            (m.CommandOutcome.REFUSED, "replayed"),
            (m.CommandOutcome.REFUSED, "replayed"),
        ]
        assert site.doors[DOOR].unlocked.count(True) == 1
    finally:
        site.agent.close()
    restarted = Site(tmp_path / "agent", clock, FakeLink())  # the same data directory: the nonces are kept
    try:
        restarted.feed(Received(command))
        assert results(restarted) == [(m.CommandOutcome.REFUSED, "replayed")]
        assert never_unlocked(restarted)
    finally:
        restarted.agent.close()


# --- PIN brute force ---------------------------------------------------------------------------------------


def test_an_hour_of_pin_guessing_gets_five_guesses_per_quarter_and_an_alarm_each_time(tmp_path: Path) -> None:
    """Someone with Kari's card tries a PIN every 30 seconds for an hour, from 0000 upwards, and types her
    real PIN (1234) whenever the card is locked. Five wrong PINs lock the card for 15 minutes; while locked no
    PIN is even asked for. So at most 5 guesses per quarter of an hour reach the PIN check (480 a day: half
    of the 10,000 four-digit PINs take ten days on average, with an alarm to the caretaker every quarter)."""
    clock = ManualClock(MONDAY_NOON)
    site = open_site(tmp_path / "agent", clock)
    try:
        for attempt in range(120):
            site.tap(KARI_UID)
            pin = f"{attempt:04d}" if site.agent.awaiting_pin(DOOR) else "1234"
            site.type(pin + "#")
            site.wait(30, step=15)
        reasons = [e.reason for e in link(site).access()]
        alarms = [a for a in link(site).alarms() if a.kind is m.AlarmKind.PIN_BRUTE_FORCE]
    finally:
        site.agent.close()
    assert m.Reason.SCHEDULE not in reasons and never_unlocked(site)
    assert set(reasons) == {R.WRONG_PIN, R.PIN_LOCKED}
    assert reasons.count(R.WRONG_PIN) == 20  # 5 in each of the four quarters of the hour
    assert reasons.count(R.PIN_LOCKED) == 100  # every other tap: refused before any PIN is asked
    assert len(alarms) == 4 and all(a.door == DOOR and a.raised for a in alarms)


# --- the kiosk's socket ------------------------------------------------------------------------------------


def test_a_line_that_is_not_utf8_does_not_silence_the_kiosk(tmp_path: Path) -> None:
    """Found by tests/test_fuzz_decoders.py: this line ended the agent's kiosk server thread, and with it
    every check-in at the torg until the agent was restarted."""
    path = tmp_path / "kiosk.sock"

    def agent(_request: k.Request) -> k.KioskReply:
        return k.ErrorReply(message="served")

    server = KioskServer(path, agent)
    server.start()
    answers = []
    try:
        for line in (b'{"type":"check_in","method":"qr","text":"\xff"}\n', k.encode(k.TodayRequest())):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as kiosk:
                kiosk.settimeout(5)
                kiosk.connect(str(path))
                kiosk.sendall(line)
                reply = k.decode_reply(kiosk.makefile("rb").readline())
            assert isinstance(reply, k.ErrorReply)
            answers.append(reply.message)
        assert answers[0].startswith("not a valid kiosk request")
        assert answers[1] == "served"  # the next kiosk was answered by the agent
    finally:
        server.stop()
