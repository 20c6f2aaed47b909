"""The administration pages in a real browser: a caretaker finds a resident, opens their page and blocks a
card, and mistypes a new PIN; an admin creates an API user and sees its token once. Headless Chromium
(Debian's) against central served by uvicorn; axe-core finds no serious or critical WCAG 2.1 AA problem
on any of these pages, error states included."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from central.api import create_app
from central.db import make_engine
from tests.browser_support import axe_violations, chromium, served
from tests.console_support import ADMIN, browser_sign_in, give_passwords
from tests.test_api_support import make_api, make_site

DESK: ViewportSize = {"width": 1280, "height": 900}


def serious(page: Page) -> list[dict[str, object]]:
    return [v for v in axe_violations(page) if v["impact"] in ("serious", "critical")]


@pytest.mark.timeout(90)
def test_a_caretaker_blocks_a_card_and_an_admin_makes_an_api_user_in_the_browser(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'central.db'}"
    with make_api(url, tmp_path) as api:
        give_passwords(api.engine)
        make_site(api)
        kari = api.ok("POST", "/people", json={"kind": "resident", "display_name": "Kari Nordmann"})
        card = api.ok(
            "POST", f"/people/{kari['id']}/cards", json={"uid": "04A1B2C3D4E5F6", "label": "Lånekort"}
        )
        settings = api.settings
    engine = make_engine(url)
    try:
        with served(create_app(settings, engine=engine)) as base, chromium() as browser:
            context = browser.new_context(locale="nb-NO", viewport=DESK)
            page = context.new_page()
            browser_sign_in(page, base)
            page.goto(f"{base}/drift/admin")
            assert serious(page) == []
            page.get_by_role("link", name="Personer").click()
            page.get_by_label("Søk på navn").fill("kari")
            page.get_by_role("button", name="Søk").click()
            assert serious(page) == []
            page.get_by_role("link", name="Kari Nordmann").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Kari Nordmann")
            assert serious(page) == []

            section = page.locator(f"#credential-{card['id']}")
            section.get_by_role("button", name=re.compile("^Sperr")).click()
            expect(page.get_by_role("status")).to_have_text(f"Nr. {card['id']} er sperret.")
            expect(page.locator(f"#credential-{card['id']}")).to_contain_text("Sperret")

            section = page.locator(f"#credential-{card['id']}")
            section.get_by_label("Ny PIN-kode (4–8 sifre)").fill("2468")
            section.get_by_label("Samme PIN-kode en gang til").fill("2486")
            section.get_by_role("button", name="Lagre ny PIN-kode").click()
            expect(page.locator(f"#repeat-{card['id']}-error")).to_have_text(
                "De to PIN-kodene er ikke like. Skriv dem inn på nytt."
            )
            assert serious(page) == []
            context.close()

            context = browser.new_context(locale="nb-NO", viewport=DESK)
            page = context.new_page()
            browser_sign_in(page, base, username=ADMIN)
            page.goto(f"{base}/drift/admin/brukere")
            assert serious(page) == []
            page.get_by_label("Brukernavn").fill("vega-import")
            page.get_by_label("Rolle").select_option(label="bookingsystem")
            page.get_by_role("button", name="Opprett").click()
            expect(page.get_by_role("alert")).to_contain_text("vises bare denne ene gangen")
            token = page.get_by_label("API-nøkkel").input_value()
            assert len(token) > 30
            assert serious(page) == []
            page.get_by_role("link", name="Jeg har lagret nøkkelen").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("vega-import")
            assert token not in page.content()
            context.close()
    finally:
        engine.dispose()
