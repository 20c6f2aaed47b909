"""Every decoder of the wire contract fed mutated and random input: no crash, every invalid input refused.

One test per decoder: the message codec once per MQTT channel, the phone token (``MA1:``), the holder
presentation (``MA2:``), the kiosk's requests and replies, the published key set (JWKS), MQTT topics, base45
and the agent's site.toml. Each is fed a mix of
- byte and character mutations of a genuine encoding (bit flips, replaced, inserted and deleted bytes,
  truncation, repeated slices), which may or may not still be valid;
- inputs that are invalid by construction (random bytes, an unknown field, a required field missing, a
  structure where a value belongs, another schema version, a truncated message, claims re-signed by a key
  that is not published), which must be refused;
and judged by the decoder's contract: it returns a value or raises its own refusal error, nothing else.
Whatever it accepts must be valid by a check of the test's own: a message re-encodes and decodes to an equal
message with no field an independent JSON parser does not see; a token or presentation carries exactly the
claims central signed (nobody else can sign, so anything else accepted would be a forgery).

`make test` draws a few hundred inputs per decoder; `make attacks` (MERAAPENT_FULL=1) ten thousand, and
prints the tallies (hw_sim/attacks.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import base45
import cbor2
import msgspec
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.config import ConfigError, load_config
from hw_sim.attacks import Tally, examples
from protocol import codec
from protocol import kiosk as k
from protocol import messages as m
from protocol.holder import present, proof_message, time_step, verify_presentation
from protocol.keys import KeySetError, PublicKeySet, PublishedKey, key_id, kid_to_bytes
from protocol.token import PREFIX, TokenClaims, TokenError, b45decode, issue_token, token_bytes, verify_token
from protocol.topics import Channel, TopicError, parse_topic, site_topic
from tests.protocol_samples import all_samples
from tests.test_kiosk_protocol import REPLIES, REQUESTS

SHORT = 250  # inputs per decoder in `make test`
FUZZ = settings(
    max_examples=examples(SHORT),
    deadline=None,
    database=None,  # every run draws afresh; a failure prints its input
    suppress_health_check=list(HealthCheck),
)
R = TypeVar("R")

# --- the judge ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One input; `invalid` says it is invalid by construction and must be refused."""

    data: Any
    invalid: bool
    how: str


def judge(
    tally: Tally,
    case: Case,
    decode: Callable[[Any], R],
    refusal: type[Exception],
    valid: Callable[[Any, R], bool],
    reason: Callable[[Exception], str] = lambda exc: type(exc).__name__,
) -> None:
    """Feed one input and count what the decoder did; a crash or an invalid acceptance fails the test."""
    tally.examples += 1
    try:
        result = decode(case.data)
    except refusal as exc:
        tally.refused += 1
        tally.refusal_reasons[reason(exc)] += 1
        return
    except Exception:
        tally.crashes += 1
        raise
    if case.invalid or not valid(case.data, result):
        tally.invalid_accepted += 1
        raise AssertionError(f"{tally.decoder} accepted invalid input ({case.how}): {case.data!r:.300}")
    tally.accepted += 1


def fuzz(tally: Tally, cases: st.SearchStrategy[Case], check: Callable[[Case], None]) -> None:
    """Run `check` on `examples()` inputs drawn from `cases`, report the tally, insist on a clean result."""

    @FUZZ
    @given(cases)
    def run(case: Case) -> None:
        check(case)

    try:
        run()
    finally:
        tally.report()
    assert (tally.crashes, tally.invalid_accepted) == (0, 0)
    assert tally.examples >= examples(SHORT)
    assert tally.refused > 0  # the mix always holds invalid input


# --- mutations ---------------------------------------------------------------------------------------------


