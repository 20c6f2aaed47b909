"""Ed25519 token verification keys: key ids, the published key set, and its COSE_Key / JWK forms.

Pure code without file I/O: central publishes the set (as JWK JSON in the `signing_keys` message), the site
agent parses it back and hands it to `protocol.token.verify_token`.

Key ids (`kid`) are derived from the key itself, so they are stable and cannot drift from the key they name:
the first 2 bytes of SHA-256 over the raw 32-byte public key. In COSE (token header, COSE_Key) the kid is
those 2 bytes; in JWK and wherever people read it, the same bytes as 4 lowercase hex characters. Two bytes
only have to tell apart the two to four keys one issuer publishes (central draws a new key when ids collide;
the signature, not the kid, makes a token genuine), and every byte counts in a token that must fit QR
version 7: a 6-character text kid would cost 4 bytes more, enough to push a booking token to version 8.
Generic libraries map a JWK `kid` to its UTF-8 bytes instead, so give them the COSE_Key form (`to_cose_key`).

A key may carry an optional validity window (`not_before` / `not_after`); `active` marks the key the issuer
signs new tokens with, the others are published for verification only during a rotation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import cbor2
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from protocol.messages import PublicKey

KID_BYTES = 2
KID_PATTERN = re.compile(r"^[0-9a-f]{4}$")
MAX_KEYS = 4  # the signing_keys message carries at most four keys

# COSE_Key labels and values (RFC 9052 §7, RFC 9053 §2.2 and §7.2)
COSE_KEY_KTY, COSE_KEY_KID, COSE_KEY_ALG, COSE_KEY_CRV, COSE_KEY_X = 1, 2, 3, -1, -2
COSE_KTY_OKP, COSE_CRV_ED25519, COSE_ALG_EDDSA = 1, 6, -8

_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


class KeySetError(ValueError):
    """A published key or key set cannot be used; the message says which member is wrong and why."""


def raw_public_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey | Ed25519PrivateKey | bytes) -> str:
    """The stable short id of a key: 6 hex characters of SHA-256 over the raw public key."""
    if isinstance(public_key, Ed25519PrivateKey):
        public_key = public_key.public_key()
    raw = public_key if isinstance(public_key, bytes) else raw_public_bytes(public_key)
    return hashlib.sha256(raw).digest()[:KID_BYTES].hex()


def kid_to_bytes(kid: str) -> bytes:
    """The COSE form of a kid (ValueError if `kid` is not 4 hex characters)."""
    if not KID_PATTERN.match(kid):
        raise ValueError(f"a key id is 4 lowercase hex characters, got {kid[:20]!r}")
    return bytes.fromhex(kid)


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Unpadded base64url (RFC 7515 §2) to bytes; ValueError for anything else."""
    if not _B64URL.match(text) or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not unpadded base64url") from exc


@dataclass(frozen=True)
class PublishedKey:
    """One verification key as published by the issuer."""

    public_key: Ed25519PublicKey
    active: bool = True
    not_before: datetime | None = None
    not_after: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("not_before", "not_after"):
            value = getattr(self, name)
            if value is not None and value.utcoffset() is None:
                raise KeySetError(f"{name} must be timezone-aware (UTC)")
        if self.not_before and self.not_after and self.not_before >= self.not_after:
            raise KeySetError("not_before must be before not_after")

    @property
    def kid(self) -> str:
        return key_id(self.public_key)

    @property
    def x(self) -> bytes:
        return raw_public_bytes(self.public_key)

    def valid_at(self, now: datetime, skew: timedelta = timedelta(0)) -> bool:
        """Whether the key's own validity window (if any), widened by `skew` both ways, contains `now`."""
        if self.not_before is not None and now < self.not_before - skew:
            return False
        return self.not_after is None or now <= self.not_after + skew

    def to_jwk(self) -> dict[str, Any]:
        """JWK members (RFC 8037): kty OKP, crv Ed25519, x, kid, alg EdDSA, plus `active` and the window."""
        jwk: dict[str, Any] = {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64url_encode(self.x),
            "kid": self.kid,
            "alg": "EdDSA",
            "active": self.active,
        }
        if self.not_before is not None:
            jwk["not_before"] = _rfc3339(self.not_before)
        if self.not_after is not None:
            jwk["not_after"] = _rfc3339(self.not_after)
        return jwk

    def to_cose_key(self) -> bytes:
        """The key as a CBOR-encoded COSE_Key map (kty OKP, crv Ed25519, x, kid, alg EdDSA)."""
        return cbor2.dumps(
            {
                COSE_KEY_KTY: COSE_KTY_OKP,
                COSE_KEY_KID: kid_to_bytes(self.kid),
                COSE_KEY_ALG: COSE_ALG_EDDSA,
                COSE_KEY_CRV: COSE_CRV_ED25519,
                COSE_KEY_X: self.x,
            }
        )

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> PublishedKey:
        """Parse one JWK; unknown members are ignored (RFC 7517 §4), wrong ones refused with KeySetError."""
        if not isinstance(jwk, Mapping):
            raise KeySetError(f"a key must be a JSON object, got {type(jwk).__name__}")
        _expect_member(jwk, "kty", "OKP")
        _expect_member(jwk, "crv", "Ed25519")
        if "alg" in jwk:
            _expect_member(jwk, "alg", "EdDSA")
        public_key = _parse_x(jwk.get("x"))
        kid = jwk.get("kid")
        expected = key_id(public_key)
        if kid is not None and kid != expected:
            raise KeySetError(f"kid {kid!r} does not belong to this key (its id is {expected!r})")
        active = jwk.get("active", True)
        if not isinstance(active, bool):
            raise KeySetError("'active' must be true or false")
        return cls(
            public_key,
            active=active,
            not_before=_parse_time(jwk, "not_before"),
            not_after=_parse_time(jwk, "not_after"),
        )


