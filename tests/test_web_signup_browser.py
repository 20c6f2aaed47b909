"""Signing up on a phone, end to end in headless Chromium against a real OpenID Connect provider.

An adult signs in, accepts the agreement, gets a one-time card code, "taps" the card (the reader's claim is
made directly here; the agent's own keypad flow has its end-to-end test), sets a PIN and ends at home. A
16-year-old is told how a guardian gives consent; a 13-year-old is refused. Every page of ours passes axe-core
(WCAG 2.1 A/AA), in bokmål and in English.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select

from central.db import session_factory, session_scope
from central.models import Person, Site
from central.security import card_uid_hash
from central.services import card_enrolment
from tests.browser_support import axe_violations, chromium, phone_context, served
from tests.oidc_support import RunningProvider, TestAccount, oidc_provider
from tests.test_api_support import Api, make_api, make_site

TODAY = datetime.now(UTC).date()
ADULT = TestAccount("kari", "Kari Nordmann", f"{TODAY.year - 40}-06-01", "pid")
TEEN = TestAccount("sara", "Sara Nordmann", f"{TODAY.year - 16}-01-01", "birthdate")
CHILD = TestAccount("emil", "Emil Nordmann", f"{TODAY.year - 13}-01-01", "pid")


@dataclass
class World:
    api: Api
    url: str
    provider: RunningProvider


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Central served for real, with one site whose residents' group takes self-enrolled people, and the
    provider with our three people; central's settings are pointed at both once the ports are known."""
    tmp = tmp_path_factory.mktemp("signup")
    with make_api(f"sqlite:///{tmp / 'central.db'}", tmp) as api:
        make_site(api)
        api.ok(
            "POST",
            "/access-groups",
            json={"slug": "innbyggere", "name": "Innbyggere", "self_enrolment": True},
        )
        api.ok("PUT", "/access-groups/innbyggere/zones", json={"zones": [{"site": "holmen", "zone": "torg"}]})
        app = api.client.app
        assert isinstance(app, FastAPI)
        with (
            served(app) as url,
            oidc_provider(f"{url}/min-nokkel/innlogget", [ADULT, TEEN, CHILD]) as provider,
        ):
            app.state.settings = dataclasses.replace(
                api.settings,
                public_url=url,
                oidc_issuer=provider.issuer,
                oidc_client_id=provider.client_id,
                oidc_client_secret=provider.client_secret,
            )
            yield World(api, url, provider)


def phone(browser: Browser, locale: str = "nb-NO") -> BrowserContext:
    context = phone_context(browser, locale=locale)
    context.route(re.compile(r"^https://"), lambda route: route.abort())  # the provider's page imports a font
    return context


def sign_in(page: Page, world: World, account: TestAccount) -> None:
    """From the landing page through the provider's login form (any password) and back."""
    page.goto(f"{world.url}/min-nokkel/")
    page.get_by_role("link", name=re.compile("Logg inn|Sign in")).click()
    page.locator("input[name=login]").fill(account.login)
    page.locator("input[name=password]").fill("any password")
    page.get_by_role("button", name="Sign-in").click()


def accessible(page: Page) -> None:
    assert axe_violations(page) == [], page.url


def tap_card(world: World, code: str) -> None:
    key = world.api.settings.uid_hash_key()
    with session_scope(session_factory(world.api.engine)) as session:
        site_id = session.scalar(select(Site.id).where(Site.slug == "holmen"))
        assert site_id is not None
        claimed = card_enrolment.claim_card_code(
            session, site_id, code, card_uid_hash("04C0FFEE123456", key), datetime.now(UTC), uid_key=key
        )
        assert claimed.registered


