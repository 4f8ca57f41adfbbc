"""End to end with a real Prometheus: reference platforms, ``ksentinel probe serve``, Prometheus scraping.

Needs Debian's ``prometheus`` package (``/usr/bin/prometheus``). Without it the test is skipped,
unless ``KSENTINEL_REQUIRE_SYSTEM_DEPS=1`` (as ``.ci/run`` sets), which makes it fail instead.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from ksentinel.reference.process import ReferenceProcess
from tests import helpers
from tests.conftest import make_partners, partners_env

INTERVAL = 2.5
SCRAPE_INTERVAL = 1.0
LISTENING = re.compile(r"listening on (http://\S+)")

pytestmark = pytest.mark.slow


def _prometheus() -> str:
    return helpers.system_binary("prometheus", "prometheus")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pump(stream: IO[str] | None, lines: queue.Queue[str | None]) -> None:
    if stream is None:
        lines.put(None)
        return
    try:
        for line in stream:
            lines.put(line)
    finally:
        stream.close()
        lines.put(None)


class Child:
    """A child process whose merged output is read line by line (and kept for failure messages)."""

    def __init__(self, args: list[str], *, env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        self.eof = False
        self.pump = threading.Thread(target=_pump, args=(self.proc.stdout, self.lines), daemon=True)
        self.pump.start()

    def wait_for_line(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self.eof = True
                break
            self.output.append(line.rstrip())
            match = pattern.search(line)
            if match:
                return match
        raise AssertionError(f"no line matching {pattern.pattern!r}; output: {' | '.join(self.output[-10:])}")

    def drain(self) -> str:
        while not self.eof:
            try:
                line = self.lines.get(timeout=5)
            except queue.Empty:
                break
            if line is None:
                self.eof = True
                break
            self.output.append(line.rstrip())
        return "\n".join(self.output)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.drain()
        self.pump.join(5)
        return int(self.proc.returncode)


def probe_command() -> list[str]:
    """``ksentinel probe`` as wired in the main command, else the group on its own."""
    from ksentinel.cli import COMMANDS

    if "probe" in COMMANDS:
        return [sys.executable, "-m", "ksentinel.cli", "probe"]
    return [sys.executable, "-m", "ksentinel.probe"]


def query(http: httpx.Client, prometheus: str, promql: str) -> list[dict[str, Any]]:
    response = http.get(f"{prometheus}/api/v1/query", params={"query": promql})
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def wait_until(check: Callable[[], bool], timeout: float, what: str, poll: float = 0.2) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"timed out after {timeout}s waiting for {what}"
        time.sleep(poll)
    return time.monotonic() - started


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    binary = _prometheus()
    p1, p2 = make_partners()
    ref_env = {"KSENTINEL_REF_PARTNERS": partners_env(p1, p2)}
    with contextlib.ExitStack() as stack:
        clean = stack.enter_context(ReferenceProcess(tmp_path / "clean", ready_after=0.2, env=ref_env))
        stale = stack.enter_context(
            ReferenceProcess(tmp_path / "stale", faults=("stale-cache",), ready_after=0.2, env=ref_env)
        )
        config = tmp_path / "ksentinel.toml"
        config.write_text(
            f"""
[targets.ref]
url = "{clean.url}"
partner_id = {p1.id}
admin_secret_env = "PROBE_TEST_ADMIN"

[targets.stale]
url = "{stale.url}"
partner_id = {p1.id}
admin_secret_env = "PROBE_TEST_ADMIN"

[probes]
targets = ["ref", "stale"]
flows = ["session", "upload", "cache"]
interval = {INTERVAL}
timeout = 2.0
jitter = 0.1
"""
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
        env["PROBE_TEST_ADMIN"] = p1.admin_secret
        serve = Child(
            [
                *probe_command(),
                "serve",
                "--config",
                str(config),
                "--listen",
                "127.0.0.1:0",
                "--on-demand-interval",
                "0",
            ],
            env=env,
            cwd=tmp_path,
        )
        stack.callback(serve.stop)
        exporter = serve.wait_for_line(LISTENING, 30).group(1)
        exporter_address = exporter.removeprefix("http://")

        port = _free_port()
        prometheus_config = tmp_path / "prometheus.yml"
        prometheus_config.write_text(
            f"""
