"""An open-loop HTTP load generator for central's API: a fixed arrival schedule and a caretaker's mix.

`python -m bench.scale_load --ports P[,P2] --token-file F --targets-file T [--rate 500] [--duration 45]` sends
request i at exactly start + i / rate, whatever central answers: a slow answer must not lower the rate it
is measured at (coordinated omission). Latency is measured from that scheduled moment to the last byte of
the answer, so time spent waiting for a free connection counts as central's. Requests go over a pool of
keep-alive HTTP/1.1 connections on raw asyncio streams (cheaper than an HTTP library: the generator shares
the two cores with what it measures). Prints one JSON line (LoadResult.summary()).

The mix is what caretakers' consoles do, spread over the fleet's sites (READS,
WRITE_SHARE): list sites, a site's events
and doors, alarms, a name search, and a card blocked and later unblocked.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hw_sim.fleet import latency_figures
from hw_sim.fleet.report import percentile

# (weight, kind) of the reads; writes (a card blocked, the same card unblocked later) come on top, as a share.
READS: tuple[tuple[float, str], ...] = (
    (25, "events"),
    (20, "doors"),
    (15, "sites"),
    (15, "alarms"),
    (15, "people"),
)
WRITE_SHARE = 0.002  # about one card blocked and unblocked a second at 500 requests/s
REQUEST_TIMEOUT_S = 30.0
MAX_HEADER_LINES = 100


@dataclass(frozen=True)
class Targets:
    """What the requests name: site slugs, card credential ids (blocked and unblocked), search words."""

    sites: Sequence[str]
    credentials: Sequence[int]
    names: Sequence[str]

    @classmethod
    def load(cls, path: Path) -> Targets:
        raw = json.loads(path.read_text())
        return cls(sites=raw["sites"], credentials=raw["credentials"], names=raw["names"])

    def dump(self, path: Path) -> None:
        body = {"sites": list(self.sites), "credentials": list(self.credentials), "names": list(self.names)}
        path.write_text(json.dumps(body))


class Plan:
    """Which request comes next: kinds drawn by weight (READS, and the write share); each block is
    followed by the unblock of the same card (a blocked card is never left behind for good)."""

    def __init__(self, targets: Targets, seed: int, write_share: float = WRITE_SHARE) -> None:
        if not 0 <= write_share <= 1:
            raise ValueError(f"the write share must be 0–1, got {write_share}")
        self.targets = targets
        self.rng = random.Random(seed)  # which page a caretaker opens: simulation, not security
        reads = sum(w for w, _k in READS)
        self.kinds = [kind for _w, kind in READS] + ["block", "unblock"]
        self.weights = [w / reads * (1 - write_share) for w, _k in READS] + [write_share / 2] * 2
        self.blocked: list[int] = []
        self.next_card = 0

    def next(self) -> tuple[str, str, str]:
        """(kind, method, path) of the next request."""
        kind = self.rng.choices(self.kinds, self.weights)[0]
        t, site = self.targets, self.rng.choice(self.targets.sites)
        if kind == "unblock" and not self.blocked:
            kind = "block"
        if kind == "block":
            card = t.credentials[self.next_card % len(t.credentials)]
            self.next_card += 1
            self.blocked.append(card)
            return kind, "POST", f"/credentials/{card}/block"
        if kind == "unblock":
            return kind, "POST", f"/credentials/{self.blocked.pop(0)}/unblock"
        paths = {
            "events": f"/events?site={site}",
            "doors": f"/sites/{site}/doors",
            "sites": "/sites",
            "alarms": "/alarms",
            "people": f"/people?name={quote(self.rng.choice(t.names))}",
        }
        return kind, "GET", paths[kind]


class HttpError(Exception):
    """The connection broke or the answer was not HTTP/1.1 as we speak it."""


class Connection:
    """One keep-alive HTTP/1.1 connection: a request, then its whole answer (Content-Length or chunked)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host
        self.open = True
        self.used = 0

    @classmethod
    async def connect(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)  # asyncio sets TCP_NODELAY
        return cls(reader, writer, host)

    async def request(self, method: str, path: str, token: str) -> int:
        body = "Content-Length: 0\r\n" if method != "GET" else ""
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {token}\r\n{body}\r\n"
        self.writer.write(head.encode())
        self.used += 1
        line = await self.reader.readline()
        if not line:
            raise HttpError("connection closed before an answer")
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise HttpError(f"not an HTTP answer: {line[:60]!r}")
        headers = await self._headers()
        await self._body(headers)
        if headers.get("connection", "").lower() == "close":
            self.close()
        return int(parts[1])

    async def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADER_LINES):
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                return headers
            name, _sep, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        raise HttpError("too many header lines")

    async def _body(self, headers: dict[str, str]) -> None:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            while size := int((await self.reader.readline()).split(b";")[0].strip() or b"0", 16):
                await self.reader.readexactly(size + 2)
            await self.reader.readline()  # the empty trailer line
        else:
            await self.reader.readexactly(int(headers.get("content-length", "0")))

    def close(self) -> None:
        self.open = False
        with contextlib.suppress(OSError, RuntimeError):
            self.writer.close()


