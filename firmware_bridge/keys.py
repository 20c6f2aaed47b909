"""The secure channel base keys (SCBK) of a site's OSDP readers: one file, one reader per line.

    # OSDP secure channel keys: <reader bus address> <32 hex digits>
    1 3f9c1e0b7a2d48c6915e0f7b2a6d4c81
    2 a04be2d1c97f3316e58b2c0d9a7e61f4

site.toml names this file (never the keys themselves). Every reader has its own random key; the default key
SCBK-D that every OSDP device knows is refused. A new reader comes from the factory on SCBK-D: only with
``install_mode = true`` does the agent give a reader without a line here a fresh random key (written here
first, then sent to the reader). A reader that has a line is never re-keyed.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

KEY_BYTES = 16
DEFAULT_SCBK = bytes(range(0x30, 0x40))  # SCBK-D (OSDP spec, annex D): install mode only
MAX_ADDRESS = 126  # 0x7F is the broadcast address
_LINE = re.compile(r"(\d{1,3})\s+([0-9A-Fa-f]{32})")
_HEADER = "# OSDP secure channel keys (SCBK): <reader bus address> <32 hex digits>. Keep this file secret.\n"


class KeyFileError(ValueError):
    """A key file the control panel cannot use; ``str()`` is one line naming the file."""


class KeyFile:
    """The key file at `path` (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> dict[int, bytes]:
        """Every reader's key; KeyFileError (one line) if the file is missing or malformed."""
        try:
            text = self.path.read_text(encoding="ascii")
        except FileNotFoundError:
            raise KeyFileError(f"{self.path}: no such key file") from None
        except OSError as exc:
            raise KeyFileError(f"{self.path}: cannot read it: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise KeyFileError(f"{self.path}: not a key file (not plain text)") from None
        return self._parse(text)

    def _parse(self, text: str) -> dict[int, bytes]:
        keys: dict[int, bytes] = {}
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            where = f"{self.path} line {number}"
            match = _LINE.fullmatch(line)
            if match is None:
                raise KeyFileError(f"{where}: expected '<reader bus address> <32 hex digits>'")
            address, key = int(match.group(1)), bytes.fromhex(match.group(2))
            if address > MAX_ADDRESS:
                raise KeyFileError(f"{where}: reader bus addresses go from 0 to {MAX_ADDRESS}, got {address}")
            if address in keys:
                raise KeyFileError(f"{where}: reader {address} already has a key above")
            if key == DEFAULT_SCBK:
                raise KeyFileError(
                    f"{where}: that is the default key SCBK-D every OSDP device knows; give reader {address}"
                    " a random key (install mode does it for you)"
                )
            keys[address] = key
        return keys

    def check(self, addresses: Iterable[int], *, install_mode: bool) -> None:
        """KeyFileError unless the readers at `addresses` can be brought up: a key each, or install mode."""
        self._known(addresses, install_mode=install_mode)

    def keys_for(self, addresses: Iterable[int], *, install_mode: bool) -> dict[int, bytes]:
        """The key of each reader at `addresses`; in install mode, readers without one get a new random key,
        saved to the file before anything is sent to a reader."""
        wanted = sorted(set(addresses))
        known = self._known(wanted, install_mode=install_mode)
        missing = [a for a in wanted if a not in known]
        if missing:
            new = {address: secrets.token_bytes(KEY_BYTES) for address in missing}
            self._append(new)
            log.warning("osdp.keys_created", readers=missing, file=str(self.path))
            known |= new
        return {address: known[address] for address in wanted}

    def _known(self, addresses: Iterable[int], *, install_mode: bool) -> dict[int, bytes]:
        if install_mode and not self.path.exists():
            return {}
        known = self.read()
        missing = sorted(set(addresses) - set(known))
        if missing and not install_mode:
            listed = ", ".join(str(a) for a in missing)
            raise KeyFileError(
                f"{self.path}: no key for OSDP reader {listed}; add a line '<address> <32 hex digits>' per"
                " reader, or set install_mode = true once to key new readers"
            )
        return known

    def _append(self, new: dict[int, bytes]) -> None:
        """Add lines, keeping what is there; written to a private temporary file and renamed into place."""
        try:
            text = self.path.read_text(encoding="ascii") if self.path.exists() else _HEADER
        except OSError as exc:
            raise KeyFileError(f"{self.path}: cannot read it: {exc.strerror or exc}") from None
        if text and not text.endswith("\n"):
            text += "\n"
        text += "".join(f"{address} {key.hex()}\n" for address, key in sorted(new.items()))
        temporary = self.path.with_name(f".{self.path.name}.new")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            raise KeyFileError(f"{self.path}: cannot write the new keys: {exc.strerror or exc}") from None
