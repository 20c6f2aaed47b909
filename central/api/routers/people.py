"""/people: residents, volunteers, association members, staff and caretakers, with their groups."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import Field

from central.api.auth import Admin, Staff
from central.api.deps import AppSettings, DbSession
from central.api.paging import Page, Paging, page_of
from central.api.routers.common import Email, Input, Name, Output, Patch, PathId, Phone, Ref, SearchText
from central.db import utcnow
from central.models import Person, PersonKind
from central.services import enrolment, privacy
from central.services import groups as groups_service
from central.services import people as service

router = APIRouter(prefix="/people", tags=["people"])

BirthYear = Annotated[int, Field(ge=1900, le=2100, description="Only the year is kept (data minimisation).")]


class PersonIn(Input):
    kind: PersonKind
    display_name: Name
    email: Email | None = None
    phone: Phone | None = None
    organisation: Name | None = None
    birth_year: BirthYear | None = None
    guardian_consent: bool = Field(default=False, description="A guardian agreed (needed for minors).")
    blocked: bool = False
    external_ref: Ref | None = Field(default=None, description="The person's id in another system.")


class PersonPatch(Patch):
    nullable = frozenset({"email", "phone", "organisation", "birth_year", "external_ref"})

    kind: PersonKind | None = None
    display_name: Name | None = None
    email: Email | None = None
    phone: Phone | None = None
    organisation: Name | None = None
    birth_year: BirthYear | None = None
    guardian_consent: bool | None = None
    blocked: bool | None = None
    external_ref: Ref | None = None


class PersonOut(Output):
    id: int
    kind: PersonKind
    display_name: str
    email: str | None
    phone: str | None
    organisation: str | None
    birth_year: int | None
    guardian_consent: bool
    guardian_consent_at: datetime | None
    guardian_consent_by: str | None
    blocked: bool
    external_ref: str | None
    created_at: datetime


def person_out(person: Person) -> PersonOut:
    return PersonOut.model_validate(person)


@router.get("", summary="List people")
def list_people(
    session: DbSession,
    _: Staff,
    paging: Paging,
    kind: PersonKind | None = None,
    name: Annotated[SearchText | None, Query(description="Part of the name, any case.")] = None,
    blocked: bool | None = None,
    organisation: Annotated[SearchText | None, Query()] = None,
    external_ref: Annotated[SearchText | None, Query()] = None,
) -> Page[PersonOut]:
    found = service.list_people(
        session,
        limit=paging.limit,
        offset=paging.offset,
        kind=kind,
        name=name,
        blocked=blocked,
        organisation=organisation,
        external_ref=external_ref,
    )
    return page_of(found, person_out)


@router.post("", status_code=201, summary="Add a person")
def create_person(session: DbSession, user: Staff, body: PersonIn, response: Response) -> PersonOut:
    person = service.create_person(session, user.username, body.model_dump())
    response.headers["Location"] = f"/people/{person.id}"
    return person_out(person)


@router.get("/{person_id}", summary="Get a person")
def get_person(session: DbSession, _: Staff, person_id: PathId) -> PersonOut:
    return person_out(service.get_person(session, person_id))


@router.patch("/{person_id}", summary="Change a person (also: block or unblock)")
def update_person(session: DbSession, user: Staff, person_id: PathId, body: PersonPatch) -> PersonOut:
    return person_out(
        service.update_person(session, user.username, person_id, body.model_dump(exclude_unset=True))
    )


@router.delete("/{person_id}", status_code=204, summary="Delete a person and their credentials")
def delete_person(session: DbSession, user: Staff, person_id: PathId) -> None:
    service.delete_person(session, user.username, person_id)


class GroupRef(Output):
    slug: str
    name: str


@router.get("/{person_id}/groups", summary="The access groups a person belongs to")
def person_groups(session: DbSession, _: Staff, person_id: PathId) -> list[GroupRef]:
    return [GroupRef.model_validate(g) for g in groups_service.person_groups(session, person_id)]


@router.post("/{person_id}/guardian-consent", summary="Record that a guardian consented (minors)")
def record_guardian_consent(session: DbSession, user: Staff, person_id: PathId) -> PersonOut:
    """A parent or guardian agreed, in person: the minor's credentials open doors from the next replica delta.
    The time and the API user who recorded it are kept (and audited)."""
    return person_out(enrolment.record_guardian_consent(session, user.username, person_id, utcnow()))


@router.delete("/{person_id}/guardian-consent", summary="Withdraw a guardian's consent")
def withdraw_guardian_consent(session: DbSession, user: Staff, person_id: PathId) -> PersonOut:
    return person_out(enrolment.withdraw_guardian_consent(session, user.username, person_id, utcnow()))


@router.get("/{person_id}/export", summary="Everything central holds about a person (right of access)")
def export_person(session: DbSession, _: Admin, person_id: PathId) -> dict[str, Any]:
    """Person fields, credentials (without hashes), groups, bookings held or co-held, identified access
    events, issued tokens, phone keys, terms acceptances and audit entries about them, as JSON."""
    return privacy.export_person(session, person_id)


class ErasureOut(Output):
    person_id: int
    events_pseudonymised: int


@router.post("/{person_id}/erase", summary="Erase a person on request (right to erasure)")
def erase_person(session: DbSession, settings: AppSettings, user: Admin, person_id: PathId) -> ErasureOut:
    """Deletes the person with their credentials (the sites drop them with the next replica delta) and keeps
    their access events only pseudonymised, for statistics. Audited."""
    events = privacy.erase_person(session, settings, user.username, person_id, utcnow())
    return ErasureOut(person_id=person_id, events_pseudonymised=events)
