"""SLO evaluation of a run summary, and the SLO table ``ksentinel load`` prints at the end.

One row per objective: ``error_ratio`` and ``throughput`` over the whole run (step ``all``), then
``p95``/``p99`` of every measured step against its objective (``[slo.steps.NAME]``, else
``[slo.default_step]``), and of every step of the run's flows (and every configured step of them)
that made no request. An objective without data is missed, unless the profile lists its flow in
``optional_flows`` (then ``no data``); a run that made no request at all misses its error-ratio
objective. A ``min_throughput`` of 0 (the default) is ``not set``: measured, never met or missed.
Exit code: 0 nothing missed, 1 one missed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ksentinel.slo import SloSpec

MET, MISSED, NO_DATA, NOT_SET = "met", "missed", "no data", "not set"
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
        if self.verdict == NOT_SET:
            return "-"
        sign = ">=" if self.slo in ("throughput", "arrivals") else "<="
        return f"{sign} {_format(self.objective, self.unit)}"

    @property
    def measured_text(self) -> str:
        if self.measured is None:
            return "no requests" if self.slo == "error_ratio" else "no data"
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


def evaluate(
    summary: Mapping[str, Any],
    spec: SloSpec,
    *,
    flows: Mapping[str, Sequence[str]] | None = None,
    optional: Collection[str] = (),
) -> list[SloRow]:
    """Every SLO row of ``summary`` (a :mod:`~ksentinel.load.summary` dict) against ``spec``.

    ``flows`` maps each flow the run was to run to its steps (:func:`run_flows`): each of those steps
    needs data, and so does each configured step of those flows; configured steps of other flows
    are not objectives of this run. Without ``flows`` every configured step needs data. A step
    without data is missed, unless its flow is in ``optional``.
    """
    totals = summary.get("totals") or {}
    rows: list[SloRow] = []
    ratio = totals.get("error_ratio")
    if ratio is None:
        rows.append(SloRow("error_ratio", "all", spec.error_ratio, None, MISSED, "ratio"))
    else:
        verdict = MET if ratio <= spec.error_ratio else MISSED
        rows.append(SloRow("error_ratio", "all", spec.error_ratio, float(ratio), verdict, "ratio"))
    rps = float(totals.get("rps") or 0.0)
    verdict = NOT_SET if spec.min_throughput <= 0 else MET if rps >= spec.min_throughput else MISSED
    rows.append(SloRow("throughput", "all", spec.min_throughput, rps, verdict, "req/s"))
    arrival = summary.get("arrival") or {}
    if arrival.get("due"):
        # each process's last due arrival may be waking up when the run ends: not a miss
        expected = max(1, int(arrival["due"]) - int(arrival.get("processes", 1)))
        started = min(1.0, float(arrival.get("started", 0)) / expected)
        verdict = MET if started >= ARRIVALS_STARTED else MISSED
        rows.append(SloRow("arrivals", "all", ARRIVALS_STARTED, started, verdict, "ratio"))
    steps: Mapping[str, Any] = summary.get("steps") or {}
    owner = {step: flow for flow, names in (flows or {}).items() for step in names}
    expected = set(owner)
    for name in spec.steps:
        if flows is None or _flow_of(name, owner) in flows:
            expected.add(name)
    for name in sorted(set(steps) | expected):
        measured = (steps.get(name) or {}).get("latency")
        for percentile, objective in spec.step(name).items():
            if not measured:
                verdict = NO_DATA if _flow_of(name, owner) in optional else MISSED
                rows.append(SloRow(percentile, name, objective, None, verdict, "s"))
                continue
            value = float(measured[percentile])
            rows.append(
                SloRow(percentile, name, objective, value, MET if value <= objective else MISSED, "s")
            )
    return rows


def _flow_of(step: str, owner: Mapping[str, str]) -> str:
    """The flow of ``step``: the catalogue's, else the part of its name before the first dot."""
    return owner.get(step) or step.split(".", 1)[0]


def run_flows(flow_names: Sequence[str], steps_of: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """``{flow: its steps}`` of the flows a run was to run (``steps_of``: the catalogue's step names)."""
    return {name: tuple(steps_of.get(name, ())) for name in flow_names}


def exit_code(rows: Sequence[SloRow]) -> int:
    return 1 if any(row.missed for row in rows) else 0


def missing_workers(summary: Mapping[str, Any]) -> str | None:
    """One line when a distributed run's final statistics miss a worker (no verdict then), else None."""
    workers = summary.get("workers") or {}
    if workers.get("mode") != "master" or workers.get("covered", True):
        return None
    final = int(workers.get("final") or 0)
    total = max(int(workers.get("seen") or 0), int(workers.get("expected") or 0))
    return (
        f"{total - final} of {total} workers sent no final statistics (died or lost the master): "
        "the statistics leave out what they ran, so the run has no SLO verdict"
    )


def summary_line(rows: Sequence[SloRow]) -> str:
    """``SLOs: 36 met, 1 missed (p95 browse.list), 2 without data (optional), throughput not set``."""
    missed = [r for r in rows if r.missed]
    met = sum(1 for r in rows if r.verdict == MET)
    no_data = sum(1 for r in rows if r.verdict == NO_DATA)
    line = f"SLOs: {met} met, {len(missed)} missed"
    if missed:
        names = ", ".join(f"{r.slo} {r.step}" for r in missed[:6])
        line += f" ({names}{', ...' if len(missed) > 6 else ''})"
    if no_data:
        line += f", {no_data} without data (optional flows)"
    for row in rows:
        if row.verdict == NOT_SET:
            line += f", {row.slo} not set"
    return line


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
    lines.append(summary_line(rows))
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
