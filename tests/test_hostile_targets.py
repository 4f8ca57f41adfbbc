"""Hostile targets: every command ends within its timeout with its documented exit code, memory bounded.

Each command runs through the real CLI in a subprocess against every misbehaviour of
:mod:`tests.hostile`:

* ``contract``, ``schema``, ``load`` and ``probe run --once`` check the target first (``system.ping``
  and one admin call); a target that fails that is refused with exit 2 and one ``ksentinel: error:``
  line, before anything else starts (no pytest run, no Locust process, no flow).
* Past that check (:func:`past_preflight`: a server that answers those two calls like Kaltura and
  misbehaves on everything else), ``probe run --once`` exits 1 with its table and one reason line per
  failed flow, each flow bounded by ``--timeout``; ``load`` runs, misses its SLOs (exit 1) and ends
  a few request timeouts after its run time, with no Locust process left behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ksentinel.probe.config import DEFAULT_FLOWS
from tests.hostile import BEHAVIOURS, Behaviour, read_request, respond, serve

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 2  # seconds per request, through KSENTINEL_TIMEOUT
BOUND = 45  # the whole command, generously: connect + a few requests at TIMEOUT each
MAX_RSS_MB = 400
SMOKE = ("load", "--profile", "smoke", "--suite", str(REPO / "load"))

#: What the preflight's one line says about each misbehaviour (load and probe share contract's check).
PREFLIGHT_REASON = {
    "hang-after-accept": "TIMEOUT",
    "hang-after-request": "TIMEOUT",
    "trickle-body": "TIMEOUT",
    "trickle-headers": "TIMEOUT",
    "endless-chunked": "TOO_LARGE",
    "huge-content-length": "TOO_LARGE",
    "not-http": "PROTOCOL",
    "close-without-answer": "PROTOCOL",
    "reset": "CONNECTION",
    "html": "does not answer like a Kaltura API",
    "random-bytes": "does not answer like a Kaltura API",
    "json-not-kaltura": "does not answer like a Kaltura API",
    "http-500": "does not answer like a Kaltura API",
    "redirect-loop": "does not answer like a Kaltura API",
}
#: The ``code`` a flow fails with when the misbehaviour answers its first call.
FLOW_CODE = {
    **dict.fromkeys(
        ("hang-after-accept", "hang-after-request", "trickle-body", "trickle-headers"), "TIMEOUT"
    ),
    **dict.fromkeys(("endless-chunked", "huge-content-length"), "TOO_LARGE"),
    **dict.fromkeys(("not-http", "close-without-answer"), "PROTOCOL"),
    "reset": "CONNECTION",
    **dict.fromkeys(("html", "random-bytes", "json-not-kaltura"), "KSENTINEL_BAD_RESPONSE"),
    "http-500": "HTTP_500",
    "redirect-loop": "HTTP_302",
}


def test_every_behaviour_has_its_expectations() -> None:
    assert set(PREFLIGHT_REASON) == set(FLOW_CODE) == set(BEHAVIOURS)


# --- running the CLI -----------------------------------------------------------------------------


def run_cli(
    tmp: Path, url: str, *args: str, env: dict[str, str] | None = None, bound: float = BOUND
) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run ``ksentinel ARGS --url URL``; (result, seconds, peak RSS in MB of it and its children).

    The peak comes from ``wait4`` of this child alone (its own and its reaped children's, e.g.
    Locust's), not from ``RUSAGE_CHILDREN``, which would carry the largest child of the whole session.
    """
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
    child_env.update(KSENTINEL_ADMIN_SECRET="f" * 32, KSENTINEL_TIMEOUT=str(TIMEOUT))
    child_env.update(env or {})
    command = [sys.executable, "-m", "ksentinel.cli", *args, "--url", url, "--partner-id", "101"]
    out, err = tmp / "cli.stdout", tmp / "cli.stderr"
    started = time.monotonic()
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=child_env, cwd=tmp)
    deadline = started + bound + 30
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    result = subprocess.CompletedProcess(
        command,
        proc.returncode,
        out.read_text(errors="replace"),
        err.read_text(errors="replace"),
    )
    return result, elapsed, usage.ru_maxrss / 1024


