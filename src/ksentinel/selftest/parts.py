"""The four parts of the fault matrix, each run against one (embedded) target.

Every part answers the same question, "did you raise something?", with a :class:`Verdict`: caught
(``True``/``False``, ``None`` when it could not tell) and one line of evidence.

* **contract**: the contract suite, profile ``quick``, in this process. Caught = a contract broken.
* **load**: ``run_load`` with the ``smoke`` profile for :data:`LOAD_SECONDS`, judged against the
  built-in ``[slo]`` objectives (plus the profile's own). Caught = an SLO missed.
* **probe**: :data:`PROBE_PASSES` passes over every flow of the catalogue, as ``probe serve`` runs
  them (same runner, timeout, metrics). Caught = a run failed, errored or timed out, or a step was
  slower than its ``[slo]`` p95 objective in every one of its runs (the step latency the probe exports,
  without the step's deliberate waits for conversion or the search index).
* **alert**: the rules ``ksentinel dashboards build`` generates from the built-in ``[slo]``,
  evaluated by ``promtool test rules`` on the probe's observations replayed as steady Prometheus
  series. Caught = a page or ticket alert fired.

The parts use the built-in objectives and an empty ``ksentinel.toml`` (:func:`isolated_config`),
never the one of the working directory: the score must not depend on where it runs. The contract
and load suites are found as ``ksentinel contract`` and ``ksentinel load`` find them (``./contracts``,
``./load``, else the ones shipped with ksentinel).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import math
import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ksentinel.config import Config, Target
from ksentinel.slo import SloSpec

Output = Callable[[str], None]

CONTRACT_PROFILE = "quick"
LOAD_PROFILE = "smoke"
#: Long enough for the smoke users to make a few hundred requests: http-500 (1 call in 5) and
#: slow-list (+800 ms per list) miss their objectives by a wide margin in that time.
LOAD_SECONDS = 6.0
PROBE_PASSES = 2
PROBE_TIMEOUT = 30.0
PROMTOOL_TIMEOUT = 120.0
ALERT_SEVERITIES = ("page", "ticket")
ENV_REQUIRE_SYSTEM_DEPS = "KSENTINEL_REQUIRE_SYSTEM_DEPS"
#: Labels every replayed series carries, as a scrape of ``probe serve`` would add them.
SCRAPE_LABELS = {"instance": "ksentinel-selftest", "job": "ksentinel-probe"}


@dataclass(frozen=True)
class Verdict:
    caught: bool | None
    detail: str
    ran: bool = True
    #: What exactly the part flagged, one short string each (contract: ``kind/subject/rule``).
    evidence: tuple[str, ...] = ()


def _quiet(line: str) -> None:
    pass


@contextlib.contextmanager
def isolated_config() -> Iterator[Config]:
    """An empty ``ksentinel.toml`` for the parts and their child processes.

    The contract suite and the Locust processes would otherwise read the ``ksentinel.toml`` found
    walking up from the working directory; the matrix must not depend on one.
    """
    from ksentinel.config import load_config

    with tempfile.TemporaryDirectory(prefix="ksentinel-selftest-") as tmp:
        path = Path(tmp) / "ksentinel.toml"
        path.write_text("# the fault matrix runs on the built-in defaults\n")
        yield load_config(path)


def default_objectives() -> SloSpec:
    """The built-in ``[slo]`` (no ``ksentinel.toml``), validated against the flow catalogue."""
    from ksentinel.dashboards.build import objectives

    return objectives(Config())


def _first_line(text: str | None, limit: int = 160) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _more(count: int, what: str) -> str:
    return f" (+{count} more {what})" if count > 0 else ""


# --- contract -------------------------------------------------------------------------------------


def contract_part(target: Target, *, config: Config | None = None, output: Output = _quiet) -> Verdict:
    """The contract suite (profile quick) in this process; its terminal output goes to ``output``."""
    from ksentinel.contract.runner import run_contract

    extra = ("--ksentinel-config", str(config.path)) if config is not None and config.path else ()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        outcome = run_contract(
            target, profile=CONTRACT_PROFILE, junit=None, report=None, workers=0, extra_args=extra
        )
    for line in buffer.getvalue().splitlines():
        output(line)
    counts = outcome.section.counts()
    broken = [r for r in outcome.section.results if r.outcome in ("failed", "error")]
    if outcome.exit_code == 0 and not broken:
        advisory = f", {counts['advisory']} advisory" if counts.get("advisory") else ""
        return Verdict(False, f"{counts['passed']} checks kept, {counts['skipped']} skipped{advisory}")
    if broken:
        first = min(broken, key=lambda r: not r.rule)  # a named rule says more than a test name
        rule = first.rule or first.name
        message = _first_line(first.message).removeprefix("AssertionError: ")
        message = message.removeprefix(f"{rule}:").strip()
        more = _more(len(broken) - 1, "broken")
        evidence = tuple(f"{r.kind}/{r.subject}/{r.rule or r.name}" for r in broken)
        return Verdict(
            True, f"broken {first.kind} {first.subject}: {rule}: {message}{more}", evidence=evidence
        )
    tail = [line for line in buffer.getvalue().splitlines() if line.strip()][-1:] or ["no output"]
    return Verdict(None, f"the contract run ended with exit {outcome.exit_code}: {_first_line(tail[0])}")


# --- load -----------------------------------------------------------------------------------------


def load_part(
    target: Target, *, config: Config | None = None, output: Output = _quiet, run_time: float = LOAD_SECONDS
) -> Verdict:
    """The smoke load profile for ``run_time`` seconds against the built-in SLOs (``config``: no ``[slo]``)."""
    from ksentinel.load.runner import EXIT_MISSED, EXIT_OK, run_load

    config = config if config is not None else Config()
    outcome = run_load(target, profile=LOAD_PROFILE, run_time=run_time, output=output, config=config)
    missed = [row for row in outcome.rows if row.missed]
    if outcome.exit_code == EXIT_OK:
        ratio = next((r for r in outcome.rows if r.slo == "error_ratio"), None)
        rps = next((r for r in outcome.rows if r.slo == "throughput"), None)
        measured = ", ".join(
            f"{r.slo} {r.measured_text}" for r in (ratio, rps) if r is not None and r.measured is not None
        )
        verdicts = outcome.verdict_line.removeprefix("SLOs: ") or f"{len(outcome.rows)} met"
        return Verdict(False, f"SLOs {verdicts} ({measured})")
    if outcome.exit_code == EXIT_MISSED and missed:
        first = missed[0]
        return Verdict(
            True,
            f"missed {first.slo} {first.step}: {first.measured_text} (objective {first.objective_text})"
            + _more(len(missed) - 1, "missed"),
        )
    return Verdict(None, _first_line(outcome.message) or f"the load run ended with exit {outcome.exit_code}")


# --- probe ----------------------------------------------------------------------------------------


@dataclass
class ProbeObservation:
    """What the probe passes saw, as the exporter's counters and gauges after each pass."""

    passes: list[dict[str, dict[tuple[str, ...], float]]] = field(default_factory=list)
    outcomes: list[Any] = field(default_factory=list)  # ksentinel.probe.run.Outcome, pass by pass


