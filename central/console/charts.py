"""Charts drawn on the server as inline SVG: upright bars, lying bars and lines, no JavaScript.

Pure geometry from numbers to SVG markup, so the page works under the console's strict CSP (nothing from a
CDN, no inline style: colours and fonts come from classes in statistics.css) and tests can read the result.
Every text goes in through Markup.format, which escapes it. Each chart is an image with a name and a
description for screen readers (role="img", <title>, <desc>); the page puts the same numbers in a table
right after it, for them and for copying.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup

WIDTH = 640
TICK_STEPS = 4
MAX_LABELS = 12  # category labels under a chart before some are skipped
MAX_LABEL_CHARS = 80

Format = Callable[[float], str]


def plain(value: float) -> str:
    return f"{value:g}"


def _n(value: float) -> str:
    """A coordinate, short."""
    return f"{value:.1f}".removesuffix(".0")


@dataclass(frozen=True)
class Series:
    """One line of a line chart; `style` picks its look in the css (line-1 solid, line-2 dashed)."""

    name: str
    values: Sequence[float]
    style: str = "line-1"


@dataclass(frozen=True)
class Box:
    """The plotting area inside the chart's view box."""

    left: float
    top: float
    width: float
    height: float

    @property
    def bottom(self) -> float:
        return self.top + self.height

    @property
    def right(self) -> float:
        return self.left + self.width


def axis(maximum: float, *, whole: bool = True, steps: int = TICK_STEPS) -> list[float]:
    """Tick values from 0 to a round number at or above `maximum` (steps of 1, 2, 2.5 or 5 × 10ⁿ); `whole`
    keeps the steps whole, for counts."""
    if maximum <= 0:
        return [0.0, 1.0]
    raw = maximum / steps
    magnitude = 10.0 ** math.floor(math.log10(raw))
    factors = (1.0, 2.0, 5.0, 10.0) if whole else (1.0, 2.0, 2.5, 5.0, 10.0)
    step = next(f * magnitude for f in factors if f * magnitude >= raw - 1e-12)
    if whole:
        step = max(1.0, round(step))
    count = math.ceil(maximum / step - 1e-9)
    return [round(n * step, 10) for n in range(count + 1)]


def label_stride(count: int, room: int = MAX_LABELS) -> int:
    """Show every n-th category label so that at most `room` are drawn."""
    return max(1, math.ceil(count / room))


