"""The dashboards section of a run report: what ``dashboards build`` wrote, linked from the report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ksentinel.dashboards.build import DASHBOARDS_DIR, RULES_FILE, Build


def dashboards_section(result: Build, out: Path, report_dir: Path) -> dict[str, Any]:
    """Dashboards and alert rules written under ``out``, with links relative to ``report_dir``."""

    def href(relative: str) -> str:
        return Path(os.path.relpath(out / relative, report_dir)).as_posix()

    alerts = [
        {"name": rule.alert, "severity": str(rule.labels.get("severity", "")), "for": rule.for_seconds}
        for group in result.groups
        for rule in group.rules
        if rule.alert
    ]
    records = sum(1 for group in result.groups for rule in group.rules if rule.record)
    return {
        "ok": True,
        "dashboards": [
            {"title": item.title, "href": href(f"{DASHBOARDS_DIR}/{item.filename}")}
            for item in result.dashboards
        ],
        "rules_href": href(RULES_FILE),
        "alerts": alerts,
        "records": records,
        "files": [href(relative) for relative in sorted(result.files)],
    }
