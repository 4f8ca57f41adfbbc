"""No runaway load (issue 14): no Locust process outlives ``ksentinel load``, however it dies, and a
Locust run stopped with SIGTERM (what a Kubernetes pod gets) cleans up what it created.

The target is a reference platform behind a loopback proxy that counts the requests reaching it:
"the load stopped" is "the count stopped growing", observed from the target's side.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import psutil
import pytest

from ksentinel.flows import Credentials, Sessions
from ksentinel.flows.entries import ALL_STATUSES
from ksentinel.kaltura.api import KalturaApi
from ksentinel.reference.realism import Realism
from tests.conftest import Reference, start_reference

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "load"

PROFILES = """
[defaults]
mix = { session = 1, upload = 1, browse = 1 }
wait = [0.05, 0.2]
upload_bytes = 65536
chunk_bytes = 16384
list_seed = 3
ks_pool = 2

[profiles.long]
description = "closed model, far longer than any test waits"
users = 3
spawn_rate = 3
run_time = "90s"

[profiles.uploads]
description = "uploads only: most of the time some user waits for a create"
mix = { upload = 1 }
users = 6
spawn_rate = 6
run_time = "90s"

[profiles.brief]
description = "a few seconds"
users = 3
spawn_rate = 3
run_time = "3s"

[profiles.staged]
description = "a staged profile, as ramp, soak and spike are (a pod runs one of those)"
stages = [ { duration = "90s", users = 6, spawn_rate = 6 } ]
"""


# --- a counting loopback proxy in front of the reference ------------------------------------------


CREATES = ("/action/add", "/action/addfromuploadedfile")
ENTRY_CREATES = ("/baseentry/action/add", "/media/action/add", "/action/addfromuploadedfile")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client killed mid-request resets its connection: expected here


class CountingProxy:
    """Forwards every request to ``upstream`` and counts them (``count``).

    ``slow_creates``: the answer to a call that creates an entry or upload token comes this many
    seconds after the target carried it out (a busy server), so a run stopped at any moment has
    creates in flight: the target has the object, the user that asked never learns its id.
    """

    def __init__(self, upstream: str, *, slow_creates: float = 0.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.slow_creates = slow_creates
        #: set when the target has created an entry whose answer is now held back (``slow_creates``)
        self.entry_held = threading.Event()
        self.count = 0
        self._lock = threading.Lock()
        self._client = httpx.Client(
            timeout=30, follow_redirects=False, limits=httpx.Limits(max_connections=64)
        )
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                proxy.forward(self)

            do_GET = do_POST = do_HEAD = _any

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.count += 1
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {
            k: v
            for k, v in handler.headers.items()
            if k.lower() not in ("host", "connection", "content-length", "accept-encoding")
        }
        try:
            answer = self._client.request(
                handler.command, self.upstream + handler.path, content=body, headers=headers
            )
            path = handler.path.lower().split("?")[0]
            if self.slow_creates and path.endswith(CREATES):
                if path.endswith(ENTRY_CREATES):
                    self.entry_held.set()
                time.sleep(self.slow_creates)
            handler.send_response(answer.status_code)
            for key, value in answer.headers.items():
                if key.lower() not in (
                    "content-length",
                    "transfer-encoding",
                    "connection",
                    "content-encoding",
                ):
                    handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(answer.content)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(answer.content)
        except (OSError, httpx.HTTPError):
            handler.close_connection = True  # the client went away (a killed user): nothing to answer

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._client.close()


@contextlib.contextmanager
def counted_reference(
    tmp: Path, *, index_lag: float = 0.0, slow_creates: float = 0.0
) -> Iterator[tuple[Reference, CountingProxy]]:
    realism = Realism.off(index_lag=index_lag)
    with (
        start_reference(tmp / "ref", realism=realism) as ref,
        CountingProxy(ref.url, slow_creates=slow_creates) as proxy,
    ):
        yield ref, proxy


# --- helpers --------------------------------------------------------------------------------------


def suite_copy(tmp_path: Path) -> Path:
    """The shipped locustfile under a path of this test's own (its processes are found by it)."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "locustfile.py").write_text((SUITE / "locustfile.py").read_text())
    (suite / "profiles.toml").write_text(PROFILES)
    return suite


