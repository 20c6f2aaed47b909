"""The agent's event journal: nothing is lost, nothing resent once acknowledged, no sequence number reused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.journal import Journal, JournalError, JournalFull, Stamp
from protocol import codec
from protocol import messages as m

SITE = "heggedal"
AGENT = "agent-heggedal"
EVENING = datetime(2026, 11, 22, 20, 15, tzinfo=UTC)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite3"


def open_journal(path: Path, **options: int | float) -> Journal:
    return Journal(path, site=SITE, agent=AGENT, **options)  # type: ignore[arg-type]


def grant(journal: Journal, minute: int = 0) -> m.AccessEvent:
    return journal.access(
        EVENING + timedelta(minutes=minute),
        door="hovedinngang",
        decision=m.Decision.GRANT,
        reason=m.Reason.SCHEDULE,
        method=m.Method.CARD_PIN,
        credential_ref="c1",
        person_ref="p-kari",
    )


def test_the_journal_stamps_each_event_and_keeps_it_until_acknowledged(path: Path) -> None:
    with open_journal(path) as journal:
        tap = grant(journal)
        alarm = journal.alarm(
            EVENING, kind=m.AlarmKind.HELD_OPEN, severity=m.Severity.WARNING, door="hovedinngang"
        )
        started = journal.system(EVENING, kind="agent-started", detail="0.1.0")
        assert [tap.seq, alarm.seq, started.seq] == [1, 2, 3]
        assert len({tap.event_id, alarm.event_id, started.event_id}) == 3
        assert (tap.site, tap.agent, tap.person_ref) == (SITE, AGENT, "p-kari")
        pending = journal.pending()
        assert [event for event, _ in pending] == [tap, alarm, started]
        assert [codec.decode(payload, type(event)) for event, payload in pending] == [tap, alarm, started]
        assert journal.pending_count() == 3


def test_ack_removes_exactly_the_acknowledged_events(path: Path) -> None:
    with open_journal(path) as journal:
        events = [grant(journal, minute) for minute in range(5)]
        removed = journal.ack([events[1].event_id, events[3].event_id, uuid.uuid4()])
        assert removed == 2
        assert [event for event, _ in journal.pending()] == [events[0], events[2], events[4]]
        assert journal.pending_count() == 3
        assert journal.ack([events[1].event_id]) == 0  # a duplicate ack changes nothing
        assert journal.pending_count() == 3


def test_pending_after_seq_skips_what_was_already_published(path: Path) -> None:
    with open_journal(path) as journal:
        events = [grant(journal, minute) for minute in range(5)]
        assert [e for e, _ in journal.pending(limit=2)] == events[:2]
        assert [e for e, _ in journal.pending(after_seq=events[1].seq)] == events[2:]


def test_events_survive_a_restart_and_sequence_numbers_are_never_reused(path: Path) -> None:
    with open_journal(path) as journal:
        first = [grant(journal, minute) for minute in range(3)]
        journal.ack([event.event_id for event in first])
        kept = grant(journal, 3)
    with open_journal(path) as journal:
        assert [event for event, _ in journal.pending()] == [kept]
        journal.ack([kept.event_id])
    with open_journal(path) as journal:
        assert journal.pending_count() == 0
        after_restart = grant(journal, 4)
        assert after_restart.seq == kept.seq + 1 == 5


def test_a_full_journal_refuses_instead_of_dropping_and_keeps_room_for_the_alarm(path: Path) -> None:
    with open_journal(path, max_bytes=128 * 1024) as journal:
        recorded: list[m.AccessEvent] = []
        with pytest.raises(JournalFull, match=r"journal\.sqlite3"):
            for minute in range(10_000):
                recorded.append(grant(journal, minute))
        assert len(recorded) > 50
        assert [event for event, _ in journal.pending(limit=10_000)] == recorded
        refused_seq = journal.next_seq
        disk_low = journal.alarm(EVENING, kind=m.AlarmKind.DISK_LOW, severity=m.Severity.CRITICAL)
        assert disk_low.seq == refused_seq  # the refused event consumed no sequence number
        assert journal.usage().warn
        journal.ack([event.event_id for event in recorded])
        assert grant(journal).seq == disk_low.seq + 1


def test_usage_warns_before_the_bound_and_when_the_disk_runs_low(path: Path) -> None:
    with open_journal(path, max_bytes=256 * 1024, warn_fraction=0.5) as journal:
        usage = journal.usage()
        assert not usage.warn and not usage.disk_low
        while not journal.usage().warn:
            grant(journal)
        usage = journal.usage()
        assert 0.5 <= usage.fraction < 1 and usage.bytes <= usage.max_bytes
    with open_journal(path, min_free_bytes=2**62) as journal:
        assert journal.usage().disk_low


def test_space_freed_by_acks_is_reused_so_the_file_stays_bounded(path: Path) -> None:
    with open_journal(path, max_bytes=128 * 1024) as journal:
        for _ in range(20):
            batch = [grant(journal, minute) for minute in range(100)]
            journal.ack([event.event_id for event in batch])
    assert path.stat().st_size <= 128 * 1024


def test_an_event_central_could_not_decode_is_refused_before_it_is_recorded(path: Path) -> None:
    with open_journal(path) as journal:
        with pytest.raises(ValueError, match="door"):
            journal.access(
                EVENING,
                door="Hoved inngang",
                decision=m.Decision.DENY,
                reason=m.Reason.UNKNOWN_CREDENTIAL,
                method=m.Method.CARD,
            )
        assert journal.pending_count() == 0
        assert grant(journal).seq == 1


def test_an_event_must_carry_the_journals_stamp(path: Path) -> None:
    def forged(stamp: Stamp) -> m.SystemEvent:
        return m.SystemEvent(
            event_id=stamp.event_id, site=SITE, agent=AGENT, seq=stamp.seq + 7, device_time=EVENING, kind="x"
        )

    with open_journal(path) as journal, pytest.raises(ValueError, match="stamp"):
        journal.record(forged)


def test_a_corrupt_journal_is_a_clear_error_naming_the_file(path: Path) -> None:
    path.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(JournalError, match=r"journal\.sqlite3.*not a usable journal database"):
        open_journal(path)


CHILD = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from pathlib import Path
    from controller.journal import Journal

    journal = Journal(Path(sys.argv[1]), site="heggedal", agent="agent-heggedal")
    while True:
        event = journal.system(datetime.now(UTC), kind="passage", door="hovedinngang")
        print(event.seq, event.event_id, flush=True)
    """
)


def run_and_kill(path: Path, appends: int) -> list[tuple[int, uuid.UUID]]:
    """Append in a child process, SIGKILL it mid-stream; return every (seq, id) whose append returned."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    lines: list[str] = []
    try:
        while len(lines) < appends:
            line = child.stdout.readline()
            assert line, f"child ended early: {child.stderr.read() if child.stderr else ''}"
            lines.append(line)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        rest, _ = child.communicate(timeout=10)
    lines += rest.splitlines(keepends=True)
    returned = [line.split() for line in lines if line.endswith("\n")]
    return [(int(seq), uuid.UUID(event_id)) for seq, event_id in returned]


def test_a_kill_9_loses_no_event_whose_append_returned(path: Path) -> None:
    returned = run_and_kill(path, 150)
    returned += run_and_kill(path, 150)
    with open_journal(path) as journal:
        stored = [(event.seq, event.event_id) for event, _ in journal.pending(limit=10_000)]
        seqs = [seq for seq, _ in stored]
        assert seqs == sorted(set(seqs))
        assert set(returned) <= set(stored)
        assert grant(journal).seq > max(seqs)