def test_an_adult_signs_up_and_can_use_their_card_the_same_evening(browser: Browser, world: World) -> None:
    context = phone(browser)
    page = context.new_page()
    page.goto(f"{world.url}/min-nokkel/")
    accessible(page)
    sign_in(page, world, ADULT)

    expect(page).to_have_url(f"{world.url}/min-nokkel/vilkar")
    expect(page.get_by_role("heading", level=1)).to_have_text("Avtale om meråpent")
    accessible(page)
    page.get_by_role("button", name="Godta og fortsett").click()
    expect(page.get_by_role("alert")).to_contain_text("Kryss av")  # not ticked yet
    accessible(page)
    page.get_by_label("Jeg har lest avtalen og godtar den").check()
    page.get_by_role("button", name="Godta og fortsett").click()

    expect(page).to_have_url(f"{world.url}/min-nokkel/kort")
    accessible(page)
    page.get_by_role("button", name="Lag engangskode").click()
    shown = page.locator(".code [aria-hidden=true]")
    expect(shown).to_have_text(re.compile(r"^[0-9]{4} [0-9]{4}$"))
    expect(page.get_by_role("status")).to_have_text("Venter på lånekortet ditt …")
    accessible(page)
    tap_card(world, shown.inner_text().replace(" ", ""))
    expect(page.get_by_role("status")).to_have_text("Lånekortet ditt er registrert.")  # the page's script
    page.get_by_role("link", name="Fortsett").click()

    expect(page).to_have_url(f"{world.url}/min-nokkel/pin")
    accessible(page)
    page.get_by_label("PIN-kode", exact=True).fill("1234")
    page.get_by_label("Skriv PIN-koden en gang til").fill("1234")
    page.get_by_role("button", name="Lagre PIN-koden").click()
    expect(page.get_by_role("alert")).to_contain_text("ikke er en rekke")
    accessible(page)
    page.get_by_label("PIN-kode", exact=True).fill("4826")
    page.get_by_label("Skriv PIN-koden en gang til").fill("4826")
    page.get_by_role("button", name="Lagre PIN-koden").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Du er klar!")
    accessible(page)
    page.get_by_role("link", name="Gå til Min nøkkel").click()
    expect(page).to_have_url(f"{world.url}/min-nokkel/hjem")
    with session_scope(session_factory(world.api.engine)) as session:
        person = session.scalars(select(Person).where(Person.display_name == ADULT.name)).one()
        assert person.enrolled_at is not None and [g.slug for g in person.groups] == ["innbyggere"]
        assert person.birth_date == date.fromisoformat(ADULT.birthdate)
    context.close()


def test_a_sixteen_year_old_is_told_a_guardian_must_consent_in_english(
    browser: Browser, world: World
) -> None:
    context = phone(browser, locale="en-GB")
    page = context.new_page()
    sign_in(page, world, TEEN)
    expect(page.get_by_role("heading", level=1)).to_have_text("Self-service access agreement")
    accessible(page)
    page.get_by_label("I have read the agreement and accept it").check()
    page.get_by_role("button", name="Accept and continue").click()
    expect(page.get_by_role("heading", name="A parent or guardian must give consent")).to_be_visible()
    expect(page.get_by_text("You are under 18.", exact=False)).to_be_visible()
    accessible(page)
    context.close()


def test_a_thirteen_year_old_is_refused_and_a_cancelled_sign_in_explained(
    browser: Browser, world: World
) -> None:
    context = phone(browser)
    page = context.new_page()
    sign_in(page, world, CHILD)
    expect(page.get_by_role("heading", level=1)).to_have_text("Du er for ung til å registrere deg")
    accessible(page)
    with session_scope(session_factory(world.api.engine)) as session:
        assert session.scalars(select(Person).where(Person.display_name == CHILD.name)).first() is None

    context.close()

    context = phone(browser)  # a new phone: no session at the provider yet, so it asks who you are
    page = context.new_page()
    page.goto(f"{world.url}/min-nokkel/logg-inn")
    page.get_by_role("link", name="[ Cancel ]").click()
    expect(page.get_by_role("alert")).to_have_text("Du avbrøt innloggingen. Du kan prøve igjen når du vil.")
    accessible(page)
    context.close()
