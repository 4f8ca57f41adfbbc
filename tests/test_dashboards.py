"""Dashboards and alerting as code: building, rules from [slo], lint, and push to a Grafana stand-in.

The promtool checks live in test_dashboards_promtool.py, the live exporters and the real Prometheus
in test_dashboards_live.py.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ksentinel.config import Config, load_config
from ksentinel.dashboards.build import ALERTING_FILE, RULES_FILE, build, write_build
from ksentinel.dashboards.command import dashboards_group
from ksentinel.dashboards.exported import exported_names
from ksentinel.dashboards.lint import lint, panels
from ksentinel.dashboards.loader import dashboard_uid
from ksentinel.dashboards.promql import balanced, concrete, metric_names
from ksentinel.dashboards.push import PushError, push
from ksentinel.dashboards.rules import ALERT_NAMES, generate_rules, objective_groups
from ksentinel.dashboards.settings import format_duration, parse_settings
from ksentinel.errors import ConfigError, TargetError
from ksentinel.slo import parse_slo

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "dashboards"
TITLES = {"Kaltura API overview", "Flow detail", "Load run"}
# the default [slo]: one objective group, a page and a ticket rule per budget burn, plus five shared alerts
# (KalturaFlowFailing, KalturaProbeAbsent, KalturaProbeMisconfigured, KalturaCacheStaleReads,
# KalturaCacheHitRatioLow)
DEFAULT_RULES = 9


@pytest.fixture(scope="module")
def built() -> Any:
    return build(Config(), SUITE)


def write_config(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "ksentinel.toml"
    path.write_text(text)
    return load_config(path)


# --- building ------------------------------------------------------------------------------------------


def test_build_twice_gives_identical_bytes(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    write_build(build(Config(), SUITE), first)
    write_build(build(Config(), SUITE), second)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert [str(f) for f in files] == sorted(
        [
            "dashboards/ksentinel-flow.json",
            "dashboards/ksentinel-load.json",
            "dashboards/ksentinel-overview.json",
            "grafana/provisioning/alerting/ksentinel.yml",
            "grafana/provisioning/dashboards/ksentinel.yml",
            "grafana/provisioning/datasources/ksentinel.yml",
            "prometheus/ksentinel.rules.yml",
        ]
    )
    for relative in files:
        assert (first / relative).read_bytes() == (second / relative).read_bytes(), relative
    # JSON with sorted keys, indented, newline at the end
    text = (first / "dashboards/ksentinel-overview.json").read_text()
    data = json.loads(text)
    assert text == json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_build_drops_dashboards_that_no_longer_exist(tmp_path: Path, built: Any) -> None:
    (tmp_path / "dashboards").mkdir()
    stale = tmp_path / "dashboards" / "ksentinel-gone.json"
    stale.write_text("{}")
    write_build(built, tmp_path)
    assert not stale.exists()


def test_dashboards_have_titles_uids_variables_and_units(built: Any) -> None:
    assert {d.title for d in built.dashboards} == TITLES
    assert {d.uid for d in built.dashboards} == {"ksentinel-overview", "ksentinel-flow", "ksentinel-load"}
    for item in built.dashboards:
        model = item.model
        assert model["uid"] == dashboard_uid(item.path) and model["id"] is None
        variables = {v["name"]: v for v in model["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        if item.uid != "ksentinel-load":  # load runs have no target label
            assert {"target", "flow"} <= set(variables)
        else:
            assert "flow" in variables
        for panel in panels(model):
            assert panel["title"]
            if panel["type"] != "row":
                assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
                assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_flow_detail_repeats_one_row_per_step(built: Any) -> None:
    flow = next(d for d in built.dashboards if d.uid == "ksentinel-flow")
    rows = [p for p in flow.model["panels"] if p["type"] == "row"]
    repeated = [r for r in rows if r.get("repeat") == "step"]
    assert len(repeated) == 1
    variables = {v["name"]: v for v in flow.model["templating"]["list"]}
    assert variables["flow"]["multi"] is False and "step" in variables


def test_overview_covers_the_issue_panels(built: Any) -> None:
    overview = next(d for d in built.dashboards if d.uid == "ksentinel-overview")
    exprs = " ".join(t["expr"] for p in panels(overview.model) for t in p.get("targets", []))
    for needle in (
        "ksentinel_probe_success",
        "histogram_quantile(0.5,",
        "histogram_quantile(0.95,",
        "histogram_quantile(0.99,",
        "ksentinel_api_errors_total",
        'ksentinel_cache_lookups_total{target=~"$target", result="hit"}',
        "ksentinel_probe_last_success_timestamp_seconds",
        "target_flow:ksentinel_probe_error_budget_remaining:ratio",
        'histogram_quantile(0.95, sum by (le, target) (rate(ksentinel_index_lag_seconds_bucket{target=~"$target"}',
    ):
        assert needle in exprs, needle
    lag = [p for p in panels(overview.model) if p["title"] == "Search index lag p95 by target"]
    assert len(lag) == 1 and lag[0]["fieldConfig"]["defaults"]["unit"] == "s"


def test_bad_dashboard_files_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "broken.dashboard.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ConfigError, match=r"broken\.dashboard\.py: RuntimeError: boom"):
        build(Config(), tmp_path)
    (tmp_path / "broken.dashboard.py").write_text("x = 1\n")
    with pytest.raises(ConfigError, match="assigns no grafanalib Dashboard"):
        build(Config(), tmp_path)
    (tmp_path / "broken.dashboard.py").unlink()
    with pytest.raises(ConfigError, match=r"no \*\.dashboard\.py files"):
        build(Config(), tmp_path)
    with pytest.raises(ConfigError, match="no such dashboards folder"):
        build(Config(), tmp_path / "missing")


def test_uid_from_file_name() -> None:
    assert dashboard_uid(Path("Flow Detail.dashboard.py")) == "ksentinel-flow-detail"
    with pytest.raises(ConfigError, match="40 characters"):
        dashboard_uid(Path(("x" * 40) + ".dashboard.py"))


# --- rules from [slo] ---------------------------------------------------------------------------------


def rules_by_name(groups: list[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for group in groups:
        for rule in group.rules:
            out.setdefault(rule.alert or rule.record, []).append(rule)
    return out


def test_default_rules_are_the_classic_burn_windows(built: Any) -> None:
    rules = rules_by_name(built.groups)
    assert set(ALERT_NAMES) <= set(rules)
    page = next(r for r in rules["KalturaFlowErrorBudgetBurn"] if r.labels["severity"] == "page")
    expr = page.expr
    assert "ratio_rate1h > (14.4 * 0.01) and target_flow:ksentinel_probe_runs_failed:ratio_rate5m" in expr
    assert "ratio_rate6h > (6 * 0.01) and target_flow:ksentinel_probe_runs_failed:ratio_rate30m" in expr
    ticket = next(r for r in rules["KalturaFlowErrorBudgetBurn"] if r.labels["severity"] == "ticket")
    texpr = ticket.expr
    assert "ratio_rate1d > (3 * 0.01)" in texpr and "ratio_rate2h > (3 * 0.01)" in texpr
    assert "ratio_rate3d > (1 * 0.01)" in texpr and "ratio_rate6h > (1 * 0.01)" in texpr
    assert (page.for_seconds, ticket.for_seconds) == (120, 900)
    # recording rule names follow level:metric:operations
    for name in rules:
        if ":" in name:
            assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", name), name
    # every alert: summary and description; no runbook link without [dashboards] runbook_base_url
    # (a relative one would be a dead link in Alertmanager and Grafana)
    for name in ALERT_NAMES:
        for rule in rules[name]:
            assert set(rule.annotations) == {"summary", "description"}, rule.annotations
            assert rule.annotations["summary"] and rule.annotations["description"]
            assert set(rule.grafana_annotations) == {"summary", "description"}
    # the Grafana copies are self-contained: no recorded series
    for name in ALERT_NAMES:
        for rule in rules[name]:
            assert not any(":" in m for m in metric_names(rule.grafana_expr)), rule.grafana_expr


def test_windows_scale_with_the_slo_window_but_not_below_the_minimum() -> None:
    slo = parse_slo({"default_flow": {"window": "7d", "availability": 0.999}})
    groups = generate_rules(slo, parse_settings({"min_rate_window": "1m"}))
    page = next(
        r for r in rules_by_name(groups)["KalturaFlowErrorBudgetBurn"] if r.labels["severity"] == "page"
    )
    # 7d/30d of 1h = 14m, of 5m = 70s, of 6h = 1h24m, of 30m = 7m; budget 0.001
    assert "ratio_rate14m > (14.4 * 0.001) and target_flow:ksentinel_probe_runs_failed:ratio_rate1m10s" in (
        page.expr
    )
    assert "ratio_rate1h24m > (6 * 0.001)" in page.expr
    short = generate_rules(
        parse_slo({"default_flow": {"window": "10m"}}),
        parse_settings({"min_rate_window": "10s", "for": "2s"}),
    )
    text = yaml.safe_dump([g.to_prometheus() for g in short])
    windows = set(re.findall(r"\[(\w+)\]", text))
    # 10m / 30d of 1d = 20s, of 3d = 1m, the shorter ones clamped to 10s; 30m is the cache window
    assert windows == {"10s", "20s", "1m", "10m", "30m"}, windows
    assert set(re.findall(r"for: (\w+)", text)) == {"2s"}


def test_flows_with_their_own_objective_get_their_own_rules() -> None:
    slo = parse_slo(
        {
            "flows": {
                "upload": {"availability": 0.995, "latency_seconds": 20.0},
                "list": {"availability": 0.995, "latency_seconds": 20.0},
                "session": {},  # same as the default: stays in the default group
            }
        }
    )
    groups = objective_groups(slo)
    assert [g.selector for g in groups] == ['flow!~"list|upload"', 'flow=~"list|upload"']
    rules = rules_by_name(generate_rules(slo, parse_settings({})))
    burns = rules["KalturaFlowErrorBudgetBurn"]
    assert len(burns) == 4 and len({r.uid for r in burns}) == 4 and len({r.title for r in burns}) == 4
    own = [r for r in burns if r.labels.get("slo_flows") == "list,upload"]
    assert own and all("(14.4 * 0.005)" in r.expr or "(3 * 0.005)" in r.expr for r in own)
    slow = [r.expr for r in rules["target_flow:ksentinel_probe_runs_slow:avg"]]
    assert any('{flow=~"list|upload"} > bool 20' in e for e in slow)
    assert any('{flow!~"list|upload"} > bool 10' in e for e in slow)


def test_grafana_alert_provisioning_shape(built: Any) -> None:
    doc = yaml.safe_load(built.files[ALERTING_FILE])
    assert doc["apiVersion"] == 1
    rules = [rule for group in doc["groups"] for rule in group["rules"]]
    prom = yaml.safe_load(built.files[RULES_FILE])
    alerts = [r for g in prom["groups"] for r in g["rules"] if "alert" in r]
    assert len(rules) == len(alerts) == DEFAULT_RULES
    assert len({r["uid"] for r in rules}) == len(rules)
    for group in doc["groups"]:
        assert {"orgId", "name", "folder", "interval", "rules"} <= set(group)
    for rule in rules:
        assert {
            "uid",
            "title",
            "condition",
            "data",
            "noDataState",
            "execErrState",
            "for",
            "annotations",
            "labels",
        } <= set(rule)
        assert len(rule["uid"]) <= 40 and re.fullmatch(r"[a-z0-9-]+", rule["uid"])
        refs = [d["refId"] for d in rule["data"]]
        assert rule["condition"] in refs
        for query in rule["data"]:
            assert {"refId", "relativeTimeRange", "datasourceUid", "model"} <= set(query)
            assert query["model"]["refId"] == query["refId"]
        assert rule["data"][0]["datasourceUid"] == "ksentinel-prometheus"
        assert rule["noDataState"] == "OK" and rule["execErrState"] == "Error"
        assert set(rule["annotations"]) == {"summary", "description"}  # no runbook_base_url set
    assert b"&id" not in built.files[ALERTING_FILE]  # no YAML anchors


RUNBOOK_BASE = "https://github.com/example/ksentinel/blob/main/docs/runbooks.md"


def test_runbook_links_are_absolute_when_a_base_url_is_set(tmp_path: Path) -> None:
    config = write_config(tmp_path, f'[dashboards]\nrunbook_base_url = "{RUNBOOK_BASE}"\n')
    result = build(config, SUITE)
    rules = rules_by_name(result.groups)
    for name in ALERT_NAMES:
        for rule in rules[name]:
            assert rule.annotations["runbook_url"] == f"{RUNBOOK_BASE}#{name.lower()}"
            assert rule.grafana_annotations["runbook_url"] == rule.annotations["runbook_url"]
    # the same links in both generated files: the Prometheus rule file and Grafana's provisioning
    prom = yaml.safe_load(result.files[RULES_FILE])
    alerts = {r["alert"]: r for g in prom["groups"] for r in g["rules"] if "alert" in r}
    assert alerts["KalturaFlowFailing"]["annotations"]["runbook_url"] == f"{RUNBOOK_BASE}#kalturaflowfailing"
    grafana = yaml.safe_load(result.files[ALERTING_FILE])
    links = {r["title"]: r["annotations"]["runbook_url"] for g in grafana["groups"] for r in g["rules"]}
    assert len(links) == DEFAULT_RULES
    assert links["KalturaProbeAbsent"] == f"{RUNBOOK_BASE}#kalturaprobeabsent"
    assert all(link.startswith(RUNBOOK_BASE + "#") for link in links.values())
    # each anchor is a section of docs/runbooks.md (GitHub's anchor of "## Name" is "#name")
    headings = re.findall(r"^## (\S+)$", (REPO / "docs" / "runbooks.md").read_text(), re.MULTILINE)
    anchors = {heading.lower() for heading in headings}
    assert {link.split("#", 1)[1] for link in links.values()} <= anchors
    # http works too (an internal wiki); surrounding blanks are dropped
    settings = parse_settings({"runbook_base_url": " http://wiki.internal:8080/ops/runbooks "})
    assert (
        settings.runbook("KalturaProbeAbsent") == "http://wiki.internal:8080/ops/runbooks#kalturaprobeabsent"
    )
    assert parse_settings({}).runbook("KalturaProbeAbsent") is None
    # ... and lint has nothing to warn about
    report = lint(result, exported_names(), promtool="/bin/true")
    assert report.ok and report.warnings == [], (report.problems, report.warnings)


def test_no_runbook_base_url_is_a_lint_warning_not_an_error(built: Any, tmp_path: Path) -> None:
    assert built.settings.runbook_base_url is None
    assert b"runbook_url" not in built.files[RULES_FILE] + built.files[ALERTING_FILE]
    report = lint(built, exported_names(), promtool="/bin/true")
    assert report.ok, report.problems
    assert len(report.warnings) == 1 and "runbook_base_url" in report.warnings[0]
    # the command prints it as one warning line and still passes
    runner = CliRunner()
    env = {"KSENTINEL_CONFIG": "", "KSENTINEL_PROMTOOL": "/bin/true"}
    result = runner.invoke(dashboards_group, ["--suite", str(SUITE), "lint"], env=env)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "no runbook_url annotation" in warnings[0], result.output
    assert "[dashboards] runbook_base_url" in warnings[0]
    config = tmp_path / "ksentinel.toml"
    config.write_text(f'[dashboards]\nrunbook_base_url = "{RUNBOOK_BASE}"\n')
    result = runner.invoke(
        dashboards_group, ["--config", str(config), "--suite", str(SUITE), "lint"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "warning:" not in result.output
    # with a base URL set, an alert that lost its link is a problem
    rules = rules_by_name(build(load_config(config), SUITE).groups)
    assert rules["KalturaFlowFailing"][0].annotations["runbook_url"]
    stripped = replace(built, settings=replace(built.settings, runbook_base_url=RUNBOOK_BASE))
    report = lint(stripped, exported_names(), promtool="/bin/true")
    assert any("KalturaFlowFailing: no runbook_url annotation" in p for p in report.problems), report.problems


def test_test_configuration_shortens_for_and_windows(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        '[slo.default_flow]\nwindow = "10m"\n\n[dashboards]\nfor = "2s"\ninterval = "1s"\n'
        'min_rate_window = "10s"\ncache_window = "30s"\n',
    )
    result = build(config, SUITE)
    prom = yaml.safe_load(result.files[RULES_FILE])
    assert {g["interval"] for g in prom["groups"]} == {"1s"}
    assert {r["for"] for g in prom["groups"] for r in g["rules"] if "for" in r} == {"2s"}
    grafana = yaml.safe_load(result.files[ALERTING_FILE])
    assert {r["for"] for g in grafana["groups"] for r in g["rules"]} == {"2s"}
    # an alert's own key beats `for`
    config = write_config(tmp_path, '[dashboards]\nfor = "2s"\nprobe_absent_for = "1m"\n')
    fors = {
        r["alert"]: r.get("for")
        for g in yaml.safe_load(build(config, SUITE).files[RULES_FILE])["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    assert fors["KalturaProbeAbsent"] == "1m" and fors["KalturaFlowFailing"] == "2s"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"fro": "1s"}, "dashboards.fro: unknown key; did you mean 'for'?"),
        ({"interval": 5}, 'dashboards.interval: expected a duration like "5m", got 5'),
        ({"interval": "0s"}, "dashboards.interval: must be longer than 0"),
        ({"cache_window": "soon"}, "dashboards.cache_window: bad duration 'soon'"),
        (
            {"cache_hit_ratio_min": 2},
            "dashboards.cache_hit_ratio_min: expected a ratio between 0 and 1, got 2",
        ),
        ({"folder": "a b"}, "dashboards.folder: a Grafana uid uses at most 40 letters"),
        ({"prometheus_url": ""}, "dashboards.prometheus_url: expected a non-empty string"),
        (
            {"runbook_base_url": "docs/runbooks.md"},
            'dashboards.runbook_base_url: expected an absolute http(s) URL like "https://',
        ),
        (
            {"runbook_base_url": "ftp://example.com/runbooks.md"},
            'expected an absolute http(s) URL like "https://github.com/ORG/ksentinel/blob/main/docs/'
            'runbooks.md", got "ftp://example.com/runbooks.md"',
        ),
        ({"runbook_base_url": "https:///runbooks.md"}, "dashboards.runbook_base_url: expected an absolute"),
        ({"runbook_base_url": "https://exa mple.com/r.md"}, "(no spaces)"),
        ({"runbook_base_url": "https://example.com/r.md#x"}, "without a '#fragment'"),
        ({"runbook_base_url": "http://[::1/r.md"}, "dashboards.runbook_base_url: expected an absolute"),
        ({"runbook_base_url": 5}, "dashboards.runbook_base_url: expected a non-empty string, got 5"),
        ({"runbook_url": "docs/runbooks.md"}, "dashboards.runbook_url: renamed to runbook_base_url"),
    ],
)
def test_bad_dashboards_settings_are_one_line_errors(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(table)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_slo_is_reported_by_build(tmp_path: Path) -> None:
    config = write_config(tmp_path, "[slo.flows.uplod]\navailability = 0.99\n")
    with pytest.raises(ConfigError, match="did you mean 'upload'"):
        build(config, SUITE)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 0.4, 59, 70, 3600, 5400, 2592000, 86400 * 3 + 1)] == [
        "0s",
        "1s",
        "59s",
        "1m10s",
        "1h",
        "1h30m",
        "30d",
        "3d1s",
    ]


# --- PromQL names and lint -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        (
            'sum by (le, step) (rate(ksentinel_probe_step_duration_seconds_bucket{flow=~"$flow"}'
            "[$__rate_interval]))",
            {"ksentinel_probe_step_duration_seconds_bucket"},
        ),
        ("a:b:c{x='y'} / on (target) group_left(flow) other_metric offset 5m", {"a:b:c", "other_metric"}),
        ("max without (instance) (x) > bool 1 and y unless z", {"x", "y", "z"}),
        ('{__name__="by_name", job="j"}', {"by_name"}),
        ("avg_over_time((x > bool 10)[1h:1m])", {"x"}),
        ("absent(foo) or vector(0)", {"foo"}),
        ("1 + 2 * time()", set()),
    ],
)
def test_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_grafana_variables_become_concrete_and_structure_is_checked() -> None:
    assert concrete('rate(x{t=~"$target",f="${flow}"}[$__rate_interval])') == 'rate(x{t=~"var",f="var"}[5m])'
    assert balanced("sum(rate(x[5m]))") is None
    assert balanced("sum(rate(x[5m])") == "unclosed '('"
    assert balanced("sum(x])") == "unbalanced ']'"


def test_lint_passes_on_the_shipped_suite(built: Any) -> None:
    # names, units, titles and annotations (promtool's parse: test_dashboards_promtool.py)
    report = lint(built, exported_names(), promtool="/bin/true")
    assert report.ok, report.problems
    assert report.checked > 60
    structural = lint(built, exported_names(), use_promtool=False)
    assert structural.ok, structural.problems
    assert any("promtool not found" in note for note in structural.notes)
    # an unusable promtool is a problem, not a silent skip
    broken = lint(built, exported_names(), promtool="/nonexistent/promtool")
    assert any("cannot run /nonexistent/promtool" in p for p in broken.problems)


def test_lint_finds_missing_units_titles_unknown_series_and_bad_promql(built: Any) -> None:
    model = json.loads(json.dumps(built.dashboards[0].model))
    panel = next(p for p in model["panels"] if p["type"] != "row")
    panel["fieldConfig"]["defaults"]["unit"] = ""
    panel["title"] = ""
    panel["targets"][0]["expr"] = "sum(rate(ksentinel_probe_made_up_total[5m])"
    broken = replace(built, dashboards=[replace(built.dashboards[0], model=model), *built.dashboards[1:]])
    report = lint(broken, exported_names(), promtool="/bin/true")
    text = "\n".join(report.problems)
    assert "has no unit" in text and "has no title" in text
    assert "reads ksentinel_probe_made_up_total, which no exporter exports nor rule records" in text
    structural = lint(broken, exported_names(), use_promtool=False)
    assert any("unclosed '('" in p for p in structural.problems)


# --- the click group -------------------------------------------------------------------------------


def test_cli_build_and_one_line_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "out"
    env = {"KSENTINEL_CONFIG": "", "KSENTINEL_GRAFANA_TOKEN": ""}
    result = runner.invoke(
        dashboards_group, ["--suite", str(SUITE), "build", "--out", str(out)], env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "3 dashboards" in result.output and (out / RULES_FILE).is_file()
    bad = tmp_path / "bad.toml"
    bad.write_text('[dashboards]\nfor = "soon"\n')
    result = runner.invoke(dashboards_group, ["--config", str(bad), "--suite", str(SUITE), "build"], env=env)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "ksentinel: error:" in result.output
    result = runner.invoke(
        dashboards_group, ["--suite", str(SUITE), "push", "--grafana-url", "http://127.0.0.1:9"], env=env
    )
    assert result.exit_code == 2 and "KSENTINEL_GRAFANA_TOKEN" in result.output


def test_cli_lint_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"KSENTINEL_CONFIG": "", "KSENTINEL_PROMTOOL": "/bin/true"}
    result = runner.invoke(dashboards_group, ["--suite", str(SUITE), "lint"], env=env)
    assert result.exit_code == 0, result.output
    assert "expressions OK" in result.output
    (tmp_path / "bare.dashboard.py").write_text(
        "from grafanalib.core import Dashboard, Target, TimeSeries\n"
        "dashboard = Dashboard(title='Bare', panels=[TimeSeries(title='', targets=[Target(expr='nope_total')])])\n"
    )
    result = runner.invoke(dashboards_group, ["--suite", str(tmp_path), "lint"], env=env)
    assert result.exit_code == 1
    assert "ksentinel-bare.json: panel #1: has no title" in result.output
    assert "ksentinel-bare.json: panel #1: has no unit" in result.output
    assert "ksentinel-bare.json: panel #1: does not read from the ${datasource} variable" in result.output
    assert "reads nope_total, which no exporter exports nor rule records" in result.output


# --- push against a Grafana stand-in ------------------------------------------------------------------

TOKEN = "glsa_test_token_0123456789abcdef"
NO_DATA_STATES = {"NoData", "Alerting", "OK"}
EXEC_ERR_STATES = {"OK", "Alerting", "Error"}
RULE_FIELDS = {
    "uid",
    "title",
    "condition",
    "data",
    "noDataState",
    "execErrState",
    "for",
    "annotations",
    "labels",
    "folderUID",
    "ruleGroup",
    "orgID",
}


class FakeGrafana:
    """Just enough of Grafana's dashboard, folder and alerting provisioning API, strict about shapes."""

    def __init__(self) -> None:
        self.datasources = {"ksentinel-prometheus"}
        self.folders: dict[str, str] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.versions: dict[str, int] = {}
        self.rules: dict[str, dict[str, Any]] = {}
        self.intervals: dict[tuple[str, str], int] = {}
        self.log: list[tuple[str, str]] = []
        self.problems: list[str] = []
        self.delay = 0.0

    def handle(self, method: str, path: str, headers: Any, body: Any) -> tuple[int, Any]:
        self.log.append((method, path))
        if self.delay:
            time.sleep(self.delay)
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, {"message": "invalid API key"}
        if method in ("POST", "PUT") and not str(headers.get("Content-Type", "")).startswith(
            "application/json"
        ):
            self.problems.append(f"{method} {path}: not JSON")
            return 415, {"message": "content type"}
        parts = path.strip("/").split("/")
        if method == "GET" and parts[:3] == ["api", "datasources", "uid"]:
            return (
                (200, {"uid": parts[3], "type": "prometheus"}) if parts[3] in self.datasources else (404, {})
            )
        if parts[:2] == ["api", "folders"]:
            if method == "GET":
                uid = parts[2]
                return (200, {"uid": uid, "title": self.folders[uid]}) if uid in self.folders else (404, {})
            if method == "POST":
                if not {"uid", "title"} <= set(body):
                    return 400, {"message": "folder needs uid and title"}
                if body["uid"] in self.folders:
                    return 409, {"message": "folder exists"}
                self.folders[body["uid"]] = body["title"]
                return 200, {"uid": body["uid"], "title": body["title"]}
        if path == "/api/dashboards/db" and method == "POST":
            return self.post_dashboard(body)
        if path == "/api/v1/provisioning/alert-rules" and method == "POST":
            return self.post_rule(body)
        if parts[:4] == ["api", "v1", "provisioning", "alert-rules"] and len(parts) == 5:
            uid = parts[4]
            if method == "GET":
                return (200, self.rules[uid]) if uid in self.rules else (404, {"message": "not found"})
            if method == "PUT":
                if uid not in self.rules:
                    return 404, {"message": "not found"}
                return self.put_rule(uid, body)
        if parts[:4] == ["api", "v1", "provisioning", "folder"] and parts[5:6] == ["rule-groups"]:
            return self.rule_group(method, parts[4], parts[6], body)
        return 404, {"message": f"no route {method} {path}"}

    def post_dashboard(self, body: dict[str, Any]) -> tuple[int, Any]:
        dashboard = body.get("dashboard")
        if not isinstance(dashboard, dict) or not dashboard.get("uid") or not dashboard.get("title"):
            return 400, {"message": "dashboard needs uid and title"}
        if dashboard.get("id") is not None:
            self.problems.append("dashboard id must be null for a push by uid")
        if body.get("folderUid") not in self.folders:
            return 400, {"message": "folder not found"}
        uid = dashboard["uid"]
        if uid in self.dashboards and body.get("overwrite") is not True:
            return 412, {
                "message": "The dashboard has been changed by someone else",
                "status": "version-mismatch",
            }
        self.dashboards[uid] = dashboard
        self.versions[uid] = self.versions.get(uid, 0) + 1
        return 200, {
            "id": 1,
            "uid": uid,
            "url": f"/d/{uid}",
            "status": "success",
            "version": self.versions[uid],
        }

    def check_rule(self, body: dict[str, Any]) -> str | None:
        missing = RULE_FIELDS - set(body)
        if missing:
            return f"missing {sorted(missing)}"
        if body["folderUID"] not in self.folders:
            return "folder not found"
        if body["noDataState"] not in NO_DATA_STATES or body["execErrState"] not in EXEC_ERR_STATES:
            return "bad state"
        if not re.fullmatch(r"\d+[smh]|\d+m\d+s|0s", body["for"]):
            return f"bad for {body['for']!r}"
        refs = []
        for query in body["data"]:
            if not {"refId", "relativeTimeRange", "datasourceUid", "model"} <= set(query):
                return "bad query"
            if query["datasourceUid"] not in self.datasources | {"__expr__"}:
                return f"data source {query['datasourceUid']} not found"
            refs.append(query["refId"])
        if body["condition"] not in refs:
            return "condition names no query"
        return None

    def post_rule(self, body: dict[str, Any]) -> tuple[int, Any]:
        problem = self.check_rule(body)
        if problem:
            return 400, {"message": problem}
        if body["uid"] in self.rules:
            return 409, {"message": "a rule with this uid already exists"}
        self.rules[body["uid"]] = body
        return 201, body

    def put_rule(self, uid: str, body: dict[str, Any]) -> tuple[int, Any]:
        problem = self.check_rule(body)
        if problem:
            return 400, {"message": problem}
        if body["uid"] != uid:
            return 400, {"message": "uid mismatch"}
        self.rules[uid] = body
        return 200, body

    def rule_group(self, method: str, folder: str, group: str, body: Any) -> tuple[int, Any]:
        members = [r for r in self.rules.values() if r["folderUID"] == folder and r["ruleGroup"] == group]
        if method == "GET":
            if not members:
                return 404, {"message": "rule group not found"}
            interval = self.intervals.get((folder, group), 60)
            return 200, {"title": group, "folderUid": folder, "interval": interval, "rules": members}
        if method == "PUT":
            if not isinstance(body.get("interval"), int) or body.get("title") != group:
                return 400, {"message": "bad rule group"}
            keep = {r["uid"] for r in body["rules"]}
            for rule in members:
                if rule["uid"] not in keep:
                    del self.rules[rule["uid"]]
            self.intervals[(folder, group)] = body["interval"]
            return 200, body
        return 405, {}


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    fake = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            status, answer = fake.handle(self.command, self.path, self.headers, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_push_uploads_dashboards_and_rules_and_is_idempotent(grafana: Any, built: Any) -> None:
    fake, url = grafana
    first = push(built, url, TOKEN)
    assert first.folder_created and first.dashboards == 3
    assert len(first.rules_created) == DEFAULT_RULES and first.rules_updated == []
    assert fake.problems == []
    assert set(fake.dashboards) == {"ksentinel-overview", "ksentinel-flow", "ksentinel-load"}
    assert len(fake.rules) == DEFAULT_RULES
    assert {r["ruleGroup"] for r in fake.rules.values()} == {
        "ksentinel-slo",
        "ksentinel-probe",
        "ksentinel-cache",
    }
    assert fake.intervals == {}  # Grafana's default interval (60s) is already the configured one
    snapshot = (json.dumps(fake.dashboards, sort_keys=True), json.dumps(fake.rules, sort_keys=True))

    fake.log.clear()
    second = push(built, url, TOKEN)
    assert (
        not second.folder_created
        and second.rules_created == []
        and len(second.rules_updated) == DEFAULT_RULES
    )
    assert (json.dumps(fake.dashboards, sort_keys=True), json.dumps(fake.rules, sort_keys=True)) == snapshot
    assert len(fake.rules) == DEFAULT_RULES and len(fake.dashboards) == 3  # no duplicates
    assert ("POST", "/api/v1/provisioning/alert-rules") not in fake.log
    assert all(m != "PUT" or "/alert-rules/" in p for m, p in fake.log)  # the groups were already right
    assert fake.log.count(("POST", "/api/dashboards/db")) == 3


def test_push_drops_rules_ksentinel_no_longer_generates(grafana: Any, built: Any) -> None:
    fake, url = grafana
    push(built, url, TOKEN)
    old = dict(next(iter(fake.rules.values())))
    old["uid"] = "ks-a-rule-of-an-older-build"
    fake.rules[old["uid"]] = old
    result = push(built, url, TOKEN)
    assert result.rules_dropped == ["ks-a-rule-of-an-older-build"]
    assert "ks-a-rule-of-an-older-build" not in fake.rules and len(fake.rules) == DEFAULT_RULES


def test_push_sets_the_group_interval(grafana: Any, tmp_path: Path) -> None:
    fake, url = grafana
    result = build(write_config(tmp_path, '[dashboards]\ninterval = "30s"\n'), SUITE)
    first = push(result, url, TOKEN)
    assert sorted(first.groups_updated) == ["ksentinel-cache", "ksentinel-probe", "ksentinel-slo"]
    assert set(fake.intervals.values()) == {30}
    assert push(result, url, TOKEN).groups_updated == []
    assert len(fake.rules) == DEFAULT_RULES


def test_push_errors_are_one_line(grafana: Any, built: Any) -> None:
    fake, url = grafana
    with pytest.raises(PushError) as info:
        push(built, url, "wrong-token")
    assert (
        str(info.value) == "Grafana GET /api/datasources/uid/ksentinel-prometheus: HTTP 401: invalid API key"
    )
    fake.datasources.clear()
    with pytest.raises(PushError, match="no datasource with uid 'ksentinel-prometheus'"):
        push(built, url, TOKEN)
    fake.datasources.add("ksentinel-prometheus")
    fake.delay = 1.0
    with pytest.raises(TargetError, match="timed out"):
        push(built, url, TOKEN, timeout=0.2)
    with pytest.raises(TargetError, match="cannot reach Grafana"):
        push(built, "http://127.0.0.1:9", TOKEN, timeout=2)
    with pytest.raises(ConfigError, match="expected http"):
        push(built, "grafana:3000", TOKEN)


def test_push_command_reads_the_token_from_the_environment(grafana: Any, tmp_path: Path) -> None:
    fake, url = grafana
    result = CliRunner().invoke(
        dashboards_group,
        ["--suite", str(SUITE), "push", "--grafana-url", url],
        env={"KSENTINEL_GRAFANA_TOKEN": TOKEN, "KSENTINEL_CONFIG": str(tmp_path / "none.toml")},
    )
    # an explicit config file that does not exist is a one-line usage error
    assert result.exit_code == 2 and "no such file" in result.output
    (tmp_path / "ksentinel.toml").write_text("")
    result = CliRunner().invoke(
        dashboards_group,
        ["--suite", str(SUITE), "push", "--grafana-url", url],
        env={"KSENTINEL_GRAFANA_TOKEN": TOKEN, "KSENTINEL_CONFIG": str(tmp_path / "ksentinel.toml")},
    )
    assert result.exit_code == 0, result.output
    assert f"3 dashboards, {DEFAULT_RULES} alert rules created, 0 updated" in result.output
    assert TOKEN not in result.output
    assert len(fake.rules) == DEFAULT_RULES
