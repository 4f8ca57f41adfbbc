"""The ``ksentinel`` command.

Known errors (``KsentinelError``) and usage errors print one line on stderr and exit 2 (1 for failed
checks); anything else is a bug: one line plus a hint, and the traceback with ``--debug``. The global
options ``--config`` and ``--debug`` are accepted before or after the subcommand (``cli_errors.py``);
every command that writes a report takes ``--report DIR`` (``cli_target.py``, docs/cli.md).
"""

from __future__ import annotations

import logging
import sys
import textwrap
from pathlib import Path

import click

from ksentinel import __version__
from ksentinel.cli_errors import OneLineErrorGroup, config_option, debug_enabled, global_config
from ksentinel.cli_target import (
    ReportRequest,
    TargetSelection,
    check_faults,
    config_group,
    fault_option,
    report_options,
    target_options,
)
from ksentinel.dashboards.command import dashboards_group
from ksentinel.demo.command import demo_command
from ksentinel.errors import ConfigError, KsentinelError
from ksentinel.init_command import init_command
from ksentinel.kaltura.redact import install_log_redaction
from ksentinel.load.command import load_command
from ksentinel.probe.command import probe_group
from ksentinel.report.render import prepare_folder
from ksentinel.schema.cli import schema_group
from ksentinel.selftest.command import selftest_command
from ksentinel.traffic.command import check_traffic

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class Cli(OneLineErrorGroup):
    """Known errors as one line and exit 2 (the base class); anything else one line and exit 3."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (
            click.ClickException,
            click.exceptions.Exit,
            click.exceptions.Abort,
            SystemExit,
            KeyboardInterrupt,
        ):
            raise
        except Exception as exc:
            if debug_enabled(ctx):
                raise
            click.echo(
                f"ksentinel: internal error: {exc.__class__.__name__}: {exc} (run with --debug for the traceback)",
                err=True,
            )
            sys.exit(3)


@click.group(
    "ksentinel",
    cls=Cli,
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "KSENTINEL"},
)
@click.version_option(__version__, prog_name="ksentinel")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Contract tests, load tests and synthetic probes for Kaltura-style video platform APIs.

    --config FILE and --debug are accepted before or after the subcommand.
    """
    ctx.ensure_object(dict)
    logging.basicConfig(
        level=logging.DEBUG if debug_enabled(ctx) else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    install_log_redaction()


@main.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Loopback address to listen on (127.0.0.1 or ::1)."
)
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port; 0 picks a free one."
)
@click.option(
    "--data-dir",
    default=".ksentinel/reference",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the SQLite database, uploads and partners.json.",
)
@click.option(
    "--ready-after",
    default=None,
    type=click.FloatRange(0, 3600),
    help="Seconds an entry with content stays PRECONVERT before READY (or ERROR_CONVERTING).  [default: 2]",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="NAME",
    help="Switch on a deliberate defect (repeatable); see --list-faults.",
)
@click.option(
    "--max-chunk-mb",
    default=64,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="Largest upload chunk accepted.",
)
@config_option(
    help="ksentinel.toml whose [reference] section sets the realism [env var: KSENTINEL_CONFIG; default: "
    "found walking up]. Accepted before or after the subcommand."
)
@click.option(
    "--realism",
    type=click.Choice(["on", "off"]),
    default=None,
    help="Behave like a real Kaltura (search index lag, async conversion, redirected downloads, quirks) "
    "or like an immediate, plain platform.  [default: on]",
)
@click.option("--index-lag", type=click.FloatRange(0, 600), help="Seconds before list/count see a write.")
@click.option("--index-lag-jitter", type=click.FloatRange(0, 1), help="Share the index lag varies by.")
@click.option(
    "--sniff-media/--no-sniff-media",
    default=None,
    help="Content that is not playable media ends in ERROR_CONVERTING.",
)
@click.option(
    "--download-redirect/--no-download-redirect",
    default=None,
    help="Download URLs answer 302 to another origin that serves the bytes.",
)
@click.option(
    "--cache-extra-fields/--no-cache-extra-fields",
    default=None,
    help="Some cache hits are marked cached-with-extra-fields.",
)
@click.option(
    "--echo-invalid-ks/--no-echo-invalid-ks",
    default=None,
    help="INVALID_KS carries the refused KS, as the real server does.",
)
@click.option(
    "--final-chunk-wait",
    type=click.FloatRange(0, 600),
    help="Seconds a final parallel chunk waits for the earlier ones.",
)
@click.option(
    "--schema",
    "schema_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Serve this Kaltura schema XML at /api_v3/api_schema.php; its actions the platform lacks answer "
    "SERVICE_FORBIDDEN.",
)
@click.option("--list-faults", is_flag=True, help="List the faults that --fault accepts and exit.")
def serve(
    host: str,
    port: int,
    data_dir: Path,
    ready_after: float | None,
    faults: tuple[str, ...],
    max_chunk_mb: int,
    realism: str | None,
    schema_file: Path | None,
    list_faults: bool,
    **behaviours: float | bool | None,
) -> None:
    """Run the embedded Kaltura-compatible reference platform in the foreground.

    It behaves like a real Kaltura by default (docs/reference-platform.md, "Realism"): each behaviour
    has a flag here and a key in the [reference] section of ksentinel.toml; flags win.
    """
    from ksentinel.config import load_config
    from ksentinel.reference.faults import CATALOGUE, parse_faults

    if list_faults:
        for fault in CATALOGUE.values():
            click.echo(f"{fault.name:22} {fault.summary}")
        return
    parse_faults(list(faults))
    from ksentinel.reference.platform import Platform, PlatformConfig
    from ksentinel.reference.realism import reference_settings
    from ksentinel.reference.server import bind, serve_forever, url_of

    file_config = load_config(global_config())
    table = dict(file_config.reference)
    if realism is not None:
        table = {key: value for key, value in table.items() if key == "ready_after"}
        table["realism"] = realism == "on"
    if ready_after is not None:
        table["ready_after"] = ready_after
    table.update({key: value for key, value in behaviours.items() if value is not None})
    settings = reference_settings(table, f"{file_config.label}: reference")
    if schema_file is not None:
        if not schema_file.is_file():
            raise ConfigError(f"--schema {schema_file}: no such file")
        from ksentinel.reference.schema_xml import load_served_schema

        load_served_schema(schema_file)  # a bad file: one line before anything listens
    config = PlatformConfig(
        data_dir=data_dir,
        ready_after=settings.ready_after,
        faults=faults,
        max_chunk_bytes=max_chunk_mb * 1024 * 1024,
        realism=settings.realism,
        schema_file=schema_file,
    )
    sock = bind(host, port)
    try:
        platform = Platform.open(config)
    except KsentinelError:
        sock.close()
        raise
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot use data dir {data_dir}: {exc.strerror or exc}") from exc
    url = url_of(sock)
    click.echo(f"ksentinel reference platform: {platform.partners_source}")
    click.echo(f"  realism: {settings.describe()}")
    if faults:
        click.echo(f"  faults: {', '.join(faults)}")
    click.echo(f"ksentinel reference platform listening on {url} (Ctrl-C stops it)")
    sys.stdout.flush()
    try:
        serve_forever(platform, sock)
    finally:
        platform.close()


