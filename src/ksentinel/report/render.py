"""Render a :class:`RunReport` to one self-contained HTML file and a JSON twin."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jinja2

from ksentinel.errors import ConfigError
from ksentinel.kaltura.redact import redact
from ksentinel.report.model import RunReport

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("ksentinel.report", "templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)


def _pretty(value: object) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, indent=2, sort_keys=True, default=str)
    return "" if value is None else str(value)


def _body(text: object) -> str:
    """A recorded body: indented when it is whole JSON, as it is otherwise (cut, described)."""
    try:
        return json.dumps(json.loads(str(text)), indent=2, ensure_ascii=False)
    except ValueError:
        return "" if text is None else str(text)


_ENV.filters["pretty"] = _pretty
_ENV.filters["body"] = _body


def render_html(report: RunReport) -> str:
    """The report as HTML; redacted once more as a last line of defence."""
    return redact(_ENV.get_template("report.html.j2").render(report=report))


def write_report(report: RunReport, html_path: Path, json_path: Path | None = None) -> Path:
    """Write the HTML (and JSON beside it unless told otherwise); returns the HTML path."""
    prepare_folder(html_path.parent, "report")
    html_path.write_text(render_html(report), encoding="utf-8")
    json_path = json_path or html_path.with_suffix(".json")
    json_path.write_text(
        redact(json.dumps(report.to_dict(), indent=2, sort_keys=True, default=str)), encoding="utf-8"
    )
    return html_path


def write_section_report(
    html_path: Path, *, title: str, target: str, started: float, duration: float, **section: Any
) -> Path:
    """A report of one command's single section (``traffic=...``, ``schema_diff=...``): HTML and JSON."""
    run = RunReport(
        title=title,
        target=target,
        started=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        duration=duration,
        **section,
    )
    return write_report(run, html_path)


def prepare_folder(folder: Path, option: str) -> Path:
    """Create ``folder`` (an output folder named by ``option``) before any work; one-line ``ConfigError``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option}: cannot create {folder}: {exc.strerror or exc}") from None
    return folder
