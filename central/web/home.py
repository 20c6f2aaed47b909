"""The signed-in resident's home page: today's access and bookings, Open buttons and booking actions.

Every action is a plain form that posts and redirects back (post/redirect/get), the outcome carried to the
next page view as a one-time notice in the session; the page's script (static/min-nokkel.js) may post the
Open form itself and show the answer without a reload. The entry QR code bound to this phone is served by
central/web/qr.py. Logic lives in central/services/ (my_access, checkin, booking_changes, opening); this
module only maps their answers to texts from the catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from central.api.deps import AppSettings, DbSession
from central.checkin import checkin_rules
from central.models import Booking, Person
from central.replica import LIVE_BOOKING_STATUSES
from central.services import booking_changes, opening
from central.services.checkin import CheckinError, check_in
from central.services.enrolment import pending_step_url
from central.services.errors import ConflictError, InvalidError, NotFoundError, UnavailableError
from central.services.my_access import MyDay, SiteToday, my_day
from central.web.pages import PREFIX, Now, page_language, render
from central.web.session import Csrf, Resident
from protocol import i18n

router = APIRouter(prefix=PREFIX, include_in_schema=False)
HOME = f"{PREFIX}/hjem"
OPEN_WAIT_S = 4.0  # how long the Open button waits for the door's answer before saying there was none
EXTEND_MINUTES = (30, 60, 120)
FLASH = "flash"
TONES = frozenset({"ok", "warn", "bad"})


# --- the clock and the one-time notice ----------------------------------------------------------------------


def flash(request: Request, key: str, tone: str = "ok", **values: str) -> None:
    """A notice (catalogue key) for the next page view, e.g. after a form posted and redirected."""
    request.session[FLASH] = {"key": key, "tone": tone, "values": values}


@dataclass(frozen=True)
class Notice:
    key: str
    tone: str
    values: dict[str, str]


def take_flash(request: Request) -> Notice | None:
    """The pending notice, once; None if there is none or it is not one of ours."""
    notice = request.session.pop(FLASH, None)
    if not isinstance(notice, dict) or notice.get("key") not in i18n.catalogue():
        return None
    values = notice.get("values")
    if notice.get("tone") not in TONES or not isinstance(values, dict):
        return None
    return Notice(notice["key"], notice["tone"], {str(k): str(v) for k, v in values.items()})


def back_home(request: Request, key: str, tone: str = "ok", **values: str) -> Response:
    flash(request, key, tone, **values)
    return RedirectResponse(HOME, status_code=303)


# --- enrolment hand-off -------------------------------------------------------------------------------------


def unfinished_enrolment(session: Session, person: Person, now: datetime) -> str | None:
    """Where a resident whose enrolment is not finished goes instead (terms, age, card, PIN), else None."""
    return pending_step_url(session, person, now)


# --- the page -----------------------------------------------------------------------------------------------


def clock(moment: datetime, tz: ZoneInfo) -> str:
    """A time as the torg's clock shows it (HH:MM, local)."""
    return f"{moment.astimezone(tz):%H:%M}"


def until(moment: datetime, tz: ZoneInfo) -> str:
    """The end of an interval: the midnight that ends a day reads 24:00, not 00:00."""
    local = moment.astimezone(tz)
    return "24:00" if local.time() == time(0) else f"{local:%H:%M}"


def spans_text(site: SiteToday) -> str:
    """When the person may come to the site today, e.g. "07:00–10:00, 17:00–22:00"."""
    return ", ".join(f"{clock(s, site.tz)}–{until(e, site.tz)}" for s, e in site.intervals)


def qr_sites(day: MyDay) -> list[SiteToday]:
    """The sites a QR code can be made for today (a token needs at least one zone)."""
    return [site for site in day.sites if site.zones]


@router.get("/hjem", response_class=HTMLResponse)
def home(request: Request, person: Resident, session: DbSession, settings: AppSettings, now: Now) -> Response:
    step = unfinished_enrolment(session, person, now)
    if step is not None:
        return RedirectResponse(step, status_code=303)
    day = my_day(session, person.id, now, checkin_rules(settings))
    context = {
        "person": person,
        "day": day,
        "qr_sites": qr_sites(day),
        "notice": take_flash(request),
        "clock": lambda moment, site: clock(moment, site.tz),
        "spans_text": spans_text,
        "extend_minutes": EXTEND_MINUTES,
    }
    return render(request, "home.html", context)


# --- Open ---------------------------------------------------------------------------------------------------


