"""The statistics page (/drift/statistikk): how the torg are used, at a glance, and CSV for the municipality.

Filters (a site or all sites, first and last day; by default the last 30 days) → central.services.statistics
→ charts (central.console.charts, SVG on the server) each followed by its numbers in a table, and a download
link per table. The page takes the last day *inclusive* ("til og med"), as people read a period; the CSV
links carry the API's [from, to). A wrong field is the page again with the message next to it (422).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from markupsafe import Markup
from sqlalchemy.orm import Session

from central.api.deps import DbSession
from central.console import charts
from central.console.pages import PREFIX, Now, message_page, render
from central.console.session import Staff
from central.services import statistics as st
from central.web.pages import page_language, translator

router = APIRouter(prefix=PREFIX, include_in_schema=False)
STATISTICS = f"{PREFIX}/statistikk"
FIELDS = {"site": "site", "from": "from", "to": "until"}  # the service's field -> the form's

Translate = Callable[..., str]
Query100 = Annotated[str, Query(max_length=100)]


@dataclass(frozen=True)
class Choice:
    """What the form asked for, as typed, and the message key for each field that is wrong."""

    site: str = ""
    first: str = ""
    until: str = ""
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Table:
    caption: str
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    numeric: Sequence[bool]  # per column: right-aligned figures


@dataclass(frozen=True)
class Section:
    id: str
    heading: str
    intro: str
    chart: Markup
    table: Table
    downloads: Sequence[tuple[str, str]]  # (url, link text)


def _day_after(text: str) -> str:
    """The exclusive end for an inclusive last day; text that is no date is passed on for the error."""
    try:
        return (date.fromisoformat(text) + timedelta(days=1)).isoformat()
    except ValueError:
        return text


def read_choice(session: Session, choice: Choice, today: date) -> tuple[Choice, st.Period | None]:
    """The period and site the form asks for, or the choice with its errors (and no period)."""
    try:
        period = st.parse_period(choice.first or None, _day_after(choice.until) or None, today)
        st.select_sites(session, choice.site or None)
    except st.PeriodError as error:
        errors = {FIELDS[error.field or "to"]: f"console.statistics.error.{error.code}"}
        return Choice(choice.site, choice.first, choice.until, errors), None
    return Choice(choice.site, period.first.isoformat(), period.last.isoformat()), period


def _number(lang: str) -> Callable[[float], str]:
    def fmt(value: float) -> str:
        text = f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}".rstrip("0")
        return text.replace(".", ",") if lang == "nb" else text

    return fmt


def _desc(t: Translate, fmt: Callable[[float], str], labels: Sequence[str], values: Sequence[float]) -> str:
    """The chart in one sentence: the total and the highest bar."""
    if not any(values):
        return str(t("console.statistics.desc.empty"))
    top = max(range(len(values)), key=lambda i: values[i])
    return str(
        t("console.statistics.desc.total", total=fmt(sum(values)), label=labels[top], value=fmt(values[top]))
    )


class Builder:
    """Turns the statistics into the page's sections, in the page's language."""

    def __init__(self, stats: st.Statistics, lang: str) -> None:
        self.stats, self.lang = stats, lang
        self.t: Translate = translator(lang)
        self.fmt = _number(lang)
        self.names = {site.slug: site.name for site in stats.sites}
        single = stats.sites[0].slug if len(stats.sites) == 1 else ""
        self.query = {
            "site": single,
            "from": stats.period.first.isoformat(),
            "to": stats.period.end.isoformat(),
        }

    def col(self, key: str) -> str:
        return str(self.t(f"console.statistics.csv.{key}"))

    def download(self, table: st.CsvTable, what: str) -> tuple[str, str]:
        url = f"{STATISTICS}/{table.value}.csv?{urlencode(self.query)}"
        return url, str(self.t("console.statistics.download", what=what))

    def section(
        self, key: str, labels: Sequence[str], values: Sequence[float], table: Table, *, lying: bool = False
    ) -> Section:
        heading = str(self.t(f"console.statistics.{key}.heading"))
        desc = _desc(self.t, self.fmt, labels, values)
        draw = charts.lying_bar_chart if lying else charts.bar_chart
        chart = draw(f"chart-{key}", heading, desc, labels, values, fmt=self.fmt)
        return Section(key, heading, str(self.t(f"console.statistics.{key}.intro")), chart, table, ())

    def counts_table(self, what: str, first: str, rows: Sequence[tuple[str, st.VisitCounts]]) -> Table:
        headers = [first, *(self.col(k) for k in ("visits", "meraapent", "staffed", "outside"))]
        body = [[label, *(str(n) for n in (c.total, c.meraapent, c.staffed, c.outside))] for label, c in rows]
        return Table(str(self.t("console.statistics.table", what=what)), headers, body, [False] + [True] * 4)

    def per_day(self) -> Section:
        days = st.visits_by_day(self.stats.visits)
        labels = [f"{d:%d.%m}" for d, _ in days]
        heading = str(self.t("console.statistics.per_day.heading"))
        table = self.counts_table(heading, self.col("day"), [(f"{d:%d.%m.%Y}", c) for d, c in days])
        section = self.section("per_day", labels, [c.total for _, c in days], table)
        return _with(section, [self.download(st.CsvTable.VISITS_PER_DAY, heading)])

    def per_hour(self) -> Section:
        hours = st.visits_by_hour(self.stats.visits)
        labels = [f"{h:02d}" for h, _ in hours]
        heading = str(self.t("console.statistics.per_hour.heading"))
        table = self.counts_table(heading, self.col("hour"), [(f"{h:02d}:00", c) for h, c in hours])
        section = self.section("per_hour", labels, [c.total for _, c in hours], table)
        return _with(section, [self.download(st.CsvTable.VISITS_PER_HOUR, heading)])

    def per_site(self) -> Section:
        rows = [(self.names[s.site], s.visits) for s in self.stats.visits.per_site]
        heading = str(self.t("console.statistics.per_site.heading"))
        table = self.counts_table(heading, self.col("site"), rows)
        return self.section("per_site", [n for n, _ in rows], [c.total for _, c in rows], table, lying=True)

    def hours(self) -> Section:
        uses = st.hours_by_kind(self.stats.visits)
        labels = [str(self.t(f"console.statistics.kind.{u.kind.value}")) for u in uses]
        heading = str(self.t("console.statistics.hours.heading"))
        body = [
            [label, str(u.visits), _or_dash(u.open_hours, self.fmt), _or_dash(u.per_open_hour, self.fmt)]
            for label, u in zip(labels, uses, strict=True)
        ]
        headers = [self.col(k) for k in ("kind", "visits", "open_hours", "per_open_hour")]
        table = Table(
            str(self.t("console.statistics.table", what=heading)), headers, body, [False, True, True, True]
        )
        section = self.section("hours", labels, [u.visits for u in uses], table)
        return _with(section, [self.download(st.CsvTable.MERAAPENT_STAFFED, heading)])

    def occupancy(self) -> Section:
        rows = _evening(self.stats.visits.occupancy_total)
        labels = [f"{o.at:%H:%M}" for o in rows]
        heading = str(self.t("console.statistics.occupancy.heading"))
        average, peak = self.col("average"), self.col("peak")
        desc = _desc(self.t, self.fmt, labels, [o.peak for o in rows])
        series = [
            charts.Series(average, [o.average for o in rows], "line-1"),
            charts.Series(peak, [o.peak for o in rows], "line-2"),
        ]
        stride = 4 if len(rows) <= 48 else 8
        chart = charts.line_chart(
            "chart-occupancy", heading, desc, labels, series, fmt=self.fmt, stride=stride
        )
        body = [
            [label, self.fmt(round(o.average, 1)), str(o.peak)] for label, o in zip(labels, rows, strict=True)
        ]
        table = Table(
            str(self.t("console.statistics.table", what=heading)),
            [self.col("time"), average, peak],
            body,
            [False, True, True],
        )
        intro = str(self.t("console.statistics.occupancy.intro"))
        return Section(
            "occupancy", heading, intro, chart, table, [self.download(st.CsvTable.OCCUPANCY, heading)]
        )

    def rooms(self) -> Section:
        rooms = self.stats.rooms
        labels = [f"{r.room_name} ({self.names[r.site]})" for r in rooms]
        heading = str(self.t("console.statistics.rooms.heading"))
        headers = [self.col(k) for k in ("room", "bookings", "booked_hours", "checked_in", "used_hours")]
        headers += [self.col(k) for k in ("no_shows", "cancelled", "no_show_share")]
        body = [
            [
                *(
                    label,
                    str(r.bookings),
                    self.fmt(r.booked_hours),
                    str(r.checked_in),
                    self.fmt(r.used_hours),
                ),
                *(str(r.no_shows), str(r.cancelled), _percent(r.no_show_share, self.t, self.fmt)),
            ]
            for label, r in zip(labels, rooms, strict=True)
        ]
        table = Table(
            str(self.t("console.statistics.table", what=heading)), headers, body, [False] + [True] * 7
        )
        section = self.section("rooms", labels, [r.booked_hours for r in rooms], table, lying=True)
        return _with(section, [self.download(st.CsvTable.ROOMS, heading)])

    def denials(self) -> Section:
        rows = st.denials_by_reason(self.stats.denials)
        labels = [d.words for d in rows]
        heading = str(self.t("console.statistics.denials.heading"))
        body = [[d.words, str(d.count)] for d in rows]
        headers = [self.col("reason"), self.col("count")]
        table = Table(str(self.t("console.statistics.table", what=heading)), headers, body, [False, True])
        section = self.section("denials", labels, [d.count for d in rows], table, lying=True)
        return _with(section, [self.download(st.CsvTable.DENIALS, heading)])

    def sections(self) -> list[Section]:
        per_site = [self.per_site()] if len(self.stats.sites) > 1 else []
        return [
            self.per_day(),
            self.per_hour(),
            *per_site,
            self.hours(),
            self.occupancy(),
            self.rooms(),
            self.denials(),
        ]

    def key_figures(self) -> list[tuple[str, str]]:
        """The few numbers a manager reads first."""
        uses = {u.kind: u.visits for u in st.hours_by_kind(self.stats.visits)}
        total = sum(uses.values())
        share = uses[st.VisitKind.MERAAPENT] / total if total else None
        no_shows = sum(r.no_shows for r in self.stats.rooms)
        figures = [
            ("visits", str(total)),
            ("meraapent_share", _percent(share, self.t, self.fmt)),
            ("no_shows", str(no_shows)),
            ("denials", str(sum(d.count for d in self.stats.denials))),
        ]
        return [(str(self.t(f"console.statistics.key.{key}")), value) for key, value in figures]


def _with(section: Section, downloads: Sequence[tuple[str, str]]) -> Section:
    return Section(section.id, section.heading, section.intro, section.chart, section.table, downloads)


def _or_dash(value: float | None, fmt: Callable[[float], str]) -> str:
    return "–" if value is None else fmt(round(value, 2))


def _percent(share: float | None, t: Translate, fmt: Callable[[float], str]) -> str:
    return "–" if share is None else str(t("console.statistics.percent", value=fmt(round(share * 100))))


def _evening(rows: Sequence[st.Occupancy]) -> list[st.Occupancy]:
    """The quarter hours from the first to the last with anyone on site, in whole hours (16-24 if none)."""
    busy = [n for n, o in enumerate(rows) if o.peak]
    if not busy:
        return list(rows[64:])
    start = busy[0] - busy[0] % 4
    end = min(len(rows), busy[-1] - busy[-1] % 4 + 4)
    return list(rows[start:end])


def _page(request: Request, session: Session, choice: Choice, today: date) -> Response:
    choice, period = read_choice(session, choice, today)
    sites = st.select_sites(session, None)
    context = {"active": "statistics", "choice": choice, "sites": sites, "sections": [], "figures": []}
    if period is None:
        return render(request, "statistics.html", context, status_code=422)
    lang = page_language(request)
    stats = st.statistics(session, choice.site or None, period, lang)
    builder = Builder(stats, lang)
    where = stats.sites[0].name if choice.site else str(builder.t("console.statistics.filter.all_sites"))
    context.update(
        sections=builder.sections(),
        figures=builder.key_figures(),
        showing=builder.t(
            "console.statistics.showing",
            site=where,
            first=f"{period.first:%d.%m.%Y}",
            last=f"{period.last:%d.%m.%Y}",
            days=period.days,
        ),
    )
    return render(request, "statistics.html", context)


@router.get("/statistikk")
def statistics_page(
    request: Request,
    session: DbSession,
    staff: Staff,
    now: Now,
    site: Query100 = "",
    first: Annotated[str, Query(alias="from", max_length=100)] = "",
    until: Query100 = "",
) -> Response:
    return _page(request, session, Choice(site.strip(), first.strip(), until.strip()), st.local_today(now))


@router.get("/statistikk/{table}.csv")
def statistics_download(
    request: Request,
    session: DbSession,
    staff: Staff,
    now: Now,
    table: str,
    site: Query100 = "",
    first: Annotated[str, Query(alias="from", max_length=100)] = "",
    to: Query100 = "",
) -> Response:
    """The same files as GET /statistics/{table}.csv, for the signed-in caretaker's browser."""
    if table not in {t.value for t in st.CsvTable}:
        return message_page(request, "console.error.not_found", status_code=404)
    try:
        period = st.parse_period(first or None, to or None, st.local_today(now))
        file = st.csv_export(session, table, site or None, period, page_language(request))
    except st.PeriodError as error:
        return message_page(request, f"console.statistics.error.{error.code}", status_code=422)
    return Response(
        file.content, media_type=file.MEDIA_TYPE, headers={"Content-Disposition": file.disposition}
    )
