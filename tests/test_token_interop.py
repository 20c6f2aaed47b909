"""Our tokens are standard COSE_Sign1/CWT: the independent `cwt` package reads ours and we read its."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import base45
import cbor2
import cwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cwt.cose_key_interface import COSEKeyInterface

from protocol.keys import PublicKeySet, PublishedKey, key_id, kid_to_bytes
from protocol.token import (
    PREFIX,
    TokenClaims,
    TokenError,
    TokenRefusal,
    issue_token,
    token_bytes,
    verify_token,
)

PRIVATE_KEY = Ed25519PrivateKey.generate()
KID = key_id(PRIVATE_KEY)
PUBLISHED = PublishedKey(PRIVATE_KEY.public_key())
KEYS = PublicKeySet([PUBLISHED])


def claims_now() -> TokenClaims:
    """Valid around the real clock: cwt checks exp/nbf against time.time() and cannot be given a time."""
    now = datetime.now(UTC).replace(microsecond=0)
    return TokenClaims(
        issuer="asker",
        holder="p1234",
        site="heggedal",
        doors=("hovedinngang", "bibliotek"),
        zones=("moterom",),
        booking="b567",
        not_before=now - timedelta(minutes=1),
        expires=now + timedelta(hours=1),
    )


def their_verification_key() -> COSEKeyInterface:
    """What a third party builds from our published COSE_Key (kty OKP, crv Ed25519, x, kid, alg)."""
    return cwt.COSEKey.new(cbor2.loads(PUBLISHED.to_cose_key()))


def their_signing_key() -> COSEKeyInterface:
    pem = PRIVATE_KEY.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    return cwt.COSEKey.from_pem(pem, alg="EdDSA", kid=kid_to_bytes(KID))


def as_text(raw: bytes) -> str:
    encoded: bytes = base45.b45encode(raw)
    return PREFIX + encoded.decode()


def test_cwt_verifies_our_token_and_reads_our_claims() -> None:
    claims = claims_now()
    raw = token_bytes(issue_token(claims, PRIVATE_KEY, KID))
    decoded = cwt.decode(raw, their_verification_key())
    assert decoded[1] == "asker"
    assert decoded[2] == "p1234"
    assert decoded[4] == int(claims.expires.timestamp())
    assert decoded[5] == int(claims.not_before.timestamp())
    assert decoded[7] == claims.token_id
    assert (decoded[-1], decoded[-2], decoded[-3], decoded[-4]) == (
        "heggedal",
        ["hovedinngang", "bibliotek"],
        "moterom",
        "b567",
    )


def test_cwt_sees_the_kid_and_alg_in_the_protected_header() -> None:
    raw = token_bytes(issue_token(claims_now(), PRIVATE_KEY, KID))
    message = cwt.COSEMessage.loads(raw)
    assert message.protected == {1: -8, 4: kid_to_bytes(KID)}
    assert message.unprotected == {}


def test_cwt_refuses_our_token_when_it_was_tampered_with() -> None:
    raw = bytearray(token_bytes(issue_token(claims_now(), PRIVATE_KEY, KID)))
    raw[-1] ^= 0x01  # last byte of the signature
    with pytest.raises(cwt.VerifyError):
        cwt.decode(bytes(raw), their_verification_key())


def test_cwt_refuses_our_token_under_another_key() -> None:
    other = Ed25519PrivateKey.generate()
    raw = token_bytes(issue_token(claims_now(), other, key_id(other)))
    with pytest.raises(ValueError, match="key is not found"):  # cwt matches keys by our kid
        cwt.decode(raw, their_verification_key())


def test_a_cwt_made_token_verifies_with_ours() -> None:
    claims = claims_now()
    payload = {
        1: claims.issuer,
        2: claims.holder,
        4: int(claims.expires.timestamp()),
        5: int(claims.not_before.timestamp()),
        6: int(claims.not_before.timestamp()),
        7: claims.token_id,
        -1: claims.site,
        -2: list(claims.doors),
        -3: list(claims.zones),
        -4: claims.booking,
    }
    sender = cwt.COSE.new(alg_auto_inclusion=True)
    raw = sender.encode_and_sign(cbor2.dumps(payload), their_signing_key(), protected={4: kid_to_bytes(KID)})
    assert verify_token(as_text(raw), KEYS, datetime.now(UTC)) == claims


def test_cwt_default_encoding_puts_kid_unprotected_which_we_refuse() -> None:
    """cwt.encode puts the kid in the unprotected header, where anyone could change it unnoticed."""
    claims = claims_now()
    payload = {1: "asker", 2: "p1234", 7: claims.token_id, -1: "heggedal", -2: "hovedinngang"}
    raw = cwt.encode(payload, their_signing_key())
    with pytest.raises(TokenError) as caught:
        verify_token(as_text(raw), KEYS, datetime.now(UTC))
    assert caught.value.reason is TokenRefusal.MALFORMED
    assert "protected header" in caught.value.message
