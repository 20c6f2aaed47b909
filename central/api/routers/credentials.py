"""Credentials: register cards (UID + optional PIN) and phones, block, unblock, revoke, reset PIN, look up.

No response ever carries a card UID, its hash or a PIN hash. A card is looked up with POST (UID in the body),
so UIDs never appear in URLs or access logs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import Field, StringConstraints

from central.api.auth import Staff
from central.api.deps import AppSettings, DbSession
from central.api.paging import Page, Paging, page_of
from central.api.routers.common import (
    MAX_ID,
    PIN_PATTERN,
    UID_PATTERN,
    Input,
    Output,
    Patch,
    PathId,
    UtcDateTime,
)
from central.api.routers.people import PersonOut, person_out
from central.models import Credential, CredentialKind, CredentialStatus
from central.services import credentials as service
from central.services import people as people_service

router = APIRouter(tags=["credentials"])

CardUid = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=47, pattern=UID_PATTERN),
    Field(
        description="The card UID in hex, 4–16 bytes, e.g. 04A1B2C3D4E5F6 (':' '-' ' ' separators allowed)."
    ),
]
Pin = Annotated[str, StringConstraints(pattern=PIN_PATTERN), Field(description="4 to 8 digits.")]
Label = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=120, pattern=r"^[^\x00-\x1f\x7f]*$")
]


class CardIn(Input):
    uid: CardUid
    pin: Pin | None = None
    label: Label = ""
    valid_from: UtcDateTime | None = None
    valid_until: UtcDateTime | None = None


class PhoneIn(Input):
    label: Label = ""
    valid_from: UtcDateTime | None = None
    valid_until: UtcDateTime | None = None


class CredentialPatch(Patch):
    nullable = frozenset({"valid_until"})

    label: Label | None = None
    valid_from: UtcDateTime | None = None
    valid_until: UtcDateTime | None = None


class PinIn(Input):
    pin: Pin | None = Field(description="The new PIN, or null for a card without PIN.")


class LookupIn(Input):
    uid: CardUid


class CredentialOut(Output):
    """A credential without any secret material: no UID, no hashes."""

    id: int
    person_id: int
    kind: CredentialKind
    label: str
    status: CredentialStatus
    has_pin: bool
    failed_pin_count: int
    valid_from: datetime
    valid_until: datetime | None
    created_at: datetime
    revoked_at: datetime | None


class LookupOut(Output):
    credential: CredentialOut
    person: PersonOut


def credential_out(credential: Credential) -> CredentialOut:
    return CredentialOut(
        id=credential.id,
        person_id=credential.person_id,
        kind=credential.kind,
        label=credential.label,
        status=credential.status,
        has_pin=credential.pin_hash is not None,
        failed_pin_count=credential.failed_pin_count,
        valid_from=credential.valid_from,
        valid_until=credential.valid_until,
        created_at=credential.created_at,
        revoked_at=credential.revoked_at,
    )


@router.get("/people/{person_id}/credentials", summary="A person's credentials")
def person_credentials(
    session: DbSession, _: Staff, person_id: PathId, paging: Paging
) -> Page[CredentialOut]:
    people_service.get_person(session, person_id)
    found = service.list_credentials(session, limit=paging.limit, offset=paging.offset, person_id=person_id)
    return page_of(found, credential_out)


@router.post("/people/{person_id}/cards", status_code=201, summary="Register a card (UID and optional PIN)")
def register_card(
    session: DbSession,
    settings: AppSettings,
    user: Staff,
    person_id: PathId,
    body: CardIn,
    response: Response,
) -> CredentialOut:
    credential = service.register_card(
        session,
        user.username,
        person_id,
        uid=body.uid,
        uid_key=settings.uid_hash_key(),
        pin=body.pin,
        label=body.label,
        valid_from=body.valid_from,
        valid_until=body.valid_until,
    )
    response.headers["Location"] = f"/credentials/{credential.id}"
    return credential_out(credential)


@router.post("/people/{person_id}/phones", status_code=201, summary="Register a phone (for signed tokens)")
def register_phone(
    session: DbSession, user: Staff, person_id: PathId, body: PhoneIn, response: Response
) -> CredentialOut:
    credential = service.register_phone(
        session,
        user.username,
        person_id,
        label=body.label,
        valid_from=body.valid_from,
        valid_until=body.valid_until,
    )
    response.headers["Location"] = f"/credentials/{credential.id}"
    return credential_out(credential)


@router.get("/credentials", summary="List credentials")
def list_credentials(
    session: DbSession,
    _: Staff,
    paging: Paging,
    person_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    kind: CredentialKind | None = None,
    status: CredentialStatus | None = None,
) -> Page[CredentialOut]:
    found = service.list_credentials(
        session, limit=paging.limit, offset=paging.offset, person_id=person_id, kind=kind, status=status
    )
    return page_of(found, credential_out)


@router.post("/credentials/lookup", summary="Find the credential of a card by its UID")
def lookup(session: DbSession, settings: AppSettings, _: Staff, body: LookupIn) -> LookupOut:
    credential, person = service.lookup_card(session, body.uid, settings.uid_hash_key())
    return LookupOut(credential=credential_out(credential), person=person_out(person))


@router.get("/credentials/{credential_id}", summary="Get a credential")
def get_credential(session: DbSession, _: Staff, credential_id: PathId) -> CredentialOut:
    return credential_out(service.get_credential(session, credential_id))


@router.patch("/credentials/{credential_id}", summary="Change label or validity")
def update_credential(
    session: DbSession, user: Staff, credential_id: PathId, body: CredentialPatch
) -> CredentialOut:
    changes = body.model_dump(exclude_unset=True)
    return credential_out(service.update_credential(session, user.username, credential_id, changes))


@router.put("/credentials/{credential_id}/pin", summary="Set a new PIN on a card (clears wrong attempts)")
def set_pin(session: DbSession, user: Staff, credential_id: PathId, body: PinIn) -> CredentialOut:
    return credential_out(service.set_pin(session, user.username, credential_id, body.pin))


@router.post("/credentials/{credential_id}/block", summary="Block a credential (reversible)")
def block(session: DbSession, user: Staff, credential_id: PathId) -> CredentialOut:
    return credential_out(service.block(session, user.username, credential_id))


@router.post("/credentials/{credential_id}/unblock", summary="Unblock a credential")
def unblock(session: DbSession, user: Staff, credential_id: PathId) -> CredentialOut:
    return credential_out(service.unblock(session, user.username, credential_id))


@router.post("/credentials/{credential_id}/revoke", summary="Revoke a credential for good (lost or stolen)")
def revoke(session: DbSession, user: Staff, credential_id: PathId) -> CredentialOut:
    return credential_out(service.revoke(session, user.username, credential_id))