global:
  scrape_interval: {SCRAPE_INTERVAL:g}s
  scrape_timeout: {SCRAPE_INTERVAL:g}s
scrape_configs:
  - job_name: ksentinel
    static_configs:
      - targets: ["{exporter_address}"]
  - job_name: ksentinel_blackbox  # a flow run per scrape: more time than a /metrics scrape, as
    scrape_interval: 3s           # blackbox_exporter users give probe jobs; a scrape abandoned at 1 s
    scrape_timeout: 3s            # would find its pair still running (429) under a loaded machine
    metrics_path: /probe
    params:
      flow: [session]
    static_configs:
      - targets: [ref, stale]
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: "{exporter_address}"
"""
        )
        prometheus = Child(
            [
                binary,
                f"--config.file={prometheus_config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            env=env,
            cwd=tmp_path,
        )
        stack.callback(prometheus.stop)
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=5.0) as http:

            def ready() -> bool:
                assert prometheus.proc.poll() is None, prometheus.drain()
                with contextlib.suppress(httpx.HTTPError):
                    return http.get(f"{url}/-/ready").status_code == 200
                return False

            wait_until(ready, 30, "Prometheus to be ready")
            yield {"http": http, "prometheus": url, "exporter": exporter, "clean": clean, "serve": serve}


def test_prometheus_sees_probe_results_and_a_stopped_platform(stack: dict[str, Any]) -> None:
    http: httpx.Client = stack["http"]
    prometheus: str = stack["prometheus"]

    def one(promql: str) -> bool:
        return bool(query(http, prometheus, promql))

    # (one wait, no second look: on a loaded machine one upload run past its 2 s timeout may follow)
    wait_until(
        lambda: one('ksentinel_probe_success{target="ref",flow="upload"} == 1'),
        30,
        "upload == 1 in Prometheus",
    )
    # the stale-cache platform: the cache flow fails, the session flow does not
    wait_until(
        lambda: (
            one('ksentinel_probe_success{target="stale",flow="cache"} == 0')
            and one('ksentinel_probe_success{target="stale",flow="session"} == 1')
        ),
        30,
        "cache == 0 and session == 1 on the stale-cache platform",
    )
    assert one('ksentinel_cache_stale_reads_total{target="stale"} > 0')
    assert one('ksentinel_cache_stale_reads_total{target="ref"} == 0')
    assert one('ksentinel_cache_lookups_total{target="ref",result="hit"} > 0')
    assert one('ksentinel_probe_step_duration_seconds_count{target="ref",step="upload.chunk"} > 0')
    # blackbox-style relabelling: /probe?target=..&flow=session. An on-demand run shares the target's
    # gate with the scheduled ones: while ref's cache flow holds it (longer on a loaded machine) a scrape
    # is answered "busy" (probe_success 0), so several scrapes may pass before one gets through
    wait_until(
        lambda: one('probe_success{job="ksentinel_blackbox",instance="ref"} == 1'), 60, "/probe scrapes"
    )
    assert one('probe_step_duration_seconds{job="ksentinel_blackbox",step="session.start"}')

    stack["clean"].stop()
    took = wait_until(
        lambda: one('ksentinel_probe_success{target="ref",flow="upload"} == 0'),
        2 * INTERVAL,
        "upload == 0 within two intervals of the platform stopping",
        poll=0.1,
    )
    assert took <= 2 * INTERVAL
    wait_until(
        lambda: one('ksentinel_api_errors_total{target="ref",code="CONNECTION"} > 0'), 2 * INTERVAL, "errors"
    )
    assert one('ksentinel_probe_success{target="stale",flow="session"} == 1'), (
        "the other target is unaffected"
    )
    assert one('up{job="ksentinel"} == 1')

    serve = stack["serve"]
    assert serve.stop() == 0, serve.drain()
    assert "ksentinel probe: stopped" in serve.drain()
