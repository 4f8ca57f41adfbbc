"""``ksentinel probe run --once``: one pass over the flows, a table, an exit code for cron and CI.

Each (target, flow) runs once, one after the other, with the same runner, timeout and clean-up as
``probe serve``. Exit 0 when every flow succeeded, 1 when one failed or errored, 2 when a target
refused to start a session with the configured credentials (a configuration error). A step that
could not exercise its check on the target shows as ``not tested`` with its reason.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ksentinel.flows import FlowOptions, StepResult
from ksentinel.probe.config import Pair
from ksentinel.probe.metrics import ProbeMetrics
from ksentinel.probe.run import Outcome, ProbeTarget
from ksentinel.probe.runner import Runner

EXIT_OK, EXIT_FAILED, EXIT_MISCONFIGURED = 0, 1, 2
OK, FAILED, NOT_TESTED = "ok", "FAILED", "not tested"


@dataclass(frozen=True)
class PassResult:
    outcomes: list[Outcome]
    #: lines the table ends with: production targets that ran read-only flows only
    notices: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        if any(o.misconfigured for o in self.outcomes):
            return EXIT_MISCONFIGURED
        return EXIT_OK if all(o.ok for o in self.outcomes) else EXIT_FAILED


def run_pass(
    targets: Mapping[str, ProbeTarget],
    pairs: Sequence[Pair],
    options: FlowOptions,
    *,
    notices: Sequence[str] = (),
) -> PassResult:
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

    return PassResult(asyncio.run(main()), tuple(notices))


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
        for name, count, total, state in merged_step_states(outcome):
            label = f"{name} x{count}" if count > 1 else name
            rows.append(("", "", label, state, f"{total:.3f}s"))
        if outcome.timed_out or (
            not outcome.ok and outcome.failed_step not in {s.name for s in outcome.steps}
        ):
            rows.append(("", "", outcome.failed_step or "-", "TIMEOUT" if outcome.timed_out else "ERROR", ""))
        if not outcome.ok:
            where = f" at {outcome.failed_step}" if outcome.failed_step else ""
            code = f" [{outcome.code}]" if outcome.code else ""
            kind = " (misconfigured)" if outcome.misconfigured else ""
            notes.append(f"{outcome.target}/{outcome.flow}{where}{code}{kind}: {outcome.reason}")
        for step in _first_each(outcome.not_tested):
            notes.append(f"{outcome.target}/{outcome.flow} {step.name} not tested: {step.reason}")
        for error in outcome.cleanup_errors:
            notes.append(f"{outcome.target}/{outcome.flow} clean-up: {error}")
        if outcome.backoffs:
            notes.append(f"{outcome.target}/{outcome.flow} backed off: {outcome.backoff_summary()}")
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
    untested = sum(len(_first_each(o.not_tested)) for o in result.outcomes)
    lines.append("")
    lines.append(
        f"probe: {total - failed} of {total} flows succeeded"
        + (f", {failed} failed" if failed else "")
        + (f", {untested} step{'s' if untested != 1 else ''} not tested" if untested else "")
    )
    lines += [f"  {note}" for note in notes]
    lines += [f"  {notice}" for notice in result.notices]
    return "\n".join(lines)


def merged_steps(outcome: Outcome) -> list[tuple[str, int, float, bool]]:
    """Steps in first-seen order; a repeated step (``upload.chunk``) is one row with its count.

    ``ok`` means "did not fail": a step that was not tested is ok here; :func:`merged_step_states`
    tells it apart.
    """
    return [
        (name, count, total, state != FAILED) for name, count, total, state in merged_step_states(outcome)
    ]


def merged_step_states(outcome: Outcome) -> list[tuple[str, int, float, str]]:
    """:func:`merged_steps` with each row's state: ``ok``, ``FAILED`` or ``not tested``.

    A repeated step is ``FAILED`` when any of its runs failed, else ``not tested`` when any was not
    tested, else ``ok``.
    """
    merged: dict[str, list[float | int | str]] = {}
    rank = {OK: 0, NOT_TESTED: 1, FAILED: 2}
    for step in outcome.steps:
        entry = merged.setdefault(step.name, [0, 0.0, OK])
        entry[0] = int(entry[0]) + 1
        entry[1] = float(entry[1]) + step.duration
        state = FAILED if not step.ok else (OK if step.tested else NOT_TESTED)
        entry[2] = max(str(entry[2]), state, key=rank.__getitem__)
    return [(name, int(c), float(t), str(state)) for name, (c, t, state) in merged.items()]


def _first_each(steps: Sequence[StepResult]) -> list[StepResult]:
    """The first of each step name (a repeated step that was not tested is named once)."""
    seen: dict[str, StepResult] = {}
    for step in steps:
        seen.setdefault(step.name, step)
    return list(seen.values())