@st.composite
def mutated_bytes(draw: st.DrawFn, original: bytes) -> bytes:
    """1-4 random edits of `original`: flip a bit, replace, insert or delete bytes, cut, repeat a slice."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        edit = draw(st.sampled_from(["flip", "replace", "insert", "delete", "truncate", "repeat"]))
        if edit == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == "replace" and data:
            data[at] = draw(st.integers(0, 255))
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif edit == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif edit == "truncate":
            del data[at:]
        elif edit == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 16))]
    return bytes(data)


@st.composite
def mutated_text(draw: st.DrawFn, original: str, alphabet: str) -> str:
    """1-4 character edits of `original` with characters from `alphabet`."""
    text = original
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
        char = draw(st.sampled_from(alphabet))
        if edit == "replace":
            text = text[:at] + char + text[at + 1 :]
        elif edit == "insert":
            text = text[:at] + char + text[at:]
        elif edit == "delete":
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at]
    return text


def maybe(strategy: st.SearchStrategy[Any], how: str) -> st.SearchStrategy[Case]:
    return strategy.map(lambda data: Case(data, invalid=False, how=how))


def never(strategy: st.SearchStrategy[Any], how: str) -> st.SearchStrategy[Case]:
    return strategy.map(lambda data: Case(data, invalid=True, how=how))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


# --- the message codec, per channel ------------------------------------------------------------------------

SAMPLES = all_samples()


def channel_samples(channel: Channel) -> list[m.Message]:
    return [s for s in SAMPLES if isinstance(s, codec.CHANNEL_MESSAGES[channel])]


def required_fields(message: m.Message) -> list[str]:
    """The fields a message of this type cannot do without; `v` too, the codec insists on the version."""
    fields = msgspec.structs.fields(type(message))
    return ["type", "v", *(f.encode_name for f in fields if f.required)]


def field_names(cls: type[m.Message]) -> set[str]:
    return {"type"} | {f.encode_name for f in msgspec.structs.fields(cls)}


def edited(message: m.Message, edit: Callable[[dict[str, Any]], None]) -> bytes:
    doc: dict[str, Any] = json.loads(codec.encode(message))
    edit(doc)
    return json.dumps(doc).encode()


@st.composite
def invalid_messages(draw: st.DrawFn, channel: Channel) -> tuple[bytes, str]:
    """A genuine message of the channel edited into one that the contract refuses."""
    message = draw(st.sampled_from(channel_samples(channel)))
    raw = codec.encode(message)
    others = sorted({codec.tag_of(c) for c in codec._ALL_TYPES.values()} - {codec.tag_of(type(message))})
    other_tags = [t for t in others if codec._ALL_TYPES[t] not in codec.CHANNEL_MESSAGES[channel]]
    field = draw(st.sampled_from(sorted(json.loads(raw))))
    edit = draw(st.sampled_from(["unknown", "missing", "structure", "version", "type", "truncated"]))
    if edit == "unknown":
        name = draw(st.text(min_size=1, max_size=12).filter(lambda n: n not in field_names(type(message))))
        value = draw(json_values)
        return edited(message, lambda doc: doc.__setitem__(name, value)), f"unknown field {name!r}"
    if edit == "missing":
        gone = draw(st.sampled_from(required_fields(message)))
        return edited(message, lambda doc: doc.pop(gone)), f"without {gone}"
    if edit == "structure":
        return edited(message, lambda doc: doc.__setitem__(field, {"x": [1]})), f"{field} as an object"
    if edit == "version":
        v = draw(st.integers().filter(lambda v: v not in codec.SUPPORTED_VERSIONS))
        return edited(message, lambda doc: doc.__setitem__("v", v)), f"version {v}"
    if edit == "type":
        tag = draw(st.sampled_from(other_tags))
        return edited(message, lambda doc: doc.__setitem__("type", tag)), f"type {tag}"
    return raw[: draw(st.integers(0, len(raw) - 1))], "truncated"


def message_cases(channel: Channel) -> st.SearchStrategy[Case]:
    originals = [codec.encode(s) for s in channel_samples(channel)]
    replaced = st.builds(
        lambda message, field, value: edited(message, lambda doc: doc.__setitem__(field, value)),
        st.sampled_from(channel_samples(channel)),
        st.sampled_from(sorted({f for s in channel_samples(channel) for f in json.loads(codec.encode(s))})),
        json_values,
    )
    reformatted = st.builds(
        lambda message, indent: json.dumps(json.loads(codec.encode(message)), indent=indent).encode(),
        st.sampled_from(channel_samples(channel)),
        st.none() | st.integers(0, 4),
    )
    return st.one_of(
        maybe(st.sampled_from(originals).flatmap(mutated_bytes), "bytes edited"),
        maybe(replaced, "a field replaced by any JSON value"),
        maybe(reformatted, "the same message, other whitespace"),
        never(st.binary(max_size=200), "random bytes"),
        invalid_messages(channel).map(lambda pair: Case(pair[0], invalid=True, how=pair[1])),
    )


def independent_json(data: bytes) -> Any:
    """The standard library's reading of `data`; None where it refuses what a decoder accepted."""
    try:
        return json.loads(data)
    except ValueError:
        return None