def _short(text: str, limit: int = MAX_LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _open(chart_id: str, title: str, desc: str, height: float) -> list[Markup]:
    return [
        Markup(
            '<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {w} {h}" role="img" '
            'aria-label="{title}" aria-describedby="{id}-desc" focusable="false">'
        ).format(w=WIDTH, h=_n(height), title=title, id=chart_id),
        Markup('<title id="{id}-title">{title}</title><desc id="{id}-desc">{desc}</desc>').format(
            id=chart_id, title=title, desc=desc
        ),
    ]


def _close(box: Box, parts: list[Markup]) -> Markup:
    baseline = Markup('<line class="axis" x1="{x1}" y1="{y}" x2="{x2}" y2="{y}"/></svg>').format(
        x1=_n(box.left), x2=_n(box.right), y=_n(box.bottom)
    )
    return Markup("").join([*parts, baseline])


def _y_grid(box: Box, ticks: Sequence[float], fmt: Format) -> list[Markup]:
    parts = []
    for tick in ticks:
        y = box.bottom - box.height * tick / ticks[-1]
        parts.append(
            Markup(
                '<line class="grid" x1="{x1}" y1="{y}" x2="{x2}" y2="{y}"/>'
                '<text class="tick" x="{tx}" y="{ty}" text-anchor="end">{text}</text>'
            ).format(
                x1=_n(box.left), x2=_n(box.right), y=_n(y), tx=_n(box.left - 6), ty=_n(y + 4), text=fmt(tick)
            )
        )
    return parts


def _x_label(x: float, y: float, text: str) -> Markup:
    return Markup('<text class="label" x="{x}" y="{y}" text-anchor="middle">{text}</text>').format(
        x=_n(x), y=_n(y), text=text
    )


def bar_chart(
    chart_id: str,
    title: str,
    desc: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    fmt: Format = plain,
    whole: bool = True,
    height: int = 280,
) -> Markup:
    """Upright bars, one per label (days, hours, kinds of hours), over a value axis with gridlines."""
    box = Box(left=52, top=16, width=WIDTH - 64, height=height - 60)
    ticks = axis(max(values, default=0), whole=whole)
    parts = [*_open(chart_id, title, desc, height), *_y_grid(box, ticks, fmt)]
    band = box.width / max(1, len(values))
    stride = label_stride(len(labels))
    for n, (label, value) in enumerate(zip(labels, values, strict=True)):
        bar = box.height * value / ticks[-1]
        x = box.left + n * band
        parts.append(
            Markup(
                '<rect class="bar" x="{x}" y="{y}" width="{w}" height="{h}">'
                "<title>{label}: {value}</title></rect>"
            ).format(
                x=_n(x + band * 0.15),
                y=_n(box.bottom - bar),
                w=_n(band * 0.7),
                h=_n(bar),
                label=label,
                value=fmt(value),
            )
        )
        if n % stride == 0:
            parts.append(_x_label(x + band / 2, box.bottom + 20, label))
    return _close(box, parts)


def lying_bar_chart(
    chart_id: str,
    title: str,
    desc: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    fmt: Format = plain,
) -> Markup:
    """One bar per row with its label above it and its value at its end: room for long labels."""
    row = 44
    height = 16 + row * max(1, len(values))
    box = Box(left=8, top=8, width=WIDTH - 80, height=height - 16)
    top = max(values, default=0) or 1
    parts = _open(chart_id, title, desc, height)
    for n, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = box.top + n * row
        bar = box.width * value / top
        parts.append(
            Markup(
                '<text class="label" x="{x}" y="{ly}">{short}</text>'
                '<rect class="bar" x="{x}" y="{by}" width="{w}" height="16">'
                "<title>{label}: {value}</title></rect>"
                '<text class="value" x="{vx}" y="{vy}">{value}</text>'
            ).format(
                x=_n(box.left),
                ly=_n(y + 14),
                short=_short(label),
                by=_n(y + 20),
                w=_n(bar),
                label=label,
                value=fmt(value),
                vx=_n(box.left + bar + 6),
                vy=_n(y + 33),
            )
        )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def line_chart(
    chart_id: str,
    title: str,
    desc: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    fmt: Format = plain,
    whole: bool = False,
    stride: int | None = None,
    height: int = 300,
) -> Markup:
    """Lines over the same labels (quarter hours), under a legend naming each line beside a sample of it;
    every `stride`-th label is written under the chart."""
    box = Box(left=52, top=40, width=WIDTH - 64, height=height - 84)
    ticks = axis(max((v for s in series for v in s.values), default=0), whole=whole)
    parts = [*_open(chart_id, title, desc, height), *_y_grid(box, ticks, fmt)]
    step = box.width / max(1, len(labels) - 1)
    for n, line in enumerate(series):
        points = " ".join(
            f"{_n(box.left + i * step)},{_n(box.bottom - box.height * v / ticks[-1])}"
            for i, v in enumerate(line.values)
        )
        x = box.left + n * 200
        parts.append(
            Markup(
                '<polyline class="line {style}" fill="none" points="{points}"/>'
                '<line class="line {style}" x1="{x1}" y1="14" x2="{x2}" y2="14"/>'
                '<text class="legend" x="{tx}" y="19">{name}</text>'
            ).format(style=line.style, points=points, x1=_n(x), x2=_n(x + 32), tx=_n(x + 40), name=line.name)
        )
    every = stride or label_stride(len(labels))
    parts += [
        _x_label(box.left + i * step, box.bottom + 20, label)
        for i, label in enumerate(labels)
        if i % every == 0
    ]
    return _close(box, parts)
