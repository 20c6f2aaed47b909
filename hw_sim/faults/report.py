"""The fault matrix as a table (what `make faults` prints) and as lines of notes and problems."""

from __future__ import annotations

from collections.abc import Sequence

from hw_sim.faults.row import Row

COLUMNS = (
    ("fault", 54),
    ("reps", 5),
    ("journaled", 10),
    ("in central", 11),
    ("lost", 5),
    ("dup", 4),
    ("unlocked", 9),
    ("residents in", 13),
    ("revoked out", 12),
    ("fire release", 13),
    ("time s", 7),
)


def cells(row: Row) -> list[str]:
    return [
        row.fault,
        str(row.repetitions),
        str(row.journaled),
        str(row.in_central),
        str(row.lost),
        str(row.duplicates),
        str(row.left_unlocked),
        f"{row.residents_in}/{row.residents_tried}",
        f"{row.revoked_out}/{row.revoked_tried}",
        f"{row.fire_ok}/{row.fire_drills}",
        f"{row.seconds:.0f}",
    ]


def table(rows: Sequence[Row]) -> str:
    """A Markdown table, readable in a terminal too."""
    head = "| " + " | ".join(name.ljust(width) for name, width in COLUMNS) + " |"
    rule = "|" + "|".join("-" * (width + 2) for _, width in COLUMNS) + "|"
    body = [
        "| "
        + " | ".join(cell.ljust(width) for cell, (_, width) in zip(cells(row), COLUMNS, strict=True))
        + " |"
        for row in rows
    ]
    return "\n".join([head, rule, *body])


def notes(rows: Sequence[Row]) -> str:
    lines = []
    for row in rows:
        for note in row.notes:
            lines.append(f"- {row.fault}: {note}")
        for problem in row.problems:
            lines.append(f"- PROBLEM {row.fault}: {problem}")
    return "\n".join(lines)