#: The exporter families the alert rules read, by the ProbeMetrics attribute that holds them.
_FAMILIES = {
    "runs": ("ksentinel_probe_runs_total", ("target", "flow", "result"), "counter"),
    "success": ("ksentinel_probe_success", ("target", "flow"), "gauge"),
    "duration": ("ksentinel_probe_duration_seconds", ("target", "flow"), "gauge"),
    "cache": ("ksentinel_cache_lookups_total", ("target", "result"), "counter"),
    "stale": ("ksentinel_cache_stale_reads_total", ("target",), "counter"),
    "misconfigured": ("ksentinel_probe_misconfigured", ("target", "flow"), "gauge"),
    "misconfigured_runs": ("ksentinel_probe_misconfigured_runs_total", ("target", "flow"), "counter"),
}


def observe_probe(
    target: Target, *, passes: int = PROBE_PASSES, output: Output = _quiet, verbose: bool = False
) -> ProbeObservation:
    """``passes`` passes over every flow, one run at a time, recorded as ``probe serve`` records them.

    The runner's warnings about failing flows (the exporter's log) are kept quiet unless ``verbose``:
    each run is reported through ``output`` instead.
    """
    from ksentinel.flows import all_flows
    from ksentinel.flows.sessions import credentials_of
    from ksentinel.probe.config import PROBE_OPTIONS, Pair
    from ksentinel.probe.metrics import ProbeMetrics
    from ksentinel.probe.run import ProbeTarget
    from ksentinel.probe.runner import Runner

    probe_target = ProbeTarget(target, credentials_of(target))
    pairs = [Pair(target.name, flow, 0.0, PROBE_TIMEOUT) for flow in all_flows()]
    metrics = ProbeMetrics(process=False)
    metrics.configure(pairs)
    observation = ProbeObservation()

    async def main() -> None:
        runner = Runner({target.name: probe_target}, PROBE_OPTIONS, metrics, max_concurrent=1)
        try:
            for number in range(1, passes + 1):
                outcomes = []
                for pair in pairs:
                    outcome, _ = await runner.run(pair.target, pair.flow, pair.timeout, record=True)
                    await runner.drain(pair.timeout + 30.0)  # a timed-out run cleans up first
                    outcomes.append(outcome)
                    where = f" at {outcome.failed_step}" if not outcome.ok and outcome.failed_step else ""
                    output(
                        f"probe pass {number}: {pair.flow} {outcome.result}{where} in {outcome.duration:.2f}s"
                    )
                observation.outcomes.append(outcomes)
                observation.passes.append(
                    {name: dict(getattr(metrics, name).values) for name in _FAMILIES}  # a snapshot
                )
        finally:
            runner.executor.shutdown(wait=True)

    runner_log = logging.getLogger("ksentinel.probe.runner")
    level = runner_log.level
    if not verbose:
        runner_log.setLevel(logging.ERROR)
    try:
        asyncio.run(main())
    finally:
        runner_log.setLevel(level)
        probe_target.close()
    return observation


