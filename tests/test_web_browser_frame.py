"""The resident pages' frame in a real phone browser: readable, accessible, in both languages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser

from tests.browser_support import axe_violations, chromium, phone_context, served
from tests.test_api_support import Api, make_api


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    with make_api(f"sqlite:///{tmp_path / 'central.db'}", tmp_path) as api, served(app_of(api)) as url:
        yield url


def app_of(api: Api) -> FastAPI:
    app = api.client.app
    assert isinstance(app, FastAPI)
    return app


def test_the_landing_page_passes_axe_in_bokmal_and_english(browser: Browser, site: str) -> None:
    context = phone_context(browser)
    page = context.new_page()
    page.goto(f"{site}/min-nokkel/")
    assert page.locator("html").get_attribute("lang") == "nb"
    assert axe_violations(page) == []
    page.get_by_role("link", name="English").click()
    assert page.get_by_role("link", name="Sign in").is_visible()
    assert axe_violations(page) == []
    context.close()


def test_the_skip_link_is_the_first_stop_and_moves_focus_to_the_content(browser: Browser, site: str) -> None:
    context = phone_context(browser, is_mobile=False, has_touch=False)
    page = context.new_page()
    page.goto(f"{site}/min-nokkel/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Hopp til innholdet"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    context.close()
