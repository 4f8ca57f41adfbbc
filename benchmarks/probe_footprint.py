"""Footprint of ``ksentinel probe serve``: /metrics latency, memory, schedule lag (on demand, not in CI).

Setup: one reference platform (``ksentinel serve`` in a child process) with one partner per target;
``--pairs N`` (target, flow) pairs are N / 5 targets ``t0``, ``t1``, ... (each with the next
partner as its peer) times the five default flows (session, upload, list, delete, cache; or
``--flows``), every ``--interval`` seconds. ``ksentinel probe serve`` runs in its own child process, so its memory is
measured alone. In production the targets are remote; here the platform would compete with the
exporter for the CPU, so (on a machine with two CPUs or more) the platform gets the last CPU and
the exporter and this script the others (``os.sched_setaffinity``; children inherit it).

While the exporter runs, this script scrapes ``/metrics`` over one keep-alive connection every
``--scrape-every`` seconds, in turn as the text format, as OpenMetrics, and as each of them gzipped
(what Prometheus asks for: ``Accept: application/openmetrics-text;version=1.0.0;...`` and
``Accept-Encoding: gzip``), and records each scrape's wall time (request sent to last byte read,
not decompressed). It reads the exporter's resident set size (``VmRSS`` in ``/proc/<pid>/status``)
when the total of ``ksentinel_probe_runs_total`` first passes ``--early`` and ``--runs`` runs, and
the schedule lag (``ksentinel_probe_schedule_lag_seconds``: from a run's planned start to the start
of its thread) over the same span, so the first round's warm-up is reported apart.

Goals (issue 16, for ``--pairs 1000 --interval 60``): p99 time to serve /metrics < 50 ms in every
variant; RSS < 250 MB; schedule lag p99 < 1 s after the first round.
Exit status: 0 (goals are reported PASS/MISS), 2 if a process cannot start.

Run with the project's interpreter:  .venv/bin/python benchmarks/probe_footprint.py --pairs 1000 --interval 60
Against another checkout (e.g. ``git worktree add /tmp/old HEAD``): PYTHONPATH=/tmp/old/src .venv/bin/python ...
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import platform
import queue
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from ksentinel.reference.process import ReferenceProcess

FLOWS = ("session", "upload", "list", "delete", "cache")
GOAL_P99_MS = 50.0
GOAL_RSS_MB = 250.0
GOAL_LAG_S = 1.0
OPENMETRICS = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
#: (name, Accept, Accept-Encoding): what each scrape asks for, in turn
VARIANTS = (
    ("text", "", "identity"),
    ("openmetrics", OPENMETRICS, "identity"),
    ("text+gzip", "", "gzip"),
    ("openmetrics+gzip", OPENMETRICS, "gzip"),
)
RUNS_EVERY = 5.0  # seconds between two readings of the run count (parsing 10 MB costs the client)
_RUNS = re.compile(rb"^ksentinel_probe_runs_total\{[^}]*result=\"(\w+)\"[^}]*\} ([0-9.e+]+)$", re.M)
_IN_PROGRESS = re.compile(rb"^ksentinel_probe_in_progress\{[^}]*\} ([0-9.e+]+)$", re.M)
_LAG = re.compile(
    rb'^ksentinel_probe_schedule_lag_seconds_bucket\{flow="([^"]+)",le="([^"]+)"\} ([0-9.e+]+)$', re.M
)
_LISTENING = re.compile(r"listening on (http://\S+)")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runs(text: bytes) -> dict[str, float]:
    totals: dict[str, float] = {}
    for result, value in _RUNS.findall(text):
        totals[result.decode()] = totals.get(result.decode(), 0.0) + float(value)
    return totals


def lag_buckets(text: bytes) -> dict[str, dict[float, float]]:
    """The schedule lag histograms' cumulative buckets by flow, and of all flows as "" ({} without it)."""
    flows: dict[str, dict[float, float]] = {}
    for flow, le, count in _LAG.findall(text):
        for name in (flow.decode(), ""):
            buckets = flows.setdefault(name, {})
            buckets[float(le)] = buckets.get(float(le), 0.0) + float(count)
    return flows


