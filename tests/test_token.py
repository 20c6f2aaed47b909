"""Phone tokens and published keys: what a site agent accepts, what it refuses, and why."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import base45
import cbor2
import msgspec
import pytest
import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central import keystore
from central.config import load_settings
from protocol import codec
from protocol import messages as m
from protocol.keys import KeySetError, PublicKeySet, PublishedKey, b64url_encode, key_id, kid_to_bytes
from protocol.token import (
    PREFIX,
    TokenClaims,
    TokenError,
    TokenRefusal,
    deny_reason,
    issue_token,
    token_bytes,
    verify_token,
)

NOW = datetime(2025, 3, 1, 17, 0, tzinfo=UTC)
QR_ALPHANUMERIC = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")


def make_claims(**changes: Any) -> TokenClaims:
    values: dict[str, Any] = {
        "issuer": "asker",
        "holder": "p1234",
        "site": "heggedal",
        "doors": ("hovedinngang",),
        "not_before": NOW - timedelta(minutes=5),
        "expires": NOW + timedelta(hours=2),
        "token_id": bytes.fromhex("0011223344556677"),
    }
    values.update(changes)
    return TokenClaims(**values)


@pytest.fixture(scope="module")
def private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def keys(private_key: Ed25519PrivateKey) -> PublicKeySet:
    return PublicKeySet([PublishedKey(private_key.public_key())])


@pytest.fixture
def issue(private_key: Ed25519PrivateKey) -> Callable[..., str]:
    def issue_with(**changes: Any) -> str:
        return issue_token(make_claims(**changes), private_key, key_id(private_key))

    return issue_with


def refusal(text: object, keys: PublicKeySet | Any, now: datetime = NOW) -> TokenRefusal:
    with pytest.raises(TokenError) as caught:
        verify_token(text, keys, now)  # type: ignore[arg-type]
    assert caught.value.message and "\n" not in caught.value.message
    return caught.value.reason


def craft(
    private_key: Ed25519PrivateKey,
    claims: Any,
    protected: Any = None,
    unprotected: Any = None,
    tag: int = 18,
    raw_payload: bytes | None = None,
) -> str:
    """A correctly signed COSE_Sign1 around any headers and claims, for tokens our issuer never makes."""
    if protected is None:
        protected = {1: -8, 4: kid_to_bytes(key_id(private_key))}
    protected_raw = cbor2.dumps(protected)
    payload = cbor2.dumps(claims) if raw_payload is None else raw_payload
    signature = private_key.sign(cbor2.dumps(["Signature1", protected_raw, b"", payload]))
    return as_text(cbor2.CBORTag(tag, [protected_raw, unprotected or {}, payload, signature]))


def as_text(message: Any) -> str:
    """Token text around any CBOR value."""
    encoded: bytes = base45.b45encode(cbor2.dumps(message))
    return PREFIX + encoded.decode()


def claims_map(**changes: Any) -> dict[int, Any]:
    base: dict[int, Any] = {
        1: "asker",
        2: "p1234",
        4: int((NOW + timedelta(hours=1)).timestamp()),
        5: int((NOW - timedelta(hours=1)).timestamp()),
        7: b"\x01" * 8,
        -1: "heggedal",
        -2: "hovedinngang",
    }
    for key, value in changes.items():
        number = {"iss": 1, "sub": 2, "exp": 4, "nbf": 5, "iat": 6, "cti": 7, "site": -1, "doors": -2}[key]
        if value is None:
            base.pop(number, None)
        else:
            base[number] = value
    return base


# --- round trip and format ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"booking": "b567"},
        {"doors": (), "zones": ("moterom",)},
        {"doors": ("hovedinngang", "bibliotek"), "zones": ("moterom", "verksted"), "booking": "vega:991"},
    ],
    ids=["door", "booking", "zone-only", "several"],
)
def test_round_trip_gives_back_the_claims(
    issue: Callable[..., str], keys: PublicKeySet, changes: dict[str, Any]
) -> None:
    text = issue(**changes)
    assert verify_token(text, keys, NOW) == make_claims(**changes)


def test_typical_token_is_qr_alphanumeric_and_fits_version_7(issue: Callable[..., str]) -> None:
    for booking in (None, "b567"):
        text = issue(booking=booking)
        assert text.startswith("MA1:")
        assert set(text) <= QR_ALPHANUMERIC
        assert len(token_bytes(text)) <= 146
        assert int(segno.make_qr(text, mode="alphanumeric", error="L", boost_error=False).version) <= 7


def test_two_tokens_for_the_same_grant_have_different_ids(private_key: Ed25519PrivateKey) -> None:
    grant: dict[str, Any] = {"issuer": "asker", "holder": "p1", "site": "heggedal", "doors": ("x",)}
    claims = [TokenClaims(**grant, not_before=NOW, expires=NOW + timedelta(hours=1)) for _ in "ab"]
    assert claims[0].token_id != claims[1].token_id
    assert len(claims[0].token_id) == 8
    texts = {issue_token(c, private_key, key_id(private_key)) for c in claims}
    assert len(texts) == 2


def test_scanner_noise_is_tolerated(issue: Callable[..., str], keys: PublicKeySet) -> None:
    text = issue()
    assert verify_token(text + "\r\n", keys, NOW) == make_claims()
    assert verify_token(" " + text.lower(), keys, NOW) == make_claims()  # Caps Lock on a keyboard wedge


def test_sub_second_times_never_widen_the_window() -> None:
    claims = make_claims(
        not_before=NOW + timedelta(microseconds=300), expires=NOW + timedelta(hours=1, microseconds=900)
    )
    assert claims.not_before == NOW + timedelta(seconds=1)
    assert claims.expires == NOW + timedelta(hours=1)


def test_times_in_other_offsets_are_stored_as_utc() -> None:
    oslo_winter = timezone(timedelta(hours=1))
    claims = make_claims(not_before=datetime(2025, 3, 1, 17, 30, tzinfo=oslo_winter))
    assert claims.not_before == datetime(2025, 3, 1, 16, 30, tzinfo=UTC)
    assert claims.not_before.tzinfo is UTC


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"doors": (), "zones": ()}, "at least one door or zone"),
        ({"not_before": NOW, "expires": NOW}, "before expires"),
        ({"expires": datetime(2025, 3, 1, 18, 0)}, "timezone-aware"),
        ({"site": "Heggedal torg"}, "site"),
        ({"doors": ("ok", "not ok")}, "door"),
        ({"doors": "hovedinngang"}, "sequence"),
        ({"holder": ""}, "holder"),
        ({"booking": "b 567"}, "booking"),
        ({"token_id": b"abc"}, "token_id"),
        ({"doors": tuple(f"d{i}" for i in range(17))}, "at most 16"),
    ],
)
def test_bad_claims_are_refused_when_issuing(changes: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        make_claims(**changes)


def test_issuing_with_a_kid_of_another_key_is_refused(private_key: Ed25519PrivateKey) -> None:
    other = key_id(Ed25519PrivateKey.generate())
    with pytest.raises(ValueError, match="does not belong"):
        issue_token(make_claims(), private_key, other)


def test_claims_as_json_name_everything_an_operator_needs() -> None:
    assert make_claims(booking="b567").to_json_dict() == {
        "issuer": "asker",
        "holder": "p1234",
        "site": "heggedal",
        "doors": ["hovedinngang"],
        "zones": [],
        "booking": "b567",
        "not_before": "2025-03-01T16:55:00Z",
        "expires": "2025-03-01T19:00:00Z",
        "token_id": "0011223344556677",
        "holder_key": None,
    }


def test_allows_checks_site_then_door_or_the_doors_zone() -> None:
    claims = make_claims(doors=("hovedinngang",), zones=("moterom",))
    assert claims.allows("heggedal", "hovedinngang")
    assert claims.allows("heggedal", "moterom-dor", zone="moterom")
    assert not claims.allows("heggedal", "kontor", zone="ansatte")
    assert not claims.allows("heggedal", "kontor")
    assert not claims.allows("holmen", "hovedinngang")


# --- refusals -----------------------------------------------------------------------------------------------


def test_every_refusal_maps_to_an_access_event_reason() -> None:
    assert deny_reason(TokenRefusal.EXPIRED) is m.Reason.TOKEN_EXPIRED
    assert deny_reason(TokenRefusal.NOT_YET_VALID) is m.Reason.TOKEN_NOT_YET_VALID
    assert deny_reason(TokenRefusal.UNKNOWN_KID) is m.Reason.TOKEN_UNKNOWN_KEY
    assert deny_reason(TokenRefusal.BAD_SIGNATURE) is m.Reason.TOKEN_INVALID
    assert deny_reason(TokenRefusal.PROOF_MISSING) is m.Reason.PHONE_PROOF_MISSING
    assert deny_reason(TokenRefusal.PROOF_STALE) is m.Reason.PHONE_PROOF_STALE
    assert deny_reason(TokenRefusal.BAD_PROOF) is m.Reason.PHONE_PROOF_INVALID
    assert {deny_reason(r) for r in TokenRefusal} <= set(m.Reason)


def test_expired_and_not_yet_valid_allow_for_clock_skew(
    issue: Callable[..., str], keys: PublicKeySet
) -> None:
    text = issue(not_before=NOW, expires=NOW + timedelta(hours=1))
    skew = timedelta(seconds=60)
    assert verify_token(text, keys, NOW - skew)
    assert verify_token(text, keys, NOW + timedelta(hours=1) + skew - timedelta(seconds=1))
    assert refusal(text, keys, NOW - skew - timedelta(seconds=1)) is TokenRefusal.NOT_YET_VALID
    assert refusal(text, keys, NOW + timedelta(hours=1) + skew) is TokenRefusal.EXPIRED
    with pytest.raises(TokenError, match="expired at 2025-03-01T18:00:00Z"):
        verify_token(text, keys, NOW + timedelta(days=1))


def test_too_large_input_is_refused_before_decoding(keys: PublicKeySet) -> None:
    assert refusal(PREFIX + "0" * 2000, keys) is TokenRefusal.TOO_LARGE


@pytest.mark.parametrize("text", ["HC1:NCFOXN%TS3DH", "0123456789", "", "https://example.org/"])
def test_text_without_our_prefix_is_refused(text: str, keys: PublicKeySet) -> None:
    assert refusal(text, keys) is TokenRefusal.BAD_PREFIX


def test_another_format_version_is_named(keys: PublicKeySet) -> None:
    with pytest.raises(TokenError, match="format MA2: is not supported"):
        verify_token("MA2:RRQCP9", keys, NOW)


@pytest.mark.parametrize(
    "text",
    [
        PREFIX,
        PREFIX + "A",  # impossible base45 length
        PREFIX + "GGW",  # base45 group above 0xFFFF
        PREFIX + "ÆØÅ",
        PREFIX + base45.b45encode(b"\xff\xff").decode(),  # not CBOR
        PREFIX + base45.b45encode(cbor2.dumps([1, 2, 3, 4])).decode(),  # no tag 18
        PREFIX + base45.b45encode(cbor2.dumps(cbor2.CBORTag(18, [b"", {}, b""]))).decode(),
        PREFIX + base45.b45encode(cbor2.dumps(cbor2.CBORTag(18, ["a", {}, b"", b""]))).decode(),
    ],
)
def test_garbage_is_malformed(text: str, keys: PublicKeySet) -> None:
    assert refusal(text, keys) is TokenRefusal.MALFORMED


def test_non_text_is_malformed(keys: PublicKeySet) -> None:
    assert refusal(b"MA1:ABC", keys) is TokenRefusal.MALFORMED
    assert refusal(None, keys) is TokenRefusal.MALFORMED


def test_trailing_bytes_after_the_message_are_malformed(
    issue: Callable[..., str], keys: PublicKeySet
) -> None:
    raw = token_bytes(issue()) + b"\x00"
    assert refusal(PREFIX + base45.b45encode(raw).decode(), keys) is TokenRefusal.MALFORMED


def test_a_token_signed_by_an_unpublished_key_is_refused(keys: PublicKeySet) -> None:
    stranger = Ed25519PrivateKey.generate()
    text = issue_token(make_claims(), stranger, key_id(stranger))
    with pytest.raises(TokenError, match=f"key {key_id(stranger)} is not published") as caught:
        verify_token(text, keys, NOW)
    assert caught.value.reason is TokenRefusal.UNKNOWN_KID


def test_a_forged_signature_under_a_published_kid_is_refused(
    private_key: Ed25519PrivateKey, keys: PublicKeySet
) -> None:
    forger = Ed25519PrivateKey.generate()
    protected = {1: -8, 4: kid_to_bytes(key_id(private_key))}  # claims the genuine key's id
    assert refusal(craft(forger, claims_map(), protected=protected), keys) is TokenRefusal.BAD_SIGNATURE


def test_changed_claims_break_the_signature(issue: Callable[..., str], keys: PublicKeySet) -> None:
    tag = cbor2.loads(token_bytes(issue()))
    protected, unprotected, payload, signature = tag.value
    widened = payload.replace(b"hovedinngang", b"personalrom!")
    assert widened != payload
    forged = cbor2.CBORTag(18, [protected, unprotected, widened, signature])
    assert refusal(as_text(forged), keys) is TokenRefusal.BAD_SIGNATURE
    short = cbor2.CBORTag(18, [protected, unprotected, payload, signature[:63]])
    assert refusal(as_text(short), keys) is TokenRefusal.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("protected", "unprotected", "reason"),
    [
        ({1: -7, 4: None}, {}, TokenRefusal.WRONG_ALG),  # ES256
        ({4: None}, {}, TokenRefusal.WRONG_ALG),
        ({4: None}, {1: -8}, TokenRefusal.MALFORMED),
        ({1: -8}, {}, TokenRefusal.MALFORMED),
        ({1: -8}, {4: None}, TokenRefusal.MALFORMED),  # kid must be protected
        ({1: -8, 4: "text-kid"}, {}, TokenRefusal.MALFORMED),
        ({1: -8, 4: None, 2: [99]}, {}, TokenRefusal.MALFORMED),  # crit
        ({1: -8, 4: b"\x00\x00\x00"}, {}, TokenRefusal.UNKNOWN_KID),
        ([1, -8], {}, TokenRefusal.MALFORMED),
    ],
)
def test_header_problems_are_refused(
    private_key: Ed25519PrivateKey,
    keys: PublicKeySet,
    protected: Any,
    unprotected: dict[int, Any],
    reason: TokenRefusal,
) -> None:
    kid = kid_to_bytes(key_id(private_key))

    def fill(header: Any) -> Any:
        return {k: kid if v is None else v for k, v in header.items()} if isinstance(header, dict) else header

    text = craft(private_key, claims_map(), protected=fill(protected), unprotected=fill(unprotected))
    assert refusal(text, keys) is reason


def test_a_cwt_tag_around_the_message_is_accepted(private_key: Ed25519PrivateKey, keys: PublicKeySet) -> None:
    text = craft(private_key, claims_map())
    wrapped = cbor2.dumps(cbor2.CBORTag(61, cbor2.loads(token_bytes(text))))
    assert verify_token(PREFIX + base45.b45encode(wrapped).decode(), keys, NOW).site == "heggedal"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"sub": None}, TokenRefusal.MISSING_CLAIM),
        ({"exp": None}, TokenRefusal.MISSING_CLAIM),
        ({"cti": None}, TokenRefusal.MISSING_CLAIM),
        ({"site": None}, TokenRefusal.MISSING_CLAIM),
        ({"doors": None}, TokenRefusal.MISSING_CLAIM),
        ({"exp": "tomorrow"}, TokenRefusal.BAD_CLAIM),
        ({"exp": True}, TokenRefusal.BAD_CLAIM),
        ({"nbf": -5}, TokenRefusal.BAD_CLAIM),
        ({"exp": 10**20}, TokenRefusal.BAD_CLAIM),
        ({"iat": "now"}, TokenRefusal.BAD_CLAIM),
        ({"cti": "01020304"}, TokenRefusal.BAD_CLAIM),
        ({"site": "Heggedal!"}, TokenRefusal.BAD_CLAIM),
        ({"doors": ["hovedinngang", 7]}, TokenRefusal.BAD_CLAIM),
        ({"doors": {"a": 1}}, TokenRefusal.BAD_CLAIM),
        ({"nbf": int((NOW + timedelta(hours=2)).timestamp())}, TokenRefusal.BAD_CLAIM),  # nbf after exp
    ],
)
def test_claim_problems_are_refused(
    private_key: Ed25519PrivateKey, keys: PublicKeySet, changes: dict[str, Any], reason: TokenRefusal
) -> None:
    assert refusal(craft(private_key, claims_map(**changes)), keys) is reason


def test_claims_we_do_not_understand_are_refused(private_key: Ed25519PrivateKey, keys: PublicKeySet) -> None:
    for extra in (99, -5, "site", 3):  # 3 is aud: an audience restriction we would otherwise ignore
        claims = claims_map() | {extra: "x"}
        assert refusal(craft(private_key, claims), keys) is TokenRefusal.UNKNOWN_CLAIM


def test_a_payload_that_is_not_a_claims_map_is_malformed(
    private_key: Ed25519PrivateKey, keys: PublicKeySet
) -> None:
    assert refusal(craft(private_key, ["not", "a", "map"]), keys) is TokenRefusal.MALFORMED
    assert refusal(craft(private_key, None, raw_payload=b"\xff"), keys) is TokenRefusal.MALFORMED


def test_generic_cwt_extras_are_tolerated(private_key: Ed25519PrivateKey, keys: PublicKeySet) -> None:
    exp = (NOW + timedelta(minutes=30, seconds=0.7)).timestamp()
    claims = claims_map(iat=int(NOW.timestamp()), exp=exp, doors=["hovedinngang"])  # float exp, array doors
    verified = verify_token(craft(private_key, claims), keys, NOW)
    assert verified.expires == NOW + timedelta(minutes=30)
    assert verified.doors == ("hovedinngang",)


def test_a_key_outside_its_validity_window_is_refused(
    private_key: Ed25519PrivateKey, issue: Callable[..., str]
) -> None:
    public = private_key.public_key()
    ended = PublicKeySet([PublishedKey(public, not_after=NOW - timedelta(days=1))])
    future = PublicKeySet([PublishedKey(public, not_before=NOW + timedelta(days=1))])
    brief = PublicKeySet([PublishedKey(public, not_before=NOW, not_after=NOW + timedelta(seconds=1))])
    assert refusal(issue(), ended) is TokenRefusal.KEY_NOT_VALID
    assert refusal(issue(), future) is TokenRefusal.KEY_NOT_VALID
    assert verify_token(issue(), brief, NOW)
    assert verify_token(issue(), brief, NOW - timedelta(seconds=60))  # the clock skew applies to keys too
    assert refusal(issue(), brief, NOW - timedelta(seconds=61)) is TokenRefusal.KEY_NOT_VALID


def test_a_plain_mapping_of_keys_works_too(private_key: Ed25519PrivateKey, issue: Callable[..., str]) -> None:
    assert verify_token(issue(), {key_id(private_key): private_key.public_key()}, NOW)
    assert refusal(issue(), {}) is TokenRefusal.UNKNOWN_KID


def test_naive_now_is_a_programming_error(issue: Callable[..., str], keys: PublicKeySet) -> None:
    with pytest.raises(ValueError, match="timezone-aware") as caught:
        verify_token(issue(), keys, datetime(2025, 3, 1, 17, 0))
    assert not isinstance(caught.value, TokenError)


# --- rotation with central's keystore -----------------------------------------------------------------------


def test_rotation_keeps_old_tokens_valid_until_the_old_key_is_retired(tmp_path: Path) -> None:
    first = keystore.generate_key(tmp_path)
    signing = keystore.load_signing_key(tmp_path)
    old_token = issue_token(make_claims(), signing.private_key, signing.kid)
    assert verify_token(old_token, keystore.load_public_keys(tmp_path), NOW)

    second = keystore.rotate_key(tmp_path)
    signing = keystore.load_signing_key(tmp_path)
    assert signing.kid == second != first
    new_token = issue_token(make_claims(), signing.private_key, signing.kid)
    published = keystore.load_public_keys(tmp_path)
    assert published.kids == (second, first)
    assert published.active_kid == second
    assert verify_token(old_token, published, NOW) == verify_token(new_token, published, NOW)

    assert keystore.retire_key(tmp_path) == first
    published = keystore.load_public_keys(tmp_path)
    assert refusal(old_token, published) is TokenRefusal.UNKNOWN_KID
    assert verify_token(new_token, published, NOW)


# --- published keys -----------------------------------------------------------------------------------------


def test_key_ids_are_short_stable_and_derived_from_the_key(private_key: Ed25519PrivateKey) -> None:
    kid = key_id(private_key)
    assert kid == key_id(private_key.public_key()) == key_id(PublishedKey(private_key.public_key()).x)
    assert len(kid) == 4 and int(kid, 16) >= 0
    assert kid_to_bytes(kid) == bytes.fromhex(kid)


def test_jwk_export_and_parse_round_trip(private_key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate().public_key()
    published = PublicKeySet(
        [
            PublishedKey(private_key.public_key()),
            PublishedKey(other, active=False, not_before=NOW, not_after=NOW + timedelta(days=30)),
        ]
    )
    parsed = PublicKeySet.from_jwks(published.to_jwks_json())
    assert parsed.kids == published.kids
    assert [k.to_jwk() for k in parsed] == [k.to_jwk() for k in published]
    first = published.to_jwks()["keys"][0]
    assert first == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url_encode(PublishedKey(private_key.public_key()).x),
        "kid": key_id(private_key),
        "alg": "EdDSA",
        "active": True,
    }
    assert published.to_jwks()["keys"][1]["not_after"] == "2025-03-31T17:00:00Z"


def test_cose_key_export_names_okp_ed25519(private_key: Ed25519PrivateKey) -> None:
    published = PublishedKey(private_key.public_key())
    assert cbor2.loads(published.to_cose_key()) == {
        1: 1,
        2: kid_to_bytes(published.kid),
        3: -8,
        -1: 6,
        -2: published.x,
    }


def test_central_publishes_its_keys_as_a_signing_keys_message(tmp_path: Path) -> None:
    settings = load_settings(env={}, data_dir=tmp_path, token_issuer="asker")
    assert keystore.signing_keys_message(settings) is None
    keystore.generate_key(tmp_path)
    keystore.rotate_key(tmp_path)
    message = keystore.signing_keys_message(settings)
    assert message is not None
    assert message == keystore.signing_keys_message(settings)  # unchanged keys, same message
    received = codec.decode(codec.encode(message), m.SigningKeys)
    assert received.issuer == "asker"
    assert [(k.kid, k.active) for k in received.keys] == [
        (k.kid, k.status == "active") for k in keystore.list_keys(tmp_path)
    ]
    signing = keystore.load_signing_key(tmp_path)
    text = issue_token(make_claims(), signing.private_key, signing.kid)
    assert verify_token(text, PublicKeySet.from_messages(received.keys), NOW) == make_claims()


def test_keys_travel_in_the_signing_keys_message(private_key: Ed25519PrivateKey) -> None:
    published = PublicKeySet([PublishedKey(private_key.public_key())])
    message = m.SigningKeys(issuer="asker", issued_at=NOW, keys=published.to_messages())
    received = codec.decode(codec.encode(message), m.SigningKeys)
    keys = PublicKeySet.from_messages(received.keys)
    text = issue_token(make_claims(), private_key, key_id(private_key))
    assert verify_token(text, keys, NOW) == make_claims()


def test_a_key_validity_window_travels_in_the_signing_keys_message(
    private_key: Ed25519PrivateKey, issue: Callable[..., str]
) -> None:
    ended = PublishedKey(private_key.public_key(), not_after=NOW - timedelta(days=1))
    message = m.SigningKeys(issuer="asker", issued_at=NOW, keys=PublicKeySet([ended]).to_messages())
    received = codec.decode(codec.encode(message), m.SigningKeys)
    assert received.keys[0].not_after == NOW - timedelta(days=1)
    assert refusal(issue(), PublicKeySet.from_messages(received.keys)) is TokenRefusal.KEY_NOT_VALID


def test_a_signing_keys_message_with_a_reversed_window_is_refused(private_key: Ed25519PrivateKey) -> None:
    member = PublicKeySet([PublishedKey(private_key.public_key())]).to_messages()[0]
    raw = msgspec.to_builtins(m.SigningKeys(issuer="asker", issued_at=NOW, keys=[member]))
    raw["keys"][0].update(not_before="2025-03-02T00:00:00Z", not_after="2025-03-01T00:00:00Z")
    with pytest.raises(codec.ProtocolError, match="not_before must be before not_after"):
        codec.decode(msgspec.json.encode(raw), m.SigningKeys)


def _jwk(private_key: Ed25519PrivateKey, **changes: Any) -> dict[str, Any]:
    jwk = PublishedKey(private_key.public_key()).to_jwk()
    jwk.update(changes)
    return {k: v for k, v in jwk.items() if v is not None}


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"keys": 5}', '"keys" list'),
        ('{"keys": [7]}', "key 1: a key must be a JSON object"),
        ({"kty": "EC"}, "'kty' must be 'OKP', got 'EC'"),
        ({"crv": "X25519"}, "'crv' must be 'Ed25519'"),
        ({"alg": "ES256"}, "'alg' must be 'EdDSA'"),
        ({"x": None}, "'x'.*missing"),
        ({"x": "abc="}, "not unpadded base64url"),
        ({"x": "AAAA"}, "32 bytes"),
        ({"kid": "zzzz"}, "does not belong to this key"),
        ({"active": "yes"}, "true or false"),
        ({"not_before": "soon"}, "not an RFC 3339 time"),
        ({"not_before": "2025-03-01T17:00:00"}, "UTC offset"),
        ({"not_before": "2025-03-02T00:00:00Z", "not_after": "2025-03-01T00:00:00Z"}, "before not_after"),
    ],
)
def test_unusable_jwks_are_refused_with_a_reason(
    private_key: Ed25519PrivateKey, data: Any, complaint: str
) -> None:
    if isinstance(data, dict):
        data = {"keys": [_jwk(private_key, **data)]}
    with pytest.raises(KeySetError, match=complaint):
        PublicKeySet.from_jwks(data)


def test_a_key_set_holds_at_most_four_distinct_keys(private_key: Ed25519PrivateKey) -> None:
    many = [PublishedKey(Ed25519PrivateKey.generate().public_key()) for _ in range(5)]
    with pytest.raises(KeySetError, match="at most 4"):
        PublicKeySet(many)
    twice = PublishedKey(private_key.public_key())
    with pytest.raises(KeySetError, match="twice"):
        PublicKeySet([twice, twice])


def test_a_single_jwk_is_accepted_as_a_set(private_key: Ed25519PrivateKey) -> None:
    assert PublicKeySet.from_jwks(_jwk(private_key, use="sig")).kids == (key_id(private_key),)
