"""The home page on a phone, for real: headless Chromium against central served by uvicorn, with the MQTT
gateway, mosquitto, the site agent and a simulated door at Holmen's main entrance.

The phone's key is made by Chromium's WebCrypto and kept in its IndexedDB; the QR code it shows is checked
the way a door checks it (protocol.holder.verify_presentation with the site's published keys, and by
scanning it at the agent). Central and the agent share one manual clock set to a Monday evening when
Holmen is open, so the test passes at any hour; the browser's own clock runs on, and the page counts time
steps on central's clock.
"""

from __future__ import annotations

import json
import threading
import time as wall
from base64 import b64decode, b64encode
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import base45
import cbor2
import pytest
from gpiozero.pins.mock import MockFactory
from itsdangerous import TimestampSigner
from playwright.sync_api import Browser, BrowserContext, Page
from sqlalchemy import Engine, select

from central.api import create_app
from central.config import Settings
from central.db import make_engine, migrate, session_factory, session_scope
from central.gateway import Gateway
from central.keystore import generate_key, load_public_keys
from central.models import Event, EventKind
from central.web.session import CSRF, PERSON_ID, SESSION_COOKIE, SIGNED_IN_AT, session_secret
from controller.clock import ManualClock
from controller.config import load_config
from controller.inputs import CodeScanned
from controller.runtime import RunningAgent, start
from hw_sim.door import SimDoor
from hw_sim.pcscd import PcscDaemon
from protocol.holder import TIME_STEP_SECONDS, present, proof_context, verify_presentation
from protocol.token import TokenError, TokenRefusal
from tests.browser_support import axe_violations, chromium, phone_context, served
from tests.infra import MosquittoBroker
from tests.pcsc_fixtures import pcscd  # noqa: F401 (fixture)
from tests.test_my_access import at, build_town
from tests.web_support import finish_enrolment

WAIT_S = 20.0
RELAY, CONTACT, EXIT = "GPIO17", "GPIO27", "GPIO22"
DOOR = "hovedinngang"

pytestmark = pytest.mark.mqtt


