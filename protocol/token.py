"""Phone tokens: a CWT (RFC 8392) in a COSE_Sign1 (RFC 9052) signed with Ed25519, as base45 text for QR.

The site agent verifies a token offline with the public keys central published, so the format is standard
where it can be (any COSE/CWT library can check our tokens, see tests/test_token_interop.py) and compact where
it must be: the text has to fit a QR code small enough for a phone screen and a cheap scanner.

Wire format
- Text: ``MA1:`` + base45 (RFC 9285) of the COSE bytes. Prefix and base45 use only QR alphanumeric characters
  (upper case, digits, `` $%*+-./:``), so the code uses alphanumeric mode and keyboard-wedge scanners type it
  verbatim. ``MA1`` names this format version. The verifier drops trailing CR/LF (the scanner's Enter) and
  upper-cases the text (a scanner behind Caps Lock), which is lossless because base45 has no lower case.
- COSE: ``18([protected, {}, payload, signature])`` with protected ``{1: -8 (EdDSA), 4: kid}``; the kid (2
  bytes, see protocol/keys.py) is protected so a token cannot be re-pointed at another key. No external AAD.
- Claims (payload, a CBOR map): registered keys 1 iss, 2 sub (holder), 4 exp, 5 nbf, 7 cti (8 random bytes,
  the id revocations name), 8 cnf (optional, see below); 6 iat is accepted and ignored because generic CWT
  libraries add it. Our own claims use the single-byte keys -1 site, -2 doors, -3 zones and -4 booking;
  doors and zones are a text when there is one, else an array of text. RFC 8392 leaves keys below -65536
  for private use, but those cost 5 bytes each instead of 1 (12-16 bytes a token, a bigger QR code); -1..-4
  are unassigned in the IANA CWT Claims registry, only our own agents read these claims, and the ``MA1``
  prefix versions the choice. Any other claim key is refused: a claim the agent does not understand might
  be a restriction, and ignoring it would grant too much.

Holder binding (optional): a token for a resident's own phone carries the phone's ECDSA P-256 public key as
the confirmation claim of RFC 8747, ``8: {1: COSE_Key}`` with COSE_Key ``{1: 2 (EC2), -1: 1 (P-256), -2: x
(32 bytes), -3: sign of y (bool)}``, the compressed point of RFC 9053 §7.1.1 (y is also read as 32 bytes).
`TokenClaims.holder_key` holds it as a 33-byte compressed SEC1 point. Such a token opens nothing by itself:
the phone must prove it holds the key, see protocol/holder.py, whose `verify_presentation` is what an agent
calls. Tokens without cnf (visitors, printed tokens) work as before. The key costs 45 bytes; a bound token
with booking has 191, and the presentation 265 bytes, 402 characters: QR version 12 at level M.

A typical token (issuer ``asker``, holder ``p1234``, site ``heggedal``, door ``hovedinngang``) has 140 bytes,
146 with booking ``b567``; 64 of them are the signature. With the prefix that is 214 and 223 characters, QR
version 7 at error level L (224 at most). ``python -m bench.token`` prints the figures.

`verify_token` raises only `TokenError` for any text whatsoever, with a fixed machine reason (`TokenRefusal`);
checking the site and door against the token is the agent's job (`TokenClaims.allows` helps).
"""

from __future__ import annotations

import io
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any

import base45
import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocol.keys import PublicKeySet, b64url_encode, key_id, kid_to_bytes
from protocol.messages import Reason
from protocol.topics import SLUG_PATTERN

PREFIX = "MA1:"
MAX_TOKEN_CHARS = 1024
TOKEN_ID_BYTES = 8
MAX_TARGETS = 16  # doors or zones in one token
DEFAULT_SKEW = timedelta(seconds=60)

COSE_SIGN1_TAG = 18
CWT_TAG = 61
HEADER_ALG, HEADER_CRIT, HEADER_KID = 1, 2, 4
ALG_EDDSA = -8