def probe_verdict(observation: ProbeObservation, objectives: SloSpec) -> Verdict:
    """Caught when a run did not succeed, or a step was slower than its p95 objective every time."""
    runs = [outcome for outcomes in observation.outcomes for outcome in outcomes]
    failed = [o for o in runs if not o.ok]
    if failed:
        first = failed[0]
        where = f" at {first.failed_step}" if first.failed_step else ""
        code = f" [{first.code}]" if first.code else ""
        flows = sorted({o.flow for o in failed})
        return Verdict(
            True,
            f"{first.flow} {first.result}{where}{code}: {_first_line(first.reason, 120)}"
            + _more(len(flows) - 1, "failing flows"),
        )
    durations: dict[str, list[float]] = {}
    for outcome in runs:
        for step in outcome.steps:
            if not step.tested:  # a step that did not run its check has no latency to judge
                continue
            # without the step's deliberate waits (conversion, search index): those are the platform's
            # asynchronous work, not API latency, and take seconds on every realistic platform
            durations.setdefault(step.name, []).append(step.active)
    slow = []
    for name, seen in durations.items():
        p95 = objectives.step(name).p95
        # the fastest run of the step was over its p95 objective: the step's p95 certainly is
        if p95 is not None and len(seen) >= 2 and min(seen) > p95:
            slow.append((min(seen) / p95, name, seen, p95))
    if slow:
        slow.sort(key=lambda item: (-item[0], item[1]))
        shown = ", ".join(f"{name} {min(seen):.2f}s > {p95:g}s" for _, name, seen, p95 in slow[:3])
        return Verdict(
            True,
            f"{len(slow)} steps slower than their p95 objective in every run: {shown}"
            + (", ..." if len(slow) > 3 else ""),
        )
    flows = len({o.flow for o in runs})
    return Verdict(
        False, f"all {len(runs)} runs of {flows} flows succeeded, every step within its p95 objective"
    )


