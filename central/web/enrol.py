"""The enrolment pages: the agreement, the age rule, the library card, the PIN and "you are ready".

Every page first asks `next_step` and sends the browser on when another step is pending, so no step can be
skipped and an old link still lands in the right place. Forms post and redirect. The card page refreshes its
status by itself (static/enrol_card.js) and works without scripts too (a "check status" button).

The one-time card code is shown from the session cookie (the phone's own code, for its 10 minutes): central
stores only its HMAC, so a page reload could not show it again otherwise.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from central.api.deps import AppSettings, DbSession
from central.models import Person
from central.services import card_enrolment, enrolment, terms
from central.services.card_enrolment import CodeState
from central.services.enrolment import STEP_PATHS, AgeStatus, EnrolmentStep, next_step
from central.services.errors import ServiceError
from central.web.pages import PREFIX, Now, message_page, page_language, render
from central.web.session import Csrf, Resident
from protocol import i18n

router = APIRouter(prefix=PREFIX, include_in_schema=False)
HOME = f"{PREFIX}/hjem"
CARD_CODE = "card_code"  # session key: {"code", "expires_at"} of the code on show
OSLO = ZoneInfo("Europe/Oslo")
NUMBERED = (EnrolmentStep.TERMS, EnrolmentStep.CARD, EnrolmentStep.PIN, EnrolmentStep.DONE)
STATUS_TEXT = {
    CodeState.NONE: "card.status_none",
    CodeState.PENDING: "card.status_pending",
    CodeState.REGISTERED: "card.status_registered",
    CodeState.EXPIRED: "card.status_expired",
}


def _go(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _elsewhere(session: Session, person: Person, now: datetime, here: EnrolmentStep) -> Response | None:
    """A redirect to the pending step (or home) when this page is not the one to show now."""
    step = next_step(session, person, now)
    if step is here:
        return None
    return _go(HOME if step is None else STEP_PATHS[step])


def _page(
    session: Session, person: Person, now: datetime, step: EnrolmentStep | None, **extra: Any
) -> dict[str, Any]:
    """What every enrolment page shows: the person, which step of how many (while enrolling), and the
    guardian notice."""
    needs_consent = enrolment.person_age_status(session, person, now) is AgeStatus.NEEDS_CONSENT
    counted = step in NUMBERED and person.enrolled_at is None
    return {
        "person": person,
        "step_number": NUMBERED.index(step) + 1 if counted else None,
        "step_total": len(NUMBERED),
        "consent_age": enrolment.age_limits(session).consent_below if needs_consent else None,
        **extra,
    }


# --- the agreement ----------------------------------------------------------------------------------------


def _terms_page(
    request: Request, session: Session, person: Person, now: datetime, settings: AppSettings, **extra: Any
) -> Response:
    version = terms.current_version()
    accepted = terms.acceptance(session, person.id, version)
    accepted_on = None if accepted is None else f"{accepted.accepted_at.astimezone(OSLO):%d.%m.%Y}"
    pending = accepted is None
    context = _page(
        session,
        person,
        now,
        EnrolmentStep.TERMS if pending else None,
        version=version,
        terms_html=terms.terms_html(
            version, page_language(request), retention_days=settings.event_retention_days
        ),
        accepted_on=accepted_on,
        new_version=pending and terms.accepted_any(session, person.id),
        error=None,
    )
    context.update(extra)
    status = 422 if context["error"] else 200
    return render(request, "terms_page.html", context, status_code=status)


@router.get("/vilkar", response_class=HTMLResponse)
def terms_page(
    request: Request, person: Resident, session: DbSession, settings: AppSettings, now: Now
) -> Response:
    """The agreement: to accept while that is the pending step, to read again afterwards."""
    return _terms_page(request, session, person, now, settings)


@router.post("/vilkar")
def accept_terms(
    request: Request,
    person: Resident,
    session: DbSession,
    settings: AppSettings,
    now: Now,
    _: Csrf,
    version: Annotated[str, Form(max_length=32)] = "",
    accept: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    elsewhere = _elsewhere(session, person, now, EnrolmentStep.TERMS)
    if elsewhere is not None:
        return elsewhere
    if version != terms.current_version():
        return _terms_page(request, session, person, now, settings, error="terms.changed")
    if accept != "yes":
        return _terms_page(request, session, person, now, settings, error="terms.must_accept")
    terms.accept(session, person.id, version, now)
    return _go(enrolment.pending_step_url(session, person, now) or HOME)


# --- the age rule -----------------------------------------------------------------------------------------


@router.get("/alder", response_class=HTMLResponse)
def age_page(request: Request, person: Resident, session: DbSession, now: Now) -> Response:
    elsewhere = _elsewhere(session, person, now, EnrolmentStep.AGE)
    if elsewhere is not None:
        return elsewhere
    too_young = enrolment.person_age_status(session, person, now) is AgeStatus.TOO_YOUNG
    context = {"person": person, "too_young": too_young, "floor": enrolment.age_limits(session).sign_up_floor}
    return render(request, "enrol_age.html", context, status_code=403)


# --- the library card -------------------------------------------------------------------------------------


def _code_on_show(request: Request, status: card_enrolment.CardCodeStatus) -> str | None:
    """The code this phone was shown, while it is the person's live code; forgotten once it is not."""
    shown = request.session.get(CARD_CODE)
    live = (
        status.state is CodeState.PENDING
        and status.expires_at is not None
        and isinstance(shown, dict)
        and shown.get("expires_at") == status.expires_at.isoformat()
    )
    if not live:
        request.session.pop(CARD_CODE, None)
        return None
    code = shown.get("code") if isinstance(shown, dict) else None
    return code if isinstance(code, str) else None


