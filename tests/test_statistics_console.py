"""The statistics page without a browser: signed-in staff only, wrong fields told next to them (422), the
console's own CSV links (same files as the API) for a browser session without an API token."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.console_support import console_sign_in, give_passwords
from tests.test_api_support import Api, make_api, make_site
from tests.test_statistics_csv import seed


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with make_api(f"sqlite:///{tmp_path / 'central.db'}", tmp_path) as made:
        make_site(made, "holmen")
        make_site(made, "tofte")
        seed(made)
        give_passwords(made.engine)
        made.client.app.state.clock = lambda: datetime(2025, 5, 20, 10, tzinfo=UTC)  # type: ignore[attr-defined]
        yield made


def test_without_signing_in_the_page_and_its_files_send_the_browser_to_sign_in(api: Api) -> None:
    for url in ("/drift/statistikk", "/drift/statistikk/denials.csv"):
        response = api.client.get(url, follow_redirects=False)
        assert response.status_code == 303
        assert response.headers["location"] == f"/drift/logg-inn?next={url}"


def test_the_page_shows_the_last_30_days_with_a_chart_and_table_per_section_and_download_links(
    api: Api,
) -> None:
    console_sign_in(api.client)
    page = api.client.get("/drift/statistikk")

    assert page.status_code == 200
    assert "Alle steder, 21.04.2025 til og med 20.05.2025 (30 dager)" in page.text
    assert page.text.count('role="img"') == page.text.count("<table>") == 7
    assert (
        'href="/drift/statistikk/visits-per-day.csv?site=&amp;from=2025-04-21&amp;to=2025-05-21"' in page.text
    )
    assert " style=" not in page.text and "<script" not in page.text
    english = api.client.get("/drift/statistikk?site=holmen", headers={"Accept-Language": "en"})
    assert "Holmen innbyggertorg, 21.04.2025 up to and including 20.05.2025 (30 days)" in english.text
    assert english.text.count('role="img"') == 6  # no "per site" chart for one site


def test_wrong_fields_are_told_next_to_them(api: Api) -> None:
    console_sign_in(api.client)
    cases = {
        "from=2025-05-10&until=2025-05-01": ("until", "Slutten av perioden kan ikke være før starten."),
        "from=2024-01-01&until=2025-05-01": ("until", "Velg en periode på høyst 366 dager."),
        "from=10.05.2025": ("from", "Skriv datoen som ÅÅÅÅ-MM-DD, for eksempel 2025-05-01."),
        "site=nowhere": ("site", "Det stedet finnes ikke. Velg et sted fra lista."),
    }
    for query, (field, message) in cases.items():
        page = api.client.get(f"/drift/statistikk?{query}")
        assert page.status_code == 422, query
        assert f'<p class="error-text" id="{field}-error">{message}</p>' in page.text
        assert f'aria-invalid="true" aria-describedby="{field}-error"' in page.text
        assert "<svg" not in page.text


def test_the_console_downloads_the_same_files_as_the_api(api: Api) -> None:
    console_sign_in(api.client)
    query = "site=holmen&from=2025-05-05&to=2025-05-12"
    from_console = api.client.get(f"/drift/statistikk/rooms.csv?{query}")
    from_api = api.get(f"/statistics/rooms.csv?{query}")
    assert from_console.status_code == 200
    assert from_console.content == from_api.content
    assert from_console.headers["content-disposition"] == from_api.headers["content-disposition"]
    bad = api.client.get("/drift/statistikk/rooms.csv?from=2025-05-12&to=2025-05-05")
    assert bad.status_code == 422 and "Slutten av perioden kan ikke være før starten." in bad.text
    assert api.client.get("/drift/statistikk/everything.csv").status_code == 404