@main.command()
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
    from ksentinel.contract.runner import check_target, exit_when_interrupted, run_contract
    from ksentinel.embedded import open_target

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
    if outcome.report_path:
        click.echo(f"report: {outcome.report_path}")
    if junit:
        click.echo(f"junit: {junit}")
    if outcome.section.interrupted:
        click.echo("contract: interrupted: INCOMPLETE, the results cover the checks that ran", err=True)
    sys.exit(outcome.exit_code)


@main.command()
@target_options
@click.option("--tag", "run_tag", metavar="TAG", help="Only what the run with this id created.")
@click.option(
    "--older-than",
    default="1h",
    show_default=True,
    metavar="AGE",
    help="Only objects created more than AGE ago (e.g. 30m, 2h, 1d); spares what running probes and "
    "tests are using. 0s takes everything tagged.",
)
@click.option("--dry-run", is_flag=True, help="Say what would be removed, remove nothing.")
def sweep(selection: TargetSelection, run_tag: str | None, older_than: str, dry_run: bool) -> None:
    """Remove leftovers of crashed runs: entries tagged ksentinel and ksentinel-* upload tokens.

    Needs a target (--target, --url, KSENTINEL_TARGET or default_target): it never runs against the
    throw-away embedded platform.
    """
    from ksentinel.contract.runner import check_target
    from ksentinel.flows import Sessions
    from ksentinel.flows.sweep import parse_age
    from ksentinel.flows.sweep import sweep as sweep_target
    from ksentinel.kaltura.api import KalturaApi

    age = parse_age(older_than)
    _config, resolved = selection.resolve()
    target = resolved.target
    if target is None:
        raise ConfigError(
            "sweep needs a target: --target NAME, --url URL --partner-id N, KSENTINEL_TARGET or "
            "default_target in ksentinel.toml (it never sweeps the throw-away embedded platform)"
        )
    credentials = check_target(target)
    verb = "would remove" if dry_run else "removed"
    with KalturaApi(target.url, partner_id=target.partner_id, timeout=target.timeout) as api:
        result = sweep_target(
            api.with_ks(Sessions(credentials).admin()),
            run_tag=run_tag,
            older_than=age,
            dry_run=dry_run,
            on_item=lambda kind, object_id: click.echo(f"  {verb} {kind} {object_id}"),
        )
    click.echo(
        f"sweep: {verb} {len(result.entries)} entries and {len(result.tokens)} upload tokens from {target.name}"
    )
    for error in result.errors:
        click.echo(f"  could not remove {error}", err=True)
    for note in result.incomplete:
        click.echo(f"  incomplete: {note}", err=True)
    sys.exit(1 if result.errors or result.incomplete else 0)


main.add_command(config_group)
main.add_command(dashboards_group)
main.add_command(demo_command, "demo")
main.add_command(load_command, "load")
main.add_command(probe_group)
main.add_command(selftest_command, "selftest")
main.add_command(check_traffic, "check-traffic")
main.add_command(schema_group)
main.add_command(init_command, "init")


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="ksentinel")
