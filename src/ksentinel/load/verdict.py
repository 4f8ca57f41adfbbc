"""SLO evaluation of a run summary, and the SLO table ``ksentinel load`` prints at the end.

One row per objective: ``error_ratio`` and ``throughput`` over the whole run (step ``all``), then
``p95``/``p99`` of every measured step against its objective (``[slo.steps.NAME]``, else
``[slo.default_step]``), and a ``no data`` row for a configured step that made no request. A run
that made no request at all misses its error-ratio objective. Exit code: 0 all met, 1 one missed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ksentinel.slo import SloSpec

MET, MISSED, NO_DATA = "met", "missed", "no data"
#: Open model: the share of due arrivals an executor must have started (else the run could not keep
#: its arrival rate: the server stalled, or there are too few executors for the rate). Each
#: process's last arrival, due as the run ends, is not counted.
ARRIVALS_STARTED = 0.99


@dataclass(frozen=True)
class SloRow:
    slo: str
    step: str
    objective: float
    measured: float | None
    verdict: str
    unit: str

    @property
    def missed(self) -> bool:
        return self.verdict == MISSED

    @property
    def objective_text(self) -> str:
        sign = ">=" if self.slo in ("throughput", "arrivals") else "<="
        return f"{sign} {_format(self.objective, self.unit)}"

    @property
    def measured_text(self) -> str:
        if self.measured is None:
            return "no requests" if self.slo == "error_ratio" else "-"
        return _format(self.measured, self.unit)

    def as_dict(self) -> dict[str, Any]:
        return {
            "slo": self.slo,
            "step": self.step,
            "objective": self.objective,
            "measured": self.measured,
            "verdict": self.verdict,
            "unit": self.unit,
        }


def _format(value: float, unit: str) -> str:
    if unit == "ratio":
        return f"{value * 100:.2f}%"
    if unit == "req/s":
        return f"{value:.1f} req/s"
    return f"{value:.3f}s"


def evaluate(summary: Mapping[str, Any], spec: SloSpec) -> list[SloRow]:
    """Every SLO row of ``summary`` (a :mod:`~ksentinel.load.summary` dict) against ``spec``."""
    totals = summary.get("totals") or {}
    rows: list[SloRow] = []
    ratio = totals.get("error_ratio")
    if ratio is None:
        rows.append(SloRow("error_ratio", "all", spec.error_ratio, None, MISSED, "ratio"))
    else:
        verdict = MET if ratio <= spec.error_ratio else MISSED
        rows.append(SloRow("error_ratio", "all", spec.error_ratio, float(ratio), verdict, "ratio"))
    rps = float(totals.get("rps") or 0.0)
    verdict = MET if rps >= spec.min_throughput else MISSED
    rows.append(SloRow("throughput", "all", spec.min_throughput, rps, verdict, "req/s"))
    arrival = summary.get("arrival") or {}
    if arrival.get("due"):
        # each process's last due arrival may be waking up when the run ends: not a miss
        expected = max(1, int(arrival["due"]) - int(arrival.get("processes", 1)))
        started = min(1.0, float(arrival.get("started", 0)) / expected)
        verdict = MET if started >= ARRIVALS_STARTED else MISSED
        rows.append(SloRow("arrivals", "all", ARRIVALS_STARTED, started, verdict, "ratio"))
    steps: Mapping[str, Any] = summary.get("steps") or {}
    names = sorted(set(steps) | set(spec.steps))
    for name in names:
        measured = (steps.get(name) or {}).get("latency")
        for percentile, objective in spec.step(name).items():
            if not measured:
                rows.append(SloRow(percentile, name, objective, None, NO_DATA, "s"))
                continue
            value = float(measured[percentile])
            rows.append(
                SloRow(percentile, name, objective, value, MET if value <= objective else MISSED, "s")
            )
    return rows


def exit_code(rows: Sequence[SloRow]) -> int:
    return 1 if any(row.missed for row in rows) else 0


def render_table(rows: Sequence[SloRow], summary: Mapping[str, Any] | None = None) -> str:
    """The SLO table (plus the failures by step and code, when ``summary`` is given)."""
    header = ("SLO", "STEP", "OBJECTIVE", "MEASURED", "VERDICT")
    body = [(r.slo, r.step, r.objective_text, r.measured_text, r.verdict.upper()) for r in rows]
    widths = [max(len(str(line[i])) for line in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *body]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    missed = [r for r in rows if r.missed]
    met = sum(1 for r in rows if r.verdict == MET)
    no_data = sum(1 for r in rows if r.verdict == NO_DATA)
    tail = f"SLOs: {met} met, {len(missed)} missed"
    if missed:
        names = ", ".join(f"{r.slo} {r.step}" for r in missed[:6])
        tail += f" ({names}{', ...' if len(missed) > 6 else ''})"
    if no_data:
        tail += f", {no_data} without data"
    lines.append(tail)
    if summary is not None:
        lines += _summary_lines(summary)
    return "\n".join(lines)


def _summary_lines(summary: Mapping[str, Any]) -> list[str]:
    lines = []
    workers = summary.get("workers") or {}
    if workers.get("mode") == "master":
        lines.append(
            f"workers: final stats from {workers.get('final', 0)} of {workers.get('seen', 0)} "
            f"(expected {workers.get('expected', 0)})"
        )
    arrival = summary.get("arrival")
    if arrival:
        lines.append(
            f"arrivals: {arrival.get('due', 0)} due at {arrival.get('rate', 0):g}/s, "
            f"{arrival.get('started', 0)} started, {arrival.get('late', 0)} of them late "
            f"(max lag {arrival.get('max_lag_seconds', 0):.3f}s)"
        )
    counts: list[tuple[int, str]] = []
    for name, step in (summary.get("steps") or {}).items():
        for code, count in (step.get("failures_by_code") or {}).items():
            if count:
                counts.append((int(count), f"{name} {code} x{count}"))
    if counts:
        counts.sort(key=lambda item: (-item[0], item[1]))
        shown = [text for _, text in counts[:8]]
        more = f" (+{len(counts) - 8} more)" if len(counts) > 8 else ""
        lines.append("failures: " + ", ".join(shown) + more)
    return lines
