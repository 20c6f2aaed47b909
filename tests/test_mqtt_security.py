"""Broker security, proven against a real mosquitto run with exactly what `meraapent central mqtt-ca` and
`meraapent central mqtt-config` wrote: TLS with the project's own CA, a password per site agent, and ACLs that
confine each site to its own topics.

"Receives nothing" is shown without waiting for a silence: after the traffic a site must not see, central
sends the site a message on its own topic; the broker delivers a client's messages in order, so once that
one has arrived, anything routed to the site before it would have arrived too.
"""

from __future__ import annotations

import os
import pwd
import ssl
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy import select
from typer.testing import CliRunner

from central.cli import app
from central.config import Settings
from central.db import make_engine, migrate, session_factory
from central.gateway import Gateway
from central.models import Agent, Event, Site
from central.mqtt_security import acl, passwords
from central.mqtt_security.bundle import CENTRAL_PASSWORD_FILE, BundlePaths, mosquitto_conf, write_bundle
from central.mqtt_security.ca import CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY, make_ca
from controller.clock import SystemClock
from controller.config import MqttSettings, TlsSettings
from controller.link import AgentLink
from protocol import codec
from protocol import messages as m
from protocol.topics import RULES, Channel, Direction, site_filter, site_topic
from tests.infra import LOOPBACK, REPO_ROOT, ConfiguredMosquittoBroker, free_port
from tests.test_controller_link import Handler

pytestmark = pytest.mark.mqtt

WAIT_S = 15.0
SITES = ("nord", "sor")
NOT_AUTHORIZED = 135
FAILURE = 128  # MQTT 5 reason codes from 128 up are refusals; 0 and 16 (no subscriber) mean accepted
runner = CliRunner()
PRODUCTION_EXAMPLE = REPO_ROOT / "deploy" / "mosquitto" / "production.conf.example"
EXAMPLE_HEADER = """\
# An example: what `meraapent central mqtt-config --broker-dir /etc/mosquitto/meraapent` writes
# to broker/meraapent.conf (tests/test_mqtt_security.py keeps the two the same).

"""


# --- the secured broker -------------------------------------------------------------------------------------


@dataclass
class Secured:
    """Central's data directory and database, the generated files, and the broker running them."""

    root: Path
    data_dir: Path
    db_url: str
    bundle: BundlePaths
    broker: ConfiguredMosquittoBroker

    @property
    def ca_file(self) -> Path:
        return self.bundle.agents / CA_CERT

    def password(self, site: str) -> str:
        return self.bundle.agent_password(site).read_text().strip()

    @property
    def central_password(self) -> str:
        return (self.data_dir / "secrets" / CENTRAL_PASSWORD_FILE).read_text().strip()

    def mqtt_config(self, *args: str) -> None:
        port = str(self.broker.port)
        cli(
            "mqtt-config", "--out", str(self.root / "out"), "--port", port, "--bind", LOOPBACK,
            "--db", self.db_url, "--data-dir", str(self.data_dir), *args,
        )  # fmt: skip


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def add_sites(db_url: str, *slugs: str) -> None:
    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as session, session.begin():
            session.add_all(Site(slug=slug, name=slug.capitalize()) for slug in slugs)
    finally:
        engine.dispose()


def broker_config(broker: ConfiguredMosquittoBroker, generated: Path) -> str:
    """What a test adds to the generated conf.d file: persistence and a log in the broker's own directory
    (Debian's mosquitto.conf sets them in production), and the user running the tests, who owns the files."""
    user = pwd.getpwuid(os.geteuid()).pw_name
    return (
        f"persistence true\npersistence_location {broker.data_dir}/\n"
        f"log_dest file {broker.log_path}\nconnection_messages true\nuser {user}\n\n{generated.read_text()}"
    )


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    root = tmp_path_factory.mktemp("mqtt-security")
    data_dir, db_url = root / "central", f"sqlite:///{root / 'central.db'}"
    migrate(db_url)
    add_sites(db_url, *SITES)
    broker = ConfiguredMosquittoBroker(data_dir=root / "broker", port=free_port())
    secured = Secured(root, data_dir, db_url, BundlePaths(root / "out"), broker)
    cli("mqtt-ca", "--name", LOOPBACK, "--name", "localhost", "--data-dir", str(data_dir))
    secured.mqtt_config()
    broker.config = broker_config(broker, secured.bundle.conf)
    broker.start()
    try:
        yield secured
    finally:
        broker.stop()


