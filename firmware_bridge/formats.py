"""What an OSDP reader reports, decoded into what the agent hashes and types: card UIDs and keypad keys.

The card UID the agent hashes (controller.uid.card_uid_hash) must be the same bytes central hashed when the
card was enrolled, so the encoding is fixed here:

- Raw card data (the reader sends the card's serial number, CSN): the bytes as the reader sent them, first
  bit first, exactly what a PC/SC reader returns for the same card. The length must be whole bytes, 4 to 16.
- Wiegand 26 (HID H10301: even parity, 8-bit facility code, 16-bit card number, odd parity) and Wiegand 34
  (HID H10306: even parity, 16-bit facility code, 16-bit card number, odd parity): `wiegand_uid`, i.e.
  the facility code as 2 bytes then the card number as 4 bytes, big-endian (6 bytes). The same card number
  therefore reads the same in either format, and it can never be mistaken for a contactless serial number
  (ISO/IEC 14443 UIDs are 4, 7 or 10 bytes). A card printed "FC 12, no. 3456" is enrolled as
  ``wiegand_uid(12, 3456).hex()`` == "000c00000d80".

A Wiegand read with a parity error is refused: it is a misread, never a credential. Card data is never put
in a refusal reason or a log line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# osdp_sys values of the card read "format" field (osdp.CardFormat)
FORMAT_RAW = 0
FORMAT_WIEGAND = 1
FORMAT_ASCII = 2

WIEGAND_UID_BYTES = 6
RAW_UID_MIN_BYTES = 4
RAW_UID_MAX_BYTES = 16

WiegandFormat = Literal["wiegand26", "wiegand34"]


@dataclass(frozen=True)
class _Layout:
    bits: int
    facility_bits: int
    number_bits: int = 16

    @property
    def half(self) -> int:
        """Each parity bit covers its own half of the data bits."""
        return (self.facility_bits + self.number_bits) // 2


LAYOUTS: dict[WiegandFormat, _Layout] = {
    "wiegand26": _Layout(26, facility_bits=8),
    "wiegand34": _Layout(34, facility_bits=16),
}
_BY_LENGTH = {layout.bits: name for name, layout in LAYOUTS.items()}


@dataclass(frozen=True)
class CardRead:
    """A card read the agent may look up: `uid` is what it hashes; `format` says how it was read."""

    uid: bytes
    format: str


@dataclass(frozen=True)
class RefusedRead:
    """A read that is no credential (misread, unsupported format); `reason` holds no card data."""

    reason: str


def wiegand_uid(facility: int, card_number: int) -> bytes:
    """The UID bytes of a Wiegand card: facility code (2 bytes) + card number (4 bytes), big-endian."""
    if not 0 <= facility < 1 << 16 or not 0 <= card_number < 1 << 32:
        raise ValueError("facility code must fit 16 bits and card number 32 bits")
    return facility.to_bytes(2, "big") + card_number.to_bytes(4, "big")


def decode_card(fmt: int, length: int, data: bytes, direction: int = 0) -> CardRead | RefusedRead:
    """Decode an OSDP card read (`length` in bits for raw and Wiegand formats, first bit = MSB of data[0];
    `direction` 1 means the reader sent the bits last to first)."""
    if fmt == FORMAT_ASCII:
        return RefusedRead("ASCII card data is not supported; set the reader to raw or Wiegand output")
    if fmt not in (FORMAT_RAW, FORMAT_WIEGAND):
        return RefusedRead(f"unknown card data format {fmt}")
    if length <= 0 or len(data) * 8 < length:
        return RefusedRead(f"card data shorter than the {length} bits announced")
    value = _bits(data, length, backward=direction == 1)
    if length in _BY_LENGTH:
        return _decode_wiegand(_BY_LENGTH[length], value)
    if length % 8 == 0 and RAW_UID_MIN_BYTES <= length // 8 <= RAW_UID_MAX_BYTES:
        return CardRead(value.to_bytes(length // 8, "big"), "raw")
    return RefusedRead(f"{length}-bit card data is neither Wiegand 26/34 nor a 4-16 byte serial number")


def _bits(data: bytes, length: int, *, backward: bool) -> int:
    value = int.from_bytes(data, "big") >> (len(data) * 8 - length)
    if backward:
        value = int(format(value, f"0{length}b")[::-1], 2)
    return value


def _decode_wiegand(name: WiegandFormat, value: int) -> CardRead | RefusedRead:
    layout = LAYOUTS[name]
    data_bits = layout.facility_bits + layout.number_bits
    leading = value >> (layout.bits - 1 - layout.half)  # even parity bit + first half of the data
    trailing = value & ((1 << (layout.half + 1)) - 1)  # second half of the data + odd parity bit
    if leading.bit_count() % 2 != 0 or trailing.bit_count() % 2 != 1:
        return RefusedRead(f"Wiegand {layout.bits}-bit parity error (a misread)")
    payload = (value >> 1) & ((1 << data_bits) - 1)
    facility = payload >> layout.number_bits
    number = payload & ((1 << layout.number_bits) - 1)
    return CardRead(wiegand_uid(facility, number), name)


def encode_wiegand(name: WiegandFormat, facility: int, card_number: int) -> tuple[int, bytes]:
    """The bits a Wiegand card sends (what a reader forwards): (length in bits, data padded to bytes)."""
    layout = LAYOUTS[name]
    if not 0 <= facility < 1 << layout.facility_bits or not 0 <= card_number < 1 << layout.number_bits:
        raise ValueError(
            f"{name} holds a facility code below {1 << layout.facility_bits} and a card number below "
            f"{1 << layout.number_bits}"
        )
    payload = facility << layout.number_bits | card_number
    even = (payload >> layout.half).bit_count() % 2
    odd = 1 - (payload & ((1 << layout.half) - 1)).bit_count() % 2
    value = even << (layout.bits - 1) | payload << 1 | odd
    return layout.bits, pack_bits(value, layout.bits)


def pack_bits(value: int, length: int) -> bytes:
    """`length` bits of `value`, first bit in the MSB of the first byte, padded with zeros at the end."""
    size = (length + 7) // 8
    return (value << (size * 8 - length)).to_bytes(size, "big")


# --- keypad ------------------------------------------------------------------------------------------------

# OSDP keypad data is ASCII digits, with '*' sent as 0x7F (DEL) and '#' as 0x0D (CR); some readers send the
# characters themselves.
_KEYS = {ord(d): d for d in "0123456789"} | {0x7F: "*", ord("*"): "*", 0x0D: "#", ord("#"): "#"}
KEYPAD_CODES = {"*": 0x7F, "#": 0x0D} | {d: ord(d) for d in "0123456789"}


def decode_keys(data: bytes) -> tuple[list[str], int]:
    """The keys pressed ('0'-'9', '*', '#') and how many codes were not keys (ignored)."""
    keys = [_KEYS[code] for code in data if code in _KEYS]
    return keys, len(data) - len(keys)
