"""Environments, the request-rate cap and backing off from throttling (issue 14; docs/production.md).

The throttling answers come from a tiny stub ``http.server`` on loopback: the reference platform
never answers 429, 503 with Retry-After or ACTION_BLOCKED, and reference/ is not changed for it.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ksentinel.cli_target import TargetSelection, config_group, target_options
from ksentinel.config import Config, Secret, Target, load_config, resolve_target
from ksentinel.errors import ConfigError
from ksentinel.flows import Credentials, Sessions, all_flows
from ksentinel.kaltura.api import Backoff, KalturaApi
from ksentinel.kaltura.codes import bounded_code
from ksentinel.kaltura.transport import (
    HttpRequest,
    HttpxTransport,
    TokenBucket,
    TransportTimeout,
    clear_rate_limits,
    rate_limit_for,
)
from ksentinel.probe.config import PROBE_OPTIONS, Pair
from ksentinel.probe.metrics import ProbeMetrics
from ksentinel.probe.once import PassResult, render_table
from ksentinel.probe.run import ProbeTarget, Run
from ksentinel.probe.targets import read_only_pairs
from tests.conftest import Reference

ADMIN = "0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def _no_caps_left_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import os

    for name in list(os.environ):
        if name.startswith("KSENTINEL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no ksentinel.toml found walking up
    clear_rate_limits()
    yield
    clear_rate_limits()


# --- a stub Kaltura on loopback ---------------------------------------------------------------------


@dataclass
class Stub:
    """A loopback HTTP server: ``answer(path, n)`` gives (status, headers, body) for the n-th request
    (from 1) to ``path``; every request is recorded with its arrival time."""

    answer: Callable[[str, int], tuple[int, dict[str, str], bytes]]  # (path, n) -> status, headers, body
    hits: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def count(self, path_part: str = "") -> int:
        with self.lock:
            return sum(1 for _, path in self.hits if path_part in path)

    def times(self, path_part: str = "") -> list[float]:
        with self.lock:
            return [at for at, path in self.hits if path_part in path]


Answer = Callable[[str, int], tuple[int, dict[str, str], bytes]]


@contextlib.contextmanager
def _serve(stub: Stub) -> Iterator[Stub]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            with stub.lock:
                stub.hits.append((time.monotonic(), self.path))
                n = sum(1 for _, path in stub.hits if path == self.path)
            status, headers, body = stub.answer(self.path, n)
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


LIST_OK = _json({"objectType": "KalturaBaseEntryListResponse", "objects": [], "totalCount": 0})
ENTRY_OK = _json({"objectType": "KalturaMediaEntry", "id": "0_stub0001", "name": "x"})
BLOCKED = _json(
    {"objectType": "KalturaAPIException", "code": "ACTION_BLOCKED", "message": "Action blocked", "args": []}
)


@pytest.fixture
def stub_server() -> Iterator[Callable[[Answer], Stub]]:
    """Start stub servers (as many as a test wants); all stop when the test ends."""
    with contextlib.ExitStack() as stack:
        yield lambda answer: stack.enter_context(_serve(Stub(answer)))


# --- 3. environments: parsing, defaults, errors, overrides --------------------------------------------


TOML = """
default_target = "stage"

[targets.prod]
url = "https://api.example.com"
partner_id = 1
admin_secret_env = "PROD_SECRET"
environment = "production"
allow_writes = true
max_rps = 5

[targets.prodcap]
url = "https://api.example.com"
partner_id = 2
admin_secret_env = "PROD_SECRET"
environment = "production"

[targets.stage]
url = "https://staging.example.com"
partner_id = 3
admin_secret_env = "PROD_SECRET"

[targets.local]
url = "http://127.0.0.1:8000"
partner_id = 4
admin_secret_env = "PROD_SECRET"

[targets.fast]
url = "https://staging.example.com"
partner_id = 5
admin_secret_env = "PROD_SECRET"
max_rps = "unlimited"

