"""An interrupted ``ksentinel contract`` (Ctrl-C, or SIGTERM from a cancelled CI job) exits 130 and its
HTML, JSON and JUnit say INCOMPLETE, never PASS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from ksentinel.pytest_plugin import stop_on_signals
from ksentinel.report.model import CheckResult, ContractSection, RunReport

REPO = Path(__file__).resolve().parents[1]
FIRST_CHECK_TIMEOUT = 120
STOP_TIMEOUT = 120


def _default_signals() -> None:
    # a harness that ignores SIGINT (a background shell job) must not make the child ignore it too
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class Output:
    """The child's output, read by a thread, so that waiting for a line can time out."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._new = threading.Condition()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            with self._new:
                self.lines.append(line)
                self._new.notify_all()

    def wait_for(self, wanted: Callable[[str], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._new:
            while not any(wanted(line) for line in self.lines):
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._new.wait(min(left, 0.5))
        return True

    def text(self) -> str:
        self._thread.join(timeout=10)
        with self._new:
            return "".join(self.lines)


@pytest.mark.timeout(FIRST_CHECK_TIMEOUT + STOP_TIMEOUT + 30)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_contract_run_exits_130_and_every_artefact_says_incomplete(
    tmp_path: Path, signum: signal.Signals
) -> None:
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "ksentinel.cli",
        "contract",
        "--profile",
        "deep",
        "-v",  # one line per check: the first one tells that the checks are running
        "--suite",
        str(REPO / "contracts"),
        "--report",
        str(out),
        "--junit",
        str(out / "junit.xml"),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}  # the embedded platform
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
        preexec_fn=_default_signals,
    )
    assert proc.stdout is not None
    output = Output(proc.stdout)
    try:
        checked = output.wait_for(lambda line: " PASSED" in line or " FAILED" in line, FIRST_CHECK_TIMEOUT)
        assert checked and proc.poll() is None, "no check ran:\n" + "".join(output.lines)[-3000:]
        proc.send_signal(signum)
        code = proc.wait(timeout=STOP_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = output.text()
    proc.stdout.close()
    assert code == 130, text[-3000:]
    assert "INCOMPLETE" in text

    data = json.loads((out / "contract.json").read_text())
    assert data["verdict"] == "INCOMPLETE" and data["ok"] is False, text[-3000:]
    assert data["contract"]["interrupted"] is True
    ran = data["contract"]["results"]
    assert ran and all(r["outcome"] != "failed" for r in ran), ran  # what ran before the signal is kept
    html = (out / "contract.html").read_text()
    assert '<h1 id="verdict">INCOMPLETE' in html and "PASS —" not in html

    root = ET.parse(out / "junit.xml").getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties.get("ksentinel.interrupted") == signum.name
    interrupted = [case for case in suite.iter("testcase") if case.get("name") == "interrupted"]
    assert len(interrupted) == 1 and interrupted[0].find("error") is not None
    assert "INCOMPLETE" in (interrupted[0].find("error").get("message") or "")
    assert int(suite.get("errors", "0")) >= 1


def test_an_interrupted_contract_section_is_incomplete_not_pass() -> None:
    passed = [CheckResult("flow", "session", "test_flow[session]", "passed")]
    whole = RunReport("ksentinel contract", "t", "now", contract=ContractSection("ci", passed))
    assert whole.verdict == "PASS" and whole.ok
    stopped = RunReport(
        "ksentinel contract", "t", "now", contract=ContractSection("ci", passed, interrupted=True)
    )
    assert stopped.verdict == "INCOMPLETE" and not stopped.ok and stopped.interrupted
    assert stopped.to_dict()["verdict"] == "INCOMPLETE" and stopped.to_dict()["contract"]["interrupted"]


def test_signals_stop_like_ctrl_c_after_the_handler_that_was_there_and_are_restored() -> None:
    calls: list[int] = []

    def outer(signum: int, frame: object) -> None:  # ksentinel demo's: it notes the stop, then raises
        calls.append(signum)
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGTERM, outer)
    try:
        with stop_on_signals() as stopped, stop_on_signals() as nested:
            assert nested is stopped
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
        assert stopped.signal == "SIGTERM" and calls == [signal.SIGTERM]
        assert signal.getsignal(signal.SIGTERM) is outer
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with stop_on_signals() as ignoring:  # an ignored signal stays ignored (nohup, background jobs)
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
        assert ignoring.signal is None
    finally:
        signal.signal(signal.SIGTERM, before)
