"""The agent's kiosk socket, over a real Unix socket: one reply line per request line, in order, whatever the
kiosk sends; several connections at once; a socket file only the agent's user and group may open; and the
[kiosk] table of site.toml."""

from __future__ import annotations

import os
import socket
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.agent import Agent, AgentSettings, Received
from controller.clock import ManualClock
from controller.config import ConfigError, load_config
from controller.kiosk_server import KioskServer, KioskSocketError
from protocol import kiosk as k
from tests.test_controller_agent import KEY, FakeDoor
from tests.test_controller_schedule import heggedal_config, oslo

AT = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)


def answer(request: k.Request) -> k.KioskReply:
    """A stand-in for the agent: says which request it got."""
    if isinstance(request, k.CheckInRequest):
        return k.CheckInReply(outcome=k.CheckInOutcome.UNKNOWN, reason=request.method.value)
    if isinstance(request, k.ExtendRequest):
        return k.ChangeReply(outcome=k.ChangeOutcome.ACCEPTED, ends_at=AT)
    return k.ErrorReply(message=type(request).__name__)


class Kiosk:
    """A client as the kiosk app is one: lines out, lines back."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(path))
        self.lines = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> k.Reply:
        return k.decode_reply(self.lines.readline())

    def ask(self, request: k.KioskRequest) -> k.Reply:
        self.send(k.encode(request))
        return self.reply()

    def close(self) -> None:
        self.lines.close()
        self.sock.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "run" / "kiosk.sock"


@pytest.fixture
def server(path: Path) -> Iterator[KioskServer]:
    running = KioskServer(path, answer)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def kiosk(server: KioskServer) -> Iterator[Kiosk]:
    client = Kiosk(server.path)
    yield client
    client.close()


def test_a_bad_line_gets_an_error_and_the_connection_goes_on(kiosk: Kiosk) -> None:
    kiosk.send(b"not json\n")
    bad = kiosk.reply()
    assert isinstance(bad, k.ErrorReply) and "not a valid kiosk request" in bad.message
    kiosk.send(b'{"type":"unlock","door":"hovedinngang"}\n')
    assert isinstance(kiosk.reply(), k.ErrorReply)
    kiosk.send(b'{"type":"check_in","method":"code","code":"12"}\n')
    assert isinstance(kiosk.reply(), k.ErrorReply)
    assert kiosk.ask(k.CheckInRequest(method=k.CheckInMethod.CODE, code="482615")) == k.CheckInReply(
        outcome=k.CheckInOutcome.UNKNOWN, reason="code"
    )


def test_requests_sent_together_get_one_reply_each_in_order(kiosk: Kiosk) -> None:
    requests: list[k.KioskRequest] = [
        k.TodayRequest(),
        k.CheckInRequest(method=k.CheckInMethod.CARD, uid="04a1b2c3d4e5f6"),
        k.ExtendRequest(session="s" * 24, minutes=30),
    ]
    kiosk.send(b"".join(k.encode(r) for r in requests) + b"\n\r\n")  # blank lines are not requests
    assert [kiosk.reply() for _ in requests] == [
        k.ErrorReply(message="TodayRequest"),
        k.CheckInReply(outcome=k.CheckInOutcome.UNKNOWN, reason="card"),
        k.ChangeReply(outcome=k.ChangeOutcome.ACCEPTED, ends_at=AT),
    ]
    kiosk.send(k.encode(k.TodayRequest())[:10])  # a request in pieces is one request
    kiosk.send(k.encode(k.TodayRequest())[10:])
    assert kiosk.reply() == k.ErrorReply(message="TodayRequest")


def test_an_oversized_line_is_cut_off_with_one_error(kiosk: Kiosk) -> None:
    chunk = b"x" * (64 * 1024)
    for _ in range(k.MAX_LINE_BYTES // len(chunk) + 2):
        kiosk.send(chunk)
    kiosk.send(b"still the same line\n")
    too_long = kiosk.reply()
    assert isinstance(too_long, k.ErrorReply) and "bytes at most" in too_long.message
    assert kiosk.ask(k.TodayRequest()) == k.ErrorReply(message="TodayRequest")  # the next line is served


def test_several_kiosks_at_once_each_get_their_own_replies(server: KioskServer) -> None:
    results: dict[int, list[str]] = {}

    def one_kiosk(n: int) -> None:
        client = Kiosk(server.path)
        try:
            codes = [f"{n}{i:05d}" for i in range(20)]
            client.send(
                b"".join(k.encode(k.CheckInRequest(method=k.CheckInMethod.CODE, code=c)) for c in codes)
            )
            results[n] = [getattr(client.reply(), "reason", "") for _ in codes]
        finally:
            client.close()

    threads = [threading.Thread(target=one_kiosk, args=(n,)) for n in range(1, 6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert results == {n: ["code"] * 20 for n in range(1, 6)}


def test_when_the_agent_fails_or_is_busy_the_kiosk_still_gets_an_answer(path: Path) -> None:
    def failing(request: k.Request) -> k.KioskReply:
        if isinstance(request, k.TodayRequest):
            raise TimeoutError
        raise RuntimeError("boom")

    running = KioskServer(path, failing)
    running.start()
    client = Kiosk(path)
    try:
        busy = client.ask(k.TodayRequest())
        assert isinstance(busy, k.ErrorReply) and "did not answer in time" in busy.message
        broken = client.ask(k.EndRequest(session="s" * 24))
        assert isinstance(broken, k.ErrorReply) and "RuntimeError" in broken.message
    finally:
        client.close()
        running.stop()


# --- the socket file ----------------------------------------------------------------------------------------


def test_the_socket_is_for_the_agents_user_and_group_and_goes_away_on_stop(path: Path) -> None:
    running = KioskServer(path, answer)
    running.start()
    mode = path.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660
    assert [p.name for p in path.parent.iterdir()] == ["kiosk.sock"]  # no temporary name left behind
    running.stop()
    assert not path.exists()


def test_a_stale_socket_is_replaced_but_a_live_one_or_another_file_is_not(path: Path) -> None:
    path.parent.mkdir(parents=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # an agent that died without cleaning up
    first = KioskServer(path, answer)
    first.start()
    try:
        with pytest.raises(KioskSocketError, match="another process is serving on it"):
            KioskServer(path, answer).start()
        client = Kiosk(path)
        assert client.ask(k.TodayRequest()) == k.ErrorReply(message="TodayRequest")  # the first still serves
        client.close()
    finally:
        first.stop()
    path.write_text("not a socket")
    with pytest.raises(KioskSocketError, match="not a socket"):
        KioskServer(path, answer).start()
    assert path.read_text() == "not a socket"


# --- with the agent's own thread ----------------------------------------------------------------------------


def test_the_agent_answers_the_kiosk_from_its_own_thread(tmp_path: Path) -> None:
    clock = ManualClock(oslo("2026-11-23T17:50"))
    settings = AgentSettings(
        site="heggedal", name="heggedal-pi", data_dir=tmp_path / "agent", uid_hash_key=KEY
    )
    agent = Agent(settings, clock, {"hovedinngang": FakeDoor()})
    agent.submit(Received(heggedal_config()))
    stop = threading.Event()
    loop = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    loop.start()
    running = KioskServer(tmp_path / "kiosk.sock", agent.ask_kiosk)
    running.start()
    client = Kiosk(running.path)
    try:
        today = client.ask(k.TodayRequest())
        assert isinstance(today, k.TodayReply) and today.name == "Heggedal innbyggertorg"
        assert not today.central_online  # this agent has no link at all
        unknown = client.ask(k.CheckInRequest(method=k.CheckInMethod.CARD, uid="04a1b2c3d4e5f6"))
        assert unknown == k.CheckInReply(outcome=k.CheckInOutcome.UNKNOWN)
    finally:
        client.close()
        running.stop()
        stop.set()
        loop.join(5)
        agent.close()


# --- site.toml ----------------------------------------------------------------------------------------------

SITE_TOML = """
[agent]
site = "heggedal"
name = "heggedal-pi-1"
data_dir = "data"
uid_hash_key_file = "uid.key"

