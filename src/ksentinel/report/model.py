"""What a report holds. Every text field is redacted when the report is built, not when it is shown."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ksentinel.kaltura.redact import redact, redact_value

OUTCOMES = ("failed", "error", "passed", "skipped")


@dataclass
class CheckResult:
    """One contract check: an action, a flow, a caching or a security invariant."""

    kind: str  # "action" | "flow" | "caching" | "security"
    subject: str  # "baseEntry.get", "upload", "ks.tampered"
    name: str  # the test's name
    outcome: str  # passed | failed | error | skipped
    duration: float = 0.0
    rule: str = ""  # the rule it broke ("error_envelope_conformance", "upload.content_match")
    message: str = ""
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.message = redact(self.message)
        self.rule = redact(self.rule)
        if self.request is not None:
            self.request = redact_value("request", self.request)
        if self.response is not None:
            self.response = redact_value("response", self.response)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass
class ContractSection:
    profile: str
    results: list[CheckResult] = field(default_factory=list)
    duration: float = 0.0

    def counts(self) -> dict[str, int]:
        return {outcome: sum(1 for r in self.results if r.outcome == outcome) for outcome in OUTCOMES}

    @property
    def ok(self) -> bool:
        counts = self.counts()
        return counts["failed"] == 0 and counts["error"] == 0

    def by_kind(self) -> dict[str, list[CheckResult]]:
        groups: dict[str, list[CheckResult]] = {}
        order = {o: i for i, o in enumerate(OUTCOMES)}
        for result in sorted(
            self.results, key=lambda r: (r.kind, order.get(r.outcome, 9), r.subject, r.name)
        ):
            groups.setdefault(result.kind, []).append(result)
        return groups


@dataclass
class RunReport:
    """A whole run; sections are optional so each command fills what it ran."""

    title: str
    target: str
    started: str
    duration: float = 0.0
    contract: ContractSection | None = None
    sections: dict[str, Any] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.target = redact(self.target)

    @property
    def ok(self) -> bool:
        return self.contract is None or self.contract.ok

    @property
    def verdict(self) -> str:
        return "PASS" if self.ok else "FAIL"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"] = self.verdict
        return data
