"""A real pcscd with vsmartcard's virtual readers (vpcd), private to one test session, benchmark or demo.

Private, so it never touches a pcscd the machine already runs: its own reader.conf.d (`-c`) gives the
virtual readers their own TCP ports, and its client socket is handed over by socket activation (LISTEN_FDS, as
systemd does), because pcscd 1.9 has the socket path compiled in while libpcsclite clients read it from the
PCSCLITE_CSOCK_NAME environment variable. libpcsclite reads that variable once per process, before its first
call: export it (`running_pcscd(export_socket=True)` does) before anything in the process touches PC/SC.

Each vpcd device is two readers on consecutive ports; a site with more doors gets more devices, each with a
name of its own (pcscd names the readers of same-named devices alike: "Virtual PCD 00 00" thrice) and a
copy of the driver of its own: the driver keeps its readers in a static table of two, so devices sharing one
loaded copy would take each other's slots (pcscd loads a library once per path, dlopen once per file).

pcscd still writes and removes /run/pcscd/pcscd.pid, which it needs to be able to create (root, or a
/run/pcscd that exists). vpcd listens on all interfaces: a simulator for tests, never for a production Pi.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

INSTALL_HINT = (
    "install it with `apt-get install pcscd vsmartcard-vpcd libpcsclite-dev` (scripts/bootstrap.sh does)"
)
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
SOCKET_ENV = "PCSCLITE_CSOCK_NAME"
FRIENDLY_NAME = "Virtual PCD"
SLOTS = 2  # Debian's vpcd exposes two readers per configured device: ports base and base + 1
DEFAULT_READERS = 8  # running_pcscd(): enough for a torg's doors and its kiosk
MAX_READERS = 16  # pcscd's own limit (PCSCLITE_MAX_READERS_CONTEXTS)
READY_TIMEOUT_S = 10.0
# Socket activation as systemd does it: the listening socket at fd 3 and LISTEN_PID naming the process that
# gets it; exec keeps the pid, so a tiny launcher can set both and become pcscd.
_SOCKET_ACTIVATE = """
import os, sys
fd = int(sys.argv[1])
if fd != 3:
    os.dup2(fd, 3)
    os.close(fd)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
