"""The outbox between the journal and MQTT: a day offline, then every event reaches central."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from controller.clock import ManualClock
from controller.journal import Journal
from controller.outbox import Outbox
from protocol import codec
from protocol import messages as m

EVENING = datetime(2026, 11, 23, 19, 30, tzinfo=UTC)


class Link:
    def __init__(self) -> None:
        self.connected = False
        self.published: list[uuid.UUID] = []

    def publish_event(self, payload: bytes) -> None:
        event = codec.decode(payload, (m.AccessEvent, m.AlarmEvent, m.SystemEvent))
        assert isinstance(event, m.AccessEvent | m.AlarmEvent | m.SystemEvent)
        self.published.append(event.event_id)


def journal_with(tmp_path: Path, count: int) -> tuple[Journal, list[uuid.UUID]]:
    journal = Journal(tmp_path / "journal.db", site="heggedal", agent="heggedal-pi-1")
    events = [journal.system(EVENING, kind="passage-counted", door="hovedinngang") for _ in range(count)]
    ids = [event.event_id for event in events]
    return journal, ids


def test_a_backlog_from_a_day_offline_goes_out_in_batches_after_the_reconnect(tmp_path: Path) -> None:
    journal, ids = journal_with(tmp_path, 2500)
    clock, link = ManualClock(EVENING), Link()
    outbox = Outbox(journal, clock, batch=1000)
    outbox.link = link
    outbox.pump()
    assert link.published == []  # offline: nothing goes, nothing is dropped
    link.connected = True
    outbox.reconnected()
    assert link.published == ids[:1000]
    outbox.pump()
    outbox.pump()
    assert link.published == ids  # oldest first, each once
    assert outbox.acknowledged(ids[:2000]) == 2000
    assert journal.pending_count() == 500
    clock.advance(31)
    link.published.clear()
    outbox.pump()
    assert link.published == ids[2000:]  # not acknowledged in time: published again
    journal.close()


def test_a_fresh_event_goes_out_at_once_and_is_not_sent_twice_by_the_walk(tmp_path: Path) -> None:
    journal, _ids = journal_with(tmp_path, 0)
    clock, link = ManualClock(EVENING), Link()
    outbox = Outbox(journal, clock)
    outbox.link = link
    link.connected = True
    event = journal.system(EVENING, kind="agent-started")
    outbox.publish(event)
    outbox.pump()
    assert link.published == [event.event_id]
    journal.close()
