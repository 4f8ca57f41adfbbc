"""How long ``ksentinel contract`` takes per profile against the reference platform (not in CI).

Goal (issue 3): the ``ci`` profile finishes in at most 60 s wall on a 2-core machine.

    .venv/bin/python benchmarks/contract_runtime.py [--profiles quick ci deep] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ksentinel.reference.process import ReferenceProcess

REPO = Path(__file__).resolve().parents[1]
GOAL_CI_SECONDS = 60.0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", nargs="+", default=["quick", "ci"], choices=["quick", "ci", "deep"])
    parser.add_argument("--repeat", type=int, default=1, help="runs per profile (the median is shown)")
    args = parser.parse_args()

    admin, peer = secrets.token_hex(16), secrets.token_hex(16)
    partners = f"101:{admin}:{secrets.token_hex(16)},102:{peer}:{secrets.token_hex(16)}"
    rows: list[tuple[str, float, int]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        ReferenceProcess(Path(tmp) / "ref", env={"KSENTINEL_REF_PARTNERS": partners}, ready_after=0.2) as ref,
    ):
        env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
        env.update(
            KSENTINEL_ADMIN_SECRET=admin, KSENTINEL_PEER_PARTNER_ID="102", KSENTINEL_PEER_ADMIN_SECRET=peer
        )
        for profile in args.profiles:
            times: list[float] = []
            code = 0
            for index in range(args.repeat):
                command = [
                    sys.executable,
                    "-m",
                    "ksentinel.cli",
                    "contract",
                    "--url",
                    ref.url,
                    "--partner-id",
                    "101",
                    "--profile",
                    profile,
                    "--suite",
                    str(REPO / "contracts"),
                    "--report",
                    f"{tmp}/{profile}-{index}.html",
                ]
                started = time.monotonic()
                proc = subprocess.run(
                    command, env=env, capture_output=True, text=True, timeout=900, check=False
                )
                times.append(time.monotonic() - started)
                code = max(code, proc.returncode)
                summary = [line for line in proc.stdout.splitlines() if line.startswith("contract:")]
                print(
                    f"  {profile} run {index + 1}: {times[-1]:.1f} s, exit {proc.returncode}  {summary[0] if summary else ''}"
                )
            rows.append((profile, statistics.median(times), code))
    print(f"\n{'profile':8} {'wall s':>8} {'exit':>5}")
    for profile, seconds, code in rows:
        print(f"{profile:8} {seconds:8.1f} {code:5d}")
    ci = [seconds for profile, seconds, _ in rows if profile == "ci"]
    if ci:
        print(
            f"goal: ci <= {GOAL_CI_SECONDS:.0f} s: {'PASS' if ci[0] <= GOAL_CI_SECONDS else 'MISS'} ({ci[0]:.1f} s)"
        )
    return 0 if all(code == 0 for _, _, code in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
