"""The resident pages' frame: language, the catalogue, sessions, CSRF, error pages and security headers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from central.db import session_factory, session_scope
from central.models import Person, PersonKind
from tests.test_api_support import Api, make_api, problem
from tests.web_support import TEST_CSRF, sign_in_as

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with make_api(f"sqlite:///{tmp_path / 'central.db'}", tmp_path) as made:
        yield made


def add_person(api: Api, *, blocked: bool = False) -> int:
    with session_scope(session_factory(api.engine)) as session:
        person = Person(kind=PersonKind.RESIDENT, display_name="Kari Nordmann", blocked=blocked)
        session.add(person)
        session.flush()
        return person.id


def test_the_landing_page_speaks_bokmal_by_default_and_english_when_the_browser_asks(api: Api) -> None:
    page = api.client.get("/min-nokkel/")
    assert page.status_code == 200
    assert '<html lang="nb">' in page.text and "Logg inn" in page.text
    english = api.client.get("/min-nokkel/", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="en">' in english.text and "Sign in" in english.text
    nynorsk = api.client.get("/min-nokkel/", headers={"Accept-Language": "nn-NO"})
    assert '<html lang="nb">' in nynorsk.text


def test_the_language_switch_is_remembered_and_only_redirects_to_our_own_pages(api: Api) -> None:
    switched = api.client.get("/min-nokkel/sprak?lang=en&next=/min-nokkel/", follow_redirects=False)
    assert switched.status_code == 303 and switched.headers["location"] == "/min-nokkel/"
    assert "Sign in" in api.client.get("/min-nokkel/", headers={"Accept-Language": "nb"}).text
    for hostile in ("https://evil.example/", "//evil.example/", "/min-nokkel//evil.example"):
        away = api.client.get(f"/min-nokkel/sprak?lang=nb&next={hostile}", follow_redirects=False)
        assert away.headers["location"] == "/min-nokkel/"
    assert "Logg inn" in api.client.get("/min-nokkel/").text


def test_pages_forbid_inline_scripts_framing_and_caching(api: Api) -> None:
    headers = api.client.get("/min-nokkel/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["cache-control"] == "no-store"
    assert headers["x-content-type-options"] == "nosniff"
    assert api.client.get("/min-nokkel/static/site.css").status_code == 200


def test_an_unknown_page_is_a_page_in_the_residents_language_but_the_api_keeps_problem_json(api: Api) -> None:
    page = api.client.get("/min-nokkel/finnes-ikke", headers={"Accept-Language": "en"})
    assert page.status_code == 404 and "The page does not exist." in page.text
    assert page.headers["content-type"].startswith("text/html")
    problem(api.client.get("/no-such-endpoint"), 404)


def test_a_signed_in_resident_goes_home_and_a_blocked_one_is_signed_out(api: Api) -> None:
    sign_in_as(api.client, api.settings, add_person(api))
    home = api.client.get("/min-nokkel/", follow_redirects=False)
    assert (home.status_code, home.headers["location"]) == (303, "/min-nokkel/hjem")
    sign_in_as(api.client, api.settings, add_person(api, blocked=True))
    assert "Logg inn" in api.client.get("/min-nokkel/").text


def test_signing_out_needs_the_sessions_csrf_token(api: Api) -> None:
    sign_in_as(api.client, api.settings, add_person(api))
    forged = api.client.post("/min-nokkel/logg-ut", data={"csrf": "guess"}, follow_redirects=False)
    assert forged.status_code == 403 and "Økten din er utløpt" in forged.text
    assert api.client.get("/min-nokkel/", follow_redirects=False).status_code == 303  # still signed in
    out = api.client.post("/min-nokkel/logg-ut", data={"csrf": TEST_CSRF}, follow_redirects=False)
    assert out.status_code == 303
    assert "Logg inn" in api.client.get("/min-nokkel/").text