def _expect_member(jwk: Mapping[str, Any], name: str, expected: str) -> None:
    value = jwk.get(name)
    if value != expected:
        shown = "missing" if value is None else repr(value)
        raise KeySetError(f"'{name}' must be {expected!r}, got {shown}")


def _parse_x(value: Any) -> Ed25519PublicKey:
    if not isinstance(value, str):
        raise KeySetError("'x' (the public key, base64url) is missing or not text")
    try:
        raw = b64url_decode(value)
    except ValueError:
        raise KeySetError("'x' is not unpadded base64url") from None
    if len(raw) != 32:
        raise KeySetError(f"'x' must hold 32 bytes for Ed25519, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def _parse_time(jwk: Mapping[str, Any], name: str) -> datetime | None:
    value = jwk.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise KeySetError(f"'{name}' must be an RFC 3339 time text")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise KeySetError(f"'{name}' is not an RFC 3339 time: {value[:40]!r}") from None
    if parsed.utcoffset() is None:
        raise KeySetError(f"'{name}' must carry a UTC offset (e.g. Z)")
    return parsed.astimezone(UTC)


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class PublicKeySet:
    """The keys a verifier trusts, by kid: normally one, two during a rotation, at most MAX_KEYS."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[PublishedKey] = ()) -> None:
        by_kid: dict[str, PublishedKey] = {}
        for key in keys:
            if key.kid in by_kid:
                raise KeySetError(f"key {key.kid} appears twice in the key set")
            by_kid[key.kid] = key
        if len(by_kid) > MAX_KEYS:
            raise KeySetError(f"a key set holds at most {MAX_KEYS} keys, got {len(by_kid)}")
        self._keys = by_kid

    def get(self, kid: str) -> PublishedKey | None:
        return self._keys.get(kid)

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys

    def __iter__(self) -> Iterator[PublishedKey]:
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"PublicKeySet({', '.join(self._keys)})"

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    @property
    def active_kid(self) -> str | None:
        """The kid new tokens are signed with, if the set marks one."""
        return next((key.kid for key in self if key.active), None)

    def to_jwks(self) -> dict[str, Any]:
        """A JWK Set (RFC 7517 §5): {"keys": [...]}."""
        return {"keys": [key.to_jwk() for key in self]}

    def to_jwks_json(self) -> str:
        return json.dumps(self.to_jwks(), indent=2)

    @classmethod
    def from_jwks(cls, data: str | bytes | Mapping[str, Any]) -> PublicKeySet:
        """Parse a JWK Set (or one JWK) from JSON text or a parsed object; KeySetError if unusable."""
        if isinstance(data, str | bytes):
            try:
                data = json.loads(data)
            except (ValueError, RecursionError):
                raise KeySetError("the key set is not valid JSON") from None
        if not isinstance(data, Mapping):
            raise KeySetError('the key set must be a JSON object {"keys": [...]}')
        if "kty" in data:
            return cls([PublishedKey.from_jwk(data)])
        members = data.get("keys")
        if not isinstance(members, list):
            raise KeySetError('the key set must have a "keys" list')
        if len(members) > MAX_KEYS:
            raise KeySetError(f"a key set holds at most {MAX_KEYS} keys, got {len(members)}")
        keys = []
        for index, member in enumerate(members, start=1):
            try:
                keys.append(PublishedKey.from_jwk(member))
            except KeySetError as exc:
                raise KeySetError(f"key {index}: {exc}") from None
        return cls(keys)

    def to_messages(self) -> list[PublicKey]:
        """The keys as `signing_keys` message members, validity windows included."""
        return [
            PublicKey(
                kid=key.kid,
                x=b64url_encode(key.x),
                active=key.active,
                not_before=key.not_before,
                not_after=key.not_after,
            )
            for key in self
        ]

    @classmethod
    def from_messages(cls, keys: Iterable[PublicKey]) -> PublicKeySet:
        """The set an agent builds from a received `signing_keys` message."""
        return cls.from_jwks({"keys": [msgspec.to_builtins(key) for key in keys]})
