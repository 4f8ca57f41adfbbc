"""``ksentinel schema``: the OpenAPI document of a Kaltura schema, and ``schema diff OLD NEW``.

``ksentinel schema [options]`` converts (as it always has); ``ksentinel schema diff`` is its one
subcommand. Everything heavy is imported inside the commands: the CLI's start-up stays short.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ksentinel.cli_errors import OneLineErrorGroup, global_config, one_line_errors
from ksentinel.cli_target import TargetSelection, target_options

if TYPE_CHECKING:
    from ksentinel.schema.diff_output import DiffOutcome
    from ksentinel.schema.scope import Scope

FORMATS = ("table", "json", "junit")
#: ``--report DIR`` writes ``DIR/schema-diff.html`` and ``DIR/schema-diff.json``
REPORT_NAME = "schema-diff"
#: ``--fail-on`` choices (the same as :data:`ksentinel.schema.diff_output.FAIL_ON`, kept here so that
#: building the command imports nothing more)
FAIL_ON = ("breaking", "warning", "info", "never")


@click.group("schema", cls=OneLineErrorGroup, invoke_without_command=True)
@target_options
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("openapi.json"),
    show_default=True,
    help="Where to write the OpenAPI document.",
)
@click.option(
    "--source",
    metavar="URL|FILE",
    help="Read the schema from this URL or api_schema.php XML file instead of the target.",
)
@click.option("--all", "all_actions", is_flag=True, help="Ignore the contract scope: convert every action.")
@click.option("--lenient", is_flag=True, help="Allow properties the schema does not declare in responses.")
@click.pass_context
def schema_group(
    ctx: click.Context,
    selection: TargetSelection,
    output: Path,
    source: str | None,
    all_actions: bool,
    lenient: bool,
) -> None:
    """Convert a Kaltura API schema (/api_v3/api_schema.php) into an OpenAPI 3.1 document.

    The XML is parsed with entity expansion and external entities disabled: a hostile schema gives a
    one-line error and exit 2. `ksentinel schema diff OLD NEW` lists the changes between two schemas.
    """
    if ctx.invoked_subcommand is not None:
        return
    from ksentinel.contract.scope import load_scope
    from ksentinel.embedded import open_target
    from ksentinel.schema.command import write_openapi

    config, resolved = selection.resolve(require_secrets=False)
    scope = None if all_actions else load_scope(config)
    if source is not None:
        summary = write_openapi(source, output, scope, strict=not lenient)
    else:
        with open_target(resolved.target, config=config) as target:
            summary = write_openapi(target.url, output, scope, timeout=target.timeout, strict=not lenient)
    click.echo(
        f"schema: wrote {summary.output} (API {summary.api_version}: {summary.actions} actions of "
        f"{summary.services} services, {summary.destructive_actions} destructive, {summary.classes} classes, "
        f"{summary.bytes_written} bytes)"
    )


@schema_group.command("diff")
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="table for people, json (the rows) for tools, junit (one failing case per failing change) for CI.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the table, JSON or JUnit XML here instead of standard output.",
)
@click.option(
    "--report",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help=f"Also write the HTML report as DIR/{REPORT_NAME}.html, and its JSON twin DIR/{REPORT_NAME}.json.",
)
@click.option(
    "--fail-on",
    type=click.Choice(FAIL_ON),
    default="breaking",
    show_default=True,
    help="Exit 1 when a change at least this severe is not ignored; never: only report.",
)
@click.option(
    "--ignore-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Accepted changes, TOML or YAML entries of rule, place and reason (docs/schema-diff.md).",
)
@click.option(
    "--scope",
    "use_scope",
    is_flag=True,
    help="Only changes to the actions of the [contract] include/exclude of ksentinel.toml, and to the "
    "classes and enums they reach.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 600),
    default=60.0,
    show_default=True,
    help="Seconds to fetch a schema from a URL (target:NAME uses the target's timeout).",
)
@one_line_errors
def diff_command(
    old: str,
    new: str,
    output_format: str,
    output: Path | None,
    report: Path | None,
    fail_on: str,
    ignore_file: Path | None,
    use_scope: bool,
    timeout: float,
) -> None:
    """List the changes between two Kaltura API schemas, and whether they break existing clients.

    OLD and NEW are each a schema XML file, an http(s):// URL (a server or its api_schema.php) or
    target:NAME (the live schema of a [targets.NAME] of ksentinel.toml). The schema models are
    compared (services, actions, parameters, classes with what they inherit, enums, errors), one row
    per change with a stable rule id (docs/schema-diff.md). Exit 0 when nothing at --fail-on or worse
    is left, 1 when a change is, 2 on a usage error or a schema that cannot be read.
    """
    from ksentinel.report.render import prepare_folder
    from ksentinel.schema.diff import diff_schemas
    from ksentinel.schema.diff_ignore import apply_ignores, load_ignores
    from ksentinel.schema.diff_output import DiffOutcome, render_json, render_junit, render_table
    from ksentinel.schema.diff_source import load_side

    started = time.time()
    config_path = global_config()  # --config, before or after the subcommand (target:NAME, --scope)
    if output is not None:
        prepare_folder(output.parent, "--output")
    report_html = prepare_folder(report, "--report") / f"{REPORT_NAME}.html" if report is not None else None
    ignores = load_ignores(ignore_file) if ignore_file is not None else ()
    scope, scope_text = _scope(config_path) if use_scope else (None, None)
    old_schema, old_side = load_side(old, "OLD", timeout=timeout, config_path=config_path)
    new_schema, new_side = load_side(new, "NEW", timeout=timeout, config_path=config_path)
    changes = diff_schemas(old_schema, new_schema)
    if scope is not None:
        from ksentinel.schema.diff_scope import restrict_to_scope

        changes = restrict_to_scope(changes, old_schema, new_schema, scope)
    outcome = DiffOutcome(
        old_side,
        new_side,
        apply_ignores(changes, ignores),
        fail_on=fail_on,
        scope=scope_text,
        ignore_file=str(ignore_file) if ignore_file is not None else None,
        duration=time.time() - started,
    )
    if output_format == "table":
        document = render_table(outcome).encode("utf-8")
    elif output_format == "json":
        document = render_json(outcome).encode("utf-8")
    else:
        document = render_junit(outcome)
    if output is not None:
        _write(output, document)
    else:
        click.echo(document.decode("utf-8"), nl=False)
    if output is not None or output_format != "table":
        click.echo(outcome.summary(), err=output is None)
    if output is not None:
        click.echo(f"{output_format}: {output}")
    if report_html is not None:
        click.echo(f"report: {_write_report(outcome, report_html, started)}")
    sys.exit(outcome.exit_code)


def _scope(config_path: Path | None) -> tuple[Scope | None, str | None]:
    """The contract scope and its description; ``(None, None)`` (with a note) when none is defined."""
    from ksentinel.config import load_config
    from ksentinel.contract.scope import load_scope

    scope = load_scope(load_config(config_path))
    if scope is None:
        click.echo(
            "schema diff: --scope: no [contract] include/exclude is defined, comparing everything", err=True
        )
        return None, None
    text = "include " + ", ".join(scope.include)
    if scope.exclude:
        text += "; exclude " + ", ".join(scope.exclude)
    return scope, text


def _write(path: Path, data: bytes) -> None:
    from ksentinel.errors import ConfigError

    try:
        path.write_bytes(data)
    except OSError as exc:
        raise ConfigError(f"--output: cannot write {path}: {exc.strerror or exc}") from None


def _write_report(outcome: DiffOutcome, path: Path, started: float) -> Path:
    from ksentinel.report.render import write_section_report
    from ksentinel.report.schema_diff_section import schema_diff_section

    return write_section_report(
        path,
        title="ksentinel schema diff",
        target=f"{outcome.old.source} -> {outcome.new.source}",
        started=started,
        duration=outcome.duration,
        schema_diff=schema_diff_section(outcome),
    )
