"""The probe section of a run report, from one ``probe run --once`` style pass."""

from __future__ import annotations

from typing import Any

from ksentinel.probe.once import PassResult, lag_stats, merged_step_states


def index_lag(lags: list[float]) -> dict[str, Any] | None:
    """``{"count", "median", "max"}`` (seconds) of index lag observations, or None without any."""
    stats = lag_stats(lags)
    if stats is None:
        return None
    count, median, longest = stats
    return {"count": count, "median": round(median, 4), "max": round(longest, 4)}


def probe_section(result: PassResult) -> dict[str, Any]:
    """Flows with their steps (a repeated step is one row with its count), reasons of failures.

    ``index_lag`` (per flow, and per target in ``index_lags``) says how long the flows' fresh writes
    took to show up in list/count: the target's search index lag.
    """
    flows = []
    by_target: dict[str, list[float]] = {}
    for outcome in result.outcomes:
        if outcome.index_lags:
            by_target.setdefault(outcome.target, []).extend(outcome.index_lags)
        flows.append(
            {
                "target": outcome.target,
                "flow": outcome.flow,
                "result": outcome.result,
                "ok": outcome.ok,
                "duration": round(outcome.duration, 4),
                "failed_step": outcome.failed_step,
                "code": outcome.code,
                "reason": outcome.reason,
                "timed_out": outcome.timed_out,
                "misconfigured": outcome.misconfigured,
                "cleanup_errors": list(outcome.cleanup_errors),
                "index_lag": index_lag(outcome.index_lags),
                "steps": [
                    {
                        "name": name,
                        "count": count,
                        "duration": round(total, 4),
                        "ok": state != "FAILED",
                        "state": state,  # ok | FAILED | not tested
                    }
                    for name, count, total, state in merged_step_states(outcome)
                ],
                "not_tested": {s.name: s.reason for s in outcome.steps if not s.tested},
            }
        )
    failed = sum(1 for flow in flows if not flow["ok"])
    lags = [{"target": target, **(index_lag(values) or {})} for target, values in sorted(by_target.items())]
    return {
        "ok": failed == 0,
        "flows": flows,
        "succeeded": len(flows) - failed,
        "failed": failed,
        "index_lags": lags,
    }
