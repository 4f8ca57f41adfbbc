"""Flow detail: one flow on the chosen targets, with one row per step (a row repeated over ``$step``)."""

from __future__ import annotations

from ksentinel.dashboards.kit import Layout, datasource_variable, label_variable, make_dashboard, timeseries
from ksentinel.dashboards.panels import (
    QUANTILES,
    budget_left,
    flow_duration,
    histogram_quantile,
    last_probe_run,
    rate_sum,
    runs_by_result,
    time_since_last_success,
)

SEL = 'target=~"$target", flow="$flow"'
STEP = f'{SEL}, step=~"$step"'

BY = "target"

layout = Layout()
layout.row("Flow $flow")
layout.add(last_probe_run(BY, SEL), width=8, height=5)
layout.add(time_since_last_success(BY, SEL), width=8, height=5)
layout.add(budget_left("error", BY, SEL), width=8, height=5)
layout.add(flow_duration(BY, SEL), width=12)
layout.add(runs_by_result("target, result", SEL), width=12)

layout.row("Step $step", repeat="step")
layout.add(
    timeseries(
        "Latency of $step",
        [
            (
                histogram_quantile(q, "ksentinel_probe_step_duration_seconds_bucket", BY, STEP),
                "{{target}} " + name,
            )
            for q, name in QUANTILES
        ],
        unit="s",
    ),
    width=12,
)
layout.add(
    timeseries(
        "API errors of $step by code",
        [(rate_sum("ksentinel_api_errors_total", "target, code", STEP), "{{target}} {{code}}")],
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
