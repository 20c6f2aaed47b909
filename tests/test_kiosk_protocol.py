"""The kiosk ↔ agent contract: every message survives a round trip, and bad lines are refused in one line."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import kiosk as k

AT = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)

REQUESTS: list[k.KioskRequest] = [
    k.TodayRequest(),
    k.CheckInRequest(method=k.CheckInMethod.CARD, uid="04a1b2c3d4e5f6"),
    k.CheckInRequest(method=k.CheckInMethod.QR, text="MA2:6BFOXN*TS0BI$ZD"),
    k.CheckInRequest(method=k.CheckInMethod.CODE, code="482615"),
    k.ExtendRequest(session="s" * 24, minutes=30),
    k.EndRequest(session="s" * 24),
]
REPLIES: list[k.KioskReply] = [
    k.TodayReply(
        site="heggedal", name="Heggedal innbyggertorg", timezone="Europe/Oslo", now=AT, open=True,
        closes_at=AT, closing_in_minutes=15,
        rooms=[k.RoomToday(slug="moterom-1", name="Møterom 1", bookings=[
            k.BookingToday(starts_at=AT, ends_at=AT, shown_as="Sjakkklubben")
        ])],
    ),
    k.CheckInReply(
        outcome=k.CheckInOutcome.CHECKED_IN, session="s" * 24, extend_minutes=[30, 60], can_end=True,
        booking=k.BookingCard(
            ref="b17", room="moterom-1", room_name="Møterom 1", starts_at=AT, ends_at=AT,
            zone_name="Møterom", door="moterom-1", door_name="Møterom 1",
        ),
    ),
    k.ChangeReply(outcome=k.ChangeOutcome.ROOM_TAKEN, until=AT),
    k.ErrorReply(message="not a valid kiosk request"),
]  # fmt: skip


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: type(r).__name__)
def test_every_request_survives_a_round_trip_on_one_line(request_: k.KioskRequest) -> None:
    line = k.encode(request_)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert k.decode_request(line) == request_


@pytest.mark.parametrize("reply", REPLIES, ids=lambda r: type(r).__name__)
def test_every_reply_survives_a_round_trip(reply: k.KioskReply) -> None:
    assert k.decode_reply(k.encode(reply)) == reply


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b'{"type":"check_in","method":"card","code":"123456"}', "carries uid and nothing else"),
        (b'{"type":"check_in","method":"code","code":"12345"}', "code"),
        (b'{"type":"extend","session":"' + b"s" * 24 + b'","minutes":5}', "minutes"),
        (b'{"type":"unlock","door":"hovedinngang"}', "unlock"),
        (b"not json", "not a valid kiosk request"),
        (b"{}" + b" " * k.MAX_LINE_BYTES, "bytes at most"),
    ],
)
def test_a_bad_request_is_refused_with_a_reason(line: bytes, why: str) -> None:
    with pytest.raises(k.KioskProtocolError, match=why):
        k.decode_request(line)


@given(st.binary(max_size=300))
def test_any_bytes_give_a_request_or_a_kiosk_protocol_error(data: bytes) -> None:
    try:
        decoded = k.decode_request(data)
    except k.KioskProtocolError:
        return
    assert isinstance(decoded, k.KioskRequest)
