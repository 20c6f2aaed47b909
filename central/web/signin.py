"""Signing in with OpenID Connect (ID-porten in production; the provider is configuration).

GET /min-nokkel/logg-inn sends the phone to the provider: authorization code flow with PKCE, state and nonce,
which Authlib keeps in the signed session cookie until the answer comes back. GET /min-nokkel/innlogget takes
that answer, fetches the tokens server to server, checks the ID token (signature, issuer, audience, nonce) and
signs the person in; who that is, and whether they may sign up at all, is decided by
central.services.enrolment.sign_up. Every failure is a page in the resident's language; the log says why in a
word, never with a token, a code or an identity number.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import structlog
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.starlette_client import OAuth, OAuthError
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from joserfc.errors import JoseError
from starlette.concurrency import run_in_threadpool

from central.api.deps import DbSession
from central.config import Settings
from central.models import Person
from central.services import enrolment
from central.services.enrolment import IdentityError, SignUpOutcome
from central.web.pages import PREFIX, message_page, page_language, render, request_now
from central.web.session import sign_in, signed_in_person_id

log = structlog.get_logger(__name__)

router = APIRouter(prefix=PREFIX, include_in_schema=False)
HOME = f"{PREFIX}/hjem"
CALLBACK = "/innlogget"
PROVIDER = "resident"
SCOPE = "openid profile"
PROVIDER_TIMEOUT_S = 10.0


def callback_url(settings: Settings) -> str:
    return f"{settings.public_url.rstrip('/')}{PREFIX}{CALLBACK}"


def oidc_client(request: Request) -> Any | None:
    """The app's Authlib client for the configured provider (made once per app), or None when sign-in is not
    configured. Authlib loads and caches the provider's discovery document on first use."""
    settings: Settings = request.app.state.settings
    if not settings.oidc_issuer:
        return None
    client = getattr(request.app.state, "oidc_client", None)
    if client is None:
        client = OAuth().register(
            name=PROVIDER,
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            server_metadata_url=f"{settings.oidc_issuer.rstrip('/')}/.well-known/openid-configuration",
            client_kwargs={"scope": SCOPE, "code_challenge_method": "S256", "timeout": PROVIDER_TIMEOUT_S},
        )
        request.app.state.oidc_client = client
    return client


@router.get("/logg-inn", response_class=HTMLResponse)
async def log_in(request: Request) -> Response:
    """To the provider (already signed in: to the landing page, which sends the resident home)."""
    if signed_in_person_id(request) is not None:
        return RedirectResponse(f"{PREFIX}/", status_code=303)
    client = oidc_client(request)
    if client is None:
        log.warning("signin.not_configured")
        return message_page(request, "signin.not_configured", status_code=503)
    try:
        redirect: Response = await client.authorize_redirect(
            request, callback_url(request.app.state.settings), ui_locales=page_language(request)
        )
    except (httpx.HTTPError, ValueError) as exc:  # the discovery document could not be fetched or read
        log.warning("signin.provider_unreachable", error=type(exc).__name__)
        return message_page(request, "signin.unavailable", status_code=502)
    return redirect


@router.get(CALLBACK, response_class=HTMLResponse)
async def signed_in(request: Request, session: DbSession) -> Response:
    client = oidc_client(request)
    if client is None:
        return message_page(request, "signin.not_configured", status_code=503)
    try:
        token = await client.authorize_access_token(request)
        claims = await _claims(client, token)
    except OAuthError as exc:  # the provider said no (access_denied: the person cancelled), or a bad state
        reason = str(exc.error or "oauth_error")[:64]
        log.info("signin.refused", reason=reason)
        key = "signin.cancelled" if exc.error == "access_denied" else "signin.failed"
        return message_page(request, key, status_code=400)
    except httpx.HTTPError as exc:
        log.warning("signin.provider_unreachable", error=type(exc).__name__)
        return message_page(request, "signin.unavailable", status_code=502)
    except (AuthlibBaseError, JoseError, IdentityError, ValueError, KeyError) as exc:
        log.warning("signin.answer_rejected", error=type(exc).__name__)
        return message_page(request, "signin.failed", status_code=400)
    return await _sign_in(request, session, client, claims)


async def _claims(client: Any, token: dict[str, Any]) -> dict[str, Any]:
    """The ID token's claims, completed from the userinfo endpoint when they lack the birth date or name
    (many providers put only `sub` in the ID token). The ID token's values win."""
    claims = dict(token.get("userinfo") or {})
    has_birth = "pid" in claims or "birthdate" in claims
    has_name = "name" in claims or "given_name" in claims
    metadata = await client.load_server_metadata()
    if (has_birth and has_name) or not metadata.get("userinfo_endpoint"):
        return claims
    extra = dict(await client.userinfo(token=token))
    if extra.get("sub") != claims.get("sub"):
        raise IdentityError("userinfo names another subject than the ID token")
    return {**extra, **claims}


async def _sign_in(request: Request, session: DbSession, client: Any, claims: dict[str, Any]) -> Response:
    settings: Settings = request.app.state.settings
    issuer = str(client.server_metadata.get("issuer") or settings.oidc_issuer)
    now = request_now(request)
    try:
        identity = enrolment.identity_from_claims(issuer, claims, enrolment.local_today(now))
    except IdentityError as exc:
        log.warning("signin.answer_rejected", error=str(exc))
        return message_page(request, "signin.failed", status_code=400)
    result = await run_in_threadpool(enrolment.sign_up, session, identity, now)
    log.info("signin.result", outcome=result.outcome.value, person=result.person_id)
    if result.outcome is SignUpOutcome.TOO_YOUNG:
        floor = (await run_in_threadpool(enrolment.age_limits, session)).sign_up_floor
        return render(request, "enrol_age.html", {"too_young": True, "floor": floor}, status_code=403)
    if result.outcome is SignUpOutcome.AGE_UNKNOWN:
        return render(request, "enrol_age.html", {"too_young": False}, status_code=403)
    if result.outcome is SignUpOutcome.BLOCKED or result.person_id is None:
        return message_page(request, "signin.blocked", status_code=403)
    sign_in(request, result.person_id, now)
    target = await run_in_threadpool(_after_sign_in, session, result.person_id, now)
    return RedirectResponse(target, status_code=303)


def _after_sign_in(session: DbSession, person_id: int, now: datetime) -> str:
    person = session.get(Person, person_id)
    pending = None if person is None else enrolment.pending_step_url(session, person, now)
    return pending or HOME
