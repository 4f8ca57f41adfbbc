"""The ``ksentinel`` command.

Known errors (``KsentinelError``) and usage errors print one line on stderr and exit 2 (1 for failed
checks); anything else is a bug: one line plus a hint, and the traceback with ``--debug``. The global
options ``--config`` and ``--debug`` are accepted before or after the subcommand (``cli_errors.py``);
every command that writes a report takes ``--report DIR`` (``cli_target.py``, docs/cli.md).

The subcommands load when they run: :data:`COMMANDS` names each one's module and its one-line help, so
``ksentinel --help`` (and a typo's "did you mean") imports none of them (tests/test_cli_lazy.py holds
each help line to its command's own).
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from ksentinel import __version__
from ksentinel.cli_errors import OneLineErrorGroup, add_global_options, debug_enabled

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


#: name -> ("module:attribute" under ksentinel, the one-line help ``ksentinel --help`` shows)
COMMANDS: dict[str, tuple[str, str]] = {
    "check-traffic": (
        "traffic.command:check_traffic",
        "Judge recorded Kaltura traffic (a HAR file) against the Kaltura schema; nothing is sent.",
    ),
    "config": ("cli_target:config_group", "Inspect the effective configuration."),
    "contract": (
        "contract.command:contract",
        "Check that the API keeps its contract: schema, flows, caching and security.",
    ),
    "dashboards": (
        "dashboards.command:dashboards_group",
        "Grafana dashboards and alert rules as code: generated from dashboards/ and [slo].",
    ),
    "demo": (
        "demo.command:demo_command",
        "Everything ksentinel does, in about a minute, into one HTML report.",
    ),
    "init": (
        "init_command:init_command",
        "Copy the contract, load, dashboards and probe suites into DIRECTORY to edit them.",
    ),
    "load": (
        "load.command:load_command",
        "Load-test the API with the flow catalogue and judge the run against the [slo] objectives.",
    ),
    "probe": (
        "probe.command:probe_group",
        "Run the flows on a schedule and export Prometheus metrics (or one pass for cron/CI).",
    ),
    "schema": (
        "schema.cli:schema_group",
        "Convert a Kaltura API schema (/api_v3/api_schema.php) into an OpenAPI 3.1 document.",
    ),
    "selftest": (
        "selftest.command:selftest_command",
        "Run the fault matrix: does each part catch the reference platform's faults it is named for?",
    ),
    "serve": (
        "reference.command:serve",
        "Run the embedded Kaltura-compatible reference platform in the foreground.",
    ),
    "sweep": (
        "sweep_command:sweep",
        "Remove leftovers of crashed runs: entries tagged ksentinel and ksentinel-* upload tokens.",
    ),
}


class Cli(OneLineErrorGroup):
    """Known errors as one line and exit 2 (the base class); anything else one line and exit 3.

    Subcommands are imported when they are looked up (:data:`COMMANDS`), not when ``ksentinel`` starts.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is None and cmd_name in COMMANDS:
            module, _, attribute = COMMANDS[cmd_name][0].partition(":")
            command = getattr(importlib.import_module(f"ksentinel.{module}"), attribute)
            add_global_options(command)
            self.commands[cmd_name] = command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and their one-line help, from :data:`COMMANDS` (nothing imported)."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            loaded = self.commands.get(name)
            # a stand-in command shortens the table's line exactly as the real one's would be
            shown = loaded if loaded is not None else click.Command(name, help=COMMANDS[name][1])
            rows.append((name, shown.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

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
    from ksentinel.kaltura.redact import install_log_redaction

    install_log_redaction()


def load_all() -> dict[str, Any]:
    """Every subcommand, imported (for tests and documentation tools)."""
    ctx = click.Context(main)
    return {name: main.get_command(ctx, name) for name in main.list_commands(ctx)}


if __name__ == "__main__":  # pragma: no cover
    main()