ISS, SUB, EXP, NBF, IAT, CTI, CNF = 1, 2, 4, 5, 6, 7, 8
SITE, DOORS, ZONES, BOOKING = -1, -2, -3, -4
CNF_COSE_KEY = 1  # RFC 8747 §3.2
KTY, KTY_EC2, CRV, CRV_P256, EC_X, EC_Y = 1, 2, -1, 1, -2, -3  # RFC 9053 §7.1
_COSE_KEY_PARAMS = frozenset((KTY, CRV, EC_X, EC_Y))
P256_COMPRESSED_BYTES = 33
CLAIM_NAMES = {
    ISS: "iss",
    SUB: "sub",
    EXP: "exp",
    NBF: "nbf",
    IAT: "iat",
    CTI: "cti",
    CNF: "cnf",
    SITE: "site",
    DOORS: "doors",
    ZONES: "zones",
    BOOKING: "booking",
}
_KNOWN_CLAIMS = frozenset(CLAIM_NAMES)
_REQUIRED = frozenset((ISS, SUB, EXP, NBF, CTI, SITE))
_MAX_SECONDS = 253402300799  # 9999-12-31T23:59:59Z, the last second a datetime can hold

_SLUG = re.compile(SLUG_PATTERN)
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")  # as protocol.messages.Ref
_OTHER_PREFIX = re.compile(r"^[A-Z]{2}\d+:")


class TokenRefusal(StrEnum):
    """Why a token was refused: a fixed list so logs, events and tests can rely on it."""

    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    BAD_PREFIX = "bad_prefix"
    WRONG_ALG = "wrong_alg"
    UNKNOWN_KID = "unknown_kid"
    KEY_NOT_VALID = "key_not_valid"
    BAD_SIGNATURE = "bad_signature"
    MISSING_CLAIM = "missing_claim"
    UNKNOWN_CLAIM = "unknown_claim"
    BAD_CLAIM = "bad_claim"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    # a holder-bound token (cnf) and the phone's proof of possession, see protocol/holder.py
    PROOF_MISSING = "proof_missing"
    PROOF_STALE = "proof_stale"
    BAD_PROOF = "bad_proof"


_DENY_REASONS = {
    TokenRefusal.EXPIRED: Reason.TOKEN_EXPIRED,
    TokenRefusal.NOT_YET_VALID: Reason.TOKEN_NOT_YET_VALID,
    TokenRefusal.UNKNOWN_KID: Reason.TOKEN_UNKNOWN_KEY,
    TokenRefusal.KEY_NOT_VALID: Reason.TOKEN_UNKNOWN_KEY,
    TokenRefusal.PROOF_MISSING: Reason.PHONE_PROOF_MISSING,
    TokenRefusal.PROOF_STALE: Reason.PHONE_PROOF_STALE,
    TokenRefusal.BAD_PROOF: Reason.PHONE_PROOF_INVALID,
}


def deny_reason(refusal: TokenRefusal) -> Reason:
    """The access-event reason for a refused token: time, key and phone-proof refusals have their own,
    everything else is token_invalid."""
    return _DENY_REASONS.get(refusal, Reason.TOKEN_INVALID)