def lag_quantile(before: dict[float, float], after: dict[float, float], share: float) -> tuple[float, float]:
    """(histogram_quantile of the observations between two readings, share at or under GOAL_LAG_S)."""
    if not after:
        return math.nan, math.nan
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1]
    if total <= 0:
        return math.nan, math.nan
    under = next((c for b, c in zip(bounds, counts, strict=True) if b >= GOAL_LAG_S), total) / total
    rank, lower, below = share * total, 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return lower, under
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9), under
        lower, below = bound, count
    return lower, under


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else math.nan


def write_config(path: Path, url: str, targets: int, args: argparse.Namespace) -> None:
    lines = []
    for index in range(targets):
        partner, peer = 201 + index, 201 + (index + 1) % targets
        lines += [
            f"[targets.t{index}]",
            f'url = "{url}"',
            f"partner_id = {partner}",
            f'admin_secret_env = "BENCH_ADMIN_{partner}"',
            f"peer_partner_id = {peer}",
            f'peer_admin_secret_env = "BENCH_ADMIN_{peer}"',
            "",
        ]
    names = ", ".join(f'"t{i}"' for i in range(targets))
    flows = ", ".join(f'"{f}"' for f in args.flows)
    lines += [
        "[probes]",
        f"targets = [{names}]",
        f"flows = [{flows}]",
        f"interval = {args.interval}",
        f"timeout = {args.timeout}",
        "jitter = 0.1",
        f"max_concurrent_runs = {args.max_concurrent}",
    ]
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pairs", type=int, default=50, help="(target, flow) pairs: a multiple of the number of flows"
    )
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between runs of a pair")
    parser.add_argument(
        "--flows",
        default=",".join(FLOWS),
        help="the flows of every target, comma-separated [the five default flows]; without cache, no run "
        "waits for its partner (the cache flow runs alone on it)",
    )
    parser.add_argument("--timeout", type=float, help="seconds a run may take [min(30, 0.9 x interval)]")
    parser.add_argument(
        "--max-concurrent",
        type=int,
        help="[probes] max_concurrent_runs [16, or 3 s of runs at the schedule's rate when that is more]",
    )
    parser.add_argument("--runs", type=int, help="stop after this many runs [max(1000, 3 x pairs)]")
    parser.add_argument("--early", type=int, help="the run count of the first reading [max(200, pairs)]")
    parser.add_argument(
        "--scrape-every", type=float, help="seconds between scrapes [0.05, 0.5 from 500 pairs]"
    )
    args = parser.parse_args()
    args.flows = tuple(f.strip() for f in args.flows.split(",") if f.strip())
    if args.pairs < len(args.flows) or args.pairs % len(args.flows):
        parser.error(f"--pairs: a multiple of {len(args.flows)} (targets x the flows)")
    targets = args.pairs // len(args.flows)
    args.timeout = args.timeout or min(30.0, round(0.9 * args.interval, 3))
    args.max_concurrent = args.max_concurrent or min(256, max(16, math.ceil(3 * args.pairs / args.interval)))
    args.runs = args.runs or max(1000, 3 * args.pairs)
    args.early = args.early or max(200, args.pairs)
    args.scrape_every = args.scrape_every or (0.5 if args.pairs >= 500 else 0.05)

    with tempfile.TemporaryDirectory(prefix="ksentinel-probe-bench-") as tmp:
        root = Path(tmp)
        secret = {201 + i: secrets.token_hex(16) for i in range(targets)}
        partners = ",".join(f"{p}:{s}:{secrets.token_hex(16)}" for p, s in secret.items())
        env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
        env.update({f"BENCH_ADMIN_{p}": s for p, s in secret.items()})
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if len(cpus) >= 2:
            os.sched_setaffinity(0, {cpus[-1]})
        with ReferenceProcess(root / "ref", ready_after=0.2, env={"KSENTINEL_REF_PARTNERS": partners}) as ref:
            if len(cpus) >= 2:
                os.sched_setaffinity(0, set(cpus[:-1]))
            config = root / "ksentinel.toml"
            write_config(config, ref.url, targets, args)
            command = [
                sys.executable,
                "-m",
                "ksentinel.probe",
                "serve",
                "--config",
                str(config),
                "--listen",
                "127.0.0.1:0",
            ]
            proc = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=root
            )
            lines: queue.Queue[str] = queue.Queue()
            output: list[str] = []

            def pump() -> None:
                for line in proc.stdout or ():
                    lines.put(line)
                    output.append(line.rstrip())
                    del output[:-200]

            threading.Thread(target=pump, daemon=True).start()
            url = ""
            deadline = time.monotonic() + 60
            while not url and time.monotonic() < deadline:
                try:
                    line = lines.get(timeout=1)
                except queue.Empty:
                    continue
                match = _LISTENING.search(line)
                url = match.group(1) if match else ""
            if not url:
                proc.kill()
                print("probe serve did not start:", " | ".join(output[-5:]), file=sys.stderr)
                return 2
            try:
                return measure(proc, url, targets, args)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(90)
                warnings = [line for line in output if " WARNING " in line or " ERROR " in line]
                if warnings:
                    print("  last exporter warnings:", *warnings[-8:], sep="\n    ")


