"""PIN entry at a keypad, the wrong-PIN lock-out, and checking a PIN against its stored argon2 hash.

Pure state on injected monotonic seconds (`Clock.monotonic()`), so tests can live through a lock-out without
waiting. Nothing here keeps or shows a PIN longer than the entry that collects it: reprs hide the digits.

Timeouts (`PinEntry`): the PIN must be finished within 15 s of the card tap or of the last key, and within
60 s in all. The idle limit suits someone looking for the keys, the total limit stops a half-typed PIN from
holding a reader for ever. After either, the next key is refused as timed out and the card must be tapped
again; the caller polls `expired()` to report PIN_TIMEOUT when nobody types at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MAX_PIN_DIGITS = 8
MIN_PIN_DIGITS = 4
DEFAULT_IDLE_SECONDS = 15.0
DEFAULT_TOTAL_SECONDS = 60.0
DEFAULT_MAX_FAILURES = 5
DEFAULT_LOCK_SECONDS = 15 * 60.0
DEFAULT_FORGET_SECONDS = 60 * 60.0
# A stored hash asking for more than this would exhaust a Raspberry Pi's memory: treated as malformed.
MAX_HASH_MEMORY_KIB = 256 * 1024
MAX_HASH_TIME_COST = 16
MAX_HASH_PARALLELISM = 16

CLEAR_KEY = "*"
SUBMIT_KEY = "#"


class PinOutcome(StrEnum):
    """What one key press did."""

    DIGIT = "digit"  # a digit was added
    CLEARED = "cleared"  # '*': the digits typed so far are gone
    SUBMITTED = "submitted"  # '#': the PIN is in PinStep.pin, the entry is over
    TIMED_OUT = "timed_out"  # too late: the entry is over, the card must be tapped again
    IGNORED = "ignored"  # no entry in progress, a 9th digit, '#' before any digit, or an unknown key


@dataclass(frozen=True, slots=True)
class PinStep:
    """The outcome of a key press, for the entry started for `credential_ref` at `door`."""

    outcome: PinOutcome
    credential_ref: str | None = None
    door: str | None = None
    pin: str | None = field(default=None, repr=False)  # only on SUBMITTED

    @property
    def submitted(self) -> bool:
        return self.outcome is PinOutcome.SUBMITTED


class PinEntry:
    """One reader's keypad: collects up to 8 digits after a card asked for its PIN."""

    __slots__ = (
        "_credential_ref",
        "_digits",
        "_door",
        "_last_key",
        "_started",
        "idle_seconds",
        "total_seconds",
    )

    def __init__(
        self, idle_seconds: float = DEFAULT_IDLE_SECONDS, total_seconds: float = DEFAULT_TOTAL_SECONDS
    ) -> None:
        if not 0 < idle_seconds <= total_seconds:
            raise ValueError("PIN timeouts: need 0 < idle_seconds <= total_seconds")
        self.idle_seconds = idle_seconds
        self.total_seconds = total_seconds
        self._credential_ref: str | None = None
        self._door: str | None = None
        self._digits = ""
        self._started = 0.0
        self._last_key = 0.0

    def __repr__(self) -> str:
        state = f"for {self._credential_ref} at {self._door}" if self.active else "idle"
        return f"PinEntry({state})"

    @property
    def active(self) -> bool:
        """Whether an entry is in progress (it may have expired; see `expired`)."""
        return self._credential_ref is not None

    @property
    def credential_ref(self) -> str | None:
        return self._credential_ref

    @property
    def door(self) -> str | None:
        return self._door

    def start(self, credential_ref: str, door: str, now: float) -> None:
        """Begin an entry for this card; a previous unfinished entry is dropped."""
        self._credential_ref, self._door, self._digits = credential_ref, door, ""
        self._started = self._last_key = now

    def cancel(self) -> None:
        self._credential_ref, self._door, self._digits = None, None, ""

    def expired(self, now: float) -> bool:
        """Whether the entry in progress ran out of time (idle or total); False when none is in progress."""
        if not self.active:
            return False
        return now - self._last_key >= self.idle_seconds or now - self._started >= self.total_seconds

    def key(self, key: str, now: float) -> PinStep:
        """Feed one key ('0'-'9', '*' clear, '#' submit)."""
        ref, door = self._credential_ref, self._door
        if ref is None:
            return PinStep(PinOutcome.IGNORED)
        if self.expired(now):
            self.cancel()
            return PinStep(PinOutcome.TIMED_OUT, ref, door)
        if key == CLEAR_KEY:
            self._digits, self._last_key = "", now
            return PinStep(PinOutcome.CLEARED, ref, door)
        if key == SUBMIT_KEY:
            if not self._digits:
                return PinStep(PinOutcome.IGNORED, ref, door)
            pin = self._digits
            self.cancel()
            return PinStep(PinOutcome.SUBMITTED, ref, door, pin)
        if len(key) == 1 and "0" <= key <= "9" and len(self._digits) < MAX_PIN_DIGITS:
            self._digits += key
            self._last_key = now
            return PinStep(PinOutcome.DIGIT, ref, door)
        return PinStep(PinOutcome.IGNORED, ref, door)


