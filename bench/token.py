"""Phone-token figures: sign and verify time against a bare Ed25519 verification, size, and QR version.

`python -m bench.token` prints one JSON line. All figures come from this run on this machine: medians of
single calls timed with perf_counter_ns, so a stray scheduler pause does not move them. Goals: verification
costs at most 1.5 × a raw Ed25519 verify, a typical token is at most 140 bytes and fits QR version 7.
The size and QR figures are for the larger typical token, the one with a booking ref.

The phone-bound presentation (``MA2:``, protocol/holder.py: the token with the phone's key in cnf, the time
step and the phone's ECDSA P-256 signature) is measured beside it: bytes, characters, QR version at error
level M (the issue's goal: at most 10) and at L, and the verify time of the whole presentation beside a raw
Ed25519 and a raw ECDSA P-256 verification in the same run (goal: at most 1.5 × the two together), with
the phone's key object cached (the agent sees the same phones again) and cold. ``m_v10_budget_bytes`` is
how many bytes fit version 10 at M in base45 behind the prefix: two 64-byte signatures and a 33-byte key
leave too little of it for the claims, see the report in `bound_over_budget_bytes`.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import base45
import cbor2
import segno
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocol.holder import PRESENTATION_PREFIX, present, proof_message, time_step, verify_presentation
from protocol.keys import PublicKeySet, PublishedKey, key_id
from protocol.token import PREFIX, TokenClaims, issue_token, p256_public_key, token_bytes, verify_token

ITERATIONS = 3000
GOAL_VERIFY_RATIO = 1.5
GOAL_BYTES = 140
GOAL_QR_VERSION = 7
GOAL_BOUND_QR_VERSION = 10  # at error level M
GOAL_BOUND_VERIFY_RATIO = 1.5  # × (raw Ed25519 + raw ECDSA P-256)


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


def typical_claims(now: datetime, booking: str | None, holder_key: bytes | None = None) -> TokenClaims:
    return TokenClaims(
        issuer="asker",
        holder="p1234",
        site="heggedal",
        doors=("hovedinngang",),
        booking=booking,
        not_before=now,
        expires=now + timedelta(hours=3),
        holder_key=holder_key,
    )


def smallest_qr(text: str) -> tuple[int, str]:
    """The QR version of `text` in alphanumeric mode: M if that still fits the goal version, else L."""
    for error in ("M", "L"):
        qr = segno.make_qr(text, error=error, mode="alphanumeric", boost_error=False)
        if int(qr.version) <= GOAL_QR_VERSION or error == "L":
            return int(qr.version), error
    raise AssertionError("unreachable")


def qr_version(text: str, error: str) -> int:
    """The version segno picks for `text` (alphanumeric mode for our texts), never a Micro QR."""
    return int(segno.make_qr(text, error=error, mode="alphanumeric", boost_error=False).version)


def budget_bytes(version: int, error: str) -> int:
    """The most bytes whose base45 text behind the presentation prefix still fits `version` at `error`."""
    size = 1
    while qr_version(PRESENTATION_PREFIX + base45.b45encode(bytes(size + 1)).decode(), error) <= version:
        size += 1
    return size


def phone_signature(phone: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    """As WebCrypto signs: ECDSA P-256 over SHA-256, returned as the raw 64 bytes r || s."""
    r, s = decode_dss_signature(phone.sign(message, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def bound(now: datetime, private_key: Ed25519PrivateKey, keys: PublicKeySet) -> dict[str, Any]:
    """Size and verify time of the phone-bound presentation, with raw ECDSA P-256 in the same run."""
    phone = ec.generate_private_key(ec.SECP256R1())
    point = phone.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    step = time_step(now)
    shown: dict[str, str] = {}
    for name, booking in (("with_booking", "b567"), ("without_booking", None)):
        token = issue_token(typical_claims(now, booking, point), private_key, key_id(private_key))
        shown[name] = present(token, step, phone_signature(phone, proof_message(token, step)))
    text = shown["with_booking"]
    raw = base45.b45decode(text[len(PRESENTATION_PREFIX) :])
    token_raw, _, signature = cbor2.loads(raw)
    # the bare verifications check the very signatures of the presentation over the very bytes signed
    protected, _, payload, ed_signature = cbor2.loads(token_raw).value
    ed_message = cbor2.dumps(["Signature1", protected, b"", payload])
    ed_public = private_key.public_key()
    message = proof_message(PREFIX + base45.b45encode(token_raw).decode(), step)
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    phone_public = phone.public_key()
    ecdsa = ec.ECDSA(hashes.SHA256())

    def cold() -> object:
        p256_public_key.cache_clear()
        return verify_presentation(text, keys, now)

    verify_us, cold_us, raw_ed_us, raw_ecdsa_us = medians_us(
        [
            lambda: verify_presentation(text, keys, now),
            cold,
            lambda: ed_public.verify(ed_signature, ed_message),
            lambda: phone_public.verify(der, message, ecdsa),
        ]
    )
    size = len(raw)
    size_plain = len(base45.b45decode(shown["without_booking"][len(PRESENTATION_PREFIX) :]))
    budget = budget_bytes(GOAL_BOUND_QR_VERSION, "m")
    version_m = qr_version(text, "m")
    ratio = verify_us / (raw_ed_us + raw_ecdsa_us)
    return {
        "bound_verify_us": round(verify_us, 1),
        "bound_verify_cold_key_us": round(cold_us, 1),
        "bound_raw_ed25519_verify_us": round(raw_ed_us, 1),
        "bound_raw_ecdsa_p256_verify_us": round(raw_ecdsa_us, 1),
        "bound_verify_ratio": round(ratio, 3),
        "bound_token_bytes": len(token_raw),
        "bound_bytes": size,
        "bound_bytes_without_booking": size_plain,
        "bound_chars": len(text),
        "bound_chars_without_booking": len(shown["without_booking"]),
        "bound_qr_version_m": version_m,
        "bound_qr_version_m_without_booking": qr_version(shown["without_booking"], "m"),
        "bound_qr_version_l": qr_version(text, "l"),
        "bound_qr_version_l_without_booking": qr_version(shown["without_booking"], "l"),
        "m_v10_budget_bytes": budget,
        "bound_over_budget_bytes": size_plain - budget,
        "bound_goals": {
            "qr_version_m_le_10": version_m <= GOAL_BOUND_QR_VERSION,
            "verify_ratio_le_1_5": ratio <= GOAL_BOUND_VERIFY_RATIO,
        },
    }


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
        **bound(now, private_key, keys),
    }


def main() -> None:
    json.dump(run(), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
