"""``ksentinel dashboards lint``: what must hold for every generated dashboard and rule.

- every PromQL expression parses (panels, variables, recording rules, alerts in both encodings):
  ``promtool check rules`` on the generated rule file and on a scratch file holding every other
  expression as a recording rule (Grafana's ``$variables`` made concrete first);
- every series an expression reads is exported by the probe or the load exporter, or recorded by
  a generated recording rule;
- every panel has a title and a unit and reads from the ``${datasource}`` variable;
- every alert has ``summary``, ``description`` and ``runbook_url`` annotations; without
  ``[dashboards] runbook_base_url`` alerts carry no ``runbook_url``, and the report warns about it
  (a warning, not a problem: the rules work, only the link is missing).

Without ``promtool`` (Debian's ``prometheus`` package) expressions get only a structural check and
the report says so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ksentinel.dashboards.build import RULES_FILE, Build, dump_yaml
from ksentinel.dashboards.promql import balanced, concrete, metric_names

__all__ = ["Expression", "LintReport", "expressions", "find_promtool", "lint", "panels"]

ENV_PROMTOOL = "KSENTINEL_PROMTOOL"
REQUIRED_ANNOTATIONS = ("summary", "description", "runbook_url")
NO_RUNBOOK_WARNING = (
    "alerts carry no runbook_url annotation: set [dashboards] runbook_base_url to the absolute URL of "
    "docs/runbooks.md (e.g. https://github.com/ORG/ksentinel/blob/main/docs/runbooks.md) so that "
    "Alertmanager and Grafana link each alert to its runbook"
)
PROMTOOL_TIMEOUT = 60.0
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Expression:
    where: str  # "ksentinel-overview.json: panel 'Cache hit ratio' A"
    expr: str
    self_contained: bool = False  # may read exported series only (Grafana-managed alerts)


@dataclass
class LintReport:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # worth fixing, but not a failure
    checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def find_promtool() -> str | None:
    return os.environ.get(ENV_PROMTOOL) or shutil.which("promtool")


def panels(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of a dashboard model, rows and the panels of collapsed rows included."""
    for panel in model.get("panels", []):
        yield panel
        yield from panel.get("panels", []) or []


def panel_name(panel: dict[str, Any], position: int) -> str:
    """How messages name a panel: its title, else its position (1-based) in the dashboard."""
    title = panel.get("title")
    return f"panel {title!r}" if title else f"panel #{position}"


def expressions(result: Build) -> list[Expression]:
    """Every PromQL expression of the build, with where it comes from."""
    found: list[Expression] = []
    for item in result.dashboards:
        for position, panel in enumerate(panels(item.model), 1):
            for target in panel.get("targets", []) or []:
                if target.get("expr"):
                    where = (
                        f"{item.filename}: {panel_name(panel, position)} {target.get('refId', '')}".rstrip()
                    )
                    found.append(Expression(where, target["expr"]))
        for variable in item.model.get("templating", {}).get("list", []):
            query = variable.get("query")
            if variable.get("type") == "query" and isinstance(query, str):
                match = _LABEL_VALUES.match(query)
                if match:
                    found.append(Expression(f"{item.filename}: variable ${variable['name']}", match.group(1)))
    for group in result.groups:
        for rule in group.rules:
            name = rule.record or rule.title
            found.append(Expression(f"{RULES_FILE}: {group.name} {name}", rule.expr))
            if rule.alert:
                found.append(
                    Expression(f"Grafana alert {rule.title}", rule.grafana_expr, self_contained=True)
                )
    return found


