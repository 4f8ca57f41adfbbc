"""Panels more than one dashboard shows, for any grouping (``by``) and label selector (``sel``).

``by`` is a PromQL grouping such as ``"target, flow"``; the legend names the same labels. The
dashboards in ``dashboards/*.dashboard.py`` compose these with their own panels.
"""

from __future__ import annotations

from grafanalib.core import Stat, TimeSeries

from ksentinel.dashboards.kit import stat, timeseries

RATE = "$__rate_interval"
QUANTILES = ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"))
UP_DOWN = [
    {
        "type": "value",
        "options": {"0": {"text": "FAILING", "color": "red"}, "1": {"text": "OK", "color": "green"}},
    }
]
BUDGET_THRESHOLDS = [(None, "red"), (0, "orange"), (0.25, "green")]


def legend(by: str) -> str:
    """``"target, flow"`` -> ``"{{target}} {{flow}}"``."""
    return " ".join("{{" + label.strip() + "}}" for label in by.split(","))


def rate_sum(metric: str, by: str, sel: str) -> str:
    return f"sum by ({by}) (rate({metric}{{{sel}}}[{RATE}]))"


def histogram_quantile(q: float, bucket: str, by: str, sel: str) -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({bucket}{{{sel}}}[{RATE}])))"


def last_probe_run(by: str, sel: str, *, description: str = "") -> Stat:
    return stat(
        "Last probe run",
        [(f"min by ({by}) (ksentinel_probe_success{{{sel}}})", legend(by))],
        unit="none",
        mappings=UP_DOWN,
        thresholds=[(None, "red"), (1, "green")],
        description=description,
    )


def time_since_last_success(by: str, sel: str) -> Stat:
    return stat(
        "Time since last success",
        [(f"time() - max by ({by}) (ksentinel_probe_last_success_timestamp_seconds{{{sel}}})", legend(by))],
        unit="s",
        thresholds=[(None, "green"), (600, "orange"), (3600, "red")],
    )


def budget_left(kind: str, by: str, sel: str, *, description: str = "") -> Stat:
    """``kind``: ``error`` or ``latency``, the recorded ``*_budget_remaining`` ratio of the [slo] window."""
    record = f"target_flow:ksentinel_probe_{kind}_budget_remaining:ratio"
    return stat(
        f"SLO {kind} budget left",
        [(f"min by ({by}) ({record}{{{sel}}})", legend(by))],
        unit="percentunit",
        thresholds=BUDGET_THRESHOLDS,
        description=description,
    )


def flow_duration(by: str, sel: str) -> TimeSeries:
    return timeseries(
        "Flow duration (last run)",
        [(f"max by ({by}) (ksentinel_probe_duration_seconds{{{sel}}})", legend(by))],
        unit="s",
    )


def runs_by_result(by: str, sel: str) -> TimeSeries:
    return timeseries(
        "Probe runs by result",
        [(rate_sum("ksentinel_probe_runs_total", by, sel), legend(by))],
        unit="ops",
        stacked=True,
    )


def index_lag(by: str, sel: str, *, quantile: float = 0.95, name: str = "p95") -> TimeSeries:
    """How long fresh writes took to show up in list/count (``ksentinel_index_lag_seconds``, by target)."""
    return timeseries(
        f"Search index lag {name} by target",
        [(histogram_quantile(quantile, "ksentinel_index_lag_seconds_bucket", by, sel), legend(by))],
        unit="s",
        minimum=0,
        description=(
            "Seconds a probe's fresh write (created, updated or deleted entry) took to show up in "
            "list/count: the target's search index lag (about 1 s on a real Kaltura)."
        ),
    )
