"""Module boundaries (docs/ARCHITECTURE.md, "Layers"): drivers never import each other, and the
Locust side of a load run loads nothing of the report, contract or probe stacks."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "ksentinel"
#: the parts that run checks against a target; each may use the engine below it, never another one
DRIVERS = ("contract", "load", "probe", "traffic")
#: what no driver imports: the parts above them (``cli_target``/``cli_errors`` are the shared command-line
#: toolkit each driver's ``command.py`` builds on, not a part above it)
ABOVE = ("demo", "selftest", "cli", "init_command")


def imports_of(path: Path) -> set[str]:
    """Every ``ksentinel.*`` module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("ksentinel.")}


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_driver_imports_no_other_driver_and_nothing_above_it(driver: str) -> None:
    forbidden = [f"ksentinel.{other}" for other in (*DRIVERS, *ABOVE) if other != driver]
    crossings = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in sorted((PACKAGE / driver).rglob("*.py"))
        for name in sorted(imports_of(path))
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]
    assert crossings == []


def test_the_locust_side_loads_no_report_contract_or_probe_stack() -> None:
    code = textwrap.dedent(
        """
        import sys
        import locust  # Locust's own web UI brings Flask and jinja2: take them out of reach
        for name in [m for m in sys.modules if m == "jinja2" or m.startswith("jinja2.")]:
            del sys.modules[name]
        sys.modules["jinja2"] = None  # `import jinja2` from here on raises ImportError
        before = set(sys.modules)
        import ksentinel.load.hooks, ksentinel.load.users, ksentinel.load.lifeline  # what the locustfile imports
        added = sorted(set(sys.modules) - before)
        print("\\n".join(added))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    added = done.stdout.split()
    assert "ksentinel.load.users" in added  # the probe is real: the modules were loaded here
    stacks = (
        "ksentinel.report",
        "ksentinel.contract",
        "ksentinel.probe",
        "ksentinel.traffic",
        "schemathesis",
    )
    assert [m for m in added if m.startswith(stacks) or m == "grafanalib"] == []


def test_the_locustfile_imports_only_the_load_side() -> None:
    locustfile = PACKAGE.parents[1] / "load" / "locustfile.py"
    names = imports_of(locustfile)
    assert names and all(name.startswith("ksentinel.load") for name in names), names