def valid_message(channel: Channel) -> Callable[[bytes, m.Message], bool]:
    def valid(payload: bytes, message: m.Message) -> bool:
        parsed = independent_json(payload)  # another parser must read what the codec accepted ...
        return (
            isinstance(message, codec.CHANNEL_MESSAGES[channel])
            and isinstance(parsed, dict)
            and set(parsed) <= field_names(type(message))  # ... and see no field the codec did not
            and codec.decode_for_channel(codec.encode(message), channel) == message
        )

    return valid


@pytest.mark.parametrize("channel", list(Channel), ids=lambda c: c.value)
def test_the_codec_refuses_whatever_a_channel_does_not_carry(channel: Channel) -> None:
    tally = Tally(f"codec {channel.value}")
    valid = valid_message(channel)

    def check(case: Case) -> None:
        judge(
            tally,
            case,
            lambda payload: codec.decode_for_channel(payload, channel),
            codec.ProtocolError,
            valid,
            lambda exc: exc.reason.value if isinstance(exc, codec.ProtocolError) else "?",
        )

    fuzz(tally, message_cases(channel), check)


# --- phone tokens and holder presentations -----------------------------------------------------------------

NOW = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
ISSUER = Ed25519PrivateKey.generate()
STRANGER = Ed25519PrivateKey.generate()
KEYS = PublicKeySet([PublishedKey(ISSUER.public_key())])
PHONE = ec.generate_private_key(ec.SECP256R1())
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
SCANNED = ALPHABET + "abz\r\n\t\x00é"  # what a scanner or an attacker might add


def claims(**changes: Any) -> TokenClaims:
    values: dict[str, Any] = {
        "issuer": "asker",
        "holder": "p1234",
        "site": "heggedal",
        "doors": ("hovedinngang",),
        "booking": "b567",
        "not_before": NOW - timedelta(minutes=5),
        "expires": NOW + timedelta(hours=2),
        "token_id": bytes(range(8)),
    }
    return TokenClaims(**(values | changes))


GENUINE_CLAIMS = claims()
GENUINE = issue_token(GENUINE_CLAIMS, ISSUER, key_id(ISSUER))
BOUND_CLAIMS = claims(holder_key=PHONE.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint))
BOUND = issue_token(BOUND_CLAIMS, ISSUER, key_id(ISSUER))


def phone_proof(token: str, step: int) -> bytes:
    r, s = decode_dss_signature(PHONE.sign(proof_message(token, step), ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


SHOWN = present(BOUND, time_step(NOW), phone_proof(BOUND, time_step(NOW)))


def resigned(changes: dict[str, Any], kid_of: Ed25519PrivateKey) -> str:
    """Claims changed and signed again by a key that is not published, under its own kid or the issuer's."""
    protected = cbor2.dumps({1: -8, 4: kid_to_bytes(key_id(kid_of))})
    genuine = cbor2.loads(token_bytes(issue_token(claims(**changes), STRANGER, key_id(STRANGER))))
    _old_protected, unprotected, payload, _sig = genuine.value
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
    raw = cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, STRANGER.sign(to_sign)]))
    text: str = PREFIX + base45.b45encode(raw).decode()
    return text


forged_tokens = st.builds(
    resigned,
    st.sampled_from(
        [
            {"site": "holmen"},
            {"doors": ("bibliotek",)},
            {"expires": NOW + timedelta(days=365)},
            {"holder": "p1"},
            {},
        ]
    ),
    st.sampled_from([ISSUER, STRANGER]),
)


def text_cases(genuine: str, prefix: str) -> st.SearchStrategy[Case]:
    raw = token_bytes(genuine) if prefix == PREFIX else b45decode(genuine[len(prefix) :])
    behind_prefix = st.binary(max_size=300).map(lambda data: prefix + base45.b45encode(data).decode())
    return st.one_of(
        maybe(mutated_text(genuine, SCANNED), "characters edited"),
        maybe(mutated_bytes(raw).map(lambda data: prefix + base45.b45encode(data).decode()), "CBOR edited"),
        never(st.integers(0, len(genuine) - 1).map(lambda n: genuine[:n]), "truncated"),
        never(st.text(max_size=400), "random text"),
        never(behind_prefix, "random bytes behind the prefix"),
        never(forged_tokens, "claims re-signed by an unpublished key"),
    )


