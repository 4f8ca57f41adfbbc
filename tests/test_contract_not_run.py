"""A contract run that judged nothing never reads PASS: a suite that cannot be collected is a tool error
(exit 2, NOT TESTED), and so is a run whose every check was skipped or not tested."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ksentinel.report import CheckResult, ContractSection, RunReport

REPO = Path(__file__).resolve().parents[1]


def test_a_suite_that_cannot_be_collected_is_not_tested_not_interrupted(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    shutil.copytree(REPO / "contracts", suite, ignore=shutil.ignore_patterns("__pycache__"))
    (suite / "test_broken.py").write_text("import a_module_that_does_not_exist_anywhere\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ksentinel.cli",
            "contract",
            "--profile",
            "quick",
            "--suite",
            str(suite),
            "--report",
            str(tmp_path / "out"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "contract: NOT TESTED: the contract suite could not be collected" in done.stderr
    assert "interrupted" not in done.stderr.lower()
    data = json.loads((tmp_path / "out" / "contract.json").read_text())
    assert data["verdict"] == "NOT TESTED" and data["ok"] is False
    assert "could not be collected" in data["contract"]["not_run"]
    assert "NOT TESTED" in (tmp_path / "out" / "contract.html").read_text()


def test_a_run_that_judged_nothing_is_not_a_pass() -> None:
    skipped = [
        CheckResult("flow", "upload", "test_upload", "not_tested", message="not tested: read-only target"),
        CheckResult("security", "ks", "test_ks", "skipped", message="no peer partner"),
    ]
    section = ContractSection("quick", skipped)
    assert not section.judged and not section.ok
    assert RunReport("t", "x", "now", contract=section).verdict == "NOT TESTED"
    judged = ContractSection("quick", [*skipped, CheckResult("flow", "session", "test_session", "passed")])
    assert judged.judged and judged.ok
    assert RunReport("t", "x", "now", contract=judged).verdict == "PASS"
    broken = ContractSection("quick", [CheckResult("flow", "session", "test_session", "failed")])
    assert RunReport("t", "x", "now", contract=broken).verdict == "FAIL"