os.execv(sys.argv[2], sys.argv[2:])
"""


class PcscdError(RuntimeError):
    """pcscd is missing, broken or did not come up; the message says what to do."""


def find_pcscd() -> Path:
    found = shutil.which("pcscd") or shutil.which("pcscd", path="/usr/sbin:/sbin")
    if found is None:
        raise PcscdError(f"`pcscd` not found; {INSTALL_HINT}")
    if not VPCD_DRIVER.exists():
        raise PcscdError(f"the virtual reader driver {VPCD_DRIVER} is missing; {INSTALL_HINT}")
    return Path(found)


def free_port_pair() -> int:
    """A port p on which p and p + 1 are both free right now (vpcd wants consecutive ports)."""
    return free_port_run(SLOTS)


def free_port_run(count: int) -> int:
    """A port p on which p .. p + count - 1 are all free right now (one vpcd device per two of them)."""
    for _ in range(50):
        with contextlib.ExitStack() as held:
            first = held.enter_context(socket.socket())
            first.bind(("0.0.0.0", 0))  # noqa: S104 - vpcd binds all interfaces, so check the same
            port = int(first.getsockname()[1])
            if port + count - 1 > 65535:
                continue
            try:
                for offset in range(1, count):
                    held.enter_context(socket.socket()).bind(("0.0.0.0", port + offset))  # noqa: S104
            except OSError:
                continue
            return port
    raise PcscdError(f"found no {count} consecutive free TCP ports for the virtual readers")


@dataclass
class PcscDaemon:
    """One pcscd: start()/stop()/kill()/restart() keep its socket path and reader ports, so PC/SC clients
    see the same readers come back, as after `systemctl restart pcscd` on a Pi.

    `readers` virtual readers (rounded up to whole vpcd devices of two) listen on `base_port` onwards; 0 as
    `base_port` picks free ports.
    """

    root: Path
    base_port: int = 0
    binary: Path = field(default_factory=find_pcscd)
    readers: int = SLOTS
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.readers <= MAX_READERS:
            raise ValueError(f"a pcscd can have 1 to {MAX_READERS} virtual readers, not {self.readers}")
        self.readers = self.devices * SLOTS
        if self.base_port == 0:
            self.base_port = free_port_run(self.readers)

    @property
    def devices(self) -> int:
        """How many vpcd devices (two readers each) the daemon is configured with."""
        return -(-self.readers // SLOTS)

    @property
    def socket_path(self) -> Path:
        return self.root / "pcscd.comm"

    @property
    def log_path(self) -> Path:
        return self.root / "pcscd.log"

    @property
    def config_dir(self) -> Path:
        return self.root / "reader.conf.d"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def reader_name(self, slot: int = 0) -> str:
        """The PC/SC name of virtual reader `slot` (0 .. readers - 1): "Virtual PCD 00 01" for slot 1,
        "Virtual PCD B 00 00" for slot 2."""
        device, index = divmod(self._slot(slot), SLOTS)
        return f"{device_name(device)} 00 {index:02d}"

    def port(self, slot: int = 0) -> int:
        """The TCP port a VirtualCard connects to in order to lie on reader `slot`."""
        return self.base_port + self._slot(slot)

    def client_env(self) -> dict[str, str]:
        """Environment for a PC/SC client process (an agent under test) that should use this daemon."""
        return {SOCKET_ENV: str(self.socket_path)}

    def start(self) -> None:
        """Start pcscd and return once its virtual readers listen."""
        if self.running:
            return
        self._write_config()
        listener = self._bind_socket()
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - our own launcher and the pcscd found on PATH
                [sys.executable, "-c", _SOCKET_ACTIVATE, str(listener.fileno()),
                 str(self.binary), "-f", "-i", "-c", str(self.config_dir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(listener.fileno(),),
                start_new_session=True,
            )  # fmt: skip
        listener.close()  # pcscd holds the only copy now: when it dies, clients get "connection refused"
        self._wait_until_ready(log_offset)

    def stop(self) -> None:
        """A clean shutdown (SIGTERM)."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """A crash (SIGKILL)."""
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _slot(self, slot: int) -> int:
        if not 0 <= slot < self.readers:
            raise ValueError(f"the virtual readers are slots 0..{self.readers - 1}, not {slot}")
        return slot

    def _write_config(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.config_dir.glob("vpcd*"):
            stale.unlink()
        for device in range(self.devices):
            port = self.base_port + device * SLOTS
            (self.config_dir / f"vpcd{device}").write_text(
                f'FRIENDLYNAME "{device_name(device)}"\n'
                f"DEVICENAME /dev/null:{port:#x}\n"
                f"LIBPATH {self._driver(device)}\n"
                f"CHANNELID {port:#x}\n"
            )

    def _driver(self, device: int) -> Path:
        """The system's vpcd driver for the first device, a private copy for each further one."""
        if device == 0:
            return VPCD_DRIVER
        copy = self.root / "drivers" / f"libifdvpcd-{device}.so"
        if not copy.exists():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(VPCD_DRIVER, copy)
        return copy

    def _bind_socket(self) -> socket.socket:
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.socket_path))
        listener.listen(64)
        self.socket_path.chmod(0o666)
        return listener

    def _wait_until_ready(self, log_offset: int) -> None:
        assert self._process is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            log = self._log_since(log_offset)
            if "init failed" in log or "Could not initialize" in log:
                self.stop()
                last = self.base_port + self.readers - 1
                raise PcscdError(
                    f"pcscd could not open the virtual readers on ports {self.base_port}-{last}:\n{log}"
                )
            if "daemon ready" in log:
                return
            if self._process.poll() is not None:
                self._process = None
                raise PcscdError(f"pcscd exited at start:\n{log}")
            if time.monotonic() > deadline:
                self.stop()
                raise PcscdError(f"pcscd was not ready within {READY_TIMEOUT_S:.0f} s:\n{log}")
            time.sleep(0.02)

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

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


def device_name(device: int) -> str:
    """The FRIENDLYNAME of vpcd device `device`: "Virtual PCD", then "Virtual PCD B", "Virtual PCD C", ..."""
    return FRIENDLY_NAME if device == 0 else f"{FRIENDLY_NAME} {chr(ord('A') + device)}"


@contextlib.contextmanager
def running_pcscd(*, export_socket: bool = True, readers: int = DEFAULT_READERS) -> Iterator[PcscDaemon]:
    """A started pcscd with `readers` virtual readers in its own temporary directory, stopped and deleted
    afterwards.

    With `export_socket`, this process's PC/SC clients (pyscard) are pointed at it via PCSCLITE_CSOCK_NAME;
    that only works if nothing in the process has used PC/SC before.
    """
    # /tmp keeps the unix socket path under its 107-byte limit even with a long TMPDIR.
    root = Path(tempfile.mkdtemp(prefix="meraapent-pcscd-", dir="/tmp"))
    daemon = PcscDaemon(root=root, readers=readers)
    previous = os.environ.get(SOCKET_ENV)
    if export_socket:
        os.environ[SOCKET_ENV] = str(daemon.socket_path)
    try:
        daemon.start()
        yield daemon
    finally:
        try:
            daemon.stop()
        finally:
            if export_socket:
                if previous is None:
                    os.environ.pop(SOCKET_ENV, None)
                else:
                    os.environ[SOCKET_ENV] = previous
            shutil.rmtree(root, ignore_errors=True)
