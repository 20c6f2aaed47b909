"""Central's token signing keys on disk, under <data_dir>/keys/ (directory 0700, files 0600).

Layout, chosen so every step of a rotation leaves a usable state even if the process dies half-way:
- ``<kid>.pem``: the private key (PEM, PKCS8, unencrypted) of the active key. Only the active key's private
  half is kept: a verify-only key never signs again, so its private half is deleted at rotation.
- ``<kid>.pub.pem``: the public key (PEM, SubjectPublicKeyInfo) of a key published for verification only.
- ``ACTIVE``: the kid of the active key. It is replaced atomically (write + rename), which makes it the
  commit point of a rotation; a private key file ACTIVE does not name is left over: ignored, later removed.

At most two keys are published (the active one and one verify-only key), so a rotation refuses to run while
an older verify-only key is still published: retiring it is a decision about outstanding tokens (those it
signed stop verifying), which the operator makes with `retire`.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from central.config import Settings
from protocol.keys import KID_PATTERN, PublicKeySet, PublishedKey, key_id
from protocol.messages import SigningKeys

KEYS_DIR = "keys"
ACTIVE_FILE = "ACTIVE"
PRIVATE_SUFFIX = ".pem"
PUBLIC_SUFFIX = ".pub.pem"
MAX_PUBLISHED = 2

KeyStatus = Literal["active", "verify_only"]


class KeystoreError(ValueError):
    """The key directory cannot be used as asked; the message says what to do."""


@dataclass(frozen=True)
class SigningKey:
    """The private key new tokens are signed with, and its kid. Never print or log `private_key`."""

    private_key: Ed25519PrivateKey
    kid: str

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r})"


@dataclass(frozen=True)
class KeyInfo:
    """A published key as `keys list` shows it."""

    kid: str
    status: KeyStatus
    created_at: datetime


def keys_dir(data_dir: Path) -> Path:
    return Path(data_dir) / KEYS_DIR


# --- reading ------------------------------------------------------------------------------------------------


def load_signing_key(data_dir: Path) -> SigningKey:
    """The active private key; KeystoreError if there is none or its file is unusable."""
    directory = keys_dir(data_dir)
    kid = _active_kid(directory)
    if kid is None:
        raise KeystoreError(f"no signing key in {directory}; run `meraapent keys generate` first")
    return SigningKey(_read_private(directory / f"{kid}{PRIVATE_SUFFIX}", kid), kid)


def load_public_keys(data_dir: Path) -> PublicKeySet:
    """Every published key: the active one first, then the verify-only one (empty set if none exists)."""
    return PublicKeySet(
        PublishedKey(public_key, active=status == "active") for _, status, public_key in _published(data_dir)
    )


def signing_keys_message(settings: Settings) -> SigningKeys | None:
    """The `signing_keys` message the gateway publishes (retained); None while no key exists.

    `issued_at` is when the key directory last changed: an unchanged set gives the same message again.
    """
    keys = load_public_keys(settings.data_dir)
    if not len(keys):
        return None
    changed = _mtime(keys_dir(settings.data_dir))
    return SigningKeys(issuer=settings.token_issuer, issued_at=changed, keys=keys.to_messages())


def list_keys(data_dir: Path) -> list[KeyInfo]:
    directory = keys_dir(data_dir)
    return [
        KeyInfo(kid, status, _mtime(_key_file(directory, kid, status)))
        for kid, status, _ in _published(data_dir)
    ]


def _published(data_dir: Path) -> list[tuple[str, KeyStatus, Ed25519PublicKey]]:
    directory = keys_dir(data_dir)
    active = _active_kid(directory)
    if active is None:
        return []
    keys: list[tuple[str, KeyStatus, Ed25519PublicKey]] = [
        (active, "active", _read_private(directory / f"{active}{PRIVATE_SUFFIX}", active).public_key())
    ]
    for kid in _verify_only_kids(directory, active):
        keys.append((kid, "verify_only", _read_public(directory / f"{kid}{PUBLIC_SUFFIX}", kid)))
    return keys


def _active_kid(directory: Path) -> str | None:
    path = directory / ACTIVE_FILE
    try:
        kid = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeystoreError(f"cannot read {path}: {exc}") from None
    if not KID_PATTERN.match(kid):
        raise KeystoreError(f"{path} does not hold a key id (4 hex characters); restore it from backup")
    return kid


def _verify_only_kids(directory: Path, active: str) -> list[str]:
    kids = {path.name.removesuffix(PUBLIC_SUFFIX) for path in directory.glob(f"*{PUBLIC_SUFFIX}")}
    return sorted(kid for kid in kids if kid != active and KID_PATTERN.match(kid))


def _key_file(directory: Path, kid: str, status: KeyStatus) -> Path:
    return directory / f"{kid}{PRIVATE_SUFFIX if status == 'active' else PUBLIC_SUFFIX}"


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def _read_private(path: Path, kid: str) -> Ed25519PrivateKey:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeystoreError(f"the active key file {path} is missing; restore it from backup") from None
    except OSError as exc:
        raise KeystoreError(f"cannot read {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise KeystoreError(
            f"{path} is readable by others (mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`"
        )
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeystoreError(f"{path} is not an unencrypted PEM PKCS8 Ed25519 key; restore it from backup")
    _check_kid(path, kid, key.public_key())
    return key


def _read_public(path: Path, kid: str) -> Ed25519PublicKey:
    try:
        key = load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise KeystoreError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PublicKey):
        raise KeystoreError(f"{path} is not a PEM Ed25519 public key; restore it or retire key {kid}")
    _check_kid(path, kid, key)
    return key


def _check_kid(path: Path, kid: str, public_key: Ed25519PublicKey) -> None:
    actual = key_id(public_key)
    if actual != kid:
        raise KeystoreError(f"{path} holds key {actual}, not {kid}; the key directory has been tampered with")


# --- changing -----------------------------------------------------------------------------------------------


def generate_key(data_dir: Path) -> str:
    """Create the first signing key and make it active; KeystoreError if a key exists already."""
    directory = _private_dir(keys_dir(data_dir))
    existing = _active_kid(directory)
    if existing is not None:
        raise KeystoreError(f"signing key {existing} exists already; `meraapent keys rotate` replaces it")
    kid = _write_new_private(directory, taken=set())
    _write_atomic(directory / ACTIVE_FILE, kid + "\n")
    _remove_leftovers(directory, kid)
    return kid


def rotate_key(data_dir: Path) -> str:
    """Make a new active key; the previous one stays published for verification only. Returns the new kid."""
    directory = _private_dir(keys_dir(data_dir))
    old = load_signing_key(data_dir)
    waiting = _verify_only_kids(directory, old.kid)
    if len(waiting) + 1 >= MAX_PUBLISHED:
        raise KeystoreError(
            f"key {waiting[0]} is still published for verification; retire it first "
            f"(`meraapent keys retire {waiting[0]}`, tokens it signed stop working)"
        )
    _write_atomic(directory / f"{old.kid}{PUBLIC_SUFFIX}", _public_pem(old.private_key.public_key()))
    kid = _write_new_private(directory, taken={old.kid})
    _write_atomic(directory / ACTIVE_FILE, kid + "\n")  # the commit point
    _remove_leftovers(directory, kid)
    return kid


def retire_key(data_dir: Path, kid: str | None = None) -> str:
    """Stop publishing a verify-only key (the only one if `kid` is None): tokens it signed stop verifying."""
    directory = keys_dir(data_dir)
    active = _active_kid(directory)
    if active is None:
        raise KeystoreError(f"no signing key in {directory}; nothing to retire")
    if kid == active:
        raise KeystoreError(f"key {kid} is the active key; rotate first, then retire it")
    waiting = _verify_only_kids(directory, active)
    if kid is None:
        if not waiting:
            raise KeystoreError("no verify-only key is published; nothing to retire")
        kid = waiting[0]
    elif kid not in waiting:
        raise KeystoreError(f"key {kid!r} is not published; `meraapent keys list` shows the keys")
    (directory / f"{kid}{PUBLIC_SUFFIX}").unlink()
    return kid


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != 0o700:
        path.chmod(0o700)
    return path


def _write_new_private(directory: Path, taken: set[str]) -> str:
    """Generate a key whose kid differs from `taken` (ids are 16 bits) and write it with mode 0600."""
    while True:
        private_key = Ed25519PrivateKey.generate()
        kid = key_id(private_key)
        if kid not in taken and not (directory / f"{kid}{PUBLIC_SUFFIX}").exists():
            break
    pem = private_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    _write_atomic(directory / f"{kid}{PRIVATE_SUFFIX}", pem.decode("ascii"))
    return kid


def _public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def _write_atomic(path: Path, text: str) -> None:
    """Write a 0600 file next to `path`, flush it to disk, then rename it over `path`."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temporary, path)
    directory_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory_fd)  # make the rename itself durable
    finally:
        os.close(directory_fd)


def _remove_leftovers(directory: Path, active: str) -> None:
    """Delete private keys other than the active one (a rotation's old key, or an interrupted run's)."""
    for path in directory.glob(f"*{PRIVATE_SUFFIX}"):
        kid = path.name.removesuffix(PRIVATE_SUFFIX)
        if kid != active and KID_PATTERN.match(kid):
            path.unlink()
