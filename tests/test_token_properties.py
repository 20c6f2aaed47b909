"""Whatever a scanner types, the verifier answers with a TokenError, never a crash; real tokens round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import base45
import cbor2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from protocol.keys import PublicKeySet, PublishedKey, key_id, kid_to_bytes
from protocol.token import (
    MAX_TOKEN_CHARS,
    PREFIX,
    TokenClaims,
    TokenError,
    b45decode,
    issue_token,
    verify_token,
)

NOW = datetime(2025, 3, 1, 17, 0, tzinfo=UTC)
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
PRIVATE_KEY = Ed25519PrivateKey.generate()
KID = key_id(PRIVATE_KEY)
KEYS = PublicKeySet([PublishedKey(PRIVATE_KEY.public_key())])
GENUINE = issue_token(
    TokenClaims(
        issuer="asker",
        holder="p1234",
        site="heggedal",
        doors=("hovedinngang",),
        booking="b567",
        not_before=NOW - timedelta(minutes=5),
        expires=NOW + timedelta(hours=2),
    ),
    PRIVATE_KEY,
    KID,
)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def refused(text: Any) -> bool:
    """True when the verifier refuses with a TokenError; any other exception fails the test."""
    try:
        verify_token(text, KEYS, NOW)
    except TokenError as exc:
        assert exc.message and "\n" not in exc.message
        return True
    return False


@FUZZ
@given(st.text(max_size=MAX_TOKEN_CHARS + 50))
def test_any_text_is_refused_cleanly(text: str) -> None:
    assert refused(text)


@FUZZ
@given(st.text(alphabet=ALPHABET, max_size=400))
def test_any_base45_after_the_prefix_is_refused_cleanly(body: str) -> None:
    assert refused(PREFIX + body)


@FUZZ
@given(st.binary(max_size=500))
def test_any_bytes_behind_the_prefix_are_refused_cleanly(data: bytes) -> None:
    assert refused(PREFIX + base45.b45encode(data).decode())


@FUZZ
@given(st.data())
def test_mutated_tokens_are_refused_unless_unchanged(data: st.DataObject) -> None:
    text = GENUINE
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.integers(0, len(text)))
        action = data.draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
        char = data.draw(st.sampled_from(ALPHABET + "a\x00é"))
        if action == "replace":
            text = text[:where] + char + text[where + 1 :]
        elif action == "insert":
            text = text[:where] + char + text[where:]
        elif action == "delete":
            text = text[:where] + text[where + 1 :]
        else:
            text = text[:where]
    if text.upper() == GENUINE:
        assert not refused(text)
    else:
        assert refused(text)


cbor_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.binary(max_size=40),
    st.text(max_size=20),
)
cbor_values = st.recursive(
    cbor_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.one_of(st.integers(-10, 10), st.text(max_size=5)), children, max_size=5),
        st.builds(cbor2.CBORTag, st.sampled_from([0, 1, 2, 18, 24, 61, 258, 1000]), children),
    ),
    max_leaves=20,
)


@FUZZ
@given(cbor_values)
def test_any_cbor_structure_is_refused_cleanly(value: Any) -> None:
    try:
        raw = cbor2.dumps(value)
    except Exception:
        assume(False)
    assert refused(PREFIX + base45.b45encode(raw).decode())


@FUZZ
@given(
    protected=st.dictionaries(st.integers(-3, 6), cbor_values, max_size=4),
    claims=cbor_values,
)
def test_signed_but_strange_content_is_refused_cleanly(protected: dict[int, Any], claims: Any) -> None:
    """Even a correctly signed message may carry anything in its header and claims: refuse, do not crash."""
    protected = {1: -8, 4: kid_to_bytes(KID)} | protected
    try:
        protected_raw, payload = cbor2.dumps(protected), cbor2.dumps(claims)
    except Exception:
        assume(False)
    signature = PRIVATE_KEY.sign(cbor2.dumps(["Signature1", protected_raw, b"", payload]))
    message = cbor2.dumps(cbor2.CBORTag(18, [protected_raw, {}, payload, signature]))
    assert refused(PREFIX + base45.b45encode(message).decode())


slugs = st.from_regex(r"\A[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?\Z")
refs = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,20}\Z")
moments = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC))


@st.composite
def token_claims(draw: st.DrawFn) -> TokenClaims:
    not_before = draw(moments)
    doors = tuple(draw(st.lists(slugs, max_size=4)))
    zones = tuple(draw(st.lists(slugs, min_size=0 if doors else 1, max_size=4)))
    return TokenClaims(
        issuer=draw(slugs),
        holder=draw(refs),
        site=draw(slugs),
        doors=doors,
        zones=zones,
        booking=draw(st.none() | refs),
        not_before=not_before,
        expires=not_before + draw(st.timedeltas(timedelta(seconds=2), timedelta(days=30))),
        token_id=draw(st.binary(min_size=4, max_size=32)),
    )


@settings(max_examples=300, deadline=None)
@given(token_claims())
def test_every_valid_grant_round_trips(claims: TokenClaims) -> None:
    text = issue_token(claims, PRIVATE_KEY, KID)
    assert set(text) <= set(ALPHABET)
    assert verify_token(text, KEYS, claims.not_before) == claims


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_fast_base45_decoder_inverts_the_package_encoder(data: bytes) -> None:
    assert b45decode(base45.b45encode(data).decode()) == data


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=ALPHABET + "a", max_size=30))
def test_fast_base45_decoder_refuses_what_the_package_refuses(text: str) -> None:
    try:
        expected: bytes | None = base45.b45decode(text)
    except ValueError:
        expected = None
    try:
        actual: bytes | None = b45decode(text)
    except ValueError:
        actual = None
    assert actual == expected