class TokenError(ValueError):
    """A token was refused: `reason` for machines, `message` (one line) for people."""

    def __init__(self, reason: TokenRefusal, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message


def new_token_id() -> bytes:
    return secrets.token_bytes(TOKEN_ID_BYTES)


@dataclass(frozen=True)
class TokenClaims:
    """What a token grants: who, where (site + doors and/or zones), when, and under which id.

    Times are whole UTC seconds on the wire; a finer `not_before` is rounded up and `expires` down, so a
    token is never valid outside the window asked for. `holder_key` binds the token to a phone: its P-256
    public key, given compressed (33 bytes) or uncompressed (65), kept compressed. Invalid values raise
    ValueError.
    """

    issuer: str
    holder: str
    site: str
    not_before: datetime
    expires: datetime
    doors: tuple[str, ...] = ()
    zones: tuple[str, ...] = ()
    booking: str | None = None
    token_id: bytes = field(default_factory=new_token_id)
    holder_key: bytes | None = None

    def __post_init__(self) -> None:
        _check_text("issuer", self.issuer, _SLUG)
        _check_text("holder", self.holder, _REF)
        _check_text("site", self.site, _SLUG)
        if self.booking is not None:
            _check_text("booking", self.booking, _REF)
        for name in ("doors", "zones"):
            values = getattr(self, name)
            if isinstance(values, str) or not isinstance(values, tuple | list):
                raise ValueError(f"{name} must be a sequence of slugs")
            if len(values) > MAX_TARGETS:
                raise ValueError(f"a token names at most {MAX_TARGETS} {name}, got {len(values)}")
            for value in values:
                _check_text(name[:-1], value, _SLUG)
            object.__setattr__(self, name, tuple(values))
        if not self.doors and not self.zones:
            raise ValueError("a token must name at least one door or zone")
        if not isinstance(self.token_id, bytes) or not 4 <= len(self.token_id) <= 32:
            raise ValueError("token_id must be 4–32 bytes")
        object.__setattr__(self, "not_before", _whole_second(self.not_before, "not_before", up=True))
        object.__setattr__(self, "expires", _whole_second(self.expires, "expires", up=False))
        if self.not_before >= self.expires:
            raise ValueError("not_before must be before expires")
        if self.holder_key is not None:
            object.__setattr__(self, "holder_key", compressed_p256(self.holder_key))

    @property
    def token_id_hex(self) -> str:
        """The id as revocation lists and events carry it."""
        return self.token_id.hex()

    def allows(self, site: str, door: str, zone: str | None = None) -> bool:
        """Whether the token names this site and this door, or the zone the door belongs to."""
        if site != self.site:
            return False
        return door in self.doors or (zone is not None and zone in self.zones)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "holder": self.holder,
            "site": self.site,
            "doors": list(self.doors),
            "zones": list(self.zones),
            "booking": self.booking,
            "not_before": _rfc3339(self.not_before),
            "expires": _rfc3339(self.expires),
            "token_id": self.token_id_hex,
            "holder_key": None if self.holder_key is None else b64url_encode(self.holder_key),
        }


def compressed_p256(point: object) -> bytes:
    """A P-256 public key as its 33-byte compressed SEC1 point; ValueError unless it is a point of the curve
    (33 bytes compressed or 65 uncompressed, as WebCrypto's ``exportKey("raw")`` gives it)."""
    if not isinstance(point, bytes) or len(point) not in (P256_COMPRESSED_BYTES, 65):
        raise ValueError("holder_key must be a P-256 point of 33 (compressed) or 65 (uncompressed) bytes")
    key = p256_public_key(point)
    if len(point) == P256_COMPRESSED_BYTES:
        return point
    return key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)


@lru_cache(maxsize=256)
def p256_public_key(point: bytes) -> ec.EllipticCurvePublicKey:
    """The key object of a SEC1 point; ValueError if it is not on P-256. Cached: decompressing a point costs
    half an ECDSA verification, and the agent sees the same phones again and again."""
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise ValueError("holder_key is not a point on the P-256 curve") from None


def _check_text(name: str, value: object, pattern: re.Pattern[str]) -> None:
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"{name} {_short(value)} is not valid (pattern {pattern.pattern})")