def clean_env(ref: Reference) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KSENTINEL_", "LOCUST_"))}
    env["KSENTINEL_ADMIN_SECRET"] = ref.p1.admin_secret
    return env


def locust_processes(suite: Path) -> list[psutil.Process]:
    """Live (not zombie) processes running this suite's locustfile."""
    marker = str(suite / "locustfile.py")
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["status"] != psutil.STATUS_ZOMBIE and marker in (proc.info["cmdline"] or []):
                found.append(proc)
    return found


def wait_for(condition: object, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(step)
    return bool(condition())  # type: ignore[operator]


def wait_until_loading(ref: Reference, proxy: CountingProxy, proc: subprocess.Popen[str]) -> None:
    """Until the run has objects on the target and requests flow (bounded)."""
    store = ref.server.platform.store
    assert wait_for(lambda: proc.poll() is not None or (store.all_entries() and proxy.count > 30), 30), (
        "the run never started loading the target"
    )
    assert proc.poll() is None, proc.communicate()[0][-3000:]
    before = proxy.count
    assert wait_for(lambda: proxy.count > before, 5), "requests should flow"


def api_leftovers(ref: Reference, tag: str | None = None) -> tuple[list[str], list[str]]:
    """Tagged entries and pending/closed ksentinel upload tokens, as the API lists them."""
    ks = Sessions(Credentials(ref.p1.id, ref.p1.admin_secret)).admin()
    with KalturaApi(ref.url, partner_id=ref.p1.id, ks=ks) as api:
        entries = api.call(
            "baseEntry",
            "list",
            filter={
                "objectType": "KalturaBaseEntryFilter",
                "tagsLike": "ksentinel",
                "statusIn": ALL_STATUSES,
            },
            pager={"objectType": "KalturaFilterPager", "pageSize": 500},
            nocache=1,
        )
        tokens = api.call(
            "uploadToken",
            "list",
            filter={"objectType": "KalturaUploadTokenFilter", "statusIn": "0,1,2"},
            pager={"objectType": "KalturaFilterPager", "pageSize": 500},
            nocache=1,
        )
    prefix = f"ksentinel-{tag}" if tag else "ksentinel-"
    return (
        [e["id"] for e in entries.get("objects") or []],
        [t["id"] for t in tokens.get("objects") or [] if str(t.get("fileName") or "").startswith(prefix)],
    )


def store_leftovers(ref: Reference) -> tuple[list[str], list[str]]:
    store = ref.server.platform.store
    return (
        [e["id"] for e in store.all_entries()],
        [t["id"] for t in store.all_tokens() if t["status"] in (0, 1, 2)],
    )


# --- 1. SIGKILL of `ksentinel load`: its Locust processes stop and clean up ------------------------


@pytest.mark.parametrize("workers", [0, 1], ids=["local", "master-and-worker"])
def test_sigkill_of_ksentinel_load_leaves_no_locust_process_and_no_load(tmp_path: Path, workers: int) -> None:
    suite = suite_copy(tmp_path)
    with counted_reference(tmp_path) as (ref, proxy):
        command = [
            sys.executable,
            "-m",
            "ksentinel.load",
            "--url",
            proxy.url,
            "--partner-id",
            str(ref.p1.id),
            "--suite",
            str(suite),
            "--profile",
            "long",
            "--workers",
            str(workers),
        ]
        proc = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(ref),
            cwd=tmp_path,
        )
        try:
            wait_until_loading(ref, proxy, proc)
            children = psutil.Process(proc.pid).children(recursive=True)
            assert len(locust_processes(suite)) == 1 + workers, [p.cmdline() for p in children]

            proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            proc.wait(timeout=5)
            gone = wait_for(lambda: not locust_processes(suite), 15)
            took = time.monotonic() - killed
            assert gone, f"Locust outlived ksentinel load: {[p.cmdline() for p in locust_processes(suite)]}"
            # the children stopped, cleaned up and exited within a few seconds
            assert took < 8, f"{took:.1f}s"
            count = proxy.count
            time.sleep(1.0)
            assert proxy.count == count, "requests still reach the target after the Locust processes ended"
            # they stopped gracefully: what the run created is gone (SIGTERM from the lifeline)
            assert store_leftovers(ref) == ([], []), store_leftovers(ref)
            print(f"workers={workers}: Locust gone {took:.2f}s after SIGKILL of ksentinel load")
        finally:
            if proc.poll() is None:
                proc.kill()
            for child in locust_processes(suite):  # on a failure: do not leave load running
                with contextlib.suppress(psutil.Error):
                    child.kill()
            proc.communicate(timeout=10)


