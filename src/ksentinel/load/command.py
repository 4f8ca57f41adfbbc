"""``ksentinel load``: the click command (``main.add_command(load_command, "load")`` in ``cli.py``).

Also runnable on its own: ``python -m ksentinel.load --profile smoke``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ksentinel.cli_errors import OneLineErrorCommand, one_line_errors
from ksentinel.cli_target import (
    ReportRequest,
    TargetSelection,
    check_faults,
    fault_option,
    report_options,
    target_options,
)
from ksentinel.config import Target
from ksentinel.errors import ConfigError
from ksentinel.load.settings import (
    ENV_METRICS_PORT,
    ENV_PROFILE,
    ENV_RUN_TIME,
    ENV_SPAWN_RATE,
    ENV_USERS,
    ENV_WORKERS,
)


def refuse_production(target: Target | None, allow_production: bool) -> None:
    """A production target is load-tested only with ``--allow-production`` (one-line ``ConfigError``).

    The load test has no rate cap (its profile's arrival model is its rate) and its flows write, so
    pointing it at production by mistake must not be one forgotten flag away.
    """
    if target is not None and getattr(target, "environment", "") == "production" and not allow_production:
        raise ConfigError(
            f"target '{target.name}' is a production target: ksentinel load refuses to load-test it "
            "without --allow-production"
        )


@click.command("load", cls=OneLineErrorCommand)
@target_options
@click.option(
    "--profile",
    default="smoke",
    show_default=True,
    envvar=ENV_PROFILE,
    show_envvar=True,
    metavar="NAME",
    help="A profile of load/profiles.toml: smoke, ramp, soak, spike, arrival, ...",
)
@click.option(
    "--users",
    type=click.IntRange(min=1),
    envvar=ENV_USERS,
    show_envvar=True,
    metavar="N",
    help="Users (open model: executors) instead of the profile's; a staged profile is scaled.",
)
@click.option(
    "--spawn-rate",
    type=click.FloatRange(min=0, min_open=True),
    envvar=ENV_SPAWN_RATE,
    show_envvar=True,
    metavar="R",
    help="Users started per second instead of the profile's.",
)
@click.option(
    "--run-time",
    envvar=ENV_RUN_TIME,
    show_envvar=True,
    metavar="T",
    help="Run time instead of the profile's (20s, 10m, 1h30m); a staged profile is stretched.",
)
@click.option(
    "--workers",
    type=click.IntRange(0, 64),
    default=0,
    show_default=True,
    envvar=ENV_WORKERS,
    show_envvar=True,
    metavar="N",
    help="Run Locust's master with N local worker processes (0: one process).",
)
@report_options(
    "load",
    alias="--html",
    envvar="KSENTINEL_LOAD_REPORT",
    alias_envvar="KSENTINEL_LOAD_HTML",
    what="Locust's HTML report as DIR/load.html",
)
@click.option(
    "--csv",
    "csv_prefix",
    metavar="PREFIX",
    envvar="KSENTINEL_LOAD_CSV",
    show_envvar=True,
    help="Also write Locust's CSV stats as PREFIX_stats.csv, ...",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    envvar=ENV_METRICS_PORT,
    show_envvar=True,
    metavar="PORT",
    help="Serve ksentinel_load_* Prometheus metrics on 127.0.0.1:PORT while the run lasts.",
)
@click.option(
    "--suite",
    type=click.Path(file_okay=False, path_type=Path),
    help="Load suite folder with locustfile.py and profiles.toml [default: ./load].",
)
@click.option(
    "--allow-production",
    is_flag=True,
    help="Load-test a target whose environment is production (refused without it; docs/production.md). "
    "Deliberately without an environment variable.",
)
@fault_option
@one_line_errors
def load_command(
    selection: TargetSelection,
    profile: str,
    users: int | None,
    spawn_rate: float | None,
    run_time: str | None,
    workers: int,
    report: ReportRequest,
    csv_prefix: str | None,
    metrics_port: int | None,
    suite: Path | None,
    allow_production: bool,
    faults: tuple[str, ...],
) -> None:
    """Load-test the API with the flow catalogue and judge the run against the [slo] objectives.

    Locust runs headless (with --workers N, as a master and N local workers); at the end the SLO
    table is printed and Locust's HTML report written. Exit 0 when every SLO is met, 1 when one is
    missed, 2 on a usage, configuration or target error, 130 when interrupted.
    """
    code = _load(
        selection,
        profile,
        users,
        spawn_rate,
        run_time,
        workers,
        report,
        csv_prefix,
        metrics_port,
        suite,
        faults,
        allow_production=allow_production,
    )
    sys.exit(code)


def _load(
    selection: TargetSelection,
    profile: str,
    users: int | None,
    spawn_rate: float | None,
    run_time: str | None,
    workers: int,
    report_request: ReportRequest,
    csv_prefix: str | None,
    metrics_port: int | None,
    suite: Path | None,
    faults: tuple[str, ...],
    *,
    allow_production: bool = False,
) -> int:
    from ksentinel.embedded import open_target
    from ksentinel.flows import new_run_id
    from ksentinel.flows.preflight import check_target
    from ksentinel.load.profiles import parse_run_time
    from ksentinel.load.runner import plan_load, run_load

    seconds = parse_run_time(run_time, "--run-time") if run_time else None
    config, resolved = selection.resolve()
    check_faults(faults, embedded=resolved.embedded)
    refuse_production(resolved.target, allow_production)
    plan_load(
        profile=profile, users=users, spawn_rate=spawn_rate, run_time=seconds, suite=suite, config=config
    )
    report = report_request.html(config)
    run_tag = new_run_id()
    with open_target(resolved.target, faults=faults, config=config) as target:
        check_target(target)
        click.echo(
            f"ksentinel load: profile {profile} against {target.name} {target.url} (partner {target.partner_id})"
            + (f" with {workers} workers" if workers else "")
            + f", run tag {run_tag}",
            err=True,
        )
        outcome = run_load(
            target,
            profile=profile,
            users=users,
            spawn_rate=spawn_rate,
            run_time=seconds,
            workers=workers,
            html=report,
            csv=csv_prefix,
            metrics_port=metrics_port,
            suite=suite,
            config=config,
            run_tag=run_tag,
            output=lambda line: click.echo(line, err=True),
        )
    if outcome.table:
        click.echo(f"\nSLOs of run {outcome.run_tag} (profile {outcome.profile}):")
        click.echo(outcome.table)
    if outcome.message:
        click.echo(f"ksentinel: error: {outcome.message}", err=True)
    if outcome.interrupted:
        click.echo("load: interrupted; the table covers the part that ran", err=True)
    if outcome.report_path:
        click.echo(f"report: {outcome.report_path}")
    if outcome.csv_prefix:
        click.echo(f"csv: {outcome.csv_prefix}_stats.csv")
    return outcome.exit_code
