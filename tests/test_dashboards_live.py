"""Dashboards and rules against the real exporters and the real Prometheus.

- every series a dashboard panel, a variable or a rule reads is one that ``ksentinel probe serve`` or
  a ``ksentinel load`` run really exports, read from their live ``/metrics`` (never a typed list);
- end to end: Prometheus (``/usr/bin/prometheus``, Debian's ``prometheus`` package) loaded with the
  rules of a test configuration (``for`` of 2s, windows of seconds) scrapes ``probe serve`` against
  the embedded reference platform: with ``--fault http-500`` ``KalturaFlowFailing`` fires; on a clean
  platform no alert fires; with a wrong secret ``KalturaProbeMisconfigured`` fires and nothing pages.

Without the binaries these tests skip, unless ``KSENTINEL_REQUIRE_SYSTEM_DEPS=1``.
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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ksentinel.config import Config, load_config
from ksentinel.dashboards.build import RULES_FILE, build, write_build
from ksentinel.dashboards.exported import exported_names, names_in_exposition
from ksentinel.dashboards.lint import expressions
from ksentinel.dashboards.promql import metric_names
from tests import helpers

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "dashboards"
START_TIMEOUT = 60.0
_LISTENING = re.compile(r"listening on (http://\S+)")

# alerts link their runbook section under this base URL
RUNBOOKS = "https://github.com/example/ksentinel/blob/main/docs/runbooks.md"
# the test configuration: every probe flow each 2s, alerts after 2s, SLO windows of seconds
TEST_CONFIG = f"""
[probes]
flows = ["session", "list", "cache", "delete"]
interval = 2
timeout = 1.8
jitter = 0.0

[slo.default_flow]
window = "10m"

[reference]  # realistic, with a search index lag that fits the 1.8 s run timeout above
index_lag = 0.3

