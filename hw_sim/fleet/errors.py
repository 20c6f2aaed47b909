"""FleetError, the one error the fleet's parts raise when it cannot run."""

from __future__ import annotations


class FleetError(RuntimeError):
    """The fleet cannot run (broker unreachable, too few file descriptors, a worker died)."""
