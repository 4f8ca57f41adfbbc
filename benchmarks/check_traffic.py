"""How fast ``ksentinel check-traffic`` judges a large HAR, and how much memory it takes (not in CI).

Records real traffic first: ``ksentinel probe run --once`` (every flow of the catalogue) against a
realistic reference platform, through the HAR-recording proxy of the tests (tests/har_recorder.py).
That HAR's entries are repeated until the file holds ``--exchanges`` entries (20,000 by default);
``check-traffic`` then judges it against the platform's schema, ``--repeat`` times, in a
subprocess. Prints the wall time, exchanges per second and the command's peak RSS.

    .venv/bin/python benchmarks/check_traffic.py [--exchanges 20000] [--repeat 3] [--har SEED.har]

``--har`` starts from a HAR of your own instead of recording one (then ``--schema FILE`` or a
target of ``ksentinel.toml`` via ``--target NAME [--config FILE]`` must say which schema to judge
against).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def record_seed(tmp: Path) -> tuple[Path, Path]:
    """A HAR of one probe pass of every flow through the recorder, and the platform's schema."""
    import httpx
    from tests.har_recorder import har_recorder

    from ksentinel.flows import all_flows
    from ksentinel.reference.platform import PlatformConfig
    from ksentinel.reference.realism import Realism
    from ksentinel.reference.server import run_in_thread

    admin, peer = secrets.token_hex(16), secrets.token_hex(16)
    partners = f"101:{admin}:{secrets.token_hex(16)},102:{peer}:{secrets.token_hex(16)}"
    config = PlatformConfig(data_dir=tmp / "ref", ready_after=0.5, realism=Realism())
    with (
        run_in_thread(config, environ={"KSENTINEL_REF_PARTNERS": partners}) as server,
        har_recorder(server.url) as recorder,
    ):
        env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
        env.update(
            KSENTINEL_URL=recorder.url,
            KSENTINEL_PARTNER_ID="101",
            KSENTINEL_ADMIN_SECRET=admin,
            KSENTINEL_PEER_PARTNER_ID="102",
            KSENTINEL_PEER_ADMIN_SECRET=peer,
        )
        flows = [arg for flow in sorted(all_flows()) for arg in ("--flow", flow)]
        proc = subprocess.run(
            [sys.executable, "-m", "ksentinel.cli", "probe", "run", "--once", *flows],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            cwd=tmp,
        )
        if proc.returncode != 0:
            print(f"probe run --once exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        har = recorder.write(tmp / "seed.har")
        schema = tmp / "api_schema.xml"
        schema.write_bytes(httpx.get(f"{server.url}/api_v3/api_schema.php", timeout=30.0).content)
    return har, schema


def repeat_har(seed: Path, exchanges: int, out: Path) -> int:
    """``out``: the seed's entries over and over until there are ``exchanges``; returns the count."""
    document: dict[str, Any] = json.loads(seed.read_text())
    entries = document["log"]["entries"]
    if not entries:
        raise SystemExit(f"{seed} has no entries")
    document["log"]["entries"] = [entries[i % len(entries)] for i in range(exchanges)]
    out.write_text(json.dumps(document))
    return exchanges


def _timed(command: list[str], tmp: Path) -> tuple[float, int, int, str]:
    """Run ``command``: (wall seconds, exit code, its own peak RSS in KiB, stdout + stderr)."""
    log = tmp / "output.txt"
    with log.open("wb") as sink:
        started = time.monotonic()
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, cwd=tmp)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return seconds, proc.returncode, usage.ru_maxrss, log.read_text(errors="replace")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--exchanges", type=int, default=20_000, help="entries of the HAR judged")
    parser.add_argument("--repeat", type=int, default=1, help="runs (the median is shown)")
    parser.add_argument("--har", type=Path, help="a seed HAR of your own instead of a recorded one")
    parser.add_argument("--schema", type=Path, help="the schema to judge against (with --har)")
    parser.add_argument("--target", help="a ksentinel.toml target whose schema to use (with --har)")
    parser.add_argument("--config", type=Path, help="the ksentinel.toml of --target")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if args.har:
            seed, schema = args.har, args.schema.resolve() if args.schema else None
        else:
            started = time.monotonic()
            seed, schema = record_seed(tmp)
            seeded = len(json.loads(seed.read_text())["log"]["entries"])
            print(f"recorded {seeded} exchanges in {time.monotonic() - started:.1f} s")
        big = tmp / "big.har"
        count = repeat_har(seed, args.exchanges, big)
        print(f"HAR: {count} entries, {big.stat().st_size / 1e6:.1f} MB")
        choice = ["--schema", str(schema)] if schema else []
        if not schema and args.target:
            choice = ["--target", args.target]
            choice += ["--config", str(args.config.resolve())] if args.config else []
        times: list[float] = []
        peaks: list[float] = []
        judged = 0
        code = 0
        for index in range(args.repeat):
            out = tmp / f"out-{index}.json"
            command = [sys.executable, "-m", "ksentinel.cli", "check-traffic", str(big), *choice]
            extra = ["--json", str(out), "--report", str(tmp / f"traffic-{index}.html")]
            seconds, returncode, rss_kb, output = _timed([*command, *extra], tmp)
            times.append(seconds)
            peaks.append(rss_kb / 1024)
            code = max(code, returncode)
            counts = json.loads(out.read_text()).get("counts", {}) if out.exists() else {}
            judged = counts.get("judged", 0)
            summary = [line for line in output.splitlines() if line.startswith("check-traffic:")]
            print(
                f"  run {index + 1}: {seconds:.2f} s, exit {returncode}, peak RSS {peaks[-1]:.0f} MB  {summary}"
            )
            print(f"    counts {counts}")
        peak_mb = max(peaks)
        wall = statistics.median(times)
        print(
            f"check-traffic: {count} exchanges ({judged} judged) in {wall:.2f} s: "
            f"{count / wall:,.0f} exchanges/s, peak RSS {peak_mb:.0f} MB, exit {code}"
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
