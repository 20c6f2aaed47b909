"""The sign-in and enrolment pages as a phone sees them (TestClient), and the admin API around them.

Sign-in runs against the real OpenID Connect provider (tests/js/oidc_provider.mjs) driven over HTTP, the way a
browser follows its redirects; the enrolment pages use `sign_in_as`. Every state-changing form needs the
session's CSRF token, and every page visited out of order sends the phone to the step that is pending.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from sqlalchemy import func, select
from structlog.testing import capture_logs

from central.db import migrate, session_factory, session_scope
from central.models import ApiRole, AuditLog, Credential, Person, PersonKind, Site, TermsAcceptance
from central.replica import build_snapshot
from central.security import card_uid_hash
from central.services import card_enrolment, terms
from tests.oidc_support import RunningProvider, TestAccount, oidc_provider
from tests.test_api_support import Api, make_api, make_site
from tests.web_support import TEST_CSRF, sign_in_as

PUBLIC_URL = "http://testserver"
CALLBACK = f"{PUBLIC_URL}/min-nokkel/innlogget"
TODAY = datetime.now(UTC).date()
ADULT = TestAccount("kari", "Kari Nordmann", f"{TODAY.year - 40}-06-01", "pid")
CHILD = TestAccount("emil", "Emil Nordmann", f"{TODAY.year - 12}-06-01", "birthdate")


@pytest.fixture(scope="module")
def provider() -> Iterator[RunningProvider]:
    with oidc_provider(CALLBACK, [ADULT, CHILD]) as running:
        yield running


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty database file to copy: migrating once per module keeps these tests quick."""
    path = tmp_path_factory.mktemp("template") / "central.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
def api(tmp_path: Path, migrated: Path) -> Iterator[Api]:
    shutil.copyfile(migrated, tmp_path / "central.db")
    with make_api(f"sqlite:///{tmp_path / 'central.db'}", tmp_path) as made:
        make_site(made)
        made.ok(
            "POST",
            "/access-groups",
            json={"slug": "innbyggere", "name": "Innbyggere", "self_enrolment": True},
        )
        made.ok(
            "PUT", "/access-groups/innbyggere/zones", json={"zones": [{"site": "holmen", "zone": "torg"}]}
        )
        yield made


def configure(api: Api, provider: RunningProvider | None = None, issuer: str = "") -> None:
    """Point the running app at a provider (settings are read per request)."""
    api.client.app.state.settings = dataclasses.replace(  # type: ignore[attr-defined]
        api.settings,
        public_url=PUBLIC_URL,
        oidc_issuer=provider.issuer if provider else issuer,
        oidc_client_id=provider.client_id if provider else "x",
        oidc_client_secret=provider.client_secret if provider else "y",
    )


def at_provider(start: httpx.Response, login: str | None) -> str:
    """Follow the provider's pages as a browser would: log in as `login` (None: press Cancel). Returns the
    callback URL the provider sends the browser back to."""
    assert start.status_code == 302, start.text
    url = start.headers["location"]
    with httpx.Client(timeout=10) as browser:
        while not url.startswith(PUBLIC_URL):
            page = browser.get(url)
            if page.status_code == 200:  # the login form
                action = re.search(r'action="([^"]+)"', page.text)
                assert action, page.text
                if login is None:
                    abort = re.search(r'href="([^"]+/abort)"', page.text)
                    assert abort, page.text
                    url = urljoin(url, abort[1])
                    continue
                page = browser.post(
                    urljoin(url, action[1]), data={"prompt": "login", "login": login, "password": "x"}
                )
            assert page.status_code in (302, 303), page.text
            url = urljoin(url, page.headers["location"])
    return url


def callback(api: Api, url: str) -> httpx.Response:
    parts = urlsplit(url)
    answer: httpx.Response = api.client.get(f"{parts.path}?{parts.query}", follow_redirects=False)
    return answer