[dashboards]
for = "2s"
probe_absent_for = "1m"  # Prometheus evaluates before its first scrape: no data yet is not an outage
interval = "1s"
min_rate_window = "10s"
cache_window = "30s"
runbook_base_url = "{RUNBOOKS}"
"""


def system_binary(name: str) -> str:
    return helpers.system_binary(name, "prometheus")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("KSENTINEL_", "LOCUST_"))}


class Child:
    """A subprocess whose output is pumped into a queue (and kept for failure messages)."""

    def __init__(self, args: list[str], *, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line.rstrip())
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            match = pattern.search(line)
            if match:
                return match
        raise AssertionError(f"no {pattern.pattern!r} in the output: {self.tail()}")

    def tail(self) -> str:
        return " | ".join(self.output[-15:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.pump.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextlib.contextmanager
def probe_serve(tmp: Path, *faults: str) -> Iterator[str]:
    """``ksentinel probe serve`` of the test configuration on the embedded platform; yields its URL."""
    config = tmp / "ksentinel.toml"
    if not config.exists():
        config.write_text(TEST_CONFIG)
    args = [
        sys.executable,
        "-m",
        "ksentinel.probe",
        "serve",
        "--config",
        str(config),
        "--listen",
        "127.0.0.1:0",
    ]
    for fault in faults:
        args += ["--fault", fault]
    child = Child(args, cwd=tmp)
    try:
        url = child.wait_for(_LISTENING, START_TIMEOUT).group(1)
        with httpx.Client(timeout=5) as http:
            deadline = time.monotonic() + START_TIMEOUT
            while http.get(f"{url}/-/ready").status_code != 200:
                assert time.monotonic() < deadline, f"probe not ready: {child.tail()}"
                assert child.proc.poll() is None, child.tail()
                time.sleep(0.2)
        yield url
    finally:
        child.stop()


@contextlib.contextmanager
def load_run(tmp: Path) -> Iterator[str]:
    """A ``ksentinel load`` run (smoke profile, embedded platform) serving /metrics; yields its URL."""
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "ksentinel.load",
        "--profile",
        "smoke",
        "--users",
        "3",  # one per flow of the smoke mix (fewer is refused: a flow would never run)
        "--run-time",
        "60s",
        "--metrics-port",
        str(port),
        "--suite",
        str(REPO / "load"),
        "--report",
        str(tmp),
    ]
    child = Child(args, cwd=tmp)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        child.stop()


def scrape_until(url: str, needle: str, timeout: float = START_TIMEOUT) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    with httpx.Client(timeout=5) as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                text = http.get(f"{url}/metrics").text
                if needle in text:
                    return text
            time.sleep(0.5)
    raise AssertionError(f"{needle!r} never appeared on {url}/metrics: {text[-2000:]}")


# --- every name a dashboard or rule reads is exported ----------------------------------------------


@pytest.mark.slow
def test_every_series_read_is_exported_by_a_live_exporter(tmp_path: Path) -> None:
    (tmp_path / "probe").mkdir()
    (tmp_path / "load").mkdir()
    with probe_serve(tmp_path / "probe", "http-500") as url:
        probe_text = scrape_until(url, "ksentinel_api_errors_total{")
    with load_run(tmp_path / "load") as url:
        load_text = scrape_until(url, "ksentinel_load_requests_total{")
    live = names_in_exposition(probe_text) | names_in_exposition(load_text)
    assert "ksentinel_probe_step_duration_seconds_bucket" in live and "ksentinel_load_users" in live

    result = build(Config(), SUITE)
    recorded = {rule.record for group in result.groups for rule in group.rules if rule.record}
    used: set[str] = set()
    for item in expressions(result):
        names = metric_names(item.expr)
        allowed = live if item.self_contained else live | recorded
        assert names <= allowed, f"{item.where} reads {sorted(names - allowed)}"
        used |= names
    # every kind of panel the issue asks for reads something real
    assert {
        "ksentinel_probe_success",
        "ksentinel_probe_runs_total",
        "ksentinel_probe_step_duration_seconds_bucket",
        "ksentinel_api_errors_total",
        "ksentinel_cache_lookups_total",
        "ksentinel_cache_stale_reads_total",
        "ksentinel_probe_last_success_timestamp_seconds",
        "ksentinel_load_users",
        "ksentinel_load_requests_total",
        "ksentinel_load_failures_total",
        "ksentinel_load_request_duration_seconds_bucket",
    } <= used
    # and what `dashboards lint` takes for exported (from the collectors) is what the exporters serve
    assert exported_names() <= {name for name in live if name.startswith("ksentinel_")}


# --- the real Prometheus ----------------------------------------------------------------------------


@contextlib.contextmanager
def prometheus(tmp: Path, probe_url: str, rules: Path) -> Iterator[str]:
    binary = system_binary("prometheus")
    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "scrape_configs": [
                    {
                        "job_name": "ksentinel-probe",
                        "static_configs": [{"targets": [probe_url.removeprefix("http://")]}],
                    }
                ],
            }
        )
    )
    args = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    child = Child(args, cwd=tmp)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=5) as http:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                assert child.proc.poll() is None, f"prometheus exited: {child.tail()}"
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(f"{url}/-/ready").status_code == 200:
                        break
                assert time.monotonic() < deadline, f"prometheus not ready: {child.tail()}"
                time.sleep(0.2)
        yield url
    finally:
        child.stop()


def api(http: httpx.Client, url: str, path: str, **params: Any) -> Any:
    response = http.get(f"{url}/api/v1/{path}", params=params)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]


@contextlib.contextmanager
def stack(tmp: Path, *faults: str, config: str = TEST_CONFIG) -> Iterator[tuple[str, int]]:
    """Probe serve + Prometheus with the rules of the test configuration; yields Prometheus' URL and
    the number of rules loaded."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "ksentinel.toml").write_text(config)
    result = build(load_config(tmp / "ksentinel.toml"), SUITE)
    write_build(result, tmp / "build")
    with (
        probe_serve(tmp, *faults) as probe_url,
        prometheus(tmp, probe_url, tmp / "build" / RULES_FILE) as url,
    ):
        yield url, sum(len(group.rules) for group in result.groups)