def _whole_second(value: object, name: str, *, up: bool) -> datetime:
    if isinstance(value, datetime) and value.tzinfo is UTC and not value.microsecond:
        return value  # the verifier's case: nothing to normalise
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    value = value.astimezone(UTC)
    if value.microsecond:
        value = value.replace(microsecond=0) + (timedelta(seconds=1) if up else timedelta(0))
    return value


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _short(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- issuing ------------------------------------------------------------------------------------------------


def _claims_map(claims: TokenClaims) -> dict[int, Any]:
    payload: dict[int, Any] = {
        ISS: claims.issuer,
        SUB: claims.holder,
        EXP: int(claims.expires.timestamp()),
        NBF: int(claims.not_before.timestamp()),
        CTI: claims.token_id,
        SITE: claims.site,
    }
    for key, values in ((DOORS, claims.doors), (ZONES, claims.zones)):
        if len(values) == 1:
            payload[key] = values[0]  # one byte less than an array of one
        elif values:
            payload[key] = list(values)
    if claims.booking is not None:
        payload[BOOKING] = claims.booking
    if claims.holder_key is not None:
        x, odd = claims.holder_key[1:], claims.holder_key[0] == 3
        payload[CNF] = {CNF_COSE_KEY: {KTY: KTY_EC2, CRV: CRV_P256, EC_X: x, EC_Y: odd}}
    return payload


def _sig_structure(protected: bytes, payload: bytes) -> bytes:
    """The bytes Ed25519 signs (RFC 9052 §4.4): ["Signature1", protected, external_aad, payload].

    Written out by hand because cbor2.dumps costs more than the rest of the verification; the interop tests
    show it is the same encoding other COSE libraries sign.
    """
    return _SIG1_HEAD + _bstr_head(len(protected)) + protected + b"\x40" + _bstr_head(len(payload)) + payload


_SIG1_HEAD = b"\x84\x6aSignature1"  # array(4), text(10) "Signature1"


def _bstr_head(length: int) -> bytes:
    """The CBOR head of a byte string of `length` bytes (RFC 8949 §3.1, major type 2)."""
    if length < 24:
        return bytes((0x40 | length,))
    if length < 0x100:
        return bytes((0x58, length))
    if length < 0x10000:
        return b"\x59" + length.to_bytes(2, "big")
    return b"\x5a" + length.to_bytes(4, "big")


def issue_token(claims: TokenClaims, private_key: Ed25519PrivateKey, kid: str) -> str:
    """Sign `claims` and return the QR text; ValueError if `kid` is not the id of `private_key`."""
    expected = key_id(private_key)
    if kid != expected:
        raise ValueError(f"kid {kid!r} does not belong to this private key (its id is {expected!r})")
    protected = cbor2.dumps({HEADER_ALG: ALG_EDDSA, HEADER_KID: kid_to_bytes(kid)}, canonical=True)
    payload = cbor2.dumps(_claims_map(claims), canonical=True)
    signature = private_key.sign(_sig_structure(protected, payload))
    raw = cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature]))
    text: str = PREFIX + base45.b45encode(raw).decode("ascii")
    if len(text) > MAX_TOKEN_CHARS:
        raise ValueError(f"these claims make a token of {len(text)} characters, over {MAX_TOKEN_CHARS}")
    return text


def token_bytes(text: str) -> bytes:
    """The COSE bytes inside a token text (for size figures and debugging); TokenError if not decodable."""
    return _unwrap_text(text)


# --- verifying ----------------------------------------------------------------------------------------------


def verify_token(
    text: str,
    keys: PublicKeySet | Mapping[str, Ed25519PublicKey],
    now: datetime,
    skew: timedelta = DEFAULT_SKEW,
) -> TokenClaims:
    """The claims of a genuine token valid at `now` (± `skew`); TokenError for anything else.

    This checks the token alone: a holder-bound one (``holder_key`` set) is returned like any other, so an
    agent deciding at a door calls `protocol.holder.verify_presentation`, which also wants the phone's proof.
    """
    return verify_token_bytes(_unwrap_text(text), keys, now, skew)