def person_id(api: Api, name: str) -> int | None:
    with session_scope(session_factory(api.engine)) as session:
        return session.scalar(select(Person.id).where(Person.display_name == name))


def add_person(api: Api, birth: date, name: str = "Kari Nordmann") -> int:
    with session_scope(session_factory(api.engine)) as session:
        person = Person(kind=PersonKind.RESIDENT, display_name=name, birth_date=birth, birth_year=birth.year)
        session.add(person)
        session.flush()
        return person.id


def accept_terms(api: Api) -> httpx.Response:
    form = {"csrf": TEST_CSRF, "version": terms.current_version(), "accept": "yes"}
    answer: httpx.Response = api.client.post("/min-nokkel/vilkar", data=form, follow_redirects=False)
    return answer


def tap_card(api: Api, code: str, uid: str = "04AABBCCDDEEFF") -> None:
    """What the agent reports when someone types *code# and holds a card to the reader."""
    key = api.settings.uid_hash_key()
    with session_scope(session_factory(api.engine)) as session:
        site_id = session.scalar(select(Site.id).where(Site.slug == "holmen"))
        assert site_id is not None
        result = card_enrolment.claim_card_code(
            session, site_id, code, card_uid_hash(uid, key), datetime.now(UTC), uid_key=key
        )
        assert result.registered


def shown_code(page: httpx.Response) -> str:
    found = re.search(r'<span aria-hidden="true">([0-9]{4}) ([0-9]{4})</span>', page.text)
    assert found, "no code on the page"
    return found[1] + found[2]