def rules_are_healthy(http: httpx.Client, url: str, count: int) -> None:
    groups = api(http, url, "rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == count
    assert all(rule["health"] in ("ok", "unknown") for rule in rules), [
        (rule["name"], rule.get("lastError")) for rule in rules if rule["health"] == "err"
    ]


@pytest.mark.slow
def test_prometheus_fires_kaltura_flow_failing_on_http_500(tmp_path: Path) -> None:
    with stack(tmp_path, "http-500") as (url, count), httpx.Client(timeout=5) as http:
        deadline = time.monotonic() + 60
        firing: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not firing:
            alerts = api(http, url, "alerts")["alerts"]
            firing = [
                a
                for a in alerts
                if a["labels"]["alertname"] == "KalturaFlowFailing" and a["state"] == "firing"
            ]
            time.sleep(0.5)
        assert firing, f"KalturaFlowFailing never fired: {alerts}"
        alert = firing[0]
        assert alert["labels"]["severity"] == "page" and alert["labels"]["target"] == "embedded"
        assert alert["labels"]["flow"] in {"session", "list", "cache", "delete"}
        assert alert["annotations"]["runbook_url"] == f"{RUNBOOKS}#kalturaflowfailing"
        assert alert["annotations"]["summary"] == f"Flow {alert['labels']['flow']} on embedded is failing."
        rules_are_healthy(http, url, count)


#: the clean run: more room per run than TEST_CONFIG's 1.8 s, so a busy CI machine (two test workers
#: next to this stack) slowing one cache run past its timeout is not read as a platform fault
CLEAN_CONFIG = TEST_CONFIG.replace("interval = 2\ntimeout = 1.8", "interval = 3\ntimeout = 2.8")


@pytest.mark.slow
def test_prometheus_fires_nothing_on_a_clean_platform(tmp_path: Path) -> None:
    assert CLEAN_CONFIG != TEST_CONFIG
    with stack(tmp_path, config=CLEAN_CONFIG) as (url, count), httpx.Client(timeout=5) as http:
        # wait until the probe series are in and every rule has evaluated over some seconds of data
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            runs = api(http, url, "query", query='sum(ksentinel_probe_runs_total{result="success"})')[
                "result"
            ]
            if runs and float(runs[0]["value"][1]) >= 30:
                break
            time.sleep(0.5)
        else:
            pytest.fail("the probe runs never reached Prometheus")
        time.sleep(15)  # longer than the burn windows' short windows (10s) and every `for` (2s)
        alerts = api(http, url, "alerts")["alerts"]
        # what the probe saw, should an alert have fired: the runs that did not succeed, by step and code
        seen = api(http, url, "query", query='ksentinel_probe_runs_total{result!="success"} > 0')["result"]
        steps = api(http, url, "query", query="ksentinel_probe_step_failures_total > 0")["result"]
        assert alerts == [], (alerts, seen, steps)
        # ... and none fired at any time (ALERTS keeps the history)
        fired = api(http, url, "query", query='count_over_time(ALERTS{alertstate="firing"}[10m])')["result"]
        assert fired == [], (fired, seen, steps)
        rules_are_healthy(http, url, count)
        # the probe's data reached the recording rules: the error budget is whole
        budget = api(http, url, "query", query="target_flow:ksentinel_probe_error_budget_remaining:ratio")
        assert {r["metric"]["flow"] for r in budget["result"]} == {"session", "list", "cache", "delete"}
        assert all(float(r["value"][1]) == 1.0 for r in budget["result"])


@pytest.mark.slow
def test_prometheus_tickets_a_wrong_secret_and_pages_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import start_reference

    monkeypatch.setenv("WRONG_ADMIN_SECRET", "not-the-admin-secret-0123456789")
    with start_reference(tmp_path / "ref") as ref:
        config = TEST_CONFIG.replace("[probes]\n", '[probes]\ntargets = ["wrong"]\n') + (
            f'\n[targets.wrong]\nurl = "{ref.url}"\npartner_id = {ref.p1.id}\n'
            'admin_secret_env = "WRONG_ADMIN_SECRET"\n'
        )
        with stack(tmp_path / "stack", config=config) as (url, count), httpx.Client(timeout=5) as http:
            deadline = time.monotonic() + 60
            firing: list[dict[str, Any]] = []
            while time.monotonic() < deadline and len(firing) < 4:
                alerts = api(http, url, "alerts")["alerts"]
                firing = [
                    a
                    for a in alerts
                    if a["labels"]["alertname"] == "KalturaProbeMisconfigured" and a["state"] == "firing"
                ]
                time.sleep(0.5)
            assert {a["labels"]["flow"] for a in firing} == {"session", "list", "cache", "delete"}, alerts
            alert = firing[0]
            assert alert["labels"]["severity"] == "ticket" and alert["labels"]["target"] == "wrong"
            assert alert["annotations"]["runbook_url"] == f"{RUNBOOKS}#kalturaprobemisconfigured"
            time.sleep(12)  # longer than the burn windows' short windows (10s) and every `for` (2s)
            runs = api(http, url, "query", query='sum(ksentinel_probe_runs_total{result="error"})')["result"]
            assert runs and float(runs[0]["value"][1]) >= 20, runs
            # nothing but the ticket fired, ever: no KalturaFlowFailing page, no budget burn
            fired = api(http, url, "query", query='count_over_time(ALERTS{alertstate="firing"}[10m])')
            assert {r["metric"]["alertname"] for r in fired["result"]} == {"KalturaProbeMisconfigured"}, fired
            rules_are_healthy(http, url, count)
