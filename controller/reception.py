"""The agent's front desk: card taps, PIN keys and scanned codes in, verdicts out.

It holds what a conversation at a reader needs between inputs (the card waiting for its PIN, wrong-PIN
counts) and asks the decision engine; it drives no door and writes no event. The agent executes what it
returns: an `Outcome` (open or not, journal it), a `PinPrompt` (show "type your PIN"), a `CardLocked`
(raise the brute-force alarm), and for registering a card with the one-time code from the phone page an
`EnrolmentArmed` (show "tap your card"), an `EnrolmentTap` (send the card to central) or an `EnrolmentEnded`.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum, auto

import structlog

from controller.clock import Clock
from controller.decide import (
    ClockPolicy,
    HolderRecords,
    SiteView,
    Verdict,
    decide_card,
    decide_token,
    denied,
)
from controller.inputs import CardPresented, CodeScanned, KeyPressed
from controller.pin import PinEntry, PinGuard, PinHashError, PinOutcome, verify_pin
from controller.replica import Replica
from controller.uid import CardUidError, card_uid_hash
from protocol import messages as m
from protocol.holder import PRESENTATION_PREFIX
from protocol.keys import PublicKeySet
from protocol.token import PREFIX as TOKEN_PREFIX

log = structlog.get_logger("controller.reception")


@dataclass(frozen=True)
class Outcome:
    door: str
    verdict: Verdict
    method: m.Method


@dataclass(frozen=True)
class PinPrompt:
    door: str
    credential_ref: str


@dataclass(frozen=True)
class CardLocked:
    """Too many wrong PINs: the card is locked for a while and a person should know."""

    door: str
    credential_ref: str


@dataclass(frozen=True)
class EnrolmentArmed:
    """A one-time code was typed: the next card tapped at `door` (within the arming time) is registered."""

    door: str


@dataclass(frozen=True)
class EnrolmentTap:
    """The card tapped at an armed door: send it to central with the code; it opens nothing."""

    door: str
    code: str = field(repr=False)
    uid_hash: str = field(repr=False)


@dataclass(frozen=True)
class EnrolmentEnded:
    """The arming ran out or a key disarmed it: the reader goes back to rest."""

    door: str


Result = Outcome | PinPrompt | CardLocked | EnrolmentArmed | EnrolmentTap | EnrolmentEnded


@dataclass
class _Waiting:
    credential: m.Credential = field(repr=False)
    bookings: list[m.Booking] = field(repr=False)


class Reception:
    """One PIN entry per door, one PIN guard for the site. `view` and `keys` follow central's messages."""

    def __init__(
        self,
        doors: Iterable[str],
        replica: Replica,
        clock: Clock,
        uid_hash_key: bytes,
        *,
        clock_policy: ClockPolicy,
        clock_trusted: Callable[[datetime], bool],
        locked_down: Callable[[str], bool],
    ) -> None:
        self._replica = replica
        self._clock = clock
        self._uid_key = uid_hash_key
        self._policy = clock_policy
        self._clock_trusted = clock_trusted
        self._locked_down = locked_down
        self.view: SiteView | None = None
        self.keys: PublicKeySet | None = None
        self.pin_guard = PinGuard()
        self._entries = {door: PinEntry() for door in doors}
        self._waiting: dict[str, _Waiting] = {}
        self._enrolments = {door: EnrolmentKeys() for door in self._entries}

    def awaiting_pin(self, door: str) -> bool:
        return door in self._waiting

    # --- cards and PINs ----------------------------------------------------------------------------------

    def card(self, tap: CardPresented) -> list[Result]:
        door = tap.reader
        if door not in self._entries:
            log.warning("reception.unknown_reader", reader=door)
            return []
        enrol_code = self._enrolments[door].take(self._clock.monotonic())
        try:
            uid_hash = card_uid_hash(tap.uid, self._uid_key)
        except CardUidError:
            return [Outcome(door, denied(m.Reason.UNKNOWN_CREDENTIAL), m.Method.CARD)]
        if enrol_code is not None:  # armed by a one-time code: register this card, open nothing
            return [EnrolmentTap(door, enrol_code, uid_hash)]
        credential = self._replica.card(uid_hash)
        bookings = self._replica.bookings_for(credential.person, self._clock.now()) if credential else []
        verdict = self._decide_card(door, credential, bookings, pin_ok=None)
        if verdict.needs_pin and credential is not None:
            self._entries[door].start(credential.ref, door, self._clock.monotonic())
            self._waiting[door] = _Waiting(credential, bookings)
            return [PinPrompt(door, credential.ref)]
        method = m.Method.CARD_PIN if credential and credential.pin_hash else m.Method.CARD
        return [Outcome(door, verdict, method)]

    def key(self, press: KeyPressed) -> list[Result]:
        door = press.reader
        waiting = self._waiting.get(door)
        if waiting is None:
            return self._enrolment_key(door, press.key)
        step = self._entries[door].key(press.key, self._clock.monotonic())
        if step.outcome is PinOutcome.TIMED_OUT:
            return self._timed_out(door)
        if step.submitted and step.pin is not None:
            del self._waiting[door]
            return self._check_pin(door, waiting, step.pin)
        return []

    def expire(self) -> list[Result]:
        """PIN entries nobody finished in time."""
        mono = self._clock.monotonic()
        late = [door for door in self._waiting if self._entries[door].expired(mono)]
        results = [result for door in late for result in self._timed_out(door)]
        return results + [EnrolmentEnded(d) for d, keys in self._enrolments.items() if keys.expired(mono)]

    def _enrolment_key(self, door: str, key: str) -> list[Result]:
        """A key while no PIN is awaited: maybe part of '*' + one-time code + '#'."""
        keys = self._enrolments.get(door)
        if keys is None:
            return []
        step = keys.key(key, self._clock.monotonic())
        if step is EnrolStep.ARMED:
            return [EnrolmentArmed(door)]
        return [EnrolmentEnded(door)] if step is EnrolStep.DISARMED else []

    def _timed_out(self, door: str) -> list[Result]:
        waiting = self._waiting.pop(door, None)
        self._entries[door].cancel()
        if waiting is None:
            return []
        return [Outcome(door, denied(m.Reason.PIN_TIMEOUT, waiting.credential), m.Method.CARD_PIN)]

    def _check_pin(self, door: str, waiting: _Waiting, pin: str) -> list[Result]:
        credential = waiting.credential
        try:
            pin_ok = credential.pin_hash is not None and verify_pin(credential.pin_hash, pin)
        except PinHashError as exc:  # central's data is wrong, not the resident's PIN: do not count it
            log.error("reception.pin_hash_unusable", credential=credential.ref, error=str(exc))
            return [Outcome(door, denied(m.Reason.WRONG_PIN, credential), m.Method.CARD_PIN)]
        verdict = self._decide_card(door, credential, waiting.bookings, pin_ok=pin_ok)  # before counting
        results: list[Result] = [Outcome(door, verdict, m.Method.CARD_PIN)]
        if pin_ok:
            self.pin_guard.succeeded(credential.ref)
        elif self.pin_guard.failed(credential.ref, self._clock.monotonic()):
            results.append(CardLocked(door, credential.ref))
        return results

    def _decide_card(
        self, door: str, credential: m.Credential | None, bookings: list[m.Booking], *, pin_ok: bool | None
    ) -> Verdict:
        if self.view is None:  # no configuration yet: nobody can be judged
            return denied(m.Reason.UNKNOWN_CREDENTIAL, credential)
        now = self._clock.now()
        locked = credential is not None and self.pin_guard.locked(credential.ref, self._clock.monotonic())
        return decide_card(
            self.view,
            door,
            credential,
            bookings,
            now,
            pin_ok=pin_ok,
            clock_trusted=self._clock_trusted(now),
            clock_policy=self._policy,
            lockdown=self._locked_down(door),
            pin_locked=locked,
        )

    # --- phone tokens ------------------------------------------------------------------------------------

    def code(self, scan: CodeScanned) -> list[Result]:
        door = scan.reader
        if door not in self._entries:
            log.warning("reception.unknown_reader", reader=door)
            return []
        return [Outcome(door, self._decide_token(door, scan.text), m.Method.PHONE_QR)]

    def _decide_token(self, door: str, text: str) -> Verdict:
        if self.view is None or not text.upper().startswith((TOKEN_PREFIX, PRESENTATION_PREFIX)):
            return denied(m.Reason.TOKEN_INVALID)
        if self.keys is None:
            return denied(m.Reason.TOKEN_UNKNOWN_KEY)
        now = self._clock.now()
        return decide_token(
            self.view,
            door,
            text,
            self.keys,
            _Revoked(self._replica),
            now,
            clock_trusted=self._clock_trusted(now),
            lockdown=self._locked_down(door),
            holder_records=lambda person: self._holder_records(person, now),
        )

    def _holder_records(self, person: str, now: datetime) -> HolderRecords:
        """What a phone-bound token's holder is judged by: their credentials and bookings in the replica."""
        return self._replica.credentials_of(person), self._replica.bookings_for(person, now)


