"""The WAN between a site and central, so it can be cut for real.

Two ways, the first when the machine allows it:
- `NetnsWan`: central's side (its broker and its gateway) lives in a network namespace of its own, joined to
  the site's side by a veth pair; `cut()` sets the site's end of the pair down (`ip link set ... down`).
  Packets are dropped, connections are not closed: what a failed fibre or router looks like. Needs root
  (CAP_NET_ADMIN, CAP_SYS_ADMIN) and iproute2.
- `ProxyWan`: everything on loopback, the site reaching central's broker through a TCP relay in the
  harness; `cut()` makes the relay a black hole (bytes are held, connections stay open, new ones are
  accepted and answered by silence), `restore()` closes what it held. For machines without namespaces.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import shutil
import socket
import subprocess
import threading
from collections.abc import Sequence
from typing import Protocol

from hw_sim.broker import LOOPBACK, free_port

_names = itertools.count()


class Wan(Protocol):
    mechanism: str

    @property
    def central_prefix(self) -> Sequence[str]:
        """The command prefix that runs a process on central's side of the WAN."""
        ...

    @property
    def central_listen(self) -> str:
        """The address central's broker listens on."""
        ...

    def central_address(self, port: int) -> tuple[str, int]:
        """Where the site's side reaches a port of central's side."""
        ...

    def cut(self) -> None: ...

    def restore(self) -> None: ...

    def close(self) -> None: ...


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)  # noqa: S603, S607


class NetnsWan:
    """Central's side in a network namespace behind a veth pair (see the module docstring)."""

    mechanism = "network namespace + veth pair, `ip link set down`"

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100_000}{next(_names)}"
        self.namespace = f"mrp-wan-{tag}"
        self.site_end, self.central_end = f"mrpw{tag}s", f"mrpw{tag}c"
        net = random.randrange(1, 250)  # noqa: S311 - a subnet, not a secret
        self.site_ip, self.central_ip = f"10.213.{net}.1", f"10.213.{net}.2"
        _ip("netns", "add", self.namespace)
        try:
            _ip("link", "add", self.site_end, "type", "veth", "peer", "name", self.central_end)
            _ip("link", "set", self.central_end, "netns", self.namespace)
            _ip("addr", "add", f"{self.site_ip}/30", "dev", self.site_end)
            _ip("link", "set", self.site_end, "up")
            inside = ("netns", "exec", self.namespace, "ip")
            _ip(*inside, "addr", "add", f"{self.central_ip}/30", "dev", self.central_end)
            _ip(*inside, "link", "set", self.central_end, "up")
            _ip(*inside, "link", "set", "lo", "up")
        except subprocess.CalledProcessError:
            self.close()
            raise

    @property
    def central_prefix(self) -> Sequence[str]:
        return ("ip", "netns", "exec", self.namespace)

    @property
    def central_listen(self) -> str:
        return "0.0.0.0"  # noqa: S104 - inside the namespace: its loopback and the veth only

    def central_address(self, port: int) -> tuple[str, int]:
        return self.central_ip, port

    def cut(self) -> None:
        _ip("link", "set", self.site_end, "down")

    def restore(self) -> None:
        _ip("link", "set", self.site_end, "up")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("netns", "delete", self.namespace)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "delete", self.site_end)


class ProxyWan:
    """Central's side on loopback behind a TCP relay that can turn into a black hole."""

    mechanism = "TCP relay turned black hole (no network namespaces here)"

    def __init__(self) -> None:
        self._routes: dict[int, int] = {}
        self._servers: list[socket.socket] = []
        self._held: list[socket.socket] = []
        self._cut = threading.Event()
        self._lock = threading.Lock()

    @property
    def central_prefix(self) -> Sequence[str]:
        return ()

    @property
    def central_listen(self) -> str:
        return LOOPBACK

    def central_address(self, port: int) -> tuple[str, int]:
        if port not in self._routes:
            server = socket.create_server((LOOPBACK, free_port()))
            self._servers.append(server)
            self._routes[port] = server.getsockname()[1]
            threading.Thread(target=self._accept, args=(server, port), daemon=True).start()
        return LOOPBACK, self._routes[port]

    def cut(self) -> None:
        self._cut.set()

    def restore(self) -> None:
        """The line is back: what was held in the black hole is dropped (those peers reconnect)."""
        with self._lock:
            held, self._held = self._held, []
            self._cut.clear()
        for sock in held:
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        for server in self._servers:
            server.close()
        self.restore()

    def _accept(self, server: socket.socket, port: int) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            with self._lock:
                self._held.append(client)
            if self._cut.is_set():
                continue  # accepted into silence
            try:
                upstream = socket.create_connection((LOOPBACK, port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._held.append(upstream)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if self._cut.is_set():
                    continue  # the black hole swallows it; restore() closes the connection
                dst.sendall(data)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.close()


def make_wan() -> Wan:
    """A NetnsWan when namespaces work here (root with iproute2), else a ProxyWan; MERAAPENT_FAULTS_WAN=proxy
    forces the relay."""
    if os.environ.get("MERAAPENT_FAULTS_WAN") != "proxy" and os.geteuid() == 0 and shutil.which("ip"):
        try:
            return NetnsWan()
        except (subprocess.CalledProcessError, OSError):
            pass
    return ProxyWan()
