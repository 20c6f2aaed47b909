"""Signing in to the console in a real browser (Debian's Chromium), and that its own pages pass axe-core."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from central.api import create_app
from central.config import Settings
from central.db import make_engine, migrate
from tests.browser_support import axe_violations, chromium, served
from tests.console_support import STAFF_PASSWORD, browser_sign_in, give_passwords
from tests.test_api_support import add_api_users


def serious(page: Page) -> list[dict[str, Any]]:
    return [v for v in axe_violations(page) if v["impact"] in ("serious", "critical")]


def test_a_caretaker_signs_in_changes_a_password_and_signs_out(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'central.db'}"
    migrate(db_url)
    engine = make_engine(db_url)
    add_api_users(engine)
    give_passwords(engine)
    app = create_app(Settings(data_dir=tmp_path / "data", db_url=db_url), engine=engine)
    with served(app) as base, chromium() as browser:
        page = browser.new_context(locale="nb-NO").new_page()
        page.goto(f"{base}/drift/meg")
        expect(page).to_have_url(re.compile(r"/drift/logg-inn\?next=/drift/meg"))
        assert serious(page) == []
        page.get_by_label("Brukernavn").fill("test-caretaker")
        page.get_by_label("Passord").fill("feil passord her")
        page.get_by_role("button", name="Logg inn").click()
        expect(page.get_by_role("alert")).to_have_text("Feil brukernavn eller passord.")
        assert serious(page) == []

        browser_sign_in(page, base)
        page.goto(f"{base}/drift/meg")
        page.get_by_label("Nåværende passord").fill(STAFF_PASSWORD)
        page.get_by_label("Nytt passord", exact=True).fill("kort")
        page.get_by_label("Nytt passord en gang til").fill("kort")
        page.get_by_role("button", name="Lagre nytt passord").click()
        expect(page.locator("#new-error")).to_have_text("Passordet er for kort eller for lett å gjette.")
        assert serious(page) == []

        page.get_by_role("button", name="Logg ut").click()
        expect(page.get_by_role("status")).to_have_text("Du er logget ut.")
        page.goto(f"{base}/drift/meg")
        expect(page).to_have_url(re.compile(r"/drift/logg-inn"))
    engine.dispose()
