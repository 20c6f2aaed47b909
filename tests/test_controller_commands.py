"""Central's commands at the agent: only a fresh command for this site, seen for the first time, is run."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from controller.commands import (
    NONCE_KEEP,
    CommandGuard,
    CommandRefusal,
    MemoryNonceStore,
    NonceStoreError,
    SqliteNonceStore,
)
from protocol import messages as m

NOW = datetime(2025, 3, 9, 20, 15, tzinfo=UTC)


def command(
    *,
    site: str = "heggedal",
    issued_at: datetime = NOW,
    valid_for: timedelta = timedelta(seconds=30),
    nonce: str | None = None,
) -> m.Command:
    return m.Command(
        command_id=uuid.uuid4(),
        site=site,
        action=m.Action.UNLOCK,
        nonce=nonce or secrets.token_hex(16),
        issued_at=issued_at,
        expires_at=issued_at + valid_for,
        issued_by="Kari Vaktmester",
        reason="a resident is locked out",
        door="hovedinngang",
        duration_seconds=10,
    )


@pytest.fixture
def guard(tmp_path: Path) -> CommandGuard:
    return CommandGuard("heggedal", remember=SqliteNonceStore(tmp_path / "nonces.sqlite"))


def test_a_fresh_command_is_accepted_once_and_its_replay_refused(guard: CommandGuard) -> None:
    cmd = command()
    assert guard.check(cmd, NOW + timedelta(seconds=2)).accepted
    again = guard.check(cmd, NOW + timedelta(seconds=3))
    assert again.refusal is CommandRefusal.REPLAYED
    assert guard.check(command(), NOW + timedelta(seconds=3)).accepted  # another nonce is fine


def test_a_replay_is_refused_after_the_agent_restarts(tmp_path: Path) -> None:
    cmd = command()
    first = SqliteNonceStore(tmp_path / "nonces.sqlite")
    assert CommandGuard("heggedal", remember=first).check(cmd, NOW).accepted
    first.close()
    restarted = CommandGuard("heggedal", remember=SqliteNonceStore(tmp_path / "nonces.sqlite"))
    assert restarted.check(cmd, NOW + timedelta(seconds=5)).refusal is CommandRefusal.REPLAYED


def test_a_replay_with_a_new_command_id_but_the_same_nonce_is_refused(guard: CommandGuard) -> None:
    cmd = command()
    assert guard.check(cmd, NOW).accepted
    forged = msgspec.structs.replace(cmd, command_id=uuid.uuid4())
    assert guard.check(forged, NOW).refusal is CommandRefusal.REPLAYED


def test_expiry_allows_the_clock_skew_and_no_more(guard: CommandGuard) -> None:
    skew = guard.max_skew
    cmd = command(valid_for=timedelta(seconds=30))
    late = guard.check(cmd, cmd.expires_at + skew)
    assert late.refusal is CommandRefusal.EXPIRED
    assert late.detail == "expired 60 s ago"
    assert guard.check(cmd, cmd.expires_at + skew - timedelta(seconds=1)).accepted


def test_a_command_from_the_future_is_refused_beyond_the_skew(guard: CommandGuard) -> None:
    ahead = command(issued_at=NOW + timedelta(seconds=61))
    verdict = guard.check(ahead, NOW)
    assert verdict.refusal is CommandRefusal.ISSUED_IN_FUTURE
    assert verdict.detail == "issued 61 s ahead of the agent's clock"
    assert guard.check(command(issued_at=NOW + timedelta(seconds=59)), NOW).accepted


def test_an_agent_clock_at_1970_refuses_every_command(guard: CommandGuard) -> None:
    unset = datetime(1970, 1, 1, 0, 0, 42, tzinfo=UTC)
    assert guard.check(command(), unset).refusal is CommandRefusal.ISSUED_IN_FUTURE


def test_a_command_valid_for_too_long_is_refused(guard: CommandGuard) -> None:
    verdict = guard.check(command(valid_for=timedelta(minutes=10, seconds=1)), NOW)
    assert verdict.refusal is CommandRefusal.VALIDITY_TOO_LONG
    assert verdict.detail == "valid for 601 s, at most 600 s accepted"
    assert guard.check(command(valid_for=timedelta(minutes=10)), NOW).accepted


def test_a_command_for_another_site_is_refused(guard: CommandGuard) -> None:
    verdict = guard.check(command(site="holmen"), NOW)
    assert verdict.refusal is CommandRefusal.WRONG_SITE
    assert verdict.detail == "for site 'holmen', this is 'heggedal'"


def test_a_refused_command_does_not_use_up_its_nonce(guard: CommandGuard) -> None:
    early = command(issued_at=NOW + timedelta(minutes=5))
    assert guard.check(early, NOW).refusal is CommandRefusal.ISSUED_IN_FUTURE
    assert guard.check(early, NOW + timedelta(minutes=5)).accepted


def test_nonces_are_forgotten_long_after_their_command_could_no_longer_pass(tmp_path: Path) -> None:
    store = SqliteNonceStore(tmp_path / "nonces.sqlite")
    guard = CommandGuard("heggedal", remember=store)
    for i in range(5):
        assert guard.check(command(issued_at=NOW + timedelta(seconds=i)), NOW + timedelta(seconds=i)).accepted
    assert store.count() == 5
    expired = NOW + timedelta(seconds=30 + 60 + 3)  # expiry + skew passed for the first four: still kept
    assert guard.check(command(issued_at=expired), expired).accepted
    assert store.count() == 6
    later = NOW + NONCE_KEEP + timedelta(seconds=30 + 60 + 3)
    assert guard.check(command(issued_at=later), later).accepted
    assert store.count() == 3


def test_a_replay_is_refused_after_the_clock_jumped_a_day_ahead_and_back(tmp_path: Path) -> None:
    guard = CommandGuard("heggedal", remember=SqliteNonceStore(tmp_path / "nonces.sqlite"))
    unlock = command()
    assert guard.check(unlock, NOW).accepted
    ahead = NOW + timedelta(days=1)  # a bad time answer; another command arrives meanwhile
    assert guard.check(command(issued_at=ahead), ahead).accepted
    back = NOW + timedelta(seconds=10)  # the clock is right again, inside the first command's window
    assert guard.check(unlock, back).refusal is CommandRefusal.REPLAYED


def test_the_memory_store_refuses_replays_and_forgets_too() -> None:
    store = MemoryNonceStore()
    guard = CommandGuard("heggedal", remember=store)
    cmd = command()
    assert guard.check(cmd, NOW).accepted
    assert guard.check(cmd, NOW).refusal is CommandRefusal.REPLAYED
    store.forget_before(NOW + timedelta(hours=1))
    assert guard.check(cmd, NOW + timedelta(hours=1)).refusal is CommandRefusal.EXPIRED


def test_a_refusal_becomes_the_result_central_records(guard: CommandGuard) -> None:
    cmd = command()
    guard.check(cmd, NOW)
    verdict = guard.check(cmd, NOW)
    result = verdict.result(cmd, NOW)
    assert (result.command_id, result.outcome, result.site) == (
        cmd.command_id,
        m.CommandOutcome.REFUSED,
        "heggedal",
    )
    assert result.reason.startswith("replayed: nonce ")
    with pytest.raises(ValueError, match="accepted"):
        guard.check(command(), NOW).result(cmd, NOW)


def test_a_naive_time_is_a_programming_error(guard: CommandGuard) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        guard.check(command(), NOW.replace(tzinfo=None))


def test_an_unusable_nonce_file_is_one_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "nonces.sqlite"
    broken.write_bytes(b"this is not a database" * 100)
    with pytest.raises(NonceStoreError, match=r"cannot use the command nonce file .*nonces\.sqlite: "):
        SqliteNonceStore(broken)
