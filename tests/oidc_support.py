"""A real OpenID Connect provider for the sign-in tests (no tests here): tests/js/oidc_provider.mjs in node.

`oidc_provider(redirect_uri, accounts)` starts it on a free loopback port, waits until its discovery document
answers, yields where it is and which client to use, and stops it. `fodselsnummer(birth_date)` makes a
synthetic, checksum-valid Norwegian national identity number for unit tests (the provider makes its own).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import IO, Literal

import httpx

from hw_sim.broker import free_port

SCRIPT = Path(__file__).parent / "js" / "oidc_provider.mjs"
START_TIMEOUT_S = 15.0
_WEIGHTS_1 = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_WEIGHTS_2 = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


@dataclass(frozen=True)
class TestAccount:
    """Someone who can sign in at the provider: log in as `login` with any password."""

    __test__ = False  # not a pytest test class

    login: str
    name: str
    birthdate: str  # YYYY-MM-DD
    claim: Literal["pid", "birthdate"] = "pid"  # ID-porten style (fødselsnummer) or the standard claim


@dataclass(frozen=True)
class RunningProvider:
    issuer: str
    client_id: str
    client_secret: str


def _check_digit(digits: Sequence[int], weights: Sequence[int]) -> int:
    return (11 - sum(w * d for w, d in zip(weights, digits, strict=False)) % 11) % 11


def fodselsnummer(birth_date: date, seed: int = 1) -> str:
    """A fødselsnummer for `birth_date` with valid check digits (individual number in the century's range)."""
    first = 500 if birth_date.year >= 2000 else 0
    for step in range(500):
        individual = first + (seed * 37 + step) % 500
        digits = [int(c) for c in f"{birth_date:%d%m%y}{individual:03d}"]
        k1 = _check_digit(digits, _WEIGHTS_1)
        k2 = _check_digit([*digits, k1], _WEIGHTS_2)
        if k1 != 10 and k2 != 10:
            return "".join(map(str, digits)) + f"{k1}{k2}"
    raise ValueError(f"no valid fødselsnummer for {birth_date}")


@contextmanager
def oidc_provider(redirect_uri: str, accounts: Sequence[TestAccount]) -> Iterator[RunningProvider]:
    """The provider on a free port with one confidential client for `redirect_uri` and these accounts."""
    port = free_port()
    running = RunningProvider(f"http://127.0.0.1:{port}", "meraapent-test", secrets.token_urlsafe(16))
    command = [
        "node",
        str(SCRIPT),
        f"--port={port}",
        f"--client-id={running.client_id}",
        f"--client-secret={running.client_secret}",
        f"--redirect-uri={redirect_uri}",
        f"--accounts={json.dumps([asdict(a) for a in accounts])}",
    ]
    with tempfile.TemporaryFile(mode="w+") as log:  # a file, not a pipe: a full pipe would stall node
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, text=True)
        try:
            _wait_for_discovery(process, running.issuer, log)
            yield running
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_discovery(process: subprocess.Popen[str], issuer: str, log: IO[str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    url = f"{issuer}/.well-known/openid-configuration"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            errors = log.read()
            raise RuntimeError(f"the OIDC provider exited with {process.returncode}: {errors[-2000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the OIDC provider did not answer at {url} within {START_TIMEOUT_S:.0f} s")
