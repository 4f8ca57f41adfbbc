"""Kaltura API overview: is every flow up on every target, how fast, which errors, cache, SLO budget."""

from __future__ import annotations

from ksentinel.dashboards.kit import Layout, datasource_variable, label_variable, make_dashboard, timeseries
from ksentinel.dashboards.panels import (
    QUANTILES,
    RATE,
    budget_left,
    flow_duration,
    histogram_quantile,
    index_lag,
    last_probe_run,
    rate_sum,
    runs_by_result,
    time_since_last_success,
)

SEL = 'target=~"$target", flow=~"$flow"'
BY = "target, flow"

layout = Layout()
layout.row("Health")
layout.add(
    last_probe_run(
        BY, SEL, description="Result of the last probe run of each flow on each target (all probe instances)."
    ),
    width=24,
    height=5,
)
layout.add(time_since_last_success(BY, SEL), width=8, height=6)
layout.add(
    budget_left(
        "error",
        BY,
        SEL,
        description="Share of the availability error budget of the [slo] window that is left.",
    ),
    width=8,
    height=6,
)
layout.add(
    budget_left(
        "latency",
        BY,
        SEL,
        description="Share of the latency error budget (runs slower than latency_seconds) that is left.",
    ),
    width=8,
    height=6,
)

layout.row("Success")
layout.add(
    timeseries(
        "Success ratio per flow and target",
        [
            (
                f'sum by (target, flow) (rate(ksentinel_probe_runs_total{{{SEL}, result="success"}}[{RATE}]))'
                f" / sum by (target, flow) (rate(ksentinel_probe_runs_total{{{SEL}}}[{RATE}]))",
                "{{target}} {{flow}}",
            )
        ],
        unit="percentunit",
        minimum=0,
        maximum=1,
    ),
    width=12,
)
layout.add(runs_by_result("flow, result", SEL), width=12)
layout.add(flow_duration(BY, SEL), width=24)

layout.row("Step latency")
for quantile, name in QUANTILES:
    layout.add(
        timeseries(
            f"Step latency {name}",
            [
                (
                    histogram_quantile(
                        quantile, "ksentinel_probe_step_duration_seconds_bucket", "flow, step", SEL
                    ),
                    "{{step}}",
                )
            ],
            unit="s",
        ),
        width=8,
    )

layout.row("Errors")
layout.add(
    timeseries(
        "API errors by code",
        [(rate_sum("ksentinel_api_errors_total", "code", SEL), "{{code}}")],
        unit="ops",
        stacked=True,
    ),
    width=12,
)
layout.add(
    timeseries(
        "API errors by step and code",
        [(rate_sum("ksentinel_api_errors_total", "step, code", SEL), "{{step}} {{code}}")],
        unit="ops",
    ),
    width=12,
)

layout.row("Cache")
LOOKUPS = 'ksentinel_cache_lookups_total{target=~"$target", result=~"hit|miss"}'
layout.add(
    timeseries(
        "Cache hit ratio",
        [
            (
                f'sum by (target) (rate(ksentinel_cache_lookups_total{{target=~"$target", result="hit"}}[{RATE}]))'
                f" / sum by (target) (rate({LOOKUPS}[{RATE}]))",
                "{{target}}",
            )
        ],
        unit="percentunit",
        minimum=0,
        maximum=1,
    ),
    width=12,
)
layout.add(
    timeseries(
        "Cache lookups by result",
        [
            (
                f'sum by (target, result) (rate(ksentinel_cache_lookups_total{{target=~"$target"}}[{RATE}]))',
                "{{target}} {{result}}",
            )
        ],
        unit="ops",
        stacked=True,
    ),
    width=12,
)

layout.row("Search index")
layout.add(index_lag("target", 'target=~"$target"'), width=24)

dashboard = make_dashboard(
    "Kaltura API overview",
    layout,
    [
        datasource_variable(),
        label_variable("target", "label_values(ksentinel_probe_success, target)"),
        label_variable("flow", 'label_values(ksentinel_probe_success{target=~"$target"}, flow)'),
    ],
    description=(
        "ksentinel probes: success, latency, errors and cache per flow and target; search index lag; "
        "SLO budget left."
    ),
)
