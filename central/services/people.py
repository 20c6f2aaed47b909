"""People: residents, volunteers, association members, staff and caretakers.

A person's kind, block, birth year and consent travel with their credentials to the site agents, so every
change here is logged for the replica (central.services.replica_log) in the same transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.models import Person, PersonKind
from central.services import audit, replica_log
from central.services.errors import ConflictError, NotFoundError
from central.services.query import Slice, changed_fields, like_pattern, paginate

# Contact details are personal data: the audit trail records that they changed, not their values.
_PRIVATE = frozenset({"email", "phone", "display_name", "birth_year"})


def _audit_detail(values: dict[str, Any]) -> dict[str, Any]:
    return {k: ("(changed)" if k in _PRIVATE else v) for k, v in values.items()}


def get_person(session: Session, person_id: int) -> Person:
    person = session.get(Person, person_id)
    if person is None:
        raise NotFoundError(f"person {person_id} does not exist")
    return person


def list_people(
    session: Session,
    *,
    limit: int,
    offset: int,
    kind: PersonKind | None = None,
    name: str | None = None,
    blocked: bool | None = None,
    organisation: str | None = None,
    external_ref: str | None = None,
) -> Slice[Person]:
    stmt = select(Person)
    if kind is not None:
        stmt = stmt.where(Person.kind == kind)
    if name is not None:
        stmt = stmt.where(Person.display_name.ilike(like_pattern(name), escape="\\"))
    if blocked is not None:
        stmt = stmt.where(Person.blocked == blocked)
    if organisation is not None:
        stmt = stmt.where(Person.organisation.ilike(like_pattern(organisation), escape="\\"))
    if external_ref is not None:
        stmt = stmt.where(Person.external_ref == external_ref)
    return paginate(session, stmt.order_by(Person.display_name, Person.id), limit, offset)


def _check_external_ref(session: Session, ref: str | None, person_id: int | None) -> None:
    if ref is None:
        return
    clash = session.scalars(select(Person.id).where(Person.external_ref == ref)).one_or_none()
    if clash is not None and clash != person_id:
        raise ConflictError(f"external reference '{ref}' already belongs to person {clash}")


def create_person(session: Session, actor: str, fields: dict[str, Any]) -> Person:
    _check_external_ref(session, fields.get("external_ref"), None)
    person = Person(**fields)
    session.add(person)
    session.flush()
    audit.record(session, actor, "create", "person", person.id, _audit_detail(fields))
    return person


def update_person(
    session: Session, actor: str, person_id: int, changes: dict[str, Any], *, reason: str = ""
) -> Person:
    """Change a person; `reason` (why a caretaker blocked or unblocked them) goes into the audit row."""
    person = get_person(session, person_id)
    if "external_ref" in changes:
        _check_external_ref(session, changes["external_ref"], person.id)
    diff = changed_fields(person, changes)
    if diff:
        session.flush()
        replica_log.record_person_change(session, person.id)
        detail = _audit_detail(diff) | ({"reason": reason} if reason else {})
        audit.record(session, actor, "update", "person", person.id, detail)
    return person


def delete_person(session: Session, actor: str, person_id: int) -> None:
    """Delete a person and their credentials; the agents drop the credentials with the next delta."""
    person = get_person(session, person_id)
    replica_log.record_person_change(session, person.id)
    session.delete(person)
    session.flush()
    audit.record(session, actor, "delete", "person", person_id)