[mqtt]
host = "localhost"

[[doors]]
slug = "hovedinngang"
relay = "GPIO17"
lock_type = "fail_secure"
contact = "GPIO27"
exit_button = "GPIO22"
reader = "pcsc:ACS ACR122U"
"""


def config_with(tmp_path: Path, kiosk: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(SITE_TOML + kiosk, encoding="utf-8")
    return path


def test_without_a_kiosk_table_there_is_no_kiosk_and_with_one_the_defaults_hold(tmp_path: Path) -> None:
    assert load_config(config_with(tmp_path, ""), check_files=False).kiosk is None
    kiosk = load_config(config_with(tmp_path, "\n[kiosk]\n"), check_files=False).kiosk
    assert kiosk is not None
    assert (kiosk.socket, kiosk.session_seconds) == (Path("/run/meraapent/kiosk.sock"), 120)
    relative = load_config(config_with(tmp_path, '\n[kiosk]\nsocket = "run/k.sock"\n'), check_files=False)
    assert relative.kiosk is not None and relative.kiosk.socket == tmp_path / "run" / "k.sock"


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('socket = "/run/' + "x" * 120 + '.sock"', "kiosk.socket: a Unix socket path has at most 107 bytes"),
        ("session_seconds = 5", "kiosk.session_seconds: must be at least 10"),
        ('sokcet = "/run/k.sock"', "kiosk.sokcet: unknown key"),
    ],
)
def test_a_kiosk_table_mistake_is_one_line_naming_the_key(tmp_path: Path, table: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(config_with(tmp_path, f"\n[kiosk]\n{table}\n"), check_files=False)
    assert expected in str(caught.value) and "\n" not in str(caught.value)
    assert os.fspath(tmp_path) in str(caught.value)
