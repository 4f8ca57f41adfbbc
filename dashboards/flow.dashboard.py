"""Flow detail: one flow on the chosen targets, with one row per step (a row repeated over ``$step``)."""

from __future__ import annotations

from ksentinel.dashboards.kit import (
    Layout,
    datasource_variable,
    label_variable,
    make_dashboard,
    stat,
    timeseries,
)

SEL = 'target=~"$target", flow="$flow"'
STEP = f'{SEL}, step=~"$step"'
RATE = "$__rate_interval"

layout = Layout()
layout.row("Flow $flow")
layout.add(
    stat(
        "Last probe run",
        [(f"min by (target) (ksentinel_probe_success{{{SEL}}})", "{{target}}")],
        unit="none",
        mappings=[
            {
                "type": "value",
                "options": {"0": {"text": "FAILING", "color": "red"}, "1": {"text": "OK", "color": "green"}},
            }
        ],
        thresholds=[(None, "red"), (1, "green")],
    ),
    width=8,
    height=5,
)
layout.add(
    stat(
        "Time since last success",
        [
            (
                f"time() - max by (target) (ksentinel_probe_last_success_timestamp_seconds{{{SEL}}})",
                "{{target}}",
            )
        ],
        unit="s",
        thresholds=[(None, "green"), (600, "orange"), (3600, "red")],
    ),
    width=8,
    height=5,
)
layout.add(
    stat(
        "SLO error budget left",
        [
            (
                f"min by (target) (target_flow:ksentinel_probe_error_budget_remaining:ratio{{{SEL}}})",
                "{{target}}",
            )
        ],
        unit="percentunit",
        thresholds=[(None, "red"), (0, "orange"), (0.25, "green")],
    ),
    width=8,
    height=5,
)
layout.add(
    timeseries(
        "Flow duration (last run)",
        [(f"max by (target) (ksentinel_probe_duration_seconds{{{SEL}}})", "{{target}}")],
        unit="s",
    ),
    width=12,
)
layout.add(
    timeseries(
        "Probe runs by result",
        [
            (
                f"sum by (target, result) (rate(ksentinel_probe_runs_total{{{SEL}}}[{RATE}]))",
                "{{target}} {{result}}",
            )
        ],
        unit="ops",
        stacked=True,
    ),
    width=12,
)

layout.row("Step $step", repeat="step")
layout.add(
    timeseries(
        "Latency of $step",
        [
            (
                f"histogram_quantile({q}, sum by (le, target) "
                f"(rate(ksentinel_probe_step_duration_seconds_bucket{{{STEP}}}[{RATE}])))",
                "{{target}} " + name,
            )
            for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"))
        ],
        unit="s",
    ),
    width=12,
)
layout.add(
    timeseries(
        "API errors of $step by code",
        [
            (
                f"sum by (target, code) (rate(ksentinel_api_errors_total{{{STEP}}}[{RATE}]))",
                "{{target}} {{code}}",
            )
        ],
        unit="ops",
        stacked=True,
    ),
    width=12,
)

dashboard = make_dashboard(
    "Flow detail",
    layout,
    [
        datasource_variable(),
        label_variable("target", "label_values(ksentinel_probe_success, target)"),
        label_variable(
            "flow",
            'label_values(ksentinel_probe_success{target=~"$target"}, flow)',
            multi=False,
            include_all=False,
        ),
        label_variable(
            "step",
            'label_values(ksentinel_probe_step_duration_seconds_bucket{target=~"$target", flow="$flow"}, step)',
        ),
    ],
    description="One ksentinel flow: last result, duration and, per step, latency percentiles and API errors.",
)
