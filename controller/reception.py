"""The agent's front desk: card taps, PIN keys and scanned codes in, verdicts out.

It holds what a conversation at a reader needs between inputs (the card waiting for its PIN, wrong-PIN
counts) and asks the decision engine; it drives no door and writes no event. The agent executes what it
returns: an `Outcome` (open or not, journal it), a `PinPrompt` (show "type your PIN"), a `CardLocked`
(raise the brute-force alarm).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from controller.clock import Clock
from controller.decide import ClockPolicy, SiteView, Verdict, decide_card, decide_token, denied
from controller.inputs import CardPresented, CodeScanned, KeyPressed
from controller.pin import PinEntry, PinGuard, PinHashError, PinOutcome, verify_pin
from controller.replica import Replica
from controller.uid import CardUidError, card_uid_hash
from protocol import messages as m
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


Result = Outcome | PinPrompt | CardLocked


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

    def awaiting_pin(self, door: str) -> bool:
        return door in self._waiting

    # --- cards and PINs ----------------------------------------------------------------------------------

    def card(self, tap: CardPresented) -> list[Result]:
        door = tap.reader
        if door not in self._entries:
            log.warning("reception.unknown_reader", reader=door)
            return []
        try:
            uid_hash = card_uid_hash(tap.uid, self._uid_key)
        except CardUidError:
            return [Outcome(door, denied(m.Reason.UNKNOWN_CREDENTIAL), m.Method.CARD)]
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
            return []
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
        return [result for door in late for result in self._timed_out(door)]

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
        if self.view is None or not text.upper().startswith(TOKEN_PREFIX):
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
        )


class _Revoked(Container[str]):
    """`token_id in revoked` answered by the replica's revocation list."""

    def __init__(self, replica: Replica) -> None:
        self._replica = replica

    def __contains__(self, token_id: object) -> bool:
        return isinstance(token_id, str) and self._replica.is_revoked(token_id)
