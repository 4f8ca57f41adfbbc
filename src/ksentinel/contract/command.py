"""``ksentinel contract``: the contract suite against one target, with its report and JUnit."""

from __future__ import annotations

import sys
import textwrap
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
from ksentinel.report.render import prepare_folder


@click.command("contract")
@target_options
@click.option(
    "--profile",
    type=click.Choice(["quick", "ci", "deep"]),
    default="ci",
    show_default=True,
    help="How much to check (see docs/contracts.md).",
)
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit XML here.")
@report_options("contract")
@click.option(
    "-n", "--workers", type=click.IntRange(0, 64), default=0, help="Run checks in N pytest-xdist workers."
)
@click.option(
    "--suite",
    type=click.Path(file_okay=False, path_type=Path),
    help="Contract suite folder [default: ./contracts].",
)
@fault_option
@click.option("-v", "--verbose", is_flag=True, help="One line per check instead of dots.")
def contract(
    selection: TargetSelection,
    profile: str,
    junit: Path | None,
    report: ReportRequest,
    workers: int,
    suite: Path | None,
    faults: tuple[str, ...],
    verbose: bool,
) -> None:
    """Check that the API keeps its contract: schema, flows, caching and security.

    Exit 0 when every contract holds, 1 when one is broken, 2 on a usage error or a target that
    cannot be tested (unreachable, not a Kaltura API, wrong secret), 130 when interrupted (SIGINT,
    SIGTERM: the report says INCOMPLETE).
    """
    from ksentinel.contract.runner import exit_when_interrupted, run_contract
    from ksentinel.embedded import open_target
    from ksentinel.flows.preflight import check_target

    config, resolved = selection.resolve()
    check_faults(faults, embedded=resolved.embedded)
    report_path = report.html(config)
    if junit is not None:
        prepare_folder(junit.parent, "--junit")
    # SIGINT/SIGTERM: the checks stop, clean up and report INCOMPLETE (exit 130); before them, exit 130
    with exit_when_interrupted(), open_target(resolved.target, faults=faults, config=config) as target:
        click.echo(
            f"ksentinel contract: profile {profile} against {target.name} {target.url} (partner {target.partner_id})",
            err=True,
        )
        check_target(target)
        outcome = run_contract(
            target,
            profile=profile,
            suite=suite,
            junit=junit,
            report=report_path,
            workers=workers,
            verbose=verbose,
            config_path=config.path,
        )
    counts = outcome.section.counts()
    click.echo(
        f"contract: {counts['passed']} passed, {counts['failed']} failed, {counts['error']} tool errors, "
        f"{counts['not_tested']} not tested, {counts['skipped']} skipped"
        + (f", {counts['advisory']} advisory" if counts.get("advisory") else "")
        + f" in {outcome.section.duration:.1f}s (profile {profile})"
    )
    for result in outcome.section.results:
        first_line = (result.message or "").splitlines()[0] if result.message else ""
        if result.summary:  # sums up the rows above it ("all actions"): not one more check
            continue
        if result.outcome == "failed":  # "rule: why", the rule named once
            click.echo(f"  BROKEN {result.kind} {result.subject}: {result.headline()}"[:300])
        elif result.outcome == "error":  # ksentinel or schemathesis could not judge it, not the target
            why = first_line.removeprefix("tool error: ")
            click.echo(f"  TOOL ERROR {result.kind} {result.subject}: {why}"[:300])
        elif result.outcome == "advisory":
            click.echo(f"  ADVISORY {result.kind} {result.subject}: {first_line}"[:300])
    for reason, subjects in outcome.section.not_tested().items():  # one line per reason, then the names
        click.echo(f"  NOT TESTED ({len(subjects)}): {reason}"[:300])
        for line in textwrap.wrap(", ".join(subjects), 100, initial_indent="    ", subsequent_indent="    "):
            click.echo(line)
    if outcome.section.not_run:
        click.echo(f"contract: NOT TESTED: {outcome.section.not_run}", err=True)
    elif not outcome.section.judged and not outcome.section.interrupted:
        click.echo("contract: NOT TESTED: no check reached a verdict on the target", err=True)
    if outcome.report_path:
        click.echo(f"report: {outcome.report_path}")
    if junit:
        click.echo(f"junit: {junit}")
    if outcome.section.interrupted:
        click.echo("contract: interrupted: INCOMPLETE, the results cover the checks that ran", err=True)
    sys.exit(outcome.exit_code)
