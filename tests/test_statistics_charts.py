"""The server-drawn charts: images with a name and a description, bars and lines in proportion to the
numbers, round axis steps, every text escaped, nothing styled inline (the console's CSP forbids it)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from central.console import charts

SVG = "{http://www.w3.org/2000/svg}"


def parse(markup: str) -> ET.Element:
    return ET.fromstring(markup)


def test_a_bar_chart_is_a_named_image_with_bars_in_proportion() -> None:
    svg = parse(charts.bar_chart("c", "Besøk per dag", "I alt 12.", ["1.5", "2.5", "3.5"], [2, 8, 0]))

    assert svg.get("role") == "img" and svg.get("aria-label") == "Besøk per dag"
    assert svg.findtext(f"{SVG}title") == "Besøk per dag" and svg.findtext(f"{SVG}desc") == "I alt 12."
    assert svg.get("aria-describedby") == "c-desc"
    heights = [float(bar.get("height", "")) for bar in svg.iter(f"{SVG}rect")]
    assert heights[0] * 4 == heights[1] and heights[2] == 0
    assert [bar.findtext(f"{SVG}title") for bar in svg.iter(f"{SVG}rect")] == ["1.5: 2", "2.5: 8", "3.5: 0"]
    ticks = [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "tick"]
    assert ticks == ["0", "2", "4", "6", "8"]
    assert not any(element.get("style") for element in svg.iter())


def test_texts_are_escaped_and_long_labels_shortened() -> None:
    name = '<script>alert("x")</script> & co'
    markup = charts.lying_bar_chart("d", name, name, [name, "x" * 200], [1, 2])
    assert "<script>" not in markup and "&lt;script&gt;" in markup
    svg = parse(markup)
    labels = [t.text or "" for t in svg.iter(f"{SVG}text") if t.get("class") == "label"]
    assert labels[0] == name and len(labels[1]) == charts.MAX_LABEL_CHARS and labels[1].endswith("…")
    widths = [float(bar.get("width", "")) for bar in svg.iter(f"{SVG}rect")]
    assert widths[0] * 2 == widths[1]


def test_a_line_chart_names_each_line_in_its_legend_and_its_labels_skip_to_fit() -> None:
    labels = [f"{h:02d}:{m:02d}" for h in range(16, 24) for m in (0, 15, 30, 45)]
    series = [charts.Series("I snitt", [0.5] * 32, "line-1"), charts.Series("Høyest", [2.0] * 32, "line-2")]
    svg = parse(charts.line_chart("o", "Belegg", "Høyest 2.", labels, series, stride=4))

    lines = [p for p in svg.iter(f"{SVG}polyline")]
    assert [p.get("class") for p in lines] == ["line line-1", "line line-2"]
    assert len(lines[0].get("points", "").split()) == 32
    legend = [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "legend"]
    assert legend == ["I snitt", "Høyest"]
    shown = [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "label"]
    assert shown == [f"{h}:00" for h in range(16, 24)]


def test_axes_end_on_a_round_number_at_or_above_the_highest_value() -> None:
    assert charts.axis(0) == [0.0, 1.0]
    assert charts.axis(1) == [0.0, 1.0]
    assert charts.axis(7) == [0, 2, 4, 6, 8]
    assert charts.axis(123) == [0, 50, 100, 150]
    assert charts.axis(0.9, whole=False) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert charts.label_stride(30) == 3 and charts.label_stride(24) == 2 and charts.label_stride(7) == 1
