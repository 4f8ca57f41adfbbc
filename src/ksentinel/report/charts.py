"""Inline SVG line charts for the HTML report: pure Python, no JavaScript, no external assets.

:func:`line_chart` draws series of ``(x seconds, y or None)`` points: axes with rounded ticks, a
legend naming each series, one ``<path>`` per series (``None`` leaves a gap), colours from the
Okabe-Ito palette (told apart also with protanopia, deuteranopia and tritanopia) and, past its 7
colours, dashes. Every text is escaped (step names come from the user's configuration); the
``viewBox`` is fixed and the CSS width is 100%, so a chart scales with the page. At most
:data:`MAX_DRAWN` points per series are drawn (each bucket of neighbouring points keeps its minimum
and maximum, so spikes stay visible).

:func:`load_charts` turns a load summary's ``timeline`` into two charts, throughput and p95
latency per step over time, with at most :data:`MAX_SERIES` steps each: the slowest (by the run's
p95), the same steps in the same colours in both, and the rest as one grey dashed ``other`` series
(their summed throughput; their highest p95 at each moment), which its legend says.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

Point = tuple[float, float | None]

WIDTH, HEIGHT = 800, 340
LEFT, RIGHT, TOP, BOTTOM = 64, 210, 36, 48  # margins around the plot; the legend is on the right
LEGEND_ROW = 18
LEGEND_CHARS = 26
MAX_DRAWN = 400
MAX_SERIES = 6  # load_charts: the slowest steps drawn one by one; the rest are one "other" series
#: Okabe-Ito (Wong, Nature Methods 2011) without its yellow, which is too light on white
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000")
DASHES = ("", "6 3", "2 3")
#: the style index of an aggregate series ("other"): dark grey, dashed
OTHER = -1
OTHER_STYLE = ("#555555", "6 3")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def _text(value: object) -> str:
    """Text or attribute value, safe in XML and HTML."""
    return html.escape(_NOT_XML.sub("\ufffd", str(value)), quote=True)


def _num(value: float) -> str:
    """A tick label: 0, 2.5, 1000, 0.02."""
    value = round(value, 9)
    return f"{int(value)}" if value == int(value) else f"{value:g}"


def _duration(value: float) -> str:
    """A time tick label: 45s, 2m, 2m30s, 1h, 1h05m."""
    seconds = round(value)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes}m{rest:02d}s" if rest else f"{minutes}m"
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if rest // 60 else f"{hours}h"


def nice_step(span: float, ticks: int = 5) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about ``ticks`` ticks over ``span``."""
    raw = max(span, 1e-12) / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 5, 10):
        if multiple * magnitude >= raw * 0.999:
            return multiple * magnitude
    return 10 * magnitude


def _time_step(span: float) -> float:
    raw = span / 6
    return next((float(s) for s in _TIME_STEPS if s >= raw), nice_step(span, 6))


