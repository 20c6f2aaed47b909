"""mosquitto for the fault harness: on any address, optionally inside a network namespace, optionally
bridged (a site's own broker forwarding its site's topics to central's broker over the WAN).

The configuration is the project's demo/test one (hw_sim.broker.mosquitto_config: persistence, TCP_NODELAY,
a queue deep enough to hold a day of a site's events) plus a listener address and a bridge section.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hw_sim.broker import (
    LOOPBACK,
    BrokerError,
    find_mosquitto,
    free_port,
    mosquitto_config,
    port_accepts,
    tail,
)
from protocol.topics import RULES, Direction, site_filter

READY_TIMEOUT_S = 15.0
BRIDGE_KEEPALIVE_S = 5


@dataclass
class FaultBroker:
    """A mosquitto that keeps port and persistence across kill/stop and start, like hw_sim's
    MosquittoBroker, but may listen on another address (`listen`), run under a command `prefix`
    (`ip netns exec <ns>`) and carry extra configuration (`extra`: a bridge)."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    listen: str = LOOPBACK
    probe_host: str = LOOPBACK  # where the harness checks that it accepts connections
    prefix: Sequence[str] = ()
    extra: str = ""
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def log_path(self) -> Path:
        return self.data_dir / "mosquitto.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = mosquitto_config(self.port, self.data_dir).replace(
            f"listener {self.port} {LOOPBACK}", f"listener {self.port} {self.listen}"
        )
        path = self.data_dir / "mosquitto.conf"
        path.write_text(config + "\n" + self.extra)
        with (self.data_dir / "mosquitto.stderr").open("ab") as stderr:
            self._process = subprocess.Popen(  # noqa: S603 - mosquitto from PATH with our own config
                [*self.prefix, str(find_mosquitto()), "-c", str(path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not port_accepts(self.probe_host, self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise BrokerError(
                    f"mosquitto on {self.listen}:{self.port} did not come up:\n{tail(self.log_path)}"
                )
            time.sleep(0.02)

    def kill(self) -> None:
        """A crash: SIGKILL, whatever was not autosaved is gone."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """A clean shutdown: SIGTERM, the persistence file is written first."""
        self._end(signal.SIGTERM)

    def _end(self, sig: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def bridge_section(site: str, host: str, port: int) -> str:
    """A site broker's bridge to central's broker (MQTT 5, persistent session both ways): the site's
    agent-to-central channels go out, central-to-agent channels come in, nothing of other sites."""
    lines = [
        f"connection central-{site}",
        f"address {host}:{port}",
        "bridge_protocol_version mqttv50",
        "cleansession false",  # the session on central's broker keeps acks and deltas while the WAN is down
        "local_cleansession false",  # ... and the site broker keeps the events queued for the bridge
        f"remote_clientid bridge-{site}",
        f"local_clientid bridge-{site}-local",
        f"keepalive_interval {BRIDGE_KEEPALIVE_S}",
        "restart_timeout 1 5",
        "notifications false",
    ]
    for channel, rule in RULES.items():
        direction = "out" if rule.direction is Direction.TO_CENTRAL else "in"
        lines.append(f"topic {site_filter(site, channel)} {direction} 1")
    return "\n".join(lines) + "\n"
