"""The entry QR code bound to the phone: the phone's key, its ticket, and the code for each time step.

The page's script (static/min-nokkel.js) makes a P-256 key pair with WebCrypto on first use, keeps it in
IndexedDB and registers the public key here (POST /telefon, which also tells this session which key the
phone has). It then asks for a ticket for a site (GET /qr/billett), signs the current 30-second step with
the ticket's proof context, and posts the signature (POST /qr); central checks the proof as a door would
and answers with the QR code as SVG (segno, error level M) and its text. All three are fetch() calls with
the session's CSRF token in a header. Errors are JSON {error, message}: `error` tells the script what to do
(key: register again; ticket: fetch a new ticket), `message` is for the person, in their language.

The token text is never logged or stored; see central/services/phone_keys.py for how it is signed again.
"""

from __future__ import annotations

from typing import Annotated, Any

import segno
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from central.api.deps import AppSettings, DbSession
from central.checkin import checkin_rules
from central.services import phone_keys
from central.services.errors import InvalidError, UnavailableError
from central.services.my_access import my_day
from central.services.phone_keys import PhoneKeyRevokedError, TicketError, TicketRef
from central.web.pages import PREFIX, Now, page_language
from central.web.session import CsrfHeader, Resident
from protocol import i18n
from protocol.keys import b64url_decode, b64url_encode

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PHONE_KEY = "phone_key"  # session: the id of the key this phone registered
TICKET = "qr_ticket"  # session: the TicketRef of this phone's current ticket
QR_ERROR_LEVEL = "m"
QR_SCALE = 4


class PhoneKeyIn(BaseModel):
    public_key: str = Field(max_length=200, description="the raw P-256 point (65 bytes), base64url")


class ProofIn(BaseModel):
    step: int = Field(ge=0)
    signature: str = Field(max_length=200, description="64 bytes r || s, base64url")


def problem(request: Request, status: int, error: str, key: str) -> JSONResponse:
    """A refusal the script acts on (`error`) with a sentence for the person (`message`)."""
    message = i18n.text(key, page_language(request))
    return JSONResponse({"error": error, "message": message}, status_code=status)


def _decode(text: str) -> bytes | None:
    try:
        return b64url_decode(text)
    except ValueError:
        return None


@router.post("/telefon")
def register_phone(
    request: Request, body: PhoneKeyIn, person: Resident, session: DbSession, _: CsrfHeader, now: Now
) -> Any:
    raw = _decode(body.public_key)
    if raw is None:
        return problem(request, 422, "invalid", "qr.key_invalid")
    label = phone_keys.phone_label(request.headers.get("user-agent", ""))
    try:
        key = phone_keys.register_key(session, person.id, raw, label, now)
    except InvalidError:
        return problem(request, 422, "invalid", "qr.key_invalid")
    except PhoneKeyRevokedError:
        return problem(request, 409, "revoked", "qr.key_revoked")
    request.session[PHONE_KEY] = key.id
    return {"key_id": key.id}


@router.get("/qr/billett")
def ticket(
    request: Request,
    person: Resident,
    session: DbSession,
    settings: AppSettings,
    _: CsrfHeader,
    now: Now,
    site: Annotated[str, Query(max_length=64)],
) -> Any:
    key_id = request.session.get(PHONE_KEY)
    if not isinstance(key_id, int):
        return problem(request, 409, "key", "qr.key_missing")
    day = my_day(session, person.id, now, checkin_rules(settings))
    if day.refusal is not None:
        return problem(request, 409, "refused", f"reason.{day.refusal.value}")
    here = day.site(site)
    if here is None or not here.zones:
        return problem(request, 409, "no_access", "qr.no_access")
    try:
        issued = phone_keys.issue_ticket(
            session,
            person.id,
            key_id,
            here.slug,
            here.zones,
            now,
            data_dir=settings.data_dir,
            issuer=settings.token_issuer,
        )
    except PhoneKeyRevokedError:
        return problem(request, 409, "key", "qr.key_missing")
    except UnavailableError:
        return problem(request, 503, "unavailable", "qr.unavailable")
    request.session[TICKET] = issued.ref.to_session()
    return {
        "context": b64url_encode(issued.context),
        "step_seconds": issued.step_seconds,
        "server_time": now.isoformat(),
        "expires_at": issued.expires_at.isoformat(),
    }


def qr_image(text: str) -> tuple[str, int]:
    """The QR code of `text` as an SVG data URI (dark on white, with the quiet zone) and its version."""
    code = segno.make_qr(text, error=QR_ERROR_LEVEL, boost_error=False)
    return code.svg_data_uri(scale=QR_SCALE, dark="#000", light="#fff"), int(code.version)


@router.post("/qr")
def qr_code(
    request: Request,
    body: ProofIn,
    person: Resident,
    session: DbSession,
    settings: AppSettings,
    _: CsrfHeader,
    now: Now,
) -> Any:
    ref = TicketRef.from_session(request.session.get(TICKET))
    signature = _decode(body.signature)
    if ref is None:
        return problem(request, 409, "ticket", "qr.failed")
    if signature is None:
        return problem(request, 422, "invalid", "qr.failed")
    try:
        text = phone_keys.present_ticket(
            session,
            person.id,
            ref,
            body.step,
            signature,
            now,
            data_dir=settings.data_dir,
            issuer=settings.token_issuer,
        )
    except PhoneKeyRevokedError:
        return problem(request, 409, "key", "qr.key_missing")
    except TicketError:
        return problem(request, 409, "ticket", "qr.failed")
    except InvalidError:
        return problem(request, 422, "invalid", "qr.failed")
    except UnavailableError:
        return problem(request, 503, "unavailable", "qr.unavailable")
    image, version = qr_image(text)
    return {"image": image, "text": text, "step": body.step, "version": version}
