"""What ``check-traffic`` concluded: one verdict per exchange and per multirequest sub-call.

Outcomes: ``passed`` (judged, every answer holds), ``failed`` (a problem, each naming its property
path), ``advisory`` (judged or not, a finding worth knowing that never fails: a KS or secret echoed, a
KS in the URL) and ``not_judged`` (with the reason; never counted as passed). Everything a verdict
holds is redacted when it is made; :meth:`TrafficOutcome.to_dict` and :func:`write_junit` redact again.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ksentinel.errors import ConfigError
from ksentinel.kaltura.redact import redact, redact_value

OUTCOMES = ("failed", "advisory", "passed", "not_judged")
EXIT_OK, EXIT_FAILED, EXIT_NOT_TESTED = 0, 1, 2
MAX_PROBLEMS = 20
TOOL_ERROR = "tool error:"


@dataclass
class CallVerdict:
    """One Kaltura call of an exchange (the only one, or a multirequest sub-call)."""

    position: int  # 1-based within the exchange
    label: str  # service.action as sent
    outcome: str = "not_judged"
    problems: list[str] = field(default_factory=list)
    reason: str = ""  # why it was not judged

    def __post_init__(self) -> None:
        self.label = redact(self.label)[:120]
        self.problems = [redact(p) for p in self.problems[:MAX_PROBLEMS]]
        self.reason = redact(self.reason)


@dataclass
class ExchangeVerdict:
    """One ``/api_v3`` exchange of the HAR."""

    index: int  # 1-based position in the HAR's entries
    method: str
    path: str  # the URL path, never the query string
    label: str  # "media.get" or "multirequest"
    status: int
    multirequest: bool = False
    outcome: str = "not_judged"
    judged: bool = False
    problems: list[str] = field(default_factory=list)  # about the exchange as a whole
    findings: list[dict[str, str]] = field(default_factory=list)  # advisories
    reason: str = ""  # why it (or its answer) was not judged
    calls: list[CallVerdict] = field(default_factory=list)
    request: dict[str, Any] | None = None  # redacted excerpts, for failed and advisory exchanges
    response: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.path = redact(self.path)[:300]
        self.label = redact(self.label)[:120]
        self.reason = redact(self.reason)

    @property
    def name(self) -> str:
        """``#12 POST /api_v3/service/media/action/get``."""
        return f"#{self.index} {self.method} {self.path}"

    def finish(self) -> None:
        """Settle the outcome from the calls, the exchange's own problems and the findings."""
        self.problems = [redact(p) for p in self.problems[:MAX_PROBLEMS]]
        for call in self.calls:  # set after they were made: redact again
            call.problems = [redact(p) for p in call.problems[:MAX_PROBLEMS]]
            call.reason = redact(call.reason)
        self.reason = redact(self.reason)
        self.findings = [redact_value("finding", dict(f)) for f in self.findings]
        self.judged = self.judged or any(c.outcome in ("passed", "failed") for c in self.calls)
        if self.problems or any(c.outcome == "failed" for c in self.calls):
            self.outcome = "failed"
        elif self.findings:
            self.outcome = "advisory"
        elif self.judged:
            self.outcome = "passed"
        else:
            self.outcome = "not_judged"
            if not self.reason:
                reasons = [c.reason for c in self.calls if c.reason]
                self.reason = reasons[0] if reasons else "nothing to judge"

    def failure_lines(self) -> list[str]:
        """One line per failing part: ``#12 media.get: $.createdAt: ... (+2 more)``."""
        lines = []
        if self.problems:
            lines.append(_line(f"#{self.index} {self.method} {self.path} {self.label}", self.problems))
        for call in self.calls:
            if call.outcome == "failed":
                where = f"#{self.index}[{call.position}]" if self.multirequest else f"#{self.index}"
                lines.append(_line(f"{where} {self.method} {self.path} {call.label}", call.problems))
        return lines


def _line(head: str, problems: list[str]) -> str:
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{head}: {problems[0] if problems else 'failed'}{more}"


