"""Inline SVG charts of a load run (``ksentinel.report.charts``) and the load section of the report."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from ksentinel.load.runner import LoadOutcome
from ksentinel.load.verdict import SloRow
from ksentinel.report.charts import (
    MAX_DRAWN,
    MAX_SERIES,
    PALETTE,
    downsample,
    line_chart,
    load_charts,
    nice_step,
)
from ksentinel.report.load_section import load_section
from ksentinel.report.render import _ENV

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert("x")</script>&\x00'


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def series_paths(root: ET.Element) -> list[ET.Element]:
    return [p for p in root.iter(f"{SVG}path") if p.get("class") == "series"]


def coordinates(d: str) -> list[tuple[str, float, float]]:
    return [(c, float(x), float(y)) for c, x, y in re.findall(r"([ML])(-?[\d.]+),(-?[\d.]+)", d)]


def tick_labels(root: ET.Element, anchor: str) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text") if t.get("text-anchor") == anchor]


def test_line_chart_is_accessible_scalable_xml_with_one_path_per_series() -> None:
    series = {
        "browse.list": [(1.0, 3.0), (2.0, 13.7), (3.0, 8.0)],
        "upload.chunk": [(1.0, 1.0), (2.0, 2.0), (3.0, 2.5)],
        "session.start": [(1.0, 0.5), (2.0, 0.5), (3.0, 0.5)],
    }
    svg = line_chart(series, title="Throughput per step", y_label="requests per second", unit="req/s")
    root = parse(svg)
    assert root.get("role") == "img" and root.get("class") == "chart"
    assert root.get("viewBox", "").startswith("0 0 800 ")
    assert root.find(f"{SVG}title") is not None and root.find(f"{SVG}title").text == "Throughput per step"  # type: ignore[union-attr]
    paths = series_paths(root)
    assert [p.find(f"{SVG}title").text for p in paths] == list(series)  # type: ignore[union-attr]
    colours = {p.get("stroke") for p in paths}
    assert len(colours) == 3 and colours <= set(PALETTE)
    legend = [g for g in root.iter(f"{SVG}g") if g.get("class") == "legend"]
    assert [g.find(f"{SVG}text").text for g in legend] == list(series)  # type: ignore[union-attr]
    # rounded y ticks from 0 past the maximum (13.7 -> 0, 5, 10, 15), time ticks on the x axis
    assert tick_labels(root, "end") == ["0", "5", "10", "15"]
    assert tick_labels(root, "middle")[:4] == ["0s", "1s", "2s", "3s"]
    # each series is drawn where its values are: a higher value is higher up (smaller y)
    points = coordinates(paths[0].get("d", ""))
    assert len(points) == 3 and points[1][2] < points[0][2] < points[2][2] + 100
    assert "<script" not in svg.lower()


def test_nice_steps_are_one_two_or_five_times_a_power_of_ten() -> None:
    assert nice_step(13.7) == 5
    assert nice_step(0.9) == 0.2
    assert nice_step(1000) == 200
    assert nice_step(48) == 10


def test_hostile_series_names_titles_and_units_are_escaped() -> None:
    svg = line_chart({HOSTILE: [(0.0, 1.0), (1.0, 2.0)]}, title=HOSTILE, y_label="<b>", unit='"ms"')
    root = parse(svg)  # well-formed: nothing broke out of its text or attribute
    assert "<script" not in svg and "<b>" not in svg and "\x00" not in svg
    assert not list(root.iter(f"{SVG}script"))
    texts = [t.text or "" for t in root.iter()]
    assert any('<script>alert("x")</script>&' in t for t in texts), "shown as text, escaped in the source"
    html = _ENV.get_template("_load.html.j2").render(load=section_dict(charts=[svg], step=HOSTILE))
    assert "<script" not in html and "&lt;script&gt;" in html


def test_none_values_leave_gaps_and_a_lone_point_is_a_dot() -> None:
    series: dict[str, list[tuple[float, float | None]]] = {
        "gappy": [(0.0, 1.0), (1.0, 2.0), (2.0, None), (3.0, 4.0), (4.0, 5.0), (5.0, None), (6.0, 3.0)],
        "empty": [(0.0, None), (1.0, None)],
    }
    root = parse(line_chart(series, title="t", y_label="y", unit="ms"))
    gappy, empty = series_paths(root)
    d = gappy.get("d", "")
    moves = [c for c, _, _ in coordinates(d)]
    assert moves == ["M", "L", "M", "L", "M"], d
    assert d.endswith("l0,0"), "a point between two gaps is still drawn"
    assert gappy.get("stroke-linecap") == "round"
    assert empty.get("d") == ""
    desc = root.find(f"{SVG}desc")
    assert desc is not None and "empty: no data" in (desc.text or "")


def test_a_long_series_is_drawn_with_a_bounded_number_of_points_and_keeps_its_spike() -> None:
    long = [(float(i), 10.0 + (i % 7)) for i in range(5000)]
    long[2500] = (2500.0, 500.0)
    long[4000] = (4000.0, None)
    assert len(downsample(long)) <= MAX_DRAWN + MAX_DRAWN // 2
    root = parse(line_chart({"soak": long}, title="soak", y_label="p95", unit="ms"))
    (path,) = series_paths(root)
    points = coordinates(path.get("d", ""))
    assert 50 < len(points) <= MAX_DRAWN
    assert sum(1 for c, _, _ in points if c == "M") == 2, "the gap survives the downsampling"
    top = min(points, key=lambda p: p[2])
    assert tick_labels(root, "end")[-1] == "500"
    assert top[2] < 40, "the spike is still drawn at the top of the plot"


def timeline_summary(steps: int = 3, points: int = 5) -> dict[str, Any]:
    names = [f"step{i:02d}.call" for i in range(steps)]
    timeline = []
    for k in range(points):
        timeline.append(
            {
                "t": float(k + 1),
                "users": 4,
                "steps": {
                    name: {
                        "requests": 10 * (i + 1),
                        "rps": 10.0 * (i + 1),
                        "failures": 0,
                        "p50": 0.002,
                        "p95": 0.01 * (i + 1) if k != 2 else None,
                    }
                    for i, name in enumerate(names)
                    if not (i == 0 and k == 3)  # step 0 made no request in the 4th interval
                },
            }
        )
    return {
        "steps": {n: {"latency": {"p95": 0.01 * (i + 1)}} for i, n in enumerate(names)},
        "timeline": timeline,
    }


def test_load_charts_draw_throughput_and_p95_per_step() -> None:
    assert load_charts({}) == [] and load_charts({"timeline": []}) == [] and load_charts(None) == []
    throughput, latency = load_charts(timeline_summary())
    t_root, l_root = parse(throughput), parse(latency)
    assert "req/s" in throughput and "(ms)" in latency
    t_paths, l_paths = series_paths(t_root), series_paths(l_root)
    assert len(t_paths) == len(l_paths) == 3
    # the same step keeps its colour in both charts
    t_colours = {p.find(f"{SVG}title").text: p.get("stroke") for p in t_paths}  # type: ignore[union-attr]
    l_colours = {p.find(f"{SVG}title").text: p.get("stroke") for p in l_paths}  # type: ignore[union-attr]
    assert t_colours == l_colours
    # throughput: a step missing from a point made no request (0), latency: no value there is a gap
    step0 = next(p for p in t_paths if p.find(f"{SVG}title").text == "step00.call")  # type: ignore[union-attr]
    assert len(coordinates(step0.get("d", ""))) == 5
    step0_latency = next(p for p in l_paths if p.find(f"{SVG}title").text == "step00.call")  # type: ignore[union-attr]
    assert [c for c, _, _ in coordinates(step0_latency.get("d", ""))] == ["M", "L", "M"]
    assert tick_labels(l_root, "end")[-1] == "30", "p95 up to 30 ms on a millisecond axis"


def test_many_steps_are_bounded_in_both_charts() -> None:
    steps = MAX_SERIES + 5
    throughput, latency = load_charts(timeline_summary(steps=steps))
    t_names = [p.find(f"{SVG}title").text for p in series_paths(parse(throughput))]  # type: ignore[union-attr]
    l_names = [p.find(f"{SVG}title").text for p in series_paths(parse(latency))]  # type: ignore[union-attr]
    # the slowest steps in both (the same ones), the rest as one aggregate series that says what it is
    assert len(t_names) == len(l_names) == MAX_SERIES + 1
    assert t_names[-1] == "other (5 steps, sum)" and l_names[-1] == "other (5 steps, max p95)"
    assert t_names[:-1] == l_names[:-1] and "step10.call" in l_names and "step00.call" not in l_names
    assert f"the {MAX_SERIES} slowest of {steps} steps" in latency


def section_dict(*, charts: list[str], step: str = "browse.list") -> dict[str, Any]:
    return {
        "profile": "smoke",
        "run_tag": "run-1",
        "exit_code": 1,
        "ok": False,
        "rows": [
            {
                "slo": "error_ratio",
                "step": "all",
                "objective_text": "<= 1.00%",
                "measured_text": "0.00%",
                "verdict": "met",
            },
            {
                "slo": "p95",
                "step": step,
                "objective_text": "<= 0.500s",
                "measured_text": "0.900s",
                "verdict": "missed",
            },
            {
                "slo": "p95",
                "step": "browse.get",
                "objective_text": "<= 0.200s",
                "measured_text": "-",
                "verdict": "no data",
            },
        ],
        "totals": {"requests": 201, "failures": 3, "checks_failed": 1, "error_ratio": 0.0149, "rps": 20.1},
        "duration": 10.0,
        "charts": charts,
        "locust_html": "../load.html",
        "message": "",
    }


def test_load_section_from_an_outcome_renders_table_charts_and_link(tmp_path: Path) -> None:
    (tmp_path / "load.html").write_text("<html></html>")
    report_dir = tmp_path / "report dir"
    report_dir.mkdir()
    rows = [
        SloRow("error_ratio", "all", 0.01, 0.0, "met", "ratio"),
        SloRow("p95", "browse.list", 0.5, 0.9, "missed", "s"),
    ]
    summary = {
        **timeline_summary(),
        "totals": {"requests": 150, "failures": 0, "rps": 30.0},
        "duration_seconds": 5.0,
    }
    outcome = LoadOutcome(1, "smoke", "run-1", rows=rows, summary=summary, report_path=tmp_path / "load.html")
    load = load_section(outcome, report_dir)
    assert load["ok"] is False and load["locust_html"] == "../load.html" and load["duration"] == 5.0
    assert load["rows"][1] == {
        "slo": "p95",
        "step": "browse.list",
        "objective_text": "<= 0.500s",
        "measured_text": "0.900s",
        "verdict": "missed",
    }
    assert len(load["charts"]) == 2
    html = _ENV.get_template("_load.html.j2").render(load=load)
    assert html.count('class="chart"') == 2 and html.count("<svg") == 2
    table = re.search(r'<table id="slo-table">.*?</table>', html, re.S)
    assert table, html
    missed = re.search(r'<tr class="slo-missed"[^>]*>(.*?)</tr>', table.group(0), re.S)
    assert missed and "background" in missed.group(0) and "badge failed" in missed.group(1)
    assert "badge passed" in table.group(0)
    assert 'href="../load.html"' in html and 'badge failed" id="load-verdict">SLO missed' in html
    assert "<b>150</b> requests" in html

    # no summary at all (the run did not get that far): no charts, no table, the message
    bare = load_section(LoadOutcome(2, "smoke", "run-2", message="target unreachable"), report_dir)
    assert bare["charts"] == [] and bare["locust_html"] == "" and bare["totals"] == {}
    html = _ENV.get_template("_load.html.j2").render(load=bare)
    assert "<svg" not in html and "slo-table" not in html and "target unreachable" in html


def test_the_partial_highlights_missed_rows_only() -> None:
    html = _ENV.get_template("_load.html.j2").render(load=section_dict(charts=[]))
    rows = re.findall(r"<tr class=\"slo-([a-z-]+)\"([^>]*)>", html)
    assert [(verdict, "background" in attrs) for verdict, attrs in rows] == [
        ("missed", True),  # what needs attention first
        ("met", False),
        ("no-data", False),
    ]
    assert "badge skipped" in html, "no data is neither a pass nor a failure"
