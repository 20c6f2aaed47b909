"""The overview live, for real: a caretaker in headless Chromium watches Heggedal's main door change while
the page stays loaded, and unlocks it remotely with a reason.

Central (seeded database, the real MQTT gateway, served by uvicorn) and the site agent talk through a real
mosquitto; the door is hw_sim's SimDoor on gpiozero MockFactory pins. The agent's clock is a manual one set
to now, so central's commands are fresh to it and time at the door moves only when the test says so.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import select

from central.api import create_app
from central.db import session_factory
from central.models import Agent, Door, Site
from controller.clock import ManualClock
from hw_sim.pcscd import PcscDaemon
from tests.browser_support import axe_violations, chromium, served
from tests.console_support import browser_sign_in, give_passwords
from tests.infra import MosquittoBroker
from tests.pcsc_fixtures import pcscd  # noqa: F401 (fixture)
from tests.test_agent_end_to_end import Central, agent_config, central, eventually, start_site  # noqa: F401
from tests.test_api_support import add_api_users

pytestmark = pytest.mark.mqtt

ROW = '[id="door-heggedal.hovedinngang"]'
SHOWN_MS = 10_000  # how long the page may take to show a change (it polls every 0.1 s here)


def reported(stack: Central) -> bool:
    """Central has heard the agent come online and the main door's state."""
    with session_factory(stack.engine)() as session:
        row = session.execute(
            select(Door.last_state, Agent.online)
            .join(Site, Site.id == Door.site_id)
            .join(Agent, Agent.site_id == Site.id)
            .where(Site.slug == "heggedal", Door.slug == "hovedinngang")
        ).first()
        return row is not None and tuple(row) == ("locked", True)


def state_of(page: Page) -> Locator:
    return page.locator(f'{ROW} [data-field="state"] .words')


def serious(page: Page) -> list[dict[str, object]]:
    return [v for v in axe_violations(page) if v["impact"] in ("serious", "critical")]


@pytest.mark.timeout(120)
def test_a_caretaker_sees_the_door_change_without_reloading_and_unlocks_it_with_a_reason(
    tmp_path: Path,
    central: Central,  # noqa: F811
    private_mosquitto: MosquittoBroker,
    pcscd: PcscDaemon,  # noqa: F811
) -> None:
    add_api_users(central.engine)
    give_passwords(central.engine)
    central.start()
    assert central.gateway is not None
    app = create_app(central.settings, engine=central.engine, gateway=central.gateway)
    app.state.overview_poll_s = 0.1
    clock = ManualClock(datetime.now(UTC))
    site = start_site(agent_config(tmp_path, central, private_mosquitto, pcscd), clock)
    try:
        eventually(lambda: reported(central), "central knows the agent and the locked door")
        with served(app) as base, chromium() as browser:
            context = browser.new_context(locale="nb-NO", viewport={"width": 1280, "height": 900})
            watching = context.new_page()
            browser_sign_in(watching, base)
            watching.goto(f"{base}/drift/oversikt")
            expect(state_of(watching)).to_have_text("Låst")
            expect(watching.locator("#live-status")).to_have_text("Oppdateres fortløpende.", timeout=SHOWN_MS)
            watching.evaluate("window.stillTheSamePage = true")

            # In a second tab: unlock the main door for 5 minutes, with a reason.
            control = context.new_page()
            control.goto(f"{base}/drift/styring/heggedal?door=hovedinngang")
            unlock = control.locator("#unlock")
            unlock.get_by_label("Hvor lenge").select_option(label="5 minutter")
            unlock.get_by_label("Begrunnelse").fill("Beboer låst ute, ringte 21:40")
            assert serious(control) == []
            unlock.get_by_role("button", name="Lås opp").click()
            expect(control.get_by_role("status")).to_have_text(
                "Sendt til Heggedal innbyggertorg: lås opp Hovedinngang i 5 minutter"
            )
            eventually(lambda: site.door.is_unlocked, "the agent energises the relay")

            # The first tab, never reloaded, follows: unlocked, the agent's result, then open, then forced.
            expect(state_of(watching)).to_have_text("Ulåst", timeout=SHOWN_MS)
            expect(watching.locator(f'{ROW} [data-field="event_text"]')).to_have_text(
                re.compile(r"Fjernstyring utført: lås opp$"), timeout=SHOWN_MS
            )
            assert site.door.push()
            expect(state_of(watching)).to_have_text("Åpen", timeout=SHOWN_MS)
            clock.advance(4)
            site.door.tick()  # the closer shuts it; the lock engages again
            expect(state_of(watching)).to_have_text("Låst", timeout=SHOWN_MS)
            assert not site.door.is_unlocked
            clock.advance(300)  # past the 5 minutes: opening it now is no tailgate but a break-in
            site.door.force()
            expect(state_of(watching)).to_have_text("Brutt opp", timeout=SHOWN_MS)
            expect(watching.locator(f"{ROW} .badge")).to_have_class(re.compile(r"\bbad\b"))
            expect(watching.locator("#announcer")).to_have_text(
                "Heggedal innbyggertorg – Hovedinngang: Brutt opp", timeout=SHOWN_MS
            )
            assert watching.evaluate("window.stillTheSamePage") is True  # no reload in between
            assert serious(watching) == []
            context.close()
    finally:
        site.close()
