"""GET /statistics/{table}.csv as the municipality's reporting uses it: a file Excel in Norway opens as is
(UTF-8 with a BOM, semicolons, a header row), named after its site and period; bad periods and unknown sites
are one-line 422 problems; caretakers and admins only."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from central.db import session_factory, session_scope
from central.models import ApiRole, Booking, BookingStatus, Decision, Event, EventKind, Room, Site
from tests.infra import PostgresCluster, unique_db_name
from tests.test_api_support import Api, make_api, make_site, problem

OSLO = ZoneInfo("Europe/Oslo")
PERIOD = "from=2025-05-05&to=2025-05-12"


def oslo(day: date, clock: str) -> datetime:
    return datetime.combine(day, time.fromisoformat(clock), tzinfo=OSLO).astimezone(UTC)


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ],
)
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Like conftest's `db_url`, once per module: these tests only read, so they share one seeded database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('statistics') / 'test.db'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    name = unique_db_name()
    yield cluster.create_database(name)
    cluster.drop_database(name)


@pytest.fixture(scope="module")
def api(database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with make_api(database, tmp_path_factory.mktemp("data")) as api:
        make_site(api, "holmen")
        make_site(api, "tofte")
        hours = [{"weekday": d, "opens": "07:00", "closes": "22:00", "kind": "meraapent"} for d in range(7)]
        api.ok("PUT", "/sites/holmen/opening-hours", json={"hours": hours})
        seed(api)
        yield api


def seed(api: Api) -> None:
    """Monday 5 May 2025 at Holmen: two visits (one card twice within 30 min), a wrong PIN, a no-show."""
    with session_scope(session_factory(api.engine)) as session:
        holmen = session.scalars(select(Site).where(Site.slug == "holmen")).one()
        entries = [("c1", "18:00", Decision.GRANT, "schedule"), ("c1", "18:20", Decision.GRANT, "schedule")]
        entries += [("c2", "19:00", Decision.GRANT, "schedule"), ("c3", "19:05", Decision.DENY, "wrong_pin")]
        for n, (card, clock, decision, reason) in enumerate(entries):
            at = oslo(date(2025, 5, 5), clock)
            session.add(
                Event(
                    event_id=f"00000000-0000-4000-8000-{n:012d}",
                    site_id=holmen.id,
                    agent_client_id="agent-holmen",
                    agent_seq=n,
                    device_time=at,
                    received_at=at,
                    kind=EventKind.ACCESS,
                    door_slug="hovedinngang",
                    credential_ref=card,
                    decision=decision,
                    reason=reason,
                    data={},
                )
            )
        room = session.scalars(select(Room).where(Room.site_id == holmen.id)).one()
        starts = oslo(date(2025, 5, 6), "18:00")
        session.add(
            Booking(
                room=room, starts_at=starts, ends_at=starts + timedelta(hours=2), status=BookingStatus.NO_SHOW
            )
        )


def rows_of(response: httpx.Response) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.content.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig")), delimiter=";"))


def test_visits_per_day_for_a_site_is_a_file_named_after_the_site_and_period(api: Api) -> None:
    response = api.get(f"/statistics/visits-per-day.csv?site=holmen&{PERIOD}", ApiRole.CARETAKER)

    rows = rows_of(response)
    disposition = response.headers["content-disposition"]
    assert disposition == 'attachment; filename="meraapent-visits-per-day-holmen-2025-05-05-2025-05-11.csv"'
    assert rows[0] == ["Dato", "Sted", "Besøk", "Meråpent", "Betjent", "Utenfor åpningstid"]
    assert rows[1] == ["2025-05-05", "Holmen innbyggertorg", "2", "2", "0", "0"]
    assert [row[0] for row in rows[1:]] == [f"2025-05-{d:02d}" for d in range(5, 12)]
    assert all(row[2] == "0" for row in rows[2:])


@pytest.mark.parametrize(
    ("table", "header", "first_row"),
    [
        ("visits-per-hour", ["Sted", "Time", "Besøk"], ["Holmen innbyggertorg", "00:00", "0"]),
        ("meraapent-staffed", ["Sted", "Åpningstid", "Besøk"], ["Holmen innbyggertorg", "Meråpent", "2"]),
        ("rooms", ["Sted", "Rom", "Bookinger"], ["Holmen innbyggertorg", "Møterom 1", "1"]),
        ("occupancy", ["Sted", "Klokkeslett", "Personer i snitt"], ["Holmen innbyggertorg", "00:00", "0,00"]),
        ("denials", ["Sted", "Årsak", "Årsakskode"], ["Holmen innbyggertorg", "Feil PIN-kode.", "wrong_pin"]),
    ],
)
def test_every_table_has_its_header_and_rows_per_site(
    api: Api, table: str, header: list[str], first_row: list[str]
) -> None:
    rows = rows_of(api.get(f"/statistics/{table}.csv?site=holmen&{PERIOD}", ApiRole.CARETAKER))
    assert rows[0][: len(header)] == header
    assert rows[1][: len(first_row)] == first_row
    assert len({len(row) for row in rows}) == 1  # every row as wide as the header


def test_all_sites_in_english_have_a_row_per_site(api: Api) -> None:
    response = api.get(f"/statistics/meraapent-staffed.csv?{PERIOD}&lang=en")
    rows = rows_of(response)
    assert (
        "meraapent-meraapent-staffed-all-sites-2025-05-05-2025-05-11.csv"
        in response.headers["content-disposition"]
    )
    assert rows[0] == ["Site", "Hours", "Visits", "Open hours", "Visits per open hour"]
    holmen = [row for row in rows[1:] if row[0] == "Holmen innbyggertorg"]
    assert holmen[0] == ["Holmen innbyggertorg", "Meråpent (self-service)", "2", "105,00", "0,02"]
    assert {row[0] for row in rows[1:]} == {"Holmen innbyggertorg", "Tofte innbyggertorg"}


def test_without_a_period_it_is_the_last_30_days_including_today(api: Api) -> None:
    state = api.client.app.state  # type: ignore[attr-defined]
    state.clock = lambda: datetime(2025, 5, 20, 22, 30, tzinfo=UTC)  # 00:30 on 21 May in Oslo
    try:
        response = api.get("/statistics/denials.csv?site=holmen")
    finally:
        del state.clock
    assert rows_of(response)[1:] == [["Holmen innbyggertorg", "Feil PIN-kode.", "wrong_pin", "1"]]
    assert response.headers["content-disposition"].endswith('-holmen-2025-04-22-2025-05-21.csv"')


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("from=2025-05-12&to=2025-05-05", "to (2025-05-05) must be after from (2025-05-12)"),
        ("from=2024-01-01&to=2025-05-05", "the period is 490 days long; at most 366 days at a time"),
        ("from=5.5.2025", "from: '5.5.2025' is not a date like 2025-05-01"),
        ("from=2025-05-01&to=2025-13-01", "to: '2025-13-01' is not a date like 2025-05-01"),
        ("site=nowhere", "site 'nowhere' does not exist"),
    ],
)
def test_bad_periods_and_unknown_sites_are_one_line_problems(api: Api, query: str, detail: str) -> None:
    body = problem(api.get(f"/statistics/visits-per-day.csv?{query}", ApiRole.CARETAKER), 422)
    assert body["detail"].startswith(detail)
    assert "\n" not in body["detail"]


def test_an_unknown_table_is_not_found_and_says_which_there_are(api: Api) -> None:
    body = problem(api.get(f"/statistics/visits.csv?{PERIOD}"), 404)
    assert body["detail"] == (
        "there is no statistics table 'visits'; there are: visits-per-day, visits-per-hour, "
        "meraapent-staffed, rooms, occupancy, denials"
    )


def test_only_caretakers_and_admins_may_download(api: Api) -> None:
    url = f"/statistics/visits-per-day.csv?{PERIOD}"
    problem(api.get(url, role=None), 401)
    assert "may not do this" in problem(api.get(url, ApiRole.BOOKING_INTEGRATION), 403)["detail"]
    assert api.get(url, ApiRole.ADMIN).status_code == 200
