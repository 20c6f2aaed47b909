"""Card UID hashing, PIN hashing, API tokens, and the settings/secrets they depend on."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from central.config import ConfigError, load_settings
from central.security import (
    PIN_HASH_PARAMETERS,
    CardUidError,
    PinFormatError,
    api_token_hash,
    card_uid_hash,
    hash_pin,
    new_api_token,
    pin_needs_rehash,
    use_pin_hash_parameters,
    verify_pin,
)

KEY = bytes(range(32))


# --- card UIDs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        "04A1B2C3D4E5F6",
        "04a1b2c3d4e5f6",
        "04:A1:B2:C3:D4:E5:F6",
        "04 a1 b2 c3 d4 e5 f6",
        " 04-A1-B2-C3-D4-E5-F6 ",
    ],
)
def test_card_uid_spellings_hash_alike(spelling: str) -> None:
    assert card_uid_hash(spelling, KEY) == card_uid_hash(bytes.fromhex("04A1B2C3D4E5F6"), KEY)


def test_card_uid_hash_is_keyed_hex_and_hides_the_uid() -> None:
    digest = card_uid_hash("04A1B2C3D4E5F6", KEY)
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert "04a1b2c3d4e5f6" not in digest
    assert card_uid_hash("04A1B2C3D4E5F6", b"k" * 32) != digest
    assert card_uid_hash("04A1B2C3D4E5F7", KEY) != digest


@pytest.mark.parametrize(
    ("uid", "message"),
    [
        ("04ZZB2C3", "not hexadecimal"),
        ("04A1B", "odd number of hex digits"),
        ("", "4–16 bytes"),
        ("04A1B2", "4–16 bytes"),
        ("00" * 17, "4–16 bytes"),
        (b"\x04\x01", "4–16 bytes"),
    ],
)
def test_bad_card_uid_is_refused_clearly(uid: str | bytes, message: str) -> None:
    with pytest.raises(CardUidError, match=message):
        card_uid_hash(uid, KEY)


def test_short_uid_hash_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        card_uid_hash("04A1B2C3D4E5F6", b"short")


# --- PINs ------------------------------------------------------------------------------------------------


def test_pin_hash_verifies_only_the_right_pin() -> None:
    stored = hash_pin("1234")
    assert stored.startswith("$argon2id$")
    assert "1234" not in stored
    assert verify_pin(stored, "1234")
    assert not verify_pin(stored, "1235")
    assert not verify_pin(stored, "12345")
    assert hash_pin("1234") != stored  # salted


def test_production_pin_hashes_are_argon2id_at_64_mib_and_outlive_a_parameter_change() -> None:
    cheap = use_pin_hash_parameters(PIN_HASH_PARAMETERS)
    try:
        stored = hash_pin("2468")
        assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        assert not pin_needs_rehash(stored)
    finally:
        use_pin_hash_parameters(cheap)
    assert verify_pin(stored, "2468")  # a hash keeps its own parameters
    assert not verify_pin(stored, "2469")
    assert pin_needs_rehash(stored)  # differs from today's (cheap test) parameters


@pytest.mark.parametrize("pin", ["", "123", "123456789", "12a4", "12 34", "١٢٣٤", "1234\n"])
def test_bad_pin_format_is_refused_when_setting(pin: str) -> None:
    with pytest.raises(PinFormatError, match="4 to 8 digits"):
        hash_pin(pin)


def test_eight_digit_pin_is_allowed_and_bad_format_never_matches() -> None:
    stored = hash_pin("12345678")
    assert verify_pin(stored, "12345678")
    assert not verify_pin(stored, "1234567a")


def test_garbage_pin_hash_is_reported_not_treated_as_mismatch() -> None:
    with pytest.raises(ValueError, match="not a valid argon2 hash"):
        verify_pin("not-a-hash", "1234")


# --- API tokens ------------------------------------------------------------------------------------------


def test_api_tokens_are_random_and_stored_as_sha256() -> None:
    token, token_hash = new_api_token()
    other, other_hash = new_api_token()
    assert token != other and token_hash != other_hash
    assert len(token) >= 40
    assert token_hash == api_token_hash(token) and len(token_hash) == 64
    assert token not in token_hash


# --- settings and the UID hash key -----------------------------------------------------------------------


def test_settings_defaults_and_environment(tmp_path: Path) -> None:
    defaults = load_settings({})
    assert defaults.db_url == f"sqlite:///{Path('var') / 'central.db'}"
    assert (defaults.mqtt_host, defaults.mqtt_port, defaults.token_issuer) == ("127.0.0.1", 1883, "asker")
    assert defaults.event_retention_days == 30

    env = {
        "MERAAPENT_DATA_DIR": str(tmp_path),
        "MERAAPENT_MQTT_PORT": "8883",
        "MERAAPENT_MQTT_PASSWORD": "hemmelig",
        "MERAAPENT_EVENT_RETENTION_DAYS": "90",
    }
    settings = load_settings(env)
    assert settings.db_url == f"sqlite:///{tmp_path / 'central.db'}"
    assert settings.mqtt_port == 8883 and settings.event_retention_days == 90
    assert "hemmelig" not in repr(settings)


def test_overrides_beat_environment_and_data_dir_moves_default_db(tmp_path: Path) -> None:
    env = {"MERAAPENT_DATA_DIR": "/elsewhere", "MERAAPENT_DB_URL": ""}
    settings = load_settings(env, data_dir=tmp_path, db_url=None)
    assert settings.data_dir == tmp_path
    assert settings.db_url == f"sqlite:///{tmp_path / 'central.db'}"
    assert load_settings(env, db_url="postgresql://db/x").db_url == "postgresql://db/x"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MERAAPENT_MQTT_PORT": "mqtt"}, "MERAAPENT_MQTT_PORT must be a whole number"),
        ({"MERAAPENT_MQTT_PORT": "70000"}, "MERAAPENT_MQTT_PORT must be 1–65535"),
        ({"MERAAPENT_EVENT_RETENTION_DAYS": "0"}, "at least 1"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_uid_hash_key_is_created_once_privately_and_reused(tmp_path: Path) -> None:
    settings = load_settings({}, data_dir=tmp_path / "data")
    key = settings.uid_hash_key()
    assert len(key) == 32
    assert load_settings({}, data_dir=tmp_path / "data").uid_hash_key() == key
    key_file = settings.secrets_dir / "uid-hash.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.secrets_dir.stat().st_mode) == 0o700
    assert load_settings({}, data_dir=tmp_path / "other").uid_hash_key() != key


def test_damaged_uid_hash_key_is_not_silently_replaced(tmp_path: Path) -> None:
    settings = load_settings({}, data_dir=tmp_path)
    settings.uid_hash_key()
    key_file = settings.secrets_dir / "uid-hash.key"
    key_file.write_text("abcd\n")
    with pytest.raises(ConfigError, match="restore it from backup"):
        settings.uid_hash_key()
    assert key_file.read_text() == "abcd\n"