def lint(
    result: Build, exported: set[str], *, promtool: str | None = None, use_promtool: bool = True
) -> LintReport:
    """Check ``result``; ``promtool`` overrides the one on PATH, ``use_promtool=False`` skips it."""
    report = LintReport()
    exprs = expressions(result)
    report.checked = len(exprs)
    _check_panels(result, report)
    _check_alerts(result, report)
    recorded = {rule.record for group in result.groups for rule in group.rules if rule.record}
    known = exported | recorded
    for item in exprs:
        for name in sorted(metric_names(item.expr) - (exported if item.self_contained else known)):
            what = "no exporter exports" if item.self_contained else "no exporter exports nor rule records"
            report.problems.append(f"{item.where}: reads {name}, which {what}")
    promtool = (promtool or find_promtool()) if use_promtool else None
    if promtool:
        _promtool_parse(promtool, result, exprs, report)
    else:
        report.notes.append(
            "promtool not found: PromQL checked only structurally (install Debian's prometheus package "
            f"or set {ENV_PROMTOOL})"
        )
        for item in exprs:
            problem = balanced(concrete(item.expr))
            if problem:
                report.problems.append(f"{item.where}: {problem}")
    return report


def _check_panels(result: Build, report: LintReport) -> None:
    for item in result.dashboards:
        for position, panel in enumerate(panels(item.model), 1):
            title = panel.get("title")
            where = f"{item.filename}: {panel_name(panel, position)}"
            if not title:
                report.problems.append(f"{where}: has no title")
            if panel.get("type") == "row":
                continue
            unit = (panel.get("fieldConfig") or {}).get("defaults", {}).get("unit")
            if not unit:
                report.problems.append(f"{where}: has no unit")
            datasource = panel.get("datasource")
            uid = datasource.get("uid") if isinstance(datasource, dict) else datasource
            if uid != "${datasource}":
                report.problems.append(f"{where}: does not read from the ${{datasource}} variable")


def _check_alerts(result: Build, report: LintReport) -> None:
    required = REQUIRED_ANNOTATIONS
    if result.settings.runbook_base_url is None:
        report.warnings.append(NO_RUNBOOK_WARNING)
        required = tuple(key for key in required if key != "runbook_url")
    for group in result.groups:
        for rule in group.rules:
            if not rule.alert:
                continue
            for key in required:
                if not rule.annotations.get(key) or not rule.grafana_annotations.get(key):
                    report.problems.append(f"{RULES_FILE}: alert {rule.title}: no {key} annotation")


def _promtool_parse(promtool: str, result: Build, exprs: list[Expression], report: LintReport) -> None:
    scratch = {
        "groups": [
            {
                "name": "ksentinel-lint",
                "rules": [
                    {"record": f"lint:expr_{i}", "expr": concrete(e.expr)} for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    with tempfile.TemporaryDirectory(prefix="ksentinel-lint-") as tmp:
        rules = Path(tmp) / "ksentinel.rules.yml"
        rules.write_bytes(result.files[RULES_FILE])
        expressions_file = Path(tmp) / "expressions.yml"
        expressions_file.write_bytes(dump_yaml(scratch))
        for path, label in ((rules, RULES_FILE), (expressions_file, None)):
            output = _run(promtool, path)
            if output is None:
                continue
            if output.startswith("!"):
                report.problems.append(output[1:])
                return
            for line in output.splitlines():
                match = re.search(r'"lint:expr_(\d+)": (.*)$', line)
                if label is None and match:
                    report.problems.append(f"{exprs[int(match.group(1))].where}: {match.group(2)}")
                elif line.startswith(str(path)):
                    report.problems.append(f"{label or 'expression'}: {line[len(str(path)) + 2 :]}")


def _run(promtool: str, path: Path) -> str | None:
    """``None`` when promtool accepts the file, else its complaints (``!`` + message: it did not run)."""
    try:
        proc = subprocess.run(
            [promtool, "check", "rules", str(path)],
            capture_output=True,
            text=True,
            timeout=PROMTOOL_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"!cannot run {promtool}: {exc}"
    if proc.returncode == 0:
        return None
    return (
        proc.stdout + proc.stderr
    ).strip() or f"!{promtool} check rules failed with exit {proc.returncode}"
