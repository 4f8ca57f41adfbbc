"""KS hygiene of ``ksentinel contract``: no KS in any URL, a short-lived limited fuzzing KS, and every
KS the run used ended at the end (also after Ctrl-C).

The run goes through a small recording loopback proxy in front of a reference platform, so what is
judged is what went over the wire.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from ksentinel.contract.profiles import get_profile
from ksentinel.contract.schemathesis_support import FUZZ_USER, fuzz_ks_expiry
from ksentinel.errors import KsError
from ksentinel.kaltura import ks as ks_lib
from ksentinel.kaltura.api import KalturaApi
from tests.conftest import Reference
from tests.helpers import target_env

REPO = Path(__file__).resolve().parents[1]
CONTRACT_TIMEOUT = 300
_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}
)
_JSON_KS = re.compile(rb'"ks"\s*:\s*"([^"]+)"')
_FORM_KS = re.compile(rb'name="ks"\r\n(?:[^\r\n]+\r\n)*\r\n([^\r\n]+)')
COUNT = {"objectType": "KalturaBaseEntryFilter", "idEqual": "0_ks_hygiene"}


@dataclass(frozen=True)
class Exchange:
    method: str
    url: str  # path and query as sent
    body: bytes
    answer: bytes = b""

    def query_ks(self) -> bool:
        query = urlsplit(self.url).query
        return any(name.lower() == "ks" for name, _ in parse_qsl(query, keep_blank_values=True))

    def body_ks(self) -> list[str]:
        found = [m.decode("utf-8", "replace") for m in _JSON_KS.findall(self.body)]
        found += [m.decode("utf-8", "replace") for m in _FORM_KS.findall(self.body)]
        return found


class RecordingProxy:
    """A loopback proxy that forwards every request to ``upstream`` and records it (no redirects followed)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.exchanges: list[Exchange] = []
        self.url = ""
        self._lock = threading.Lock()
        self.seen = threading.Condition(self._lock)

    def record(self, exchange: Exchange) -> None:
        with self.seen:
            self.exchanges.append(exchange)
            self.seen.notify_all()

    def wait_for(self, wanted, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.seen:
            while not any(wanted(e) for e in self.exchanges):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.seen.wait(min(left, 0.5))
        return True

    @contextlib.contextmanager
    def running(self) -> Iterator[RecordingProxy]:
        proxy = self
        client = httpx.Client(timeout=120.0, follow_redirects=False)

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                try:
                    answer = client.request(
                        self.command, proxy.upstream + self.path, headers=headers, content=body
                    )
                except httpx.HTTPError:
                    proxy.record(Exchange(self.command, self.path, body))
                    self.send_error(502)
                    return
                content = answer.content
                proxy.record(Exchange(self.command, self.path, body, content))
                self.send_response(answer.status_code)
                for name, value in answer.headers.multi_items():
                    if name.lower() not in _HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_PUT = do_HEAD = _forward

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{server.server_port}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            client.close()


def contract_command(tmp: Path, profile: str = "quick", *extra: str) -> list[str]:
    out = tmp / "out"
    return [
        sys.executable,
        "-m",
        "ksentinel.cli",
        "contract",
        "--profile",
        profile,
        "--suite",
        str(REPO / "contracts"),
        "--report",
        str(out),
        "--junit",
        str(out / "junit.xml"),
        *extra,
    ]


def contract_env(ref: Reference, url: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
    return {**clean, **target_env(ref), "KSENTINEL_URL": url}


def sessions_sent(exchanges: list[Exchange], ref: Reference) -> dict[str, ks_lib.KsInfo]:
    """Every well-signed KS a request carried (in its body), by KS."""
    secrets = [ref.p1.admin_secret, ref.p2.admin_secret]
    found: dict[str, ks_lib.KsInfo] = {}
    for exchange in exchanges:
        for token in exchange.body_ks():
            if token in found:
                continue
            with contextlib.suppress(KsError, ValueError):
                found[token] = ks_lib.verify(token, secrets)
    return found


def refusal(ref: Reference, token: str) -> str:
    """What the platform answers a call made with ``token`` now: the code and message, or ``accepted``."""
    with KalturaApi(ref.url, timeout=10) as api:
        answer = api.with_ks(token).call_raw("baseEntry", "count", filter=COUNT)
    if answer.error is None:
        return "accepted"
    return f"{answer.error.code} {answer.error.message}"


def assert_every_live_ks_ended(sent: dict[str, ks_lib.KsInfo], ref: Reference) -> list[str]:
    now = time.time()
    live = {token: info for token, info in sent.items() if info.valid_until > now + 5}
    answers = {token: refusal(ref, token) for token in live}
    still = [
        f"{info.user_id} (type {info.type}): {answers[t]}"
        for t, info in live.items()
        if "LOGOUT" not in answers[t]
    ]
    assert not still, f"KSs of the run still usable or not ended after it: {still}"
    return list(live)


@pytest.mark.timeout(CONTRACT_TIMEOUT + 60)
def test_a_quick_contract_run_never_puts_a_ks_in_a_url_and_ends_its_sessions(
    tmp_path: Path, fresh_reference: Reference
) -> None:
    proxy = RecordingProxy(fresh_reference.url)
    with proxy.running():
        started = time.time()
        proc = subprocess.run(
            contract_command(tmp_path),
            capture_output=True,
            text=True,
            timeout=CONTRACT_TIMEOUT,
            env=contract_env(fresh_reference, proxy.url),
            cwd=tmp_path,
        )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    exchanges = proxy.exchanges
    api_calls = [e for e in exchanges if "/api_v3/" in e.url]
    in_url = [e.url for e in exchanges if e.query_ks()]
    with_ks = [e for e in api_calls if e.body_ks()]
    print(
        f"recorded {len(exchanges)} requests, {len(with_ks)} with a KS in the body, {len(in_url)} in the URL"
    )
    assert len(api_calls) > 100 and with_ks, "the run did not go through the proxy"
    assert in_url == [], f"{len(in_url)} requests carried a KS in the URL: {in_url[:3]}"

    sent = sessions_sent(exchanges, fresh_reference)
    fuzz = {token: info for token, info in sent.items() if info.user_id == FUZZ_USER}
    assert fuzz, f"no fuzzing KS was sent: {sorted({i.user_id for i in sent.values()})}"
    expiry = fuzz_ks_expiry(get_profile("quick"))
    assert expiry <= 300
    for info in fuzz.values():
        assert info.type == 2
        assert started - 5 <= info.valid_until - expiry <= time.time() + 5, (
            "the fuzzing KS is not short-lived"
        )
        assert re.fullmatch(r"actionslimit:\d+", info.privileges), info.privileges
    # the fuzzing KS, and every other KS the run sent that has not expired, is ended
    for token in fuzz:
        assert "LOGOUT" in refusal(fresh_reference, token) and refusal(fresh_reference, token).startswith(
            "INVALID_KS"
        )
    ended = assert_every_live_ks_ended(sent, fresh_reference)
    assert set(fuzz) <= set(ended)


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.mark.timeout(CONTRACT_TIMEOUT + 60)
def test_an_interrupted_contract_run_ends_its_sessions_too(
    tmp_path: Path, fresh_reference: Reference
) -> None:
    proxy = RecordingProxy(fresh_reference.url)
    secrets = [fresh_reference.p1.admin_secret]

    def fuzzing(exchange: Exchange) -> bool:
        for token in exchange.body_ks():
            with contextlib.suppress(KsError, ValueError):
                if ks_lib.verify(token, secrets).user_id == FUZZ_USER:
                    return True
        return False

    with proxy.running():
        proc = subprocess.Popen(
            contract_command(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=contract_env(fresh_reference, proxy.url),
            cwd=tmp_path,
            preexec_fn=_default_signals,
        )
        try:
            assert proxy.wait_for(fuzzing, 180), "the fuzzer never sent a request"
            time.sleep(1.0)
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code == 130
    assert not [e.url for e in proxy.exchanges if e.query_ks()]
    sent = sessions_sent(proxy.exchanges, fresh_reference)
    fuzz = [token for token, info in sent.items() if info.user_id == FUZZ_USER]
    assert fuzz
    ended = assert_every_live_ks_ended(sent, fresh_reference)
    assert set(fuzz) <= set(ended)
