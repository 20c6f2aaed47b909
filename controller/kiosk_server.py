"""The agent's end of the kiosk socket: newline-delimited JSON requests in, one reply line each, in order.

One thread serves every connection (a kiosk holds one; a second is a tool or a restarted kiosk) with a
selector: it accepts, reads, splits lines, hands each request to the agent (`answer`, normally
Agent.ask_kiosk, which runs it on the agent's thread) and writes the reply. A line that is not a valid
request gets an ErrorReply and the connection stays usable; a line longer than protocol.kiosk's limit is
answered once with an ErrorReply and skipped up to its newline. Nothing here logs what a request carried
(card UIDs, booking codes).

The socket file is created with mode 0660 under a temporary name and renamed into place, so it is never
reachable with looser permissions; a stale file from a crashed agent is removed at start, but a socket that
another process still answers on is left alone (that is an error).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from protocol import kiosk as k

log = structlog.get_logger("controller.kiosk_server")

SOCKET_MODE = 0o660
MAX_CONNECTIONS = 8
SEND_TIMEOUT_S = 2.0  # a kiosk that does not read its replies is dropped
POLL_S = 0.2  # how soon `stop` is noticed
RECV_BYTES = 64 * 1024

Answerer = Callable[[k.Request], k.KioskReply]


class KioskSocketError(OSError):
    """The kiosk socket cannot be set up (path in use by a live process, not a socket, no permission)."""


@dataclass
class _Connection:
    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)
    skipping: bool = False  # inside an oversized line: drop bytes until its newline


class KioskServer:
    def __init__(self, path: Path, answer: Answerer, *, mode: int = SOCKET_MODE) -> None:
        self.path = Path(path)
        self._answer = answer
        self._mode = mode
        self._listener: socket.socket | None = None
        self._selector = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._inode: int | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Create the socket file and start serving; KioskSocketError if the path cannot be used."""
        self._listener = self._bind()
        self._listener.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="kiosk-server", daemon=True)
        self._thread.start()
        log.info("kiosk_server.listening", path=str(self.path))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, close every connection and remove the socket file (if it is still ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        for key in list(self._selector.get_map().values()):
            self._selector.unregister(key.fileobj)
            key.fileobj.close()  # type: ignore[union-attr]
        self._listener = None
        with contextlib.suppress(OSError):
            if self._inode is not None and self.path.stat().st_ino == self._inode:
                self.path.unlink()
        self._inode = None

    def _bind(self) -> socket.socket:
        path = self.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _remove_stale(path)
            temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
            temporary.unlink(missing_ok=True)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                listener.bind(str(temporary))
                os.chmod(temporary, self._mode)
                os.replace(temporary, path)  # appears at its path with its final mode, never before
                listener.listen(MAX_CONNECTIONS)
            except BaseException:
                listener.close()
                temporary.unlink(missing_ok=True)
                raise
        except KioskSocketError:
            raise
        except OSError as exc:
            raise KioskSocketError(f"kiosk socket {path}: {exc.strerror or exc}") from None
        self._inode = path.stat().st_ino
        return listener

    # --- the loop ------------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(POLL_S):
                if key.data is None:
                    self._accept()
                else:
                    self._readable(key.data)

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            sock, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        if len(self._selector.get_map()) > MAX_CONNECTIONS:
            log.warning("kiosk_server.too_many_connections", limit=MAX_CONNECTIONS)
            sock.close()
            return
        sock.settimeout(SEND_TIMEOUT_S)  # reads happen only when data is there; sends may wait this long
        self._selector.register(sock, selectors.EVENT_READ, _Connection(sock))

    def _readable(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError, TimeoutError):
            return
        except OSError:
            data = b""
        if not data:
            self._close(conn)
            return
        conn.buffer += data
        try:
            self._serve_lines(conn)
        except OSError as exc:  # the kiosk went away or stopped reading
            log.info("kiosk_server.connection_dropped", error=str(exc))
            self._close(conn)

    def _serve_lines(self, conn: _Connection) -> None:
        while True:
            end = conn.buffer.find(b"\n")
            if conn.skipping:
                if end < 0:
                    conn.buffer.clear()
                    return
                del conn.buffer[: end + 1]
                conn.skipping = False
                continue
            if end < 0:
                if len(conn.buffer) > k.MAX_LINE_BYTES:
                    conn.buffer.clear()
                    conn.skipping = True
                    self._send(conn, _error(f"a kiosk request has {k.MAX_LINE_BYTES} bytes at most"))
                return
            line = bytes(conn.buffer[: end + 1])
            del conn.buffer[: end + 1]
            if line.strip():
                self._send(conn, self._reply(line))

    def _reply(self, line: bytes) -> k.KioskReply:
        try:
            request = k.decode_request(line)
        except k.KioskProtocolError as exc:
            return _error(str(exc))
        try:
            return self._answer(request)
        except TimeoutError:
            log.warning("kiosk_server.agent_busy", request=type(request).__name__)
            return _error("the agent did not answer in time; try again")
        except Exception as exc:  # the kiosk gets an answer whatever went wrong
            log.error("kiosk_server.request_failed", request=type(request).__name__, error=type(exc).__name__)
            return _error(f"the agent could not serve the request ({type(exc).__name__})")

    def _send(self, conn: _Connection, reply: k.KioskReply) -> None:
        conn.sock.sendall(k.encode(reply))

    def _close(self, conn: _Connection) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        conn.sock.close()


def _error(message: str) -> k.ErrorReply:
    return k.ErrorReply(message=" ".join(message.split())[:300])


def _remove_stale(path: Path) -> None:
    """Remove a socket file nobody answers on; refuse a live one or anything that is not a socket."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise KioskSocketError(f"kiosk socket {path}: the path exists and is not a socket; remove it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)  # left by an agent that stopped without cleaning up
        return
    finally:
        probe.close()
    raise KioskSocketError(f"kiosk socket {path}: another process is serving on it")
