"""An output path that cannot be written is refused before any work: one line, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

UNWRITABLE = "/proc/no-such-dir"


@pytest.mark.parametrize(
    ("args", "option", "folder"),
    [
        # --report names a folder on every command (the old spellings: tests/test_cli_grammar.py)
        (("contract", "--report", f"{UNWRITABLE}/r"), "--report", f"{UNWRITABLE}/r"),
        (("contract", "--junit", f"{UNWRITABLE}/j.xml"), "--junit", UNWRITABLE),
        (("load", "--report", f"{UNWRITABLE}/l"), "--report", f"{UNWRITABLE}/l"),
        (
            ("selftest", "--fault", "schema-drift", "--report", f"{UNWRITABLE}/s"),
            "--report",
            f"{UNWRITABLE}/s",
        ),
        (("demo", "--report", f"{UNWRITABLE}/demo"), "--report", f"{UNWRITABLE}/demo"),
    ],
)
def test_unwritable_output_is_refused_first(
    tmp_path: Path, args: tuple[str, ...], option: str, folder: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
    proc = subprocess.run(
        [sys.executable, "-m", "ksentinel.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert (
        proc.stderr.strip()
        == f"ksentinel: error: {option}: cannot create {folder}: No such file or directory"
    )
    assert proc.stdout == ""  # nothing ran
