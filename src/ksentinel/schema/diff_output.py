"""What ``ksentinel schema diff`` concluded, and its three outputs: a table, JSON and JUnit XML.

The verdict follows ``--fail-on``: the rows that are not ignored and at least that severe fail the
diff (exit 1); ``never`` only reports.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from ksentinel.schema.diff import SEVERITIES, Change, severity_rank

FAIL_ON = ("breaking", "warning", "info", "never")
EXIT_OK, EXIT_FAILED = 0, 1

_WIDTHS = {"rule": 26, "place": 64, "old": 44, "new": 44}
_AFFECTED_SHOWN = 3


@dataclass(frozen=True)
class DiffSide:
    """One of the two schemas: where it came from and its ``apiVersion``."""

    source: str
    api_version: str

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "api_version": self.api_version}


@dataclass
class DiffOutcome:
    old: DiffSide
    new: DiffSide
    changes: list[Change] = field(default_factory=list)
    fail_on: str = "breaking"
    #: what ``--scope`` kept, in words (None: the whole schemas)
    scope: str | None = None
    ignore_file: str | None = None
    duration: float = 0.0

    def __post_init__(self) -> None:
        if self.fail_on not in FAIL_ON:
            raise ValueError(f"fail_on must be one of {', '.join(FAIL_ON)}")

    def counts(self) -> dict[str, int]:
        """Rows by severity (ignored rows only under ``ignored``), and ``total``."""
        counts = dict.fromkeys((*SEVERITIES, "ignored"), 0)
        for change in self.changes:
            counts["ignored" if change.ignored else change.severity] += 1
        counts["total"] = len(self.changes)
        return counts

    def severe_enough(self, change: Change) -> bool:
        """Whether the row's severity reaches ``--fail-on`` (ignored or not)."""
        return self.fail_on != "never" and severity_rank(change.severity) <= severity_rank(self.fail_on)

    def fails(self, change: Change) -> bool:
        return not change.ignored and self.severe_enough(change)

    def failing(self) -> list[Change]:
        return [change for change in self.changes if self.fails(change)]

    @property
    def ok(self) -> bool:
        return not self.failing()

    @property
    def verdict(self) -> str:
        return "PASS" if self.ok else "FAIL"

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else EXIT_FAILED

    def summary(self) -> str:
        counts = self.counts()
        scope = f" (scope: {self.scope})" if self.scope else ""
        return (
            f"schema diff: API {self.old.api_version} ({self.old.source}) -> API {self.new.api_version} "
            f"({self.new.source}){scope}: {counts['breaking']} breaking, {counts['warning']} warning, "
            f"{counts['info']} info, {counts['ignored']} ignored; fail on {self.fail_on}: {self.verdict}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old.to_dict(),
            "new": self.new.to_dict(),
            "scope": self.scope,
            "ignore_file": self.ignore_file,
            "fail_on": self.fail_on,
            "counts": self.counts(),
            "ok": self.ok,
            "verdict": self.verdict,
            "duration": round(self.duration, 3),
            "changes": [dict(change.to_dict(), failing=self.fails(change)) for change in self.changes],
        }


# ------------------------------------------------------------------------------------------ outputs


def render_json(outcome: DiffOutcome) -> str:
    return json.dumps(outcome.to_dict(), indent=2, sort_keys=True) + "\n"


def render_table(outcome: DiffOutcome) -> str:
    """One line per row (severity, rule, place, old, new, and what else to know), then the summary."""
    header = {"severity": "SEVERITY", "rule": "RULE", "place": "PLACE", "old": "OLD", "new": "NEW"}
    rows = [
        {
            "severity": "ignored" if change.ignored else change.severity,
            "rule": change.rule,
            "place": change.place,
            "old": "-" if change.old is None else change.old,
            "new": "-" if change.new is None else change.new,
            "note": _note(change),
        }
        for change in outcome.changes
    ]
    lines = []
    if rows:
        widths = {"severity": 8}
        for key, cap in _WIDTHS.items():
            widths[key] = min(cap, max(len(header[key]), *(len(row[key]) for row in rows)))
        lines.append(_line(header, widths, ""))
        lines.extend(_line(row, widths, row["note"]) for row in rows)
    else:
        lines.append("no changes")
    lines.append(outcome.summary())
    return "\n".join(lines) + "\n"


def render_junit(outcome: DiffOutcome) -> bytes:
    """One failing test case per failing row, a skipped one per ignored row that would have failed,
    and one passing case when nothing fails."""
    suite = ET.Element("testsuite", name="ksentinel.schema_diff")
    properties = ET.SubElement(suite, "properties")
    counts = outcome.counts()
    for name, value in (
        ("ksentinel.old", f"{outcome.old.source} (API {outcome.old.api_version})"),
        ("ksentinel.new", f"{outcome.new.source} (API {outcome.new.api_version})"),
        ("ksentinel.fail_on", outcome.fail_on),
        ("ksentinel.verdict", outcome.verdict),
        *((f"ksentinel.{key}", str(n)) for key, n in counts.items()),
    ):
        ET.SubElement(properties, "property", name=name, value=value)
    cases = failures = skipped = 0
    for change in outcome.changes:
        failing = outcome.fails(change)
        ignored = change.ignored and outcome.severe_enough(change)
        if not (failing or ignored):
            continue
        case = ET.SubElement(
            suite, "testcase", classname=f"schema_diff.{change.rule}", name=change.place, time="0"
        )
        cases += 1
        text = f"{change.severity} {change.rule} {change.place}: {_old_new(change)}"
        if failing:
            failures += 1
            failure = ET.SubElement(case, "failure", message=text[:500], type=change.rule)
            failure.text = text + (f"\n{_note(change)}" if _note(change) else "")
        else:
            skipped += 1
            ET.SubElement(case, "skipped", message=f"ignored: {change.reason}"[:500])
    if not failures:
        name = "schema diff" if outcome.fail_on == "never" else f"no {outcome.fail_on} change"
        ET.SubElement(suite, "testcase", classname="schema_diff", name=name, time="0")
        cases += 1
    suite.set("tests", str(cases))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", str(skipped))
    suite.set("time", f"{outcome.duration:.3f}")
    ET.indent(suite)
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True) + b"\n"


def _old_new(change: Change) -> str:
    return f"{'-' if change.old is None else change.old} -> {'-' if change.new is None else change.new}"


def _note(change: Change) -> str:
    if change.rule == "stale-ignore":
        return f"reason: {change.reason}"
    parts = []
    if change.ignored:
        parts.append(f"ignored: {change.reason}")
    if change.affected:
        shown = ", ".join(change.affected[:_AFFECTED_SHOWN])
        more = len(change.affected) - _AFFECTED_SHOWN
        parts.append(f"inherited by {shown}" + (f" and {more} more" if more > 0 else ""))
    return "; ".join(parts)


def _line(row: dict[str, str], widths: dict[str, int], note: str) -> str:
    cells = [_fit(row[key], width) for key, width in widths.items()]
    text = "  ".join(cells)
    return (f"{text}  {note}" if note else text).rstrip()


def _fit(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text.ljust(width) if len(text) <= width else text[: width - 3] + "..."
