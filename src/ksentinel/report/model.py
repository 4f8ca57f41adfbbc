"""What a report holds. Every text field is redacted when the report is built, not when it is shown."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from ksentinel.kaltura.redact import redact, redact_value

#: ``advisory``: worth knowing, not a broken contract (a real Kaltura echoing a refused KS); never fails.
#: ``error``: a tool error, the check could not be judged (ksentinel or schemathesis failed, not the
#: target); it fails the report. ``not_tested``: nothing was judged, for a reason the message gives (every
#: case refused by the fuzz guard, an action the target does not offer); it does not fail the report.
OUTCOMES = ("failed", "error", "advisory", "passed", "not_tested", "skipped")
#: how the report and the terminal name each outcome
OUTCOME_LABELS = {"error": "tool error", "not_tested": "not tested"}


@dataclass
class CheckResult:
    """One contract check: an action, a flow, a caching or a security invariant."""

    kind: str  # "action" | "flow" | "caching" | "security"
    subject: str  # "baseEntry.get", "upload", "ks.tampered"
    name: str  # the test's name
    outcome: str  # passed | failed | error | advisory | not_tested | skipped
    duration: float = 0.0
    rule: str = ""  # the rule it broke ("error_envelope_conformance", "upload.content_match")
    message: str = ""
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    #: seconds each fresh write of a flow took to show up in list/count (the search index lag)
    index_lags: list[float] = field(default_factory=list)
    #: the evidence of an advisory (or strict) finding: request, code, where; KS values masked
    findings: list[dict[str, Any]] = field(default_factory=list)
    #: a fuzzed action's cases: ``sent``, ``judged``, ``not_tested`` and ``reasons`` (why, how many)
    cases: dict[str, Any] = field(default_factory=dict)
    #: a row that sums up other rows (every fuzzed action: "all actions"): shown, never counted
    summary: bool = False

    def __post_init__(self) -> None:
        self.message = redact(self.message)
        self.cases = redact_value("cases", dict(self.cases)) if isinstance(self.cases, dict) else {}
        self.rule = redact(self.rule)
        self.findings = [redact_value("finding", dict(f)) for f in self.findings if isinstance(f, dict)]
        self.index_lags = [float(v) for v in self.index_lags if isinstance(v, int | float)]
        if self.request is not None:
            self.request = redact_value("request", self.request)
        if self.response is not None:
            self.response = redact_value("response", self.response)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def rules(self) -> list[str]:
        """The rules it broke (``rule`` may name several: ``a, b``)."""
        return [rule.strip() for rule in self.rule.split(",") if rule.strip()]

    def problem_lines(self) -> list[tuple[str, str]]:
        """The message as ``(rule, text)`` lines, each rule named once.

        A broken rule's line starts with its name (``no_internal_error: media.get answered ...``):
        the name moves to the line's rule. A rule no line names goes with the first line.
        """
        rules = self.rules()
        lines: list[tuple[str, str]] = []
        for line in (self.message or "").splitlines():
            line = line.removeprefix("AssertionError: ")
            named = next((r for r in rules if line.startswith(f"{r}:")), "")
            lines.append((named, line[len(named) + 1 :].strip() if named else line))
        unnamed = [r for r in rules if r not in {named for named, _ in lines}]
        if unnamed and lines and not lines[0][0]:
            lines[0] = (", ".join(unnamed), lines[0][1])
        elif unnamed:
            lines.insert(0, (", ".join(unnamed), ""))
        return lines

    def headline(self) -> str:
        """The first line of what went wrong, its rule (else the check's name) named once: ``rule: text``."""
        lines = self.problem_lines()
        rule, text = lines[0] if lines else ("", "")
        return f"{rule or self.name}: {text}" if text else rule or self.name


@dataclass
class ContractSection:
    profile: str
    results: list[CheckResult] = field(default_factory=list)
    duration: float = 0.0
    #: stopped (SIGINT, SIGTERM) before every check ran: the results cover what ran; verdict INCOMPLETE
    interrupted: bool = False
    #: why the suite did not run at all (it could not be collected, pytest failed): verdict NOT TESTED
    not_run: str | None = None

    def counts(self) -> dict[str, int]:
        """Checks by outcome; a summary row is not one more check."""
        checks = [r for r in self.results if not r.summary]
        return {outcome: sum(1 for r in checks if r.outcome == outcome) for outcome in OUTCOMES}

    @property
    def judged(self) -> bool:
        """Whether any check reached a verdict on the target (passed or failed): a run whose checks
        were all skipped, not tested or tool errors judged nothing and is never a pass."""
        counts = self.counts()
        return self.not_run is None and counts["passed"] + counts["failed"] > 0

    @property
    def ok(self) -> bool:
        counts = self.counts()
        return counts["failed"] == 0 and counts["error"] == 0 and not self.interrupted and self.judged

    def by_kind(self) -> dict[str, list[CheckResult]]:
        groups: dict[str, list[CheckResult]] = {}
        order = {o: i for i, o in enumerate(OUTCOMES)}
        for result in sorted(
            self.results, key=lambda r: (r.kind, order.get(r.outcome, 9), r.subject, r.name)
        ):
            groups.setdefault(result.kind, []).append(result)
        return groups

    def advisories(self) -> list[CheckResult]:
        return [r for r in self.results if r.outcome == "advisory"]

    def not_tested(self) -> dict[str, list[str]]:
        """The subjects of the checks that were not tested, by reason (``not tested: `` left out)."""
        reasons: dict[str, list[str]] = {}
        for result in sorted(self.results, key=lambda r: (r.kind, r.subject)):
            if result.outcome == "not_tested" and not result.summary:
                why = (result.message or "").splitlines()[0] if result.message else ""
                reasons.setdefault(why.removeprefix("not tested: ") or "no reason given", []).append(
                    result.subject
                )
        return reasons

    def index_lags(self) -> list[dict[str, Any]]:
        """Per flow check that observed any: ``subject``, ``count``, ``median`` and ``max`` seconds."""
        rows = []
        for result in sorted(self.results, key=lambda r: (r.subject, r.name)):
            if result.index_lags:
                lags = result.index_lags
                rows.append(
                    {
                        "subject": result.subject,
                        "name": result.name,
                        "count": len(lags),
                        "median": round(float(statistics.median(lags)), 4),
                        "max": round(max(lags), 4),
                    }
                )
        return rows


STAGE_STATUSES = ("passed", "failed", "error", "skipped", "interrupted")


@dataclass
class Stage:
    """One stage of a run (``ksentinel demo``: platform, contract, load, probe, dashboards)."""

    name: str
    status: str  # one of STAGE_STATUSES
    seconds: float = 0.0
    summary: str = ""

    def __post_init__(self) -> None:
        self.summary = redact(self.summary)


@dataclass
class RunReport:
    """A whole run; each command fills the sections it ran, the rest stay ``None``.

    ``load``, ``probe``, ``dashboards`` and ``matrix`` are plain dicts (JSON-ready) built by
    :mod:`ksentinel.report.load_section`, :mod:`ksentinel.report.probe_section`,
    :mod:`ksentinel.report.dashboards_section` and ``Matrix.as_dict()``; each has an ``ok`` key.
    """

    title: str
    target: str
    started: str
    duration: float = 0.0
    contract: ContractSection | None = None
    load: dict[str, Any] | None = None
    probe: dict[str, Any] | None = None
    dashboards: dict[str, Any] | None = None
    matrix: dict[str, Any] | None = None
    #: ``check-traffic``: :func:`ksentinel.report.traffic_section.traffic_section`
    traffic: dict[str, Any] | None = None
    #: ``schema diff``: :func:`ksentinel.report.schema_diff_section.schema_diff_section`
    schema_diff: dict[str, Any] | None = None
    stages: list[Stage] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.target = redact(self.target)

    @property
    def interrupted(self) -> bool:
        contract_stopped = self.contract is not None and self.contract.interrupted
        return contract_stopped or any(stage.status == "interrupted" for stage in self.stages)

    @property
    def ok(self) -> bool:
        sections_ok = all(
            section is None or section.get("ok", False)
            for section in (
                self.load,
                self.probe,
                self.dashboards,
                self.matrix,
                self.traffic,
                self.schema_diff,
            )
        )
        stages_ok = all(stage.status in ("passed", "skipped") for stage in self.stages)
        return (self.contract is None or self.contract.ok) and sections_ok and stages_ok

    @property
    def verdict(self) -> str:
        if self.ok:
            return "PASS"
        if self.traffic is not None and self.traffic.get("not_tested"):  # nothing judged: never PASS
            return "NOT TESTED"
        contract = self.contract
        if (
            contract is not None
            and not self.interrupted
            and not contract.judged
            and not contract.counts()["failed"]
        ):
            return "NOT TESTED"
        return "INCOMPLETE" if self.interrupted else "FAIL"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"] = self.verdict
        data["ok"] = self.ok
        if data.get("load"):  # the charts are drawings of the timeline the JSON already has
            data["load"] = {k: v for k, v in data["load"].items() if k != "charts"}
        return data
