"""``ksentinel demo``: the reference platform, contract, load, probe and dashboards in one run, one report.

Exit codes: 0 every stage passed, 1 a check, an SLO or a probe failed, 2 usage or target error,
130 interrupted (Ctrl-C or SIGTERM: the stage in progress stops and cleans up, the later ones are
skipped, the report is still written and the platform shut down).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from ksentinel.cli_target import (
    ReportRequest,
    TargetSelection,
    check_faults,
    fault_option,
    report_options,
    target_options,
)
from ksentinel.config import Config, Target
from ksentinel.demo.progress import StageProgress, stage_progress
from ksentinel.demo.stages import STAGES, DemoRun, Tick
from ksentinel.errors import ConfigError, KsentinelError
from ksentinel.report.model import RunReport, Stage
from ksentinel.report.render import write_report

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
TARGET_STAGE = "target"


@click.command("demo")
@target_options
@report_options(
    "index",
    alias="--out",
    alias_names_file=False,
    alias_envvar="KSENTINEL_DEMO_OUT",
    what="DIR/index.html and DIR/index.json, the logs and generated files under it",
)
@click.option(
    "--load-time",
    default="20s",
    show_default=True,
    metavar="T",
    help="How long the smoke load runs (e.g. 10s, 1m).",
)
@click.option(
    "--skip",
    multiple=True,
    type=click.Choice(list(STAGES)),
    help="Leave a stage out (repeatable).",
)
@fault_option
def demo_command(
    selection: TargetSelection,
    report: ReportRequest,
    load_time: str,
    skip: tuple[str, ...],
    faults: tuple[str, ...],
) -> None:
    """Everything ksentinel does, in about a minute, into one HTML report.

    Without a target it starts the embedded reference platform on a free loopback port with a
    throw-away data folder. It runs the contract suite (profile quick), a short smoke load run,
    one probe pass, builds the dashboards and alert rules, and writes DIR/index.html (--report DIR,
    default reports/<time>/) with the same data as index.json beside it. --target/--url runs the
    same against a real platform (what the run creates there is tagged and removed).

    Exit 0 when everything passed, 1 when a check, an SLO or a probe failed, 2 on a usage or
    target error, 130 when interrupted.
    """
    from ksentinel.load.profiles import parse_run_time

    load_seconds = parse_run_time(load_time, "--load-time")
    config, resolved = selection.resolve()
    check_faults(faults, embedded=resolved.embedded)
    out = report.html(config).parent.absolute()
    run_report = RunReport(
        title="ksentinel demo", target="(starting)", started=time.strftime("%Y-%m-%d %H:%M:%S %Z")
    )
    started = time.monotonic()
    names = [TARGET_STAGE, *STAGES]
    with _interrupts() as interrupted, stage_progress(names) as progress:
        try:
            _run_stages(
                run_report, progress, interrupted, resolved.target, config, out, load_seconds, skip, faults
            )
        except KeyboardInterrupt:
            interrupted.set()
            run_report.stages.append(
                Stage("demo", "interrupted", 0.0, "interrupted while starting or stopping")
            )
    run_report.duration = time.monotonic() - started
    if (
        not any(s.name == TARGET_STAGE and s.status == "passed" for s in run_report.stages)
        and not run_report.interrupted
    ):
        failure = next((s for s in run_report.stages if s.status == "error"), None)
        raise ConfigError(failure.summary if failure else "the target could not be opened")
    html = write_report(run_report, out / "index.html")
    _summary(run_report, html)
    if run_report.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_OK if run_report.ok else EXIT_FAILED)


def _run_stages(
    report: RunReport,
    progress: StageProgress,
    interrupted: threading.Event,
    target: Target | None,
    config: Config,
    out: Path,
    load_seconds: float,
    skip: tuple[str, ...],
    faults: tuple[str, ...],
) -> None:
    from ksentinel.embedded import open_target
    from ksentinel.flows.preflight import check_target

    progress.start(TARGET_STAGE, "embedded reference platform" if target is None else "preflight")
    opened_at = time.monotonic()
    with open_target(target, faults=faults, config=config) as opened:
        report.target = f"{opened.name} {opened.url} partner {opened.partner_id}"
        try:
            check_target(opened)
        except KsentinelError as exc:
            stage = Stage(TARGET_STAGE, "error", time.monotonic() - opened_at, str(exc))
            report.stages.append(stage)
            progress.done(stage)
            return
        where = "embedded reference platform" if target is None else "target"
        detail = f"{where} {opened.url}, partner {opened.partner_id}"
        if faults:
            detail += f", faults: {', '.join(faults)}"
        stage = Stage(TARGET_STAGE, "passed", time.monotonic() - opened_at, detail)
        report.stages.append(stage)
        progress.done(stage)
        run = DemoRun(target=opened, config=config, out=out, load_seconds=load_seconds)
        for name, function in STAGES.items():
            if name in skip:
                stage = Stage(name, "skipped", 0.0, "--skip")
            elif interrupted.is_set():
                stage = Stage(name, "skipped", 0.0, "interrupted before it started")
            else:
                progress.start(name)
                stage = _run_one(name, function, run, report, progress, interrupted)
            report.stages.append(stage)
            progress.done(stage)


def _run_one(
    name: str,
    function: Callable[[DemoRun, RunReport, Tick], Stage],
    run: DemoRun,
    report: RunReport,
    progress: StageProgress,
    interrupted: threading.Event,
) -> Stage:
    started = time.monotonic()
    try:
        stage = function(run, report, progress.tick)
    except KeyboardInterrupt:
        interrupted.set()
        return Stage(name, "interrupted", time.monotonic() - started, "interrupted")
    except KsentinelError as exc:
        return Stage(name, "error", time.monotonic() - started, str(exc))
    if interrupted.is_set() and stage.status != "skipped":
        stage.status = "interrupted"
    return stage


@contextlib.contextmanager
def _interrupts() -> Iterator[threading.Event]:
    """SIGINT and SIGTERM set the event and raise KeyboardInterrupt where the main thread is."""
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def interrupt(signum: int, frame: object) -> None:
        event.set()
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield event
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _summary(report: RunReport, html: Path) -> None:
    click.echo(f"ksentinel demo: {report.verdict} in {report.duration:.1f}s against {report.target}")
    for stage in report.stages:
        click.echo(f"  {stage.name:<11} {stage.status:<11} {stage.seconds:6.1f}s  {stage.summary}"[:240])
    click.echo(f"report: {html}")
    click.echo(f"json:   {html.with_suffix('.json')}")
