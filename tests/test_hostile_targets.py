"""Hostile targets: every command ends within its timeout with one line and exit 2, memory bounded."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hostile import BEHAVIOURS, serve

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 2  # seconds per request, through KSENTINEL_TIMEOUT
BOUND = 45  # the whole command, generously: connect + a few requests at TIMEOUT each
MAX_RSS_MB = 400


def run_cli(tmp: Path, url: str, *args: str) -> tuple[subprocess.CompletedProcess[str], float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
    env.update(KSENTINEL_ADMIN_SECRET="f" * 32, KSENTINEL_TIMEOUT=str(TIMEOUT))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "ksentinel.cli", *args, "--url", url, "--partner-id", "101"],
        capture_output=True,
        text=True,
        timeout=BOUND + 30,
        env=env,
        cwd=tmp,
    )
    peak_kb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return proc, time.monotonic() - started, peak_kb / 1024


def assert_one_line_failure(proc: subprocess.CompletedProcess[str], elapsed: float, rss_mb: float) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-1000:], proc.stderr[-1000:])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ksentinel: error:")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert elapsed < BOUND
    assert rss_mb < MAX_RSS_MB


@pytest.mark.parametrize("name", sorted(BEHAVIOURS))
def test_contract_against_hostile_target(name: str, tmp_path: Path) -> None:
    with serve(BEHAVIOURS[name]) as url:
        proc, elapsed, rss = run_cli(
            tmp_path,
            url,
            "contract",
            "--suite",
            str(REPO / "contracts"),
            "--report",
            str(tmp_path / "r.html"),
        )
    assert_one_line_failure(proc, elapsed, rss)


@pytest.mark.parametrize("name", sorted(BEHAVIOURS))
def test_schema_against_hostile_target(name: str, tmp_path: Path) -> None:
    with serve(BEHAVIOURS[name]) as url:
        proc, elapsed, rss = run_cli(tmp_path, url, "schema", "-o", str(tmp_path / "openapi.json"))
    assert_one_line_failure(proc, elapsed, rss)
    assert not (tmp_path / "openapi.json").exists(), "nothing is written from a hostile schema"
