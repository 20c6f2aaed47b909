"""The shared fixtures give real, isolated servers: if these fail, every integration test would mislead."""

from __future__ import annotations

import threading
import uuid

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, inspect

from tests.infra import MosquittoBroker, find_binary, libpq_url, port_accepts

WAIT_S = 10.0


def _new_client() -> mqtt.Client:
    client_id = f"test-{uuid.uuid4().hex[:8]}"
    return mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)


def _client(broker: MosquittoBroker) -> mqtt.Client:
    client = _new_client()
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def _publish_retained(broker: MosquittoBroker, topic: str, payload: bytes) -> None:
    client = _client(broker)
    try:
        info = client.publish(topic, payload, qos=1, retain=True)
        info.wait_for_publish(timeout=WAIT_S)
        assert info.is_published(), "broker did not acknowledge the QoS 1 publish"
    finally:
        client.disconnect()
        client.loop_stop()


def _first_message(broker: MosquittoBroker, topic: str) -> mqtt.MQTTMessage:
    """Subscribe with a new client and return the first message delivered (the retained one, if any)."""
    received: list[mqtt.MQTTMessage] = []
    arrived = threading.Event()

    def on_connect(client: mqtt.Client, *_: object) -> None:
        client.subscribe(topic, qos=1)

    def on_message(_client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        received.append(message)
        arrived.set()

    client = _new_client()
    client.on_connect = on_connect
    client.on_message = on_message
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        assert arrived.wait(WAIT_S), f"nothing received on {topic}"
    finally:
        client.disconnect()
        client.loop_stop()
    return received[0]


def test_postgres_cluster_answers_queries(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    with psycopg.connect(libpq_url(postgres_url)) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize("run", ["first", "second"])
def test_each_test_gets_an_empty_database(db_url: str, run: str) -> None:
    """Both runs create the same table: the second would fail if databases were shared between tests."""
    engine = create_engine(db_url)
    try:
        assert inspect(engine).get_table_names() == []
        metadata = MetaData()
        Table("probe", metadata, Column("id", Integer, primary_key=True))
        metadata.create_all(engine)
        assert inspect(engine).get_table_names() == ["probe"]
    finally:
        engine.dispose()


def test_retained_message_reaches_a_later_subscriber(mosquitto: MosquittoBroker) -> None:
    topic = f"meraapent/v1/site/infra-{uuid.uuid4().hex[:8]}/status"
    _publish_retained(mosquitto, topic, b"online")

    message = _first_message(mosquitto, topic)

    assert (message.payload, message.retain) == (b"online", True)


def test_retained_message_survives_a_broker_restart(private_mosquitto: MosquittoBroker) -> None:
    broker = private_mosquitto
    port = broker.port
    topic = "meraapent/v1/site/holmen/config"
    _publish_retained(broker, topic, b"config-v1")

    broker.stop()
    assert not port_accepts(broker.host, port)
    broker.start()

    assert broker.port == port
    message = _first_message(broker, topic)
    assert (message.payload, message.retain) == (b"config-v1", True)


def test_missing_binary_fails_with_the_fix() -> None:
    with pytest.raises(
        pytest.fail.Exception, match="`no-such-broker` not found; run `bash scripts/bootstrap"
    ):
        find_binary("no-such-broker")
