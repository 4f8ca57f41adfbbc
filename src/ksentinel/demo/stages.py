"""The stages of ``ksentinel demo``: each runs one part of ksentinel against an opened target.

A stage returns its :class:`~ksentinel.report.model.Stage` row and fills its section of the
:class:`~ksentinel.report.model.RunReport`. Everything a stage prints goes, redacted, to its log
file under ``<out>/logs/``; the terminal only shows progress.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ksentinel.config import Config, Target
from ksentinel.kaltura.redact import redact
from ksentinel.report.model import RunReport, Stage

Tick = Callable[[float], None]  # fraction done (0..1) of a stage that knows its length


@dataclass(frozen=True)
class DemoRun:
    """What every stage needs: the opened target, the configuration and where output goes."""

    target: Target
    config: Config
    out: Path
    load_seconds: float

    @property
    def logs(self) -> Path:
        return self.out / "logs"

    def log_path(self, name: str) -> Path:
        self.logs.mkdir(parents=True, exist_ok=True)
        return self.logs / f"{name}.log"

    def href(self, path: Path) -> str:
        return Path(os.path.relpath(path, self.out)).as_posix()


class RedactingLog(io.TextIOBase):
    """A text stream that writes each complete line, redacted, to a file."""

    def __init__(self, sink: IO[str]) -> None:
        self._sink = sink
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            self._sink.write(redact(line) + "\n")
        return len(text)

    def flush(self) -> None:
        self._sink.flush()

    def close(self) -> None:
        if self._pending:
            self._sink.write(redact(self._pending) + "\n")
            self._pending = ""
        self._sink.flush()
        super().close()


@contextlib.contextmanager
def log_file(run: DemoRun, name: str) -> Iterator[RedactingLog]:
    with run.log_path(name).open("w", encoding="utf-8") as sink:
        stream = RedactingLog(sink)
        try:
            yield stream
        finally:
            stream.close()


def contract_stage(run: DemoRun, report: RunReport, tick: Tick) -> Stage:
    """The contract suite, profile ``quick``, with JUnit beside the report."""
    from ksentinel.contract.runner import EXIT_USAGE, run_contract

    started = time.monotonic()
    junit = run.out / "contract-junit.xml"
    with log_file(run, "contract") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        outcome = run_contract(run.target, profile="quick", junit=junit, report=None, verbose=True)
    report.contract = outcome.section
    report.links["Contract JUnit XML"] = run.href(junit)
    report.links["Contract log"] = run.href(run.log_path("contract"))
    counts = outcome.section.counts()
    summary = (
        f"{counts['passed']} passed, {counts['failed']} failed, {counts['error']} errors, "
        f"{counts['skipped']} skipped"
        + (f", {counts['advisory']} advisory" if counts.get("advisory") else "")
    )
    if outcome.exit_code == EXIT_USAGE and not outcome.section.results:
        return Stage("contract", "error", time.monotonic() - started, "the suite did not run: see the log")
    status = "passed" if outcome.section.ok and outcome.exit_code == 0 else "failed"
    return Stage("contract", status, time.monotonic() - started, summary)


def load_stage(run: DemoRun, report: RunReport, tick: Tick) -> Stage:
    """A ``smoke`` load run of ``run.load_seconds``, judged against the SLOs."""
    from ksentinel.load.runner import EXIT_INTERRUPTED, EXIT_OK, run_load
    from ksentinel.report.load_section import load_section

    started = time.monotonic()
    html = run.out / "load" / "locust.html"
    with log_file(run, "load") as log:

        def output(line: str) -> None:
            log.write(line + "\n")
            tick(min(1.0, (time.monotonic() - started) / max(run.load_seconds, 1.0)))

        outcome = run_load(
            run.target,
            profile="smoke",
            run_time=run.load_seconds,
            html=html,
            config=run.config,
            output=output,
        )
    report.load = load_section(outcome, run.out)
    report.load["summary"] = outcome.summary  # the JSON twin keeps the numbers the charts draw
    report.links["Load log"] = run.href(run.log_path("load"))
    if outcome.report_path is not None:
        report.links["Locust's HTML report"] = run.href(outcome.report_path)
    seconds = time.monotonic() - started
    if outcome.exit_code == EXIT_INTERRUPTED:
        return Stage("load", "interrupted", seconds, "interrupted")
    if outcome.summary is None:
        return Stage("load", "error", seconds, outcome.message or "the run produced no statistics")
    missed = [row for row in outcome.rows if row.missed]
    totals = outcome.summary.get("totals") or {}
    verdicts = outcome.verdict_line.removeprefix("SLOs: ") or f"{len(missed)} missed"
    summary = (
        f"{totals.get('requests', 0)} requests, {float(totals.get('rps') or 0):.1f} req/s, SLOs {verdicts}"
    )
    if missed:
        summary += f"; missed: {', '.join(f'{r.slo} {r.step}' for r in missed[:3])}"
    return Stage("load", "passed" if outcome.exit_code == EXIT_OK else "failed", seconds, summary)


def probe_stage(run: DemoRun, report: RunReport, tick: Tick) -> Stage:
    """One pass of the probe schedule's flows, as ``probe run --once`` does it."""
    from ksentinel.flows.sessions import credentials_of
    from ksentinel.probe.config import load_probe_config
    from ksentinel.probe.once import render_table, run_pass
    from ksentinel.probe.run import ProbeTarget
    from ksentinel.report.probe_section import probe_section

    started = time.monotonic()
    probes = load_probe_config(run.config.path)
    probe_target = ProbeTarget(run.target, credentials_of(run.target))
    try:
        pairs = probes.pairs([run.target.name], override=True)
        result = run_pass({run.target.name: probe_target}, pairs, probes.options)
    finally:
        probe_target.close()
    with log_file(run, "probe") as log:
        log.write(render_table(result) + "\n")
    report.probe = probe_section(result)
    report.links["Probe log"] = run.href(run.log_path("probe"))
    section = report.probe
    status = "passed" if section["ok"] else "failed"
    summary = f"{section['succeeded']} of {len(section['flows'])} flows succeeded"
    failed = [f"{f['flow']} at {f['failed_step'] or '-'}" for f in section["flows"] if not f["ok"]]
    if failed:
        summary += f"; failed: {', '.join(failed)}"
    return Stage("probe", status, time.monotonic() - started, summary)


def dashboards_stage(run: DemoRun, report: RunReport, tick: Tick) -> Stage:
    """The dashboards and alert rules, built from the same configuration into ``<out>/dashboards``."""
    from ksentinel.dashboards.build import build, write_build
    from ksentinel.report.dashboards_section import dashboards_section
    from ksentinel.suites import find_suite

    started = time.monotonic()
    out = run.out / "dashboards"
    result = build(run.config, find_suite("dashboards").path)
    written = write_build(result, out)
    report.dashboards = dashboards_section(result, out, run.out)
    section = report.dashboards
    summary = (
        f"{len(section['dashboards'])} dashboards, {section['records']} recording rules, "
        f"{len(section['alerts'])} alerts ({len(written)} files)"
    )
    return Stage("dashboards", "passed", time.monotonic() - started, summary)


STAGES: dict[str, Callable[[DemoRun, RunReport, Tick], Stage]] = {
    "contract": contract_stage,
    "load": load_stage,
    "probe": probe_stage,
    "dashboards": dashboards_stage,
}
