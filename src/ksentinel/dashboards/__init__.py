"""Dashboards and alerting as code: Grafana dashboards (grafanalib), SLO rules, provisioning, push.

The suite folder ``dashboards/`` holds ``*.dashboard.py`` files (loaded by path, never imported as a
package) and the promtool unit tests in ``dashboards/rules/tests/``; this package builds from them and
from ``[slo]`` / ``[dashboards]`` of ``ksentinel.toml``:

    settings   the [dashboards] section
    kit        grafanalib building blocks the dashboard files use
    loader     loading the dashboard files, uids from file names
    promql     a small PromQL lexer (metric names, Grafana variables)
    rules      recording rules and multi-window multi-burn-rate alerts from [slo]
    grafana    Grafana-managed alert rules and provisioning files
    build      writing it all deterministically
    exported   the series names the probe and load exporters export
    lint       parse (promtool), names, units and titles
    push       Grafana's HTTP API
    command    the ``ksentinel dashboards`` click group
"""
