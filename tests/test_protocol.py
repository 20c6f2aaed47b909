"""The wire contract: topics, schemas and decoders refuse everything that is not exactly the contract."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import codec
from protocol import messages as m
from protocol.codec import ProtocolError, Refusal
from protocol.topics import RULES, Channel, TopicError, parse_topic, site_filter, site_topic
from tests.protocol_samples import NOW, all_samples

SAMPLES = all_samples()
SAMPLE_IDS = [codec.tag_of(type(s)) for s in SAMPLES]


def test_every_message_type_has_a_sample() -> None:
    covered = {type(s) for s in SAMPLES}
    assert covered == {cls for classes in codec.CHANNEL_MESSAGES.values() for cls in classes}


@pytest.mark.parametrize("message", SAMPLES, ids=SAMPLE_IDS)
def test_round_trip(message: m.Message) -> None:
    payload = codec.encode(message)
    assert codec.decode(payload, type(message)) == message
    assert json.loads(payload)["v"] == 1


@pytest.mark.parametrize("message", SAMPLES, ids=SAMPLE_IDS)
def test_unknown_version_is_refused(message: m.Message) -> None:
    doc = json.loads(codec.encode(message))
    doc["v"] = 2
    with pytest.raises(ProtocolError) as refused:
        codec.decode(json.dumps(doc).encode(), type(message))
    assert refused.value.reason is Refusal.UNSUPPORTED_VERSION


@pytest.mark.parametrize("message", SAMPLES, ids=SAMPLE_IDS)
def test_unknown_field_is_refused(message: m.Message) -> None:
    doc = json.loads(codec.encode(message))
    doc["surprise"] = True
    with pytest.raises(ProtocolError, match="unknown field `surprise`") as refused:
        codec.decode(json.dumps(doc).encode(), type(message))
    assert refused.value.reason is Refusal.INVALID


@pytest.mark.parametrize("message", SAMPLES, ids=SAMPLE_IDS)
def test_oversized_is_refused_before_parsing(message: m.Message) -> None:
    payload = b" " * (type(message).max_bytes + 1)
    with pytest.raises(ProtocolError) as refused:
        codec.decode(payload, type(message))
    assert refused.value.reason is Refusal.TOO_LARGE


def test_message_for_another_channel_is_refused() -> None:
    command = next(s for s in SAMPLES if isinstance(s, m.Command))
    with pytest.raises(ProtocolError, match="got 'command'") as refused:
        codec.decode_for_channel(codec.encode(command), Channel.EVENT)
    assert refused.value.reason is Refusal.WRONG_TYPE


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", Refusal.NOT_JSON),
        (b"{", Refusal.NOT_JSON),
        (b"\xff\xfe", Refusal.NOT_JSON),
        (b"[]", Refusal.NO_TYPE),
        (b'{"v": 1}', Refusal.NO_TYPE),
        (b'{"type": 5, "v": 1}', Refusal.NO_TYPE),
        (b'{"type": "open_all_doors", "v": 1}', Refusal.UNKNOWN_TYPE),
        (b'{"type": "ack", "v": 1, "site": "heggedal"}', Refusal.INVALID),
    ],
)
def test_malformed_payloads_get_a_reason(payload: bytes, reason: Refusal) -> None:
    with pytest.raises(ProtocolError) as refused:
        codec.decode(payload, m.Ack)
    assert refused.value.reason is reason


def test_naive_times_are_refused() -> None:
    doc = json.loads(codec.encode(SAMPLES[-1]))
    doc["at"] = "2026-11-22T20:15:00"
    with pytest.raises(ProtocolError, match="timezone"):
        codec.decode(json.dumps(doc).encode(), m.AgentStatus)


def test_cross_field_rules_are_enforced_on_decode() -> None:
    command = json.loads(codec.encode(next(s for s in SAMPLES if isinstance(s, m.Command))))
    command["expires_at"] = "2026-11-22T20:00:00Z"  # before issued_at
    with pytest.raises(ProtocolError, match="issued_at must be before expires_at"):
        codec.decode(json.dumps(command).encode(), m.Command)
    with pytest.raises(ValueError, match="prev_seq must be before seq"):
        m.ReplicaDelta(site="holmen", seq=4, prev_seq=4, generated_at=NOW)


def test_slugs_cannot_inject_topic_wildcards() -> None:
    doc = json.loads(codec.encode(SAMPLES[-1]))
    for bad in ["+", "#", "a/b", "Heggedal", "", "-x"]:
        doc["site"] = bad
        with pytest.raises(ProtocolError):
            codec.decode(json.dumps(doc).encode(), m.AgentStatus)
        with pytest.raises(TopicError):
            site_topic(bad, Channel.STATUS)


# --- topics ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channel", [c for c in Channel if c is not Channel.DOOR_STATE])
def test_topics_round_trip(channel: Channel) -> None:
    topic = site_topic("asker-sentrum", channel)
    assert topic.startswith("meraapent/v1/site/asker-sentrum/")
    parsed = parse_topic(topic)
    assert (parsed.site, parsed.channel, parsed.door) == ("asker-sentrum", channel, None)


def test_door_state_topic_names_the_door() -> None:
    topic = site_topic("tofte", Channel.DOOR_STATE, door="hovedinngang")
    assert topic == "meraapent/v1/site/tofte/door/hovedinngang"
    assert parse_topic(topic).door == "hovedinngang"
    assert site_filter(None, Channel.DOOR_STATE) == "meraapent/v1/site/+/door/+"


def test_commands_and_events_are_never_retained() -> None:
    never = {Channel.COMMAND, Channel.EVENT, Channel.ACK, Channel.REPLICA_DELTA, Channel.REPLICA_SNAPSHOT}
    assert not any(RULES[c].retained for c in never)
    assert RULES[Channel.STATUS].retained and RULES[Channel.CONFIG].retained


@pytest.mark.parametrize(
    "topic",
    [
        "meraapent/v2/site/tofte/status",
        "meraapent/v1/site/tofte/bogus",
        "meraapent/v1/site/Tofte/status",
        "x",
    ],
)
def test_foreign_topics_are_refused(topic: str) -> None:
    with pytest.raises(TopicError):
        parse_topic(topic)


# --- property tests: whatever arrives, decode returns a valid message or refuses with a reason -------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def _decode_never_crashes(payload: bytes, expected: type[m.Message]) -> None:
    try:
        result = codec.decode(payload, expected)
    except ProtocolError as refused:
        assert isinstance(refused.reason, Refusal)
        return
    # Accepted input must be a valid message that survives a round trip unchanged.
    assert isinstance(result, expected)
    assert codec.decode(codec.encode(result), expected) == result


@pytest.mark.parametrize("message", SAMPLES, ids=SAMPLE_IDS)
@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(data=st.data())
def test_mutated_messages_never_crash_the_decoder(message: m.Message, data: st.DataObject) -> None:
    doc: dict[str, Any] = json.loads(codec.encode(message))
    key = data.draw(st.sampled_from(sorted(doc)))
    action = data.draw(st.sampled_from(["replace", "delete", "truncate"]))
    if action == "replace":
        doc[key] = data.draw(json_values)
        payload = json.dumps(doc).encode()
    elif action == "delete":
        del doc[key]
        payload = json.dumps(doc).encode()
    else:
        raw = codec.encode(message)
        payload = raw[: data.draw(st.integers(0, len(raw) - 1))]
    _decode_never_crashes(payload, type(message))


@pytest.mark.parametrize("message", SAMPLES, ids=SAMPLE_IDS)
@settings(max_examples=100, deadline=None)
@given(payload=st.binary(max_size=300))
def test_random_bytes_are_refused(message: m.Message, payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        codec.decode(payload, type(message))


@settings(max_examples=300, deadline=None)
@given(doc=st.dictionaries(st.sampled_from(["type", "v", "site", "seq", "event_ids"]), json_values))
def test_random_objects_are_refused_or_valid(doc: dict[str, Any]) -> None:
    _decode_never_crashes(json.dumps(doc).encode(), m.Ack)


@settings(max_examples=300, deadline=None)
@given(topic=st.text(max_size=80))
def test_random_topics_parse_or_refuse(topic: str) -> None:
    try:
        parsed = parse_topic(topic)
    except TopicError:
        return
    assert site_topic(parsed.site, parsed.channel, parsed.door) == topic