def measure(proc: subprocess.Popen[str], url: str, targets: int, args: argparse.Namespace) -> int:
    latencies: dict[str, list[float]] = {name: [] for name, _, _ in VARIANTS}
    first_bytes: dict[str, list[float]] = {name: [] for name, _, _ in VARIANTS}
    sizes: dict[str, list[int]] = {name: [] for name, _, _ in VARIANTS}
    encodings: dict[str, str] = {}
    rss_early = rss_late = cpu_early = cpu_late = runs_early = runs_late = 0.0
    lags_start: dict[str, dict[float, float]] = {}
    lags_early: dict[str, dict[float, float]] = {}
    lags_late: dict[str, dict[float, float]] = {}
    busy: list[float] = []  # runs in progress at each reading
    started = time.monotonic()
    timeline: list[tuple[float, str, float]] = []  # (seconds into the run, variant, scrape time)
    totals: dict[str, float] = {}
    address = urlsplit(url)
    # a lean stdlib client over one keep-alive connection, as Prometheus scrapes: httpx would add
    # about a millisecond of its own to every request on a small VM
    conn = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port or 80, timeout=30.0)

    def scrape(accept: str, encoding: str, first_byte: list[float] | None = None) -> tuple[bytes, str]:
        headers = {"Accept-Encoding": encoding}
        if accept:
            headers["Accept"] = accept
        begin = time.perf_counter()
        conn.request("GET", "/metrics", headers=headers)
        response = conn.getresponse()
        if first_byte is not None:
            first_byte.append(time.perf_counter() - begin)  # the status line and headers are in
        return response.read(), response.getheader("Content-Encoding", "")

    try:
        lags_start = lag_buckets(scrape("", "identity")[0])
        counted = 0.0
        turn = 0
        while True:
            name, accept, encoding = VARIANTS[turn % len(VARIANTS)]
            turn += 1
            begin = time.perf_counter()
            body, content_encoding = scrape(accept, encoding, first_bytes[name])
            latencies[name].append(time.perf_counter() - begin)
            timeline.append((time.monotonic() - started, name, latencies[name][-1]))
            sizes[name].append(len(body))
            encodings[name] = content_encoding or "identity"
            if time.monotonic() - counted >= RUNS_EVERY and not content_encoding:
                counted = time.monotonic()
                totals = runs(body)
                done = sum(totals.values())
                busy.append(sum(float(v) for v in _IN_PROGRESS.findall(body)))
                if not rss_early and done >= args.early:
                    rss_early, cpu_early, runs_early = rss_mb(proc.pid), cpu_seconds(proc.pid), done
                    lags_early = lag_buckets(body)
                if done >= args.runs:
                    rss_late, cpu_late, runs_late = rss_mb(proc.pid), cpu_seconds(proc.pid), done
                    lags_late = lag_buckets(body)
                    break
            if time.monotonic() - started > 3600:
                print("gave up after an hour", file=sys.stderr)
                break
            time.sleep(args.scrape_every)
        last = scrape("", "identity")[0]
    finally:
        conn.close()
    elapsed = time.monotonic() - started
    series = sum(1 for line in last.splitlines() if line and not line.startswith(b"#"))
    growth = (rss_late - rss_early) / rss_early if rss_early else float("nan")
    load = os.getloadavg()
    print(
        f"ksentinel probe footprint ({platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the end)"
    )
    print(
        f"  {targets} targets x {len(args.flows)} flows ({', '.join(args.flows)}) = {args.pairs} pairs, interval {args.interval:g}s, "
        f"timeout {args.timeout:g}s, max_concurrent_runs {args.max_concurrent}"
    )
    print(
        f"  runs: {sum(totals.values()):.0f} in {elapsed:.1f}s "
        f"({', '.join(f'{k} {v:.0f}' for k, v in sorted(totals.items()))})"
    )
    print(f"  /metrics: {series} samples")
    worst = 0.0
    for name, _, _ in VARIANTS:
        times = latencies[name]
        if not times:
            continue
        p50, p99 = percentile(times, 0.50) * 1000, percentile(times, 0.99) * 1000
        worst = max(worst, p99)
        print(
            f"  /metrics {name:>16} ({encodings.get(name, '?')}, {statistics.mean(sizes[name]) / 1024:,.0f} KiB): "
            f"{len(times)} scrapes, p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(times) * 1000:.1f} ms "
            f"(first byte: p50 {percentile(first_bytes[name], 0.5) * 1000:.1f} ms, "
            f"p99 {percentile(first_bytes[name], 0.99) * 1000:.1f} ms)"
        )
    slowest = sorted(timeline, key=lambda entry: entry[2], reverse=True)[:5]
    print(
        "  slowest scrapes: "
        + ", ".join(f"{seconds * 1000:.0f} ms ({name}, at {at:.0f}s)" for at, name, seconds in slowest)
    )
    if runs_late > runs_early:
        per_run = (cpu_late - cpu_early) / (runs_late - runs_early) * 1000
        print(f"  exporter CPU: {per_run:.1f} ms per run (runs {runs_early:.0f} to {runs_late:.0f})")
    if busy:
        print(
            f"  runs in progress: mean {statistics.mean(busy):.1f}, max {max(busy):.0f} "
            f"(max_concurrent_runs {args.max_concurrent}; {len(busy)} readings)"
        )
    print(
        f"  RSS: {rss_early:.1f} MB at run {runs_early:.0f}, {rss_late:.1f} MB at run {runs_late:.0f} ({growth:+.1%})"
    )
    lag_p99 = math.nan
    if lags_late:
        warm_p99, warm_under = lag_quantile(lags_start.get("", {}), lags_early.get("", {}), 0.99)
        lag_p99, lag_under = lag_quantile(lags_early.get("", {}), lags_late.get("", {}), 0.99)
        lag_p50, _ = lag_quantile(lags_early.get("", {}), lags_late.get("", {}), 0.50)
        print(
            f"  schedule lag, runs {runs_early:.0f} to {runs_late:.0f}: p50 {lag_p50:.3f}s, p99 {lag_p99:.3f}s, "
            f"{lag_under:.1%} within {GOAL_LAG_S:g}s (first {runs_early:.0f} runs: p99 {warm_p99:.3f}s, "
            f"{warm_under:.1%} within {GOAL_LAG_S:g}s)"
        )
        by_flow = []
        for flow in sorted(name for name in lags_late if name):
            p99, under = lag_quantile(lags_early.get(flow, {}), lags_late[flow], 0.99)
            by_flow.append(f"{flow} {p99:.3f}s ({under:.1%})")
        print(f"  schedule lag p99 by flow (share within {GOAL_LAG_S:g}s): {', '.join(by_flow)}")
    else:
        print("  schedule lag: not exported by this exporter")
    goals = [
        (f"p99 /metrics < {GOAL_P99_MS:g} ms (every variant)", worst < GOAL_P99_MS),
        (f"RSS < {GOAL_RSS_MB:g} MB", rss_late < GOAL_RSS_MB),
        (f"schedule lag p99 < {GOAL_LAG_S:g} s", lag_p99 < GOAL_LAG_S),
    ]
    for goal, ok in goals:
        print(f"  {'PASS' if ok else 'MISS'}  {goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
