"""The probe section of a run report, from one ``probe run --once`` style pass."""

from __future__ import annotations

from typing import Any

from ksentinel.probe.once import PassResult, merged_steps


def probe_section(result: PassResult) -> dict[str, Any]:
    """Flows with their steps (a repeated step is one row with its count), reasons of failures."""
    flows = []
    for outcome in result.outcomes:
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
                "cleanup_errors": list(outcome.cleanup_errors),
                "steps": [
                    {"name": name, "count": count, "duration": round(total, 4), "ok": ok}
                    for name, count, total, ok in merged_steps(outcome)
                ],
            }
        )
    failed = sum(1 for flow in flows if not flow["ok"])
    return {"ok": failed == 0, "flows": flows, "succeeded": len(flows) - failed, "failed": failed}
