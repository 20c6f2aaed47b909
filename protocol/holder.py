"""Holder-bound phone QR: the phone proves, every 30 seconds, that it holds the key its token is bound to.

Why: a token alone is a bearer pass, and a screenshot of it works for anybody until it expires. A token for a
resident's own phone therefore names the phone's ECDSA P-256 public key (the cnf claim, protocol/token.py).
The phone page keeps the private key in the browser (WebCrypto, not extractable) and signs the current
30-second time step; the QR code carries token, step and signature, and the site agent checks both
signatures offline. A screenshot stops working when its step falls out of the window the agent accepts:
`steps_back` steps (default 1), so within 30-60 seconds.

What the page does (central gives it the token text and `proof_context` as base64url):
1. ``step = floor(unix_seconds / 30)`` (`time_step`).
2. ``message = context || step`` as 8 bytes big-endian (`proof_message`).
3. ``crypto.subtle.sign({name: "ECDSA", hash: "SHA-256"}, key, message)``: 64 bytes r || s (IEEE P1363,
   the COSE form of RFC 9053 §2.1), which `verify_presentation` turns into DER for `cryptography`.
4. QR text = ``MA2:`` + base45 of the CBOR array ``[token, step, signature]`` (`present`): the byte 0x83; the
   COSE bytes of the token (base45-decoded from the text after ``MA1:``) as a byte string, head 0x58 n or
   0x59 n n; the step as an unsigned integer, head 0x1a + 4 bytes for any step before the year 6053; and
   0x58 0x40 + the signature. Still QR alphanumeric only, so keyboard-wedge scanners type it as they are.

The context is a fixed label (not on the wire: it only keeps the phone's signatures from meaning anything
elsewhere) and the SHA-256 of the token's COSE bytes, so a proof cannot be moved to another token, not even
one bound to the same phone.

`verify_presentation` is what an agent calls for any scanned ``MA1:`` or ``MA2:`` text: an unbound token as
``MA1:`` works as before; a bound token as plain ``MA1:`` is refused (proof_missing); an ``MA2:`` is refused
if its token is not bound (bad_proof), its step is outside the window (proof_stale) or the signature does not
verify under the token's key (bad_proof). The token itself is checked first, so a forged, expired or
unknown-key token is refused for that, as before.

Size: the typical bound presentation (bench/token.py) is 259 bytes, 393 characters, 265 and 402 with a
booking: QR version 12 at error level M, 10-11 at L. Version 10 at M holds 204 bytes in base45 behind the
prefix, and the two signatures and the key alone take 161 of them; the claims of a typical token (61 bytes),
the COSE, cnf and presentation framing (37) do not fit in the rest, so shortening issuer, holder, cti or the
step (at most ~15 bytes, some of them leaving the standards) cannot reach it. We keep the standard format
and draw a version 12 code (65 modules), which a phone screen shows sharply enough for 2D scanners.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from datetime import datetime, timedelta

import base45
import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from protocol.keys import PublicKeySet
from protocol.token import (
    DEFAULT_SKEW,
    MAX_TOKEN_CHARS,
    TokenClaims,
    TokenError,
    TokenRefusal,
    decode_cbor,
    p256_public_key,
    scanned_text,
    token_bytes,
    unwrap_base45,
    verify_token,
    verify_token_bytes,
)

PRESENTATION_PREFIX = "MA2:"
TIME_STEP_SECONDS = 30
PROOF_LABEL = b"MA2 holder proof\x00"
SIGNATURE_BYTES = 64  # P-256 r || s
MAX_STEP = 2**63 - 1  # the step goes on the wire as 8 bytes in the signed message
# a presentation is a token of at most MAX_TOKEN_CHARS (base45 of ≤ 682 bytes) plus ≤ 80 bytes of proof
MAX_PRESENTATION_CHARS = MAX_TOKEN_CHARS + 120

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())

Keys = PublicKeySet | Mapping[str, Ed25519PublicKey]


def time_step(now: datetime) -> int:
    """The 30-second step `now` falls in: floor(unix seconds / 30)."""
    if now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    return math.floor(now.timestamp() / TIME_STEP_SECONDS)


def proof_context(token_text: str) -> bytes:
    """The part of every proof message fixed by the token: label + SHA-256 of its COSE bytes. Central hands
    it to the phone page (base64url); TokenError if `token_text` is not a token text."""
    return _context(token_bytes(token_text))


def proof_message(token_text: str, step: int) -> bytes:
    """Exactly the bytes the phone signs for `step`."""
    return _message(_context(token_bytes(token_text)), step)


def _context(raw: bytes) -> bytes:
    return PROOF_LABEL + hashlib.sha256(raw).digest()


def _message(context: bytes, step: int) -> bytes:
    return context + step.to_bytes(8, "big")


def present(token_text: str, step: int, signature: bytes) -> str:
    """The QR text of a bound presentation (what the phone page builds; here for tests, tools and benches).

    ValueError for a step outside 0..2**63-1 or a signature that is not 64 bytes r || s.
    """
    if type(step) is not int or not 0 <= step <= MAX_STEP:
        raise ValueError(f"step must be a whole number from 0 to {MAX_STEP}")
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
        raise ValueError("the signature must be the 64 bytes r || s that WebCrypto's ECDSA gives")
    encoded: bytes = base45.b45encode(cbor2.dumps([token_bytes(token_text), step, signature]))
    return PRESENTATION_PREFIX + encoded.decode("ascii")


def verify_presentation(
    text: str,
    keys: Keys,
    now: datetime,
    *,
    skew: timedelta = DEFAULT_SKEW,
    steps_back: int = 1,
    steps_ahead: int = 1,
) -> TokenClaims:
    """The claims of a scanned token or presentation valid at `now`; TokenError for anything else.

    A proof is fresh when its step is within [step(now) - steps_back, step(now) + steps_ahead]: back for the
    time between drawing the code and scanning it, ahead for a phone clock a little fast.
    """
    if now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    scanned = scanned_text(text, MAX_PRESENTATION_CHARS)
    if not scanned.startswith(PRESENTATION_PREFIX):
        claims = verify_token(scanned, keys, now, skew)
        if claims.holder_key is not None:
            raise TokenError(
                TokenRefusal.PROOF_MISSING, "this token is bound to a phone; show it from the phone page"
            )
        return claims
    raw, step, signature = _presentation_parts(unwrap_base45(scanned, PRESENTATION_PREFIX, "a presentation"))
    claims = verify_token_bytes(raw, keys, now, skew)
    if claims.holder_key is None:
        raise TokenError(TokenRefusal.BAD_PROOF, "the token in this presentation is not bound to a phone")
    current = time_step(now)
    if not current - steps_back <= step <= current + steps_ahead:
        age = (current - step) * TIME_STEP_SECONDS
        when = f"{age} s old" if age > 0 else f"{-age} s ahead of the door's clock"
        raise TokenError(TokenRefusal.PROOF_STALE, f"the phone's proof is {when}")
    _check_proof(claims.holder_key, _message(_context(raw), step), signature)
    return claims


def _presentation_parts(raw: bytes) -> tuple[bytes, int, bytes]:
    parts = decode_cbor(raw, "the presentation")
    if not isinstance(parts, list) or len(parts) != 3:
        raise TokenError(TokenRefusal.MALFORMED, "a presentation is an array [token, step, signature]")
    token, step, signature = parts
    if not isinstance(token, bytes) or type(step) is not int or not isinstance(signature, bytes):
        raise TokenError(TokenRefusal.MALFORMED, "a presentation is [bytes, integer, bytes]")
    if not 0 <= step <= MAX_STEP:
        raise TokenError(TokenRefusal.MALFORMED, f"the time step must be from 0 to {MAX_STEP}")
    return token, step, signature


def _check_proof(holder_key: bytes, message: bytes, signature: bytes) -> None:
    if len(signature) != SIGNATURE_BYTES:
        raise TokenError(TokenRefusal.BAD_PROOF, f"a P-256 signature has 64 bytes, not {len(signature)}")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    try:
        p256_public_key(holder_key).verify(encode_dss_signature(r, s), message, _ECDSA_SHA256)
    except InvalidSignature:
        raise TokenError(TokenRefusal.BAD_PROOF, "the phone's signature does not match the token") from None
