"""Footprint of ``ksentinel probe serve``: /metrics latency and resident memory (run on demand, not in CI).

Setup: one reference platform (``ksentinel serve`` in a child process) with ten partners; ten
targets ``t0``..``t9``, one per partner (each with the next partner as its peer), times the five
default flows (session, upload, list, delete, cache) = 50 (target, flow) pairs on a short interval.
``ksentinel probe serve`` runs in its own child process, so its memory is measured alone. In
production the targets are remote; here the platform would compete with the exporter for the CPU,
so (on a machine with two CPUs or more) the platform gets the last CPU and the exporter and this
script the first one (``os.sched_setaffinity``; children inherit it when they are spawned).

While the exporter runs, this script scrapes ``/metrics`` over one keep-alive connection every
``--scrape-every`` seconds and records each scrape's wall time (request sent to last byte read),
and reads the exporter's resident set size (``VmRSS`` in ``/proc/<pid>/status``) when the total of
``ksentinel_probe_runs_total`` first passes 200 and 1,000 runs.

Goals: p99 time to serve /metrics < 10 ms; RSS after 1,000 runs < 100 MB, and < 5 % growth
between run 200 and run 1,000. Exit status: 0 (goals are reported PASS/MISS), 2 if a process
cannot start.

Run with the project's interpreter:  .venv/bin/python benchmarks/probe_footprint.py
"""

from __future__ import annotations

import argparse
import http.client
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
GOAL_P99_MS = 10.0
GOAL_RSS_MB = 100.0
GOAL_GROWTH = 0.05
_RUNS = re.compile(r"^ksentinel_probe_runs_total\{[^}]*result=\"(\w+)\"[^}]*\} ([0-9.e+]+)$", re.M)
_LISTENING = re.compile(r"listening on (http://\S+)")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runs(text: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for result, value in _RUNS.findall(text):
        totals[result] = totals.get(result, 0.0) + float(value)
    return totals


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def write_config(path: Path, url: str, targets: int, interval: float, timeout: float) -> None:
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
    flows = ", ".join(f'"{f}"' for f in FLOWS)
    lines += [
        "[probes]",
        f"targets = [{names}]",
        f"flows = [{flows}]",
        f"interval = {interval}",
        f"timeout = {timeout}",
        "jitter = 0.1",
    ]
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", type=int, default=10)
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between runs of a pair")
    parser.add_argument("--timeout", type=float, default=1.8)
    parser.add_argument("--runs", type=int, default=1000, help="stop after this many runs")
    parser.add_argument("--early", type=int, default=200, help="the run count of the first memory reading")
    parser.add_argument("--scrape-every", type=float, default=0.05)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ksentinel-probe-bench-") as tmp:
        root = Path(tmp)
        secret = {201 + i: secrets.token_hex(16) for i in range(args.targets)}
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
            write_config(config, ref.url, args.targets, args.interval, args.timeout)
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
            threading.Thread(
                target=lambda: [lines.put(line) for line in proc.stdout or ()], daemon=True
            ).start()
            url = ""
            deadline = time.monotonic() + 30
            while not url and time.monotonic() < deadline:
                try:
                    line = lines.get(timeout=1)
                except queue.Empty:
                    continue
                match = _LISTENING.search(line)
                url = match.group(1) if match else ""
            if not url:
                proc.kill()
                print("probe serve did not start", file=sys.stderr)
                return 2
            try:
                return measure(proc, url, args)
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)


def measure(proc: subprocess.Popen[str], url: str, args: argparse.Namespace) -> int:
    latencies: list[float] = []
    first_byte: list[float] = []
    sizes: list[int] = []
    rss_early = rss_late = 0.0
    cpu_early = cpu_late = 0.0
    runs_early = runs_late = 0.0
    started = time.monotonic()
    totals: dict[str, float] = {}
    address = urlsplit(url)
    # a lean stdlib client over one keep-alive connection, as Prometheus scrapes: httpx would add
    # about a millisecond of its own to every request on a small VM
    conn = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port or 80, timeout=5.0)
    try:
        while True:
            begin = time.perf_counter()
            conn.request("GET", "/metrics")
            response = conn.getresponse()
            first_byte.append(time.perf_counter() - begin)  # the status line and headers are in
            body = response.read()
            latencies.append(time.perf_counter() - begin)
            sizes.append(len(body))
            totals = runs(body.decode())
            done = sum(totals.values())
            if not rss_early and done >= args.early:
                rss_early, cpu_early, runs_early = rss_mb(proc.pid), cpu_seconds(proc.pid), done
            if done >= args.runs:
                rss_late, cpu_late, runs_late = rss_mb(proc.pid), cpu_seconds(proc.pid), done
                break
            if time.monotonic() - started > 1800:
                print("gave up after 30 minutes", file=sys.stderr)
                break
            time.sleep(args.scrape_every)
        conn.request("GET", "/metrics")
        last = conn.getresponse().read().decode()
    finally:
        conn.close()
    elapsed = time.monotonic() - started
    series = sum(1 for line in last.splitlines() if line and not line.startswith("#"))
    p50, p99 = percentile(latencies, 0.50) * 1000, percentile(latencies, 0.99) * 1000
    growth = (rss_late - rss_early) / rss_early if rss_early else float("nan")
    print(
        f"ksentinel probe footprint ({platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs)"
    )
    print(
        f"  {args.targets} targets x {len(FLOWS)} flows, interval {args.interval:g}s, timeout {args.timeout:g}s"
    )
    print(
        f"  runs: {sum(totals.values()):.0f} in {elapsed:.1f}s ({', '.join(f'{k} {v:.0f}' for k, v in sorted(totals.items()))})"
    )
    print(f"  /metrics: {len(latencies)} scrapes, {series} samples, {statistics.mean(sizes) / 1024:.0f} KiB")
    print(f"  /metrics time: p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {max(latencies) * 1000:.2f} ms")
    print(
        f"  /metrics time to first byte: p50 {percentile(first_byte, 0.5) * 1000:.2f} ms, "
        f"p99 {percentile(first_byte, 0.99) * 1000:.2f} ms"
    )
    if runs_late > runs_early:
        per_run = (cpu_late - cpu_early) / (runs_late - runs_early) * 1000
        print(f"  exporter CPU: {per_run:.1f} ms per run (runs {runs_early:.0f} to {runs_late:.0f})")
    print(
        f"  RSS: {rss_early:.1f} MB at run {args.early}, {rss_late:.1f} MB at run {args.runs} ({growth:+.1%})"
    )
    goals = [
        (f"p99 /metrics < {GOAL_P99_MS:g} ms", p99 < GOAL_P99_MS),
        (f"RSS after {args.runs} runs < {GOAL_RSS_MB:g} MB", rss_late < GOAL_RSS_MB),
        (f"RSS growth run {args.early} -> {args.runs} < {GOAL_GROWTH:.0%}", growth < GOAL_GROWTH),
    ]
    for name, ok in goals:
        print(f"  {'PASS' if ok else 'MISS'}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