@dataclass(slots=True)
class _Failures:
    count: int = 0
    last: float = 0.0
    locked_until: float | None = None


class PinGuard:
    """Counts wrong PINs per credential: `max_failures` in a row lock the card for `lock_seconds`.

    A run of failures is forgotten `forget_seconds` after the last one, so a wrong PIN last month does not
    count towards a lock today. State lives in memory only: a restart forgets the counts and locks.
    """

    __slots__ = ("_failures", "forget_seconds", "lock_seconds", "max_failures")

    def __init__(
        self,
        max_failures: int = DEFAULT_MAX_FAILURES,
        lock_seconds: float = DEFAULT_LOCK_SECONDS,
        forget_seconds: float = DEFAULT_FORGET_SECONDS,
    ) -> None:
        if max_failures < 1 or lock_seconds <= 0 or forget_seconds <= 0:
            raise ValueError("PIN guard: max_failures >= 1 and positive lock_seconds and forget_seconds")
        self.max_failures = max_failures
        self.lock_seconds = lock_seconds
        self.forget_seconds = forget_seconds
        self._failures: dict[str, _Failures] = {}

    def __repr__(self) -> str:
        return f"PinGuard(tracking={len(self._failures)})"

    def _current(self, ref: str, now: float) -> _Failures | None:
        entry = self._failures.get(ref)
        if entry is None:
            return None
        over = entry.locked_until is not None and now >= entry.locked_until
        stale = entry.locked_until is None and now - entry.last >= self.forget_seconds
        if over or stale:
            del self._failures[ref]
            return None
        return entry

    def locked(self, ref: str, now: float) -> bool:
        entry = self._current(ref, now)
        return entry is not None and entry.locked_until is not None

    def failed(self, ref: str, now: float) -> bool:
        """Count a wrong PIN; True exactly when this failure locks the card (raise pin_brute_force then)."""
        entry = self._current(ref, now)
        if entry is None:
            entry = self._failures[ref] = _Failures()
        if entry.locked_until is not None:
            return False
        entry.count += 1
        entry.last = now
        if entry.count < self.max_failures:
            return False
        entry.locked_until = now + self.lock_seconds
        return True

    def succeeded(self, ref: str) -> None:
        """The right PIN: the run of failures is forgotten."""
        self._failures.pop(ref, None)

    def prune(self, now: float) -> None:
        """Drop finished locks and forgotten runs (call now and then to bound memory)."""
        for ref in list(self._failures):
            self._current(ref, now)


class PinHashError(ValueError):
    """The stored PIN hash is not a usable argon2 hash: a data fault to report, not a wrong PIN."""


_hasher = PasswordHasher()


def verify_pin(pin_hash: str, pin: str) -> bool:
    """Whether `pin` matches the stored argon2 `pin_hash` (parameters are read from the hash).

    A PIN that is not 4-8 digits simply does not match. A malformed hash, or one asking for more memory or
    time than a Pi can give, raises PinHashError: the caller denies and reports it (it is not the user's
    fault and must not count as a wrong PIN).
    """
    if not (MIN_PIN_DIGITS <= len(pin) <= MAX_PIN_DIGITS and pin.isascii() and pin.isdigit()):
        return False
    try:
        parameters = extract_parameters(pin_hash)
    except (InvalidHashError, ValueError):
        raise PinHashError("stored PIN hash is not a valid argon2 hash") from None
    if (
        parameters.memory_cost > MAX_HASH_MEMORY_KIB
        or parameters.time_cost > MAX_HASH_TIME_COST
        or parameters.parallelism > MAX_HASH_PARALLELISM
    ):
        raise PinHashError("stored PIN hash asks for more memory or time than this agent allows")
    try:
        return _hasher.verify(pin_hash, pin)
    except VerifyMismatchError:
        return False
    except (InvalidHashError, VerificationError):
        raise PinHashError("stored PIN hash is not a valid argon2 hash") from None
