"""Journal → MQTT: every journaled event reaches central, however long the agent was offline.

A fresh event is published at once when the link is up. On every tick the outbox also walks the journal
forward from a cursor in batches (the backlog after a reconnect, or events journaled while offline) and
publishes what this connection has not carried yet, then publishes again whatever central has not
acknowledged within `resend_after_s`. An event leaves the journal only with central's acknowledgement;
central stores each event once, so publishing twice is harmless and losing one is impossible.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Protocol

from controller.clock import Clock
from controller.journal import Journal
from protocol import codec
from protocol import messages as m

RESEND_AFTER_S = 30.0
BATCH = 1000


class EventLink(Protocol):
    @property
    def connected(self) -> bool: ...

    def publish_event(self, payload: bytes) -> object: ...


class Outbox:
    def __init__(
        self, journal: Journal, clock: Clock, *, batch: int = BATCH, resend_after_s: float = RESEND_AFTER_S
    ) -> None:
        self._journal = journal
        self._clock = clock
        self.batch = batch
        self.resend_after_s = resend_after_s
        self.link: EventLink | None = None
        self._sent: dict[uuid.UUID, float] = {}  # event id -> monotonic time of its last publish
        self._cursor = 0  # the highest agent seq this connection's walk through the journal has reached

    def _online(self) -> bool:
        return self.link is not None and self.link.connected

    def _send(self, event_id: uuid.UUID, payload: bytes, mono: float) -> None:
        assert self.link is not None
        self.link.publish_event(payload)
        self._sent[event_id] = mono

    def publish(self, event: m.JournaledEvent) -> None:
        """A just-journaled event: out now if the link is up (the walk catches it otherwise)."""
        if self._online():
            self._send(event.event_id, codec.encode(event), self._clock.monotonic())

    def pump(self) -> None:
        """One batch of the backlog, then resends of what central has not acknowledged in time."""
        if not self._online():
            return
        mono = self._clock.monotonic()
        for event, payload in self._journal.pending(limit=self.batch, after_seq=self._cursor):
            self._cursor = event.seq
            if event.event_id not in self._sent:
                self._send(event.event_id, payload, mono)
        for event, payload in self._journal.pending(limit=self.batch):
            if event.seq > self._cursor:
                break
            if mono - self._sent.get(event.event_id, -1e18) >= self.resend_after_s:
                self._send(event.event_id, payload, mono)

    def reconnected(self) -> None:
        """A new connection: what was in flight may be gone, so the walk starts again from the oldest."""
        self._sent.clear()
        self._cursor = 0
        self.pump()

    def acknowledged(self, event_ids: Iterable[uuid.UUID]) -> int:
        """Central committed these: drop them from the journal; returns how many were still there."""
        ids = list(event_ids)
        for event_id in ids:
            self._sent.pop(event_id, None)
        return self._journal.ack(ids)