class Pool:
    """`size` places for connections, opened in turn to each of `ports` (central's API processes, as a load
    balancer spreads them) when first needed; a request waits for a free place (and that wait counts in its
    latency). A closed connection leaves its place empty for a new one. asyncio.Queue hands a place to the
    next waiter even when the one before gave up (timed out)."""

    def __init__(self, host: str, ports: Sequence[int], size: int) -> None:
        self.host, self.ports = host, list(ports)
        self.places: asyncio.Queue[Connection | None] = asyncio.Queue()
        for _ in range(size):
            self.places.put_nowait(None)
        self.all: list[Connection] = []

    async def take(self) -> Connection:
        conn = await self.places.get()
        if conn is not None and conn.open:
            return conn
        try:
            conn = await Connection.connect(self.host, self.ports[len(self.all) % len(self.ports)])
        except BaseException:  # refused, or the request's time ran out while connecting
            self.places.put_nowait(None)
            raise
        self.all.append(conn)
        return conn

    def give_back(self, conn: Connection) -> None:
        self.places.put_nowait(conn if conn.open else None)

    def close(self) -> None:
        for conn in self.all:
            conn.close()


@dataclass
class LoadResult:
    """What the generator saw: per request its kind, status (0: no answer) and latencies."""

    rate: float
    duration: float
    scheduled: int = 0
    elapsed_s: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    latency_s: list[float] = field(default_factory=list)
    by_kind: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    lag_s: list[float] = field(default_factory=list)  # scheduled moment -> the request left (pool wait too)
    failures: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    reconnects: int = 0

    def record(self, kind: str, status: int, latency: float, lag: float | None) -> None:
        """`lag`: from the scheduled moment until the request left (None: it never got a connection)."""
        self.statuses[str(status)] += 1
        if status:
            self.latency_s.append(latency)
            self.by_kind[kind].append(latency)
        if lag is not None:
            self.lag_s.append(lag)

    def summary(self) -> dict[str, Any]:
        answered = sum(n for s, n in self.statuses.items() if s != "0")
        server_errors = sum(n for s, n in self.statuses.items() if s.startswith("5"))
        figures = latency_figures(self.latency_s)
        return {
            "target_rate": self.rate,
            "duration_s": self.duration,
            "scheduled": self.scheduled,
            "answered": answered,
            "achieved_rate": round(answered / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            "p50_ms": figures["p50_ms"],
            "p90_ms": round(percentile(sorted(self.latency_s), 90) * 1000, 1),
            "p99_ms": figures["p99_ms"],
            "max_ms": figures["max_ms"],
            "statuses": dict(sorted(self.statuses.items())),
            "server_errors": server_errors,
            "no_answer": self.statuses.get("0", 0),
            "failures": dict(self.failures),
            "by_kind": {
                kind: {"n": len(v), **latency_figures(v)} for kind, v in sorted(self.by_kind.items())
            },
            "send_lag_p99_ms": latency_figures(self.lag_s)["p99_ms"],
            "connections_opened": self.connections,
            "reconnects": self.reconnects,
        }


async def _send(
    pool: Pool, result: LoadResult, method: str, path: str, token: str, left: list[float]
) -> int:
    """The answer's status; `left` gets the moment the request left. A reused keep-alive connection that
    fails may have been closed by the server while idle: that one request is tried once more on a new
    connection (block and unblock are idempotent, so a repeat changes nothing). A connection whose answer
    was not read to the end (an error, or the request timed out) is closed, never reused."""
    for attempt in range(2):
        conn = await pool.take()
        left.append(time.monotonic())
        answered = False
        try:
            status = await conn.request(method, path, token)
            answered = True
            return status
        except (HttpError, OSError, asyncio.IncompleteReadError):
            if attempt == 0 and conn.used > 1:
                result.reconnects += 1
                continue
            raise
        finally:
            if not answered:
                conn.close()
            pool.give_back(conn)
    raise HttpError("unreachable")


async def _one(
    pool: Pool, result: LoadResult, kind: str, method: str, path: str, token: str, due: float
) -> None:
    status, left = 0, list[float]()
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_S):
            status = await _send(pool, result, method, path, token, left)
    except TimeoutError:
        result.failures["timeout"] += 1
    except (HttpError, OSError, asyncio.IncompleteReadError) as exc:
        result.failures[type(exc).__name__] += 1
    result.record(kind, status, time.monotonic() - due, left[0] - due if left else None)


async def run_load(
    host: str,
    ports: Sequence[int],
    token: str,
    targets: Targets,
    *,
    rate: float,
    duration: float,
    connections: int = 64,
    write_share: float = WRITE_SHARE,
    seed: int = 1,
) -> LoadResult:
    """Send rate × duration requests on the fixed schedule; wait for the last answers; what was seen."""
    if rate <= 0 or duration <= 0:
        raise ValueError("rate and duration must be > 0")
    plan, pool = Plan(targets, seed, write_share), Pool(host, ports, connections)
    result = LoadResult(rate=rate, duration=duration, scheduled=int(rate * duration))
    tasks: list[asyncio.Task[None]] = []
    start = time.monotonic()
    try:
        for i in range(result.scheduled):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            kind, method, path = plan.next()
            tasks.append(asyncio.create_task(_one(pool, result, kind, method, path, token, due)))
        await asyncio.gather(*tasks)
        result.elapsed_s = time.monotonic() - start
    finally:
        result.connections = len(pool.all)
        pool.close()
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--ports", required=True, help="central's API ports, comma-separated")
    parser.add_argument("--token-file", type=Path, required=True, help="a staff API token (one line)")
    parser.add_argument("--targets-file", type=Path, required=True, help="JSON: sites, credentials, names")
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--duration", type=float, default=45.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--write-share", type=float, default=WRITE_SHARE, help="share of block + unblock")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    token = args.token_file.read_text().strip()
    result = asyncio.run(
        run_load(
            args.host,
            [int(p) for p in args.ports.split(",")],
            token,
            Targets.load(args.targets_file),
            rate=args.rate,
            duration=args.duration,
            connections=args.connections,
            write_share=args.write_share,
            seed=args.seed,
        )
    )
    sys.stdout.write(json.dumps(result.summary()) + "\n")


if __name__ == "__main__":
    main()