@dataclass
class TrafficOutcome:
    """Every verdict of one HAR file, and what was skipped."""

    source: str  # the HAR file
    schema: str  # where the schema came from
    api_version: str = ""
    entries: int = 0
    exchanges: list[ExchangeVerdict] = field(default_factory=list)
    #: entries that are not /api_v3 calls, by kind (``playManifest``, ``api_schema.php``, ``other``)
    skipped: dict[str, int] = field(default_factory=dict)
    duration: float = 0.0

    def counts(self) -> dict[str, int]:
        """Exchanges by outcome, plus ``calls_*`` for the judged units (sub-calls of multirequests)."""
        by_outcome = Counter(e.outcome for e in self.exchanges)
        out = {outcome: by_outcome.get(outcome, 0) for outcome in OUTCOMES}
        calls = Counter(c.outcome for e in self.exchanges for c in e.calls)
        out.update({f"calls_{outcome}": calls.get(outcome, 0) for outcome in OUTCOMES})
        out["exchanges"] = len(self.exchanges)
        out["judged"] = sum(1 for e in self.exchanges if e.judged)
        out["skipped"] = sum(self.skipped.values())
        out["entries"] = self.entries
        return out

    @property
    def nothing_judged(self) -> bool:
        return not any(e.judged for e in self.exchanges)

    def tool_errors(self) -> list[ExchangeVerdict]:
        """Exchanges ksentinel itself failed to judge (our bug, not the traffic's)."""
        return [e for e in self.exchanges if e.reason.startswith(TOOL_ERROR)]

    @property
    def ok(self) -> bool:
        failed = any(e.outcome == "failed" for e in self.exchanges)
        return not (failed or self.nothing_judged or self.tool_errors())

    @property
    def verdict(self) -> str:
        if any(e.outcome == "failed" for e in self.exchanges):
            return "FAIL"
        if self.nothing_judged:
            return "NOT TESTED"
        return "TOOL ERROR" if self.tool_errors() else "PASS"

    @property
    def exit_code(self) -> int:
        """1 when something failed; else 2 when nothing was judged or ksentinel could not judge one."""
        if any(e.outcome == "failed" for e in self.exchanges):
            return EXIT_FAILED
        return EXIT_NOT_TESTED if self.nothing_judged or self.tool_errors() else EXIT_OK

    def not_judged(self) -> dict[str, list[str]]:
        """``reason -> ["#3", ...]``: the exchanges and sub-calls that were not judged, by reason."""
        reasons: dict[str, list[str]] = {}
        for exchange in self.exchanges:
            if exchange.outcome == "not_judged" or (exchange.reason and not exchange.judged):
                reasons.setdefault(exchange.reason or "nothing to judge", []).append(f"#{exchange.index}")
                continue
            for call in exchange.calls:
                if call.outcome == "not_judged" and call.reason:
                    where = (
                        f"#{exchange.index}[{call.position}]"
                        if exchange.multirequest
                        else f"#{exchange.index}"
                    )
                    reasons.setdefault(call.reason, []).append(where)
        return reasons

    def not_tested_reason(self) -> str:
        """Why nothing was judged, as one line (``""`` when something was)."""
        if not self.nothing_judged:
            return ""
        if not self.exchanges:
            return f"{self.source} has no /api_v3 exchange ({self.entries} entries)"
        reasons = "; ".join(f"{why} ({len(which)})" for why, which in list(self.not_judged().items())[:5])
        return (
            f"none of the {len(self.exchanges)} /api_v3 exchanges of {self.source} could be judged: {reasons}"
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["counts"] = self.counts()
        data["verdict"] = self.verdict
        data["ok"] = self.ok
        data["not_judged"] = self.not_judged()
        data["not_tested"] = self.not_tested_reason()
        return redact_value("traffic", data)


def write_json(outcome: TrafficOutcome, path: Path) -> None:
    """The machine-readable outcome, redacted."""
    text = json.dumps(outcome.to_dict(), indent=2, sort_keys=True, default=str) + "\n"
    _write(path, redact(text))


def write_junit(outcome: TrafficOutcome, path: Path) -> None:
    """One test case per judged exchange or multirequest sub-call (not judged ones as skipped)."""
    counts = outcome.counts()
    suite = ET.Element("testsuite", name="ksentinel.traffic")
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("ksentinel.har", outcome.source),
        ("ksentinel.schema", outcome.schema),
        ("ksentinel.verdict", outcome.verdict),
        ("ksentinel.skipped_entries", str(counts["skipped"])),
    ):
        ET.SubElement(properties, "property", name=name, value=redact(value))
    cases = failures = skipped = errors = 0
    for exchange in outcome.exchanges:
        for name, classname, state, text in _cases(exchange):
            case = ET.SubElement(suite, "testcase", classname=classname, name=redact(name), time="0")
            cases += 1
            if exchange.findings:
                props = ET.SubElement(case, "properties")
                for finding in exchange.findings:
                    ET.SubElement(props, "property", name="ksentinel.advisory", value=_finding_text(finding))
                out = ET.SubElement(case, "system-out")
                out.text = "\n".join("advisory: " + _finding_text(f) for f in exchange.findings)
            if state == "failed":
                failures += 1
                first = text.splitlines()[0] if text else "failed"
                failure = ET.SubElement(case, "failure", message=redact(first)[:500])
                failure.text = redact(text)
            elif state == "not_judged" and text.startswith(TOOL_ERROR):
                errors += 1
                ET.SubElement(case, "error", message=redact(text)[:500])
            elif state == "not_judged":
                skipped += 1
                ET.SubElement(case, "skipped", message=redact(f"not judged: {text}")[:500])
    if outcome.nothing_judged:
        case = ET.SubElement(suite, "testcase", classname="ksentinel", name="traffic judged")
        ET.SubElement(case, "error", message=redact(f"not tested: {outcome.not_tested_reason()}")[:500])
        cases += 1
        errors += 1
    suite.set("tests", str(cases))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    suite.set("time", f"{outcome.duration:.3f}")
    ET.indent(suite)
    _write(path, redact(ET.tostring(suite, encoding="unicode", xml_declaration=True)) + "\n")


def _cases(exchange: ExchangeVerdict) -> list[tuple[str, str, str, str]]:
    """``(name, classname, state, text)`` per test case of an exchange."""
    out = []
    if not exchange.multirequest or exchange.problems or not exchange.calls:
        call = exchange.calls[0] if exchange.calls and not exchange.multirequest else None
        problems = exchange.problems + (call.problems if call else [])
        if problems:
            state, text = "failed", "\n".join(problems)
        elif exchange.judged:
            state, text = "passed", ""
        else:
            state, text = "not_judged", exchange.reason or (call.reason if call else "")
        out.append((f"{exchange.name} {exchange.label}", f"traffic.{exchange.label}", state, text))
    if exchange.multirequest:
        for call in exchange.calls:
            state = call.outcome if call.outcome in ("failed", "passed") else "not_judged"
            text = "\n".join(call.problems) if state == "failed" else call.reason
            name = f"#{exchange.index}[{call.position}] {exchange.method} {exchange.path} {call.label}"
            out.append((name, f"traffic.{call.label}", state, text))
    return out


def _finding_text(finding: dict[str, str]) -> str:
    return redact(f"{finding.get('check', '')}: {finding.get('message', '')}")


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