@router.get("/kort", response_class=HTMLResponse)
def card_page(request: Request, person: Resident, session: DbSession, now: Now) -> Response:
    elsewhere = _elsewhere(session, person, now, EnrolmentStep.CARD)
    if elsewhere is not None:
        return elsewhere
    status = card_enrolment.card_code_status(session, person.id, now)
    code = _code_on_show(request, status)
    context = _page(
        session,
        person,
        now,
        EnrolmentStep.CARD,
        code=code,
        code_groups=None if code is None else f"{code[:4]} {code[4:]}",
        expires=None if status.expires_at is None else f"{status.expires_at.astimezone(OSLO):%H:%M}",
        state=status.state.value,
        status_key=STATUS_TEXT[status.state],
    )
    return render(request, "enrol_card.html", context)


@router.post("/kort/kode")
def new_card_code(
    request: Request, person: Resident, session: DbSession, settings: AppSettings, now: Now, _: Csrf
) -> Response:
    elsewhere = _elsewhere(session, person, now, EnrolmentStep.CARD)
    if elsewhere is not None:
        return elsewhere
    try:
        code, expires_at = card_enrolment.issue_card_code(
            session, person.id, now, uid_key=settings.uid_hash_key()
        )
    except ServiceError:
        return message_page(request, "card.code_failed", status_code=503)
    request.session[CARD_CODE] = {"code": code, "expires_at": expires_at.isoformat()}
    return _go(STEP_PATHS[EnrolmentStep.CARD])


@router.get("/kort/status")
def card_status(request: Request, person: Resident, session: DbSession, now: Now) -> JSONResponse:
    """For the card page's script: has the card been registered yet? (No code in the answer.)"""
    status = card_enrolment.card_code_status(session, person.id, now)
    moved_on = next_step(session, person, now) is not EnrolmentStep.CARD
    state = CodeState.REGISTERED if moved_on else status.state
    lang = page_language(request)
    return JSONResponse(
        {
            "state": state.value,
            "message": i18n.text(STATUS_TEXT[state], lang),
            "next": (enrolment.pending_step_url(session, person, now) or HOME) if moved_on else None,
        }
    )


# --- the PIN ----------------------------------------------------------------------------------------------


def _pin_page(
    request: Request, session: Session, person: Person, now: datetime, error: str | None = None
) -> Response:
    error_key = None if error is None else f"pin.error_{error}"
    context = _page(session, person, now, EnrolmentStep.PIN, error=error, error_key=error_key)
    return render(request, "enrol_pin.html", context, status_code=422 if error else 200)


@router.get("/pin", response_class=HTMLResponse)
def pin_page(request: Request, person: Resident, session: DbSession, now: Now) -> Response:
    elsewhere = _elsewhere(session, person, now, EnrolmentStep.PIN)
    return elsewhere or _pin_page(request, session, person, now)


@router.post("/pin")
def set_pin(
    request: Request,
    person: Resident,
    session: DbSession,
    now: Now,
    _: Csrf,
    pin: Annotated[str, Form(max_length=32)] = "",
    pin_repeat: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    elsewhere = _elsewhere(session, person, now, EnrolmentStep.PIN)
    if elsewhere is not None:
        return elsewhere
    problem = enrolment.pin_problem(
        pin, pin_repeat, birth_date=person.birth_date, birth_year=person.birth_year
    )
    if problem is not None:
        return _pin_page(request, session, person, now, problem.value)
    enrolment.set_pin(session, person, pin)
    session.expire(person, ["credentials"])
    if next_step(session, person, now) is EnrolmentStep.DONE:
        enrolment.complete(session, person, now)
    return _go(STEP_PATHS[EnrolmentStep.DONE])


# --- done -------------------------------------------------------------------------------------------------


@router.get("/ferdig", response_class=HTMLResponse)
def done_page(request: Request, person: Resident, session: DbSession, now: Now) -> Response:
    """The "you are ready" page once enrolled; the finish button if only that is left."""
    step = next_step(session, person, now)
    if step is not None and step is not EnrolmentStep.DONE:
        return _go(STEP_PATHS[step])
    context = _page(session, person, now, EnrolmentStep.DONE, finished=step is None)
    return render(request, "enrol_done.html", context)


@router.post("/ferdig")
def finish(request: Request, person: Resident, session: DbSession, now: Now, _: Csrf) -> Response:
    step = next_step(session, person, now)
    if step is EnrolmentStep.DONE:
        enrolment.complete(session, person, now)
    elif step is not None:
        return _go(STEP_PATHS[step])
    return _go(STEP_PATHS[EnrolmentStep.DONE])
