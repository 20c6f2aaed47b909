"""What an OSDP reader says, decoded without a bus: card formats, keypad codes, LED commands, the key file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.inputs import Feedback
from firmware_bridge.feedback import AMBER, GREEN, RED, feedback_commands
from firmware_bridge.formats import (
    FORMAT_ASCII,
    FORMAT_RAW,
    FORMAT_WIEGAND,
    CardRead,
    RefusedRead,
    decode_card,
    decode_keys,
    encode_wiegand,
    pack_bits,
    wiegand_uid,
)
from firmware_bridge.keys import DEFAULT_SCBK, KeyFile, KeyFileError

# HID H10301, facility 12, card 3456: 0 00001100 0000110110000000 1 (parities worked out by hand)
W26_FC12_3456 = int("0" + "00001100" + "0000110110000000" + "1", 2)


def test_a_wiegand_26_card_gives_its_facility_code_and_number_as_six_bytes() -> None:
    read = decode_card(FORMAT_WIEGAND, 26, pack_bits(W26_FC12_3456, 26))
    assert read == CardRead(bytes.fromhex("000c00000d80"), "wiegand26")
    assert wiegand_uid(12, 3456) == bytes.fromhex("000c00000d80")
    assert encode_wiegand("wiegand26", 12, 3456) == (26, pack_bits(W26_FC12_3456, 26))


def test_the_same_card_number_reads_the_same_in_26_and_34_bit_format() -> None:
    for name in ("wiegand26", "wiegand34"):
        length, data = encode_wiegand(name, 200, 65000)
        assert decode_card(FORMAT_WIEGAND, length, data) == CardRead(wiegand_uid(200, 65000), name)
    length, data = encode_wiegand("wiegand34", 40000, 7)  # 34 bits carry a 16-bit facility code
    assert decode_card(FORMAT_WIEGAND, length, data) == CardRead(wiegand_uid(40000, 7), "wiegand34")


def test_a_parity_error_is_a_refused_read() -> None:
    bad = W26_FC12_3456 ^ 1  # odd parity bit flipped
    read = decode_card(FORMAT_WIEGAND, 26, pack_bits(bad, 26))
    assert read == RefusedRead("Wiegand 26-bit parity error (a misread)")
    length, data = encode_wiegand("wiegand34", 1, 2)
    flipped = bytes([data[0] ^ 0x80]) + data[1:]  # even parity bit flipped
    assert decode_card(FORMAT_WIEGAND, length, flipped) == RefusedRead(
        "Wiegand 34-bit parity error (a misread)"
    )


@given(
    st.sampled_from(["wiegand26", "wiegand34"]),
    st.integers(0, 255),
    st.integers(0, 65535),
    st.integers(0, 33),
)
def test_every_single_bit_misread_is_refused(name: str, facility: int, number: int, bit: int) -> None:
    length, data = encode_wiegand(name, facility, number)  # type: ignore[arg-type]
    assert decode_card(FORMAT_WIEGAND, length, data) == CardRead(wiegand_uid(facility, number), name)
    value = int.from_bytes(data, "big") >> (len(data) * 8 - length)
    misread = pack_bits(value ^ (1 << (bit % length)), length)
    assert isinstance(decode_card(FORMAT_WIEGAND, length, misread), RefusedRead)


def test_a_raw_read_is_the_cards_serial_number_as_a_pcsc_reader_would_give_it() -> None:
    uid = bytes.fromhex("04a1b2c3d4e5f6")
    assert decode_card(FORMAT_RAW, 56, uid) == CardRead(uid, "raw")
    backwards = int(format(int.from_bytes(uid, "big"), "056b")[::-1], 2).to_bytes(7, "big")
    assert decode_card(FORMAT_RAW, 56, backwards, direction=1) == CardRead(uid, "raw")
    assert decode_card(FORMAT_WIEGAND, 32, uid[:4]) == CardRead(uid[:4], "raw")  # 32-bit CSN Wiegand


@pytest.mark.parametrize(
    ("fmt", "length", "data", "reason"),
    [
        (FORMAT_RAW, 37, bytes(5), "37-bit card data is neither Wiegand 26/34 nor a 4-16 byte serial number"),
        (FORMAT_RAW, 24, bytes(3), "24-bit card data is neither Wiegand 26/34 nor a 4-16 byte serial number"),
        (FORMAT_RAW, 64, bytes(4), "card data shorter than the 64 bits announced"),
        (
            FORMAT_ASCII,
            8,
            b"12345678",
            "ASCII card data is not supported; set the reader to raw or Wiegand output",
        ),
        (7, 32, bytes(4), "unknown card data format 7"),
    ],
)
def test_unusable_card_data_is_refused_without_showing_it(
    fmt: int, length: int, data: bytes, reason: str
) -> None:
    assert decode_card(fmt, length, data) == RefusedRead(reason)


def test_keypad_codes_become_keys_with_hash_to_enter_and_star_to_clear() -> None:
    assert decode_keys(b"1234\r") == (["1", "2", "3", "4", "#"], 0)
    assert decode_keys(bytes([0x7F]) + b"#*9") == (["*", "#", "*", "9"], 0)
    assert decode_keys(b"A1\x00") == (["1"], 2)


def test_feedback_shows_green_red_amber_and_a_flashing_alarm() -> None:
    granted, beep = feedback_commands(Feedback.GRANTED)
    assert (granted["on_color"], granted["temporary"], granted["timer_count"]) == (GREEN, True, 30)
    assert beep["rep_count"] == 1
    denied, beeps = feedback_commands(Feedback.DENIED)
    assert (denied["on_color"], beeps["rep_count"]) == (RED, 3)
    [amber] = feedback_commands(Feedback.PIN_NEEDED)
    assert (amber["on_color"], amber["timer_count"]) == (AMBER, 255)
    [alarm] = feedback_commands(Feedback.ALARM)
    assert (alarm["on_color"], alarm["temporary"], alarm["on_count"], alarm["off_count"]) == (
        RED,
        False,
        5,
        5,
    )
    cancel, off = feedback_commands(Feedback.IDLE)
    assert (cancel["temporary"], cancel["control_code"]) == (True, 1)  # back from any temporary colour
    assert (off["temporary"], off["on_color"]) == (False, 0)


# --- the key file ------------------------------------------------------------------------------------------

KEY1, KEY2 = "3f9c1e0b7a2d48c6915e0f7b2a6d4c81", "a04be2d1c97f3316e58b2c0d9a7e61f4"


def test_the_key_file_gives_each_reader_its_key(tmp_path: Path) -> None:
    path = tmp_path / "osdp.keys"
    path.write_text(f"# readers at Heggedal\n1 {KEY1}\n\n 2   {KEY2.upper()}  # bakdor\n")
    keys = KeyFile(path).keys_for([1, 2], install_mode=False)
    assert keys == {1: bytes.fromhex(KEY1), 2: bytes.fromhex(KEY2)}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("1 abc\n", "line 1: expected '<reader bus address> <32 hex digits>'"),
        (f"1 {KEY1}\n1 {KEY2}\n", "line 2: reader 1 already has a key above"),
        (f"127 {KEY1}\n", "line 1: reader bus addresses go from 0 to 126, got 127"),
        (
            f"1 {DEFAULT_SCBK.hex()}\n",
            "line 1: that is the default key SCBK-D every OSDP device knows; give reader 1 a random key"
            " (install mode does it for you)",
        ),
    ],
)
def test_a_bad_key_file_is_one_line_naming_the_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "osdp.keys"
    path.write_text(text)
    with pytest.raises(KeyFileError) as caught:
        KeyFile(path).read()
    assert str(caught.value) == f"{path} {problem}"


def test_a_reader_without_a_key_is_refused_unless_in_install_mode(tmp_path: Path) -> None:
    path = tmp_path / "osdp.keys"
    path.write_text(f"1 {KEY1}\n")
    with pytest.raises(KeyFileError, match=r"no key for OSDP reader 2; .* set install_mode = true once"):
        KeyFile(path).keys_for([1, 2], install_mode=False)
    assert path.read_text() == f"1 {KEY1}\n"  # nothing written


def test_install_mode_gives_a_new_reader_a_random_key_kept_in_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "osdp.keys"
    path.write_text(f"# site keys\n1 {KEY1}")
    keys = KeyFile(path).keys_for([1, 2, 3], install_mode=True)
    assert keys[1] == bytes.fromhex(KEY1)  # a reader with a key keeps it: never re-keyed
    assert len({keys[2], keys[3], DEFAULT_SCBK}) == 3 and len(keys[2]) == 16
    assert KeyFile(path).read() == keys  # written before anything goes to a reader
    assert path.read_text().startswith(f"# site keys\n1 {KEY1}\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KeyFile(path).keys_for([1, 2, 3], install_mode=True) == keys  # the second time: nothing new
    fresh = tmp_path / "new.keys"
    assert list(KeyFile(fresh).keys_for([5], install_mode=True)) == [5]
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
