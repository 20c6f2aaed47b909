"""A disk for the agent's data that can really fill up.

As root the agent's data directory gets a tmpfs of its own, a few MiB, and `fill()` writes a ballast file
until the filesystem says ENOSPC (the journal then meets SQLITE_FULL, as on a full SD card). Without the
right to mount, the agent's journal bound (site.toml journal_max_mb, at least 16) is what fills: `fill()`
then stuffs the journal itself up to its bound while the agent is stopped (`bound_mode`).
"""

from __future__ import annotations

import errno
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from controller.journal import MIB, Journal, JournalFull

CHUNKS = (1 << 20, 1 << 16, 1 << 12, 1 << 9)
FILLER = "x" * 300  # the longest detail an event may carry: fewer events fill the bound


class SmallDisk:
    """The agent's data directory on a small filesystem of its own (see the module docstring)."""

    def __init__(self, path: Path, size_mib: int) -> None:
        self.path = path
        self.size_mib = size_mib
        self.mounted = False
        self.ballast = path / "ballast"

    @property
    def mechanism(self) -> str:
        if self.mounted:
            return f"tmpfs of {self.size_mib} MiB filled to ENOSPC"
        return "journal filled to its bound (no right to mount a filesystem here)"

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0 or os.environ.get("MERAAPENT_FAULTS_DISK") == "bound":
            return
        options = f"size={self.size_mib}m,mode=0700"
        done = subprocess.run(  # noqa: S603 - mount from PATH, our own arguments
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(self.path)],  # noqa: S607
            capture_output=True,
            check=False,
        )
        self.mounted = done.returncode == 0

    def fill(self) -> int:
        """Fill the filesystem (tmpfs) to the last byte; returns the bytes the ballast took."""
        written = 0
        fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in CHUNKS:
                block = b"\0" * size
                while True:
                    try:
                        written += os.write(fd, block)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(fd)
        return written

    def fill_journal(self, site: str, agent: str, max_mib: int) -> int:
        """Bound mode, the agent stopped: append events to its journal until JournalFull; returns how many."""
        made = 0
        with Journal(self.path / "journal.db", site=site, agent=agent, max_bytes=max_mib * MIB) as journal:
            try:
                while True:
                    journal.system(datetime.now(UTC), kind="harness-filler", detail=FILLER)
                    made += 1
            except JournalFull:
                return made

    def free(self) -> None:
        self.ballast.unlink(missing_ok=True)

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True, check=False)  # noqa: S603, S607
            self.mounted = False
