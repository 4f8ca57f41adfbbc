"""The JSON summary of a run, built from Locust's final (master-aggregated) statistics.

The locustfile's master (or the single local process) writes it at quit to ``$KSENTINEL_LOAD_SUMMARY``;
``ksentinel load`` reads it to judge the SLOs. Shape (seconds everywhere)::

    {"version": 1, "run_tag": "...", "profile": "smoke", "model": "closed",
     "started": 1700000000.0, "duration_seconds": 20.1, "interrupted": false,
     "users": {"peak": 6, "final": 0},
     "workers": {"mode": "master", "expected": 2, "seen": 2, "final": 2, "covered": true},
     "totals": {"requests": 1234, "failures": 3, "checks_failed": 1, "error_ratio": 0.0024, "rps": 61.4},
     "steps": {"upload.chunk": {"requests": 80, "failures": 0, "checks_failed": 0,
                                "failures_by_code": {}, "rps": 4.0,
                                "latency": {"p50": 0.004, "p95": 0.011, "p99": 0.02, "max": 0.03, "avg": 0.005}}},
     "flows": {"upload": {"runs": 20, "failures": 0, "failures_by_code": {}, "latency": {...}}},
     "arrival": {"rate": 10.0, "scheduled": 200, "late": 3, "max_lag_seconds": 0.2, ...} or null,
     "timeline": [{"t": 1.0, "users": 6,
                   "steps": {"upload.chunk": {"requests": 4, "rps": 4.0, "failures": 0,
                                              "p50": 0.004, "p95": 0.011}}}, ...]}

``steps`` holds the HTTP requests by step name (Locust request name); a failed invariant (a
``CHECK`` event) counts as one more failure of its step. ``error_ratio`` is failures / (requests +
failed checks). ``flows`` holds whole flows (``FLOW`` events), timed from their intended start.
``timeline`` holds the steps over time (:mod:`ksentinel.load.timeline`): one point per interval
(1 s; 3 s on a master; coarser in long runs, at most 300 points), ``t`` the end of the interval in
seconds since the start, a step only in the points where it made a request or failed; p50/p95 are
null when no latency arrived in the interval. Empty when the run was not sampled.

This module reads Locust's objects by duck typing and never imports Locust.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ksentinel.load.failures import code_of_error
from ksentinel.load.transport import CHECK_TYPE, FLOW_TYPE

VERSION = 1


def percentile(times: Mapping[int, int], percent: float) -> int:
    """Locust's percentile of a ``{rounded ms: count}`` histogram (0 when empty)."""
    count = sum(times.values())
    wanted = int(count * percent)
    processed = 0
    for value in sorted(times, reverse=True):
        processed += times[value]
        if count - processed <= wanted:
            return value
    return 0


def latency(times: Mapping[int, int], total_ms: float, max_ms: float) -> dict[str, float] | None:
    count = sum(times.values())
    if not count:
        return None
    return {
        "p50": percentile(times, 0.50) / 1000.0,
        "p95": percentile(times, 0.95) / 1000.0,
        "p99": percentile(times, 0.99) / 1000.0,
        "max": max_ms / 1000.0,
        "avg": round(total_ms / count / 1000.0, 6),
    }


def _error_text(error: Any) -> str:
    return error if isinstance(error, str) else repr(error)


def build_summary(
    stats: Any,
    *,
    run_tag: str,
    profile: str,
    model: str,
    started: float | None,
    ended: float,
    peak_users: int,
    final_users: int,
    workers: Mapping[str, Any],
    interrupted: bool = False,
    arrival: Mapping[str, Any] | None = None,
    timeline: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The summary dict of Locust ``stats`` (a ``RequestStats``: ``entries`` and ``errors``)."""
    entries: Iterable[Any] = list(stats.entries.values())
    begin = started or getattr(stats.total, "start_time", None) or ended
    duration = max(ended - begin, 1e-9)
    steps: dict[str, dict[str, Any]] = {}
    flows: dict[str, dict[str, Any]] = {}
    step_times: dict[str, dict[int, int]] = {}
    step_totals: dict[str, list[float]] = {}
    for entry in entries:
        if entry.method == FLOW_TYPE:
            flows[entry.name] = {
                "runs": entry.num_requests,
                "failures": entry.num_failures,
                "failures_by_code": {},
                "latency": latency(entry.response_times, entry.total_response_time, entry.max_response_time),
            }
            continue
        step = steps.setdefault(
            entry.name, {"requests": 0, "failures": 0, "checks_failed": 0, "failures_by_code": {}}
        )
        if entry.method == CHECK_TYPE:
            step["failures"] += entry.num_failures
            step["checks_failed"] += entry.num_failures
            continue
        step["requests"] += entry.num_requests
        step["failures"] += entry.num_failures
        times = step_times.setdefault(entry.name, {})
        for value, count in entry.response_times.items():
            times[value] = times.get(value, 0) + count
        total = step_totals.setdefault(entry.name, [0.0, 0.0])
        total[0] += entry.total_response_time
        total[1] = max(total[1], entry.max_response_time or 0)
    for error in stats.errors.values():
        code = code_of_error(_error_text(error.error))
        bucket = flows if error.method == FLOW_TYPE else steps
        row = bucket.get(error.name)
        if row is not None:
            row["failures_by_code"][code] = row["failures_by_code"].get(code, 0) + int(error.occurrences)
    for name, step in steps.items():
        step["rps"] = round(step["requests"] / duration, 3)
        total_ms, max_ms = step_totals.get(name, [0.0, 0.0])
        step["latency"] = latency(step_times.get(name, {}), total_ms, max_ms)
    requests = sum(s["requests"] for s in steps.values())
    failures = sum(s["failures"] for s in steps.values())
    checks = sum(s["checks_failed"] for s in steps.values())
    return {
        "version": VERSION,
        "run_tag": run_tag,
        "profile": profile,
        "model": model,
        "started": begin,
        "duration_seconds": round(duration, 3),
        "interrupted": interrupted,
        "users": {"peak": peak_users, "final": final_users},
        "workers": dict(workers),
        "totals": {
            "requests": requests,
            "failures": failures,
            "checks_failed": checks,
            "error_ratio": round(failures / (requests + checks), 6) if requests + checks else None,
            "rps": round(requests / duration, 3),
        },
        "steps": dict(sorted(steps.items())),
        "flows": dict(sorted(flows.items())),
        "arrival": dict(arrival) if arrival is not None else None,
        "timeline": [dict(point) for point in timeline],
    }


def write_summary(summary: Mapping[str, Any], path: Path) -> None:
    """Write atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(partial, path)


def read_summary(path: Path) -> dict[str, Any] | None:
    """The summary at ``path``, or None when there is none (the run did not get that far)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("version") == VERSION else None