# --- 2. `locust -f load/locustfile.py` on its own, stopped with SIGTERM ----------------------------


@pytest.mark.parametrize(
    ("profile", "index_lag", "slow_creates"),
    [
        # a staged profile (ramp, soak, spike): SIGTERM used to kill it on the spot
        ("staged", 0.0, 0.0),
        # a closed one against a busy target whose search index lags (a real Kaltura): users stopped
        # mid-create leave objects only a sweep finds, and only once the index lists them
        ("uploads", 1.0, 0.8),
    ],
    ids=["staged", "creates-in-flight-index-lag"],
)
def test_sigterm_of_a_direct_locust_run_cleans_up_what_it_created(
    tmp_path: Path, profile: str, index_lag: float, slow_creates: float
) -> None:
    suite = suite_copy(tmp_path)
    run_tag = f"runaway-{profile}-{os.getpid()}"
    with counted_reference(tmp_path, index_lag=index_lag, slow_creates=slow_creates) as (ref, proxy):
        env = clean_env(ref)
        env.update(
            KSENTINEL_URL=proxy.url,
            KSENTINEL_PARTNER_ID=str(ref.p1.id),
            KSENTINEL_LOAD_PROFILE=profile,
            KSENTINEL_LOAD_RUN_TAG=run_tag,
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(suite / "locustfile.py"), "--headless"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        try:
            wait_until_loading(ref, proxy, proc)
            time.sleep(1.0)  # uploads and browse seeds in flight
            assert any(store_leftovers(ref)), "the run should have entries or tokens by now"
            if slow_creates:  # stop it while the target has just created an object nobody knows of
                proxy.entry_held.clear()
                assert proxy.entry_held.wait(10), "no entry created within 10 s"
            proc.send_signal(signal.SIGTERM)
            stopped = time.monotonic()
            out, _ = proc.communicate(timeout=30)
            took = time.monotonic() - stopped
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
        assert proc.returncode >= 0, f"killed by signal {-proc.returncode}, no clean-up: {out[-3000:]}"
        assert "SLOs: " in out, out[-3000:]
        count = proxy.count
        time.sleep(max(0.5, index_lag * 1.5))  # no more requests; the search index catches up
        assert proxy.count == count, "requests reach the target after Locust exited"
        assert api_leftovers(ref, run_tag) == ([], []), api_leftovers(ref, run_tag)
        assert store_leftovers(ref) == ([], []), store_leftovers(ref)
    assert took < 15, f"{took:.1f}s"
    print(f"profile {profile}: exited {took:.2f}s after SIGTERM with code {proc.returncode}")


# --- 3. the portable half of the lifeline alone (no parent-death signal) --------------------------

PARENT = """
import os, subprocess, sys, time
from ksentinel.load.lifeline import ENV_LIFELINE, Lifeline
line = Lifeline()
env = {**os.environ, **line.env}
if sys.argv[2] == "pid-only":
    env[ENV_LIFELINE] = str(os.getpid())
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[3]], env=env, pass_fds=line.pass_fds)
time.sleep(60)
"""

CHILD = """
import os, signal, sys
from pathlib import Path
from ksentinel.load import lifeline
lifeline.arm_parent_death_signal = lambda signum=signal.SIGTERM: False  # the portable watch alone
line = lifeline.attach()
assert line is not None and not line.armed
out = Path(sys.argv[1])
out.with_suffix(".ready").write_text(str(os.getpid()))

def broken():
    out.write_text("parent gone")
    os._exit(0)

lifeline.watch(line, broken, stopping=lambda: False)
"""


@pytest.mark.parametrize("mode", ["pipe", "pid-only"])
def test_the_watch_alone_notices_the_parents_death(tmp_path: Path, mode: str) -> None:
    """Without the parent-death signal (not Linux): the pipe's end of file, or the parent pid."""
    out = tmp_path / "child.out"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD, mode, str(out)], cwd=tmp_path)
    ready = out.with_suffix(".ready")
    try:
        assert wait_for(ready.exists, 20), "the child did not start"
        time.sleep(0.3)
        assert not out.exists(), "the watch fired while its parent lives"
        parent.kill()
        killed = time.monotonic()
        parent.wait(timeout=5)
        assert wait_for(out.exists, 5), "the child did not notice its parent's death"
        print(f"{mode}: noticed in {time.monotonic() - killed:.2f}s")
    finally:
        if parent.poll() is None:
            parent.kill()
        if ready.exists() and not out.exists():  # the child is still running (the test failed)
            with contextlib.suppress(psutil.Error, ValueError):
                child = psutil.Process(int(ready.read_text()))
                if str(out) in child.cmdline():
                    child.kill()


