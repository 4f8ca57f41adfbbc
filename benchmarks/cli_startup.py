"""Start-up of the ``ksentinel`` command and the whole ``schema --all`` conversion (on demand, not in CI).

Goals (issue 16): ``ksentinel --help`` <= 0.2 s wall; ``ksentinel schema --all`` of the real 22.15.0
schema <= 0.5 s wall for the whole command (start-up, parse, convert, write). Each command runs
``--runs`` times in a fresh process; the median and the best are reported (the best is what the
machine can do when nothing else runs). Exit status 0 (goals are reported PASS/MISS).

Run:  .venv/bin/python benchmarks/cli_startup.py [--schema FILE] [--runs 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HELP_GOAL, SCHEMA_GOAL = 0.2, 0.5
DEFAULT_SCHEMA = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "kaltura-ovp-api-schema-22.15.0.xml"
)


def timed(argv: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, timeout=120)
        times.append(time.perf_counter() - started)
    return times


def report(name: str, times: list[float], goal: float) -> None:
    median, best = statistics.median(times), min(times)
    verdict = "PASS" if median <= goal else "MISS"
    print(f"{name:28} median {median:.3f} s  best {best:.3f} s  goal <= {goal} s: {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schema", type=Path, default=DEFAULT_SCHEMA)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    ksentinel = str(Path(sys.executable).with_name("ksentinel"))
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; {args.runs} runs each")
    report("ksentinel --help", timed([ksentinel, "--help"], args.runs), HELP_GOAL)
    if not args.schema.is_file():
        print(f"schema --all: not measured (no schema at {args.schema}; --schema FILE)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "openapi.json")
        argv = [ksentinel, "schema", "--all", "--source", str(args.schema), "-o", out]
        report("ksentinel schema --all", timed(argv, args.runs), SCHEMA_GOAL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
