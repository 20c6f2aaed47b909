"""Fjernstyring: a caretaker unlocks a door, locks a site down, releases it, or sets it back to normal.

Each command is a form with a required reason (one line, 1–300 characters) that goes to
central.services.commands.send_command with the caretaker as actor, which audits it and hands it to the
gateway. Lock-down and release touch every door of the site, so their forms need "Jeg bekrefter" ticked.
The form answers with a redirect to the overview and a notice saying what was sent; the agent's result
arrives later as an event and shows there. Without a connected gateway nothing is sent and the page says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from central.api.deps import DbSession
from central.api.deps import Gateway as GatewayDep
from central.console.overview import OVERVIEW, commands_possible
from central.console.pages import PREFIX, message_page, redirect_with_notice, render
from central.console.session import Csrf, Staff
from central.models import Agent, Door, Site, Zone
from central.services.commands import CommandAction, send_command
from central.services.errors import InvalidError, NotFoundError, UnavailableError
from central.services.sites import get_site
from central.web.pages import page_language, translator

router = APIRouter(prefix=PREFIX, include_in_schema=False)

REASON_MAX = 300
ONE_LINE = re.compile(r"^[^\x00-\x1f\x7f]*$")
# The unlock durations offered: seconds, or "normal" (the door is released until the site is set to normal).
DURATIONS = ("5", "300", "1800", "normal")
CONFIRMED = frozenset({"lock_down", "release"})


@dataclass(frozen=True, slots=True)
class CommandForm:
    """What a caretaker typed into one of the forms (as strings, unchecked)."""

    form: str
    reason: str = ""
    door: str = ""
    duration: str = "300"
    confirm: bool = False


@dataclass(frozen=True, slots=True)
class FormError:
    field: str
    key: str


@dataclass(frozen=True, slots=True)
class Checked:
    """A form that passed: the command to send."""

    action: CommandAction
    reason: str
    door: str | None = None
    duration_seconds: int | None = None


def check_form(form: CommandForm, doors: set[str]) -> Checked | FormError:
    """The command a form asks for, or the first thing wrong with it (field and message key)."""
    reason = form.reason.strip()
    if form.form == "unlock":
        if not form.door:
            return FormError("door", "console.command.door_missing")
        if form.door not in doors:
            return FormError("door", "console.command.door_unknown")
        if form.duration not in DURATIONS:
            return FormError("duration", "console.command.duration_invalid")
    if not reason:
        return FormError("reason", "console.command.reason_missing")
    if len(reason) > REASON_MAX:
        return FormError("reason", "console.command.reason_too_long")
    if not ONE_LINE.match(reason):
        return FormError("reason", "console.command.reason_one_line")
    if form.form in CONFIRMED and not form.confirm:
        return FormError("confirm", "console.command.confirm_missing")
    if form.form == "unlock":
        if form.duration == "normal":  # unlocked until normal operation: the door alone is released
            return Checked(CommandAction.RELEASE, reason, door=form.door)
        return Checked(CommandAction.UNLOCK, reason, door=form.door, duration_seconds=int(form.duration))
    return Checked(CommandAction(form.form), reason)


# --- the page ----------------------------------------------------------------------------------------------


def _site_or_none(session: Session, slug: str) -> Site | None:
    try:
        return get_site(session, slug)
    except NotFoundError:
        return None


def _doors(session: Session, site: Site) -> list[tuple[str, str]]:
    rows = session.execute(
        select(Door.slug, Door.name)
        .join(Zone, Zone.id == Door.zone_id)
        .where(Door.site_id == site.id)
        .order_by(Zone.name, Door.name)
    )
    return [(slug, name) for slug, name in rows]


def _agent_online(session: Session, site: Site) -> bool:
    online = session.execute(select(Agent.online).where(Agent.site_id == site.id)).scalar_one_or_none()
    return bool(online)


def _page(
    request: Request,
    session: Session,
    site: Site,
    *,
    form: CommandForm | None = None,
    error: FormError | None = None,
    unavailable: bool = False,
    status_code: int = 200,
) -> Response:
    context: dict[str, Any] = {
        "active": "overview",
        "site": site,
        "doors": _doors(session, site),
        "durations": DURATIONS,
        "agent_online": _agent_online(session, site),
        "commands_possible": commands_possible(request.app.state.gateway),
        "form": form or CommandForm(form=""),
        "error": error,
        "unavailable": unavailable,
        "reason_max": REASON_MAX,
    }
    return render(request, "command.html", context, status_code=status_code)


@router.get("/styring/{site_slug}")
def command_page(
    request: Request,
    session: DbSession,
    staff: Staff,
    site_slug: str,
    door: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    site = _site_or_none(session, site_slug)
    if site is None:
        return message_page(request, "console.error.not_found", status_code=404)
    return _page(request, session, site, form=CommandForm(form="", door=door))


def _send(
    request: Request, session: Session, actor: str, gateway: Any, site_slug: str, form: CommandForm
) -> Response:
    site = _site_or_none(session, site_slug)
    if site is None:
        return message_page(request, "console.error.not_found", status_code=404)
    doors = dict(_doors(session, site))
    checked = check_form(form, set(doors))
    if isinstance(checked, FormError):
        return _page(request, session, site, form=form, error=checked, status_code=422)
    try:
        send_command(
            session,
            actor,
            gateway,
            site.slug,
            action=checked.action,
            reason=checked.reason,
            door=checked.door,
            duration_seconds=checked.duration_seconds,
        )
    except UnavailableError:
        session.rollback()  # the audit entry of a command that was not sent must not stay
        return _page(request, session, site, form=form, unavailable=True, status_code=503)
    except (InvalidError, NotFoundError):  # the door went away between the page and the post
        session.rollback()
        return _page(
            request,
            session,
            site,
            form=form,
            error=FormError("door", "console.command.door_unknown"),
            status_code=422,
        )
    t = translator(page_language(request))
    what = _what(t, form, doors.get(form.door, form.door))
    return redirect_with_notice(
        request, f"{OVERVIEW}#site-{site.slug}", "console.command.sent", site=site.name, what=what
    )


def _what(t: Any, form: CommandForm, door_name: str) -> str:
    """ "lås opp Hovedinngang i 5 minutter", "lås ned alle dører", ... for the notice."""
    if form.form == "unlock":
        if form.duration == "normal":
            return str(t("console.command.what.unlock_until_normal", door=door_name))
        return str(
            t(
                "console.command.what.unlock",
                door=door_name,
                duration=t(f"console.command.duration.{form.duration}"),
            )
        )
    return str(t(f"console.command.what.{form.form}"))


@router.post("/styring/{site_slug}/las-opp")
def unlock(
    request: Request,
    session: DbSession,
    staff: Staff,
    gateway: GatewayDep,
    _: Csrf,
    site_slug: str,
    door: Annotated[str, Form()] = "",
    duration: Annotated[str, Form()] = "300",
    reason: Annotated[str, Form()] = "",
) -> Response:
    form = CommandForm("unlock", reason=reason, door=door, duration=duration)
    return _send(request, session, staff.username, gateway, site_slug, form)


@router.post("/styring/{site_slug}/las-ned")
def lock_down(
    request: Request,
    session: DbSession,
    staff: Staff,
    gateway: GatewayDep,
    _: Csrf,
    site_slug: str,
    reason: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    form = CommandForm("lock_down", reason=reason, confirm=confirm == "yes")
    return _send(request, session, staff.username, gateway, site_slug, form)


@router.post("/styring/{site_slug}/frigi")
def release(
    request: Request,
    session: DbSession,
    staff: Staff,
    gateway: GatewayDep,
    _: Csrf,
    site_slug: str,
    reason: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
) -> Response:
    form = CommandForm("release", reason=reason, confirm=confirm == "yes")
    return _send(request, session, staff.username, gateway, site_slug, form)


@router.post("/styring/{site_slug}/normal")
def normal(
    request: Request,
    session: DbSession,
    staff: Staff,
    gateway: GatewayDep,
    _: Csrf,
    site_slug: str,
    reason: Annotated[str, Form()] = "",
) -> Response:
    form = CommandForm("normal", reason=reason)
    return _send(request, session, staff.username, gateway, site_slug, form)
