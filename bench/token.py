"""Phone-token figures: sign and verify time against a bare Ed25519 verification, size, and QR version.

`python -m bench.token` prints one JSON line. All figures come from this run on this machine: medians of
single calls timed with perf_counter_ns, so a stray scheduler pause does not move them. Goals: verification
costs at most 1.5 × a raw Ed25519 verify, a typical token is at most 140 bytes and fits QR version 7.
The size and QR figures are for the larger typical token, the one with a booking ref.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.keys import PublicKeySet, PublishedKey, key_id
from protocol.token import TokenClaims, issue_token, token_bytes, verify_token

ITERATIONS = 3000
GOAL_VERIFY_RATIO = 1.5
GOAL_BYTES = 140
GOAL_QR_VERSION = 7


def medians_us(calls: Sequence[Callable[[], object]], iterations: int = ITERATIONS) -> list[float]:
    """Median time of each call in µs, the calls taken in turn so that load from other processes hits all."""
    for call in calls:
        for _ in range(50):  # warm up caches and lazy imports
            call()
    samples: list[list[int]] = [[] for _ in calls]
    for _ in range(iterations):
        for call, times in zip(calls, samples, strict=True):
            start = time.perf_counter_ns()
            call()
            times.append(time.perf_counter_ns() - start)
    return [statistics.median(times) / 1000 for times in samples]


def typical_claims(now: datetime, booking: str | None) -> TokenClaims:
    return TokenClaims(
        issuer="asker",
        holder="p1234",
        site="heggedal",
        doors=("hovedinngang",),
        booking=booking,
        not_before=now,
        expires=now + timedelta(hours=3),
    )


def smallest_qr(text: str) -> tuple[int, str]:
    """The QR version of `text` in alphanumeric mode: M if that still fits the goal version, else L."""
    for error in ("M", "L"):
        qr = segno.make_qr(text, error=error, mode="alphanumeric", boost_error=False)
        if int(qr.version) <= GOAL_QR_VERSION or error == "L":
            return int(qr.version), error
    raise AssertionError("unreachable")


def run() -> dict[str, Any]:
    private_key = Ed25519PrivateKey.generate()
    kid = key_id(private_key)
    keys = PublicKeySet([PublishedKey(private_key.public_key())])
    now = datetime.now(UTC).replace(microsecond=0)
    claims = typical_claims(now, booking="b567")
    text = issue_token(claims, private_key, kid)
    plain = issue_token(typical_claims(now, booking=None), private_key, kid)
    # the bare verification checks the very signature of the token over its Sig_structure (RFC 9052 §4.4)
    protected, _, payload, signature = cbor2.loads(token_bytes(text)).value
    message = cbor2.dumps(["Signature1", protected, b"", payload])
    public_key = private_key.public_key()

    sign_us, verify_us, raw_us = medians_us(
        [
            lambda: issue_token(claims, private_key, kid),
            lambda: verify_token(text, keys, now),
            lambda: public_key.verify(signature, message),
        ]
    )
    size = len(token_bytes(text))
    size_plain = len(token_bytes(plain))
    version, error = smallest_qr(text)
    ratio = verify_us / raw_us
    return {
        "bench": "token",
        "iterations": ITERATIONS,
        "sign_us": round(sign_us, 1),
        "verify_us": round(verify_us, 1),
        "raw_ed25519_verify_us": round(raw_us, 1),
        "verify_ratio": round(ratio, 3),
        "size_bytes": size,
        "size_bytes_without_booking": size_plain,
        "base45_chars": len(text),
        "qr_version": version,
        "qr_error": error,
        "goals": {
            "verify_ratio_le_1_5": ratio <= GOAL_VERIFY_RATIO,
            "size_le_140_bytes": size <= GOAL_BYTES,
            "size_le_140_bytes_without_booking": size_plain <= GOAL_BYTES,
            "qr_version_le_7": version <= GOAL_QR_VERSION,
        },
    }


def main() -> None:
    json.dump(run(), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