def test_a_direct_locust_run_refuses_a_production_target_without_the_opt_in(tmp_path: Path) -> None:
    """`ksentinel load` has --allow-production; a direct locust run needs KSENTINEL_LOAD_ALLOW_PRODUCTION=1."""
    suite = suite_copy(tmp_path)
    with counted_reference(tmp_path) as (ref, proxy):
        env = clean_env(ref)
        env.update(
            KSENTINEL_URL=proxy.url,
            KSENTINEL_PARTNER_ID=str(ref.p1.id),
            KSENTINEL_ENVIRONMENT="production",
            KSENTINEL_LOAD_PROFILE="staged",
        )
        proc = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(suite / "locustfile.py"), "--headless"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "production target" in proc.stderr and "KSENTINEL_LOAD_ALLOW_PRODUCTION=1" in proc.stderr
        assert proxy.count == 0, "a refused run sent requests"


def test_ksentinel_load_with_allow_production_lets_its_locust_children_run(tmp_path: Path) -> None:
    suite = suite_copy(tmp_path)
    with counted_reference(tmp_path) as (ref, proxy):
        common = [sys.executable, "-m", "ksentinel.load", "--url", proxy.url, "--partner-id", str(ref.p1.id)]
        command = [*common, "--suite", str(suite), "--profile", "brief", "--environment", "production"]
        refused = subprocess.run(
            command, capture_output=True, text=True, env=clean_env(ref), cwd=tmp_path, timeout=60
        )
        assert refused.returncode == 2 and "--allow-production" in refused.stderr, refused.stderr[-2000:]
        assert proxy.count == 0
        allowed = subprocess.run(
            [*command, "--allow-production"],
            capture_output=True,
            text=True,
            env=clean_env(ref),
            cwd=tmp_path,
            timeout=120,
        )
        out = allowed.stdout + allowed.stderr
        assert "production target" not in out, out[-3000:]
        assert proxy.count > 0, out[-3000:]  # the children were let through and loaded the target
