"""Kaltura API overview: is every flow up on every target, how fast, which errors, cache, SLO budget."""

from __future__ import annotations

from ksentinel.dashboards.kit import (
    Layout,
    datasource_variable,
    label_variable,
    make_dashboard,
    stat,
    timeseries,
)

SEL = 'target=~"$target", flow=~"$flow"'
RATE = "$__rate_interval"
UP_DOWN = [
    {
        "type": "value",
        "options": {"0": {"text": "FAILING", "color": "red"}, "1": {"text": "OK", "color": "green"}},
    }
]


def step_quantile(q: float) -> str:
    return (
        f"histogram_quantile({q}, sum by (le, flow, step) "
        f"(rate(ksentinel_probe_step_duration_seconds_bucket{{{SEL}}}[{RATE}])))"
    )


layout = Layout()
layout.row("Health")
layout.add(
    stat(
        "Last probe run",
        [(f"min by (target, flow) (ksentinel_probe_success{{{SEL}}})", "{{target}} {{flow}}")],
        unit="none",
        mappings=UP_DOWN,
        thresholds=[(None, "red"), (1, "green")],
        description="Result of the last probe run of each flow on each target (all probe instances).",
    ),
    width=24,
    height=5,
)
layout.add(
    stat(
        "Time since last success",
        [
            (
                f"time() - max by (target, flow) (ksentinel_probe_last_success_timestamp_seconds{{{SEL}}})",
                "{{target}} {{flow}}",
            )
        ],
        unit="s",
        thresholds=[(None, "green"), (600, "orange"), (3600, "red")],
    ),
    width=8,
    height=6,
)
layout.add(
    stat(
        "SLO error budget left",
        [
            (
                f"min by (target, flow) (target_flow:ksentinel_probe_error_budget_remaining:ratio{{{SEL}}})",
                "{{target}} {{flow}}",
            )
        ],
        unit="percentunit",
        thresholds=[(None, "red"), (0, "orange"), (0.25, "green")],
        description="Share of the availability error budget of the [slo] window that is left.",
    ),
    width=8,
    height=6,
)
layout.add(
    stat(
        "SLO latency budget left",
        [
            (
                f"min by (target, flow) (target_flow:ksentinel_probe_latency_budget_remaining:ratio{{{SEL}}})",
                "{{target}} {{flow}}",
            )
        ],
        unit="percentunit",
        thresholds=[(None, "red"), (0, "orange"), (0.25, "green")],
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
layout.add(
    timeseries(
        "Probe runs by result",
        [
            (
                f"sum by (flow, result) (rate(ksentinel_probe_runs_total{{{SEL}}}[{RATE}]))",
                "{{flow}} {{result}}",
            )
        ],
        unit="ops",
        stacked=True,
    ),
    width=12,
)
layout.add(
    timeseries(
        "Flow duration (last run)",
        [(f"max by (target, flow) (ksentinel_probe_duration_seconds{{{SEL}}})", "{{target}} {{flow}}")],
        unit="s",
    ),
    width=24,
)

layout.row("Step latency")
for quantile, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
    layout.add(
        timeseries(f"Step latency {name}", [(step_quantile(quantile), "{{step}}")], unit="s"),
        width=8,
    )

layout.row("Errors")
layout.add(
    timeseries(
        "API errors by code",
        [(f"sum by (code) (rate(ksentinel_api_errors_total{{{SEL}}}[{RATE}]))", "{{code}}")],
        unit="ops",
        stacked=True,
    ),
    width=12,
)
layout.add(
    timeseries(
        "API errors by step and code",
        [(f"sum by (step, code) (rate(ksentinel_api_errors_total{{{SEL}}}[{RATE}]))", "{{step}} {{code}}")],
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

dashboard = make_dashboard(
    "Kaltura API overview",
    layout,
    [
        datasource_variable(),
        label_variable("target", "label_values(ksentinel_probe_success, target)"),
        label_variable("flow", 'label_values(ksentinel_probe_success{target=~"$target"}, flow)'),
    ],
    description="ksentinel probes: success, latency, errors and cache per flow and target; SLO budget left.",
)