def assert_one_line_failure(proc: subprocess.CompletedProcess[str], elapsed: float, rss_mb: float) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-1000:], proc.stderr[-1000:])
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ksentinel: error:")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert elapsed < BOUND
    assert rss_mb < MAX_RSS_MB


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    return next(line for line in proc.stderr.splitlines() if line.startswith("ksentinel: error:"))


def survivors(tmp: Path, url: str) -> dict[int, str]:
    """Processes (other than this one) with ``tmp`` in their command line or ``url`` in their environment."""
    path = str(tmp).encode()
    address = re.compile(re.escape(url.encode()) + rb"(?![0-9])")
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours
            continue
        if path in cmdline or address.search(cmdline) or address.search(environ):
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")[:200]
    return found


def assert_no_survivors(tmp: Path, url: str) -> None:
    if not Path("/proc/self/environ").exists():
        return
    deadline = time.monotonic() + 5  # a killed child may take a moment to disappear
    while (left := survivors(tmp, url)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:  # do not leave them running for the rest of the session
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    assert not left, left


# --- a target that passes the preflight, then misbehaves -------------------------------------------

_FRIENDLY = {
    b"/api_v3/service/system/action/ping": b"true",
    b"/api_v3/service/baseentry/action/count": b"0",
}


def _peek_head(sock: socket.socket) -> bytes | None:
    """The next request's head without consuming it (None when the client closed)."""
    while True:
        data = sock.recv(65536, socket.MSG_PEEK)
        if not data:
            return None
        if b"\r\n\r\n" in data:
            return data
        time.sleep(0.01)


def past_preflight(behaviour: Behaviour) -> Behaviour:
    """``behaviour``, except that ``system.ping`` and ``baseEntry.count`` are answered like Kaltura."""

    def run(sock: socket.socket, stop: threading.Event) -> None:
        while (head := _peek_head(sock)) is not None:
            path = head.split(b" ", 2)[1].split(b"?")[0].lower()
            if path not in _FRIENDLY:
                behaviour(sock, stop)
                return
            read_request(sock)
            respond(sock, "200 OK", _FRIENDLY[path], "Content-Type: application/json")

    return run


# --- refused by the preflight --------------------------------------------------------------------


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
            str(tmp_path / "r"),
        )
    assert_one_line_failure(proc, elapsed, rss)


@pytest.mark.parametrize("name", sorted(BEHAVIOURS))
def test_schema_against_hostile_target(name: str, tmp_path: Path) -> None:
    with serve(BEHAVIOURS[name]) as url:
        proc, elapsed, rss = run_cli(tmp_path, url, "schema", "-o", str(tmp_path / "openapi.json"))
    assert_one_line_failure(proc, elapsed, rss)
    assert not (tmp_path / "openapi.json").exists(), "nothing is written from a hostile schema"


@pytest.mark.parametrize("name", sorted(BEHAVIOURS))
def test_load_against_hostile_target(name: str, tmp_path: Path) -> None:
    """Refused by the preflight (exit 2, one line) before any Locust process starts."""
    with serve(BEHAVIOURS[name]) as url:
        proc, elapsed, rss = run_cli(
            tmp_path, url, *SMOKE, "--run-time", "5s", "--report", str(tmp_path / "r")
        )
        assert_no_survivors(tmp_path, url)
    assert_one_line_failure(proc, elapsed, rss)
    assert PREFLIGHT_REASON[name] in error_line(proc)
    assert "Locust" not in proc.stderr and not (tmp_path / "r" / "load.html").exists()