def verify_token_bytes(
    raw: bytes,
    keys: PublicKeySet | Mapping[str, Ed25519PublicKey],
    now: datetime,
    skew: timedelta = DEFAULT_SKEW,
) -> TokenClaims:
    """`verify_token` for the COSE bytes of a token (as a holder's presentation carries them).

    Order matters: structure, then alg and kid from the protected header, then the signature, and only then
    the claims, so nothing but the small protected header is parsed before the signature is checked.
    """
    if now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    protected_raw, payload, signature = _sign1_parts(raw)
    kid = _protected_kid(protected_raw)
    public_key = _lookup_key(keys, kid, now, skew)
    if len(signature) != 64:
        raise TokenError(
            TokenRefusal.BAD_SIGNATURE, f"an Ed25519 signature has 64 bytes, not {len(signature)}"
        )
    try:
        public_key.verify(signature, _sig_structure(protected_raw, payload))
    except InvalidSignature:
        raise TokenError(TokenRefusal.BAD_SIGNATURE, f"the signature does not match key {kid}") from None
    claims = _claims_from_map(decode_cbor(payload, "the claims"))
    if now < claims.not_before - skew:
        raise TokenError(TokenRefusal.NOT_YET_VALID, f"the token is valid from {_rfc3339(claims.not_before)}")
    if now >= claims.expires + skew:
        raise TokenError(TokenRefusal.EXPIRED, f"the token expired at {_rfc3339(claims.expires)}")
    return claims


def scanned_text(text: object, limit: int = MAX_TOKEN_CHARS) -> str:
    """The text as the verifier reads it: without the scanner's leading blanks and trailing CR/LF, in upper
    case; TokenError if it is not text or longer than `limit`."""
    if not isinstance(text, str):
        raise TokenError(TokenRefusal.MALFORMED, f"a token is text, got {type(text).__name__}")
    if len(text) > limit:
        raise TokenError(TokenRefusal.TOO_LARGE, f"{len(text)} characters, a token has {limit} at most")
    return text.lstrip().rstrip("\r\n").upper()


def unwrap_base45(text: str, prefix: str, what: str = "a token") -> bytes:
    """The bytes behind `prefix` in a scanned text; TokenError (bad_prefix or malformed) if there are none."""
    if not text.startswith(prefix):
        found = _OTHER_PREFIX.match(text)
        detail = f"format {found.group(0)} is not supported" if found else "this is not a meråpent token"
        raise TokenError(TokenRefusal.BAD_PREFIX, f"{what} starts with {prefix}; {detail}")
    try:
        return b45decode(text[len(prefix) :])
    except ValueError:
        raise TokenError(TokenRefusal.MALFORMED, "the text after the prefix is not base45") from None


def _unwrap_text(text: object) -> bytes:
    return unwrap_base45(scanned_text(text), PREFIX)


_B45_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_B45_VALUES = bytes.maketrans(_B45_ALPHABET, bytes(range(45)))


