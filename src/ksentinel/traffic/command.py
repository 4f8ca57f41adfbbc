"""``ksentinel check-traffic FILE``: judge the ``/api_v3`` exchanges of a HAR file; sends nothing.

Exit 0 when every judged exchange holds (advisories allowed), 1 when one fails, 2 on bad input (no such
file, not JSON, not a HAR, no ``/api_v3`` exchange, none that could be judged: "not tested"), an
unreadable schema or a target that cannot give one.
"""

from __future__ import annotations

import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import click

from ksentinel.cli_errors import one_line_errors
from ksentinel.cli_target import ReportRequest, TargetSelection, report_options, target_options
from ksentinel.kaltura.redact import redact
from ksentinel.report.render import prepare_folder
from ksentinel.traffic.calls import endpoint_of
from ksentinel.traffic.har import read_har
from ksentinel.traffic.judge import SchemaIndex, judge_all
from ksentinel.traffic.outcome import EXIT_NOT_TESTED, TrafficOutcome, write_json, write_junit

SCHEMA_TIMEOUT = 60.0


@dataclass(frozen=True)
class LoadedSchema:
    """The schema the traffic is judged against."""

    index: SchemaIndex
    source: str
    api_version: str


def load_schema(schema_file: Path | None, selection: TargetSelection) -> LoadedSchema:
    """The schema from ``--schema FILE``, else the target's own (the embedded platform by default)."""
    from ksentinel.schema.command import read_schema_source
    from ksentinel.schema.openapi import to_openapi
    from ksentinel.schema.xml import parse_schema

    if schema_file is not None:
        data = read_schema_source(str(schema_file), timeout=SCHEMA_TIMEOUT)
        source = str(schema_file)
    else:
        from ksentinel.embedded import open_target
        from ksentinel.schema.fetch import fetch_schema, schema_url

        config, resolved = selection.resolve(require_secrets=False)
        with open_target(resolved.target, config=config) as target:
            data = fetch_schema(target.url, timeout=target.timeout)
            source = f"{target.name} {schema_url(target.url)}"
    schema = parse_schema(data)
    return LoadedSchema(SchemaIndex(to_openapi(schema)), source, schema.api_version)


@click.command("check-traffic")
@click.argument("har_file", metavar="FILE", type=click.Path(path_type=Path))
@click.option(
    "--schema",
    "schema_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Kaltura schema XML (as /api_v3/api_schema.php serves it) [default: the target's own].",
)
@target_options
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit XML here.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the outcome as JSON here.",
)
@report_options("traffic")
@click.option("-v", "--verbose", is_flag=True, help="One line per exchange, not only the failing ones.")
@one_line_errors
def check_traffic(
    har_file: Path,
    schema_file: Path | None,
    selection: TargetSelection,
    junit: Path | None,
    json_path: Path | None,
    report: ReportRequest,
    verbose: bool,
) -> None:
    """Judge recorded Kaltura traffic (a HAR file) against the Kaltura schema; nothing is sent.

    Each /api_v3 exchange (single calls and multirequests, JSON, XML and JSONP) is judged: errors must
    be well-formed KalturaAPIExceptions, results must match the declared result type, and the KS or
    secrets sent must not come back (advisory). Exit 0 when every judged exchange holds, 1 when one
    fails, 2 on bad input or when nothing could be judged.
    """
    started = time.time()
    exchanges, malformed = read_har(har_file)
    entries = len(exchanges) + malformed
    if not any(endpoint_of(e.url) is not None and e.method != "OPTIONS" for e in exchanges):
        _not_tested(f"{har_file} has no /api_v3 exchange ({entries} entries)")
    report_path = report.html(selection.load())
    for path, option in ((junit, "--junit"), (json_path, "--json")):
        if path is not None:
            prepare_folder(path.parent, option)
    schema = load_schema(schema_file, selection)
    verdicts, skipped = judge_all(exchanges, schema.index)
    if malformed:
        skipped["malformed entry"] = malformed
    outcome = TrafficOutcome(
        source=str(har_file),
        schema=schema.source,
        api_version=schema.api_version,
        entries=entries,
        exchanges=verdicts,
        skipped=skipped,
        duration=time.time() - started,
    )
    if junit is not None:
        write_junit(outcome, junit)
    if json_path is not None:
        write_json(outcome, json_path)
    report_path = _write_report(outcome, report_path, started)
    _summary(outcome, verbose)
    click.echo(f"report: {report_path}")
    for label, path in (("junit", junit), ("json", json_path)):
        if path is not None:
            click.echo(f"{label}: {path}")
    if outcome.exit_code == EXIT_NOT_TESTED:
        if outcome.nothing_judged:
            _not_tested(outcome.not_tested_reason())
        errors = outcome.tool_errors()
        click.echo(
            redact(f"ksentinel: {errors[0].reason} (#{errors[0].index}; {len(errors)} in all)")[:400],
            err=True,
        )
    sys.exit(outcome.exit_code)


def _not_tested(reason: str) -> None:
    click.echo(redact(f"ksentinel: not tested: {reason}"), err=True)
    sys.exit(EXIT_NOT_TESTED)


def _write_report(outcome: TrafficOutcome, path: Path, started: float) -> Path:
    from ksentinel.report.render import write_section_report
    from ksentinel.report.traffic_section import traffic_section

    return write_section_report(
        path,
        title="ksentinel check-traffic",
        target=f"{outcome.source} (schema {outcome.schema})",
        started=started,
        duration=outcome.duration,
        traffic=traffic_section(outcome),
    )


def _summary(outcome: TrafficOutcome, verbose: bool) -> None:
    counts = outcome.counts()
    calls = ""
    if any(e.multirequest for e in outcome.exchanges):
        judged_calls = sum(len(e.calls) for e in outcome.exchanges)
        calls = f" ({judged_calls} calls)"
    echo = lambda text: click.echo(redact(text)[:400])  # noqa: E731
    echo(
        f"check-traffic: {counts['exchanges']} /api_v3 exchanges{calls} in {outcome.source}: "
        f"{counts['passed']} passed, {counts['failed']} failed, {counts['advisory']} advisory, "
        f"{counts['not_judged']} not judged; {counts['skipped']} other entries skipped "
        f"(schema {outcome.schema}, API {outcome.api_version or '?'})"
    )
    for exchange in outcome.exchanges:
        if exchange.outcome == "failed":
            for line in exchange.failure_lines():
                echo(f"  FAILED {line}")
        if exchange.findings:
            for finding in exchange.findings:
                echo(
                    f"  ADVISORY #{exchange.index} {exchange.method} {exchange.path}: {finding.get('message', '')}"
                )
        if verbose and exchange.outcome in ("passed", "not_judged"):
            why = f": {exchange.reason}" if exchange.outcome == "not_judged" else ""
            label = exchange.outcome.replace("_", " ").upper()
            echo(f"  {label} {exchange.name} {exchange.label}{why}")
    for reason, which in outcome.not_judged().items():
        echo(f"  NOT JUDGED ({len(which)}): {reason}")
        for line in textwrap.wrap(", ".join(which), 100, initial_indent="    ", subsequent_indent="    "):
            echo(line)
    echo(f"verdict: {outcome.verdict}")
