"""``ksentinel demo`` end to end: the README's main command, its report in a real browser, no leaks.

The demo runs through the real CLI in a subprocess, as a user runs it: once against the embedded
platform it starts itself (must pass), once against a platform started here with a fault and known
secrets (must fail, and no secret or KS may appear in anything it wrote or printed), once
interrupted with SIGINT in the middle of the load stage.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser import open_page
from tests.conftest import start_reference
from tests.helpers import target_env

REPO = Path(__file__).resolve().parents[1]
LOAD_TIME = "8s"
BOUND = 240  # seconds for a whole demo run
ARTEFACTS = Path(os.environ.get("KSENTINEL_TEST_ARTEFACTS", REPO / "build" / "test-artefacts"))


@dataclass
class DemoRun:
    proc: subprocess.CompletedProcess[str]
    out: Path

    @property
    def data(self) -> dict:
        return json.loads((self.out / "index.json").read_text())

    @property
    def html(self) -> str:
        return (self.out / "index.html").read_text()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KSENTINEL_", "LOCUST_"))}
    env.update(extra)
    return env


def run_demo(tmp: Path, *args: str, env: dict[str, str] | None = None) -> DemoRun:
    out = tmp / "report"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ksentinel.cli",
            "demo",
            "--report",
            str(out),
            "--load-time",
            LOAD_TIME,
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=BOUND,
        env=env if env is not None else clean_env(),
        cwd=tmp,
        stdin=subprocess.DEVNULL,
    )
    return DemoRun(proc, out)


@pytest.fixture(scope="module")
def clean_demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    return run_demo(tmp_path_factory.mktemp("demo"))


def test_demo_passes_on_the_embedded_platform(clean_demo: DemoRun) -> None:
    proc = clean_demo.proc
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert f"report: {clean_demo.out / 'index.html'}" in proc.stdout
    data = clean_demo.data
    assert data["verdict"] == "PASS"
    stages = {s["name"]: s["status"] for s in data["stages"]}
    assert stages == dict.fromkeys(("target", "contract", "load", "probe", "dashboards"), "passed")
    assert data["contract"]["results"] and all(
        r["outcome"] in ("passed", "skipped", "advisory") for r in data["contract"]["results"]
    )
    load = data["load"]
    assert load["ok"] and load["rows"] and all(r["verdict"] == "met" for r in load["rows"])
    assert {f["flow"] for f in data["probe"]["flows"]} == {"session", "upload", "list", "delete", "cache"}
    assert data["probe"]["ok"]
    assert len(data["dashboards"]["dashboards"]) >= 3 and data["dashboards"]["alerts"]


def test_demo_report_links_resolve_and_it_loads_nothing_from_outside(clean_demo: DemoRun) -> None:
    html = clean_demo.html
    hrefs = re.findall(r'href="([^"#][^"]*)"', html)
    assert hrefs, "the report links to nothing"
    for href in hrefs:
        assert not re.match(r"[a-z]+:", href), f"external link {href}"
        assert (clean_demo.out / href).is_file(), f"broken link {href}"
    assert not re.search(r"<script|<link\b|\bsrc=|@import|url\(", html, re.I)
    assert html.count('<svg class="chart"') + html.count('class="chart"') >= 2


def test_report_renders_in_headless_chromium(clean_demo: DemoRun) -> None:
    with open_page(clean_demo.out / "index.html") as opened:
        page = opened.page
        assert page.locator("#verdict").inner_text().startswith("PASS")
        table = page.locator("#slo-table")
        assert table.is_visible()
        rows = table.locator("tbody > tr")
        assert rows.count() >= 3
        charts = page.locator("svg.chart")
        assert charts.count() >= 2
        for index in range(charts.count()):
            box = charts.nth(index).bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 100
        assert page.locator("#probe-table > tbody > tr").count() == 5
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTEFACTS / "demo-report.png"
        page.screenshot(path=str(shot), full_page=True)
        assert opened.problems == []
    assert shot.stat().st_size > 10_000


def test_the_browser_check_sees_a_broken_page(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text(
        '<html><body><h1 id="verdict">PASS</h1><script>console.error("boom"); nothing();</script>'
        '<img src="missing.png"></body></html>'
    )
    with open_page(page) as opened:
        problems = opened.problems
    assert any("boom" in p for p in problems)
    assert any(p.startswith("uncaught:") for p in problems)
    assert any("missing.png" in p for p in problems)


# --- a failing run leaks nothing --------------------------------------------------------------------

#: A KS as the wire carries it: URL-safe or plain base64 (v2 starts "djJ8" = "v2|").
_TOKEN = re.compile(r"[A-Za-z0-9+/_-]{40,}={0,2}")


def looks_like_ks(token: str) -> bool:
    """Decode ``token`` as base64 and recognise a KS v2 (``v2|pid|...``) or v1 (``<sha1>|pid;...``)."""
    standard = token.replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(standard + "=" * (-len(standard) % 4))
    except (binascii.Error, ValueError):
        return False
    return raw.startswith(b"v2|") or re.match(rb"[0-9a-f]{40}\|\d+;", raw) is not None


def everything_written(run: DemoRun) -> Iterator[tuple[str, str]]:
    yield "stdout", run.proc.stdout
    yield "stderr", run.proc.stderr
    for path in sorted(run.out.rglob("*")):
        if path.is_file() and path.suffix in (".html", ".json", ".xml", ".log", ".yml", ".csv", ".txt"):
            yield str(path.relative_to(run.out)), path.read_text(errors="replace")


def test_looks_like_ks_recognises_real_ks_values() -> None:
    from ksentinel.kaltura import ks as ks_lib

    for version in (1, 2):
        value = ks_lib.build("s" * 32, 101, "admin", 2, 3600, "", version=version)
        assert looks_like_ks(value), version
    assert not looks_like_ks("a" * 60)


def test_no_ks_in_any_output_of_the_clean_demo(clean_demo: DemoRun) -> None:
    scanned = 0
    for name, text in everything_written(clean_demo):
        scanned += 1
        leaked = [token for token in _TOKEN.findall(text) if looks_like_ks(token)]
        assert not leaked, f"a KS in {name}: {leaked[0][:12]}..."
    assert scanned >= 8


@pytest.mark.timeout(BOUND + 60)
def test_no_secret_or_ks_in_any_output_of_a_failing_demo(tmp_path: Path) -> None:
    with start_reference(tmp_path / "ref", faults=("http-500", "ks-signature-ignored")) as ref:
        env = clean_env(**target_env(ref))
        run = run_demo(tmp_path, env=env)
        secrets = [ref.p1.admin_secret, ref.p1.user_secret, ref.p2.admin_secret, ref.p2.user_secret]
    assert run.proc.returncode == 1, run.proc.stdout[-3000:] + run.proc.stderr[-3000:]
    assert run.data["verdict"] == "FAIL"
    broken = [r for r in run.data["contract"]["results"] if r["outcome"] in ("failed", "error")]
    assert any(r.get("request") for r in broken), "no failing request to scan"
    scanned = 0
    for name, text in everything_written(run):
        scanned += 1
        for secret in secrets:
            assert secret not in text, f"a partner secret in {name}"
        leaked = [token for token in _TOKEN.findall(text) if looks_like_ks(token)]
        assert not leaked, f"a KS in {name}: {leaked[0][:12]}..."
    assert scanned >= 8  # stdout, stderr, index.html/json, junit, logs, locust report, dashboards


# --- Ctrl-C and bad targets ---------------------------------------------------------------------


@pytest.mark.timeout(BOUND)
def test_ctrl_c_in_the_load_stage_stops_cleanly_and_still_reports(tmp_path: Path) -> None:
    out = tmp_path / "report"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ksentinel.cli", "demo", "--report", str(out), "--load-time", "60s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stderr is not None
    seen = []
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        seen.append(line)
        if "] load" in line or time.monotonic() > deadline:
            break
    time.sleep(4)  # into the run: users started, entries being made
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    stopped_in = time.monotonic() - started
    assert proc.returncode == 130, "".join(seen) + stderr[-3000:]
    assert stopped_in < 60
    assert "Traceback" not in stderr + stdout
    data = json.loads((out / "index.json").read_text())
    assert data["verdict"] == "INCOMPLETE"
    stages = {s["name"]: s["status"] for s in data["stages"]}
    assert stages["load"] == "interrupted"
    assert stages["probe"] == stages["dashboards"] == "skipped"
    leftovers = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True).stdout.split()
    assert not leftovers, "a child of the demo is still running"


def test_unreachable_target_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = clean_env(KSENTINEL_ADMIN_SECRET="f" * 32)
    run = run_demo(tmp_path, "--url", "http://127.0.0.1:9", "--partner-id", "101", env=env)
    assert run.proc.returncode == 2, run.proc.stdout + run.proc.stderr
    errors = [line for line in run.proc.stderr.splitlines() if line.startswith("ksentinel: error:")]
    assert len(errors) == 1 and "Traceback" not in run.proc.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--fault", "no-such-fault"), "unknown fault 'no-such-fault'"),
        (("--load-time", "abc"), "--load-time: bad duration"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ksentinel.cli", "demo", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("ksentinel: error:") == 1 and says in proc.stderr
    assert "Traceback" not in proc.stderr
