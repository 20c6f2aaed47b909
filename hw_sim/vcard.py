"""A contactless card that lies on a virtual reader: the card side of vsmartcard's vpcd protocol.

vpcd (a pcscd reader driver) listens on TCP, one port per virtual reader; whoever connects is the card in that
reader, and closing the connection takes the card away. Every message is a 2-byte big-endian length and a
payload. A 1-byte payload is a control code (0 power off, 1 power on, 2 reset, 4 send the ATR); anything
longer is an APDU, answered with a response APDU. The only command a door reader sends is GET DATA for the
UID (`FF CA 00 00 00`, PC/SC part 3); everything else gets "instruction not supported".

vpcd asks for the ATR on every presence poll, so the card must acknowledge at once: TCP_QUICKACK after each
recv, or delayed ACKs cost 40-90 ms per exchange.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from types import TracebackType

VPCD_PORT = 35963  # reader 0 of Debian's stock vpcd configuration; reader 1 listens on the next port
# ISO 14443-4 contactless card without historical bytes, as PC/SC readers build it (T=1, TCK 0x01).
CONTACTLESS_ATR = bytes.fromhex("3B80800101")

CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4
GET_UID = bytes.fromhex("FFCA000000")
SW_OK = bytes.fromhex("9000")
SW_INS_NOT_SUPPORTED = bytes.fromhex("6D00")
_LENGTH = struct.Struct(">H")
_LEAVE_WAIT_S = 1.5  # vpcd polls presence every 0.4 s; longer means pcscd is gone or stuck


def card_response(payload: bytes, uid: bytes, atr: bytes = CONTACTLESS_ATR) -> bytes | None:
    """What the card sends back for one vpcd message; None when vpcd expects no answer (power, reset)."""
    if len(payload) == 1:
        return atr if payload[0] == CTRL_ATR else None
    if payload == GET_UID:
        return uid + SW_OK
    return SW_INS_NOT_SUPPORTED


class VirtualCard:
    """One card: `present()` lays it on the reader behind `port`, `remove()` takes it away.

    The card answers vpcd from its own thread while present. It can be presented again after removal.
    """

    def __init__(self, uid: bytes, port: int = VPCD_PORT, host: str = "127.0.0.1") -> None:
        if not 4 <= len(uid) <= 10:
            raise ValueError(f"a contactless UID has 4, 7 or 10 bytes, not {len(uid)}")
        self.uid = uid
        self.port = port
        self.host = host
        self.uid_reads = 0  # how often a reader asked for the UID while the card was presented
        # time.monotonic() of vpcd's first poll after present(): when pcscd "saw" the card. vpcd is polled
        # every 0.4 s, a real reader reports at once, so latency benchmarks should start the clock here.
        self.detected_at: float | None = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._leaving = threading.Event()

    @property
    def is_present(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def present(self) -> None:
        if self.is_present:
            return
        try:
            sock = socket.create_connection((self.host, self.port), timeout=5)
        except OSError as exc:
            raise RuntimeError(
                f"no virtual reader (vpcd) listens on {self.host}:{self.port}: is pcscd with vsmartcard-vpcd "
                f"running? ({exc})"
            ) from exc
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._leaving.clear()
        self.detected_at = None
        self._sock = sock
        self._thread = threading.Thread(
            target=self._serve, args=(sock,), name=f"vcard:{self.port}", daemon=True
        )
        self._thread.start()

    def remove(self, *, wait: bool = True) -> None:
        """Take the card away. With `wait`, the card leaves at vpcd's next presence poll (at most ~0.4 s), so
        pcscd has seen the removal when this returns and a card presented next is a new insertion; without
        it, a card presented within the same poll would look to pcscd like the same card staying."""
        thread = self._thread
        if wait and thread is not None and thread.is_alive():
            self._leaving.set()
            thread.join(timeout=_LEAVE_WAIT_S)
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> VirtualCard:
        self.present()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.remove()

    def respond(self, payload: bytes) -> bytes | None:
        """The card's answer to one vpcd message (override for cards that misbehave)."""
        return card_response(payload, self.uid)

    def _serve(self, sock: socket.socket) -> None:
        """Answer vpcd until the reader or `remove()` closes the connection."""
        with contextlib.suppress(OSError), sock:
            while True:
                header = _recv_exact(sock, _LENGTH.size)
                if not header:
                    return
                (length,) = _LENGTH.unpack(header)
                payload = _recv_exact(sock, length)
                if len(payload) != length:
                    return
                if self.detected_at is None:
                    self.detected_at = time.monotonic()
                if payload == bytes([CTRL_ATR]) and self._leaving.is_set():
                    return  # leave on a presence poll: vpcd reads EOF and reports the card removed
                if payload == GET_UID:
                    self.uid_reads += 1
                answer = self.respond(payload)
                if answer is not None:
                    sock.sendall(_LENGTH.pack(len(answer)) + answer)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    """Exactly `size` bytes, or b"" when the peer closed the connection first."""
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        # Re-armed after every read: Linux falls back to delayed ACKs on its own.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        if not chunk:
            return b""
        chunks += chunk
    return bytes(chunks)
