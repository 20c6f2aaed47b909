"""Residents and their cards: find a person, block or unblock them with a reason, guardian consent, groups,
register a card (typed, or read by a USB reader that types), block, unblock or revoke a card, set a new PIN.

Caretakers and admins alike (as in the API). The forms call the same services as POST /people,
POST /people/{id}/cards and the other endpoints, with the API's own input models, so a page and an API call
do and accept exactly the same; the services write the audit rows with the staff member's username. Card
UIDs and hashes never reach a page: a card is known by its label and number.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from central.api.deps import AppSettings, DbSession
from central.api.routers.credentials import CardIn, CredentialOut, PhoneIn, PinIn, credential_out
from central.api.routers.people import PersonIn
from central.console.admin_forms import (
    PAGE_SIZE,
    Errors,
    FormError,
    FormText,
    Pager,
    ReasonIn,
    blank_to_none,
    day_end,
    form_error,
    found,
    offset_of,
    page_number,
    parse_day,
    path_id,
    saving,
    search_text,
    validated,
)
from central.console.pages import PREFIX, Now, redirect_with_notice, render
from central.console.session import Csrf, Staff
from central.models import CredentialKind, CredentialStatus, Person, PersonKind
from central.services import credentials, enrolment, people
from central.services import groups as groups_service
from central.services.staff_sign_in import StaffUser

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PEOPLE = f"{PREFIX}/admin/personer"
MAX_CREDENTIALS_SHOWN = 100
MAX_GROUPS_OFFERED = 500


def person_url(person_id: int) -> str:
    return f"{PEOPLE}/{person_id}"


# --- search -----------------------------------------------------------------------------------------------


@router.get("/admin/personer")
def people_page(
    request: Request,
    session: DbSession,
    staff: Staff,
    q: Annotated[str, Query()] = "",
    side: Annotated[str, Query()] = "",
) -> Response:
    name = search_text(q)
    page = page_number(side)
    found_people = people.list_people(session, limit=PAGE_SIZE, offset=offset_of(page), name=name)
    context = {
        "active": "admin",
        "query": name or "",
        "pager_query": urlencode({"q": name}) + "&" if name else "",
        "people": found_people.items,
        "pager": Pager(page, found_people.total),
    }
    return render(request, "admin_people.html", context)


# --- add a person -----------------------------------------------------------------------------------------

_PERSON_FIELDS = ("kind", "display_name", "email", "phone", "organisation", "birth_year")


@router.get("/admin/personer/ny")
def new_person_page(request: Request, staff: Staff) -> Response:
    return _new_person(request, {"kind": PersonKind.RESIDENT.value}, {})


def _new_person(request: Request, values: dict[str, str], errors: Errors, status_code: int = 200) -> Response:
    context = {"active": "admin", "values": values, "errors": errors, "kinds": list(PersonKind)}
    return render(request, "admin_person_new.html", context, status_code=status_code)


@router.post("/admin/personer/ny")
def add_person(
    request: Request,
    session: DbSession,
    staff: Staff,
    _: Csrf,
    kind: FormText = "",
    display_name: FormText = "",
    email: FormText = "",
    phone: FormText = "",
    organisation: FormText = "",
    birth_year: FormText = "",
) -> Response:
    values = dict(
        zip(_PERSON_FIELDS, (kind, display_name, email, phone, organisation, birth_year), strict=True)
    )
    try:
        body = validated(PersonIn, {k: v for k, v in blank_to_none(values).items() if v is not None})
        with saving(session, "display_name"):
            person = people.create_person(session, staff.username, body.model_dump())
    except FormError as error:
        return _new_person(request, values, error.errors, status_code=422)
    return redirect_with_notice(
        request, person_url(person.id), "console.admin.people.added", name=person.display_name
    )


# --- a person's page --------------------------------------------------------------------------------------


def _person_page(
    request: Request,
    session: DbSession,
    staff: StaffUser,
    person_id: int,
    now: datetime,
    errors: Errors | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    with found():
        person = people.get_person(session, person_id)
    cards = credentials.list_credentials(
        session, limit=MAX_CREDENTIALS_SHOWN, offset=0, person_id=person.id
    ).items
    member_of = groups_service.person_groups(session, person.id)
    joined = {g.slug for g in member_of}
    offered = [
        g
        for g in groups_service.list_groups(session, limit=MAX_GROUPS_OFFERED, offset=0).items
        if g.slug not in joined
    ]
    context: dict[str, Any] = {
        "active": "admin",
        "person": person,
        "credentials": [_credential_view(credential_out(c), now) for c in cards],
        "groups": member_of,
        "offered_groups": offered,
        "age_status": enrolment.person_age_status(session, person, now).value,
        "errors": errors or {},
        "values": values or {},
        "is_admin": staff.is_admin,
    }
    return render(request, "admin_person.html", context, status_code=422 if errors else 200)


def _credential_view(credential: CredentialOut, now: datetime) -> dict[str, Any]:
    """What the page shows of a credential (never a UID or hash: CredentialOut has none)."""
    expired = credential.valid_until is not None and credential.valid_until <= now
    waiting = credential.valid_from > now
    return {
        "c": credential,
        "is_card": credential.kind is CredentialKind.CARD,
        "live": credential.status is not CredentialStatus.REVOKED,
        "expired": expired,
        "not_yet_valid": waiting,
    }


@router.get("/admin/personer/{person_id}")
def person_page(request: Request, session: DbSession, staff: Staff, now: Now, person_id: str) -> Response:
    return _person_page(request, session, staff, path_id(person_id), now)


def _load(session: DbSession, person_id: str) -> Person:
    with found():
        return people.get_person(session, path_id(person_id))


@router.post("/admin/personer/{person_id}/sperring")
def block_person(
    request: Request,
    session: DbSession,
    staff: Staff,
    now: Now,
    _: Csrf,
    person_id: str,
    blocked: FormText = "",
    reason: FormText = "",
) -> Response:
    person = _load(session, person_id)
    block = blocked == "yes"
    try:
        why = validated(ReasonIn, {"reason": reason}, {"reason": "block_reason"}).reason
        with saving(session, "block_reason"):
            people.update_person(session, staff.username, person.id, {"blocked": block}, reason=why)
    except FormError as error:
        return _person_page(request, session, staff, person.id, now, error.errors, {"block_reason": reason})
    key = "console.admin.person.blocked_now" if block else "console.admin.person.unblocked_now"
    return redirect_with_notice(request, person_url(person.id), key, name=person.display_name)


@router.post("/admin/personer/{person_id}/samtykke")
def guardian_consent(
    request: Request,
    session: DbSession,
    staff: Staff,
    now: Now,
    _: Csrf,
    person_id: str,
    action: FormText = "",
) -> Response:
    person = _load(session, person_id)
    try:
        with saving(session, "consent"):
            if action == "record":
                enrolment.record_guardian_consent(session, staff.username, person.id, now)
            elif action == "withdraw":
                enrolment.withdraw_guardian_consent(session, staff.username, person.id, now)
            else:
                raise form_error("consent", "console.admin.error.stale_form")
    except FormError as error:
        return _person_page(request, session, staff, person.id, now, error.errors)
    key = (
        "console.admin.person.consent_recorded"
        if action == "record"
        else "console.admin.person.consent_withdrawn"
    )
    return redirect_with_notice(request, person_url(person.id), key)


@router.post("/admin/personer/{person_id}/kort")
def register_card(
    request: Request,
    session: DbSession,
    settings: AppSettings,
    staff: Staff,
    now: Now,
    _: Csrf,
    person_id: str,
    uid: FormText = "",
    label: FormText = "",
    pin: FormText = "",
    pin_repeat: FormText = "",
    valid_until: FormText = "",
) -> Response:
    """Register a card exactly as POST /people/{id}/cards does; the UID is never echoed back or shown."""
    person = _load(session, person_id)
    typed = {"card_label": label, "card_valid_until": valid_until}
    try:
        if pin != pin_repeat:
            raise form_error("card_pin_repeat", "console.admin.error.pins_differ")
        until = parse_day(valid_until, "card_valid_until")
        fields = {
            "uid": "card_uid",
            "pin": "card_pin",
            "label": "card_label",
            "valid_until": "card_valid_until",
        }
        body = validated(
            CardIn,
            {
                "uid": uid,
                "label": label,
                "pin": pin or None,
                "valid_until": day_end(until) if until else None,
            },
            fields,
        )
        with saving(session, "card_uid", fields):
            credentials.register_card(
                session,
                staff.username,
                person.id,
                uid=body.uid,
                uid_key=settings.uid_hash_key(),
                pin=body.pin,
                label=body.label,
                valid_until=body.valid_until,
            )
    except FormError as error:
        return _person_page(request, session, staff, person.id, now, error.errors, typed)
    return redirect_with_notice(request, person_url(person.id), "console.admin.card.registered")


@router.post("/admin/personer/{person_id}/telefon")
def register_phone(
    request: Request,
    session: DbSession,
    staff: Staff,
    now: Now,
    _: Csrf,
    person_id: str,
    label: FormText = "",
    valid_until: FormText = "",
) -> Response:
    person = _load(session, person_id)
    typed = {"phone_label": label, "phone_valid_until": valid_until}
    fields = {"label": "phone_label", "valid_until": "phone_valid_until"}
    try:
        until = parse_day(valid_until, "phone_valid_until")
        body = validated(PhoneIn, {"label": label, "valid_until": day_end(until) if until else None}, fields)
        with saving(session, "phone_label", fields):
            credentials.register_phone(
                session, staff.username, person.id, label=body.label, valid_until=body.valid_until
            )
    except FormError as error:
        return _person_page(request, session, staff, person.id, now, error.errors, typed)
    return redirect_with_notice(request, person_url(person.id), "console.admin.phone.registered")


@router.post("/admin/personer/{person_id}/grupper")
def join_group(
    request: Request,
    session: DbSession,
    staff: Staff,
    now: Now,
    _: Csrf,
    person_id: str,
    group: FormText = "",
) -> Response:
    person = _load(session, person_id)
    try:
        if not group:
            raise form_error("group", "console.admin.error.required")
        with saving(session, "group"):
            added = groups_service.add_member(session, staff.username, group, person.id)
            name = groups_service.get_group(session, group).name
    except FormError as error:
        return _person_page(request, session, staff, person.id, now, error.errors)
    key = "console.admin.person.joined" if added else "console.admin.person.already_in"
    return redirect_with_notice(request, person_url(person.id), key, group=name)


@router.post("/admin/personer/{person_id}/grupper/{group}/fjern")
def leave_group(
    request: Request, session: DbSession, staff: Staff, now: Now, _: Csrf, person_id: str, group: str
) -> Response:
    person = _load(session, person_id)
    try:
        with saving(session, "group"):
            name = groups_service.get_group(session, group).name
            groups_service.remove_member(session, staff.username, group, person.id)
    except FormError as error:
        return _person_page(request, session, staff, person.id, now, error.errors)
    return redirect_with_notice(request, person_url(person.id), "console.admin.person.left", group=name)


# --- a card's or phone's state and PIN --------------------------------------------------------------------

_STATUS_ACTIONS = {
    "block": (credentials.block, "console.admin.card.blocked_now"),
    "unblock": (credentials.unblock, "console.admin.card.unblocked_now"),
    "revoke": (credentials.revoke, "console.admin.card.revoked_now"),
}


@router.post("/admin/legitimasjon/{credential_id}/status")
def credential_status(
    request: Request,
    session: DbSession,
    staff: Staff,
    now: Now,
    _: Csrf,
    credential_id: str,
    action: FormText = "",
    confirm: FormText = "",
) -> Response:
    """Block, unblock or revoke a card or phone; revoking is final, so it asks for a tick first."""
    with found():
        credential = credentials.get_credential(session, path_id(credential_id))
    owner, cid = credential.person_id, credential.id
    try:
        if action not in _STATUS_ACTIONS:
            raise form_error(f"status-{cid}", "console.admin.error.stale_form")
        if action == "revoke" and confirm != "yes":
            raise form_error(f"confirm-{cid}", "console.admin.error.confirm_revoke")
        change, key = _STATUS_ACTIONS[action]
        with saving(session, f"status-{cid}"):
            change(session, staff.username, cid)
    except FormError as error:
        return _person_page(request, session, staff, owner, now, error.errors)
    return redirect_with_notice(request, f"{person_url(owner)}#credential-{cid}", key, number=cid)


@router.post("/admin/legitimasjon/{credential_id}/pin")
def set_pin(
    request: Request,
    session: DbSession,
    staff: Staff,
    now: Now,
    _: Csrf,
    credential_id: str,
    pin: FormText = "",
    repeat: FormText = "",
) -> Response:
    """A new PIN typed twice by the caretaker with the resident present (also clears wrong attempts)."""
    with found():
        credential = credentials.get_credential(session, path_id(credential_id))
    owner, cid = credential.person_id, credential.id
    try:
        body = validated(PinIn, {"pin": pin}, {"pin": f"pin-{cid}"})
        if pin != repeat:
            raise form_error(f"repeat-{cid}", "console.admin.error.pins_differ")
        with saving(session, f"pin-{cid}"):
            credentials.set_pin(session, staff.username, cid, body.pin)
    except FormError as error:
        return _person_page(request, session, staff, owner, now, error.errors)
    return redirect_with_notice(
        request, f"{person_url(owner)}#credential-{cid}", "console.admin.card.pin_set_now", number=cid
    )
