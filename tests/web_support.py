"""Helpers for the resident web page tests (no tests here): a signed-in phone without the OIDC round trip.

The browser tests sign in through a real OpenID Connect provider (tests/js); unit tests of single pages use
`sign_in_as`, which writes the same signed session cookie central's SessionMiddleware would.
"""

from __future__ import annotations

import json
import re
from base64 import b64encode
from datetime import UTC, datetime

import httpx
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner
from sqlalchemy.orm import Session

from central.config import Settings
from central.models import Person
from central.services import terms
from central.web.session import CSRF, PERSON_ID, SESSION_COOKIE, SIGNED_IN_AT, session_secret

TEST_CSRF = "csrf-token-for-tests"


def sign_in_as(client: TestClient, settings: Settings, person_id: int) -> None:
    """Make `client` a phone on which `person_id` is signed in (CSRF token `TEST_CSRF`)."""
    data = {PERSON_ID: person_id, SIGNED_IN_AT: datetime.now(UTC).isoformat(), CSRF: TEST_CSRF}
    payload = b64encode(json.dumps(data).encode())
    signed = TimestampSigner(session_secret(settings).hex()).sign(payload).decode()
    client.cookies.set(SESSION_COOKIE, signed, domain="testserver.local")  # where the server's cookie lives


def csrf_of(page: httpx.Response) -> str:
    """The CSRF token a rendered page's forms carry."""
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def finish_enrolment(session: Session, person_id: int, now: datetime) -> None:
    """Make `person_id` a resident who has accepted the current agreement and finished enrolment, as the
    home page expects (the enrolment pages themselves are tested in tests/test_web_enrolment.py)."""
    terms.accept(session, person_id, terms.current_version(), now)
    person = session.get_one(Person, person_id)
    person.enrolled_at = now
    session.flush()
