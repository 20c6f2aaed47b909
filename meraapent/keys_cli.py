"""`meraapent keys ...`: create, rotate, retire and publish the Ed25519 keys that sign phone tokens.

Only public keys and key ids are ever printed; the private key stays in <data_dir>/keys/ (see
central/keystore.py). Expected failures are one line on stderr and exit code 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from central.config import ConfigError, load_settings
from central.keystore import (
    KeystoreError,
    generate_key,
    list_keys,
    load_public_keys,
    retire_key,
    rotate_key,
)

app = typer.Typer(no_args_is_help=True, help="Signing keys for phone tokens.")

DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory (default: MERAAPENT_DATA_DIR or ./var).")
]


class ExportFormat(StrEnum):
    JWK = "jwk"
    COSE_HEX = "cose-hex"


def resolve_data_dir(data_dir: Path | None) -> Path:
    """The data directory: --data-dir, else MERAAPENT_DATA_DIR, else ./var (as central's settings)."""
    return load_settings(data_dir=data_dir).data_dir


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn expected failures into one line on stderr and exit code 1."""
    try:
        yield
    except (KeystoreError, ConfigError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot use {exc.filename or 'the key directory'}: {exc.strerror or exc}")


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@app.command("generate")
def generate_command(data_dir: DataDirOption = None) -> None:
    """Create the first signing key (refused if one exists: use `rotate`)."""
    with cli_errors():
        directory = resolve_data_dir(data_dir)
        kid = generate_key(directory)
    typer.echo(f"Created signing key {kid} in {directory / 'keys'}.")


@app.command("rotate")
def rotate_command(data_dir: DataDirOption = None) -> None:
    """Sign new tokens with a new key; the old key stays published for verification until retired."""
    with cli_errors():
        directory = resolve_data_dir(data_dir)
        kid = rotate_key(directory)
    typer.echo(f"Signing key is now {kid}; the previous key verifies until `meraapent keys retire`.")


@app.command("retire")
def retire_command(
    kid: Annotated[str | None, typer.Argument(help="Key id (default: the verify-only key).")] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Stop publishing a verify-only key: tokens it signed no longer open doors."""
    with cli_errors():
        retired = retire_key(resolve_data_dir(data_dir), kid)
    typer.echo(f"Retired key {retired}.")


@app.command("list")
def list_command(data_dir: DataDirOption = None) -> None:
    """Show the published keys: id, status (active or verify_only) and when they were made."""
    with cli_errors():
        keys = list_keys(resolve_data_dir(data_dir))
    if not keys:
        fail("no signing key yet; run `meraapent keys generate`")
    for key in keys:
        created = key.created_at.isoformat(timespec="seconds").replace("+00:00", "Z")
        typer.echo(f"{key.kid}  {key.status:<11}  {created}")


@app.command("export-public")
def export_public_command(
    output_format: Annotated[
        ExportFormat,
        typer.Option("--format", help="jwk: a JWK Set as JSON; cose-hex: '<kid> <COSE_Key hex>' lines."),
    ] = ExportFormat.JWK,
    data_dir: DataDirOption = None,
) -> None:
    """Print the published public keys with their key ids (what site agents verify tokens with)."""
    with cli_errors():
        keys = load_public_keys(resolve_data_dir(data_dir))
    if not len(keys):
        fail("no signing key yet; run `meraapent keys generate`")
    if output_format is ExportFormat.JWK:
        typer.echo(json.dumps(keys.to_jwks(), indent=2))
        return
    for key in keys:
        typer.echo(f"{key.kid} {key.to_cose_key().hex()}")
