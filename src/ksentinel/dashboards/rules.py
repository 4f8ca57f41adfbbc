"""Recording and alerting rules generated from the ``[slo]`` objectives (and ``[dashboards]``).

Every flow has an availability objective (share of successful probe runs) and a latency objective
(a run takes at most ``latency_seconds``) over a window (:class:`ksentinel.slo.FlowObjective`). Flows
with the same objective share one set of rules; a flow with its own ``[slo.flows.NAME]`` table gets
rules of its own (``flow="NAME"``), the default ones exclude it (``flow!~"NAME"``).

Recording rules follow the ``level:metric:operations`` convention::

    target_flow:ksentinel_probe_runs_failed:ratio_rate<w>     failed share of probe runs over w
    target_flow:ksentinel_probe_runs_slow:avg                 share of instances whose last run was slow
    target_flow:ksentinel_probe_runs_slow:ratio_avg<w>        ... averaged over w
    target_flow:ksentinel_probe_error_budget_remaining:ratio  1 - failed share over the SLO window / budget
    target_flow:ksentinel_probe_latency_budget_remaining:ratio
    target:ksentinel_cache_lookups_hit:ratio_rate<w>          hits / (hits + misses)

A run that could not start a session (a wrong secret or partner id: ``ksentinel_probe_misconfigured``)
tested nothing: both SLIs leave it out, ``KalturaFlowFailing`` does not page on it, and the ticket
``KalturaProbeMisconfigured`` reports it.

Burn-rate alerts are the multi-window, multi-burn-rate alerts of the SRE workbook, scaled from a 30 day
window to the objective's window (never below ``[dashboards] min_rate_window``): page when 1h and 5m
burn 14.4x the budget or 6h and 30m burn 6x; ticket when 1d and 2h burn 3x or 3d and 6h burn 1x.

Each :class:`Rule` carries two expressions: ``expr`` for Prometheus (reads the recorded series) and
``grafana_expr`` for a Grafana-managed alert (self-contained: the recording rules inlined, so the
alert works even when Prometheus does not load the recording rules).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ksentinel.dashboards.settings import DashboardSettings, format_duration
from ksentinel.slo import FlowObjective, SloSpec

__all__ = ["ALERT_NAMES", "BURN_WINDOWS", "Rule", "RuleGroup", "generate_rules"]

REFERENCE_WINDOW = 30 * 86400.0
BY = "target, flow"
NOT_SUCCESS = 'result!="success"'


@dataclass(frozen=True)
class BurnWindow:
    severity: str
    long: float  # seconds, for a 30 day SLO window
    short: float
    factor: float


BURN_WINDOWS = (
    BurnWindow("page", 3600, 300, 14.4),
    BurnWindow("page", 6 * 3600, 1800, 6.0),
    BurnWindow("ticket", 86400, 2 * 3600, 3.0),
    BurnWindow("ticket", 3 * 86400, 6 * 3600, 1.0),
)
NATURAL_FOR = {"page": 120.0, "ticket": 900.0}
HIT_RATIO_FOR = 900.0
FLOW_FAILING_FOR = 300.0
PROBE_ABSENT_FOR = 600.0
PROBE_MISCONFIGURED_FOR = 300.0

ALERT_NAMES = (
    "KalturaFlowErrorBudgetBurn",
    "KalturaFlowLatencyBudgetBurn",
    "KalturaFlowFailing",
    "KalturaProbeAbsent",
    "KalturaProbeMisconfigured",
    "KalturaCacheStaleReads",
    "KalturaCacheHitRatioLow",
)


@dataclass(frozen=True)
class Rule:
    """One recording rule (``record``) or alert (``alert``)."""

    expr: str
    record: str = ""
    alert: str = ""
    grafana_expr: str = ""
    for_seconds: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    grafana_annotations: Mapping[str, str] = field(default_factory=dict)
    uid: str = ""
    title: str = ""

    def to_prometheus(self) -> dict[str, object]:
        out: dict[str, object] = {"expr": self.expr}
        if self.record:
            out["record"] = self.record
        else:
            out["alert"] = self.alert
            if self.for_seconds > 0:
                out["for"] = format_duration(self.for_seconds)
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class RuleGroup:
    name: str
    interval: float
    rules: tuple[Rule, ...]

    def to_prometheus(self) -> dict[str, object]:
        return {
            "name": self.name,
            "interval": format_duration(self.interval),
            "rules": [rule.to_prometheus() for rule in self.rules],
        }


@dataclass(frozen=True)
class ObjectiveGroup:
    """Flows sharing one objective: ``flows`` (own tables) or everything but ``exclude`` (the default)."""

    objective: FlowObjective
    flows: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @property
    def selector(self) -> str:
        if self.flows:
            if len(self.flows) == 1:
                return f"flow={json.dumps(self.flows[0])}"
            return f"flow=~{_alternatives(self.flows)}"
        if self.exclude:
            return f"flow!~{_alternatives(self.exclude)}"
        return ""

    @property
    def label(self) -> str:
        return ",".join(self.flows) if self.flows else "default"


def objective_groups(slo: SloSpec) -> list[ObjectiveGroup]:
    """The default objective group and one per distinct objective of ``[slo.flows.*]``."""
    own: dict[FlowObjective, list[str]] = {}
    for name in sorted(slo.flows):
        objective = slo.flows[name]
        if objective != slo.default_flow:
            own.setdefault(objective, []).append(name)
    excluded = tuple(sorted(name for names in own.values() for name in names))
    groups = [ObjectiveGroup(slo.default_flow, exclude=excluded)]
    groups += [ObjectiveGroup(objective, flows=tuple(names)) for objective, names in own.items()]
    return groups


def scaled(seconds: float, objective: FlowObjective, settings: DashboardSettings) -> float:
    """A 30-day window's ``seconds`` scaled to the objective's window, whole seconds, at least the minimum."""
    value = round(seconds * objective.window_seconds / REFERENCE_WINDOW)
    return float(max(value, settings.min_rate_window))


def generate_rules(slo: SloSpec, settings: DashboardSettings) -> list[RuleGroup]:
    """All rule groups, in a stable order."""
    records: list[Rule] = []
    alerts: list[Rule] = []
    for group in objective_groups(slo):
        sli = _Sli(group, settings)
        records += sli.recording_rules()
        alerts += sli.burn_alerts()
    cache_records, cache_alerts = _cache_rules(settings)
    # recording rules and the alerts that read them share a group: Prometheus evaluates a group's
    # rules in order, so an alert always sees this round's recorded values
    return [
        RuleGroup("ksentinel-slo", settings.interval, tuple(records + alerts)),
        RuleGroup("ksentinel-probe", settings.interval, tuple(_probe_alerts(settings))),
        RuleGroup("ksentinel-cache", settings.interval, tuple(cache_records + cache_alerts)),
    ]


# --- SLO rules ------------------------------------------------------------------------------------------


class _Ref(Protocol):
    def __call__(self, window: float, *, inline: bool) -> str: ...


class _Sli:
    def __init__(self, group: ObjectiveGroup, settings: DashboardSettings) -> None:
        self.group = group
        self.objective = group.objective
        self.settings = settings
        self.sel = group.selector
        self.budget = group.objective.error_budget
        windows = {scaled(s, self.objective, settings) for b in BURN_WINDOWS for s in (b.long, b.short)}
        windows.add(float(round(self.objective.window_seconds)))
        self.windows = sorted(windows)

    # expressions of the SLIs, by window
    def failed(self, window: float) -> str:
        """Failed share of the runs that could start a session: a run refused by a wrong secret or
        partner id (``ksentinel_probe_misconfigured_runs_total``) tested nothing, so it is neither a
        good nor a bad event (``KalturaProbeMisconfigured`` reports it)."""
        w = format_duration(window)
        runs = f"ksentinel_probe_runs_total{_braces(self.sel)}"
        bad = f"ksentinel_probe_runs_total{_braces(self.sel, NOT_SUCCESS)}"
        refused = f"ksentinel_probe_misconfigured_runs_total{_braces(self.sel)}"
        total = f"sum by ({BY}) (rate({runs}[{w}]))"
        skip = f"(sum by ({BY}) (rate({refused}[{w}])) or 0 * {total})"
        return f"((sum by ({BY}) (rate({bad}[{w}])) or 0 * {total}) - {skip}) / ({total} - {skip})"

    def slow_now(self) -> str:
        """Share of the probe instances whose last run was slow, of those that could start a session."""
        latency = _number(self.objective.latency_seconds)
        slow = f"ksentinel_probe_duration_seconds{_braces(self.sel)} > bool {latency}"
        refused = f"ksentinel_probe_misconfigured{_braces(self.sel)} == 1"
        return f"avg by ({BY}) (({slow}) unless ({refused}))"

    def slow(self, window: float, *, inline: bool) -> str:
        w = format_duration(window)
        if inline:
            step = format_duration(self.settings.interval)
            return f"avg_over_time(({self.slow_now()})[{w}:{step}])"
        return f"avg_over_time(target_flow:ksentinel_probe_runs_slow:avg{_braces(self.sel)}[{w}])"

    def failed_ref(self, window: float, *, inline: bool) -> str:
        if inline:
            return f"({self.failed(window)})"
        return (
            f"target_flow:ksentinel_probe_runs_failed:ratio_rate{format_duration(window)}{_braces(self.sel)}"
        )

    def slow_ref(self, window: float, *, inline: bool) -> str:
        if inline:
            return self.slow(window, inline=True)
        return f"target_flow:ksentinel_probe_runs_slow:ratio_avg{format_duration(window)}{_braces(self.sel)}"

    def recording_rules(self) -> list[Rule]:
        labels = {"slo_window": self.objective.window}
        rules = [
            Rule(
                record=f"target_flow:ksentinel_probe_runs_failed:ratio_rate{format_duration(w)}",
                expr=self.failed(w),
            )
            for w in self.windows
        ]
        rules.append(Rule(record="target_flow:ksentinel_probe_runs_slow:avg", expr=self.slow_now()))
        rules += [
            Rule(
                record=f"target_flow:ksentinel_probe_runs_slow:ratio_avg{format_duration(w)}",
                expr=self.slow(w, inline=False),
            )
            for w in self.windows
        ]
        window = float(round(self.objective.window_seconds))
        budget = _number(self.budget)
        rules.append(
            Rule(
                record="target_flow:ksentinel_probe_error_budget_remaining:ratio",
                expr=f"1 - {self.failed_ref(window, inline=False)} / {budget}",
                labels=labels,
            )
        )
        rules.append(
            Rule(
                record="target_flow:ksentinel_probe_latency_budget_remaining:ratio",
                expr=f"1 - {self.slow_ref(window, inline=False)} / {budget}",
                labels=labels,
            )
        )
        return rules

    def burn_alerts(self) -> list[Rule]:
        alerts: list[Rule] = []
        for slo_name, alert, ref in (
            ("availability", "KalturaFlowErrorBudgetBurn", self.failed_ref),
            ("latency", "KalturaFlowLatencyBudgetBurn", self.slow_ref),
        ):
            for severity in ("page", "ticket"):
                pairs = [b for b in BURN_WINDOWS if b.severity == severity]
                alerts.append(self._burn_alert(alert, slo_name, severity, pairs, ref))
        return alerts

    def _burn_alert(
        self, alert: str, slo_name: str, severity: str, pairs: list[BurnWindow], ref: _Ref
    ) -> Rule:
        def expression(inline: bool) -> str:
            parts = []
            for pair in pairs:
                threshold = f"({_number(pair.factor)} * {_number(self.budget)})"
                long = ref(scaled(pair.long, self.objective, self.settings), inline=inline)
                short = ref(scaled(pair.short, self.objective, self.settings), inline=inline)
                parts.append(f"({long} > {threshold} and {short} > {threshold})")
            return "\n or\n".join(parts)

        windows = " or ".join(
            f"{_number(p.factor)}x ({format_duration(scaled(p.long, self.objective, self.settings))} and "
            f"{format_duration(scaled(p.short, self.objective, self.settings))})"
            for p in pairs
        )
        what = "fail" if slo_name == "availability" else "run slower than the objective"
        objective = (
            f"{_percent(self.objective.availability)} availability"
            if slo_name == "availability"
            else f"{_percent(self.objective.availability)} of runs within {_number(self.objective.latency_seconds)}s"
        )
        speed = "fast" if severity == "page" else "steadily"
        summary = f"Flow {{{{ $labels.flow }}}} on {{{{ $labels.target }}}} burns its {slo_name} error budget {speed}."
        description = (
            f"{{VALUE}} of the probe runs of flow {{{{ $labels.flow }}}} on target {{{{ $labels.target }}}} "
            f"{what} (long window), burning the error budget of the objective ({objective} over "
            f"{self.objective.window}) at more than {windows}."
        )
        labels = {"severity": severity, "slo": slo_name}
        if self.group.flows:
            labels["slo_flows"] = self.group.label
        title = f"{alert} {severity}" + (f" {self.group.label}" if self.group.flows else "")
        return _alert(
            self.settings,
            alert,
            title,
            expression(False),
            expression(True),
            self.settings.alert_for(NATURAL_FOR[severity]),
            labels,
            summary,
            description,
        )


# --- probe and cache alerts --------------------------------------------------------------------------


def _probe_alerts(settings: DashboardSettings) -> list[Rule]:
    # a flow whose every probe instance failed its last run, unless every one of them could not even
    # start a session (a wrong secret or partner id: KalturaProbeMisconfigured, not a page)
    failing = (
        f"max by ({BY}) (ksentinel_probe_success) == 0\n"
        f"unless on ({BY}) min by ({BY}) (ksentinel_probe_misconfigured) == 1"
    )
    absent = "absent(ksentinel_probe_success)"
    misconfigured = "ksentinel_probe_misconfigured == 1"
    failing_for = settings.alert_for(FLOW_FAILING_FOR, settings.flow_failing_for)
    absent_for = settings.alert_for(PROBE_ABSENT_FOR, settings.probe_absent_for)
    misconfigured_for = settings.alert_for(PROBE_MISCONFIGURED_FOR)
    return [
        _alert(
            settings,
            "KalturaFlowFailing",
            "KalturaFlowFailing",
            failing,
            failing,
            failing_for,
            {"severity": "page"},
            "Flow {{ $labels.flow }} on {{ $labels.target }} is failing.",
            "Every probe instance has reported the last run of flow {{ $labels.flow }} on target "
            "{{ $labels.target }} as failed for "
            f"{format_duration(failing_for)}.",
        ),
        _alert(
            settings,
            "KalturaProbeAbsent",
            "KalturaProbeAbsent",
            absent,
            absent,
            absent_for,
            {"severity": "ticket"},
            "No ksentinel probe results reach Prometheus.",
            "Prometheus has had no ksentinel_probe_success series for "
            f"{format_duration(absent_for)}: the probe is down, not "
            "scraped, or runs no flow. Nothing alerts on the Kaltura API while this lasts.",
        ),
        _alert(
            settings,
            "KalturaProbeMisconfigured",
            "KalturaProbeMisconfigured",
            misconfigured,
            misconfigured,
            misconfigured_for,
            {"severity": "ticket"},
            "The probe cannot start a session on {{ $labels.target }}.",
            "The probe instance {{ $labels.instance }} could not start a session for flow "
            "{{ $labels.flow }} on target {{ $labels.target }} with its configured credentials "
            "(INVALID_KS, START_SESSION_ERROR or SERVICE_FORBIDDEN_CONTENT_BLOCKED) for "
            f"{format_duration(misconfigured_for)}: a wrong secret or partner id. The flow is not "
            "tested while this lasts.",
        ),
    ]


def _cache_rules(settings: DashboardSettings) -> tuple[list[Rule], list[Rule]]:
    w = format_duration(settings.cache_window)
    lookups = f'sum by (target) (rate(ksentinel_cache_lookups_total{{result=~"hit|miss"}}[{w}]))'
    hits = f'sum by (target) (rate(ksentinel_cache_lookups_total{{result="hit"}}[{w}]))'
    ratio = f"({hits} or 0 * {lookups}) / {lookups}"
    record = f"target:ksentinel_cache_lookups_hit:ratio_rate{w}"
    minimum = _number(settings.cache_hit_ratio_min)
    stale = f"sum by (target) (increase(ksentinel_cache_stale_reads_total[{w}])) > 0"
    alerts = [
        _alert(
            settings,
            "KalturaCacheStaleReads",
            "KalturaCacheStaleReads",
            stale,
            stale,
            settings.alert_for(0.0),
            {"severity": "ticket"},
            "The API cache of {{ $labels.target }} serves stale reads.",
            "Stale reads from the API cache of target {{ $labels.target }} in the last "
            f"{w}: {{VALUE}}. A write did not invalidate a cached read.",
            value_format="humanize",
        ),
        _alert(
            settings,
            "KalturaCacheHitRatioLow",
            "KalturaCacheHitRatioLow",
            f"{record} < {minimum}",
            f"({ratio}) < {minimum}",
            settings.alert_for(HIT_RATIO_FOR),
            {"severity": "ticket"},
            "The API cache hit ratio of {{ $labels.target }} is low.",
            f"Only {{VALUE}} of the probe's cacheable reads on target {{{{ $labels.target }}}} were cache "
            f"hits over {w} (objective: at least {_percent(settings.cache_hit_ratio_min)}).",
        ),
    ]
    return [Rule(record=record, expr=ratio)], alerts


# --- helpers -------------------------------------------------------------------------------------------


def _alert(
    settings: DashboardSettings,
    name: str,
    title: str,
    expr: str,
    grafana_expr: str,
    for_seconds: float,
    labels: dict[str, str],
    summary: str,
    description: str,
    *,
    value_format: str = "humanizePercentage",
) -> Rule:
    # an absolute link to the alert's section of runbooks.md, or none: Alertmanager and Grafana open
    # runbook_url as it is, so a path relative to this repository would be a dead link
    runbook = settings.runbook(name)
    link = {"runbook_url": runbook} if runbook else {}
    prom_value = f"{{{{ $value | {value_format} }}}}"
    grafana_value = f"{{{{ $values.B.Value | {value_format} }}}}"
    return Rule(
        alert=name,
        title=title,
        uid=_uid(title),
        expr=expr,
        grafana_expr=grafana_expr,
        for_seconds=for_seconds,
        labels=labels,
        annotations={
            "summary": summary,
            "description": description.replace("{VALUE}", prom_value),
            **link,
        },
        grafana_annotations={
            "summary": summary,
            "description": description.replace("{VALUE}", grafana_value),
            **link,
        },
    )


def _uid(title: str) -> str:
    """A stable Grafana uid (at most 40 characters) for an alert title."""
    slug = "ks-" + re.sub(r"(?<=[a-z])(?=[A-Z])", "-", title).lower()
    slug = re.sub(r"[^a-z0-9]+", "-", slug).strip("-")
    if len(slug) <= 40:
        return slug
    digest = hashlib.sha256(title.encode()).hexdigest()[:8]
    return f"{slug[:31].rstrip('-')}-{digest}"


def _braces(*matchers: str) -> str:
    inner = ",".join(m for m in matchers if m)
    return f"{{{inner}}}" if inner else ""


def _alternatives(names: Iterable[str]) -> str:
    """A quoted PromQL regex matching exactly ``names``."""
    return json.dumps("|".join(re.escape(name) for name in names))


def _number(value: float) -> str:
    return f"{value:.6g}"


def _percent(value: float) -> str:
    return f"{value * 100:.6g}%"