@pytest.mark.parametrize("name", sorted(BEHAVIOURS))
def test_probe_once_against_hostile_target(name: str, tmp_path: Path) -> None:
    """docs/probes.md: exit 2 and one line for "a target that cannot be probed at all"."""
    with serve(BEHAVIOURS[name]) as url:
        proc, elapsed, rss = run_cli(tmp_path, url, "probe", "run", "--once", "--timeout", "1")
    assert_one_line_failure(proc, elapsed, rss)
    assert PREFLIGHT_REASON[name] in error_line(proc)
    assert "TARGET" not in proc.stdout, "no flow runs against a target that failed the check"


# --- past the preflight ----------------------------------------------------------------------------

FLOW_TIMEOUT = 1.0
_NOTE = re.compile(r"^  (?P<target>[^/\s]+)/(?P<flow>\w+) at (?P<step>[\w.]+) \[(?P<code>[A-Z0-9_]+)\]: \S")


@pytest.mark.parametrize("name", sorted(BEHAVIOURS))
def test_probe_once_past_the_preflight(name: str, tmp_path: Path) -> None:
    """Exit 1 ("a flow failed or errored"), one reason line per flow, each within ``--timeout``.

    The request timeout stays at 30 s: the flow's own timeout is what bounds the pass.
    """
    with serve(past_preflight(BEHAVIOURS[name])) as url:
        proc, elapsed, rss = run_cli(
            tmp_path,
            url,
            "probe",
            "run",
            "--once",
            "--timeout",
            f"{FLOW_TIMEOUT:g}",
            env={"KSENTINEL_TIMEOUT": "30"},
        )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, (proc.returncode, output[-2000:])
    assert "Traceback" not in output and "ksentinel: error:" not in output
    flows = len(DEFAULT_FLOWS)
    assert f"probe: 0 of {flows} flows succeeded, {flows} failed" in proc.stdout
    notes = [match for line in proc.stdout.splitlines() if (match := _NOTE.match(line))]
    assert [n["flow"] for n in notes] == list(DEFAULT_FLOWS), proc.stdout
    assert {n["code"] for n in notes} == {FLOW_CODE[name]}, proc.stdout
    assert elapsed < flows * (FLOW_TIMEOUT + 0.5) + 10
    assert rss < MAX_RSS_MB


#: One of each kind: no answer, an answer without end (memory), an endless header, a declared 2 GB body.
LOAD_PAST_PREFLIGHT = ("hang-after-request", "endless-chunked", "trickle-headers", "huge-content-length")
#: Long enough that a request started in the first second times out (2 s) and is recorded before the
#: run stops, even on a busy machine (3 s was not: a loaded CI run recorded no request at all).
LOAD_RUN_TIME = 7
#: Locust's start, the run, then three clean-up sweeps (each stops after its first TIMEOUT).
LOAD_BOUND = LOAD_RUN_TIME + 30
#: The smoke profile's 6 users may each hold a body up to the 64 MiB cap at once, plus Locust itself.
LOAD_MAX_RSS_MB = 600


@pytest.mark.parametrize("name", LOAD_PAST_PREFLIGHT)
def test_load_past_the_preflight(name: str, tmp_path: Path) -> None:
    """The run ends a few request timeouts after its run time, SLOs missed (exit 1), no Locust left."""
    with serve(past_preflight(BEHAVIOURS[name])) as url:
        proc, elapsed, rss = run_cli(
            tmp_path,
            url,
            *SMOKE,
            "--run-time",
            f"{LOAD_RUN_TIME}s",
            "--report",
            str(tmp_path / "r"),
            bound=LOAD_BOUND,
        )
        assert_no_survivors(tmp_path, url)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, (proc.returncode, output[-3000:])
    assert "Traceback" not in output and "ksentinel: error:" not in output
    assert "Starting Locust" in proc.stderr, "the run got past the preflight"
    assert re.search(r"^error_ratio +all .* MISSED$", proc.stdout, re.MULTILINE), proc.stdout
    assert re.search(rf"^failures: .*\b{FLOW_CODE[name]} x\d+", proc.stdout, re.MULTILINE), proc.stdout
    assert elapsed < LOAD_BOUND, elapsed
    assert rss < LOAD_MAX_RSS_MB, rss
