"""The statistics page for real: headless Chromium against central served by uvicorn. A caretaker signs in,
opens Statistikk, reads the charts and their numbers for Holmen's seeded May evening, narrows the page to
Holmen, downloads the visits per day as CSV and finds the right rows in it; a period that ends before it
starts is told next to the field. axe-core checks the page."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, Page, expect

from tests.browser_support import axe_violations, chromium, served
from tests.console_support import browser_sign_in, give_passwords
from tests.test_api_support import make_api, make_site
from tests.test_statistics_csv import seed

NOW = datetime(2025, 5, 20, 10, 0, tzinfo=UTC)  # the default period is 21 April to 20 May 2025


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def console(tmp_path: Path) -> Iterator[str]:
    with make_api(f"sqlite:///{tmp_path / 'central.db'}", tmp_path) as api:
        make_site(api, "holmen")
        make_site(api, "tofte")
        hours = [{"weekday": d, "opens": "07:00", "closes": "22:00", "kind": "meraapent"} for d in range(7)]
        api.ok("PUT", "/sites/holmen/opening-hours", json={"hours": hours})
        seed(api)
        give_passwords(api.engine)
        app = api.client.app
        assert isinstance(app, FastAPI)
        app.state.clock = lambda: NOW
        with served(app) as url:
            yield url


def serious(page: Page) -> list[dict[str, object]]:
    return [v for v in axe_violations(page) if v["impact"] in ("serious", "critical")]


def test_a_caretaker_reads_the_statistics_and_downloads_a_csv(browser: Browser, console: str) -> None:
    context = browser.new_context(
        locale="nb-NO", viewport={"width": 1280, "height": 900}, accept_downloads=True
    )
    page = context.new_page()
    browser_sign_in(page, console)

    page.get_by_role("navigation", name="Hovedmeny").get_by_role("link", name="Statistikk").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Statistikk")
    expect(page.get_by_text("Alle steder, 21.04.2025 til og med 20.05.2025 (30 dager)")).to_be_visible()
    figures = page.locator("dl.figures")
    expect(figures.locator("div").filter(has_text="Besøk").locator("dd").first).to_have_text("2")
    expect(figures.locator("div").filter(has_text="Avvisninger ved dørene").locator("dd")).to_have_text("1")
    chart = page.get_by_role("img", name="Besøk per dag")
    expect(chart).to_be_visible()
    assert chart.locator("rect.bar").count() == 30
    per_day = page.get_by_role("region", name="Tallene i diagrammet: Besøk per dag")
    expect(per_day.get_by_role("row", name="05.05.2025").get_by_role("cell")).to_have_text(
        ["2", "2", "0", "0"]
    )
    per_hour = page.get_by_role("region", name="Tallene i diagrammet: Besøk per time på døgnet")
    expect(per_hour.get_by_role("row", name="18:00").get_by_role("cell")).to_have_text(["1", "1", "0", "0"])
    denials = page.get_by_role("region", name="Tallene i diagrammet: Avvisninger etter årsak")
    expect(denials.get_by_role("row", name="Feil PIN-kode.").get_by_role("cell")).to_have_text(["1"])
    expect(page.get_by_role("img", name="Belegg utover kvelden")).to_be_visible()
    assert serious(page) == []

    page.get_by_label("Sted", exact=True).select_option(label="Holmen innbyggertorg")
    page.get_by_label("Fra og med").fill("2025-05-05")
    page.get_by_label("Til og med").fill("2025-05-11")
    page.get_by_role("button", name="Vis").click()
    expect(
        page.get_by_text("Holmen innbyggertorg, 05.05.2025 til og med 11.05.2025 (7 dager)")
    ).to_be_visible()
    rooms = page.get_by_role("region", name="Tallene i diagrammet: Rom og bookinger")
    room = rooms.get_by_role("row", name="Møterom 1 (Holmen innbyggertorg)").get_by_role("cell")
    expect(room).to_have_text(["1", "2", "0", "0", "1", "0", "100 %"])

    with page.expect_download() as caught:
        page.get_by_role("link", name="Last ned CSV: Besøk per dag").click()
    download = caught.value
    assert download.suggested_filename == "meraapent-visits-per-day-holmen-2025-05-05-2025-05-11.csv"
    text = Path(download.path()).read_text("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[0] == ["Dato", "Sted", "Besøk", "Meråpent", "Betjent", "Utenfor åpningstid"]
    assert rows[1] == ["2025-05-05", "Holmen innbyggertorg", "2", "2", "0", "0"]
    assert [row[2] for row in rows[2:]] == ["0"] * 6

    page.get_by_label("Til og med").fill("2025-05-01")
    page.get_by_role("button", name="Vis").click()
    expect(page.get_by_text("Slutten av perioden kan ikke være før starten.")).to_be_visible()
    expect(page.get_by_label("Til og med")).to_have_attribute("aria-invalid", "true")
    assert serious(page) == []
    context.close()
