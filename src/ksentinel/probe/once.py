"""``ksentinel probe run --once``: one pass over the flows, a table, an exit code for cron and CI.

Each (target, flow) runs once, one after the other, with the same runner, timeout and clean-up as
``probe serve``. Exit 0 when every flow succeeded, 1 when one failed or errored.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ksentinel.flows import FlowOptions
from ksentinel.probe.config import Pair
from ksentinel.probe.metrics import ProbeMetrics
from ksentinel.probe.run import Outcome, ProbeTarget
from ksentinel.probe.runner import Runner

EXIT_OK, EXIT_FAILED = 0, 1


@dataclass(frozen=True)
class PassResult:
    outcomes: list[Outcome]

    @property
    def exit_code(self) -> int:
        return EXIT_OK if all(o.ok for o in self.outcomes) else EXIT_FAILED


def run_pass(targets: Mapping[str, ProbeTarget], pairs: Sequence[Pair], options: FlowOptions) -> PassResult:
    """Run each pair once, in order; waits for every run's clean-up before returning."""

    async def main() -> list[Outcome]:
        runner = Runner(targets, options, ProbeMetrics(process=False), max_concurrent=1)
        outcomes: list[Outcome] = []
        try:
            for pair in pairs:
                outcome, _ = await runner.run(pair.target, pair.flow, pair.timeout, record=False)
                outcomes.append(outcome)
                await runner.drain(pair.timeout + 30.0)  # a timed-out run finishes its clean-up first
        finally:
            runner.executor.shutdown(wait=True)
        return outcomes

    return PassResult(asyncio.run(main()))


def lag_stats(lags: Sequence[float]) -> tuple[int, float, float] | None:
    """``(count, median, max)`` of index lag observations, or None without any."""
    if not lags:
        return None
    return len(lags), float(statistics.median(lags)), float(max(lags))


def format_lag(lags: Sequence[float]) -> str:
    """``median 1.02s, max 1.41s (3 writes)``; empty without observations."""
    stats = lag_stats(lags)
    if stats is None:
        return ""
    count, median, longest = stats
    return f"median {median:.2f}s, max {longest:.2f}s ({count} write{'s' if count != 1 else ''})"


def render_table(result: PassResult) -> str:
    """Flows and their steps with durations and results; a failed step shows its reason.

    An ``INDEX LAG`` column (how long fresh writes took to show up in list/count) appears on the flow
    rows when a run observed any.
    """
    lagged = any(o.index_lags for o in result.outcomes)
    header = ("TARGET", "FLOW", "STEP", "RESULT", "DURATION") + (("INDEX LAG",) if lagged else ())
    rows: list[tuple[str, ...]] = [header]
    notes: list[str] = []
    for outcome in result.outcomes:
        lag = (format_lag(outcome.index_lags),) if lagged else ()
        rows.append(
            (outcome.target, outcome.flow, "", outcome.result.upper(), f"{outcome.duration:.3f}s", *lag)
        )
        for name, count, total, ok in merged_steps(outcome):
            label = f"{name} x{count}" if count > 1 else name
            rows.append(("", "", label, "ok" if ok else "FAILED", f"{total:.3f}s"))
        if outcome.timed_out or (
            not outcome.ok and outcome.failed_step not in {s.name for s in outcome.steps}
        ):
            rows.append(("", "", outcome.failed_step or "-", "TIMEOUT" if outcome.timed_out else "ERROR", ""))
        if not outcome.ok:
            where = f" at {outcome.failed_step}" if outcome.failed_step else ""
            code = f" [{outcome.code}]" if outcome.code else ""
            notes.append(f"{outcome.target}/{outcome.flow}{where}{code}: {outcome.reason}")
        for error in outcome.cleanup_errors:
            notes.append(f"{outcome.target}/{outcome.flow} clean-up: {error}")
    columns = len(header)
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(columns)]
    lines = [
        "  ".join(
            cell.rjust(widths[i]) if i == 4 else cell.ljust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]
    failed = sum(1 for o in result.outcomes if not o.ok)
    total = len(result.outcomes)
    lines.append("")
    lines.append(
        f"probe: {total - failed} of {total} flows succeeded" + (f", {failed} failed" if failed else "")
    )
    lines += [f"  {note}" for note in notes]
    return "\n".join(lines)


def merged_steps(outcome: Outcome) -> list[tuple[str, int, float, bool]]:
    """Steps in first-seen order; a repeated step (``upload.chunk``) is one row with its count."""
    merged: dict[str, list[float | int | bool]] = {}
    for step in outcome.steps:
        entry = merged.setdefault(step.name, [0, 0.0, True])
        entry[0] = int(entry[0]) + 1
        entry[1] = float(entry[1]) + step.duration
        entry[2] = bool(entry[2]) and step.ok
    return [(name, int(c), float(t), bool(ok)) for name, (c, t, ok) in merged.items()]