def redirect_of(response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    return response.headers["location"]


# --- signing in -------------------------------------------------------------------------------------------


def test_sign_in_that_is_not_configured_says_so_instead_of_failing(api: Api) -> None:
    page = api.client.get("/min-nokkel/logg-inn", headers={"Accept-Language": "en"})
    assert page.status_code == 503 and "Sign-in has not been set up yet" in page.text
    assert api.client.get("/min-nokkel/innlogget?code=x&state=y").status_code == 503


def test_an_unreachable_provider_gives_a_page_not_a_traceback(api: Api) -> None:
    configure(api, issuer="http://127.0.0.1:9")
    with capture_logs() as logs:
        page = api.client.get("/min-nokkel/logg-inn")
    assert page.status_code == 502 and "Vi får ikke kontakt med innloggingstjenesten" in page.text
    assert any(entry["event"] == "signin.provider_unreachable" for entry in logs)


def test_an_adult_signs_in_with_id_porten_style_claims_and_is_sent_to_the_agreement(
    api: Api, provider: RunningProvider
) -> None:
    configure(api, provider)
    start = api.client.get("/min-nokkel/logg-inn", follow_redirects=False)
    authorize = httpx.URL(start.headers["location"])
    assert authorize.params["code_challenge_method"] == "S256" and authorize.params["nonce"]
    assert authorize.params["redirect_uri"] == CALLBACK and authorize.params["ui_locales"] == "nb"
    url = at_provider(start, ADULT.login)
    with capture_logs() as logs:
        answer = callback(api, url)
    assert redirect_of(answer) == "/min-nokkel/vilkar"
    code = httpx.URL(url).params["code"]
    assert code not in repr(logs)  # the log says what happened, never with the code or tokens
    with session_scope(session_factory(api.engine)) as session:
        person = session.scalars(select(Person).where(Person.display_name == ADULT.name)).one()
        assert (person.birth_date, person.oidc_issuer) == (
            date.fromisoformat(ADULT.birthdate),
            provider.issuer,
        )
        assert person.oidc_subject == ADULT.login
    assert api.client.get("/min-nokkel/vilkar").status_code == 200  # signed in
    assert callback(api, url).status_code == 400  # the same answer again: its state is used up


def test_a_child_is_refused_and_nothing_about_them_is_kept(api: Api, provider: RunningProvider) -> None:
    configure(api, provider)
    url = at_provider(api.client.get("/min-nokkel/logg-inn", follow_redirects=False), CHILD.login)
    page = callback(api, url)
    assert page.status_code == 403 and "Du er for ung til å registrere deg" in page.text
    assert "minst 15 år" in page.text
    assert person_id(api, CHILD.name) is None
    assert api.client.get("/min-nokkel/vilkar", follow_redirects=False).status_code == 303  # not signed in


def test_a_cancelled_or_forged_sign_in_is_a_page_in_the_residents_language(
    api: Api, provider: RunningProvider
) -> None:
    configure(api, provider)
    english = {"Accept-Language": "en"}
    url = at_provider(api.client.get("/min-nokkel/logg-inn", follow_redirects=False), None)
    assert httpx.URL(url).params["error"] == "access_denied"
    with capture_logs() as logs:
        page = api.client.get(urlsplit(url).path + "?" + urlsplit(url).query, headers=english)
    assert page.status_code == 400 and "You cancelled signing in" in page.text
    assert {"event": "signin.refused", "reason": "access_denied", "log_level": "info"} in logs
    forged = api.client.get("/min-nokkel/innlogget?code=abc&state=not-ours", headers=english)
    assert forged.status_code == 400 and "Signing in did not work" in forged.text
    assert "Traceback" not in forged.text


# --- the agreement ----------------------------------------------------------------------------------------


def test_every_step_visited_too_early_sends_the_phone_to_the_agreement(api: Api) -> None:
    sign_in_as(api.client, api.settings, add_person(api, date(1990, 5, 1)))
    for page in ("/min-nokkel/kort", "/min-nokkel/pin", "/min-nokkel/ferdig", "/min-nokkel/alder"):
        assert redirect_of(api.client.get(page, follow_redirects=False)) == "/min-nokkel/vilkar"
    post = api.client.post("/min-nokkel/pin", data={"csrf": TEST_CSRF, "pin": "4826", "pin_repeat": "4826"})
    assert post.url.path == "/min-nokkel/vilkar"


def test_the_agreement_must_be_ticked_and_needs_the_sessions_csrf_token(api: Api) -> None:
    sign_in_as(api.client, api.settings, add_person(api, date(1990, 5, 1)))
    page = api.client.get("/min-nokkel/vilkar")
    assert "Ikke slipp inn andre" in page.text and 'name="version" value="v1"' in page.text
    forged = api.client.post("/min-nokkel/vilkar", data={"csrf": "guess", "version": "v1", "accept": "yes"})
    assert forged.status_code == 403
    unticked = api.client.post("/min-nokkel/vilkar", data={"csrf": TEST_CSRF, "version": "v1"})
    assert unticked.status_code == 422
    assert 'aria-describedby="accept-error"' in unticked.text and "Kryss av" in unticked.text
    stale = api.client.post("/min-nokkel/vilkar", data={"csrf": TEST_CSRF, "version": "v0", "accept": "yes"})
    assert stale.status_code == 422 and "Avtalen ble endret" in stale.text
    assert redirect_of(accept_terms(api)) == "/min-nokkel/kort"
    again = api.client.get("/min-nokkel/vilkar")  # to read again, without a form
    assert "Du godtok denne avtalen" in again.text and 'name="accept"' not in again.text


def test_a_resident_who_accepted_an_older_version_is_asked_again(api: Api) -> None:
    resident = add_person(api, date(1990, 5, 1))
    with session_scope(session_factory(api.engine)) as session:
        session.add(TermsAcceptance(person_id=resident, version="v0", accepted_at=datetime.now(UTC)))
        session.get(Person, resident).enrolled_at = datetime.now(UTC)  # type: ignore[union-attr]
    sign_in_as(api.client, api.settings, resident)
    assert redirect_of(api.client.get("/min-nokkel/ferdig", follow_redirects=False)) == "/min-nokkel/vilkar"
    assert "Avtalen er endret siden sist" in api.client.get("/min-nokkel/vilkar").text
    assert redirect_of(accept_terms(api)) == "/min-nokkel/hjem"


# --- card, PIN, done --------------------------------------------------------------------------------------


def test_the_card_code_is_shown_until_the_card_is_tapped_and_never_sent_to_scripts(api: Api) -> None:
    resident = add_person(api, date(1990, 5, 1))
    sign_in_as(api.client, api.settings, resident)
    accept_terms(api)
    first = api.client.get("/min-nokkel/kort")
    assert "Lag engangskode" in first.text and "card-status" not in first.text
    assert api.client.post("/min-nokkel/kort/kode", data={"csrf": "guess"}).status_code == 403
    page = api.client.post("/min-nokkel/kort/kode", data={"csrf": TEST_CSRF})
    code = shown_code(page)
    assert 'role="status"' in page.text and "enrol_card.js" in page.text and "Sjekk status" in page.text
    assert shown_code(api.client.get("/min-nokkel/kort")) == code  # a reload shows the same code
    status = api.client.get("/min-nokkel/kort/status").json()
    assert status == {"state": "pending", "message": "Venter på lånekortet ditt …", "next": None}

    tap_card(api, code)
    status = api.client.get("/min-nokkel/kort/status", headers={"Accept-Language": "en"}).json()
    assert status == {
        "state": "registered",
        "message": "Your library card is registered.",
        "next": "/min-nokkel/pin",
    }
    assert code not in repr(status)
    assert redirect_of(api.client.get("/min-nokkel/kort", follow_redirects=False)) == "/min-nokkel/pin"


def test_a_trivial_pin_is_refused_with_the_reason_next_to_the_field(api: Api) -> None:
    resident = add_person(api, date(1990, 5, 1))
    sign_in_as(api.client, api.settings, resident)
    accept_terms(api)
    tap_card(api, shown_code(api.client.post("/min-nokkel/kort/kode", data={"csrf": TEST_CSRF})))
    form = api.client.get("/min-nokkel/pin")
    assert 'inputmode="numeric"' in form.text and 'autocomplete="new-password"' in form.text
    for pin, repeat, says in [
        ("1111", "1111", "ikke for eksempel 1111"),
        ("1234", "1234", "ikke er en rekke"),
        ("1990", "1990", "fødselsåret"),
        ("12", "12", "4 til 6 siffer"),
    ]:
        refused = api.client.post(
            "/min-nokkel/pin", data={"csrf": TEST_CSRF, "pin": pin, "pin_repeat": repeat}
        )
        assert refused.status_code == 422 and says in refused.text, pin
        assert (
            'aria-describedby="pin-hint pin-error"' in refused.text and 'aria-invalid="true"' in refused.text
        )
    mismatch = api.client.post(
        "/min-nokkel/pin", data={"csrf": TEST_CSRF, "pin": "4826", "pin_repeat": "4862"}
    )
    assert 'aria-describedby="pin-repeat-error" aria-invalid="true"' in mismatch.text

    done = api.client.post("/min-nokkel/pin", data={"csrf": TEST_CSRF, "pin": "4826", "pin_repeat": "4826"})
    assert done.status_code == 200 and done.url.path == "/min-nokkel/ferdig" and "Du er klar!" in done.text
    assert "/min-nokkel/hjem" in done.text
    with session_scope(session_factory(api.engine)) as session:
        kinds = session.scalars(select(Credential.kind).where(Credential.person_id == resident)).all()
        assert sorted(k.value for k in kinds) == ["card", "phone"]
        at_door = build_snapshot(session, "holmen").credentials
        assert {c.kind.value for c in at_door} == {"card", "phone"} and all(
            c.groups == ["innbyggere"] for c in at_door
        )
        actors = session.scalars(select(AuditLog.actor).where(AuditLog.action == "complete_enrolment")).all()
        assert actors == [f"resident:{resident}"]
    assert redirect_of(api.client.get("/min-nokkel/pin", follow_redirects=False)) == "/min-nokkel/hjem"


def test_a_sixteen_year_old_is_told_how_a_guardian_gives_consent_and_staff_record_it(api: Api) -> None:
    birth = date(TODAY.year - 16, 1, 1)
    teen = add_person(api, birth, "Sara Nordmann")
    sign_in_as(api.client, api.settings, teen)
    accept_terms(api)
    card = api.client.get("/min-nokkel/kort", headers={"Accept-Language": "en"})
    assert "A parent or guardian must give consent" in card.text and "You are under 18" in card.text
    tap_card(api, shown_code(api.client.post("/min-nokkel/kort/kode", data={"csrf": TEST_CSRF})))
    done = api.client.post("/min-nokkel/pin", data={"csrf": TEST_CSRF, "pin": "4826", "pin_repeat": "4826"})
    assert "En foresatt må gi samtykke" in done.text

    def consent_missing() -> bool:
        with session_scope(session_factory(api.engine)) as session:
            return all(c.consent_missing for c in build_snapshot(session, "holmen").credentials)

    assert consent_missing()
    assert api.post(f"/people/{teen}/guardian-consent", ApiRole.BOOKING_INTEGRATION).status_code == 403
    recorded = api.ok("POST", f"/people/{teen}/guardian-consent", ApiRole.CARETAKER)
    assert recorded["guardian_consent"] and recorded["guardian_consent_by"] == "test-caretaker"
    assert recorded["guardian_consent_at"] is not None
    assert not consent_missing()
    assert "En foresatt må gi samtykke" not in api.client.get("/min-nokkel/ferdig").text
    withdrawn = api.ok("DELETE", f"/people/{teen}/guardian-consent", ApiRole.CARETAKER)
    assert not withdrawn["guardian_consent"] and consent_missing()
    assert api.post("/people/999999/guardian-consent").status_code == 404


def test_a_resident_under_the_limits_sees_the_age_page(api: Api) -> None:
    resident = add_person(api, date(TODAY.year - 15, 1, 1))
    api.ok("PATCH", "/sites/holmen", json={"min_age_with_consent": 16})
    sign_in_as(api.client, api.settings, resident)
    assert redirect_of(accept_terms(api)) == "/min-nokkel/alder"
    page = api.client.get("/min-nokkel/alder")
    assert page.status_code == 403 and "minst 16 år" in page.text
    assert redirect_of(api.client.get("/min-nokkel/kort", follow_redirects=False)) == "/min-nokkel/alder"


# --- the admin API ----------------------------------------------------------------------------------------


def test_sites_have_age_limits_and_groups_a_self_enrolment_flag(api: Api) -> None:
    site = api.ok("GET", "/sites/holmen")
    assert (site["min_age"], site["min_age_with_consent"]) == (18, 15)
    created = api.ok(
        "POST", "/sites", json={"slug": "tofte", "name": "Tofte", "min_age": 16, "min_age_with_consent": 13}
    )
    assert (created["min_age"], created["min_age_with_consent"]) == (16, 13)
    wrong = api.patch("/sites/tofte", json={"min_age_with_consent": 17})
    assert wrong.status_code == 422 and "min_age_with_consent" in wrong.text
    assert api.ok("GET", "/sites/tofte")["min_age_with_consent"] == 13  # nothing changed
    assert api.patch("/sites/tofte", json={"min_age": 101}).status_code == 422
    assert api.ok("GET", "/access-groups/innbyggere")["self_enrolment"] is True
    assert (
        api.ok("PATCH", "/access-groups/innbyggere", json={"self_enrolment": False})["self_enrolment"]
        is False
    )


def test_nothing_is_created_for_a_page_visit_without_sign_in(api: Api) -> None:
    for page in ("/min-nokkel/vilkar", "/min-nokkel/kort", "/min-nokkel/kort/status", "/min-nokkel/ferdig"):
        assert redirect_of(api.client.get(page, follow_redirects=False)) == "/min-nokkel/"
    with session_scope(session_factory(api.engine)) as session:
        assert session.scalar(select(func.count()).select_from(Person)) == 0
