"""``ksentinel`` starts without importing its subcommands (issue 16: `ksentinel --help` in <= 0.2 s).

The figure itself is a benchmark (benchmarks/cli_startup.py); these tests hold what makes it: the
main command imports no heavy stack, and its table of one-line helps says what each command says.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import click
import pytest

from ksentinel.cli import COMMANDS, load_all, main

HEAVY = (
    "httpx",
    "jinja2",
    "locust",
    "gevent",
    "schemathesis",
    "rich",
    "grafanalib",
    "prometheus_client",
    "starlette",
    "uvicorn",
    "hypothesis",
    "pytest",
    "yaml",
    "cryptography",
)


def test_help_imports_no_subcommand_and_no_heavy_stack() -> None:
    code = textwrap.dedent(
        """
        import sys
        from click.testing import CliRunner
        from ksentinel.cli import main
        result = CliRunner().invoke(main, ["--help"])
        assert result.exit_code == 0, result.output
        print(" ".join(sorted(sys.modules)))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}, "heavy imports at start-up"
    commands = {m for m in loaded if m.endswith((".command", ".cli")) and m.startswith("ksentinel.")}
    assert commands <= {"ksentinel.cli"}, commands


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_help_table_says_what_the_command_says(name: str) -> None:
    command = load_all()[name]
    assert command is not None and command.name == name
    assert click.Command(name, help=COMMANDS[name][1]).get_short_help_str(300) == command.get_short_help_str(
        300
    )


def test_every_command_runs_its_help_and_a_typo_is_one_line() -> None:
    from click.testing import CliRunner

    runner = CliRunner()
    for name in COMMANDS:
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "--config" in result.output and "--debug" in result.output, name
    typo = runner.invoke(main, ["contrat"])
    assert typo.exit_code == 2
    assert "No such command 'contrat'" in typo.output and "contract" in typo.output
