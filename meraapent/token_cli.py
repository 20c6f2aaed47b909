"""`meraapent token ...`: issue a phone token with the active key, or check one the way a site agent does.

`issue` prints only the token text, so it can be piped (e.g. into a QR generator or `token verify -`).
`verify` prints the claims as JSON, or "refused: <reason>: <message>" on stderr with exit code 1.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from central.config import load_settings
from central.keystore import load_public_keys, load_signing_key
from meraapent.keys_cli import DataDirOption, cli_errors, fail
from protocol.token import TokenClaims, TokenError, issue_token, verify_token

app = typer.Typer(no_args_is_help=True, help="Issue and verify phone tokens.")

MAX_MINUTES = 366 * 24 * 60
STDIN = "-"


@app.command("issue")
def issue_command(
    site: Annotated[str, typer.Option("--site", help="Site slug, e.g. heggedal.")],
    holder: Annotated[str, typer.Option("--holder", help="Reference of the person the token is for.")],
    minutes: Annotated[int, typer.Option("--minutes", help="Minutes from now until the token expires.")],
    door: Annotated[list[str] | None, typer.Option("--door", help="Door slug (repeat for more).")] = None,
    zone: Annotated[list[str] | None, typer.Option("--zone", help="Zone slug (repeat for more).")] = None,
    booking: Annotated[str | None, typer.Option("--booking", help="Booking reference.")] = None,
    issuer: Annotated[
        str | None, typer.Option("--issuer", help="Issuer name (default: MERAAPENT_TOKEN_ISSUER or asker).")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Print a signed token (base45 text for a QR code) valid from now for --minutes."""
    if not 1 <= minutes <= MAX_MINUTES:
        fail(f"--minutes must be between 1 and {MAX_MINUTES} (a year), got {minutes}")
    with cli_errors():
        settings = load_settings(data_dir=data_dir, token_issuer=issuer)
        signing = load_signing_key(settings.data_dir)
    start = datetime.now(UTC).replace(microsecond=0)
    try:
        claims = TokenClaims(
            issuer=settings.token_issuer,
            holder=holder,
            site=site,
            doors=tuple(door or ()),
            zones=tuple(zone or ()),
            booking=booking,
            not_before=start,
            expires=start + timedelta(minutes=minutes),
        )
        text = issue_token(claims, signing.private_key, signing.kid)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(text)


@app.command("verify")
def verify_command(
    token: Annotated[str, typer.Argument(help="The token text (quote it: it may hold spaces), - for stdin.")],
    at: Annotated[
        str | None, typer.Option("--at", help="Check at this ISO 8601 time with offset (default: now).")
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Verify a token with the published keys, as a site agent would, and print its claims as JSON."""
    now = _parse_at(at) if at is not None else datetime.now(UTC)
    if token == STDIN:
        token = sys.stdin.read()
    with cli_errors():
        keys = load_public_keys(load_settings(data_dir=data_dir).data_dir)
    if not len(keys):
        fail("no published keys to verify with; run `meraapent keys generate`")
    try:
        claims = verify_token(token, keys, now)
    except TokenError as exc:
        typer.echo(f"refused: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps(claims.to_json_dict(), indent=2))


def _parse_at(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() is None:
        fail(f"--at must be an ISO 8601 time with a UTC offset, e.g. 2025-03-01T18:00:00+01:00; got {text!r}")
    return moment.astimezone(UTC)
