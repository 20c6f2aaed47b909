"""`meraapent keys` and `meraapent token` as an operator uses them, and the key directory behind them."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import cbor2
import pytest
import typer
from typer.testing import CliRunner, Result

from central import keystore
from meraapent.keys_cli import app as keys_app
from meraapent.token_cli import app as token_app
from protocol.keys import PublicKeySet, kid_to_bytes

cli = typer.Typer()
cli.add_typer(keys_app, name="keys")
cli.add_typer(token_app, name="token")
runner = CliRunner()

ISSUE = ["token", "issue", "--site", "heggedal", "--door", "hovedinngang", "--holder", "p1", "--minutes", "5"]


def run(data_dir: Path, *args: str, stdin: str | None = None) -> Result:
    result = runner.invoke(cli, [*args, "--data-dir", str(data_dir)], input=stdin)
    assert "PRIVATE KEY" not in result.output
    assert "Traceback" not in result.output
    return result


def ok(data_dir: Path, *args: str, stdin: str | None = None) -> str:
    result = run(data_dir, *args, stdin=stdin)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def error(data_dir: Path, *args: str) -> str:
    result = run(data_dir, *args)
    assert result.exit_code == 1, result.stdout
    message = result.stderr.strip()
    assert message and "\n" not in message
    return message


def listed(data_dir: Path) -> list[tuple[str, str]]:
    return [tuple(line.split()[:2]) for line in ok(data_dir, "keys", "list").splitlines()]  # type: ignore[misc]


# --- keys ---------------------------------------------------------------------------------------------------


def test_generate_makes_one_private_key_readable_by_the_owner_only(tmp_path: Path) -> None:
    out = ok(tmp_path, "keys", "generate")
    kid = keystore.load_signing_key(tmp_path).kid
    assert kid in out
    directory = tmp_path / "keys"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / f"{kid}.pem").stat().st_mode) == 0o600
    assert (directory / f"{kid}.pem").read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert listed(tmp_path) == [(kid, "active")]


def test_generate_twice_is_refused_and_points_to_rotate(tmp_path: Path) -> None:
    ok(tmp_path, "keys", "generate")
    assert "rotate" in error(tmp_path, "keys", "generate")


def test_commands_without_a_key_say_how_to_make_one(tmp_path: Path) -> None:
    for args in (["keys", "list"], ["keys", "export-public"], ["keys", "rotate"], ISSUE):
        assert "meraapent keys generate" in error(tmp_path, *args)


def test_rotation_publishes_two_keys_until_the_old_one_is_retired(tmp_path: Path) -> None:
    ok(tmp_path, "keys", "generate")
    first = keystore.load_signing_key(tmp_path).kid
    ok(tmp_path, "keys", "rotate")
    second = keystore.load_signing_key(tmp_path).kid
    assert listed(tmp_path) == [(second, "active"), (first, "verify_only")]
    assert not (tmp_path / "keys" / f"{first}.pem").exists()  # a verify-only key keeps no private half

    refusal = error(tmp_path, "keys", "rotate")
    assert f"meraapent keys retire {first}" in refusal
    assert "is the active key" in error(tmp_path, "keys", "retire", second)
    assert "not published" in error(tmp_path, "keys", "retire", "beef")

    assert first in ok(tmp_path, "keys", "retire")
    assert listed(tmp_path) == [(second, "active")]
    assert "nothing to retire" in error(tmp_path, "keys", "retire")
    ok(tmp_path, "keys", "rotate")
    assert len(listed(tmp_path)) == 2


def test_export_public_prints_a_jwk_set_agents_can_parse(tmp_path: Path) -> None:
    ok(tmp_path, "keys", "generate")
    ok(tmp_path, "keys", "rotate")
    exported = ok(tmp_path, "keys", "export-public")
    keys = PublicKeySet.from_jwks(exported)
    assert keys.kids == tuple(kid for kid, _ in listed(tmp_path))
    assert [member["active"] for member in json.loads(exported)["keys"]] == [True, False]
    assert keys.active_kid == keystore.load_signing_key(tmp_path).kid


def test_export_public_as_cose_key_hex(tmp_path: Path) -> None:
    ok(tmp_path, "keys", "generate")
    kid, hex_key = ok(tmp_path, "keys", "export-public", "--format", "cose-hex").split()
    cose_key = cbor2.loads(bytes.fromhex(hex_key))
    assert cose_key[1] == 1 and cose_key[-1] == 6 and cose_key[3] == -8  # OKP, Ed25519, EdDSA
    assert cose_key[2] == kid_to_bytes(kid)
    assert len(cose_key[-2]) == 32


def test_data_dir_comes_from_the_environment(tmp_path: Path) -> None:
    result = runner.invoke(cli, ["keys", "generate"], env={"MERAAPENT_DATA_DIR": str(tmp_path / "env")})
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "env" / "keys" / "ACTIVE").exists()


# --- tokens -------------------------------------------------------------------------------------------------


def test_issue_then_verify_shows_the_claims(tmp_path: Path) -> None:
    ok(tmp_path, "keys", "generate")
    token = ok(tmp_path, *ISSUE, "--booking", "b567").strip()
    assert token.startswith("MA1:")
    claims = json.loads(ok(tmp_path, "token", "verify", token))
    assert claims["site"] == "heggedal"
    assert claims["doors"] == ["hovedinngang"]
    assert claims["holder"] == "p1"
    assert claims["booking"] == "b567"
    assert claims["issuer"] == "asker"
    assert json.loads(ok(tmp_path, "token", "verify", "-", stdin=token + "\n")) == claims


def test_issue_for_zones_and_another_issuer(tmp_path: Path) -> None:
    ok(tmp_path, "keys", "generate")
    args = ["token", "issue", "--site", "holmen", "--zone", "moterom", "--zone", "verksted"]
    token = ok(tmp_path, *args, "--holder", "lag:77", "--minutes", "90", "--issuer", "baerum").strip()
    claims = json.loads(ok(tmp_path, "token", "verify", token))
    assert (claims["zones"], claims["doors"], claims["issuer"]) == (["moterom", "verksted"], [], "baerum")


@pytest.mark.parametrize(
    ("extra", "complaint"),
    [
        (["--site", "heggedal", "--holder", "p1", "--minutes", "5"], "at least one door or zone"),
        (["--site", "Heggedal", "--door", "d", "--holder", "p1", "--minutes", "5"], "site"),
        (["--site", "heggedal", "--door", "d", "--holder", "p1", "--minutes", "0"], "--minutes"),
    ],
)
def test_issue_refuses_bad_input_in_one_line(tmp_path: Path, extra: list[str], complaint: str) -> None:
    ok(tmp_path, "keys", "generate")
    assert complaint in error(tmp_path, "token", "issue", *extra)


def test_verify_at_a_later_time_refuses_an_expired_token(tmp_path: Path) -> None:
    ok(tmp_path, "keys", "generate")
    token = ok(tmp_path, *ISSUE).strip()
    message = error(tmp_path, "token", "verify", token, "--at", "2099-01-01T00:00:00+01:00")
    assert message.startswith("refused: expired: the token expired at ")
    assert error(tmp_path, "token", "verify", token, "--at", "2000-01-01T00:00:00Z").startswith(
        "refused: not_yet_valid:"
    )
    assert "UTC offset" in error(tmp_path, "token", "verify", token, "--at", "2025-03-01T18:00")
    assert "UTC offset" in error(tmp_path, "token", "verify", token, "--at", "tomorrow")


def test_verify_refuses_garbage_with_a_reason(tmp_path: Path) -> None:
    ok(tmp_path, "keys", "generate")
    assert error(tmp_path, "token", "verify", "hello").startswith("refused: bad_prefix:")
    assert error(tmp_path, "token", "verify", "MA1:%%%").startswith("refused: malformed:")


def test_tokens_of_a_retired_key_stop_verifying(tmp_path: Path) -> None:
    ok(tmp_path, "keys", "generate")
    old = ok(tmp_path, *ISSUE).strip()
    ok(tmp_path, "keys", "rotate")
    new = ok(tmp_path, *ISSUE).strip()
    ok(tmp_path, "token", "verify", old)
    ok(tmp_path, "keys", "retire")
    assert error(tmp_path, "token", "verify", old).startswith("refused: unknown_kid:")
    ok(tmp_path, "token", "verify", new)


# --- the key directory when something went wrong ---------------------------------------------------------


def test_a_corrupt_private_key_is_reported_not_used(tmp_path: Path) -> None:
    kid = keystore.generate_key(tmp_path)
    (tmp_path / "keys" / f"{kid}.pem").write_text("-----BEGIN PRIVATE KEY-----\nbroken\n")
    assert "restore it from backup" in error(tmp_path, *ISSUE)


def test_a_private_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    kid = keystore.generate_key(tmp_path)
    path = tmp_path / "keys" / f"{kid}.pem"
    path.chmod(0o644)
    assert f"chmod 600 {path}" in error(tmp_path, *ISSUE)


def test_a_key_file_swapped_for_another_key_is_detected(tmp_path: Path) -> None:
    kid = keystore.generate_key(tmp_path)
    elsewhere = tmp_path / "other"
    other = keystore.generate_key(elsewhere)
    os.replace(elsewhere / "keys" / f"{other}.pem", tmp_path / "keys" / f"{kid}.pem")
    assert f"holds key {other}, not {kid}" in error(tmp_path, "keys", "list")


def test_missing_or_garbled_active_pointer_is_reported(tmp_path: Path) -> None:
    kid = keystore.generate_key(tmp_path)
    (tmp_path / "keys" / "ACTIVE").write_text("not a kid\n")
    assert "does not hold a key id" in error(tmp_path, *ISSUE)
    (tmp_path / "keys" / "ACTIVE").write_text("beef\n")
    assert "missing" in error(tmp_path, *ISSUE)
    (tmp_path / "keys" / "ACTIVE").write_text(f"{kid}\n")
    ok(tmp_path, *ISSUE)


def test_an_interrupted_rotation_leaves_the_old_key_working(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = keystore.generate_key(tmp_path)
    real_write = keystore._write_atomic

    def crash_at_commit(path: Path, text: str) -> None:
        if path.name == keystore.ACTIVE_FILE:
            raise OSError(28, "No space left on device", str(path))
        real_write(path, text)

    monkeypatch.setattr(keystore, "_write_atomic", crash_at_commit)
    with pytest.raises(OSError):
        keystore.rotate_key(tmp_path)
    monkeypatch.undo()

    assert len(list((tmp_path / "keys").glob("*.pem"))) == 3  # old private + its public + the orphan
    assert keystore.load_signing_key(tmp_path).kid == first
    assert listed(tmp_path) == [(first, "active")]
    second = keystore.rotate_key(tmp_path)
    assert {p.name for p in (tmp_path / "keys").glob("*.pem")} == {f"{second}.pem", f"{first}.pub.pem"}


def test_signing_key_repr_hides_the_private_key(tmp_path: Path) -> None:
    keystore.generate_key(tmp_path)
    signing = keystore.load_signing_key(tmp_path)
    assert repr(signing) == f"SigningKey(kid={signing.kid!r})"