# --- a bare MQTT 5 client, to see exactly what the broker answers ------------------------------------------


class Peer:
    """One connection as a site agent or central would make it; records CONNACK, PUBACK and messages."""

    def __init__(
        self,
        secured: Secured,
        username: str | None,
        password: str | None,
        *,
        ca_file: Path | None = None,
        tls: bool = True,
        client_id: str | None = None,
    ) -> None:
        self.broker = secured.broker
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"peer-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls:
            self.client.tls_set(ca_certs=str(ca_file or secured.ca_file))
        self.connack: ReasonCode | None = None
        self.disconnected = threading.Event()
        self._answered = threading.Event()
        self._acks: dict[int, ReasonCode] = {}
        self._subacks: dict[int, list[ReasonCode]] = {}
        self._changed = threading.Condition()
        self.messages: list[tuple[str, bytes]] = []
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    @classmethod
    def site(cls, secured: Secured, site: str, **kwargs: Any) -> Peer:
        return cls(secured, acl.agent_username(site), secured.password(site), **kwargs).connected()

    @classmethod
    def central(cls, secured: Secured) -> Peer:
        return cls(secured, acl.DEFAULT_CENTRAL_USER, secured.central_password).connected()

    def connect(self) -> ReasonCode | None:
        """The CONNACK's reason, or None when the broker closed the connection without one."""
        self.client.connect(self.broker.host, self.broker.port, keepalive=30, clean_start=True)
        self.client.loop_start()
        assert self._answered.wait(WAIT_S), "the broker neither answered nor closed the connection"
        return self.connack

    def connected(self) -> Peer:
        reason = self.connect()
        assert reason is not None and not reason.is_failure, f"connect refused: {reason}"
        return self

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        """The PUBACK's reason code (below 128: accepted; 135: not authorised)."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(WAIT_S)
        with self._changed:
            assert self._changed.wait_for(lambda: info.mid in self._acks, WAIT_S), f"no PUBACK for {topic}"
            return self._acks[info.mid].value

    def subscribe(self, *filters: str) -> list[ReasonCode]:
        _rc, mid = self.client.subscribe([(f, SubscribeOptions(qos=1)) for f in filters])
        assert mid is not None, "not connected"
        with self._changed:
            assert self._changed.wait_for(lambda: mid in self._subacks, WAIT_S), "no SUBACK"
            return self._subacks[mid]

    def expect(self, topic: str, payload: bytes) -> None:
        with self._changed:
            arrived = self._changed.wait_for(lambda: (topic, payload) in self.messages, WAIT_S)
        assert arrived, f"{payload!r} on {topic} did not arrive; got {self.topics()}"

    def topics(self) -> set[str]:
        with self._changed:
            return {topic for topic, _payload in self.messages}

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self.connack = reason
        self._answered.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, _reason: ReasonCode, _p: Any) -> None:
        self.disconnected.set()
        self._answered.set()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        with self._changed:
            self._acks[mid] = reason
            self._changed.notify_all()

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, mid: int, reasons: list[ReasonCode], _p: Any) -> None:
        with self._changed:
            self._subacks[mid] = reasons
            self._changed.notify_all()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._changed:
            self.messages.append((msg.topic, bytes(msg.payload)))
            self._changed.notify_all()


@pytest.fixture
def peers() -> Iterator[Callable[[Peer], Peer]]:
    """Register peers so they are disconnected after the test, whatever happens."""
    opened: list[Peer] = []

    def keep(peer: Peer) -> Peer:
        opened.append(peer)
        return peer

    yield keep
    for peer in opened:
        peer.close()


def mark() -> bytes:
    return uuid.uuid4().hex.encode()


def foreign(topics: set[str], site: str) -> set[str]:
    return {t for t in topics if not t.startswith(f"meraapent/v1/site/{site}/")}


# --- who may connect ----------------------------------------------------------------------------------------


def test_a_site_agent_connects_over_tls_with_its_own_password(
    secured: Secured, peers: Callable[[Peer], Peer]
) -> None:
    nord = peers(Peer.site(secured, "nord"))
    assert nord.publish(site_topic("nord", Channel.EVENT), mark()) < FAILURE


@pytest.mark.parametrize(
    ("who", "username", "password_of"),
    [
        ("a wrong password", "site-nord", None),
        ("another site's password", "site-nord", "sor"),
        ("an unknown user", "site-ost", "nord"),
        ("no credentials at all", None, None),
    ],
)
def test_wrong_credentials_are_refused_with_not_authorised(
    secured: Secured, who: str, username: str | None, password_of: str | None
) -> None:
    password = secured.password(password_of) if password_of else ("wrong" if username else None)
    peer = Peer(secured, username, password)
    try:
        reason = peer.connect()
    finally:
        peer.close()
    assert reason is not None and reason.value == NOT_AUTHORIZED, f"{who}: {reason}"


def test_without_tls_or_with_another_ca_there_is_no_connection(secured: Secured, tmp_path: Path) -> None:
    plain = Peer(secured, "site-nord", secured.password("nord"), tls=False)
    try:
        assert plain.connect() is None  # a plain MQTT CONNECT is no TLS handshake: closed, no CONNACK
    finally:
        plain.close()
    make_ca(tmp_path / "other", [LOOPBACK])
    impostor_ca = Peer(secured, "site-nord", secured.password("nord"), ca_file=tmp_path / "other" / CA_CERT)
    with pytest.raises(ssl.SSLCertVerificationError):  # the broker's certificate is not from that CA
        impostor_ca.connect()


# --- what a site may read and write -------------------------------------------------------------------------


def test_a_site_subscribed_to_other_sites_topics_receives_nothing_of_theirs(
    secured: Secured, peers: Callable[[Peer], Peer]
) -> None:
    central = peers(Peer.central(secured))
    central.subscribe(site_filter(None, Channel.EVENT))
    config = mark()
    assert central.publish(site_topic("nord", Channel.CONFIG), config, retain=True) < FAILURE
    nord = peers(Peer.site(secured, "nord"))
    sor = peers(Peer.site(secured, "sor"))
    sor.subscribe(site_filter("nord"), "meraapent/v1/site/+/#", "#")  # granted, then filtered per message

    event, command = mark(), mark()
    assert nord.publish(site_topic("nord", Channel.EVENT), event) < FAILURE
    assert central.publish(site_topic("nord", Channel.COMMAND), command) < FAILURE
    central.expect(site_topic("nord", Channel.EVENT), event)  # nord's traffic flows to central
    sentinel = mark()
    assert central.publish(site_topic("sor", Channel.COMMAND), sentinel) < FAILURE
    sor.expect(site_topic("sor", Channel.COMMAND), sentinel)

    assert foreign(sor.topics(), "sor") == set()  # not nord's event, command or retained config
    assert central.publish(site_topic("nord", Channel.CONFIG), b"", retain=True) < FAILURE  # clear it


def test_a_site_cannot_publish_on_another_sites_topics_nor_speak_as_central(
    secured: Secured, peers: Callable[[Peer], Peer]
) -> None:
    central = peers(Peer.central(secured))
    central.subscribe(
        *(site_filter(None, c) for c, rule in RULES.items() if rule.direction is Direction.TO_CENTRAL)
    )
    nord = peers(Peer.site(secured, "nord"))
    nord.subscribe(site_filter("nord"))
    sor = peers(Peer.site(secured, "sor"))

    forged = mark()
    refused = {
        "nord's events": sor.publish(site_topic("nord", Channel.EVENT), forged),
        "nord's door state": sor.publish(
            site_topic("nord", Channel.DOOR_STATE, "inngang"), forged, retain=True
        ),
        "nord's status": sor.publish(site_topic("nord", Channel.STATUS), forged, retain=True),
        "a command to nord": sor.publish(site_topic("nord", Channel.COMMAND), forged),
        "nord's configuration": sor.publish(site_topic("nord", Channel.CONFIG), forged, retain=True),
        "an ack to nord": sor.publish(site_topic("nord", Channel.ACK), forged),
        "a command to itself": sor.publish(site_topic("sor", Channel.COMMAND), forged),
        "a replica delta to itself": sor.publish(site_topic("sor", Channel.REPLICA_DELTA), forged),
        "outside the namespace": sor.publish("meraapent/v1/other", forged),
    }
    assert refused == dict.fromkeys(refused, NOT_AUTHORIZED)

    sentinel = mark()  # the same publisher, after the refused ones: anything let through would come first
    assert sor.publish(site_topic("sor", Channel.EVENT), sentinel) < FAILURE
    central.expect(site_topic("sor", Channel.EVENT), sentinel)
    nord_sentinel = mark()
    assert central.publish(site_topic("nord", Channel.COMMAND), nord_sentinel) < FAILURE
    nord.expect(site_topic("nord", Channel.COMMAND), nord_sentinel)
    assert all(payload != forged for _topic, payload in central.messages + nord.messages)


def test_central_reads_every_site_and_writes_to_each(secured: Secured, peers: Callable[[Peer], Peer]) -> None:
    central = peers(Peer.central(secured))
    central.subscribe(
        *(site_filter(None, c) for c, rule in RULES.items() if rule.direction is Direction.TO_CENTRAL)
    )
    agents = {site: peers(Peer.site(secured, site)) for site in SITES}
    for site, agent in agents.items():
        agent.subscribe(site_filter(site))
        retained = [site_topic(site, Channel.STATUS), site_topic(site, Channel.DOOR_STATE, "inngang")]
        said = {
            site_topic(site, Channel.EVENT): mark(),
            site_topic(site, Channel.COMMAND_RESULT): mark(),
            site_topic(site, Channel.REPLICA_REQUEST): mark(),
            **{topic: mark() for topic in retained},
        }
        for topic, payload in said.items():
            assert agent.publish(topic, payload, retain=topic in retained) < FAILURE
        for topic, payload in said.items():
            central.expect(topic, payload)
        for topic in retained:  # leave no test payload retained for the next test's gateway
            assert agent.publish(topic, b"", retain=True) < FAILURE
    for site, agent in agents.items():
        for channel in (Channel.COMMAND, Channel.REPLICA_DELTA, Channel.ACK, Channel.KEYS):
            payload = mark()
            assert central.publish(site_topic(site, channel), payload) < FAILURE
            agent.expect(site_topic(site, channel), payload)


def test_a_site_cannot_take_over_centrals_session_by_using_its_client_id(
    secured: Secured, peers: Callable[[Peer], Peer]
) -> None:
    central = peers(
        Peer(secured, "central", secured.central_password, client_id="central-gateway").connected()
    )
    central.subscribe(site_filter(None, Channel.EVENT))
    sor = peers(
        Peer(secured, "site-sor", secured.password("sor"), client_id="central-gateway").connected()
    )  # the broker names the session after the user, so this is sor's own session
    event = mark()
    assert sor.publish(site_topic("sor", Channel.EVENT), event) < FAILURE
    central.expect(site_topic("sor", Channel.EVENT), event)
    assert not central.disconnected.is_set()


# --- the real agent link and the real gateway ---------------------------------------------------------------


def access_event(site: str, agent: str, seq: int) -> m.AccessEvent:
    return m.AccessEvent(
        event_id=uuid.uuid4(),
        site=site,
        agent=agent,
        seq=seq,
        device_time=datetime.now(UTC),
        door="inngang",
        decision=m.Decision.GRANT,
        reason=m.Reason.SCHEDULE,
        method=m.Method.CARD_PIN,
        credential_ref="c1",
    )


def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {WAIT_S} s")
        time.sleep(0.05)


def test_the_agent_link_and_the_gateway_work_through_tls_and_acls(secured: Secured) -> None:
    settings = Settings(
        data_dir=secured.data_dir,
        db_url=secured.db_url,
        mqtt_host=secured.broker.host,
        mqtt_port=secured.broker.port,
        mqtt_username=acl.DEFAULT_CENTRAL_USER,  # the password: what mqtt-config wrote to secrets/
        mqtt_ca_file=secured.data_dir / "mqtt" / CA_CERT,
    )
    assert settings.mqtt_secret() == secured.central_password
    engine = make_engine(settings.db_url)
    gateway = Gateway(settings, engine, poll_s=0.05, refresh_s=0.5)
    mqtt_settings = MqttSettings(
        host=secured.broker.host,
        port=secured.broker.port,
        username="site-nord",
        password_file=secured.bundle.agent_password("nord"),
        tls=TlsSettings(ca_file=secured.ca_file),
        keepalive=5,
    )
    handler = Handler()
    link = AgentLink(mqtt_settings, "nord", "nord-pi", handler, SystemClock())
    gateway.start()
    link.start()
    try:
        assert gateway.link.wait_connected(WAIT_S) and link.wait_connected(WAIT_S)
        config = handler.expect(m.SiteConfig)  # central's retained configuration reaches the site
        assert config.site == "nord"
        event = access_event("nord", "nord-pi", 1)
        assert link.publish_event(codec.encode(event)).wait(WAIT_S)
        handler.expect(m.Ack, lambda ack: event.event_id in ack.event_ids)  # committed, then acknowledged
        with session_factory(engine)() as session:
            stored = session.scalars(select(Event).where(Event.event_id == str(event.event_id))).all()
            assert len(stored) == 1
            eventually(lambda: _agent_online(session, "nord"), "central sees the agent online")
        assert link.stats()["refused"] == {}
    finally:
        link.stop()
        gateway.stop()
        engine.dispose()


def _agent_online(session: Any, site: str) -> bool:
    session.expire_all()
    agent = session.scalars(select(Agent).join(Site).where(Site.slug == site)).one_or_none()
    return agent is not None and agent.online


# --- a new site, and what re-runs keep ----------------------------------------------------------------------


def test_a_site_added_later_connects_after_a_rerun_and_a_reload(
    secured: Secured, peers: Callable[[Peer], Peer]
) -> None:
    before = {site: secured.password(site) for site in SITES}
    add_sites(secured.db_url, "vest")
    secured.mqtt_config()
    assert {site: secured.password(site) for site in SITES} == before  # installed sites keep working
    secured.broker.reload()
    deadline = time.monotonic() + WAIT_S
    while True:  # SIGHUP is handled between the broker's network loops
        vest = Peer(secured, "site-vest", secured.password("vest"))
        reason = vest.connect()
        if reason is not None and not reason.is_failure:
            peers(vest)
            break
        vest.close()
        assert time.monotonic() < deadline, f"site-vest still refused after the reload: {reason}"
        time.sleep(0.1)
    assert vest.publish(site_topic("vest", Channel.EVENT), mark()) < FAILURE
    assert vest.publish(site_topic("nord", Channel.EVENT), mark()) == NOT_AUTHORIZED


# --- the files themselves (no broker) -----------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_mqtt_ca_keeps_its_ca_and_renews_only_the_server_certificate(tmp_path: Path) -> None:
    directory = tmp_path / "mqtt"
    first = make_ca(directory, ["mqtt.example.org", "10.0.0.5"])
    ca_pem, server_pem = (directory / CA_CERT).read_bytes(), (directory / SERVER_CERT).read_bytes()
    again = make_ca(directory)
    renewed = make_ca(directory, renew_server=True)
    assert first.ca_created and not again.ca_created and not again.server_issued and renewed.server_issued
    assert (directory / CA_CERT).read_bytes() == ca_pem
    assert (directory / SERVER_CERT).read_bytes() != server_pem
    assert renewed.server_names == ("mqtt.example.org", "10.0.0.5")
    ca = x509.load_pem_x509_certificate(ca_pem)
    server = x509.load_pem_x509_certificate((directory / SERVER_CERT).read_bytes())
    server.verify_directly_issued_by(ca)
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert mode(directory) == 0o700
    assert mode(directory / CA_KEY) == mode(directory / SERVER_KEY) == 0o600


def test_mqtt_ca_commands_fail_with_one_line_and_write_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "central"
    for args, message in [
        (["mqtt-ca"], "name the broker"),
        (["mqtt-ca", "--name", "not a name"], "neither a DNS name nor an IP address"),
    ]:
        result = runner.invoke(app, [*args, "--data-dir", str(data_dir)])
        assert result.exit_code == 1
        assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (data_dir / "mqtt" / CA_KEY).exists()
    db_url = f"sqlite:///{tmp_path / 'c.db'}"
    migrate(db_url)
    result = runner.invoke(
        app, ["mqtt-config", "--out", str(tmp_path / "out"), "--db", db_url, "--data-dir", str(data_dir)]
    )
    assert result.exit_code == 1 and "run `meraapent central mqtt-ca" in result.output
    assert not (tmp_path / "out").exists()


def bundle(tmp_path: Path, sites: Sequence[str], rotate: Sequence[str] = ()) -> dict[str, str]:
    write_bundle(
        tmp_path / "out",
        sites,
        ca_dir=tmp_path / "mqtt",
        central_user="central",
        central_password_file=tmp_path / "secrets" / "mqtt-password",
        rotate=rotate,
    )
    return passwords.read_hashes(tmp_path / "out" / "broker" / "passwd")


def test_mqtt_config_reruns_keep_passwords_rotate_on_request_and_drop_removed_sites(tmp_path: Path) -> None:
    make_ca(tmp_path / "mqtt", [LOOPBACK])
    paths = BundlePaths(tmp_path / "out")
    first = bundle(tmp_path, ["nord", "sor"])
    nord, sor = (paths.agent_password(s).read_text() for s in ("nord", "sor"))
    assert set(first) == {"central", "site-nord", "site-sor"}
    assert passwords.verify(nord.strip(), first["site-nord"])
    assert bundle(tmp_path, ["nord", "sor"]) == first  # a plain re-run changes nothing

    rotated = bundle(tmp_path, ["nord", "sor"], rotate=["nord"])
    assert rotated["site-sor"] == first["site-sor"] and paths.agent_password("sor").read_text() == sor
    assert paths.agent_password("nord").read_text() != nord
    assert passwords.verify(paths.agent_password("nord").read_text().strip(), rotated["site-nord"])

    paths.agent_password("sor").unlink()  # the installer took it to the Pi: the hash is kept
    assert bundle(tmp_path, ["nord", "sor"])["site-sor"] == first["site-sor"]
    assert "site-nord" not in bundle(tmp_path, ["sor"])  # a removed site loses its broker user
    for private in (paths.passwd, paths.acl, paths.broker / SERVER_KEY, paths.agent_password("nord")):
        assert mode(private) == 0o600
    assert mode(tmp_path / "secrets" / "mqtt-password") == 0o600
    with pytest.raises(ValueError, match="not a site"):
        bundle(tmp_path, ["sor"], rotate=["nord"])


def test_password_check_agrees_with_mosquitto_passwd() -> None:
    hashed = passwords.hash_passwords({"site-nord": "correct horse"})["site-nord"]
    assert hashed.startswith("$7$")
    assert passwords.verify("correct horse", hashed)
    assert not passwords.verify("correct horsE", hashed)
    assert not passwords.verify("correct horse", "$6$not-pbkdf2")


def test_the_acl_gives_each_agent_its_own_channels_in_the_contracts_direction_only() -> None:
    rules = acl.agent_rules("nord")
    assert {topic for _access, topic in rules} == {site_filter("nord", channel) for channel in RULES}
    for access, topic in rules:
        channel = next(c for c in RULES if site_filter("nord", c) == topic)
        assert access == ("write" if RULES[channel].direction is Direction.TO_CENTRAL else "read"), topic
    text = acl.acl_text(["nord"])
    assert "pattern" not in text and "topic readwrite meraapent/v1/site/nord" not in text
    for bad in ("nord\nuser central", "Nord", "+"):
        with pytest.raises(acl.AclError):
            acl.acl_text([bad])
    with pytest.raises(acl.AclError):
        acl.check_central_user("site-central")


def test_generated_secrets_are_not_readable_by_others(secured: Secured) -> None:
    for path in (
        secured.data_dir / "mqtt" / CA_KEY,
        secured.data_dir / "mqtt" / SERVER_KEY,
        secured.bundle.passwd,
        secured.bundle.broker / SERVER_KEY,
        secured.bundle.agent_password("nord"),
        secured.data_dir / "secrets" / CENTRAL_PASSWORD_FILE,
    ):
        assert mode(path) & 0o077 == 0, path
    assert os.access(secured.ca_file, os.R_OK)


def test_the_production_example_is_what_mqtt_config_writes() -> None:
    expected = EXAMPLE_HEADER + mosquitto_conf(Path("/etc/mosquitto/meraapent"))
    assert PRODUCTION_EXAMPLE.read_text() == expected, "regenerate deploy/mosquitto/production.conf.example"
