"""One valid example of every message type, for contract and fuzz tests."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta

from protocol import messages as m

NOW = datetime(2026, 11, 22, 20, 15, tzinfo=UTC)
PIN_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
UID_HASH = "ab" * 32


def credential(ref: str = "c1") -> m.Credential:
    return m.Credential(
        ref=ref,
        person="p1",
        person_kind=m.PersonKind.RESIDENT,
        kind=m.CredentialKind.CARD,
        groups=["innbyggere"],
        uid_hash=UID_HASH,
        pin_hash=PIN_HASH,
        valid_from=NOW - timedelta(days=30),
    )


def booking(ref: str = "b1") -> m.Booking:
    return m.Booking(
        ref=ref,
        room="moterom-1",
        holders=["p1"],
        starts_at=NOW,
        ends_at=NOW + timedelta(hours=2),
        code="482615",
        shown_as="Sjakkklubben",
    )


def all_samples() -> list[m.Message]:
    site = "heggedal"
    agent, seq = "agent-heggedal", 7
    return [
        m.SiteConfig(
            site=site,
            name="Heggedal innbyggertorg",
            revision=3,
            issued_at=NOW,
            zones=[m.Zone(slug="torg", name="Torget")],
            doors=[m.Door(slug="hovedinngang", name="Hovedinngang", zone="torg", kind=m.DoorKind.ENTRANCE)],
            rooms=[m.Room(slug="moterom-1", name="Møterom 1", zone="torg", capacity=12)],
            hours=[m.Hours(weekday=0, opens=time(7), closes=time(22))],
            exceptions=[
                m.HoursException(day=date(2026, 12, 24), kind=m.ExceptionKind.CLOSED, note="Julaften")
            ],
            public_holidays=[date(2026, 12, 25)],
            groups=[
                m.AccessGroup(
                    slug="innbyggere",
                    zones=["torg"],
                    intervals=[m.Interval(weekday=0, starts=time(7), ends=time(22))],
                )
            ],
        ),
        m.SigningKeys(issuer="asker", issued_at=NOW, keys=[m.PublicKey(kid="k1", x="AAAA")]),
        m.Revocations(
            site=site, revision=2, issued_at=NOW, tokens=[m.RevokedToken(token_id="00" * 8, expires_at=NOW)]
        ),
        m.ReplicaSnapshot(
            site=site, seq=10, generated_at=NOW, credentials=[credential()], bookings=[booking()]
        ),
        m.ReplicaDelta(
            site=site, seq=11, prev_seq=10, generated_at=NOW, upsert=[credential("c2")], remove=["c1"]
        ),
        m.ReplicaRequest(site=site, agent="agent-heggedal", have_seq=9, reason="gap"),
        m.Command(
            command_id=uuid.UUID(int=1),
            site=site,
            action=m.Action.UNLOCK,
            nonce="0f" * 8,
            issued_at=NOW,
            expires_at=NOW + timedelta(seconds=30),
            issued_by="vaktmester",
            reason="Låst ute",
            door="hovedinngang",
            duration_seconds=10,
        ),
        m.CommandResult(command_id=uuid.UUID(int=1), site=site, outcome=m.CommandOutcome.DONE, at=NOW),
        m.CardEnrolment(
            event_id=uuid.UUID(int=5),
            site=site,
            agent=agent,
            seq=seq,
            device_time=NOW,
            door="hovedinngang",
            code="12345678",
            uid_hash=UID_HASH,
        ),
        m.BookingCheckIn(
            event_id=uuid.UUID(int=6),
            site=site,
            agent=agent,
            seq=seq,
            device_time=NOW,
            booking="b1",
            method=m.CheckInVia.CODE,
        ),
        m.BookingChange(
            event_id=uuid.UUID(int=7),
            site=site,
            agent=agent,
            seq=seq,
            device_time=NOW,
            booking="b1",
            change=m.BookingChangeKind.EXTEND,
            ends_at=NOW + timedelta(hours=3),
            person="p1",
        ),
        m.AccessEvent(
            event_id=uuid.UUID(int=2),
            door="hovedinngang",
            decision=m.Decision.DENY,
            reason=m.Reason.WRONG_PIN,
            method=m.Method.CARD_PIN,
            credential_ref="c1",
            site=site,
            agent=agent,
            seq=seq,
            device_time=NOW,
        ),
        m.AlarmEvent(
            event_id=uuid.UUID(int=3),
            kind=m.AlarmKind.FORCED_OPEN,
            severity=m.Severity.CRITICAL,
            door="hovedinngang",
            site=site,
            agent=agent,
            seq=seq,
            device_time=NOW,
        ),
        m.SystemEvent(
            event_id=uuid.UUID(int=4), kind="agent-started", site=site, agent=agent, seq=seq, device_time=NOW
        ),
        m.Ack(site=site, event_ids=[uuid.UUID(int=2), uuid.UUID(int=3)]),
        m.DoorState(site=site, door="hovedinngang", state=m.DoorStateName.LOCKED, since=NOW, device_time=NOW),
        m.AgentStatus(site=site, agent="agent-heggedal", online=True, at=NOW, replica_seq=10),
    ]