def same_claims(expected: TokenClaims) -> Callable[[str, TokenClaims], bool]:
    return lambda _text, found: found == expected


def token_reason(exc: Exception) -> str:
    return exc.reason.value if isinstance(exc, TokenError) else "?"


def test_the_token_verifier_accepts_only_what_central_signed() -> None:
    tally = Tally("token MA1")

    def check(case: Case) -> None:
        decode = lambda text: verify_token(text, KEYS, NOW)  # noqa: E731
        judge(tally, case, decode, TokenError, same_claims(GENUINE_CLAIMS), token_reason)

    fuzz(tally, text_cases(GENUINE, PREFIX), check)


def test_the_presentation_verifier_accepts_only_the_phones_own_fresh_proof() -> None:
    tally = Tally("presentation MA2")
    step = time_step(NOW)
    other_steps = st.sampled_from([-3, -2, 2, 3, 1000]).map(
        lambda d: present(BOUND, step + d, phone_proof(BOUND, step))  # a proof moved to another step
    )
    stale = st.sampled_from([-3, -2, 2, 3]).map(
        lambda d: present(BOUND, step + d, phone_proof(BOUND, step + d))  # too old or too far ahead
    )
    cases = st.one_of(
        text_cases(SHOWN, "MA2:"),
        never(st.just(BOUND), "bound token without its proof"),
        never(other_steps, "a proof for another step"),
        never(stale, "a stale proof"),
    )

    def check(case: Case) -> None:
        decode = lambda text: verify_presentation(text, KEYS, NOW)  # noqa: E731
        judge(tally, case, decode, TokenError, same_claims(BOUND_CLAIMS), token_reason)

    fuzz(tally, cases, check)


# --- the kiosk's socket ------------------------------------------------------------------------------------


def kiosk_cases(samples: list[Any]) -> st.SearchStrategy[Case]:
    originals = [k.encode(s) for s in samples]

    def unknown_field(line: bytes, name: str) -> bytes:
        doc = json.loads(line)
        doc["x-" + name] = 1
        return json.dumps(doc).encode() + b"\n"

    return st.one_of(
        maybe(st.sampled_from(originals).flatmap(mutated_bytes), "bytes edited"),
        never(st.binary(max_size=200), "random bytes"),
        never(st.builds(unknown_field, st.sampled_from(originals), st.text(max_size=8)), "unknown field"),
        never(
            st.sampled_from(originals).flatmap(lambda o: st.integers(1, len(o) - 2).map(lambda n: o[:n])),
            "cut",
        ),
    )


def valid_kiosk(decode: Callable[[bytes], Any]) -> Callable[[bytes, Any], bool]:
    def valid(line: bytes, message: Any) -> bool:
        parsed = independent_json(line)
        names = {"type"} | {f.encode_name for f in msgspec.structs.fields(type(message))}
        return isinstance(parsed, dict) and set(parsed) <= names and decode(k.encode(message)) == message

    return valid


@pytest.mark.parametrize("side", ["request", "reply"])
def test_the_kiosk_socket_refuses_every_malformed_line(side: str) -> None:
    tally = Tally(f"kiosk {side}")
    decode = k.decode_request if side == "request" else k.decode_reply
    samples: list[Any] = list(REQUESTS) if side == "request" else list(REPLIES)

    def check(case: Case) -> None:
        judge(tally, case, decode, k.KioskProtocolError, valid_kiosk(decode))

    fuzz(tally, kiosk_cases(samples), check)


def test_a_line_that_is_not_utf8_is_refused_not_raised() -> None:
    """Found by this fuzzing: msgspec raised UnicodeDecodeError, which ended the agent's kiosk server."""
    for decode in (k.decode_request, k.decode_reply):
        with pytest.raises(k.KioskProtocolError):
            decode(b'{"type":"check_in","method":"qr","text":"\xff"}\n')


# --- the published key set, topics, base45 -----------------------------------------------------------------

JWKS = PublicKeySet(
    [PublishedKey(ISSUER.public_key()), PublishedKey(STRANGER.public_key(), active=False, not_after=NOW)]
).to_jwks_json()


