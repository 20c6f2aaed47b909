"""Phone tokens: issue a signed QR token for a person (shown once), list what was issued, revoke one.

With `holder_key` (the phone's P-256 public key) the token is bound to that phone; the response then also
carries `proof_context`, what the phone signs with each 30-second step (see protocol/holder.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import segno
from fastapi import APIRouter, Path, Query, Response
from pydantic import Field

from central.api.auth import Staff
from central.api.deps import AppSettings, DbSession
from central.api.paging import Page, Paging, page_of
from central.api.routers.common import TOKEN_ID_PATTERN, Id, Input, Output, PathId, Slug, UtcDateTime
from central.models import IssuedToken
from central.services import tokens as service
from central.services.errors import InvalidError
from protocol.keys import b64url_decode, b64url_encode
from protocol.token import MAX_TARGETS

router = APIRouter(tags=["phone tokens"])

MAX_MINUTES = 7 * 24 * 60


class TokenIn(Input):
    site: Slug
    doors: list[Slug] = Field(default=[], max_length=MAX_TARGETS, description="Doors the token opens.")
    zones: list[Slug] = Field(default=[], max_length=MAX_TARGETS, description="Zones whose doors it opens.")
    minutes: int = Field(ge=1, le=MAX_MINUTES, description="How long the token is valid.")
    starts_at: UtcDateTime | None = Field(default=None, description="Valid from (default: now).")
    booking_id: Id | None = Field(default=None, description="The booking the visit is for, if any.")
    holder_key: str | None = Field(
        default=None,
        max_length=100,
        description="Binds the token to a phone: its ECDSA P-256 public key, the raw point WebCrypto exports "
        "(65 bytes, or 33 compressed) as unpadded base64url.",
    )


class IssuedTokenOut(Output):
    token_id: str
    person_id: int
    site: str
    booking_id: int | None
    issued_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


class NewTokenOut(IssuedTokenOut):
    token: str = Field(description="The text for the QR code. Shown only now; it is not stored.")
    not_before: datetime
    doors: list[str]
    zones: list[str]
    qr_svg: str | None = Field(default=None, description="The QR code as an SVG data URI (with ?qr=true).")
    proof_context: str | None = Field(
        default=None,
        description="Phone-bound tokens only: base64url of the bytes the phone signs, with the 30-second "
        "time step appended as 8 bytes big-endian, to show the code at a door.",
    )


def _issued(record: IssuedToken) -> IssuedTokenOut:
    return IssuedTokenOut(
        token_id=record.token_id,
        person_id=record.person_id,
        site=record.site.slug,
        booking_id=record.booking_id,
        issued_at=record.issued_at,
        expires_at=record.expires_at,
        revoked_at=record.revoked_at,
    )


@router.post("/people/{person_id}/tokens", status_code=201, summary="Issue a phone token (QR) for a visit")
def issue_token(
    session: DbSession,
    settings: AppSettings,
    user: Staff,
    person_id: PathId,
    body: TokenIn,
    response: Response,
    qr: Annotated[bool, Query(description="Also return the QR code as SVG.")] = False,
) -> NewTokenOut:
    request = service.TokenRequest(
        site=body.site,
        minutes=body.minutes,
        doors=body.doors,
        zones=body.zones,
        booking_id=body.booking_id,
        starts_at=body.starts_at,
        holder_key=_point(body.holder_key),
    )
    issued = service.issue(
        session, user.username, person_id, request, data_dir=settings.data_dir, issuer=settings.token_issuer
    )
    response.headers["Cache-Control"] = "no-store"
    return NewTokenOut(
        **_issued(issued.record).model_dump(),
        token=issued.text,
        not_before=issued.claims.not_before,
        doors=list(issued.claims.doors),
        zones=list(issued.claims.zones),
        qr_svg=segno.make(issued.text, error="m").svg_data_uri(scale=4) if qr else None,
        proof_context=None if issued.proof_context is None else b64url_encode(issued.proof_context),
    )


def _point(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        return b64url_decode(text)
    except ValueError:
        raise InvalidError("holder_key must be unpadded base64url", "holder_key") from None


@router.get("/people/{person_id}/tokens", summary="Tokens issued to a person, newest first")
def list_tokens(session: DbSession, _: Staff, person_id: PathId, paging: Paging) -> Page[IssuedTokenOut]:
    return page_of(service.list_tokens(session, person_id, limit=paging.limit, offset=paging.offset), _issued)


TokenIdPath = Annotated[str, Path(pattern=TOKEN_ID_PATTERN, description="The token id (hex).")]


@router.get("/tokens/{token_id}", summary="Get an issued token (not its text)")
def get_token(session: DbSession, _: Staff, token_id: TokenIdPath) -> IssuedTokenOut:
    return _issued(service.get_token(session, token_id))


@router.post("/tokens/{token_id}/revoke", summary="Revoke a token before it expires (idempotent)")
def revoke_token(session: DbSession, user: Staff, token_id: TokenIdPath) -> IssuedTokenOut:
    return _issued(service.revoke(session, user.username, token_id))