[targets.lab]
url = "https://lab.example.com"
partner_id = 6
admin_secret_env = "PROD_SECRET"
environment = "test"
"""
ENV = {"PROD_SECRET": ADMIN}


def _config(tmp_path: Path, text: str = TOML) -> Config:
    (tmp_path / "ksentinel.toml").write_text(text)
    return load_config(cwd=tmp_path, environ={})


def _resolve(
    config: Config, name: str | None = None, env: dict[str, str] | None = None, **kw: object
) -> Target:
    target = resolve_target(config, target=name, environ={**ENV, **(env or {})}, **kw).target  # type: ignore[arg-type]
    assert target is not None
    return target


def test_environment_allow_writes_and_max_rps_are_parsed_with_their_defaults(tmp_path: Path) -> None:
    config = _config(tmp_path)
    prod = _resolve(config, "prod")
    assert (prod.environment, prod.allow_writes, prod.max_rps) == ("production", True, 5.0)
    assert prod.production and prod.writes_allowed
    capped = _resolve(config, "prodcap")
    assert (capped.environment, capped.allow_writes, capped.max_rps) == ("production", False, 10.0)
    assert not capped.writes_allowed
    stage = _resolve(config, "stage")  # no environment: staging, 10 requests/s
    assert (stage.environment, stage.allow_writes, stage.max_rps) == ("staging", False, 10.0)
    assert stage.writes_allowed  # allow_writes matters on production only
    assert _resolve(config, "local").max_rps is None  # staging on loopback: a platform on this machine
    assert _resolve(config, "fast").max_rps is None  # "unlimited"
    lab = _resolve(config, "lab")
    assert (lab.environment, lab.max_rps) == ("test", None)
    adhoc = resolve_target(
        Config(),
        url="https://adhoc.example.com",
        partner_id=9,
        environ=ENV | {"KSENTINEL_ADMIN_SECRET": ADMIN},
    ).target
    assert adhoc is not None and (adhoc.environment, adhoc.allow_writes, adhoc.max_rps) == (
        "staging",
        False,
        10.0,
    )
    embedded = Target.for_reference("http://127.0.0.1:5000", 101, ADMIN)
    assert (embedded.environment, embedded.allow_writes, embedded.max_rps) == ("test", False, None)
    # another engineer's contract code reads these by name
    assert prod.environment == "production" and hasattr(prod, "max_rps")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            'environment = "prod"',
            'targets.t.environment: expected one of "production", "staging", "test", got "prod"; '
            "did you mean 'production'?",
        ),
        ("environment = 1", 'targets.t.environment: expected one of "production", "staging", "test", got 1'),
        ('allow_writes = "yes"', 'targets.t.allow_writes: expected true or false, got "yes"'),
        (
            "max_rps = 0",
            'targets.t.max_rps: expected requests per second > 0 (at most 100000) or "unlimited", got 0',
        ),
        ("max_rps = -2.5", "targets.t.max_rps: expected requests per second > 0"),
        (
            'max_rps = "fast"',
            'targets.t.max_rps: expected requests per second > 0 (at most 100000) or "unlimited", got "fast"',
        ),
        ("max_rps = true", "targets.t.max_rps: expected requests per second > 0"),
        ("max_rpss = 3", "targets.t.max_rpss: unknown key; did you mean 'max_rps'?"),
    ],
)
def test_bad_values_are_one_line_errors(tmp_path: Path, line: str, message: str) -> None:
    text = f'[targets.t]\nurl = "https://x.example.com"\npartner_id = 1\n{line}\n'
    with pytest.raises(ConfigError) as info:
        _config(tmp_path, text)
    text_of = str(info.value)
    assert "\n" not in text_of
    assert text_of.startswith(f"{tmp_path / 'ksentinel.toml'}: {message}")


def test_environment_overrides_come_from_env_and_the_flag(tmp_path: Path) -> None:
    config = _config(tmp_path)
    resolved = resolve_target(config, target="stage", environ={**ENV, "KSENTINEL_ENVIRONMENT": "production"})
    target = resolved.target
    assert target is not None and target.environment == "production" and target.max_rps == 10.0
    assert resolved.sources["environment"] == "env KSENTINEL_ENVIRONMENT"
    # test: no cap by default; the flag beats the variable
    flagged = resolve_target(
        config, target="stage", environ={**ENV, "KSENTINEL_ENVIRONMENT": "production"}, environment="test"
    )
    assert flagged.target is not None and (flagged.target.environment, flagged.target.max_rps) == (
        "test",
        None,
    )
    assert flagged.sources["environment"] == "flag --environment"
    assert flagged.sources["max_rps"] == "default for test"
    other = _resolve(config, "prodcap", {"KSENTINEL_MAX_RPS": "2.5", "KSENTINEL_ALLOW_WRITES": "yes"})
    assert (other.max_rps, other.allow_writes) == (2.5, True)
    assert _resolve(config, "prod", {"KSENTINEL_MAX_RPS": "unlimited"}).max_rps is None
    for env, message in (
        ({"KSENTINEL_ENVIRONMENT": "prod"}, "env KSENTINEL_ENVIRONMENT: expected one of"),
        ({"KSENTINEL_MAX_RPS": "0"}, "env KSENTINEL_MAX_RPS: expected requests per second > 0"),
        (
            {"KSENTINEL_ALLOW_WRITES": "perhaps"},
            'env KSENTINEL_ALLOW_WRITES: expected true or false, got "perhaps"',
        ),
    ):
        with pytest.raises(ConfigError, match="^" + message):
            resolve_target(config, target="stage", environ={**ENV, **env})
    with pytest.raises(ConfigError, match=r"^--environment: expected one of"):
        resolve_target(config, target="stage", environ=ENV, environment="live")
    with pytest.raises(ConfigError, match=r"^--environment needs a target"):
        resolve_target(Config(), environ={}, environment="production")
    # the variable alone does not touch the embedded platform, which is always a test target
    assert resolve_target(Config(), environ={"KSENTINEL_ENVIRONMENT": "production"}).target is None


def test_resolving_a_target_installs_its_cap_in_the_http_seam(tmp_path: Path) -> None:
    config = _config(tmp_path)
    _resolve(config, "prod")
    bucket = rate_limit_for("https://api.example.com/api_v3/service/system/action/ping")
    assert bucket is not None and bucket.rate == 5.0
    _resolve(config, "fast")  # unlimited: no cap on its origin
    assert rate_limit_for("https://staging.example.com/x") is None


def test_config_show_shows_environment_allow_writes_and_max_rps(tmp_path: Path) -> None:
    _config(tmp_path)
    from ksentinel.cli import main

    main.add_command(config_group)
    runner = CliRunner()
    result = runner.invoke(main, ["config", "show", "--target", "prodcap"], env=ENV)
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert rows["environment"].split()[1] == "production" and "[targets.prodcap]" in rows["environment"]
    assert rows["allow_writes"].split()[1] == "false"
    assert rows["max_rps"].split()[1] == "10" and "(default for production)" in rows["max_rps"]
    result = runner.invoke(main, ["config", "show", "--target", "stage", "--environment", "test"], env=ENV)
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert rows["environment"].endswith("(flag --environment)") and rows["max_rps"].split()[1] == "unlimited"
    result = runner.invoke(main, ["config", "show", "--target", "stage", "--environment", "qa"], env=ENV)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith('ksentinel: error: --environment: expected one of "production"')


def test_target_options_pass_the_environment_flag_only() -> None:
    seen: list[TargetSelection] = []

    @click.command()
    @target_options
    def command(selection: TargetSelection) -> None:
        seen.append(selection)

    runner = CliRunner()
    assert runner.invoke(command, ["--environment", "staging"]).exit_code == 0
    assert runner.invoke(command, [], env={"KSENTINEL_ENVIRONMENT": "production"}).exit_code == 0
    assert seen == [TargetSelection(environment="staging"), TargetSelection()]


# --- flows say whether they write; probes on production run read-only ones -----------------------------


def test_every_flow_says_whether_it_writes() -> None:
    writes = {name: flow.writes for name, flow in all_flows().items()}
    assert writes == {
        "browse": True,
        "cache": True,
        "delete": True,
        "list": True,
        "multirequest": True,
        "session": False,
        "upload": True,
    }


def _probe_target(url: str, **kw: object) -> ProbeTarget:
    target = Target(name=str(kw.pop("name", "t")), url=url, partner_id=101, admin_secret=Secret(ADMIN), **kw)  # type: ignore[arg-type]
    return ProbeTarget(target, Credentials(101, ADMIN))


def test_production_without_allow_writes_schedules_read_only_flows_only() -> None:
    targets = {
        "prod": _probe_target("https://api.example.com", name="prod", environment="production"),
        "open": _probe_target(
            "https://api.example.com", name="open", environment="production", allow_writes=True
        ),
        "stage": _probe_target("https://staging.example.com", name="stage", environment="staging"),
    }
    try:
        pairs = [Pair(t, f, 60, 30) for t in targets for f in ("session", "upload", "cache")]
        kept, skipped = read_only_pairs(pairs, targets)
        assert [(p.target, p.flow) for p in kept] == [
            ("prod", "session"),
            ("open", "session"),
            ("open", "upload"),
            ("open", "cache"),
            ("stage", "session"),
            ("stage", "upload"),
            ("stage", "cache"),
        ]
        assert skipped == {"prod": ["upload", "cache"]}
        # a run asked for directly (/probe) is refused too, before any request
        outcome = Run(targets["prod"], "upload", 5.0, PROBE_OPTIONS).execute()
        assert outcome.result == "error" and "production without allow_writes" in outcome.reason
        assert outcome.steps == []
    finally:
        for probe_target in targets.values():
            probe_target.close()


def test_probe_run_once_on_production_runs_only_read_only_flows(
    fresh_reference: Reference, tmp_path: Path
) -> None:
    from ksentinel.probe.command import probe_group

    ref = fresh_reference
    (tmp_path / "ksentinel.toml").write_text(
        f'[targets.prod]\nurl = "{ref.url}"\npartner_id = {ref.p1.id}\nenvironment = "production"\n'
    )
    env = {"KSENTINEL_ADMIN_SECRET": ref.p1.admin_secret}
    runner = CliRunner()
    result = runner.invoke(
        probe_group, ["run", "--once", "--target", "prod"], env=env, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    flows_run = {line.split()[1] for line in result.output.splitlines() if line.startswith("prod ")}
    assert flows_run == {"session"}
    assert (
        "prod: production target without allow_writes: read-only flows only; "
        "not run: upload, list, delete, cache (they write)"
    ) in result.output
    # nothing was written: the partner has no entries at all
    with KalturaApi(ref.url, partner_id=ref.p1.id) as api:
        admin = api.with_ks(Sessions(Credentials(ref.p1.id, ref.p1.admin_secret)).admin())
        assert int(admin.call("baseEntry", "count", filter={"objectType": "KalturaBaseEntryFilter"})) == 0
    # only writing flows asked for: nothing to run, one line, exit 2
    result = runner.invoke(probe_group, ["run", "--target", "prod", "--flow", "upload"], env=env)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "nothing to probe" in result.stderr


# --- load refuses production without --allow-production --------------------------------------------


def test_load_refuses_a_production_target_without_allow_production(tmp_path: Path) -> None:
    from ksentinel.load.command import load_command, refuse_production

    _config(tmp_path)
    result = CliRunner().invoke(load_command, ["--target", "prodcap"], env=ENV)
    assert result.exit_code == 2
    assert result.stderr == (
        "ksentinel: error: target 'prodcap' is a production target: ksentinel load refuses to load-test it "
        "without --allow-production\n"
    )
    refuse_production(_resolve(load_config(cwd=tmp_path, environ={}), "prodcap"), True)  # allowed
    refuse_production(_resolve(load_config(cwd=tmp_path, environ={}), "stage"), False)  # not production
    refuse_production(None, False)  # the embedded platform


# --- 4. the rate cap ------------------------------------------------------------------------------------


def test_the_bucket_caps_a_burst_to_a_loopback_server(stub_server: Callable[..., Stub]) -> None:
    stub = stub_server(lambda path, n: (200, {}, b"true"))
    rate, calls = 20.0, 30
    bucket = TokenBucket(rate)
    transport = HttpxTransport(rate_limit=bucket)
    request = HttpRequest("POST", f"{stub.url}/api_v3/service/system/action/ping", {}, b"{}", 10.0)
    started = time.monotonic()
    threads = [
        threading.Thread(target=lambda: [transport.send(request) for _ in range(calls // 6)])
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    elapsed = time.monotonic() - started
    transport.close()
    assert stub.count() == calls and bucket.granted == calls
    # the bucket's own accounting: 6 threads queue for slots, so most requests waited for theirs
    assert bucket.delayed >= calls // 2
    assert bucket.granted <= bucket.burst + rate * elapsed  # the cap, as the bucket sees it
    # the server's count: never much more than rate x span (+ the one saved token and slack)
    first = min(stub.times())
    in_first_half_second = sum(1 for at in stub.times() if at - first < 0.5)
    assert in_first_half_second <= 1 + rate * 0.5 + 8  # uncapped, all 30 arrive within ~0.1 s
    assert elapsed >= (calls - 1) / rate * 0.8  # a lower bound only: sleeping never takes less


def test_the_registered_cap_applies_to_default_transports(stub_server: Callable[..., Stub]) -> None:
    stub = stub_server(lambda path, n: (200, {}, b"true"))
    config = Config(targets={})
    target = resolve_target(
        config,
        url=stub.url,
        partner_id=101,
        environ={"KSENTINEL_ADMIN_SECRET": ADMIN, "KSENTINEL_ENVIRONMENT": "production"},
    ).target
    assert target is not None and target.max_rps == 10.0  # production on loopback is still capped
    bucket = rate_limit_for(stub.url)
    assert bucket is not None
    with KalturaApi(stub.url, partner_id=101) as api:  # what the contract suite builds
        for _ in range(3):
            assert api.call("system", "ping") is True
    assert bucket.granted == 3 and stub.count() == 3


def test_no_slot_within_the_timeout_is_a_timeout_and_nothing_is_sent(
    stub_server: Callable[..., Stub],
) -> None:
    stub = stub_server(lambda path, n: (200, {}, b"true"))
    transport = HttpxTransport(rate_limit=TokenBucket(0.2))  # one request every 5 s
    request = HttpRequest("POST", f"{stub.url}/api_v3/service/system/action/ping", {}, b"{}", 0.5)
    transport.send(request)
    with pytest.raises(TransportTimeout, match="rate cap"):
        transport.send(request)
    transport.close()
    assert stub.count() == 1


def test_the_bucket_accounting_with_a_fake_clock() -> None:
    now = [0.0]
    bucket = TokenBucket(4.0, clock=lambda: now[0], sleep=lambda s: None)
    waits = [bucket.reserve() for _ in range(5)]
    assert waits == [0.0, 0.25, 0.5, 0.75, 1.0]
    now[0] = 10.0  # idle: at most `burst` tokens saved up
    assert [bucket.reserve(), bucket.reserve()] == [0.0, 0.25]
    assert bucket.reserve(max_wait=0.1) is None and bucket.granted == 7


# --- 4. backing off: 429, 503 + Retry-After, ACTION_BLOCKED -------------------------------------------


def _recording(sleeps: list[float]) -> Backoff:
    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    return Backoff(sleep=sleep)


def test_a_read_is_retried_after_retry_after(stub_server: Callable[..., Stub]) -> None:
    def answer(path: str, n: int) -> tuple[int, dict[str, str], bytes]:
        if n == 1:
            return 429, {"Retry-After": "1"}, b"Too Many Requests"
        return 200, {}, LIST_OK

    stub = stub_server(answer)
    sleeps: list[float] = []
    with KalturaApi(stub.url, partner_id=101, backoff=_recording(sleeps)) as api:
        result = api.call("baseEntry", "list", filter={"objectType": "KalturaBaseEntryFilter"})
    assert result["totalCount"] == 0
    assert sleeps == [1.0] and stub.count("baseentry/action/list") == 2
    first, second = stub.times()
    assert second - first >= 0.9  # after the delay the server asked for


def test_a_write_is_not_retried_after_429(stub_server: Callable[..., Stub]) -> None:
    stub = stub_server(lambda path, n: (429, {"Retry-After": "1"}, b"Too Many Requests"))
    sleeps: list[float] = []
    with KalturaApi(stub.url, partner_id=101, backoff=_recording(sleeps)) as api:
        response = api.call_raw("baseEntry", "add", entry={"objectType": "KalturaMediaEntry", "mediaType": 1})
    assert response.error is not None and response.error.code == "HTTP_429"
    assert "not retried: baseEntry.add writes" in response.error.message
    assert sleeps == [] and stub.count() == 1


def test_503_with_retry_after_has_its_own_code_and_a_read_is_retried(
    stub_server: Callable[..., Stub],
) -> None:
    def answer(path: str, n: int) -> tuple[int, dict[str, str], bytes]:
        if "count" in path:
            return (503, {"Retry-After": "0"}, b"busy") if n == 1 else (200, {}, b"0")
        return 503, {"Retry-After": "0"}, b"busy"

    stub = stub_server(answer)
    with KalturaApi(stub.url, partner_id=101) as api:
        assert api.call("baseEntry", "count") == 0
        response = api.call_raw("baseEntry", "delete", entryId="0_x")
    assert response.error is not None and response.error.code == "HTTP_503_RETRY_AFTER"
    assert stub.count("count") == 2 and stub.count("delete") == 1
    assert bounded_code("HTTP_503_RETRY_AFTER") == "HTTP_503_RETRY_AFTER"


def test_action_blocked_proves_a_single_write_did_not_run(stub_server: Callable[..., Stub]) -> None:
    def answer(path: str, n: int) -> tuple[int, dict[str, str], bytes]:
        if "multirequest" in path:
            return 200, {}, BLOCKED
        return (200, {}, BLOCKED) if n == 1 else (200, {}, ENTRY_OK)

    stub = stub_server(answer)
    sleeps: list[float] = []
    backoff = Backoff(first_delay=0.05, sleep=sleeps.append)
    with KalturaApi(stub.url, partner_id=101, backoff=backoff) as api:
        entry = api.call("baseEntry", "add", entry={"objectType": "KalturaMediaEntry", "mediaType": 1})
        assert entry["id"] == "0_stub0001" and len(sleeps) == 1
        mr = api.multirequest()
        mr.add("baseEntry", "add", entry={"objectType": "KalturaMediaEntry", "mediaType": 1})
        response = mr.execute_raw()
    assert response.error is not None and response.error.code == "ACTION_BLOCKED"
    assert "not retried" in response.error.message and stub.count("multirequest") == 1


def test_backoff_is_bounded_and_says_why_it_gave_up(stub_server: Callable[..., Stub]) -> None:
    stub = stub_server(lambda path, n: (429, {"Retry-After": "120"}, b"slow down"))
    with KalturaApi(stub.url, partner_id=101) as api:
        started = time.monotonic()
        response = api.call_raw("baseEntry", "list")
    assert time.monotonic() - started < 5  # a 120 s Retry-After is beyond the 60 s budget: no wait
    assert response.error is not None and response.error.code == "HTTP_429"
    assert (
        "gave up after 0 retries" in response.error.message and "60s backoff budget" in response.error.message
    )
    assert stub.count() == 1
    # retries are counted too: ACTION_BLOCKED forever on a read
    blocked = stub_server(lambda path, n: (200, {}, BLOCKED))
    sleeps: list[float] = []
    backoff = Backoff(max_retries=3, first_delay=0.01, sleep=sleeps.append)
    with KalturaApi(blocked.url, partner_id=101, backoff=backoff) as api:
        response = api.call_raw("baseEntry", "get", entryId="0_x")
    assert response.error is not None and "gave up after 3 retries" in response.error.message
    assert len(sleeps) == 3 and blocked.count() == 4


def test_a_load_transport_does_not_back_off() -> None:
    class Locustish:  # any transport but the HTTP seam: Locust's measures throttling instead
        def send(self, request: HttpRequest) -> object:
            raise AssertionError("not sent")

    assert KalturaApi("https://x.example.com", transport=Locustish()).backoff is None  # type: ignore[arg-type]
    assert KalturaApi("https://x.example.com").backoff is not None


# --- ACTION_BLOCKED in the probe's metrics ---------------------------------------------------------


def test_action_blocked_is_its_own_code_in_the_probe_metrics(stub_server: Callable[..., Stub]) -> None:
    assert bounded_code("ACTION_BLOCKED") == "ACTION_BLOCKED"
    # the platform blocks everything and asks for more patience than the run has: no retry
    stub = stub_server(lambda path, n: (200, {"Retry-After": "90"}, BLOCKED))
    probe_target = _probe_target(stub.url, name="blocked")
    try:
        outcome = Run(probe_target, "session", 5.0, PROBE_OPTIONS).execute()
    finally:
        probe_target.close()
    assert outcome.result == "error" and outcome.code == "ACTION_BLOCKED"  # throttled: not tested
    assert outcome.failed_step == "session.start" and stub.count() == 1
    metrics = ProbeMetrics(process=False)
    metrics.configure([Pair("blocked", "session", 60.0, 5.0)])
    metrics.record(outcome)
    text = metrics.text()
    assert (
        'ksentinel_api_errors_total{code="ACTION_BLOCKED",flow="session",step="session.start",target="blocked"} 1.0'
        in text
    )
    assert 'code="OTHER"' not in text


def test_a_probe_run_backs_off_and_says_so(stub_server: Callable[..., Stub]) -> None:
    def answer(path: str, n: int) -> tuple[int, dict[str, str], bytes]:
        if "session/action/start" in path:  # a KS-shaped string is all the flow checks
            return 200, {}, _json("djJ8MTAxfAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        if n == 1:
            return 429, {"Retry-After": "0"}, b"slow down"
        return 200, {}, _json({"objectType": "KalturaSessionInfo", "partnerId": 999})

    stub = stub_server(answer)
    probe_target = _probe_target(stub.url, name="t")
    try:
        run = Run(probe_target, "session", 5.0, PROBE_OPTIONS, keep_log=True)
        outcome = run.execute()
    finally:
        probe_target.close()
    assert stub.count("session/action/get") == 2  # the read was retried once, then answered
    assert [(e.code, e.call, e.retry_after) for e in outcome.backoffs] == [("HTTP_429", "session.get", True)]
    assert outcome.failed_step == "session.get"  # the stub's answer names another partner
    assert any("backing off: HTTP_429 on session.get: retry 1" in line for line in run.log)
    table = render_table(PassResult([outcome]))
    assert "t/session backed off: 1 retry, 0.0s waited (HTTP_429 on session.get)" in table
