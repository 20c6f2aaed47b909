"""A caretaker at a desk, for real: headless Chromium against central served by uvicorn. A forced door at
Holmen waits as an open alarm; they sign in, open Alarmer, acknowledge it with a comment and find it in the
history with their name; then they search the event log for Holmen's refusals. axe-core checks both pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, expect

from central.models import EventKind
from tests.browser_support import axe_violations, chromium, served
from tests.console_support import CARETAKER, browser_sign_in
from tests.test_api_support import Api
from tests.test_console_alarms import add_alarm
from tests.test_console_events import T0, add_event, signed_in_console

FORCED_EVENT = "0b5e3c1a-0000-4000-8000-00000000f0cc"


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[Api, str]]:
    with signed_in_console(f"sqlite:///{tmp_path / 'central.db'}", tmp_path) as api:
        app = api.client.app
        assert isinstance(app, FastAPI)
        with served(app) as url:
            yield api, url


def serious(page: Page) -> list[dict[str, object]]:
    return [v for v in axe_violations(page) if v["impact"] in ("serious", "critical")]


def test_a_caretaker_acknowledges_a_forced_door_and_searches_the_refusals(
    browser: Browser, console: tuple[Api, str]
) -> None:
    api, url = console
    add_event(
        api.engine,
        kind=EventKind.ALARM,
        decision=None,
        reason="forced_open",
        data={"severity": "critical", "raised": True, "detail": ""},
        event_id=FORCED_EVENT,
    )
    alarm = add_alarm(api.engine, event_id=FORCED_EVENT)
    add_event(api.engine, site="holmen", decision="grant", reason="schedule", at=T0 - timedelta(minutes=3))
    refused_here = add_event(api.engine, site="holmen", reason="wrong_pin", at=T0 - timedelta(minutes=2))
    add_event(api.engine, site="berger", reason="site_closed", at=T0 - timedelta(minutes=1))

    context = browser.new_context(locale="nb-NO", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    browser_sign_in(page, url)
    page.get_by_role("navigation", name="Hovedmeny").get_by_role("link", name="Alarmer").click()
    card = page.locator(f"article[aria-labelledby='alarm-{alarm}']")
    expect(card.get_by_role("heading")).to_contain_text("Dør brutt opp – Holmen innbyggertorg, Hovedinngang")
    expect(card).to_contain_text("Kritisk")
    assert serious(page) == []

    card.get_by_label("Kommentar: hva så eller gjorde du?").fill("Dør lukket, ingen der. Sjekket kamera.")
    card.get_by_role("button", name="Kvitter").click()
    expect(page.get_by_role("status").first).to_have_text(f"Alarm {alarm} er kvittert.")
    expect(page.get_by_text("Ingen åpne alarmer.")).to_be_visible()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="Dør brutt opp"))
    expect(row).to_contain_text(CARETAKER)
    expect(row).to_contain_text("Dør lukket, ingen der. Sjekket kamera.")

    page.get_by_role("navigation", name="Hovedmeny").get_by_role("link", name="Hendelser").click()
    page.get_by_label("Sted", exact=True).select_option(label="Holmen innbyggertorg")
    other_doors = "#door optgroup[data-site='berger']"
    assert page.eval_on_selector(other_doors, "group => group.disabled")  # only Holmen's doors to choose
    page.get_by_label("Resultat", exact=True).select_option(label="Avvist")
    page.get_by_role("button", name="Søk", exact=True).click()
    expect(page.get_by_text("1 hendelse", exact=True)).to_be_visible()
    rows = page.locator("table.events tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Feil PIN-kode.")
    assert rows.first.get_by_role("link").first.get_attribute("href") == f"/drift/hendelser/{refused_here}"
    assert re.search(r"site=holmen.*decision=deny", page.url)
    assert serious(page) == []
    context.close()