def open_and_wait(
    request: Request, session: Session, person: Person, site: str, door: str, now: datetime
) -> tuple[str, str]:
    """Ask the door to open for the person and wait for its answer: (catalogue key, tone)."""
    try:
        command = opening.open_door_for(session, request.app.state.gateway, person.id, site, door, now)
    except opening.OpenRefusedError as exc:
        return f"reason.{exc.reason.value}", "bad"
    except NotFoundError:
        return "open.unknown_door", "bad"
    except UnavailableError:
        session.rollback()  # nothing was sent: no audit row claiming it was
        return "open.unavailable", "warn"
    session.commit()  # the command is on its way; its audit row must not hold the database while we wait
    outcome = opening.wait_for_outcome(request.app.state.session_factory, command.command_id, OPEN_WAIT_S)
    if outcome is None:
        return "open.no_answer", "warn"
    if outcome.opened:
        return "open.opened", "ok"
    if outcome.reason is not None:
        return f"reason.{outcome.reason.value}", "bad"
    return "open.refused", "bad"


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


@router.post("/hjem/apne")
def open_door(
    request: Request,
    person: Resident,
    session: DbSession,
    _: Csrf,
    now: Now,
    site: Annotated[str, Form(max_length=64)],
    door: Annotated[str, Form(max_length=64)],
) -> Response:
    key, tone = open_and_wait(request, session, person, site, door, now)
    if wants_json(request):
        text = i18n.text(key, page_language(request))
        return JSONResponse({"opened": tone == "ok", "tone": tone, "message": text})
    return back_home(request, key, tone)


# --- bookings -----------------------------------------------------------------------------------------------


def own_booking(session: Session, person: Person, booking_id: int) -> Booking | None:
    """The booking if this person is its holder: only the holder may extend or end it from here."""
    booking = session.get(Booking, booking_id)
    return booking if booking is not None and booking.holder_id == person.id else None


def _not_holder(session: Session, person: Person, booking_id: int) -> str:
    """Why this person may not extend or end the booking: it is not theirs, or they only share it."""
    return "booking.holder_only" if shared_booking(session, person, booking_id) else "booking.not_yours"


def shared_booking(session: Session, person: Person, booking_id: int) -> Booking | None:
    """The booking if this person is its holder or a co-holder: either may check it in from here."""
    booking = session.get(Booking, booking_id)
    if booking is None:
        return None
    named = booking.holder_id == person.id or any(p.id == person.id for p in booking.co_holders)
    return booking if named else None


def _local(booking: Booking, moment: datetime) -> str:
    return clock(moment, ZoneInfo(booking.room.site.timezone))


def _actor(person: Person) -> str:
    return f"resident:{person.id}"


@router.post("/hjem/booking/{booking_id}/sjekk-inn")
def check_in_booking(
    request: Request,
    booking_id: int,
    person: Resident,
    session: DbSession,
    settings: AppSettings,
    _: Csrf,
    now: Now,
) -> Response:
    booking = shared_booking(session, person, booking_id)
    if booking is None:
        return back_home(request, "booking.not_yours", "bad")
    rules = checkin_rules(settings)
    try:
        check_in(session, _actor(person), booking.id, now, via="phone", rules=rules)
    except CheckinError as exc:
        opens, closes = booking.starts_at - rules.opens_before, booking.starts_at + rules.closes_after
        values = {"opens": _local(booking, opens), "closes": _local(booking, closes)}
        return back_home(request, f"booking.refusal.{exc.reason.value}", "bad", **values)
    return back_home(request, "booking.checked_in")


def _live_now(booking: Booking, now: datetime) -> bool:
    return booking.status in LIVE_BOOKING_STATUSES and booking.ends_at > now


@router.post("/hjem/booking/{booking_id}/forleng")
def extend(
    request: Request,
    booking_id: int,
    person: Resident,
    session: DbSession,
    _: Csrf,
    now: Now,
    minutes: Annotated[int, Form()] = 0,
) -> Response:
    booking = own_booking(session, person, booking_id)
    if booking is None:
        return back_home(request, _not_holder(session, person, booking_id), "bad")
    if not _live_now(booking, now):
        return back_home(request, "booking.not_live", "bad")
    if minutes not in EXTEND_MINUTES:
        return back_home(request, "booking.extend_invalid", "bad")
    new_end = booking.ends_at + timedelta(minutes=minutes)
    try:
        booking_changes.extend_booking(session, _actor(person), booking.id, new_end, now)
    except InvalidError:
        return back_home(request, "booking.extend_invalid", "bad")
    except ConflictError:
        return back_home(request, "booking.extend_taken", "bad")
    return back_home(request, "booking.extended", ends=_local(booking, new_end))


@router.post("/hjem/booking/{booking_id}/avslutt")
def end_now(
    request: Request, booking_id: int, person: Resident, session: DbSession, _: Csrf, now: Now
) -> Response:
    booking = own_booking(session, person, booking_id)
    if booking is None:
        return back_home(request, _not_holder(session, person, booking_id), "bad")
    if not _live_now(booking, now):
        return back_home(request, "booking.not_live", "bad")
    try:
        booking_changes.end_booking_early(session, _actor(person), booking.id, now)
    except ConflictError:
        return back_home(request, "booking.end_not_started", "bad")
    return back_home(request, "booking.ended")
