"""``ksentinel selftest``: the fault matrix (``main.add_command(selftest_command, "selftest")`` in ``cli.py``).

Exit 0 when every expected detection happened and the clean platform raised nothing, 1 otherwise
(a miss, an alarm, a part that broke, a catalogue entry without a detector), 2 on a usage error.
"""

from __future__ import annotations

import sys
import time

import click

from ksentinel.cli_errors import global_config
from ksentinel.cli_target import ReportRequest, report_options
from ksentinel.report.model import RunReport
from ksentinel.report.render import write_report
from ksentinel.selftest.matrix import PARTS
from ksentinel.selftest.soak import DEFAULT_PASSES

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@click.command("selftest")
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="NAME",
    help="Run only this fault of the catalogue (repeatable) [default: all; see ksentinel serve --list-faults].",
)
@click.option(
    "--part",
    "parts",
    multiple=True,
    type=click.Choice(PARTS),
    help="Run only this part (repeatable) [default: all].",
)
@report_options("selftest")
@click.option(
    "--soak",
    "soak_passes",
    type=click.IntRange(0, 1000),
    default=DEFAULT_PASSES,
    show_default=True,
    help="Probe passes of every flow on a fresh realistic clean platform after the matrix; every run "
    "must succeed (0: no soak).",
)
@click.option("-v", "--verbose", is_flag=True, help="Show the parts' own output as they run.")
def selftest_command(
    faults: tuple[str, ...], parts: tuple[str, ...], report: ReportRequest, soak_passes: int, verbose: bool
) -> None:
    """Run the fault matrix: does each part catch the reference platform's faults it is named for?

    For the clean platform and each fault of the catalogue, a fresh embedded reference platform
    runs the parts that should catch it (contract, load, probe, alert). The clean platform must
    raise nothing anywhere, and a clean soak of --soak probe passes of every flow must not fail
    once. Takes about ten minutes for the whole catalogue and soak (docs/selftest.md).
    """
    from ksentinel.config import load_config
    from ksentinel.reference.faults import parse_faults
    from ksentinel.selftest.run import run_matrix

    parse_faults(list(faults))  # unknown names: one line, exit 2, before anything starts
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    report_path = report.html(load_config(global_config()))  # [reports] keep

    def progress(line: str) -> None:
        click.echo(f"[{time.strftime('%H:%M:%S')}] {line}", err=True)

    matrix = run_matrix(
        faults=list(faults) or None,
        parts=list(parts) or None,
        progress=progress,
        verbose=verbose,
        soak_passes=soak_passes,
    )
    click.echo(matrix.render_table())
    html = write_report(
        RunReport(
            title="ksentinel selftest",
            target="embedded reference platform, one per fault",
            started=started,
            duration=matrix.seconds,
            matrix=matrix.as_dict(),
        ),
        report_path,
    )
    click.echo(f"report: {html}")
    sys.exit(EXIT_OK if matrix.ok else EXIT_FAILED)
