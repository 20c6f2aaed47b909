"""`python -m hw_sim.faults.central_proc`: central's MQTT gateway alone in a process the harness can kill -9.

The gateway is the part of central that matters for faults: it ingests the agents' events (commit, then
acknowledge) and publishes configuration, replica deltas and revocations. The REST API is not needed for
that; the harness changes central's data in the database directly, as the API's services would.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from central.config import Settings
from central.db import make_engine
from central.gateway import Gateway
from hw_sim.faults.rpc import serve

CONNECT_TIMEOUT_S = 30.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="central's gateway, for the fault harness")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--mqtt-host", required=True)
    parser.add_argument("--mqtt-port", type=int, required=True)
    parser.add_argument("--client-id", default="central-faults")
    args = parser.parse_args(argv)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    settings = Settings(
        data_dir=args.data_dir, db_url=args.db_url, mqtt_host=args.mqtt_host, mqtt_port=args.mqtt_port
    )
    engine = make_engine(settings.db_url)
    # Fast polls: a harness run must not wait seconds for a revocation to be published.
    gateway = Gateway(settings, engine, client_id=args.client_id, poll_s=0.05, refresh_s=0.5)
    gateway.start()
    connected = gateway.link.wait_connected(CONNECT_TIMEOUT_S)

    def poke() -> None:
        gateway.poke()

    try:
        serve({"poke": poke, "status": gateway.status}, {"connected": connected})
    finally:
        gateway.stop()
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