# --- alert ----------------------------------------------------------------------------------------


def find_promtool() -> str | None:
    from ksentinel.dashboards.lint import find_promtool as find

    found = find()
    if found is None and Path("/usr/bin/promtool").is_file():
        return "/usr/bin/promtool"
    return found


def alert_part(observation: ProbeObservation, objectives: SloSpec, *, promtool: str | None = None) -> Verdict:
    """The generated alert rules against the probe's observations, replayed by ``promtool test rules``."""
    promtool = promtool or find_promtool()
    if promtool is None:
        reason = "not run (promtool not found: install Debian's prometheus package or set KSENTINEL_PROMTOOL)"
        if os.environ.get(ENV_REQUIRE_SYSTEM_DEPS) == "1":
            return Verdict(None, f"{reason}, and {ENV_REQUIRE_SYSTEM_DEPS}=1 requires it")
        return Verdict(None, reason, ran=False)
    if not observation.passes:
        return Verdict(None, "no probe observations to replay")
    rules, alerts, minutes = alert_rules(objectives)
    with tempfile.TemporaryDirectory(prefix="ksentinel-selftest-") as tmp:
        folder = Path(tmp)
        (folder / "rules.yml").write_text(rules)
        (folder / "replay.yml").write_text(replay_tests(observation, alerts, minutes))
        try:
            proc = subprocess.run(
                [promtool, "test", "rules", "replay.yml"],
                cwd=folder,
                capture_output=True,
                text=True,
                timeout=PROMTOOL_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Verdict(None, f"cannot run {promtool}: {exc}")
    text = proc.stdout + "\n" + proc.stderr
    fired = fired_alerts(text)
    span = _duration_text(minutes)
    if proc.returncode == 0:
        return Verdict(False, f"none of {len(alerts)} alerts fired over {span} of replayed probe series")
    if not fired:
        problem = next(
            (line.strip() for line in text.splitlines() if line.strip() and "Unit Testing" not in line), ""
        )
        return Verdict(None, f"promtool test rules failed: {_first_line(problem)}")
    counted = {name: info for name, info in fired.items() if info["severities"] & set(ALERT_SEVERITIES)}
    shown = ", ".join(
        f"{name} [{','.join(sorted(info['severities']))}] on {len(info['flows']) or len(info['targets'])} "
        f"{'flows' if info['flows'] else 'targets'}"
        for name, info in sorted(fired.items())
    )
    if counted:
        return Verdict(True, f"fired {shown} ({span} replayed)", evidence=tuple(sorted(counted)))
    return Verdict(False, f"only non-paging alerts fired: {shown}")


def alert_rules(objectives: SloSpec) -> tuple[str, list[str], int]:
    """The Prometheus rule file, its alert names, and how many minutes of series to replay.

    The replayed series are steady, so each rate window gives the same failed share once it holds
    a few samples; the replay lasts the longest short burn window plus the longest ``for``, so that
    every short window is full and every alert has had the time to fire.
    """
    from ksentinel.dashboards.build import dump_yaml
    from ksentinel.dashboards.rules import BURN_WINDOWS, generate_rules, scaled
    from ksentinel.dashboards.settings import parse_settings

    settings = parse_settings({})
    groups = generate_rules(objectives, settings)
    alerts = list(dict.fromkeys(rule.alert for group in groups for rule in group.rules if rule.alert))
    longest_for = max(rule.for_seconds for group in groups for rule in group.rules if rule.alert)
    flow_objectives = [objectives.default_flow, *objectives.flows.values()]
    short = max(scaled(b.short, o, settings) for b in BURN_WINDOWS for o in flow_objectives)
    span = max(short, settings.cache_window) + longest_for + 5 * 60
    rules = dump_yaml({"groups": [group.to_prometheus() for group in groups]}).decode()
    return rules, alerts, math.ceil(span / 60)


def replay_tests(observation: ProbeObservation, alerts: list[str], minutes: int) -> str:
    """A promtool unit-test file: the passes replayed once a minute, no alert expected at the end."""
    passes = observation.passes
    series: list[dict[str, str]] = []
    for family, (metric, labels, kind) in _FAMILIES.items():
        keys = sorted({key for snapshot in passes for key in snapshot.get(family, {})})
        for key in keys:
            values = _replay(family, key, passes, kind, minutes)
            label_text = ",".join(
                f'{name}="{_escape(value)}"'
                for name, value in [*zip(labels, key, strict=True), *SCRAPE_LABELS.items()]
            )
            series.append(
                {"series": f"{metric}{{{label_text}}}", "values": " ".join(_number(v) for v in values)}
            )
    test = {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": f"{minutes}m", "alertname": name, "exp_alerts": []} for name in alerts
        ],
    }
    document = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [test]}
    return yaml.safe_dump(document, sort_keys=False, width=1 << 30)


