"""Load run: users, requests, failures and latency per step of a ``ksentinel load`` run (``ksentinel_load_*``)."""

from __future__ import annotations

from ksentinel.dashboards.kit import (
    Layout,
    datasource_variable,
    label_variable,
    make_dashboard,
    stat,
    timeseries,
)
from ksentinel.dashboards.panels import QUANTILES, RATE, histogram_quantile, rate_sum

SEL = 'step=~"$step"'


layout = Layout()
layout.row("Users and throughput")
layout.add(stat("Users", [("sum(ksentinel_load_users)", "users")], unit="none"), width=6, height=6)
layout.add(
    stat(
        "Failure ratio",
        [
            (
                f"sum(rate(ksentinel_load_failures_total{{{SEL}}}[{RATE}]))"
                f" / sum(rate(ksentinel_load_requests_total{{{SEL}}}[{RATE}]))",
                "failures",
            )
        ],
        unit="percentunit",
        thresholds=[(None, "green"), (0.01, "orange"), (0.05, "red")],
    ),
    width=6,
    height=6,
)
layout.add(
    timeseries("Users over time", [("sum(ksentinel_load_users)", "users")], unit="none"),
    width=12,
    height=6,
)
layout.add(
    timeseries(
        "Requests per step",
        [(rate_sum("ksentinel_load_requests_total", "step", SEL), "{{step}}")],
        unit="reqps",
        stacked=True,
    ),
    width=12,
)
layout.add(
    timeseries(
        "Failures per step and code",
        [(rate_sum("ksentinel_load_failures_total", "step, code", SEL), "{{step}} {{code}}")],
        unit="reqps",
        stacked=True,
    ),
    width=12,
)

layout.row("Latency per step")
for q, name in QUANTILES:
    layout.add(
        timeseries(
            f"Request latency {name}",
            [
                (
                    histogram_quantile(q, "ksentinel_load_request_duration_seconds_bucket", "step", SEL),
                    "{{step}}",
                )
            ],
            unit="s",
        ),
        width=8,
    )
layout.add(
    timeseries(
        "Mean request latency",
        [
            (
                f"sum by (step) (rate(ksentinel_load_request_duration_seconds_sum{{{SEL}}}[{RATE}]))"
                f" / sum by (step) (rate(ksentinel_load_request_duration_seconds_count{{{SEL}}}[{RATE}]))",
                "{{step}}",
            )
        ],
        unit="s",
    ),
    width=24,
)

dashboard = make_dashboard(
    "Load run",
    layout,
    [
        datasource_variable(),
        # load runs have no target label: the flow is the first part of the dotted step name
        label_variable("flow", "label_values(ksentinel_load_requests_total, step)", regex="/^([^.]+)\\./"),
        label_variable("step", 'label_values(ksentinel_load_requests_total{step=~"($flow)\\\\..*"}, step)'),
    ],
    description="A ksentinel load run (Locust): users, requests, failures and latency per flow step.",
    refresh="10s",
)
