"""``ksentinel check-traffic`` on real Kaltura answers packed into a HAR: no false alarm, mutations caught.

The answers (tests/data/real-answers, origins in SOURCES.md) were recorded from real Kaltura servers;
they are judged against the real 22.15.0 schema file from ``shared/data/`` (skipped without it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import real_schema_path
from tests.real_answers import load, mutate_rename, mutate_type, to_har

ANSWERS = load()


@pytest.fixture(scope="module")
def schema_file() -> Path:
    path = real_schema_path()
    return path


def check_traffic(har: dict, schema: Path, folder: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    path = folder / "traffic.har"
    path.write_text(json.dumps(har), encoding="utf-8")
    outcome = folder / "outcome.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
    command = [sys.executable, "-m", "ksentinel.cli", "check-traffic", str(path), "--schema", str(schema)]
    proc = subprocess.run(
        [*command, "--json", str(outcome), "--report", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=folder,
        stdin=subprocess.DEVNULL,
    )
    return proc, json.loads(outcome.read_text(encoding="utf-8")) if outcome.is_file() else {}


def test_real_answers_raise_no_false_alarm(schema_file: Path, tmp_path: Path) -> None:
    proc, outcome = check_traffic(to_har(ANSWERS), schema_file, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    counts = outcome["counts"]
    assert counts["exchanges"] == counts["passed"] == len(ANSWERS)
    assert counts["failed"] == counts["not_judged"] == 0
    # every call of every multirequest was judged, errors by their envelope
    assert counts["calls_passed"] == sum(len(a.calls or [None]) for a in ANSWERS)
    assert "FAILED" not in proc.stdout


def test_a_wrong_type_in_one_real_answer_is_caught_naming_exchange_and_path(
    schema_file: Path, tmp_path: Path
) -> None:
    # 11: the liveStream.get answer (JSON); 13: uploadToken.add (XML)
    for number, prefix in enumerate(("11-", "13-")):
        position = next(i for i, a in enumerate(ANSWERS) if a.file.startswith(prefix))
        mutation = mutate_type(ANSWERS[position])
        answers = list(ANSWERS)
        answers[position] = mutation.answer
        folder = tmp_path / str(number)
        folder.mkdir()
        proc, _ = check_traffic(to_har(answers), schema_file, folder)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        failing = [
            line for line in proc.stdout.splitlines() if f"#{position + 1} " in line and "FAIL" in line
        ]
        assert failing, proc.stdout
        assert mutation.path in failing[0], (mutation.path, failing)


def test_a_renamed_property_in_a_real_multirequest_is_caught(schema_file: Path, tmp_path: Path) -> None:
    position = next(i for i, a in enumerate(ANSWERS) if a.file.startswith("01-"))
    mutation = mutate_rename(ANSWERS[position], skip=[3])  # metadata_metadata.list: undeclared classes
    answers = list(ANSWERS)
    answers[position] = mutation.answer
    proc, _ = check_traffic(to_har(answers), schema_file, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"#{position + 1}" in proc.stdout
    assert mutation.path in proc.stdout
