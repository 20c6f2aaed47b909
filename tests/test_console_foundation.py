"""The console's frame: staff sign-in with lockout, sessions, CSRF, roles, language, error pages, the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from central.cli import app as central_cli
from central.db import session_factory, session_scope
from central.models import ApiUser, AuditLog
from central.services.errors import InvalidError
from central.services.staff_sign_in import MAX_FAILED_SIGN_INS, set_password
from tests.console_support import ADMIN, CARETAKER, STAFF_PASSWORD, console_sign_in, form_csrf, give_passwords
from tests.test_api_support import Api, make_api


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with make_api(f"sqlite:///{tmp_path / 'central.db'}", tmp_path) as made:
        give_passwords(made.engine)
        yield made


@pytest.fixture
def clock(api: Api) -> Clock:
    clock = Clock()
    api.client.app.state.clock = clock  # type: ignore[attr-defined]
    return clock


def try_sign_in(api: Api, username: str, password: str) -> tuple[int, str]:
    page = api.client.get("/drift/logg-inn")
    done = api.client.post(
        "/drift/logg-inn",
        data={"username": username, "password": password, "csrf": form_csrf(page.text), "next": "/drift/meg"},
        follow_redirects=False,
    )
    return done.status_code, done.headers.get("location", done.text)


def test_a_page_without_a_signed_in_caretaker_sends_the_browser_to_sign_in_and_back(api: Api) -> None:
    away = api.client.get("/drift/meg", follow_redirects=False)
    assert away.status_code == 303 and away.headers["location"] == "/drift/logg-inn?next=/drift/meg"
    assert try_sign_in(api, CARETAKER, STAFF_PASSWORD) == (303, "/drift/meg")
    page = api.client.get("/drift/meg")
    assert page.status_code == 200 and "Innlogget som test-caretaker (vaktmester)" in page.text


def test_a_wrong_password_and_an_unknown_user_read_the_same(api: Api) -> None:
    wrong = try_sign_in(api, CARETAKER, "not the password at all")
    unknown = try_sign_in(api, "nobody-here", STAFF_PASSWORD)
    assert wrong[0] == unknown[0] == 401
    assert "Feil brukernavn eller passord." in wrong[1] and "Feil brukernavn eller passord." in unknown[1]


def test_five_wrong_passwords_rest_the_account_for_fifteen_minutes(api: Api, clock: Clock) -> None:
    for _ in range(MAX_FAILED_SIGN_INS):
        assert try_sign_in(api, CARETAKER, "guessing guessing")[0] == 401
    status, body = try_sign_in(api, CARETAKER, STAFF_PASSWORD)
    assert status == 401 and "Prøv igjen etter kl. 20:15" in body
    clock.now += timedelta(minutes=15, seconds=1)
    assert try_sign_in(api, CARETAKER, STAFF_PASSWORD) == (303, "/drift/meg")
    with session_scope(session_factory(api.engine)) as session:
        actions = session.scalars(select(AuditLog.action).where(AuditLog.entity == "api_user")).all()
    assert "lock_out" in actions and "sign_in" in actions


def test_only_admins_and_caretakers_get_a_password_and_the_integration_cannot_sign_in(api: Api) -> None:
    with session_scope(session_factory(api.engine)) as session, pytest.raises(InvalidError):
        set_password(session, "test", "test-booking-integration", STAFF_PASSWORD)
    with session_scope(session_factory(api.engine)) as session, pytest.raises(InvalidError, match="12"):
        set_password(session, "test", CARETAKER, "short")
    with session_scope(session_factory(api.engine)) as session, pytest.raises(InvalidError, match="guess"):
        set_password(session, "test", CARETAKER, "111111111111111")


def test_a_deactivated_caretaker_is_signed_out_at_the_next_click(api: Api) -> None:
    console_sign_in(api.client)
    assert api.client.get("/drift/meg").status_code == 200
    with session_scope(session_factory(api.engine)) as session:
        session.scalars(select(ApiUser).where(ApiUser.username == CARETAKER)).one().active = False
    away = api.client.get("/drift/meg", follow_redirects=False)
    assert away.status_code == 303 and away.headers["location"].startswith("/drift/logg-inn")


def test_a_form_without_the_session_token_is_refused_with_a_page(api: Api) -> None:
    console_sign_in(api.client)
    refused = api.client.post("/drift/logg-ut", data={"csrf": "forged"})
    assert refused.status_code == 403 and "Siden var for gammel" in refused.text
    assert api.client.get("/drift/meg").status_code == 200  # still signed in


def test_signing_out_ends_the_session(api: Api) -> None:
    csrf = console_sign_in(api.client)
    done = api.client.post("/drift/logg-ut", data={"csrf": csrf})
    assert done.status_code == 200 and "Du er logget ut." in done.text
    assert api.client.get("/drift/meg", follow_redirects=False).status_code == 303


def test_changing_the_own_password_needs_the_current_one_and_a_strong_new_one(api: Api) -> None:
    csrf = console_sign_in(api.client)
    new = "ny og lang frase"
    form = {"csrf": csrf, "current": "wrong wrong wrong", "new": new, "repeat": new}
    assert "Det nåværende passordet er feil." in api.client.post("/drift/meg/passord", data=form).text
    form |= {"current": STAFF_PASSWORD, "repeat": "something else"}
    assert "ikke like" in api.client.post("/drift/meg/passord", data=form).text
    form |= {"new": "kort", "repeat": "kort"}
    assert "for kort" in api.client.post("/drift/meg/passord", data=form).text
    form |= {"new": "ny og lang frase", "repeat": "ny og lang frase"}
    assert "Passordet er byttet." in api.client.post("/drift/meg/passord", data=form).text
    api.client.cookies.clear()
    assert try_sign_in(api, CARETAKER, "ny og lang frase")[0] == 303


def test_pages_speak_english_on_request_and_unknown_pages_are_pages(api: Api) -> None:
    english = api.client.get("/drift/logg-inn", headers={"Accept-Language": "en"})
    assert '<html lang="en">' in english.text and "Username" in english.text
    missing = api.client.get("/drift/finnes-ikke")
    assert missing.status_code == 404 and "Vi fant ikke siden." in missing.text
    assert missing.headers["content-type"].startswith("text/html")
    headers = api.client.get("/drift/logg-inn").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["cache-control"] == "no-store"


def test_after_sign_in_only_console_pages_are_followed(api: Api) -> None:
    for hostile in ("https://evil.example/", "//evil.example/", "/drift//evil.example", "/min-nokkel/"):
        api.client.cookies.clear()
        csrf = form_csrf(api.client.get("/drift/logg-inn").text)
        done = api.client.post(
            "/drift/logg-inn",
            data={"username": ADMIN, "password": STAFF_PASSWORD, "next": hostile, "csrf": csrf},
            follow_redirects=False,
        )
        assert done.headers["location"] == "/drift/oversikt"


def test_the_cli_sets_a_password_from_stdin_and_says_why_it_cannot(api: Api) -> None:
    runner = CliRunner()
    args = ["--db", api.settings.db_url, "--data-dir", str(api.settings.data_dir)]
    ok = runner.invoke(central_cli, ["staff-password", ADMIN, *args], input="en helt annen frase\n")
    assert ok.exit_code == 0 and "console password set for test-admin" in ok.output
    assert try_sign_in(api, ADMIN, "en helt annen frase")[0] == 303
    bad = runner.invoke(central_cli, ["staff-password", "nobody", *args], input="en helt annen frase\n")
    assert bad.exit_code == 1 and "API user 'nobody' does not exist" in bad.output
    weak = runner.invoke(central_cli, ["staff-password", ADMIN, *args], input="1234\n")
    assert weak.exit_code == 1 and "12–200 characters" in weak.output


def test_a_form_field_far_too_long_gets_a_page_not_json(api: Api) -> None:
    page = api.client.get("/drift/logg-inn")
    refused = api.client.post(
        "/drift/logg-inn", data={"username": "x" * 5000, "password": "y", "csrf": form_csrf(page.text)}
    )
    assert refused.status_code == 422 and refused.headers["content-type"].startswith("text/html")
    assert "for langt eller i feil form" in refused.text
    assert api.get("/people?limit=100000").headers["content-type"].startswith("application/problem+json")