def consistent_key_set(_text: str, keys: PublicKeySet) -> bool:
    again = PublicKeySet.from_jwks(keys.to_jwks())
    return again.kids == keys.kids and all(key.kid == key_id(key.public_key) for key in keys)


def test_the_key_set_parser_refuses_unusable_keys() -> None:
    tally = Tally("keys JWKS")
    cases = st.one_of(
        maybe(mutated_text(JWKS, '{}[]":,0123456789abcdefAZ_-tfn '), "JSON edited"),
        maybe(mutated_bytes(JWKS.encode()), "bytes edited"),
        maybe(json_values.map(json.dumps), "any JSON"),
        never(st.binary(max_size=100).map(lambda b: b"\xff" + b), "not UTF-8"),
    )

    def check(case: Case) -> None:
        judge(tally, case, PublicKeySet.from_jwks, KeySetError, consistent_key_set)

    fuzz(tally, cases, check)


TOPICS = [site_topic("heggedal", c, "hovedinngang" if c is Channel.DOOR_STATE else None) for c in Channel]


def test_the_topic_parser_refuses_every_topic_outside_the_layout() -> None:
    tally = Tally("MQTT topic")
    cases = st.one_of(
        maybe(st.sampled_from(TOPICS).flatmap(lambda t: mutated_text(t, "abz09-/+#$AZ \x00é")), "edited"),
        maybe(st.text(max_size=80), "random text"),
        never(st.sampled_from(TOPICS).map(lambda t: t.replace("heggedal", "Heggedal")), "upper case site"),
        never(st.sampled_from(TOPICS).map(lambda t: t + "/#"), "a wildcard"),
    )

    def check(case: Case) -> None:
        exact = lambda topic, p: site_topic(p.site, p.channel, p.door) == topic  # noqa: E731
        judge(tally, case, parse_topic, TopicError, exact)

    fuzz(tally, cases, check)


def test_base45_decodes_only_canonical_text() -> None:
    tally = Tally("base45")
    genuine = GENUINE[len(PREFIX) :]
    cases = st.one_of(
        maybe(st.text(alphabet=ALPHABET, max_size=60), "random base45 characters"),
        maybe(mutated_text(genuine, ALPHABET), "edited"),
        never(st.text(min_size=1, max_size=30).filter(lambda t: any(c not in ALPHABET for c in t)), "other"),
    )

    def check(case: Case) -> None:
        canonical = lambda text, data: base45.b45encode(data).decode() == text  # noqa: E731
        judge(tally, case, b45decode, ValueError, canonical)

    fuzz(tally, cases, check)


# --- the agent's site.toml ---------------------------------------------------------------------------------

SITE_TOML = (Path(__file__).resolve().parents[1] / "deploy" / "agent" / "site.toml").read_text(
    encoding="utf-8"
)


@st.composite
def edited_lines(draw: st.DrawFn, text: str) -> str:
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(lines) - 1))
        edit = draw(st.sampled_from(["delete", "repeat", "swap"]))
        if edit == "delete":
            del lines[at]
        elif edit == "repeat":
            lines.insert(at, lines[at])
        else:
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
    return "\n".join(lines)


def test_the_site_toml_loader_reports_every_broken_file_in_one_line(tmp_path: Path) -> None:
    """Not untrusted input, but hand-edited: whatever is in it, the loader answers with a ConfigError."""
    tally = Tally("site.toml")
    path = tmp_path / "site.toml"
    cases = st.one_of(
        maybe(mutated_text(SITE_TOML, '[]="#.,0129azAZ_- \n'), "characters edited"),
        maybe(edited_lines(SITE_TOML), "lines deleted, repeated or swapped"),
        never(st.binary(max_size=60).map(lambda b: b.decode("latin-1")), "random text"),
        never(st.just(SITE_TOML.replace('site = "heggedal"', 'site = "Heggedal!"')), "bad site slug"),
    )

    def load(text: str) -> Any:
        path.write_text(text, encoding="utf-8")
        return load_config(path, check_files=False)

    def check(case: Case) -> None:
        one_line = lambda exc: "one line" if "\n" not in str(exc) else "several lines"  # noqa: E731
        judge(tally, case, load, ConfigError, lambda _text, config: bool(config.doors), one_line)

    fuzz(tally, cases, check)
    assert set(tally.refusal_reasons) == {"one line"}
