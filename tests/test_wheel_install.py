"""The built wheel, installed into a fresh venv outside the repository, runs every job (issue 15, point 1).

One module fixture builds ksentinel's wheel (``pip wheel --no-deps``), creates a venv in a temporary
folder and installs the wheel there from the package index (the dependencies come from PyPI as a
user's install would). Every command then runs from an empty folder, with no checkout on any path:
the suites come from the wheel's package data (``ksentinel/bundled/``), and after ``ksentinel init``
from the team's copy in the working directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALL_BOUND = 900  # seconds: a cold pip cache downloads every dependency
RUN_BOUND = 300

pytestmark = pytest.mark.slow


def clean_env() -> dict[str, str]:
    """No ksentinel or Locust settings, no virtualenv or PYTHONPATH that could reach the checkout."""
    drop = ("KSENTINEL_", "LOCUST_", "PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path

    @property
    def ksentinel(self) -> str:
        return str(self.venv / "bin" / "ksentinel")

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    def run(self, *args: str, cwd: Path, timeout: float = RUN_BOUND) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.ksentinel, *args],
            cwd=cwd,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )


def _check(proc: subprocess.CompletedProcess[str], what: str) -> None:
    assert proc.returncode == 0, (
        f"{what}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel-install")
    dist = root / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist), str(REPO)],
        capture_output=True,
        text=True,
        timeout=INSTALL_BOUND,
        env=clean_env(),
        cwd=root,
    )
    _check(build, "pip wheel")
    (wheel,) = dist.glob("ksentinel-*.whl")
    venv = root / "venv"
    _check(
        subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=120
        ),
        "venv",
    )
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
        timeout=INSTALL_BOUND,
        env=clean_env(),
        cwd=root,
    )
    _check(install, "pip install the wheel")
    return Installed(wheel, venv)


def test_the_wheel_carries_the_suites_and_no_build_output(installed: Installed) -> None:
    names = zipfile.ZipFile(installed.wheel).namelist()
    for suite_file in (
        "ksentinel/bundled/contracts/conftest.py",
        "ksentinel/bundled/contracts/pytest.ini",
        "ksentinel/bundled/load/locustfile.py",
        "ksentinel/bundled/load/profiles.toml",
        "ksentinel/bundled/dashboards/overview.dashboard.py",
        "ksentinel/bundled/dashboards/rules/tests/probe.yml",
        "ksentinel/bundled/probes/probes.toml",
    ):
        assert suite_file in names, suite_file
    # every tracked suite file is in the wheel, and nothing else from those folders
    tracked = subprocess.run(
        ["git", "ls-files", "contracts", "load", "dashboards", "probes"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    shipped = sorted(
        n.removeprefix("ksentinel/bundled/") for n in names if n.startswith("ksentinel/bundled/")
    )
    assert shipped == sorted(tracked)


def test_ksentinel_runs_from_the_venv_not_the_checkout(installed: Installed, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            installed.python,
            "-c",
            "import ksentinel, ksentinel.suites as s; print(ksentinel.__file__); "
            "print(s.find_suite('contracts').path)",
        ],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    _check(proc, "import")
    package, contracts = proc.stdout.split()
    assert Path(package).is_relative_to(installed.venv), package
    assert Path(contracts).is_relative_to(installed.venv), contracts
    assert not Path(contracts).is_relative_to(REPO)


def test_demo_is_green_from_an_empty_folder(installed: Installed, tmp_path: Path) -> None:
    proc = installed.run("demo", "--load-time", "8s", cwd=tmp_path)
    _check(proc, "ksentinel demo")
    (index,) = tmp_path.glob("reports/*/index.json")
    data = json.loads(index.read_text())
    stages = {stage["name"]: stage["status"] for stage in data["stages"]}
    assert stages == {
        "target": "passed",
        "contract": "passed",
        "load": "passed",
        "probe": "passed",
        "dashboards": "passed",
    }, stages
    # the shipped suites stayed untouched: no build output was written into the installed package
    assert not list(installed.venv.glob("lib/python*/site-packages/ksentinel/bundled/dashboards/build"))


def test_each_job_runs_with_the_shipped_suites(installed: Installed, tmp_path: Path) -> None:
    contract = installed.run("contract", "--profile", "quick", cwd=tmp_path)
    _check(contract, "ksentinel contract")
    assert "0 failed" in contract.stdout, contract.stdout
    load = installed.run("load", "--profile", "smoke", "--run-time", "6s", cwd=tmp_path)
    _check(load, "ksentinel load")
    probe = installed.run("probe", "run", "--once", cwd=tmp_path)
    _check(probe, "ksentinel probe run --once")
    build = installed.run("dashboards", "build", cwd=tmp_path)
    _check(build, "ksentinel dashboards build")
    assert "3 dashboards" in build.stdout, build.stdout
    assert list((tmp_path / "dashboards" / "build").rglob("*.json")), "nothing written to ./dashboards/build"
    lint = installed.run("dashboards", "lint", cwd=tmp_path)
    assert lint.returncode in (0, 1), lint.stderr  # 1 only for warnings promoted to failures
    assert "Traceback" not in lint.stderr


def test_init_copies_the_suites_and_commands_use_the_copy(installed: Installed, tmp_path: Path) -> None:
    team = tmp_path / "team"
    init = installed.run("init", str(team), cwd=tmp_path)
    _check(init, "ksentinel init")
    for name in (
        "contracts/conftest.py",
        "load/locustfile.py",
        "dashboards/flow.dashboard.py",
        "probes/probes.toml",
    ):
        assert (team / name).is_file(), name
    assert (team / "ksentinel.toml").is_file()
    # a second init keeps the team's edits: one line, exit 2
    again = installed.run("init", str(team), cwd=tmp_path)
    assert again.returncode == 2
    assert again.stderr.startswith("ksentinel: error:") and len(again.stderr.strip().splitlines()) == 1

    # the team adds a dashboard and a contract check of its own: the commands pick up the copy
    flow = (team / "dashboards" / "flow.dashboard.py").read_text()
    assert '"Flow detail",' in flow
    (team / "dashboards" / "team.dashboard.py").write_text(
        flow.replace('"Flow detail",', '"Team flow detail",')
    )
    build = installed.run("dashboards", "build", cwd=team)
    _check(build, "dashboards build in the team folder")
    assert "4 dashboards" in build.stdout, build.stdout
    assert (team / "dashboards" / "build").is_dir()

    (team / "contracts" / "test_team.py").write_text(
        "def test_team_rule_that_fails():\n    assert 1 == 2, 'the team copy ran'\n"
    )
    contract = installed.run("contract", "--profile", "quick", cwd=team)
    assert contract.returncode == 1, contract.stdout + contract.stderr
    assert "test_team_rule_that_fails" in contract.stdout + contract.stderr
