"""The fault matrix, short form (hw_sim.faults; `make faults` runs the full one): each fault on a fresh site
and central in processes of their own, killed for real, and after each the properties a municipality relies
on: no event lost or stored twice, no door left unlocked, fire release without broker or central, residents
in and a revoked card out during the outage.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from central.db import make_engine
from hw_sim.faults.ledger import Ledger
from hw_sim.faults.matrix import FAULTS
from hw_sim.faults.report import notes, table
from hw_sim.faults.rig import Golden, copy_database, golden
from hw_sim.faults.row import SHORT

pytestmark = pytest.mark.mqtt


@pytest.fixture(scope="module")
def base() -> Iterator[Golden]:
    with golden() as ready:
        yield ready


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_keeps_events_doors_and_residents_safe(base: Golden, fault: str) -> None:
    row = FAULTS[fault](base, SHORT)
    report = f"\n{table([row])}\n{notes([row])}"
    assert row.problems == [], report
    assert (row.lost, row.duplicates) == (0, 0), report
    assert row.journaled > 0 and row.in_central == row.journaled, report
    assert row.left_unlocked == 0, report
    assert row.residents_tried > 0 and row.residents_in == row.residents_tried, report
    assert row.revoked_tried > 0 and row.revoked_out == row.revoked_tried, report
    assert row.fire_drills > 0 and row.fire_ok == row.fire_drills, report


def test_the_delivery_check_sees_a_lost_and_a_re_created_event(base: Golden, tmp_path: Path) -> None:
    """The ledger is what says "no event lost": it must say so when one is (journaled, never stored) and
    when one number was given to two events."""
    copy = tmp_path / "central.db"
    copy_database(base.stack.golden_db, copy)
    engine = make_engine(f"sqlite:///{copy}")
    try:
        ledger = Ledger()
        at = "2026-01-05T18:00:00+00:00"
        ledger.record({"seq": 1, "id": str(uuid.uuid4()), "type": "AccessEvent", "time": at})
        ledger.record({"seq": 1, "id": str(uuid.uuid4()), "type": "AccessEvent", "time": at})
        delivery = ledger.check(engine, "heggedal-sim", next_seq=3)
    finally:
        engine.dispose()
    assert delivery.lost == (1, 2)
    assert delivery.duplicates == 1
    assert delivery.non_monotonic == 1
