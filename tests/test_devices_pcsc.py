"""The PC/SC reader adapter against a real pcscd with vsmartcard's virtual readers and virtual cards."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import structlog

from controller.devices import Backoff
from controller.devices.pcsc import PcscReader, parse_uid_response
from controller.inputs import CardPresented, CardRemoved, InputEvent, ReaderStatus
from hw_sim.pcscd import PcscDaemon
from hw_sim.vcard import CONTACTLESS_ATR, SW_INS_NOT_SUPPORTED, VirtualCard, card_response
from tests.pcsc_fixtures import VirtualCardFactory, pcscd, virtual_card  # noqa: F401

WAIT_S = 5.0
ALICE = bytes.fromhex("04A1B2C3D4E5F6")
BOB = bytes.fromhex("DEADBEEF")


class Recorder:
    """An InputSink that lets a test wait for the next event of interest."""

    def __init__(self) -> None:
        self.events: queue.Queue[InputEvent] = queue.Queue()
        self.seen: list[InputEvent] = []

    def __call__(self, event: InputEvent) -> None:
        self.events.put(event)

    def next(self, kind: type[object] | None = None, timeout: float = WAIT_S) -> InputEvent:
        """The next event (of `kind`, skipping others); fails the test if none comes in time."""
        while True:
            try:
                event = self.events.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no {kind.__name__ if kind else 'event'} within {timeout} s; saw {self.seen}")
            self.seen.append(event)
            if kind is None or isinstance(event, kind):
                return event


def wait_until(condition: Callable[[], bool], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.02)


@pytest.fixture
def watch(pcscd: PcscDaemon) -> Iterator[Callable[[int], tuple[PcscReader, Recorder]]]:  # noqa: F811
    """Start a PcscReader on virtual reader `slot`, wait until it is online, stop it after the test."""
    readers: list[PcscReader] = []

    def start(slot: int = 0) -> tuple[PcscReader, Recorder]:
        recorder = Recorder()
        reader = PcscReader(
            f"^{pcscd.reader_name(slot)}$", f"door-{slot}", recorder, backoff=Backoff(0.05, 0.5)
        )
        readers.append(reader)
        reader.start()
        assert recorder.next(ReaderStatus) == ReaderStatus(f"door-{slot}", True)
        return reader, recorder

    yield start
    for reader in readers:
        reader.stop()


def test_a_tapped_card_is_reported_with_its_uid_and_its_removal(
    watch: Callable[[int], tuple[PcscReader, Recorder]],
    virtual_card: VirtualCardFactory,  # noqa: F811
) -> None:
    _, seen = watch(0)
    card = virtual_card(ALICE)
    card.present()
    assert seen.next() == CardPresented("door-0", ALICE)
    card.remove()
    assert seen.next() == CardRemoved("door-0")


def test_cards_one_after_another_and_each_reader_reports_only_its_own(
    watch: Callable[[int], tuple[PcscReader, Recorder]],
    virtual_card: VirtualCardFactory,  # noqa: F811
) -> None:
    _, front = watch(0)
    _, side = watch(1)
    for uid in (ALICE, BOB):
        with virtual_card(uid, slot=0):
            assert front.next() == CardPresented("door-0", uid)
        assert front.next() == CardRemoved("door-0")
    with virtual_card(BOB, slot=1):
        assert side.next() == CardPresented("door-1", BOB)
    assert side.next() == CardRemoved("door-1")
    assert [e for e in side.seen if isinstance(e, CardPresented)] == [CardPresented("door-1", BOB)]
    assert front.events.empty()


def test_pcscd_restart_takes_the_reader_offline_and_back_and_cards_read_again(
    pcscd: PcscDaemon,  # noqa: F811
    watch: Callable[[int], tuple[PcscReader, Recorder]],
    virtual_card: VirtualCardFactory,  # noqa: F811
) -> None:
    reader, seen = watch(0)
    try:
        pcscd.stop()
        offline = seen.next(ReaderStatus)
        assert isinstance(offline, ReaderStatus) and not offline.online and offline.detail
        assert not reader.online
    finally:
        pcscd.start()
    assert seen.next(ReaderStatus) == ReaderStatus("door-0", True)
    with virtual_card(ALICE):
        assert seen.next(CardPresented) == CardPresented("door-0", ALICE)


def test_a_card_lying_on_the_reader_when_pcscd_dies_is_removed_then_read_again(
    pcscd: PcscDaemon,  # noqa: F811
    watch: Callable[[int], tuple[PcscReader, Recorder]],
    virtual_card: VirtualCardFactory,  # noqa: F811
) -> None:
    _, seen = watch(0)
    card = virtual_card(ALICE)
    card.present()
    assert seen.next() == CardPresented("door-0", ALICE)
    try:
        pcscd.kill()
        assert seen.next() == CardRemoved("door-0")
        assert seen.next() == ReaderStatus("door-0", False, seen.seen[-1].detail)  # type: ignore[union-attr]
    finally:
        pcscd.start()
    assert seen.next() == ReaderStatus("door-0", True)
    card.present()  # the old connection died with the daemon: lay the card on the new reader
    assert seen.next() == CardPresented("door-0", ALICE)


def test_a_missing_reader_is_reported_offline_and_stop_returns_promptly(pcscd: PcscDaemon) -> None:  # noqa: F811
    seen = Recorder()
    reader = PcscReader("No Such Reader", "door-x", seen, backoff=Backoff(0.05, 0.2))
    reader.start()
    status = seen.next()
    assert isinstance(status, ReaderStatus) and not status.online and "No Such Reader" in status.detail
    stopper = threading.Thread(target=reader.stop)
    stopper.start()
    stopper.join(timeout=3)
    assert not stopper.is_alive()


def test_stop_wakes_a_reader_waiting_inside_pcscd(pcscd: PcscDaemon) -> None:  # noqa: F811
    seen = Recorder()
    reader = PcscReader(pcscd.reader_name(0), "door-0", seen, poll_ms=60_000)
    reader.start()
    assert seen.next() == ReaderStatus("door-0", True)
    stopper = threading.Thread(target=reader.stop)
    stopper.start()
    stopper.join(timeout=3)  # without SCardCancel the thread would sit out the 60 s wait
    assert not stopper.is_alive()


def test_card_uids_never_reach_the_log(
    watch: Callable[[int], tuple[PcscReader, Recorder]],
    virtual_card: VirtualCardFactory,  # noqa: F811
) -> None:
    with structlog.testing.capture_logs() as logs:
        _, seen = watch(0)
        with virtual_card(ALICE):
            seen.next(CardPresented)
        seen.next(CardRemoved)
    text = repr(logs).lower()
    assert logs and ALICE.hex() not in text and str(list(ALICE)) not in text


def test_bad_reader_pattern_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not a valid regular expression"):
        PcscReader("ACR(", "door-0", Recorder())


def test_uid_response_needs_status_ok_and_a_uid_length() -> None:
    assert parse_uid_response([*ALICE, 0x90, 0x00]) == ALICE
    assert parse_uid_response([0x6A, 0x81]) is None
    assert parse_uid_response([0x01, 0x02, 0x90, 0x00]) is None
    assert parse_uid_response([]) is None


def test_virtual_card_answers_like_a_contactless_card() -> None:
    assert card_response(bytes([4]), ALICE) == CONTACTLESS_ATR
    assert card_response(bytes([1]), ALICE) is None
    assert card_response(bytes.fromhex("FFCA000000"), ALICE) == ALICE + b"\x90\x00"
    assert card_response(bytes.fromhex("00A4040007A0000002471001"), ALICE) == SW_INS_NOT_SUPPORTED
    with pytest.raises(ValueError, match="4, 7 or 10 bytes"):
        VirtualCard(b"\x01\x02")


def test_virtual_card_without_a_reader_says_what_is_missing() -> None:
    from tests.infra import free_port

    with pytest.raises(RuntimeError, match="no virtual reader"):
        VirtualCard(ALICE, port=free_port()).present()


class CardWithoutUid(VirtualCard):
    """A card that refuses GET DATA (as some secure cards behind a picky reader firmware do)."""

    def respond(self, payload: bytes) -> bytes | None:
        return bytes.fromhex("6A81") if payload == bytes.fromhex("FFCA000000") else super().respond(payload)


def test_a_card_without_a_uid_is_not_presented_and_the_next_card_still_is(
    pcscd: PcscDaemon,  # noqa: F811
    watch: Callable[[int], tuple[PcscReader, Recorder]],
    virtual_card: VirtualCardFactory,  # noqa: F811
) -> None:
    _, seen = watch(0)
    with structlog.testing.capture_logs() as logs, CardWithoutUid(BOB, port=pcscd.port(0)):
        wait_until(lambda: any(entry["event"] == "card gave no UID" for entry in logs))
    with virtual_card(ALICE):
        assert seen.next() == CardPresented("door-0", ALICE)
