"""The kiosk's line to its site agent: ask for today's overview, check in, extend or end a booking.

`KioskLink` is what the screens use. `SocketLink` speaks protocol.kiosk over the agent's Unix socket, one
JSON line per request and one per reply, reconnecting by itself; `FakeLink` is its virtual twin with
scripted replies, for the tests and `meraapent kiosk --demo`.

Whatever goes wrong on the way (no agent, no socket, a hung agent, a reply that is not one) reaches the
screens as one `LinkDownError`, which they show as "the door system is not answering"; never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol, TypeVar

from protocol.kiosk import (
    MAX_LINE_BYTES,
    ChangeOutcome,
    ChangeReply,
    CheckInOutcome,
    CheckInReply,
    CheckInRequest,
    EndRequest,
    ErrorReply,
    ExtendRequest,
    KioskProtocolError,
    KioskReply,
    KioskRequest,
    TodayReply,
    TodayRequest,
    decode_reply,
    encode,
)

R = TypeVar("R", bound=KioskReply)


class LinkDownError(Exception):
    """The agent did not answer usefully; the message says why, for the log (never for the screen)."""


class _BrokenError(LinkDownError):
    """The connection closed under us: on a reused connection the agent most likely restarted."""


class KioskLink(Protocol):
    """What the kiosk asks its agent. Every method raises only `LinkDownError`."""

    async def today(self) -> TodayReply: ...

    async def check_in(self, request: CheckInRequest) -> CheckInReply: ...

    async def extend(self, session: str, minutes: int) -> ChangeReply: ...

    async def end(self, session: str) -> ChangeReply: ...

    async def close(self) -> None: ...


class SocketLink:
    """protocol.kiosk over the agent's Unix socket: one connection, one request at a time, in order.

    A request on a connection the agent has since closed (it restarted) is sent once more on a fresh one
    when asking twice does no harm (today, check-in: a second check-in is "already checked in"); extend
    and end are never repeated, since the first may have been applied."""

    def __init__(self, path: Path | str, *, connect_timeout: float = 2.0, reply_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.connect_timeout = connect_timeout
        self.reply_timeout = reply_timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def today(self) -> TodayReply:
        return await self._ask(TodayRequest(), TodayReply, repeatable=True)

    async def check_in(self, request: CheckInRequest) -> CheckInReply:
        return await self._ask(request, CheckInReply, repeatable=True)

    async def extend(self, session: str, minutes: int) -> ChangeReply:
        return await self._ask(_message(lambda: ExtendRequest(session=session, minutes=minutes)), ChangeReply)

    async def end(self, session: str) -> ChangeReply:
        return await self._ask(_message(lambda: EndRequest(session=session)), ChangeReply)

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    async def _ask(self, request: KioskRequest, expected: type[R], *, repeatable: bool = False) -> R:
        async with self._lock:
            reused = self._writer is not None
            try:
                reply = await self._exchange(request)
            except _BrokenError:
                if not (repeatable and reused):
                    raise
                reply = await self._exchange(request)
        if isinstance(reply, ErrorReply):
            raise LinkDownError(f"the agent could not serve a {type(request).__name__}: {reply.message}")
        if not isinstance(reply, expected):
            raise LinkDownError(
                f"the agent answered a {type(request).__name__} with a {type(reply).__name__}"
            )
        return reply

    async def _exchange(self, request: KioskRequest) -> KioskReply:
        """Send one line and read one; any failure drops the connection, so the next request reconnects.
        So does being cancelled half-way: the reply still on its way must not answer the next request."""
        try:
            reader, writer = await self._connection()
            writer.write(encode(request))
            await asyncio.wait_for(writer.drain(), self.reply_timeout)
            line = await asyncio.wait_for(reader.readline(), self.reply_timeout)
            if not line.endswith(b"\n"):
                raise _BrokenError(f"the agent closed the connection at {self.path}")
            return decode_reply(line)
        except BaseException as exc:
            self._hang_up()
            raise _failure(exc, self) from None

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is not None and self._writer is not None:
            return self._reader, self._writer
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(self.path, limit=MAX_LINE_BYTES + 1), self.connect_timeout
            )
        except TimeoutError:
            raise LinkDownError(f"no answer from the agent's socket {self.path}") from None
        except OSError as exc:
            raise LinkDownError(
                f"cannot reach the agent's socket {self.path}: {exc.strerror or exc}"
            ) from None
        self._reader, self._writer = reader, writer
        return reader, writer

    def _hang_up(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()

    async def _drop(self) -> None:
        writer = self._writer
        self._hang_up()
        if writer is not None:
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)


def _failure(exc: BaseException, link: SocketLink) -> BaseException:
    """What `exc`, raised while talking to the agent, means for the kiosk (cancellation stays itself)."""
    if isinstance(exc, LinkDownError | asyncio.CancelledError) or not isinstance(exc, Exception):
        return exc
    if isinstance(exc, ConnectionError):
        return _BrokenError(f"the connection to the agent at {link.path} broke: {exc}")
    if isinstance(exc, TimeoutError):
        return LinkDownError(f"the agent at {link.path} did not answer within {link.reply_timeout:g} s")
    if isinstance(exc, KioskProtocolError | ValueError | asyncio.LimitOverrunError):
        return LinkDownError(f"the agent at {link.path} sent something that is not a reply: {exc}")
    return LinkDownError(f"talking to the agent at {link.path} failed: {type(exc).__name__}: {exc}")


def _message(build: Callable[[], KioskRequest]) -> KioskRequest:
    """A request from what the screens hold; a value the contract refuses is a LinkDownError, not a crash."""
    try:
        return build()
    except (ValueError, TypeError) as exc:
        raise LinkDownError(f"not a valid request: {exc}") from None


# --- the virtual twin --------------------------------------------------------------------------------------


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FakeLink:
    """A scripted agent. Check-ins are answered from `check_ins` by what identified the person (the card's
    hex uid, the QR text or the booking code); anything else is UNKNOWN. Extend and end apply to the booking
    of a session handed out in a CHECKED_IN / ALREADY_CHECKED_IN reply unless `extend_replies` (by minutes)
    or `end_reply` say otherwise. `down = True` makes every request fail like a dead agent. Every request is
    kept in `requests`, for tests to look at."""

    def __init__(
        self,
        today: TodayReply | Callable[[], TodayReply] | None = None,
        *,
        check_ins: Mapping[str, CheckInReply] | None = None,
        extend_replies: Mapping[int, ChangeReply] | None = None,
        end_reply: ChangeReply | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.today_reply = today
        self.check_ins = dict(check_ins or {})
        self.extend_replies = dict(extend_replies or {})
        self.end_reply = end_reply
        self.clock = clock
        self.down = False
        self.requests: list[KioskRequest] = []
        self._ends: dict[str, datetime] = {}  # session → the booking's end

    async def today(self) -> TodayReply:
        self._record(TodayRequest())
        reply = self.today_reply() if callable(self.today_reply) else self.today_reply
        if reply is None:
            raise LinkDownError("the fake agent has no overview of today")
        return reply

    async def check_in(self, request: CheckInRequest) -> CheckInReply:
        self._record(request)
        key = request.uid or request.text or request.code or ""
        reply = self.check_ins.get(key, CheckInReply(outcome=CheckInOutcome.UNKNOWN))
        if reply.session is not None and reply.booking is not None:
            self._ends.setdefault(reply.session, reply.booking.ends_at)
        return reply

    async def extend(self, session: str, minutes: int) -> ChangeReply:
        self._record(_message(lambda: ExtendRequest(session=session, minutes=minutes)))
        if minutes in self.extend_replies:
            return self.extend_replies[minutes]
        if session not in self._ends:
            return ChangeReply(outcome=ChangeOutcome.SESSION_EXPIRED)
        self._ends[session] += timedelta(minutes=minutes)
        return ChangeReply(outcome=ChangeOutcome.ACCEPTED, ends_at=self._ends[session])

    async def end(self, session: str) -> ChangeReply:
        self._record(_message(lambda: EndRequest(session=session)))
        if self.end_reply is not None:
            return self.end_reply
        if self._ends.pop(session, None) is None:
            return ChangeReply(outcome=ChangeOutcome.SESSION_EXPIRED)
        return ChangeReply(outcome=ChangeOutcome.ACCEPTED, ends_at=self.clock())

    async def close(self) -> None:
        return None

    def _record(self, request: KioskRequest) -> None:
        if self.down:
            raise LinkDownError("the fake agent is down")
        self.requests.append(request)
