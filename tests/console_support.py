"""Helpers for the console tests (no tests here): staff with passwords, and signing in as a browser would.

`make_api` (tests/test_api_support.py) adds one API user per role (test-admin, test-caretaker, ...);
`give_passwords` lets the console ones sign in with `STAFF_PASSWORD`. Signing in goes through the real
sign-in form, so the session cookie is the one central writes.
"""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from playwright.sync_api import Page
from sqlalchemy import Engine

from central.db import session_factory, session_scope
from central.services.staff_sign_in import set_password

STAFF_PASSWORD = "lang nok passord for test"  # a test fixture, not a secret
ADMIN = "test-admin"
CARETAKER = "test-caretaker"


def give_passwords(engine: Engine, *usernames: str, password: str = STAFF_PASSWORD) -> None:
    """Console passwords for `usernames` (default: the test admin and caretaker)."""
    with session_scope(session_factory(engine)) as session:
        for username in usernames or (ADMIN, CARETAKER):
            set_password(session, "test", username, password)


def form_csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def console_sign_in(client: TestClient, username: str = CARETAKER, password: str = STAFF_PASSWORD) -> str:
    """Sign `client` in to the console through the form; returns the session's CSRF token."""
    page = client.get("/drift/logg-inn")
    done = client.post(
        "/drift/logg-inn",
        data={"username": username, "password": password, "csrf": form_csrf(page.text)},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    return form_csrf(client.get("/drift/logg-inn").text)


def browser_sign_in(
    page: Page, base_url: str, username: str = CARETAKER, password: str = STAFF_PASSWORD
) -> None:
    """Sign in in a real browser, as a caretaker types it."""
    page.goto(f"{base_url}/drift/logg-inn")
    page.get_by_label(re.compile("Brukernavn|Username")).fill(username)
    page.get_by_label(re.compile("Passord|Password")).fill(password)
    page.get_by_role("button", name=re.compile("Logg inn|Sign in")).click()
    page.wait_for_url(re.compile(r"/drift/(?!logg-inn)"))
