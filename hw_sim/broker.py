"""A private mosquitto on loopback for tests, benchmarks, scenarios and the simulator; and a peek at what
central has retained on a broker.

The broker runs the demo configuration (deploy/mosquitto/demo.conf) in a directory of its own, on a free port
of 127.0.0.1, so it never meets a broker the machine already runs. stop()/start() keep the port and the
persistence directory, so retained messages and persistent sessions survive a restart as they do in
production. A missing binary or a broker that does not come up raises BrokerError with what to do.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from protocol import codec
from protocol import messages as m
from protocol.topics import Channel, site_topic

REPO_ROOT = Path(__file__).resolve().parent.parent
MOSQUITTO_TEMPLATE = REPO_ROOT / "deploy" / "mosquitto" / "demo.conf"
LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 15.0
BOOTSTRAP_HINT = "run `bash scripts/bootstrap.sh` (or `make test`) to install it"


class BrokerError(RuntimeError):
    """mosquitto is missing or did not come up, or the broker has not what was asked of it."""


def free_port() -> int:
    """A TCP port on loopback that nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log written)"


def find_mosquitto() -> Path:
    """mosquitto from PATH or /usr/sbin, where Debian puts it (not on a normal user's PATH)."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")
    if found is None:
        raise BrokerError(f"`mosquitto` not found; {BOOTSTRAP_HINT}")
    return Path(found)


def mosquitto_config(port: int, data_dir: Path) -> str:
    """The demo configuration (deploy/mosquitto/demo.conf) filled in for one broker."""
    return (
        MOSQUITTO_TEMPLATE.read_text()
        .replace("@PORT@", str(port))
        .replace("@DATA_DIR@", str(data_dir))
        .replace("@USER@", pwd.getpwuid(os.geteuid()).pw_name)
    )


@dataclass
class MosquittoBroker:
    """A real mosquitto on loopback. stop()/start() keep the port and the persistence directory, so
    retained messages and persistent sessions survive a restart as they do in production."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    host: str = LOOPBACK
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def config_path(self) -> Path:
        return self.data_dir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "mosquitto.log"

    @property
    def stderr_path(self) -> Path:
        return self.data_dir / "mosquitto.stderr"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the broker and return once it accepts connections."""
        if self.running:
            return
        binary = find_mosquitto()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(mosquitto_config(self.port, self.data_dir))
        # stderr gets what mosquitto says before its log file is open (bad config, port taken).
        with self.stderr_path.open("ab") as stderr:
            self._process = subprocess.Popen(  # noqa: S603 - the mosquitto found on PATH, our own config
                [str(binary), "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not port_accepts(self.host, self.port):
            if self._process.poll() is not None:
                self._process = None
                raise BrokerError(
                    f"mosquitto on port {self.port} exited at start:\n{tail(self.stderr_path)}\n"
                    f"{tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"mosquitto did not accept connections on port {self.port} in time")
            time.sleep(0.02)

    def stop(self) -> None:
        """A clean shutdown (SIGTERM): the broker saves its persistence database first."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """A crash (SIGKILL): whatever was not yet autosaved is lost, clients see a dropped connection."""
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _end(self, sig: signal.Signals) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def running_mosquitto() -> Iterator[MosquittoBroker]:
    """A running broker in its own temporary directory, stopped and deleted afterwards."""
    root = Path(tempfile.mkdtemp(prefix="meraapent-mqtt-"))
    broker = MosquittoBroker(data_dir=root)
    try:
        broker.start()
        yield broker
    finally:
        try:
            broker.stop()
        finally:
            shutil.rmtree(root, ignore_errors=True)


def retained_site_config(host: str, port: int, site: str, timeout: float = 10.0) -> m.SiteConfig:
    """The site configuration central keeps retained on the broker: what a new agent of `site` gets first.

    BrokerError (one line) when the broker cannot be reached or central has published nothing valid for the
    site within `timeout`.
    """
    topic = site_topic(site, Channel.CONFIG)
    found: list[m.SiteConfig | str] = []
    arrived = threading.Event()

    def on_connect(client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if not reason.is_failure:
            client.subscribe(topic, qos=1)

    def on_message(_client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            decoded = codec.decode_for_channel(message.payload, Channel.CONFIG)
        except codec.ProtocolError as exc:
            found.append(f"central's configuration for {site} does not decode: {exc}")
        else:
            assert isinstance(decoded, m.SiteConfig)
            found.append(decoded)
        arrived.set()

    client_id = f"meraapent-sim-peek-{uuid.uuid4().hex[:8]}"
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(host, port, keepalive=10)
    except OSError as exc:
        problem = exc.strerror or exc
        raise BrokerError(f"no MQTT broker at {host}:{port} ({problem}); is it running?") from None
    client.loop_start()
    try:
        if not arrived.wait(timeout):
            raise BrokerError(
                f"no configuration for site {site!r} on the broker at {host}:{port} within {timeout:.0f} s;"
                " is central running (`meraapent central serve`) and does it know that site?"
            )
    finally:
        client.disconnect()
        client.loop_stop()
    first = found[0]
    if isinstance(first, str):
        raise BrokerError(first)
    return first
