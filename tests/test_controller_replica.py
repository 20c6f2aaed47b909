"""The agent's local replica: what it knows after snapshots, deltas, gaps and restarts, what it refuses."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from central.security import card_uid_hash
from controller.replica import DeltaResult, Replica, ReplicaError
from protocol import messages as m

SITE = "heggedal"
UID_KEY = b"heggedal-test-uid-hash-key-0001"
EVENING = datetime(2026, 11, 22, 20, 15, tzinfo=UTC)  # a Sunday, 21:15 in Oslo
PIN_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"

KARI_CARD = card_uid_hash("04:A2:2B:7A:61:5C:80", UID_KEY)
OLA_CARD = card_uid_hash("04:11:22:33:44:55:66", UID_KEY)
NEW_CARD = card_uid_hash("04:99:88:77:66:55:44", UID_KEY)
UNKNOWN_CARD = card_uid_hash("04:00:00:00:00:00:01", UID_KEY)


def card(ref: str, person: str, uid_hash: str, **changes: object) -> m.Credential:
    credential = m.Credential(
        ref=ref,
        person=person,
        person_kind=m.PersonKind.RESIDENT,
        kind=m.CredentialKind.CARD,
        groups=["innbyggere"],
        uid_hash=uid_hash,
        pin_hash=PIN_HASH,
        valid_from=EVENING - timedelta(days=60),
    )
    return msgspec.structs.replace(credential, **changes)


def booking(
    ref: str, holders: list[str], starts: datetime, hours: float = 2, room: str = "moterom-1"
) -> m.Booking:
    return m.Booking(
        ref=ref, room=room, holders=holders, starts_at=starts, ends_at=starts + timedelta(hours=hours)
    )


KARI = card("c1", "p-kari", KARI_CARD)
OLA = card("c2", "p-ola", OLA_CARD)
KARI_QUIZ = booking("b1", ["p-kari"], EVENING + timedelta(minutes=15))


def snapshot(
    seq: int = 10, credentials: list[m.Credential] | None = None, **fields: object
) -> m.ReplicaSnapshot:
    return m.ReplicaSnapshot(
        site=SITE,
        seq=seq,
        generated_at=EVENING,
        credentials=[KARI, OLA] if credentials is None else credentials,
        **fields,  # type: ignore[arg-type]
    )


def delta(prev_seq: int, seq: int | None = None, **changes: object) -> m.ReplicaDelta:
    return m.ReplicaDelta(
        site=SITE,
        seq=prev_seq + 1 if seq is None else seq,
        prev_seq=prev_seq,
        generated_at=EVENING,
        **changes,  # type: ignore[arg-type]
    )


def site_config(revision: int, name: str = "Heggedal innbyggertorg") -> m.SiteConfig:
    return m.SiteConfig(site=SITE, name=name, revision=revision, issued_at=EVENING)


def revocations(revision: int, *token_ids: str) -> m.Revocations:
    tokens = [m.RevokedToken(token_id=t, expires_at=EVENING + timedelta(days=1)) for t in token_ids]
    return m.Revocations(site=SITE, revision=revision, issued_at=EVENING, tokens=tokens)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "replica.sqlite3"


@pytest.fixture
def replica(path: Path) -> Replica:
    store = Replica(path, site=SITE)
    store.apply_snapshot(snapshot(bookings=[KARI_QUIZ]))
    return store


def test_a_new_replica_knows_nobody_and_has_no_sequence(path: Path) -> None:
    with Replica(path) as store:
        assert store.seq is None
        assert store.count() == 0
        assert store.card(KARI_CARD) is None
        assert store.config() is None and store.keys() is None and store.revocations() is None


def test_a_snapshot_makes_cards_known(replica: Replica) -> None:
    assert replica.seq == 10
    assert replica.count() == 2
    assert replica.card(KARI_CARD) == KARI
    assert replica.card(OLA_CARD) == OLA
    assert replica.card(UNKNOWN_CARD) is None
    assert replica.credential("c2") == OLA
    assert replica.credentials_of("p-kari") == [KARI]


def test_an_agent_restarted_mid_evening_still_knows_karis_card(path: Path) -> None:
    keys = m.SigningKeys(issuer="asker", issued_at=EVENING, keys=[m.PublicKey(kid="k1", x="AAAA")])
    with Replica(path, site=SITE) as store:
        store.apply_snapshot(snapshot(bookings=[KARI_QUIZ]))
        assert store.apply_delta(delta(10, upsert=[card("c3", "p-nils", NEW_CARD)])) is DeltaResult.APPLIED
        store.save_config(site_config(4))
        store.save_keys(keys)
        store.save_revocations(revocations(2, "ab" * 8))

    with Replica(path, site=SITE) as store:
        assert store.seq == 11
        assert store.card(KARI_CARD) == KARI
        assert store.card(NEW_CARD) is not None
        assert store.bookings_for("p-kari", EVENING) == [KARI_QUIZ]
        assert store.config() == site_config(4)
        assert store.keys() == keys
        assert store.is_revoked("ab" * 8)
        revoked = store.revocations()
        assert revoked is not None and revoked.revision == 2


def test_a_snapshot_replaces_everything(replica: Replica) -> None:
    replica.apply_snapshot(snapshot(seq=40, credentials=[card("c9", "p-nils", NEW_CARD)]))
    assert replica.seq == 40
    assert replica.count() == 1
    assert replica.card(KARI_CARD) is None
    assert replica.card(NEW_CARD) is not None
    assert replica.bookings_for("p-kari", EVENING) == []


def test_a_snapshot_failing_midway_leaves_the_old_replica_intact(replica: Replica) -> None:
    broken = card("c5", "p-per", "zz" * 32)  # built in code, never validated: its insert fails
    with pytest.raises(ValueError, match="64 hex digits"):
        replica.apply_snapshot(snapshot(seq=50, credentials=[card("c4", "p-nils", NEW_CARD), broken, OLA]))
    assert replica.seq == 10
    assert replica.count() == 2
    assert replica.card(KARI_CARD) == KARI
    assert replica.card(NEW_CARD) is None
    assert replica.bookings_for("p-kari", EVENING) == [KARI_QUIZ]


def test_a_delta_adds_changes_and_removes_credentials_and_bookings(replica: Replica) -> None:
    ola_blocked = msgspec.structs.replace(OLA, status=m.CredentialStatus.BLOCKED)
    nils = card("c3", "p-nils", NEW_CARD)
    quiz_moved = booking("b1", ["p-kari", "p-nils"], EVENING + timedelta(hours=1))
    result = replica.apply_delta(
        delta(10, upsert=[ola_blocked, nils], remove=["c1"], upsert_bookings=[quiz_moved])
    )
    assert result is DeltaResult.APPLIED
    assert replica.seq == 11
    assert replica.card(KARI_CARD) is None
    assert replica.card(NEW_CARD) == nils
    assert replica.bookings_for("p-nils", EVENING) == [quiz_moved]
    assert replica.bookings_for("p-kari", EVENING) == [quiz_moved]
    assert replica.apply_delta(delta(11, remove_bookings=["b1"])) is DeltaResult.APPLIED
    assert replica.bookings_for("p-kari", EVENING) == []
    assert replica.bookings_for("p-nils", EVENING) == []


def test_a_blocked_card_upsert_replaces_the_old_row(replica: Replica) -> None:
    blocked = msgspec.structs.replace(KARI, status=m.CredentialStatus.BLOCKED)
    assert replica.apply_delta(delta(10, upsert=[blocked])) is DeltaResult.APPLIED
    found = replica.card(KARI_CARD)
    assert found is not None and found.status is m.CredentialStatus.BLOCKED
    assert replica.count() == 2
    assert replica.credentials_of("p-kari") == [blocked]


def test_a_card_moved_to_a_new_credential_belongs_to_the_new_one_only(replica: Replica) -> None:
    replacement = card("c7", "p-kari", KARI_CARD)  # Kari's card re-issued under a new credential
    assert replica.apply_delta(delta(10, upsert=[replacement])) is DeltaResult.APPLIED
    assert replica.card(KARI_CARD) == replacement
    assert replica.credential("c1") is None


def test_a_delta_with_a_gap_is_refused_and_leaves_data_untouched(replica: Replica) -> None:
    result = replica.apply_delta(delta(12, upsert=[card("c3", "p-nils", NEW_CARD)], remove=["c1"]))
    assert result is DeltaResult.GAP
    assert replica.seq == 10
    assert replica.card(KARI_CARD) == KARI
    assert replica.card(NEW_CARD) is None


def test_a_delta_before_any_snapshot_is_a_gap(path: Path) -> None:
    with Replica(path) as store:
        assert store.apply_delta(delta(0, upsert=[KARI])) is DeltaResult.GAP
        assert store.seq is None
        assert store.card(KARI_CARD) is None


def test_a_replayed_delta_is_stale_and_ignored(replica: Replica) -> None:
    assert replica.apply_delta(delta(10, remove=["c1"])) is DeltaResult.APPLIED
    assert replica.apply_delta(delta(11, remove=["c2"])) is DeltaResult.APPLIED
    replayed = delta(9, seq=11, upsert=[KARI])  # an old delta redelivered after a reconnect
    assert replica.apply_delta(replayed) is DeltaResult.STALE
    assert replica.apply_delta(delta(10, upsert=[KARI])) is DeltaResult.STALE
    assert replica.seq == 12
    assert replica.card(KARI_CARD) is None


def test_bookings_for_a_person_are_the_coming_ones_within_the_horizon(replica: Replica) -> None:
    ended = booking("b2", ["p-kari"], EVENING - timedelta(hours=3))
    running = booking("b3", ["p-kari"], EVENING - timedelta(hours=1))
    tomorrow_evening = booking("b4", ["p-kari"], EVENING + timedelta(hours=23))
    next_week = booking("b5", ["p-kari"], EVENING + timedelta(days=7))
    replica.apply_delta(delta(10, upsert_bookings=[next_week, tomorrow_evening, ended, running]))
    assert replica.bookings_for("p-kari", EVENING) == [running, KARI_QUIZ, tomorrow_evening]
    assert replica.bookings_for("p-kari", EVENING, horizon=timedelta(hours=1)) == [running, KARI_QUIZ]
    assert replica.bookings_for("p-ola", EVENING) == []


def test_bookings_at_a_room_are_those_overlapping_the_day(replica: Replica) -> None:
    day_start = datetime(2026, 11, 21, 23, 0, tzinfo=UTC)  # 22 Nov in Oslo
    day_end = day_start + timedelta(days=1)
    overnight = booking("b2", ["p-ola"], day_start - timedelta(hours=1))
    next_day = booking("b3", ["p-ola"], day_end)
    other_room = booking("b4", ["p-ola"], EVENING, room="verksted")
    replica.apply_delta(delta(10, upsert_bookings=[next_day, other_room, overnight]))
    assert replica.bookings_at("moterom-1", day_start, day_end) == [overnight, KARI_QUIZ]
    assert replica.bookings_at("verksted", day_start, day_end) == [other_room]


def test_an_older_config_is_ignored(replica: Replica) -> None:
    assert replica.save_config(site_config(5, name="Heggedal torg"))
    assert not replica.save_config(site_config(4, name="Old name"))
    assert replica.save_config(site_config(5, name="Heggedal torg"))  # the retained copy again
    config = replica.config()
    assert config is not None and (config.revision, config.name) == (5, "Heggedal torg")


def test_the_newest_revocation_list_decides_which_tokens_are_revoked(replica: Replica) -> None:
    assert replica.save_revocations(revocations(3, "aa" * 8, "bb" * 8))
    assert replica.is_revoked("aa" * 8) and replica.is_revoked("BB" * 8)
    assert not replica.save_revocations(revocations(2, "cc" * 8))
    assert not replica.is_revoked("cc" * 8)
    assert replica.save_revocations(revocations(4, "bb" * 8))  # aa lifted
    assert not replica.is_revoked("aa" * 8)
    assert replica.is_revoked("bb" * 8)


def test_older_signing_keys_are_ignored(replica: Replica) -> None:
    new = m.SigningKeys(issuer="asker", issued_at=EVENING, keys=[m.PublicKey(kid="k2", x="BBBB")])
    old = m.SigningKeys(
        issuer="asker", issued_at=EVENING - timedelta(days=1), keys=[m.PublicKey(kid="k1", x="AAAA")]
    )
    assert replica.save_keys(new)
    assert not replica.save_keys(old)
    assert replica.keys() == new


def test_messages_for_another_site_are_refused(replica: Replica) -> None:
    other = m.ReplicaSnapshot(site="bondi", seq=99, generated_at=EVENING, credentials=[])
    with pytest.raises(ReplicaError, match="'bondi'"):
        replica.apply_snapshot(other)
    with pytest.raises(ReplicaError, match="site_config"):
        replica.save_config(m.SiteConfig(site="bondi", name="Bondi", revision=9, issued_at=EVENING))
    assert replica.seq == 10 and replica.count() == 2 and replica.config() is None


def test_a_corrupt_file_is_a_clear_error_naming_it(path: Path) -> None:
    path.write_bytes(b"this is not a database, the SD card ate it" * 200)
    with pytest.raises(ReplicaError, match=r"replica\.sqlite3.*not a usable replica database"):
        Replica(path)


def test_a_file_damaged_after_it_was_written_is_a_clear_error_naming_it(path: Path) -> None:
    with Replica(path) as store:
        store.apply_snapshot(snapshot(credentials=[card(f"c{i}", f"p{i}", f"{i:064x}") for i in range(2000)]))
    with path.open("r+b") as file:  # keep the header and schema page, wreck everything after them
        file.seek(8192)
        file.write(b"\xff" * (path.stat().st_size - 8192))
    with pytest.raises(ReplicaError, match=r"replica\.sqlite3"):
        Replica(path).card(f"{1999:064x}")


def test_another_applications_database_is_refused(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE notes (text TEXT)")
    db.commit()
    db.close()
    with pytest.raises(ReplicaError, match=r"replica\.sqlite3: not a replica database"):
        Replica(path)


def test_a_malformed_card_hash_is_refused(replica: Replica) -> None:
    with pytest.raises(ValueError, match="64 hex digits"):
        replica.card("04A22B7A615C80")  # a raw UID must never be looked up


def test_lookups_from_another_thread_during_deltas_see_whole_steps(replica: Replica) -> None:
    errors: list[BaseException] = []
    stop = threading.Event()

    def tap_cards() -> None:
        try:
            while not stop.is_set():
                found = replica.card(KARI_CARD)
                assert found is not None and found.ref == "c1"
        except BaseException as exc:  # reported below
            errors.append(exc)

    reader = threading.Thread(target=tap_cards)
    reader.start()
    try:
        for seq in range(10, 60):
            groups = ["innbyggere"] if seq % 2 else ["innbyggere", "lag"]
            changed = card("c1", "p-kari", KARI_CARD, groups=groups)
            assert replica.apply_delta(delta(seq, upsert=[changed])) is DeltaResult.APPLIED
    finally:
        stop.set()
        reader.join()
    assert errors == []
    assert replica.seq == 60
