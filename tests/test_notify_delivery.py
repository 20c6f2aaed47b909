"""Alarms reach the caretaker on call for real: e-mail through a real SMTP server (aiosmtpd), a signed webhook
to a real HTTP server, repeats folded, escalation after the minutes pass on the injected clock unless someone
acknowledged, nothing lost while the mail server is down, agent_offline raised and cleared by the watch.
On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from central.config import Settings
from central.db import make_engine, migrate, session_factory
from central.gateway.ingest import apply_agent_status
from central.models import (
    Agent,
    Alarm,
    AlarmSeverity,
    ApiRole,
    Door,
    DoorKind,
    NotificationOutbox,
    Site,
    Zone,
)
from central.notify import outbox
from central.notify.job import Notifier, start_for_settings
from central.notify.senders import Delivery, SmtpMailer, notify_webhook_secret
from central.services.events import acknowledge_alarm
from central.services.retention import apply_retention
from central.webhooks.payload import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, verify
from central.webhooks.sender import PostResult
from protocol import messages as m
from tests.test_booking_changes import api_with

T0 = datetime(2030, 1, 15, 17, 4, tzinfo=UTC)  # 18:04 in Oslo
ON_CALL = "vakt@asker.example"
ESCALATION = "leder@asker.example"
SECRET_WORDS = ("Kari Nordmann", "04A1B2C3", "1234")  # what a careless agent might put in an alarm's detail


# --- a real mail server and a real webhook receiver --------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Mailbox:
    """aiosmtpd's handler: keeps every message it accepts, with the envelope's recipients."""

    port: int = 0
    received: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        self.received.append((list(envelope.rcpt_tos), mail))
        return "250 Message accepted"

    def to(self, address: str) -> list[EmailMessage]:
        return [mail for rcpts, mail in self.received if address in rcpts]


@contextmanager
def smtp_server(box: Mailbox, **kwargs: Any) -> Iterator[Mailbox]:
    controller = Controller(box, hostname="127.0.0.1", port=box.port, **kwargs)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server(Mailbox(port=free_port())) as box:
        yield box


@dataclass
class Receiver:
    url: str = ""
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    @property
    def documents(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.requests.append((dict(self.headers.items()), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/vakt/alarm?token=s3cret"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


# --- a site with two doors and its agent -------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    site_id: int
    entrance: int
    room_door: int


def build_place(sessions: sessionmaker[Session]) -> Place:
    with sessions() as session, session.begin():
        site = Site(slug="holmen", name="Holmen innbyggertorg")
        zone = Zone(site=site, slug="torg", name="Torg")
        entrance = Door(
            site=site, zone=zone, slug="hovedinngang", name="Hovedinngang", kind=DoorKind.ENTRANCE
        )
        room = Door(site=site, zone=zone, slug="moterom-1", name="Møterom 1", kind=DoorKind.ROOM)
        session.add_all([site, zone, entrance, room])
        session.flush()
        session.add(Agent(site_id=site.id, client_id="holmen-agent", online=True, last_seen_at=T0))
        return Place(site.id, entrance.id, room.id)


@pytest.fixture
def place(sessions: sessionmaker[Session]) -> Place:
    return build_place(sessions)


def raise_alarm(
    sessions: sessionmaker[Session],
    place: Place,
    kind: str,
    at: datetime,
    *,
    door: int | None = -1,
    comment: str = "",
) -> int:
    with sessions() as session, session.begin():
        alarm = Alarm(
            site_id=place.site_id,
            door_id=place.entrance if door == -1 else door,
            kind=kind,
            severity=AlarmSeverity.CRITICAL,
            raised_at=at,
            comment=comment,  # neither the caretaker's words ...
            detail=comment,  # ... nor the agent's ever go into a notification
        )
        session.add(alarm)
        session.flush()
        return alarm.id


def clear(sessions: sessionmaker[Session], alarm_id: int, at: datetime) -> None:
    with sessions() as session, session.begin():
        session.get_one(Alarm, alarm_id).cleared_at = at


def acknowledge(sessions: sessionmaker[Session], alarm_id: int) -> None:
    with sessions() as session, session.begin():
        acknowledge_alarm(session, "kari.vaktmester", alarm_id, "Sjekket døren")


def settings_for(tmp_path: Path, smtp_port: int, webhook_url: str = "", **more: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_security": "none",
        "smtp_from": "meraapent@asker.example",
        "notify_email": ON_CALL,
        "notify_escalation_email": ESCALATION,
        "notify_webhook_url": webhook_url,
        "public_url": "https://drift.asker.example",
        **more,
    }
    return Settings(**values)


@pytest.fixture
def clock() -> Clock:
    return Clock()


# --- e-mail and webhook ------------------------------------------------------------------------------------


def test_a_forced_door_reaches_the_caretaker_by_email_and_signed_webhook_once(
    sessions: sessionmaker[Session],
    place: Place,
    mailbox: Mailbox,
    receiver: Receiver,
    clock: Clock,
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path, mailbox.port, receiver.url)
    notifier = Notifier(sessions, settings, clock=clock)
    raise_alarm(sessions, place, "forced_open", T0, comment=" / ".join(SECRET_WORDS))
    clock.advance(seconds=5)
    done = notifier.run_once()
    assert (done.sent.delivered, done.sent.failed) == (2, 0)

    ((mail),) = mailbox.to(ON_CALL)
    assert (
        mail["Subject"] == "[Meråpent] Dør brutt opp / Door forced open: Holmen innbyggertorg, Hovedinngang"
    )
    assert mail["From"] == "meraapent@asker.example"
    text = mail.get_content()
    assert "Dør brutt opp – Holmen innbyggertorg, Hovedinngang." in text
    assert "Utløst: 15.01.2030 kl. 18:04" in text and "Raised: 2030-01-15 at 18:04" in text
    assert "https://drift.asker.example/drift/alarmer" in text
    ((headers, body),) = receiver.requests
    assert verify(notify_webhook_secret(settings), body, headers[SIGNATURE_HEADER])
    document = json.loads(body)
    assert headers[IDEMPOTENCY_HEADER] == document["id"]
    assert (document["escalated"], document["alarm"]["kind"], document["alarm"]["door"]) == (
        False,
        "forced_open",
        "hovedinngang",
    )
    for words in SECRET_WORDS:
        assert words not in text and words not in body.decode(), words

    clock.advance(minutes=1)
    notifier.run_once()
    assert len(mailbox.received) == 1 and len(receiver.requests) == 1


def test_repeats_are_folded_into_one_mail_and_counted_in_the_escalation(
    sessions: sessionmaker[Session],
    place: Place,
    mailbox: Mailbox,
    receiver: Receiver,
    clock: Clock,
    tmp_path: Path,
) -> None:
    notifier = Notifier(sessions, settings_for(tmp_path, mailbox.port, receiver.url), clock=clock)
    raise_alarm(sessions, place, "pin_brute_force", T0)
    notifier.run_once()
    for minutes in (2, 5):
        clock.advance(minutes=3 if minutes == 5 else 2)
        raise_alarm(sessions, place, "pin_brute_force", T0 + timedelta(minutes=minutes))
        assert notifier.run_once().noticed.folded
    raise_alarm(sessions, place, "pin_brute_force", T0 + timedelta(minutes=5), door=place.room_door)
    notifier.run_once()  # another door: a notification of its own
    assert len(mailbox.to(ON_CALL)) == 2 and mailbox.to(ESCALATION) == []

    clock.now = T0 + timedelta(minutes=15)
    notifier.run_once()
    ((escalation),) = [mail for mail in mailbox.to(ESCALATION) if "Hovedinngang" in mail["Subject"]]
    assert escalation["Subject"].startswith(
        "[Meråpent] IKKE KVITTERT / NOT ACKNOWLEDGED – Mange feil PIN-koder"
    )
    text = escalation.get_content()
    assert "Ingen har kvittert for alarmen på 15 minutter" in text
    assert "Utløst på nytt etter første varsel: 2 (sist 15.01.2030 kl. 18:09)" in text
    escalated = [d for d in receiver.documents if d["escalated"]]
    assert [d["alarm"]["door"] for d in escalated] == ["hovedinngang"]
    assert escalated[0]["kind"] == "alarm_escalated" and escalated[0]["alarm"]["repeats"] == 2

    clock.advance(minutes=5)  # the other door's notification is 15 minutes old now; then nothing more
    notifier.run_once()
    clock.advance(hours=2)
    notifier.run_once()
    assert len(mailbox.to(ESCALATION)) == 2 and len(mailbox.to(ON_CALL)) == 2


def test_no_escalation_once_a_caretaker_has_acknowledged_and_a_later_repeat_is_told_again(
    sessions: sessionmaker[Session],
    place: Place,
    mailbox: Mailbox,
    receiver: Receiver,
    clock: Clock,
    tmp_path: Path,
) -> None:
    notifier = Notifier(sessions, settings_for(tmp_path, mailbox.port, receiver.url), clock=clock)
    first = raise_alarm(sessions, place, "tailgating", T0)
    notifier.run_once()
    clock.advance(minutes=10)
    acknowledge(sessions, first)
    clock.advance(minutes=10)
    notifier.run_once()
    assert mailbox.to(ESCALATION) == [] and not any(d["escalated"] for d in receiver.documents)

    raise_alarm(sessions, place, "tailgating", clock.now)
    notifier.run_once()
    assert len(mailbox.to(ON_CALL)) == 2  # the first was acknowledged: a new one is news


def test_a_forced_door_that_closed_again_escalates_but_a_held_door_that_closed_does_not(
    sessions: sessionmaker[Session],
    place: Place,
    mailbox: Mailbox,
    clock: Clock,
    tmp_path: Path,
) -> None:
    notifier = Notifier(sessions, settings_for(tmp_path, mailbox.port), clock=clock)
    held = raise_alarm(sessions, place, "held_open", T0, door=place.room_door)
    forced = raise_alarm(sessions, place, "forced_open", T0)
    notifier.run_once()
    assert len(mailbox.to(ON_CALL)) == 2
    clear(sessions, held, T0 + timedelta(minutes=1))
    clear(sessions, forced, T0 + timedelta(seconds=20))
    clock.advance(minutes=15)
    notifier.run_once()
    ((escalation),) = mailbox.to(ESCALATION)
    assert "Dør brutt opp" in escalation["Subject"]
    assert "Opphørt: 15.01.2030 kl. 18:04" in escalation.get_content()


def test_mail_waits_while_the_mail_server_is_down_and_goes_once_it_is_up(
    sessions: sessionmaker[Session], place: Place, receiver: Receiver, clock: Clock, tmp_path: Path
) -> None:
    box = Mailbox(port=free_port())  # nothing listens there yet
    notifier = Notifier(sessions, settings_for(tmp_path, box.port, receiver.url), clock=clock)
    raise_alarm(sessions, place, "fire", T0, door=None)
    done = notifier.run_once()
    assert (done.sent.delivered, done.sent.failed) == (1, 1)  # the webhook does not wait for the mail server
    with sessions() as session:
        health = outbox.health(session)
    assert (health.pending, health.failing) == (1, 1)
    assert health.last_error == f"e-mail: no answer from 127.0.0.1:{box.port}: Connection refused"

    with smtp_server(box):
        notifier.run_once()
        assert box.received == []  # not due before its backoff (30 s)
        clock.advance(seconds=30)
        assert notifier.run_once().sent.delivered == 1
        clock.advance(minutes=5)
        notifier.run_once()
    ((_, mail),) = box.received
    assert "Brannalarm – Holmen innbyggertorg." in mail.get_content()
    with sessions() as session:
        health = outbox.health(session)
    assert (health.pending, health.failing, health.last_error) == (0, 0, None)
    assert len(receiver.requests) == 1


def test_an_alarm_acknowledged_while_the_mail_server_was_down_is_never_mailed(
    sessions: sessionmaker[Session], place: Place, clock: Clock, tmp_path: Path
) -> None:
    box = Mailbox(port=free_port())
    notifier = Notifier(sessions, settings_for(tmp_path, box.port), clock=clock)
    alarm = raise_alarm(sessions, place, "intruder", T0)
    assert notifier.run_once().sent.failed == 1
    acknowledge(sessions, alarm)
    with smtp_server(box):
        clock.advance(minutes=20)
        done = notifier.run_once()
    assert box.received == [] and done.sent.cancelled == 1 and not done.escalated.escalated
    with sessions() as session:
        (row,) = session.scalars(select(NotificationOutbox)).all()
        assert row.cancelled_at is not None and row.delivered_at is None


def test_mail_goes_over_starttls_or_tls_and_signs_in_when_a_username_is_set(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    logins: list[tuple[str, str]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append((data.login.decode(), data.password.decode()))
        return AuthResult(
            success=data.password == b"hemmelig", handled=False
        )  # not handled: aiosmtpd says 535

    box = Mailbox(port=free_port())
    kwargs = {
        "tls_context": server_tls,
        "require_starttls": True,
        "authenticator": authenticator,
        "auth_exclude_mechanism": ["LOGIN"],  # smtplib would try LOGIN after PLAIN failed: one try is enough
    }
    with smtp_server(box, **kwargs):
        mailer = SmtpMailer(
            "127.0.0.1",
            box.port,
            "starttls",
            "meraapent",
            "hemmelig",
            context=ssl.create_default_context(cafile=str(cert)),
        )
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = "meraapent@asker.example", ON_CALL, "Test"
        mail.set_content("Hei")
        assert mailer(mail) == Delivery(True)
        wrong = SmtpMailer("127.0.0.1", box.port, "starttls", "meraapent", "feil", context=mailer.context)
        refused = wrong(mail)
        untrusted = SmtpMailer("127.0.0.1", box.port, "starttls")(mail)  # the system does not trust our cert
    assert len(box.received) == 1 and logins == [("meraapent", "hemmelig"), ("meraapent", "feil")]
    assert (
        not refused.ok
        and refused.error is not None
        and refused.error.startswith(f"127.0.0.1:{box.port} answered 535")
    )
    assert "feil" not in refused.error and "hemmelig" not in repr(mailer)
    assert not untrusted.ok and "certificate" in (untrusted.error or "").lower()

    implicit = Mailbox(port=free_port())  # `tls`: TLS from the first byte (port 465 in production)
    with smtp_server(implicit, ssl_context=server_tls):
        assert SmtpMailer("127.0.0.1", implicit.port, "tls", context=mailer.context)(mail) == Delivery(True)
    assert len(implicit.received) == 1


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp.crt", folder / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


# --- the agent watch ---------------------------------------------------------------------------------------


def agent_says(sessions: sessionmaker[Session], place: Place, online: bool, heard_at: datetime) -> None:
    status = m.AgentStatus(site="holmen", agent="holmen-agent", online=online, at=heard_at)
    with sessions() as session, session.begin():
        apply_agent_status(session, place.site_id, status, heard_at)


def agent_alarms(sessions: sessionmaker[Session]) -> list[Alarm]:
    with sessions() as session:
        return list(session.scalars(select(Alarm).where(Alarm.kind == "agent_offline")))


def test_an_agent_gone_past_the_grace_raises_a_critical_alarm_that_clears_when_it_is_back(
    sessions: sessionmaker[Session], place: Place, mailbox: Mailbox, clock: Clock, tmp_path: Path
) -> None:
    notifier = Notifier(sessions, settings_for(tmp_path, mailbox.port), clock=clock)
    agent_says(sessions, place, False, T0)  # its Last Will, as the gateway applies it
    clock.advance(minutes=1, seconds=59)
    notifier.run_once()
    assert agent_alarms(sessions) == [] and mailbox.received == []

    clock.advance(seconds=1)
    assert notifier.run_once().watched.raised == ["holmen"]
    ((alarm),) = agent_alarms(sessions)
    assert (alarm.severity, alarm.raised_at, alarm.door_id, alarm.cleared_at) == (
        AlarmSeverity.CRITICAL,
        T0,
        None,
        None,
    )
    ((mail),) = mailbox.to(ON_CALL)
    assert (
        "Stedet har mistet forbindelsen" in mail["Subject"] and "Site controller offline" in mail["Subject"]
    )
    clock.advance(minutes=1)
    notifier.run_once()
    assert len(agent_alarms(sessions)) == 1  # one alarm while it stays away

    agent_says(sessions, place, True, clock.now)
    clock.advance(seconds=10)
    assert notifier.run_once().watched.cleared == ["holmen"]
    ((alarm),) = agent_alarms(sessions)
    assert alarm.cleared_at == clock.now
    clock.advance(minutes=30)
    notifier.run_once()
    assert mailbox.to(ESCALATION) == []  # back before anyone acknowledged: nothing left to escalate


# --- health, history, the thread ---------------------------------------------------------------------------


def test_staff_see_how_the_notifications_are_doing(db_url: str, tmp_path: Path) -> None:
    url = "http://hooks.example:8080/in?token=abc123"
    more = {
        "notify_webhook_url": url,
        "smtp_port": free_port(),
        "smtp_host": "127.0.0.1",
        "smtp_security": "none",
    }
    with api_with(db_url, tmp_path, notify_email=ON_CALL, **more) as api:
        empty = api.ok("GET", "/notifications/outbox", role=ApiRole.CARETAKER)
        assert (empty["pending"], empty["open_notifications"], empty["email"]["configured"]) == (0, 0, True)
        assert (
            empty["escalation_email"]["configured"] is False
            and empty["webhook"]["host"] == "hooks.example:8080"
        )
        sessions = session_factory(api.engine)
        with sessions() as session:
            site = session.scalars(select(Site).where(Site.slug == "holmen")).one()
            place = Place(site.id, -1, -1)
        raise_alarm(sessions, place, "forced_open", datetime.now(UTC), door=None)

        def down(url: str, body: bytes, headers: Any) -> PostResult:
            return PostResult(None, "no answer from hooks.example:8080: Connection refused")

        Notifier(sessions, api.settings, poster=down).run_once()
        response = api.get("/notifications/outbox", role=ApiRole.CARETAKER)
        health = response.json()
        assert (health["pending"], health["failing"], health["open_notifications"]) == (2, 2, 1)
        assert health["last_error"].startswith(("e-mail: no answer from 127.0.0.1", "webhook: no answer"))
        assert (
            health["last_error"].endswith("Connection refused") and health["oldest_pending_age_seconds"] >= 0
        )
        assert "abc123" not in response.text and ON_CALL not in response.text
        assert api.get("/notifications/outbox", role=ApiRole.BOOKING_INTEGRATION).status_code == 403
        assert api.get("/notifications/outbox", role=None).status_code == 401


def test_alarms_from_before_notifications_existed_are_not_mailed(
    db_url: str, mailbox: Mailbox, clock: Clock, tmp_path: Path
) -> None:
    migrate(db_url, "0010")
    engine = make_engine(db_url)
    try:
        sessions = session_factory(engine)
        place = build_place(sessions)
        with engine.begin() as connection:  # the alarms table as it was at 0010 (no `detail` yet)
            columns = ("site_id", "door_id", "kind", "severity", "raised_at", "comment")
            old_alarms = sa.table("alarms", *(sa.column(name) for name in columns))
            connection.execute(
                old_alarms.insert().values(
                    site_id=place.site_id,
                    door_id=place.entrance,
                    kind="forced_open",
                    severity="critical",
                    raised_at=T0 - timedelta(days=3),
                    comment="",
                )
            )
        migrate(db_url)
        notifier = Notifier(sessions, settings_for(tmp_path, mailbox.port), clock=clock)
        assert notifier.run_once().noticed.notified == []
        fresh = raise_alarm(sessions, place, "forced_open", T0)
        assert notifier.run_once().noticed.notified == [fresh]
        assert len(mailbox.received) == 1
    finally:
        engine.dispose()


def test_a_repeat_left_behind_when_retention_deletes_the_first_alarm_is_not_told_again(
    sessions: sessionmaker[Session], place: Place, mailbox: Mailbox, clock: Clock, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, mailbox.port, alarm_retention_days=365)
    notifier = Notifier(sessions, settings, clock=clock)
    raise_alarm(sessions, place, "forced_open", T0)
    notifier.run_once()
    clock.advance(minutes=20)
    repeat = raise_alarm(sessions, place, "forced_open", clock.now)
    assert notifier.run_once().noticed.folded == [repeat]
    clock.now = T0 + timedelta(days=365, minutes=10)
    with sessions() as session, session.begin():
        assert apply_retention(session, settings, clock.now).alarms_deleted == 1
    done = notifier.run_once()
    assert (done.noticed.notified, done.noticed.folded, done.noticed.skipped) == ([], [], 0)
    assert len(mailbox.received) == 2  # the first notice and its escalation, a year ago; nothing since


def test_the_notifier_thread_mails_what_is_raised_while_central_serves(
    sessions: sessionmaker[Session], place: Place, mailbox: Mailbox, tmp_path: Path
) -> None:
    notifier = start_for_settings(sessions, settings_for(tmp_path, mailbox.port), interval_s=0.05)
    try:
        raise_alarm(sessions, place, "forced_open", datetime.now(UTC))
        deadline = time.monotonic() + 10
        while not mailbox.received and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        notifier.stop()
    assert not notifier.running
    assert len(mailbox.to(ON_CALL)) == 1


def test_the_cli_prints_the_key_the_on_call_system_checks_signatures_with(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from central.cli import app as central_cli

    printed = CliRunner().invoke(central_cli, ["notify-webhook-secret", "--data-dir", str(tmp_path)])
    assert printed.exit_code == 0
    assert printed.output.strip() == notify_webhook_secret(Settings(data_dir=tmp_path))
    assert len(printed.output.strip()) == 64
