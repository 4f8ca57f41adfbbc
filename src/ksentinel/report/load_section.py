"""The load section of the run report: a plain dict for ``templates/_load.html.j2``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ksentinel.kaltura.redact import redact
from ksentinel.report.charts import load_charts

if TYPE_CHECKING:
    from ksentinel.load.runner import LoadOutcome


def _href(path: Path | None, report_dir: Path) -> str:
    """``path`` relative to the report's folder, as a URL path ("" when there is no such file)."""
    if path is None or not path.exists():
        return ""
    try:
        relative = Path(os.path.relpath(path.absolute(), report_dir.absolute()))
    except ValueError:  # another drive (Windows): no relative path
        return path.absolute().as_uri()
    return quote(relative.as_posix())


def load_section(outcome: LoadOutcome, report_dir: Path) -> dict[str, Any]:
    """The dict the load partial renders (JSON-ready; ``charts`` are inline SVG strings)."""
    summary = outcome.summary or {}
    message = outcome.message
    if not message and outcome.interrupted:
        message = "the run was interrupted: the statistics cover what ran until then"
    return {
        "profile": outcome.profile,
        "run_tag": outcome.run_tag,
        "exit_code": outcome.exit_code,
        "ok": outcome.exit_code == 0,
        "rows": [
            {
                "slo": row.slo,
                "step": row.step,
                "objective_text": row.objective_text,
                "measured_text": row.measured_text,
                "verdict": row.verdict,
            }
            for row in outcome.rows
        ],
        "verdict_line": outcome.verdict_line,  # "SLOs: 36 met, 0 missed, throughput not set"
        "totals": dict(summary.get("totals") or {}),
        "duration": float(summary.get("duration_seconds") or 0.0),
        "charts": load_charts(summary),
        "locust_html": _href(outcome.report_path, report_dir),
        "message": redact(message),
    }