def eventually(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = wall.monotonic() + timeout
    while not condition():
        if wall.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        wall.sleep(0.02)


@dataclass
class Holmen:
    """Everything running: central's URL, its settings and database, the agent and the door."""

    url: str
    settings: Settings
    engine: Engine
    clock: ManualClock
    people: dict[str, int]
    agent: RunningAgent
    door: SimDoor

    def access_reasons(self) -> list[str | None]:
        with session_factory(self.engine)() as session:
            rows = session.scalars(select(Event).where(Event.kind == EventKind.ACCESS).order_by(Event.id))
            return [event.reason for event in rows]


def write_agent_config(tmp_path: Path, settings: Settings, broker: MosquittoBroker, reader: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(
        f"""
[agent]
site = "holmen"
name = "holmen-pi-1"
data_dir = "{tmp_path / "agent"}"
uid_hash_key_file = "{settings.secrets_dir / "uid-hash.key"}"

[mqtt]
host = "{broker.host}"
port = {broker.port}
keepalive = 5

[[doors]]
slug = "{DOOR}"
relay = "{RELAY}"
lock_type = "fail_secure"
contact = "{CONTACT}"
exit_button = "{EXIT}"
reader = "pcsc:{reader}"
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def holmen(
    tmp_path: Path,
    private_mosquitto: MosquittoBroker,
    pcscd: PcscDaemon,  # noqa: F811
) -> Iterator[Holmen]:
    settings = Settings(
        data_dir=tmp_path / "central",
        db_url=f"sqlite:///{tmp_path / 'central.db'}",
        mqtt_host=private_mosquitto.host,
        mqtt_port=private_mosquitto.port,
    )
    migrate(settings.db_url)
    engine = make_engine(settings.db_url)
    with session_scope(session_factory(engine)) as session:
        people = {name: person.id for name, person in build_town(session).people.items()}
        for person_id in people.values():
            finish_enrolment(session, person_id, at(9))
    generate_key(settings.data_dir)
    settings.uid_hash_key()
    clock = ManualClock(at(19))  # Monday evening: Holmen open, Kari's group in, Ola's evening group too
    gateway = Gateway(settings, engine, client_id="central-home", poll_s=0.05, refresh_s=0.5)
    gateway.start()
    assert gateway.link.wait_connected(WAIT_S)
    app = create_app(settings, engine=engine, gateway=gateway)
    app.state.clock = clock.now
    factory = MockFactory()
    config = load_config(write_agent_config(tmp_path, settings, private_mosquitto, pcscd.reader_name(0)))
    running = start(config, clock=clock, factory=factory)
    stop = threading.Event()
    loop = threading.Thread(target=running.agent.run, args=(stop,), daemon=True)
    loop.start()
    door = SimDoor(factory, RELAY, CONTACT, EXIT, "fail_secure", clock=clock)
    try:
        with served(app) as url:
            site = Holmen(url, settings, engine, clock, people, running, door)
            agent = running.agent
            eventually(
                lambda: (
                    agent.view is not None and agent.replica.count() > 0 and agent.reception.keys is not None
                ),
                "the agent has its config, replica and the signing keys",
            )
            yield site
    finally:
        stop.set()
        loop.join(10)
        running.close()
        gateway.stop()
        engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def signed_in_phone(browser: Browser, site: Holmen, name: str, locale: str = "nb-NO") -> BrowserContext:
    """A phone on which `name` is signed in: the session cookie central's middleware would have set."""
    data = {PERSON_ID: site.people[name], SIGNED_IN_AT: datetime.now(UTC).isoformat(), CSRF: f"csrf-{name}"}
    payload = b64encode(json.dumps(data).encode())
    cookie = TimestampSigner(session_secret(site.settings).hex()).sign(payload).decode()
    context = phone_context(browser, locale=locale)
    context.add_cookies([{"name": SESSION_COOKIE, "value": cookie, "url": site.url}])
    return context


def shown_code(page: Page) -> tuple[str, int]:
    """The QR code the page shows now: its text and time step, once the phone has signed one."""
    image = page.locator("#qr-image")
    page.wait_for_selector('#qr-image[data-qr-text^="MA2:"]', timeout=WAIT_S * 1000)
    return str(image.get_attribute("data-qr-text")), int(str(image.get_attribute("data-step")))


def step_start(step: int) -> datetime:
    return datetime.fromtimestamp(step * TIME_STEP_SECONDS, UTC)


def token_of(presentation: str) -> str:
    """The token inside a presentation (what a friend who saw the code would have)."""
    raw, _, _ = cbor2.loads(base45.b45decode(presentation[4:]))
    encoded: bytes = base45.b45encode(raw)
    return "MA1:" + encoded.decode()


SIGN_WITH_THIS_PHONES_KEY = """async ([context, step]) => {
  const db = await new Promise((ok, no) => { const r = indexedDB.open("min-nokkel", 1);
    r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); });
  const pair = await new Promise((ok, no) => {
    const r = db.transaction("keys").objectStore("keys").get("phone");
    r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); });
  const bytes = Uint8Array.from(atob(context), c => c.charCodeAt(0));
  const message = new Uint8Array(bytes.length + 8);
  message.set(bytes);
  new DataView(message.buffer).setBigUint64(bytes.length, BigInt(step));
  const signature = await crypto.subtle.sign({name: "ECDSA", hash: "SHA-256"}, pair.privateKey, message);
  return btoa(String.fromCharCode(...new Uint8Array(signature)));
}"""


def test_the_phone_shows_a_bound_code_opens_the_door_and_a_friends_phone_cannot_reuse_it(
    browser: Browser, holmen: Holmen
) -> None:
    keys = load_public_keys(holmen.settings.data_dir)
    kari = signed_in_phone(browser, holmen, "Kari").new_page()
    kari.goto(f"{holmen.url}/min-nokkel/hjem")

    # the code appears, verifies as a door verifies it, and is refused two time steps later
    text, step = shown_code(kari)
    assert kari.locator("#qr-countdown").inner_text().startswith("Ny kode om ")
    assert kari.get_by_role("img", name="QR-kode for inngang").is_visible()
    claims = verify_presentation(text, keys, holmen.clock.now())
    assert (claims.site, claims.holder) == ("holmen", f"p{holmen.people['Kari']}")
    with pytest.raises(TokenError) as stale:
        verify_presentation(text, keys, step_start(step + 2))
    assert stale.value.reason is TokenRefusal.PROOF_STALE
    assert axe_violations(kari) == []

    # Open: the agent decides by Kari's rules, the relay energises, the page says so
    kari.get_by_role("button", name="Åpne Hovedinngang").click()
    eventually(lambda: holmen.door.is_unlocked, "the door unlocks for Open")
    status = kari.get_by_role("status").filter(has_text="Døra er åpen")
    status.wait_for(timeout=WAIT_S * 1000)
    eventually(lambda: "schedule" in holmen.access_reasons(), "central records the granted entry")
    holmen.clock.advance(10)
    eventually(lambda: not holmen.door.is_unlocked, "the door locks again when nobody went in")

    # the code scanned at the door opens it
    text, step = shown_code(kari)
    holmen.agent.agent.submit(CodeScanned(DOOR, text))
    eventually(lambda: holmen.door.is_unlocked, "the door unlocks for Kari's code")

    # a friend's phone: its own key cannot prove Kari's ticket, and Kari's code shown later is stale
    friend = signed_in_phone(browser, holmen, "Ola").new_page()
    friend.goto(f"{holmen.url}/min-nokkel/hjem")
    friends_own, _ = shown_code(friend)
    assert friends_own != text
    kari_token = token_of(text)
    context = b64encode(proof_context(kari_token)).decode()
    signature = b64decode(friend.evaluate(SIGN_WITH_THIS_PHONES_KEY, [context, step]))
    forged = present(kari_token, step, signature)
    with pytest.raises(TokenError) as foreign:
        verify_presentation(forged, keys, holmen.clock.now())
    assert foreign.value.reason is TokenRefusal.BAD_PROOF
    holmen.agent.agent.submit(CodeScanned(DOOR, forged))
    eventually(
        lambda: holmen.access_reasons()[-1:] == ["phone_proof_invalid"], "the door refuses the friend's proof"
    )
    holmen.clock.advance(2 * TIME_STEP_SECONDS)
    holmen.agent.agent.submit(CodeScanned(DOOR, text))
    eventually(
        lambda: holmen.access_reasons()[-1:] == ["phone_proof_stale"], "the replayed code is refused as stale"
    )

    # the page in English passes axe too
    kari.get_by_role("link", name="English").click()
    kari.locator('html[lang="en"]').wait_for(state="attached")
    shown_code(kari)
    assert kari.get_by_role("heading", name="Entry code").is_visible()
    assert axe_violations(kari) == []


def test_without_webcrypto_the_page_says_so_and_offers_the_open_buttons(
    browser: Browser, holmen: Holmen
) -> None:
    context = signed_in_phone(browser, holmen, "Kari", locale="en-GB")
    context.add_init_script("Object.defineProperty(window, 'indexedDB', {value: undefined});")
    page = context.new_page()
    page.goto(f"{holmen.url}/min-nokkel/hjem")
    page.get_by_text("Your browser cannot make the entry code").wait_for(timeout=WAIT_S * 1000)
    assert page.locator("#qr-box").is_hidden()
    assert page.get_by_role("button", name="Open Hovedinngang").is_visible()
    assert axe_violations(page) == []
    context.close()
