"""`python -m hw_sim.fleet`: one worker process of the fleet (see hw_sim.fleet.worker)."""

from __future__ import annotations

import sys

from hw_sim.fleet.worker import worker_main

if __name__ == "__main__":
    sys.exit(worker_main())