class _Revoked(Container[str]):
    """`token_id in revoked` answered by the replica's revocation list."""

    def __init__(self, replica: Replica) -> None:
        self._replica = replica

    def __contains__(self, token_id: object) -> bool:
        return isinstance(token_id, str) and self._replica.is_revoked(token_id)


# --- card registration with a one-time code -----------------------------------------------------------------

ENROL_CODE_DIGITS = 8
ENROL_ARMED_S = 30.0


class EnrolStep(Enum):
    NOTHING = auto()
    ARMED = auto()
    DISARMED = auto()


class EnrolmentKeys:
    """One reader's keys while no PIN is awaited: '*', the 8-digit code from the phone, '#' arms card
    registration for `armed_s`. Any other sequence, taking longer than `armed_s` to type it, a key pressed
    while armed, or the time running out simply disarms. Pure: keys and monotonic time in."""

    def __init__(self, armed_s: float = ENROL_ARMED_S) -> None:
        self.armed_s = armed_s
        self._typed: str | None = None  # digits since '*', None when no sequence is being typed
        self._started = 0.0
        self._code: str | None = None
        self._until = 0.0

    def key(self, key: str, mono: float) -> EnrolStep:
        was_armed = self._code is not None
        self._code = None
        step = self._step(key, mono)
        return EnrolStep.DISARMED if was_armed and step is EnrolStep.NOTHING else step

    def _step(self, key: str, mono: float) -> EnrolStep:
        if key == "*":
            self._typed, self._started = "", mono
            return EnrolStep.NOTHING
        typed, self._typed = self._typed, None
        if typed is None or mono - self._started > self.armed_s:
            return EnrolStep.NOTHING
        if key.isdigit() and len(key) == 1 and len(typed) < ENROL_CODE_DIGITS:
            self._typed = typed + key
        elif key == "#" and len(typed) == ENROL_CODE_DIGITS:
            self._code, self._until = typed, mono + self.armed_s
            return EnrolStep.ARMED
        return EnrolStep.NOTHING

    def take(self, mono: float) -> str | None:
        """The armed code for the card just tapped (once), or None; a tap also ends a half-typed code."""
        code, self._code, self._typed = self._code, None, None
        return code if code is not None and mono <= self._until else None

    def expired(self, mono: float) -> bool:
        """True once when the arming has run out (it is then disarmed)."""
        if self._code is not None and mono > self._until:
            self._code = None
            return True
        return False
