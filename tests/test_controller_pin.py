"""PIN entry at the keypad, the wrong-PIN lock-out, PIN hashes, and card UID hashes equal to central's."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from central import security
from controller.pin import PinEntry, PinGuard, PinHashError, PinOutcome, verify_pin
from controller.uid import CardUidError, card_uid_hash

KEY = b"heggedal-uid-hash-key-0123456789"


def typed(entry: PinEntry, keys: str, start: float = 0.0, gap: float = 1.0) -> list[PinOutcome]:
    return [entry.key(k, start + gap * (n + 1)).outcome for n, k in enumerate(keys)]


# --- entry ------------------------------------------------------------------------------------------------


def test_a_resident_types_her_pin_and_presses_enter() -> None:
    entry = PinEntry()
    entry.start("c1", "hovedinngang", now=0.0)
    assert typed(entry, "4711") == [PinOutcome.DIGIT] * 4
    step = entry.key("#", 5.0)
    assert step.submitted and step.pin == "4711"
    assert (step.credential_ref, step.door) == ("c1", "hovedinngang")
    assert not entry.active  # the next key belongs to nobody
    assert entry.key("1", 6.0).outcome is PinOutcome.IGNORED


def test_star_clears_what_was_typed() -> None:
    entry = PinEntry()
    entry.start("c1", "hovedinngang", now=0.0)
    typed(entry, "99")
    assert entry.key("*", 3.0).outcome is PinOutcome.CLEARED
    typed(entry, "4711", start=3.0)
    assert entry.key("#", 9.0).pin == "4711"


def test_at_most_eight_digits_are_kept() -> None:
    entry = PinEntry()
    entry.start("c1", "hovedinngang", now=0.0)
    assert typed(entry, "123456789")[-1] is PinOutcome.IGNORED
    assert entry.key("#", 10.0).pin == "12345678"


def test_enter_before_any_digit_and_unknown_keys_are_ignored() -> None:
    entry = PinEntry()
    entry.start("c1", "hovedinngang", now=0.0)
    assert typed(entry, "#A?") == [PinOutcome.IGNORED] * 3
    assert entry.active


def test_keys_without_a_card_are_ignored() -> None:
    assert PinEntry().key("1", 0.0).outcome is PinOutcome.IGNORED


def test_a_pause_of_15_seconds_times_the_entry_out() -> None:
    entry = PinEntry()
    entry.start("c1", "hovedinngang", now=100.0)
    entry.key("4", 101.0)
    assert not entry.expired(115.9)
    assert entry.expired(116.0)
    step = entry.key("7", 116.0)
    assert (step.outcome, step.credential_ref) == (PinOutcome.TIMED_OUT, "c1")
    assert not entry.active and not entry.expired(200.0)


def test_nobody_typing_after_the_tap_times_out_too() -> None:
    entry = PinEntry()
    entry.start("c1", "hovedinngang", now=100.0)
    assert entry.expired(115.0)


def test_slow_typing_is_fine_but_the_whole_pin_takes_at_most_a_minute() -> None:
    entry = PinEntry()
    entry.start("c1", "hovedinngang", now=0.0)
    assert typed(entry, "1234", gap=14.0) == [PinOutcome.DIGIT] * 4  # last key at 56 s
    assert entry.key("#", 60.0).outcome is PinOutcome.TIMED_OUT


def test_a_new_tap_starts_a_new_entry() -> None:
    entry = PinEntry()
    entry.start("c1", "hovedinngang", now=0.0)
    typed(entry, "12")
    entry.start("c2", "bibliotek", now=5.0)
    typed(entry, "9876", start=5.0)
    step = entry.key("#", 11.0)
    assert (step.pin, step.credential_ref, step.door) == ("9876", "c2", "bibliotek")


def test_the_pin_never_shows_in_a_repr() -> None:
    entry = PinEntry()
    entry.start("c1", "hovedinngang", now=0.0)
    typed(entry, "4711")
    assert "4711" not in repr(entry) and "c1" in repr(entry)
    step = entry.key("#", 5.0)
    assert "4711" not in repr(step) and "4711" not in str(step)


def test_timeouts_must_make_sense() -> None:
    with pytest.raises(ValueError, match="idle_seconds"):
        PinEntry(idle_seconds=30.0, total_seconds=10.0)


# --- lock-out ---------------------------------------------------------------------------------------------


def test_five_wrong_pins_in_a_row_lock_the_card_for_15_minutes() -> None:
    guard = PinGuard()
    assert [guard.failed("c1", float(n)) for n in range(5)] == [False] * 4 + [True]
    assert guard.locked("c1", 5.0)
    assert guard.locked("c1", 4.0 + 899.0)
    assert not guard.locked("c1", 4.0 + 900.0)
    assert not guard.locked("c2", 5.0)  # another card is not affected


def test_after_the_lock_the_count_starts_again() -> None:
    guard = PinGuard()
    for n in range(5):
        guard.failed("c1", float(n))
    assert [guard.failed("c1", 1000.0 + n) for n in range(5)] == [False] * 4 + [True]


def test_failing_while_locked_does_not_raise_a_second_alarm() -> None:
    guard = PinGuard()
    for n in range(5):
        guard.failed("c1", float(n))
    assert not guard.failed("c1", 10.0)


def test_the_right_pin_forgives_earlier_mistakes() -> None:
    guard = PinGuard()
    for n in range(4):
        guard.failed("c1", float(n))
    guard.succeeded("c1")
    assert [guard.failed("c1", 10.0 + n) for n in range(5)] == [False] * 4 + [True]


def test_old_mistakes_are_forgotten_after_an_hour() -> None:
    guard = PinGuard()
    for n in range(4):
        guard.failed("c1", float(n))
    assert not guard.failed("c1", 3.0 + 3600.0)
    assert not guard.locked("c1", 3.0 + 3600.0)


def test_limits_are_configurable_and_prune_drops_finished_locks() -> None:
    guard = PinGuard(max_failures=3, lock_seconds=60.0)
    assert [guard.failed("c1", 0.0) for _ in range(3)] == [False, False, True]
    assert guard.locked("c1", 59.0)
    guard.prune(60.0)
    assert repr(guard) == "PinGuard(tracking=0)"
    with pytest.raises(ValueError, match="max_failures"):
        PinGuard(max_failures=0)


# --- PIN hashes ---------------------------------------------------------------------------------------------


def test_a_pin_hashed_by_central_verifies_on_the_agent() -> None:
    stored = security.hash_pin("4711")
    assert verify_pin(stored, "4711")
    assert not verify_pin(stored, "4712")
    assert not verify_pin(stored, "47")  # too short to be anyone's PIN
    assert not verify_pin(stored, "٤٧١١")  # Arabic-Indic digits are not keypad digits


def test_a_broken_stored_hash_is_a_data_fault_not_a_wrong_pin() -> None:
    with pytest.raises(PinHashError, match="not a valid argon2 hash"):
        verify_pin("$argon2id$v=19$garbage", "4711")


def test_a_hash_asking_for_gigabytes_is_refused_before_hashing() -> None:
    parts = security.hash_pin("4711").split("$")  # ['', 'argon2id', 'v=19', 'm=..,t=..,p=..', salt, hash]
    parts[3] = "m=4194304,t=3,p=4"  # 4 GiB
    greedy = "$".join(parts)
    with pytest.raises(PinHashError, match="more memory or time"):
        verify_pin(greedy, "4711")


# --- card UID hashes ----------------------------------------------------------------------------------------

SEED_UIDS = ["04A1B2C3D4E5F6", "04B2C3D4E5F6A7", "04F6A7B8C9DAEB", "DEADBEEF", "0411223344556677889900AABB"]


@pytest.mark.parametrize("uid", SEED_UIDS)
def test_the_agent_hashes_a_card_uid_exactly_as_central(uid: str) -> None:
    assert card_uid_hash(bytes.fromhex(uid), KEY) == security.card_uid_hash(uid, KEY)


@given(uid=st.binary(min_size=4, max_size=16), key=st.binary(min_size=16, max_size=64))
def test_uid_hashes_agree_with_central_for_any_uid_and_key(uid: bytes, key: bytes) -> None:
    assert card_uid_hash(uid, key) == security.card_uid_hash(uid, key)


def test_uid_hashes_depend_on_the_key() -> None:
    uid = bytes.fromhex("04A1B2C3D4E5F6")
    assert card_uid_hash(uid, KEY) != card_uid_hash(uid, KEY[::-1])


def test_a_misread_uid_and_a_short_key_are_refused() -> None:
    with pytest.raises(CardUidError, match="4–16 bytes, got 3"):
        card_uid_hash(b"\x04\xa1\xb2", KEY)
    with pytest.raises(CardUidError, match="got 17"):
        card_uid_hash(bytes(17), KEY)
    with pytest.raises(ValueError, match="at least 16 bytes"):
        card_uid_hash(bytes(7), b"short")
