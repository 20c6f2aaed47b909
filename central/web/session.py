"""Who is signed in on this phone, and the CSRF token their forms carry.

The cookie is signed, not encrypted, so it holds nothing the phone may not see: the person's id, when they
signed in, a random CSRF token, and short-lived things that belong to this phone anyway (Authlib's state,
nonce and PKCE verifier between the two sign-in requests, the card code shown while it is valid, a one-time
notice, the QR ticket's references). Every state-changing form posts the token back (`require_csrf`), so
another site cannot make a signed-in phone open a door. Signing in replaces the whole session (no fixation).
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Form, Request
from sqlalchemy.orm import Session

from central.api.deps import DbSession
from central.config import Settings, read_or_create_secret
from central.models import Person

SESSION_COOKIE = "meraapent_session"
SESSION_MAX_AGE = 12 * 3600  # a phone stays signed in for an evening, not for ever
SESSION_KEY_FILE = "web-session.key"
PERSON_ID = "person_id"
SIGNED_IN_AT = "signed_in_at"
CSRF = "csrf"


class SignInRequired(Exception):  # noqa: N818 (a redirect, not an error the resident sees as such)
    """The page needs a signed-in person; the handler sends the browser to the landing page."""


class CsrfRejected(Exception):  # noqa: N818
    """A form came without this session's token (stale page, or another site posting)."""


def session_secret(settings: Settings) -> bytes:
    return read_or_create_secret(settings.secrets_dir / SESSION_KEY_FILE, 32)


def sign_in(request: Request, person_id: int, now: datetime) -> None:
    request.session.clear()
    request.session.update(
        {PERSON_ID: person_id, SIGNED_IN_AT: now.isoformat(), CSRF: secrets.token_urlsafe(24)}
    )


def sign_out(request: Request) -> None:
    request.session.clear()


def signed_in_person_id(request: Request) -> int | None:
    value = request.session.get(PERSON_ID)
    return value if isinstance(value, int) else None


def csrf_token(request: Request) -> str:
    """This session's CSRF token (made on first use, so anonymous forms have one too)."""
    token = request.session.get(CSRF)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(24)
        request.session[CSRF] = token
    return token


def require_csrf(request: Request, csrf: Annotated[str, Form()] = "") -> None:
    expected = request.session.get(CSRF)
    if not isinstance(expected, str) or not secrets.compare_digest(expected, csrf):
        raise CsrfRejected


def require_csrf_header(request: Request) -> None:
    """For the page's own fetch() calls: the token in an X-CSRF-Token header instead of a form field."""
    expected = request.session.get(CSRF)
    given = request.headers.get("x-csrf-token", "")
    if not isinstance(expected, str) or not secrets.compare_digest(expected, given):
        raise CsrfRejected


def current_person(request: Request, session: DbSession) -> Person:
    """The signed-in person, or SignInRequired (also when they were deleted or blocked meanwhile)."""
    person_id = signed_in_person_id(request)
    person = session.get(Person, person_id) if person_id is not None else None
    if person is None or person.blocked:
        sign_out(request)
        raise SignInRequired
    return person


Resident = Annotated[Person, Depends(current_person)]
Csrf = Annotated[None, Depends(require_csrf)]
CsrfHeader = Annotated[None, Depends(require_csrf_header)]
__all__ = ["Csrf", "CsrfHeader", "Resident", "Session"]
