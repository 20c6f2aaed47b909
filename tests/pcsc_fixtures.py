"""Fixtures for a real pcscd with virtual contactless cards (hw_sim.pcscd, hw_sim.vcard).

- `pcscd`: one private pcscd for the whole session (.reader_name(slot), .port(slot), .restart(), .stop()).
  It points this process's PC/SC clients at itself through PCSCLITE_CSOCK_NAME, which libpcsclite reads once,
  so nothing may use PC/SC in the test process before this fixture. A test that stops or restarts it must
  leave it running (`virtual_card` starts it again if a test did not).
- `virtual_card`: a factory `virtual_card(uid: bytes, slot=0) -> VirtualCard` (not yet presented); every
  card it made is removed after the test.

A missing pcscd or vpcd fails the test with the install command: a skip would hide a broken setup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from hw_sim.pcscd import PcscDaemon, PcscdError, running_pcscd
from hw_sim.vcard import VirtualCard

VirtualCardFactory = Callable[..., VirtualCard]


_shared: list[PcscDaemon] = []  # one daemon per process, even if several modules import the fixture


@pytest.fixture(scope="session")
def pcscd() -> Iterator[PcscDaemon]:
    if _shared:  # the fixture was imported into more than one module: libpcsclite knows only one socket
        yield _shared[0]
        return
    try:
        with running_pcscd(export_socket=True) as daemon:
            _shared.append(daemon)
            try:
                yield daemon
            finally:
                _shared.clear()
    except PcscdError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def virtual_card(pcscd: PcscDaemon) -> Iterator[VirtualCardFactory]:
    made: list[VirtualCard] = []

    def make(uid: bytes, slot: int = 0) -> VirtualCard:
        card = VirtualCard(uid, port=pcscd.port(slot))
        made.append(card)
        return card

    if not pcscd.running:
        try:
            pcscd.start()
        except PcscdError as exc:
            pytest.fail(str(exc), pytrace=False)
    yield make
    for card in made:
        card.remove()