def b45decode(text: str) -> bytes:
    """Base45 (RFC 9285) to bytes, as `base45.b45decode` but about five times faster; ValueError if invalid.

    The package loops in Python over every character, which alone cost a fifth of an Ed25519 verification.
    Here every 3-character group is a 3-byte lane of one big integer, so the arithmetic runs in C:
    value = c0 + 45·c1 + 2025·c2 fits 17 bits, the top byte of each lane must end up 0 (value ≤ 0xFFFF).
    tests/test_token_properties.py checks it against the package.
    """
    data = text.encode("ascii")  # UnicodeEncodeError is a ValueError
    if data.translate(None, _B45_ALPHABET):
        raise ValueError("not base45: character outside the alphabet")
    digits = data.translate(_B45_VALUES)
    groups, rest = divmod(len(digits), 3)
    if rest == 1:
        raise ValueError("not base45: wrong length")
    whole = 3 * groups
    packed = int.from_bytes(digits[:whole], "big")
    low = int.from_bytes(b"\0\0\xff" * groups, "big")
    values = ((packed >> 16) & low) + 45 * ((packed >> 8) & low) + 2025 * (packed & low)
    lanes = values.to_bytes(whole, "big")
    if lanes[0::3].count(0) != groups:
        raise ValueError("not base45: a group exceeds 0xFFFF")
    out = bytearray(2 * groups + rest // 2)
    out[0 : 2 * groups : 2] = lanes[1::3]
    out[1 : 2 * groups : 2] = lanes[2::3]
    if rest:
        last = digits[-2] + 45 * digits[-1]
        if last > 0xFF:
            raise ValueError("not base45: the last group exceeds 0xFF")
        out[-1] = last
    return bytes(out)


def decode_cbor(data: bytes, what: str) -> Any:
    """Decode exactly one CBOR item; any exception cbor2 raises on hostile bytes means malformed."""
    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(stream).decode()
    except Exception:
        raise TokenError(TokenRefusal.MALFORMED, f"{what} is not valid CBOR") from None
    if stream.tell() != len(data):
        raise TokenError(TokenRefusal.MALFORMED, f"{what} has trailing bytes")
    return value


def _sign1_parts(raw: bytes) -> tuple[bytes, bytes, bytes]:
    message = decode_cbor(raw, "the token")
    if isinstance(message, cbor2.CBORTag) and message.tag == CWT_TAG:
        message = message.value
    if not isinstance(message, cbor2.CBORTag) or message.tag != COSE_SIGN1_TAG:
        raise TokenError(TokenRefusal.MALFORMED, "not a COSE_Sign1 message (CBOR tag 18)")
    parts = message.value
    if not isinstance(parts, list | tuple) or len(parts) != 4:
        raise TokenError(TokenRefusal.MALFORMED, "a COSE_Sign1 message is an array of 4 items")
    protected, unprotected, payload, signature = parts
    if not (
        isinstance(protected, bytes)
        and isinstance(unprotected, dict)
        and isinstance(payload, bytes)
        and isinstance(signature, bytes)
    ):
        raise TokenError(TokenRefusal.MALFORMED, "COSE_Sign1 items have the wrong types")
    if HEADER_KID in unprotected or HEADER_ALG in unprotected:
        raise TokenError(TokenRefusal.MALFORMED, "alg and kid belong in the protected header only")
    return protected, payload, signature


def _protected_kid(protected_raw: bytes) -> str:
    header = decode_cbor(protected_raw, "the protected header") if protected_raw else {}
    if not isinstance(header, dict):
        raise TokenError(TokenRefusal.MALFORMED, "the protected header is not a map")
    if HEADER_CRIT in header:
        raise TokenError(TokenRefusal.MALFORMED, "critical header parameters are not supported")
    alg = header.get(HEADER_ALG)
    if type(alg) is not int or alg != ALG_EDDSA:
        raise TokenError(TokenRefusal.WRONG_ALG, f"alg must be EdDSA (-8), got {_short(alg)}")
    kid = header.get(HEADER_KID)
    if not isinstance(kid, bytes):
        raise TokenError(TokenRefusal.MALFORMED, "the protected header has no kid (a byte string)")
    return kid.hex()


def _lookup_key(
    keys: PublicKeySet | Mapping[str, Ed25519PublicKey], kid: str, now: datetime, skew: timedelta
) -> Ed25519PublicKey:
    if isinstance(keys, PublicKeySet):
        published = keys.get(kid)
        if published is None:
            raise TokenError(TokenRefusal.UNKNOWN_KID, f"key {kid[:16]} is not published")
        if not published.valid_at(now, skew):
            raise TokenError(TokenRefusal.KEY_NOT_VALID, f"key {kid} is outside its validity period")
        return published.public_key
    public_key = keys.get(kid)
    if public_key is None:
        raise TokenError(TokenRefusal.UNKNOWN_KID, f"key {kid[:16]} is not published")
    return public_key


def _claims_from_map(payload: Any) -> TokenClaims:
    if not isinstance(payload, dict):
        raise TokenError(TokenRefusal.MALFORMED, "the payload is not a claims map")
    if not _KNOWN_CLAIMS.issuperset(payload):
        unknown = next(key for key in payload if key not in _KNOWN_CLAIMS)
        raise TokenError(TokenRefusal.UNKNOWN_CLAIM, f"claim {_short(unknown)} is not understood")
    if not _REQUIRED.issubset(payload):
        missing = next(key for key in CLAIM_NAMES if key in _REQUIRED and key not in payload)
        raise TokenError(TokenRefusal.MISSING_CLAIM, f"the token has no {CLAIM_NAMES[missing]} claim")
    if DOORS not in payload and ZONES not in payload:
        raise TokenError(TokenRefusal.MISSING_CLAIM, "the token names no door and no zone")
    if IAT in payload:
        _seconds(payload, IAT)
    try:
        return TokenClaims(
            issuer=_text(payload, ISS),
            holder=_text(payload, SUB),
            site=_text(payload, SITE),
            not_before=_seconds(payload, NBF),
            expires=_seconds(payload, EXP),
            doors=_texts(payload, DOORS),
            zones=_texts(payload, ZONES),
            booking=_text(payload, BOOKING) if BOOKING in payload else None,
            token_id=_bytes(payload, CTI),
            holder_key=_holder_point(payload[CNF]) if CNF in payload else None,
        )
    except ValueError as exc:
        raise TokenError(TokenRefusal.BAD_CLAIM, str(exc)) from None


def _holder_point(cnf: object) -> bytes:
    """The SEC1 point in a cnf claim holding a P-256 COSE_Key; TokenClaims checks that it is on the curve."""
    expected = "{1: COSE_Key} with an EC2 P-256 key (kty 2, crv 1, x, y)"
    if not isinstance(cnf, dict) or len(cnf) != 1 or not _is_int(next(iter(cnf)), CNF_COSE_KEY):
        raise _bad(CNF, expected)
    key = cnf[CNF_COSE_KEY]
    if not isinstance(key, dict) or len(key) != len(_COSE_KEY_PARAMS) or not _COSE_KEY_PARAMS.issuperset(key):
        raise _bad(CNF, expected)
    if not (_is_int(key[KTY], KTY_EC2) and _is_int(key[CRV], CRV_P256)):
        raise _bad(CNF, expected)
    x, y = key[EC_X], key[EC_Y]
    if not isinstance(x, bytes) or len(x) != 32:
        raise _bad(CNF, expected)
    if isinstance(y, bool):
        return (b"\x03" if y else b"\x02") + x
    if isinstance(y, bytes) and len(y) == 32:
        return b"\x04" + x + y
    raise _bad(CNF, expected)


def _is_int(value: object, expected: int) -> bool:
    return type(value) is int and value == expected


def _bad(key: int, expected: str) -> TokenError:
    return TokenError(TokenRefusal.BAD_CLAIM, f"claim {CLAIM_NAMES[key]} must be {expected}")


def _text(payload: dict[Any, Any], key: int) -> str:
    value = payload[key]
    if not isinstance(value, str):
        raise _bad(key, "text")
    return value


def _texts(payload: dict[Any, Any], key: int) -> tuple[str, ...]:
    value = payload.get(key, ())
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
        raise _bad(key, "text or an array of text")
    return tuple(value)


def _bytes(payload: dict[Any, Any], key: int) -> bytes:
    value = payload[key]
    if not isinstance(value, bytes):
        raise _bad(key, "a byte string")
    return value


def _seconds(payload: dict[Any, Any], key: int) -> datetime:
    value = payload[key]
    if type(value) is float and math.isfinite(value):
        value = math.floor(value) if key != NBF else math.ceil(value)
    if type(value) is not int or not 0 <= value <= _MAX_SECONDS:
        raise _bad(key, "whole seconds since 1970 (a NumericDate)")
    return datetime.fromtimestamp(value, UTC)