def _replay(
    family: str,
    key: tuple[str, ...],
    passes: list[Mapping[str, Mapping[tuple[str, ...], float]]],
    kind: str,
    minutes: int,
) -> list[float]:
    """One value a minute for ``minutes`` minutes: pass after pass, over and over."""
    after = [float(snapshot.get(family, {}).get(key, 0.0)) for snapshot in passes]
    if kind == "counter":
        deltas = [value - (after[i - 1] if i else 0.0) for i, value in enumerate(after)]
        values, total = [0.0], 0.0
        for minute in range(minutes):
            total += deltas[minute % len(deltas)]
            values.append(total)
        return values
    present = [value for snapshot in passes if (value := snapshot.get(family, {}).get(key)) is not None]
    if not present:
        return [0.0] * (minutes + 1)
    cycle = [float(snapshot.get(family, {}).get(key, present[0])) for snapshot in passes]
    return [cycle[-1]] + [cycle[minute % len(cycle)] for minute in range(minutes)]


_ALERTNAME = re.compile(r"alertname:\s*([A-Za-z_:][A-Za-z0-9_:]*),\s*time:")
_LABELS = re.compile(r"Labels:\{(.*)\}")
_PAIR = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def fired_alerts(text: str) -> dict[str, dict[str, set[str]]]:
    """Alert names promtool reported as firing where none was expected, with severities, flows, targets."""
    fired: dict[str, dict[str, set[str]]] = {}
    current: str | None = None
    for line in text.splitlines():
        name = _ALERTNAME.search(line)
        if name:
            current = name.group(1)
            continue
        labels = _LABELS.search(line)
        if labels and current:
            pairs = dict(_PAIR.findall(labels.group(1)))
            info = fired.setdefault(
                pairs.get("alertname", current), {"severities": set(), "flows": set(), "targets": set()}
            )
            if "severity" in pairs:
                info["severities"].add(pairs["severity"])
            if "flow" in pairs:
                info["flows"].add(pairs["flow"])
            if "target" in pairs:
                info["targets"].add(pairs["target"])
    return fired


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


def _number(value: float) -> str:
    return f"{value:.6g}"


def _duration_text(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    return f"{hours}h{rest}m" if hours and rest else f"{hours}h" if hours else f"{rest}m"


__all__ = [
    "LOAD_SECONDS",
    "PROBE_PASSES",
    "ProbeObservation",
    "Verdict",
    "alert_part",
    "contract_part",
    "default_objectives",
    "load_part",
    "observe_probe",
    "probe_verdict",
]
