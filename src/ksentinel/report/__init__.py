"""Run reports: one self-contained HTML file (jinja2, inline CSS and SVG, no JavaScript) plus JSON."""

from ksentinel.report.model import CheckResult, ContractSection, RunReport
from ksentinel.report.render import render_html, write_report

__all__ = ["CheckResult", "ContractSection", "RunReport", "render_html", "write_report"]
