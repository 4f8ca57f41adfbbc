"""The pytest11 plugin touches only ksentinel's own checks: another project's failures stay as pytest wrote them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

TOKEN = "djJ8MTAxfG" + "A" * 60  # KS-shaped: ksentinel masks it in its own checks' failures


def test_other_projects_failures_are_left_alone(tmp_path: Path) -> None:
    (tmp_path / "test_theirs.py").write_text(
        textwrap.dedent(
            f"""
            import pytest

            def test_plain():
                assert "{TOKEN}" == "x"

            @pytest.mark.ksentinel("flow", "upload")
            def test_ours():
                assert "{TOKEN}" == "x"
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "--junitxml",
            "junit.xml",
            "test_theirs.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    junit = (tmp_path / "junit.xml").read_text()
    plain = junit[junit.index('name="test_plain"') : junit.index('name="test_ours"')]
    ours = junit[junit.index('name="test_ours"') :]
    assert TOKEN in plain, "the plugin rewrote a failure of a test that is not ksentinel's"
    assert TOKEN not in ours and "KS*" in ours, "ksentinel's own check keeps its KS masked"
