"""Secrets handling: keyed hashes of card UIDs, argon2 PIN hashes, API bearer tokens.

A card UID is not secret (any reader can see it) but it identifies a person, so we only keep an HMAC of it
under a site-independent key (central.config.Settings.uid_hash_key). PINs are short, so they get a slow,
salted argon2id hash. API tokens are long random strings; a plain SHA-256 suffices to store them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

import argon2.profiles
from argon2 import Parameters, PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

UID_MIN_BYTES = 4
UID_MAX_BYTES = 16
MIN_KEY_BYTES = 16
API_TOKEN_BYTES = 32

_PIN = re.compile(r"[0-9]{4,8}")
_UID_SEPARATORS = re.compile(r"[\s:\-]")
# argon2id, RFC 9106 low-memory profile (64 MiB, 3 passes, 4 lanes): about 50 ms a hash on a server.
PIN_HASH_PARAMETERS = argon2.profiles.RFC_9106_LOW_MEMORY
_pin_parameters = PIN_HASH_PARAMETERS
_hasher = PasswordHasher.from_parameters(PIN_HASH_PARAMETERS)


def use_pin_hash_parameters(parameters: Parameters) -> Parameters:
    """Set the argon2 cost of PIN hashes made from now on; returns the previous parameters.

    Hashes already stored keep verifying with the parameters written in them. Tests use
    `argon2.profiles.CHEAPEST`; production keeps PIN_HASH_PARAMETERS.
    """
    global _hasher, _pin_parameters
    previous, _pin_parameters = _pin_parameters, parameters
    _hasher = PasswordHasher.from_parameters(parameters)
    return previous


class PinFormatError(ValueError):
    """A PIN that is not 4–8 digits."""


class CardUidError(ValueError):
    """A card UID that is not 4–16 bytes given as bytes or hex text."""


def normalise_card_uid(uid: bytes | str) -> bytes:
    """Card UID bytes from raw bytes or hex text ("04:A1:B2...", "04 a1 b2", "04A1B2..." all work)."""
    if isinstance(uid, str):
        text = _UID_SEPARATORS.sub("", uid)
        if len(text) % 2:
            raise CardUidError(f"card UID {uid!r} has an odd number of hex digits")
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise CardUidError(
                f"card UID {uid!r} is not hexadecimal (expected e.g. 04A1B2C3D4E5F6)"
            ) from None
    else:
        raw = bytes(uid)
    if not UID_MIN_BYTES <= len(raw) <= UID_MAX_BYTES:
        raise CardUidError(f"card UID must be {UID_MIN_BYTES}–{UID_MAX_BYTES} bytes, got {len(raw)}")
    return raw


def card_uid_hash(uid: bytes | str, key: bytes) -> str:
    """HMAC-SHA256 of the card UID as lowercase hex: what we store and look up instead of the UID."""
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"UID hash key must be at least {MIN_KEY_BYTES} bytes, got {len(key)}")
    return hmac.new(key, normalise_card_uid(uid), hashlib.sha256).hexdigest()


def check_pin_format(pin: str) -> str:
    """Return the PIN if it is 4–8 ASCII digits, else raise PinFormatError."""
    if not isinstance(pin, str) or not _PIN.fullmatch(pin):
        raise PinFormatError("PIN must be 4 to 8 digits (0–9)")
    return pin


def hash_pin(pin: str) -> str:
    """An argon2id hash (salted, with its parameters) of a 4–8 digit PIN."""
    return _hasher.hash(check_pin_format(pin))


def verify_pin(pin_hash: str, pin: str) -> bool:
    """Whether `pin` matches `pin_hash`. A wrongly formatted PIN simply does not match.

    Raises ValueError if `pin_hash` is not an argon2 hash at all (a data error worth noticing).
    """
    if not isinstance(pin, str) or not _PIN.fullmatch(pin):
        return False
    try:
        return _hasher.verify(pin_hash, pin)
    except VerifyMismatchError:
        return False
    except (InvalidHashError, VerificationError):
        raise ValueError("stored PIN hash is not a valid argon2 hash") from None


def pin_needs_rehash(pin_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's; rehash after a good verify."""
    return _hasher.check_needs_rehash(pin_hash)


def hash_password(password: str) -> str:
    """An argon2id hash of a staff member's console password (same parameters as PINs)."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether `password` matches; a damaged stored hash counts as no match (the account cannot sign in)."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, InvalidHashError, VerificationError):
        return False


def api_token_hash(token: str) -> str:
    """SHA-256 hex of a bearer token: what the api_users table stores and looks up."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_api_token() -> tuple[str, str]:
    """A fresh bearer token and its hash. Show the token once; store only the hash."""
    token = secrets.token_urlsafe(API_TOKEN_BYTES)
    return token, api_token_hash(token)
