"""Requests per second of ONE ``ksentinel serve`` process on loopback (run on demand, not in CI).

Scenarios (POST /api_v3/service/<s>/action/<a>, JSON body with format=1):

  ping          system.ping with a KS
  session-start session.start (ADMIN secret)
  get           baseEntry.get of a seeded entry (as the client sends it: cacheable)
  get-nocache   baseEntry.get with nocache=1 (not in the default set)
  list-cached   baseEntry.list, statusEqual=7, page of 30, served from the response cache
  list-nocache  the same list with nocache=1 (SQLite query + serialization every time)

The server gets one CPU and the load generator the other (``os.sched_setaffinity``; the server
inherits its CPU when it is spawned). The load generator is ``wrk`` when installed
(``sudo apt-get install -y wrk``), otherwise a Python asyncio client with raw keep-alive HTTP/1.1
connections. Each scenario is checked with a few single requests, then warmed up with the load
generator verifying every answer (HTTP 200, no KalturaAPIException, the X-Kaltura cache marker),
then measured.

Goals checked at the end: cached list >= 3x nocache list, and cached list >= 2,000 req/s.
Exit status: 0 (goals are reported PASS/MISS only), 1 if a scenario errored, 2 if the server
cannot start.

Run with the project's interpreter:  .venv/bin/python benchmarks/reference_throughput.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ksentinel.errors import KsentinelError, TargetError
from ksentinel.kaltura import ks as ks_lib
from ksentinel.kaltura.api import KalturaApi
from ksentinel.reference.process import ReferenceProcess

PARTNER_ID = 101
NO_CONTENT = 7  # KalturaEntryStatus.NO_CONTENT: what baseEntry.add without content gives
CACHED_MARKER = "cached-dispatcher"
GOAL_RATIO = 3.0
GOAL_CACHED_RPS = 2000.0
DEFAULT_SCENARIOS = ("ping", "session-start", "get", "list-cached", "list-nocache")
ALL_SCENARIOS = ("ping", "session-start", "get", "get-nocache", "list-cached", "list-nocache")


# ---- scenarios ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    body: bytes
    expect_cache: str  # "hit": X-Kaltura must say cached-dispatcher; "miss": must not; "any"
    check: Callable[[Any], str | None]  # extra check of the decoded result; an error text or None


@dataclass
class Result:
    scenario: str
    tool: str
    connections: int
    rps: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    requests: int = 0
    server_cpu: float | None = None
    cache: str = ""
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def _json(params: dict[str, Any]) -> bytes:
    return json.dumps(params, separators=(",", ":")).encode()


def build_scenarios(
    ks: str, admin_secret: str, entry_id: str, entries: int, page: int
) -> dict[str, Scenario]:
    list_params = {
        "format": 1,
        "ks": ks,
        "filter": {"objectType": "KalturaBaseEntryFilter", "statusEqual": NO_CONTENT},
        "pager": {"objectType": "KalturaFilterPager", "pageSize": page, "pageIndex": 1},
    }

    def is_true(result: Any) -> str | None:
        return None if result is True else f"expected true, got {result!r}"

    def is_ks(result: Any) -> str | None:
        return None if isinstance(result, str) and len(result) > 40 else f"expected a KS, got {result!r}"

    def is_entry(result: Any) -> str | None:
        ok = isinstance(result, dict) and result.get("id") == entry_id
        return None if ok else f"expected entry {entry_id}, got {str(result)[:80]!r}"

    def is_page(result: Any) -> str | None:
        if not isinstance(result, dict) or not isinstance(result.get("objects"), list):
            return f"expected a KalturaBaseEntryListResponse, got {str(result)[:80]!r}"
        if result.get("totalCount") != entries or len(result["objects"]) != min(page, entries):
            return f"totalCount={result.get('totalCount')} objects={len(result['objects'])}"
        return None

    base = "/api_v3/service/{}/action/{}"
    get = {"format": 1, "ks": ks, "entryId": entry_id}
    return {
        "ping": Scenario(
            "ping", base.format("system", "ping"), _json({"format": 1, "ks": ks}), "any", is_true
        ),
        "session-start": Scenario(
            "session-start",
            base.format("session", "start"),
            _json(
                {"format": 1, "secret": admin_secret, "partnerId": PARTNER_ID, "type": 2, "userId": "bench"}
            ),
            "any",
            is_ks,
        ),
        "get": Scenario("get", base.format("baseentry", "get"), _json(get), "any", is_entry),
        "get-nocache": Scenario(
            "get-nocache", base.format("baseentry", "get"), _json({**get, "nocache": 1}), "miss", is_entry
        ),
        "list-cached": Scenario(
            "list-cached", base.format("baseentry", "list"), _json(list_params), "hit", is_page
        ),
        "list-nocache": Scenario(
            "list-nocache",
            base.format("baseentry", "list"),
            _json({**list_params, "nocache": 1}),
            "miss",
            is_page,
        ),
    }


def raw_request(host: str, port: int, scenario: Scenario) -> bytes:
    """The complete HTTP/1.1 request, keep-alive."""
    head = (
        f"POST {scenario.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json\r\nContent-Length: {len(scenario.body)}\r\n\r\n"
    )
    return head.encode() + scenario.body


def check_answer(scenario: Scenario, status: int, x_kaltura: str, body: bytes, *, decode: bool) -> str | None:
    """Why an answer is wrong, or None."""
    if status != 200:
        return f"HTTP {status}"
    if b"KalturaAPIException" in body:
        return f"KalturaAPIException: {body[:200]!r}"
    hit = x_kaltura.startswith(CACHED_MARKER)
    if scenario.expect_cache == "hit" and not hit:
        return f"expected X-Kaltura: {CACHED_MARKER}..., got {x_kaltura!r}"
    if scenario.expect_cache == "miss" and hit:
        return f"expected an uncached answer, got X-Kaltura: {x_kaltura!r}"
    if decode:
        try:
            result = json.loads(body)
        except ValueError:
            return f"not JSON: {body[:80]!r}"
        return scenario.check(result)
    return None


def probe(host: str, port: int, scenario: Scenario, count: int = 3) -> str:
    """A few single requests (the first may prime the cache); returns the last X-Kaltura or raises."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    x_kaltura = ""
    try:
        for attempt in range(count):
            conn.request("POST", scenario.path, scenario.body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            body = response.read()
            x_kaltura = response.getheader("X-Kaltura") or ""
            relaxed = scenario if attempt or scenario.expect_cache != "hit" else _any_cache(scenario)
            problem = check_answer(relaxed, response.status, x_kaltura, body, decode=True)
            if problem:
                raise RuntimeError(f"request {attempt + 1}: {problem}")
    finally:
        conn.close()
    return x_kaltura


def _any_cache(scenario: Scenario) -> Scenario:
    return Scenario(scenario.name, scenario.path, scenario.body, "any", scenario.check)


# ---- wrk ------------------------------------------------------------------------------------------
_LUA = r"""
wrk.method = "POST"
wrk.path = [==[{path}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
wrk.body = [==[{body}]==]

local threads = {{}}
function setup(thread)
  table.insert(threads, thread)
end
{verify}
function done(summary, latency, requests)
  local e = summary.errors
  local extra = ""
  if verify_mode then
    local n_ok, n_bad, n_api, n_cache = 0, 0, 0, 0
    local sample = ""
    for _, t in ipairs(threads) do
      n_ok = n_ok + t:get("n_ok")
      n_bad = n_bad + t:get("n_bad")
      n_api = n_api + t:get("n_api")
      n_cache = n_cache + t:get("n_cache")
      if t:get("sample") ~= "" then sample = t:get("sample") end
    end
    extra = string.format(',"verified":%d,"bad_status":%d,"api_errors":%d,"cache_mismatch":%d,"sample":"%s"',
      n_ok, n_bad, n_api, n_cache, sample:gsub('[^%w%-,:. ]', '?'))
  end
  io.write(string.format(
    'KSBENCH {{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%.0f,"p99_us":%.0f%s}}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), extra))
end
"""

_LUA_VERIFY = r"""
verify_mode = true
expect_cache = "{expect}"
n_ok, n_bad, n_api, n_cache, sample = 0, 0, 0, 0, ""
function response(status, headers, body)
  if status ~= 200 then n_bad = n_bad + 1; return end
  if string.find(body, "KalturaAPIException", 1, true) then n_api = n_api + 1; return end
  local xk = ""
  for k, v in pairs(headers) do
    if string.lower(k) == "x-kaltura" then xk = v end
  end
  local hit = string.sub(xk, 1, {marker_len}) == "{marker}"
  if (expect_cache == "hit" and not hit) or (expect_cache == "miss" and hit) then
    n_cache = n_cache + 1
    sample = xk
    return
  end
  n_ok = n_ok + 1
end
"""


def wrk_script(scenario: Scenario, verify: bool) -> str:
    body = scenario.body.decode()
    if "]==]" in body or "]==]" in scenario.path:
        raise ValueError("request body cannot be embedded in a Lua long string")
    verify_code = (
        _LUA_VERIFY.format(expect=scenario.expect_cache, marker=CACHED_MARKER, marker_len=len(CACHED_MARKER))
        if verify
        else "verify_mode = false\n"
    )
    return _LUA.format(path=scenario.path, body=body, verify=verify_code)


def run_wrk(
    wrk: str, url: str, scenario: Scenario, seconds: float, connections: int, verify: bool, workdir: Path
) -> dict[str, Any]:
    script = workdir / f"{scenario.name}{'-verify' if verify else ''}.lua"
    script.write_text(wrk_script(scenario, verify))
    script.chmod(0o600)  # the session-start body carries the (throwaway) admin secret
    duration = max(1, round(seconds))
    cmd = [wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(script), url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=False)
    script.unlink(missing_ok=True)
    match = re.search(r"^KSBENCH (\{.*\})$", proc.stdout, re.M)
    if proc.returncode != 0 or match is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"wrk failed (exit {proc.returncode}): {' | '.join(tail)}")
    stats: dict[str, Any] = json.loads(match.group(1))
    stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6)
    stats["p50_ms"] = stats["p50_us"] / 1000
    stats["p99_ms"] = stats["p99_us"] / 1000
    return stats


