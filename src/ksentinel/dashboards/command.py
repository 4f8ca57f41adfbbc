"""``ksentinel dashboards build|lint|push``: the click group (``main.add_command(dashboards_group)``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ksentinel.cli_errors import OneLineErrorGroup, global_config

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
F = TypeVar("F", bound=Callable[..., Any])


@click.group("dashboards", cls=OneLineErrorGroup)
@click.option(
    "--suite",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="KSENTINEL_DASHBOARDS_SUITE",
    show_envvar=True,
    help="Folder with the *.dashboard.py files [default: ./dashboards].",
)
@click.pass_context
def dashboards_group(ctx: click.Context, suite: Path | None) -> None:
    """Grafana dashboards and alert rules as code: generated from dashboards/ and [slo].

    --config FILE (the ksentinel.toml with [slo] and [dashboards]) is accepted here or after the
    subcommand, like everywhere.
    """
    ctx.ensure_object(dict)
    ctx.obj["dashboards_suite"] = suite


def _build(ctx: click.Context) -> Any:
    from ksentinel.config import load_config
    from ksentinel.dashboards.build import build

    config = load_config(global_config(ctx))
    return build(config, _suite(ctx).path)


def _suite(ctx: click.Context) -> Any:
    """``--suite``, else ``./dashboards``, else the dashboards shipped with ksentinel (``FoundSuite``)."""
    from ksentinel.suites import find_suite

    return find_suite("dashboards", ctx.obj.get("dashboards_suite"))


@dashboards_group.command("build")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="KSENTINEL_DASHBOARDS_OUT",
    show_envvar=True,
    help="Output folder [default: <suite>/build; dashboards/build here when the suite is the shipped one].",
)
@click.pass_context
def build_command(ctx: click.Context, out: Path | None) -> None:
    """Write dashboard JSON, the Prometheus rule file and Grafana provisioning files (deterministic)."""
    from ksentinel.dashboards.build import write_build

    result = _build(ctx)
    suite = _suite(ctx)
    # never into the installed package: the shipped suite builds into ./dashboards/build
    target = out or (Path("dashboards") if suite.shipped else suite.path) / "build"
    written = write_build(result, target)
    alerts = sum(1 for group in result.groups for rule in group.rules if rule.alert)
    records = sum(1 for group in result.groups for rule in group.rules if rule.record)
    click.echo(
        f"dashboards build: {len(result.dashboards)} dashboards, {records} recording rules, "
        f"{alerts} alerts -> {target} ({len(written)} files)"
    )


@dashboards_group.command("lint")
@click.pass_context
def lint_command(ctx: click.Context) -> None:
    """Check that every expression parses and reads exported series, every panel has a unit and a title."""
    from ksentinel.dashboards.exported import exported_names
    from ksentinel.dashboards.lint import lint

    report = lint(_build(ctx), exported_names())
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    for problem in report.problems:
        click.echo(problem)
    if report.problems:
        click.echo(
            f"dashboards lint: {len(report.problems)} problems in {report.checked} expressions", err=True
        )
        sys.exit(EXIT_FAILED)
    click.echo(f"dashboards lint: {report.checked} expressions OK")


@dashboards_group.command("push")
@click.option(
    "--grafana-url",
    required=True,
    envvar="KSENTINEL_GRAFANA_URL",
    show_envvar=True,
    metavar="URL",
    help="Grafana's base URL, e.g. http://localhost:3000 (token from KSENTINEL_GRAFANA_TOKEN).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    envvar="KSENTINEL_GRAFANA_TIMEOUT",
    show_envvar=True,
    help="Seconds per HTTP request.",
)
@click.pass_context
def push_command(ctx: click.Context, grafana_url: str, timeout: float) -> None:
    """Upload dashboards and alert rules through Grafana's HTTP API (idempotent)."""
    from ksentinel.dashboards.push import grafana_token, push

    token = grafana_token()
    result = push(_build(ctx), grafana_url, token, timeout=timeout, output=lambda line: click.echo(line))
    click.echo(f"dashboards push: {result.summary()} -> {grafana_url}")
