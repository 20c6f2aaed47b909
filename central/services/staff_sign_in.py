"""Caretakers and admins sign in to the console with a username and a password.

The console user is the API user of the same name (one role, one audit name, one place to deactivate them);
a password is optional, so integrations keep only their bearer token. Passwords are argon2id hashes. Five
wrong passwords in a row lock the account for 15 minutes, so a guessing attack gets a few tries an hour;
every refusal reads the same ("wrong username or password") so a stranger cannot learn which usernames exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from central.models import ApiRole, ApiUser
from central.security import hash_password, verify_password
from central.services import audit
from central.services.errors import InvalidError, NotFoundError

CONSOLE_ROLES = frozenset({ApiRole.ADMIN, ApiRole.CARETAKER})
MAX_FAILED_SIGN_INS = 5
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 200


class SignInRefused(Exception):  # noqa: N818 (an outcome the page shows, not a programming error)
    """Why a sign-in did not succeed: `locked_until` is set when the account rests after too many tries."""

    def __init__(self, locked_until: datetime | None = None) -> None:
        super().__init__("wrong username or password")
        self.locked_until = locked_until


@dataclass(frozen=True)
class StaffUser:
    """Who is signed in to the console (what pages and templates need; not the ORM row)."""

    id: int
    username: str
    role: ApiRole

    @property
    def is_admin(self) -> bool:
        return self.role is ApiRole.ADMIN


def check_password(password: str) -> str:
    """A password a caretaker can type and an attacker cannot guess quickly: 12–200 characters, not all one
    character class of digits."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidError(
            f"the password must be {MIN_PASSWORD_LENGTH}–{MAX_PASSWORD_LENGTH} characters long", "password"
        )
    if password.isdigit() or len(set(password)) < 4:
        raise InvalidError("the password is too easy to guess: use words, not digits or repeats", "password")
    return password


def set_password(session: Session, actor: str, username: str, password: str) -> ApiUser:
    """Give `username` a console password (also clears a lockout); audited without the password."""
    user = session.scalars(select(ApiUser).where(ApiUser.username == username)).one_or_none()
    if user is None:
        raise NotFoundError(f"API user '{username}' does not exist")
    if user.role not in CONSOLE_ROLES:
        raise InvalidError(f"role '{user.role.value}' cannot use the console (only admin, caretaker)", "role")
    user.password_hash = hash_password(check_password(password))
    user.failed_sign_ins = 0
    user.locked_until = None
    session.flush()
    audit.record(session, actor, "set_password", "api_user", user.id, {"username": username})
    return user


def sign_in(session: Session, username: str, password: str, now: datetime) -> StaffUser:
    """The staff member behind `username` and `password`, or SignInRefused (the caller commits either way,
    so the failure count survives)."""
    user = session.scalars(select(ApiUser).where(ApiUser.username == username[:100])).one_or_none()
    if user is None or not user.active or user.password_hash is None or user.role not in CONSOLE_ROLES:
        raise SignInRefused
    if user.locked_until is not None and user.locked_until > now:
        raise SignInRefused(user.locked_until)
    if not verify_password(user.password_hash, password[:MAX_PASSWORD_LENGTH]):
        _count_failure(session, user, now)
        raise SignInRefused(user.locked_until if user.locked_until and user.locked_until > now else None)
    user.failed_sign_ins = 0
    user.locked_until = None
    user.last_used_at = now
    audit.record(session, user.username, "sign_in", "api_user", user.id, {})
    return staff_user(user)


def _count_failure(session: Session, user: ApiUser, now: datetime) -> None:
    user.failed_sign_ins += 1
    if user.failed_sign_ins >= MAX_FAILED_SIGN_INS:
        user.failed_sign_ins = 0
        user.locked_until = now + LOCKOUT
        audit.record(session, "console", "lock_out", "api_user", user.id, {"until": user.locked_until})
    session.flush()


def staff_user(user: ApiUser) -> StaffUser:
    return StaffUser(id=user.id, username=user.username, role=ApiRole(user.role))


def active_staff(session: Session, user_id: int) -> StaffUser | None:
    """The signed-in staff member if they may still use the console (deactivated or demoted: no)."""
    user = session.get(ApiUser, user_id)
    if user is None or not user.active or user.password_hash is None or user.role not in CONSOLE_ROLES:
        return None
    return staff_user(user)