def wrk_problem(stats: dict[str, Any], verify: bool) -> str | None:
    socket_errors = {k: stats[k] for k in ("connect", "read", "write", "timeout") if stats[k]}
    if socket_errors:
        return f"socket errors {socket_errors}"
    if stats["status"]:
        return f"{stats['status']} non-2xx answers"
    if verify:
        if stats["api_errors"]:
            return f"{stats['api_errors']} KalturaAPIException answers"
        if stats["cache_mismatch"]:
            return f"{stats['cache_mismatch']} answers with the wrong cache marker (e.g. {stats['sample']!r})"
        if stats["verified"] == 0:
            return "no answer verified"
    if stats["requests"] == 0:
        return "no requests completed"
    return None


# ---- Python asyncio fallback ----------------------------------------------------------------------
async def _connection(
    host: str,
    port: int,
    request: bytes,
    stop_at: float,
    latencies: list[float],
    problems: list[str],
    verify: Scenario | None,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    clock = time.perf_counter
    try:
        while True:
            started = clock()
            if started >= stop_at or problems:
                break
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lowered = head.lower()
            at = lowered.find(b"\r\ncontent-length:")
            if at < 0:
                problems.append("answer without Content-Length")
                break
            end = lowered.find(b"\r\n", at + 17)
            body = await reader.readexactly(int(lowered[at + 17 : end]))
            latencies.append(clock() - started)
            if verify is not None:
                status = int(head[9:12])
                xk = re.search(rb"\r\nx-kaltura: *([^\r]*)", head, re.I)
                problem = check_answer(verify, status, xk.group(1).decode() if xk else "", body, decode=False)
                if problem:
                    problems.append(problem)
            elif head[9:12] != b"200":
                problems.append(f"HTTP {head[9:12].decode()}")
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _python_load(
    host: str, port: int, request: bytes, seconds: float, connections: int, verify: Scenario | None
) -> dict[str, Any]:
    latencies: list[float] = []
    problems: list[str] = []
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(
        *(_connection(host, port, request, stop_at, latencies, problems, verify) for _ in range(connections))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()
    count = len(latencies)

    def pct(q: float) -> float:
        return latencies[min(count - 1, int(q * count))] * 1000 if count else 0.0

    return {
        "requests": count,
        "rps": count / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "problem": problems[0] if problems else None,
    }


def run_python(
    host: str, port: int, scenario: Scenario, seconds: float, connections: int, verify: bool
) -> dict[str, Any]:
    request = raw_request(host, port, scenario)
    coro = _python_load(host, port, request, seconds, connections, scenario if verify else None)
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)


# ---- server process -------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), for the server's utilisation."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def pin_process(pid: int, cpu: int) -> None:
    """Pin every thread of ``pid`` (threads made later inherit it)."""
    tasks = Path(f"/proc/{pid}/task")
    tids = [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [pid]
    for tid in tids:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(tid, {cpu})


def drain(stream: Any, tail: list[str]) -> None:
    """Keep reading the server's output so a full pipe never blocks it."""
    with contextlib.suppress(ValueError, OSError):
        for line in stream:
            tail.append(line.rstrip())
            del tail[:-20]


def seed(url: str, ks: str, count: int) -> list[str]:
    """``count`` entries without content (status NO_CONTENT), added 50 per multirequest."""
    ids: list[str] = []
    with KalturaApi(url, ks=ks, partner_id=PARTNER_ID) as api:
        for start in range(0, count, 50):
            batch = api.multirequest()
            for index in range(start, min(count, start + 50)):
                batch.add(
                    "baseEntry",
                    "add",
                    entry={"objectType": "KalturaBaseEntry", "name": f"bench entry {index}"},
                )
            for result in batch.execute():
                if not isinstance(result, dict) or "id" not in result:
                    raise RuntimeError(f"baseEntry.add failed: {result!r}")
                ids.append(result["id"])
    return ids


# ---- main -----------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="reference_throughput.py",
        description=(
            "Measure requests/second of one `ksentinel serve` process on loopback: system.ping, "
            "session.start, baseEntry.get, baseEntry.list from the response cache and with nocache=1. "
            "The server and the load generator are pinned to different CPUs when possible. "
            "Uses wrk when installed (sudo apt-get install -y wrk), else a Python asyncio client."
        ),
        epilog=(
            "Goals: cached list >= 3x nocache list and >= 2,000 req/s (reported PASS/MISS). "
            "Exit 0 unless a scenario errored (1) or the server did not start (2). "
            "Run with the project venv: .venv/bin/python benchmarks/reference_throughput.py"
        ),
    )
    parser.add_argument(
        "--duration", type=float, default=5.0, help="measured seconds per scenario (default: %(default)s)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=1.0,
        help="verified warm-up seconds per scenario (default: %(default)s)",
    )
    parser.add_argument(
        "--connections", type=int, default=32, help="concurrent keep-alive connections (default: %(default)s)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measured runs per scenario; the median run is reported (default: %(default)s)",
    )
    parser.add_argument(
        "--tool",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator; auto = wrk if installed, else python (default: %(default)s)",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help=f"comma-separated, from: {', '.join(ALL_SCENARIOS)} (default: %(default)s)",
    )
    parser.add_argument(
        "--entries", type=int, default=200, help="entries seeded with baseEntry.add (default: %(default)s)"
    )
    parser.add_argument(
        "--page-size", type=int, default=30, help="baseEntry.list page size (default: %(default)s)"
    )
    parser.add_argument(
        "--server-cpu", type=int, default=None, help="CPU for the server (default: the first allowed CPU)"
    )
    parser.add_argument(
        "--client-cpu",
        type=int,
        default=None,
        help="CPU for the load generator (default: the next allowed CPU)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin the server and load generator")
    args = parser.parse_args(argv)
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [n for n in names if n not in ALL_SCENARIOS]
    if unknown or not names:
        parser.error(
            f"unknown scenario(s) {', '.join(unknown) or '(none given)'}; choose from {ALL_SCENARIOS}"
        )
    args.scenario_names = names
    if (
        args.connections < 1
        or args.duration <= 0
        or args.warmup <= 0
        or args.entries < 1
        or args.page_size < 1
        or args.repeat < 1
    ):
        parser.error(
            "--connections, --duration, --warmup, --entries, --page-size and --repeat must be positive"
        )
    return args


def choose_cpus(args: argparse.Namespace) -> tuple[int | None, int | None, str]:
    if args.no_pin:
        return None, None, "not pinned (--no-pin)"
    if not hasattr(os, "sched_setaffinity"):
        return None, None, "not pinned (os.sched_setaffinity unavailable on this platform)"
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None, f"not pinned (only CPU {cpus} available)"
    server = args.server_cpu if args.server_cpu is not None else cpus[0]
    client = args.client_cpu if args.client_cpu is not None else next(c for c in cpus if c != server)
    if server not in cpus or client not in cpus or server == client:
        raise SystemExit(f"error: --server-cpu/--client-cpu must be two different CPUs of {cpus}")
    return server, client, f"server on CPU {server}, load generator on CPU {client} (sched_setaffinity)"


def wrk_version(wrk: str) -> str:
    proc = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    first = (proc.stdout or proc.stderr).strip().splitlines()
    return first[0].split(" [")[0] if first else "wrk"


def run_scenario(
    scenario: Scenario,
    args: argparse.Namespace,
    url: str,
    tool: str,
    wrk: str | None,
    pid: int,
    workdir: Path,
) -> Result:
    split = urlsplit(url)
    host, port = split.hostname or "127.0.0.1", split.port or 80
    result = Result(scenario.name, tool, args.connections)
    try:
        result.cache = probe(host, port, scenario).split(",")[0] or "-"
        if wrk is not None:
            warm = run_wrk(wrk, url, scenario, args.warmup, args.connections, True, workdir)
            problem = wrk_problem(warm, verify=True)
        else:
            warm = run_python(host, port, scenario, args.warmup, args.connections, True)
            problem = warm["problem"]
        if problem:
            raise RuntimeError(f"warm-up: {problem}")
        runs: list[tuple[dict[str, Any], float | None]] = []
        for _ in range(args.repeat):
            before = cpu_seconds(pid)
            if wrk is not None:
                stats = run_wrk(wrk, url, scenario, args.duration, args.connections, False, workdir)
                problem, wall = wrk_problem(stats, verify=False), stats["duration_us"] / 1e6
            else:
                started = time.perf_counter()
                stats = run_python(host, port, scenario, args.duration, args.connections, False)
                problem, wall = stats["problem"], time.perf_counter() - started
            after = cpu_seconds(pid)
            if problem:
                raise RuntimeError(problem)
            cpu = (
                (after - before) / wall * 100
                if before is not None and after is not None and wall > 0
                else None
            )
            runs.append((stats, cpu))
        runs.sort(key=lambda run: run[0]["rps"])
        stats, result.server_cpu = runs[len(runs) // 2]  # the median run
        result.rps, result.requests = stats["rps"], stats["requests"]
        result.p50_ms, result.p99_ms = stats["p50_ms"], stats["p99_ms"]
        if len(runs) > 1:
            result.notes.append(f"{len(runs)} runs: " + " / ".join(f"{run[0]['rps']:,.0f}" for run in runs))
    except (RuntimeError, OSError, subprocess.TimeoutExpired, asyncio.IncompleteReadError) as exc:
        result.error = f"{exc.__class__.__name__}: {exc}" if not isinstance(exc, RuntimeError) else str(exc)
    return result


def print_table(results: list[Result]) -> None:
    header = (
        f"{'scenario':<14} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'srv CPU':>8}  X-Kaltura"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        if r.error:
            print(f"{r.scenario:<14} {'ERROR':>9}  {r.error}")
            continue
        p50 = f"{r.p50_ms:.2f}" if r.p50_ms is not None else "-"
        p99 = f"{r.p99_ms:.2f}" if r.p99_ms is not None else "-"
        cpu = f"{r.server_cpu:.0f}%" if r.server_cpu is not None else "-"
        print(f"{r.scenario:<14} {r.rps:>9,.0f} {p50:>8} {p99:>8} {r.requests:>9,} {cpu:>8}  {r.cache}")
    notes = [f"{r.scenario}: {note}" for r in results for note in r.notes]
    if notes:
        print("\n".join(["", *notes]))
    starved = [r.scenario for r in results if not r.error and r.server_cpu is not None and r.server_cpu < 90]
    if starved:
        print(
            f"\nwarning: the server used < 90% of its CPU in {', '.join(starved)}: another process competed "
            "for the CPUs or the load generator could not keep up; these figures are low (rerun, --repeat 3)"
        )


def print_goals(results: dict[str, Result]) -> None:
    cached, nocache = results.get("list-cached"), results.get("list-nocache")
    print()
    if cached is None or cached.error:
        print("goals: not checked (list-cached was not measured)")
        return
    if nocache is not None and not nocache.error and nocache.rps > 0:
        ratio = cached.rps / nocache.rps
        verdict = "PASS" if ratio >= GOAL_RATIO else "MISS"
        print(f"goal  cached list >= {GOAL_RATIO:.0f}x nocache list : {ratio:5.2f}x  {verdict}")
    else:
        print(
            f"goal  cached list >= {GOAL_RATIO:.0f}x nocache list : not checked (list-nocache not measured)"
        )
    verdict = "PASS" if cached.rps >= GOAL_CACHED_RPS else "MISS"
    print(f"goal  cached list >= {GOAL_CACHED_RPS:,.0f} req/s     : {cached.rps:,.0f}  {verdict}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    server_cpu, client_cpu, pin_note = choose_cpus(args)
    wrk = shutil.which("wrk") if args.tool in ("auto", "wrk") else None
    if args.tool == "wrk" and wrk is None:
        print("error: wrk not found; install it with `sudo apt-get install -y wrk` or use --tool python")
        return 2
    if wrk is not None:
        tool = f"{wrk_version(wrk)} (1 thread, {args.connections} connections, Lua POST script)"
    else:
        tool = f"Python asyncio raw HTTP/1.1 client ({args.connections} keep-alive connections)"
        if args.tool == "auto":
            tool += "; wrk not found, install it for higher load: sudo apt-get install -y wrk"

    admin_secret, user_secret = secrets.token_hex(16), secrets.token_hex(16)
    env = {"KSENTINEL_REF_PARTNERS": f"{PARTNER_ID}:{admin_secret}:{user_secret}"}
    original_affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    with tempfile.TemporaryDirectory(prefix="ksentinel-bench-") as tmp:
        workdir = Path(tmp)
        server = ReferenceProcess(workdir / "data", env=env, ready_after=0.2)
        try:
            if server_cpu is not None:
                os.sched_setaffinity(0, {server_cpu})  # the child inherits this CPU from the start
            server.start()
        except TargetError as exc:
            print(f"error: {exc}")
            return 2
        finally:
            if client_cpu is not None:
                os.sched_setaffinity(0, {client_cpu})  # this script and wrk run here
            elif original_affinity is not None:
                os.sched_setaffinity(0, original_affinity)
        assert server.proc is not None and server.proc.stdout is not None
        pid = server.proc.pid
        if server_cpu is not None:
            pin_process(pid, server_cpu)
        tail: list[str] = []
        drainer = threading.Thread(target=drain, args=(server.proc.stdout, tail), daemon=True)
        drainer.start()
        results: dict[str, Result] = {}
        try:
            ks = ks_lib.build(admin_secret, PARTNER_ID, "bench", ks_lib.SessionType.ADMIN, 86400, "")
            started = time.perf_counter()
            ids = seed(server.url, ks, args.entries)
            seeded = time.perf_counter() - started
            print(
                f"ksentinel reference throughput -- Python {platform.python_version()}, {os.cpu_count()} CPUs"
            )
            print(f"server : ksentinel serve (pid {pid}) at {server.url}")
            print(f"pinning: {pin_note}")
            print(f"machine: load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} before the run")
            print(f"load   : {tool}")
            print(
                f"runs   : {args.warmup:g} s verified warm-up + {args.repeat} x {args.duration:g} s measured "
                "per scenario; "
                f"{len(ids)} entries seeded in {seeded:.1f} s; list page {args.page_size}, "
                f"filter statusEqual={NO_CONTENT}"
            )
            print()
            scenarios = build_scenarios(ks, admin_secret, ids[0], len(ids), args.page_size)
            for name in args.scenario_names:
                results[name] = run_scenario(
                    scenarios[name], args, server.url, "wrk" if wrk else "python", wrk, pid, workdir
                )
                if server.proc.poll() is not None:
                    results[name].error = f"server exited ({server.proc.returncode}): {' | '.join(tail[-3:])}"
                    break
        except (RuntimeError, OSError, KsentinelError) as exc:
            print(f"error: setting up the benchmark failed: {exc}")
            return 1
        finally:
            server.stop()
            drainer.join(timeout=2)
            server.proc.stdout.close()
        print_table(list(results.values()))
        print_goals(results)
        errored = [r.scenario for r in results.values() if r.error]
        if errored:
            print(f"\nscenario(s) errored: {', '.join(errored)}")
            return 1
        return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
