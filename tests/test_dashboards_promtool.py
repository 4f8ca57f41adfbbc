"""The generated rules through Prometheus' own tools: ``promtool check rules``, ``promtool test rules``
(the unit tests in dashboards/rules/tests/) and ``ksentinel dashboards lint`` with promtool.

Without ``promtool`` (Debian's ``prometheus`` package) these tests skip, unless
``KSENTINEL_REQUIRE_SYSTEM_DEPS=1`` (CI), where a missing promtool fails them.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from ksentinel.config import Config
from ksentinel.dashboards.build import RULES_FILE, build, write_build
from ksentinel.dashboards.exported import exported_names
from ksentinel.dashboards.lint import lint
from ksentinel.dashboards.rules import ALERT_NAMES
from tests import helpers

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "dashboards"
RULE_TESTS = SUITE / "rules" / "tests"
RUNBOOKS = REPO / "docs" / "runbooks.md"


def system_binary(name: str) -> str:
    return helpers.system_binary(name, "prometheus")


@pytest.fixture(scope="module")
def promtool() -> str:
    return system_binary("promtool")


@pytest.fixture(scope="module")
def built() -> Any:
    return build(Config(), SUITE)


def test_promtool_check_rules_passes_on_the_generated_rule_file(
    promtool: str, built: Any, tmp_path: Path
) -> None:
    write_build(built, tmp_path)
    proc = subprocess.run(
        [promtool, "check", "rules", str(tmp_path / RULES_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # 20 recording rules and 9 alerts (KalturaProbeMisconfigured is the ninth)
    assert "SUCCESS: 29 rules found" in proc.stdout


@pytest.mark.slow
def test_promtool_unit_tests_pass(promtool: str, built: Any, tmp_path: Path) -> None:
    # the unit tests name the rule file as ../../build/prometheus/ksentinel.rules.yml: lay the
    # suite out the same way in a scratch folder, with a fresh build of the default configuration
    suite = tmp_path / "dashboards"
    shutil.copytree(RULE_TESTS, suite / "rules" / "tests")
    write_build(built, suite / "build")
    files = sorted(p.name for p in (suite / "rules" / "tests").glob("*.yml"))
    assert files
    proc = subprocess.run(
        [promtool, "test", "rules", *files],
        cwd=suite / "rules" / "tests",
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert proc.stdout.count("SUCCESS") == len(files)


def test_every_alert_is_unit_tested_firing_and_silent() -> None:
    firing: dict[str, set[str]] = {name: set() for name in ALERT_NAMES}
    silent: set[str] = set()
    for path in sorted(RULE_TESTS.glob("*.yml")):
        doc = yaml.safe_load(path.read_text())
        assert doc["rule_files"] == ["../../build/prometheus/ksentinel.rules.yml"], path.name
        for test in doc["tests"]:
            for case in test.get("alert_rule_test", []):
                name = case["alertname"]
                assert name in firing, f"{path.name}: unknown alert {name}"
                if case.get("exp_alerts"):
                    for alert in case["exp_alerts"]:
                        firing[name].add(alert["exp_labels"]["severity"])
                        # the default configuration sets no [dashboards] runbook_base_url: no link
                        assert set(alert["exp_annotations"]) == {"summary", "description"}
                else:
                    silent.add(name)
    for name in ALERT_NAMES:
        assert firing[name], f"{name} is never shown firing"
        assert name in silent, f"{name} is never shown silent"
    for name in ("KalturaFlowErrorBudgetBurn", "KalturaFlowLatencyBudgetBurn"):
        assert firing[name] == {"page", "ticket"}, name


def test_every_alert_has_a_runbook_section() -> None:
    text = RUNBOOKS.read_text()
    for name in ALERT_NAMES:
        assert f"\n## {name}\n" in text, name


def test_lint_parses_every_expression_with_promtool(promtool: str, built: Any) -> None:
    report = lint(built, exported_names(), promtool=promtool)
    assert report.ok, report.problems
    assert not report.notes
    model = {**built.dashboards[0].model}
    panel = next(p for p in model["panels"] if p["type"] != "row")
    model["panels"] = [{**panel, "targets": [{**panel["targets"][0], "expr": "sum by (target (up)"}]}]
    broken = replace(built, dashboards=[replace(built.dashboards[0], model=model)])
    report = lint(broken, exported_names(), promtool=promtool)
    assert len(report.problems) == 1, report.problems
    where = f"{built.dashboards[0].filename}: panel {panel['title']!r} A"
    assert report.problems[0].startswith(f"{where}: could not parse expression"), report.problems