def downsample(points: Sequence[Point], limit: int = MAX_DRAWN) -> list[Point]:
    """At most ``limit`` drawn points: each bucket keeps its min and max; a gap in a bucket stays one."""
    if len(points) <= limit:
        return list(points)
    buckets = max(1, limit // 2)
    size = math.ceil(len(points) / buckets)
    out: list[Point] = []
    for start in range(0, len(points), size):
        chunk = points[start : start + size]
        values = [(x, y) for x, y in chunk if y is not None]
        if values:
            low = min(values, key=lambda p: p[1])  # type: ignore[arg-type, return-value]
            high = max(values, key=lambda p: p[1])  # type: ignore[arg-type, return-value]
            out.extend(sorted({low, high}))
        if len(values) < len(chunk):
            out.append((chunk[-1][0], None))
    return out


def _path(points: Sequence[Point], sx: Any, sy: Any) -> str:
    parts: list[str] = []
    pen_down = False
    run = 0
    for x, y in points:
        if y is None:
            if pen_down and run == 1:
                parts.append("l0,0")  # a lone point: a dot (round caps)
            pen_down, run = False, 0
            continue
        parts.append(f"{'L' if pen_down else 'M'}{sx(x):.1f},{sy(y):.1f}")
        pen_down, run = True, run + 1
    if pen_down and run == 1:
        parts.append("l0,0")
    return " ".join(parts)


def _style(index: int) -> tuple[str, str]:
    if index == OTHER:
        return OTHER_STYLE
    return PALETTE[index % len(PALETTE)], DASHES[(index // len(PALETTE)) % len(DASHES)]


def line_chart(
    series: Mapping[str, Sequence[Point]],
    *,
    title: str,
    y_label: str,
    unit: str,
    x_label: str = "time since start",
    styles: Mapping[str, int] | None = None,
) -> str:
    """One ``<svg class="chart">`` of ``series`` (name -> ``(x seconds, y)``, ``None`` = gap).

    ``styles`` maps a series to its colour/dash index (the same step keeps its colour across charts;
    :data:`OTHER`: an aggregate's grey dashes); by default series are styled in order.
    """
    drawn = {name: downsample(points) for name, points in series.items()}
    xs = [x for points in drawn.values() for x, _ in points]
    ys = [y for points in drawn.values() for _, y in points if y is not None]
    height = max(HEIGHT, TOP + len(drawn) * LEGEND_ROW + 12)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, height - TOP - BOTTOM
    x0, x1 = min([0.0, *xs]), max([1.0, *xs])
    y0 = min([0.0, *ys])
    y_step = nice_step(max([*ys, 0.0]) - y0 or 1.0)
    y1 = y0 + y_step * max(1, math.ceil((max([*ys, y0]) - y0) / y_step - 1e-9))
    x_step = _time_step(x1 - x0)

    def sx(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return TOP + plot_h - (y - y0) / (y1 - y0) * plot_h

    desc = "; ".join(
        f"{name}: max {_num(round(max(y for _, y in pts if y is not None), 3))} {unit}"
        if any(y is not None for _, y in pts)
        else f"{name}: no data"
        for name, pts in drawn.items()
    )
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {WIDTH} {height}"'
        f' width="100%" preserveAspectRatio="xMinYMin meet" font-family="sans-serif" font-size="12">',
        f"<title>{_text(title)}</title>",
        f"<desc>{_text(desc or 'no data')}</desc>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="22" font-size="14" font-weight="bold" fill="#1f2328">{_text(title)}</text>',
    ]
    # grid, ticks and axes
    tick = y0
    while tick <= y1 + y_step * 1e-6:
        y = sy(tick)
        out.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#d0d7de" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#57606a">{_text(_num(tick))}</text>'
        )
        tick += y_step
    tick = math.ceil(x0 / x_step) * x_step
    while tick <= x1 + 1e-9:
        x = sx(tick)
        out.append(
            f'<line x1="{x:.1f}" y1="{TOP + plot_h}" x2="{x:.1f}" y2="{TOP + plot_h + 5}" stroke="#57606a"/>'
            f'<text x="{x:.1f}" y="{TOP + plot_h + 18}" text-anchor="middle" fill="#57606a">'
            f"{_text(_duration(tick))}</text>"
        )
        tick += x_step
    out.append(
        f'<path d="M{LEFT},{TOP}V{TOP + plot_h}H{LEFT + plot_w}" fill="none" stroke="#57606a"/>'
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{height - 10}" text-anchor="middle" fill="#57606a">'
        f"{_text(x_label)}</text>"
        f'<text transform="translate(16 {TOP + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle"'
        f' fill="#57606a">{_text(f"{y_label} ({unit})" if unit else y_label)}</text>'
    )
    if not ys:
        out.append(
            f'<text x="{LEFT + plot_w / 2:.1f}" y="{TOP + plot_h / 2:.1f}" text-anchor="middle"'
            f' fill="#57606a">no data</text>'
        )
    # series and legend
    legend_x = WIDTH - RIGHT + 16
    for row, (name, points) in enumerate(drawn.items()):
        colour, dash = _style(styles.get(name, row) if styles is not None else row)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        label = name if len(name) <= LEGEND_CHARS else name[: LEGEND_CHARS - 1] + "\u2026"
        y = TOP + 6 + row * LEGEND_ROW
        out.append(
            f'<path class="series" d="{_path(points, sx, sy)}" fill="none" stroke="{colour}" stroke-width="2"'
            f' stroke-linecap="round" stroke-linejoin="round"{dash_attr}><title>{_text(name)}</title></path>'
        )
        out.append(
            f'<g class="legend"><title>{_text(name)}</title>'
            f'<line x1="{legend_x}" y1="{y}" x2="{legend_x + 22}" y2="{y}" stroke="{colour}" stroke-width="2"'
            f' stroke-linecap="round"{dash_attr}/>'
            f'<text x="{legend_x + 28}" y="{y + 4}" fill="#1f2328">{_text(label)}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)


def load_charts(summary: Mapping[str, Any] | None) -> list[str]:
    """Throughput (req/s) and p95 latency (ms) per step over time; ``[]`` without a timeline.

    Each chart draws at most :data:`MAX_SERIES` steps, the slowest by the run's p95 (ties: the busier
    first), slowest first, and one ``other`` series for the rest: their summed throughput, and the
    highest p95 among them at each moment (a gap where none of them made a request).
    """
    timeline = [p for p in (summary or {}).get("timeline") or [] if isinstance(p, Mapping)]
    if not timeline:
        return []
    volume: dict[str, int] = {}
    for point in timeline:
        for step, values in (point.get("steps") or {}).items():
            volume[step] = volume.get(step, 0) + int(values.get("requests") or 0)
    steps = (summary or {}).get("steps") or {}

    def overall_p95(step: str) -> float:
        return float(((steps.get(step) or {}).get("latency") or {}).get("p95") or 0.0)

    slowest = sorted(volume, key=lambda s: (-overall_p95(s), -volume[s], s))
    shown, rest = slowest[:MAX_SERIES], slowest[MAX_SERIES:]
    styles = {step: index for index, step in enumerate(shown)}

    def value(point: Mapping[str, Any], step: str, key: str) -> float | None:
        found = ((point.get("steps") or {}).get(step) or {}).get(key)
        return None if found is None else float(found)

    throughput: dict[str, list[Point]] = {
        step: [(float(p["t"]), value(p, step, "rps") or 0.0) for p in timeline] for step in shown
    }
    latency: dict[str, list[Point]] = {}
    for step in shown:
        latency[step] = [(float(p["t"]), _ms(value(p, step, "p95"))) for p in timeline]
    throughput_title, latency_title = "Throughput per step", "p95 latency per step"
    if rest:
        plural = "s" if len(rest) != 1 else ""
        summed, worst = f"other ({len(rest)} step{plural}, sum)", f"other ({len(rest)} step{plural}, max p95)"
        throughput[summed] = [(float(p["t"]), sum(value(p, s, "rps") or 0.0 for s in rest)) for p in timeline]
        latency[worst] = [
            (
                float(p["t"]),
                _ms(max((v for s in rest if (v := value(p, s, "p95")) is not None), default=None)),
            )
            for p in timeline
        ]
        styles[summed] = styles[worst] = OTHER
        shown_text = f"the {len(shown)} slowest of {len(volume)} steps"
        throughput_title += f" ({shown_text}; other: the rest summed)"
        latency_title += f" ({shown_text}; other: the highest p95 of the rest)"
    return [
        line_chart(
            throughput,
            title=throughput_title,
            y_label="requests per second",
            unit="req/s",
            styles=styles,
        ),
        line_chart(latency, title=latency_title, y_label="p95 latency", unit="ms", styles=styles),
    ]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0
