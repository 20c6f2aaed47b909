"""Broker passwords: random per user, hashed by mosquitto's own `mosquitto_passwd` (PBKDF2-SHA512, `$7$`).

The hashes are made by the binary that ships with the broker, so their format is whatever that broker
accepts. Plain passwords never go on a command line (other users could read it in /proc): they are written
to a 0600 file in a private temporary directory that `mosquitto_passwd -U` hashes in place. `verify` checks
a password against an existing hash the way mosquitto does, so a re-run tells a kept password from a stale
one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

PASSWORD_BYTES = 24  # 192 bits, 32 URL-safe characters
PASSWD_TOOL = "mosquitto_passwd"  # noqa: S105 (a program name)


class PasswordError(RuntimeError):
    """mosquitto_passwd is missing or failed, or a password file cannot be read."""


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def read_hashes(path: Path) -> dict[str, str]:
    """``user -> hash`` from a mosquitto password file; {} if there is none yet."""
    if not path.exists():
        return {}
    hashes: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not hashed.startswith("$"):
            raise PasswordError(f"{path} line {number} is not `user:$hash`; restore it or remove the file")
        hashes[user] = hashed
    return hashes


def hash_passwords(plain: Mapping[str, str]) -> dict[str, str]:
    """Hash each user's password with `mosquitto_passwd -U`; returns ``user -> hash``."""
    if not plain:
        return {}
    tool = shutil.which(PASSWD_TOOL) or shutil.which(PASSWD_TOOL, path="/usr/sbin:/sbin")
    if tool is None:
        raise PasswordError(f"`{PASSWD_TOOL}` not found: install the mosquitto package")
    with tempfile.TemporaryDirectory(prefix="meraapent-passwd-") as tmp:  # mode 0700
        path = Path(tmp) / "passwd"
        write_private_text(path, "".join(f"{user}:{password}\n" for user, password in plain.items()))
        done = subprocess.run(  # noqa: S603 - mosquitto's own tool on a file of ours
            [tool, "-U", str(path)], capture_output=True, text=True, check=False, timeout=60
        )
        if done.returncode != 0:
            raise PasswordError(f"{PASSWD_TOOL} -U failed: {(done.stderr or done.stdout).strip()[:200]}")
        hashes = read_hashes(path)
    missing = set(plain) - set(hashes)
    if missing:
        raise PasswordError(f"{PASSWD_TOOL} did not hash the password of {', '.join(sorted(missing))}")
    return hashes


def verify(password: str, hashed: str) -> bool:
    """Whether `password` matches a `$7$` (PBKDF2-SHA512) hash; False for any other or a damaged format."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7" or not parts[2].isdigit():
        return False
    try:
        salt, digest = base64.b64decode(parts[3], validate=True), base64.b64decode(parts[4], validate=True)
    except (binascii.Error, ValueError):
        return False
    computed = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]), len(digest))
    return hmac.compare_digest(computed, digest)


def passwd_text(hashes: Mapping[str, str]) -> str:
    return "".join(f"{user}:{hashes[user]}\n" for user in sorted(hashes))


def read_password(path: Path) -> str | None:
    """A plain password file's content (one line), or None when there is none."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def write_private_text(path: Path, text: str) -> None:
    """Write a file only its owner can read (0600), atomically (write beside it, then rename); a missing
    directory is made private (0700)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
