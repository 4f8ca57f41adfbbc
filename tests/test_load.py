"""Load runs judged by SLOs: the [slo] section, profiles, the Locust transport, the summary, the
exporter, and ``ksentinel load`` end to end against reference platforms on loopback.

Locust is never imported here (it monkey-patches the standard library): the engine-side modules are
pure, and every run is a subprocess.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from ksentinel.config import Target
from ksentinel.errors import ConfigError, FlowFailure, KalturaApiError
from ksentinel.flows import Credentials, FlowContext, Sessions, all_flows
from ksentinel.kaltura.api import KalturaApi
from ksentinel.kaltura.redact import looks_like_ks
from ksentinel.kaltura.transport import STEP_LABEL, TransportConnectionError
from ksentinel.load.arrival import ArrivalSchedule
from ksentinel.load.failures import KNOWN_CODES, OTHER, LoadFailure, bounded_code, code_of_error
from ksentinel.load.metrics import LoadCollector
from ksentinel.load.profiles import Stage, load_profiles, parse_profiles
from ksentinel.load.settings import LoadSettings
from ksentinel.load.summary import build_summary
from ksentinel.load.transport import CHECK_TYPE, FLOW_TYPE, LocustTransport
from ksentinel.load.verdict import evaluate, exit_code, render_table
from ksentinel.slo import SloSpec, merge_slo, parse_duration, parse_slo
from tests.conftest import Reference, start_reference

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "load"
RUN_TIMEOUT = 150
FLOWS = all_flows()
KNOWN_FLOWS = tuple(FLOWS)
KNOWN_STEPS = tuple(step for f in FLOWS.values() for step in f.steps)


# --- [slo] ------------------------------------------------------------------------------------------


def test_slo_defaults_when_absent() -> None:
    spec = parse_slo({})
    assert spec == SloSpec()
    assert (spec.error_ratio, spec.min_throughput) == (0.01, 0.0)
    assert spec.step("browse.list").items() == [("p95", 0.5), ("p99", 1.0)]
    assert spec.step("upload.chunk").items() == [("p95", 1.0), ("p99", 2.0)], "steps moving content"
    assert spec.step("upload.content_match").items() == [("p95", 2.0), ("p99", 4.0)]
    flow = spec.flow("upload")
    assert (flow.availability, flow.latency_seconds, flow.window_seconds) == (0.99, 10.0, 30 * 86400)


def test_slo_steps_and_flows_fall_back_key_by_key() -> None:
    spec = parse_slo(
        {
            "error_ratio": 0.001,
            "min_throughput": 20,
            "default_step": {"p95": 0.3, "p99": 2.0},
            "steps": {
                "upload.chunk": {"p95": 1.5},
                "upload.wait_ready": {"p99": 5},
                "session.get": {"p95": 0.1},
            },
            "flows": {"upload": {"availability": 0.995}},
        },
        known_steps=KNOWN_STEPS,
        known_flows=KNOWN_FLOWS,
    )
    assert spec.step("upload.chunk").items() == [("p95", 1.5), ("p99", 2.0)]  # p99 built in
    assert spec.step("upload.wait_ready").items() == [("p95", 0.3), ("p99", 5.0)]
    assert spec.step("session.get").items() == [("p95", 0.1), ("p99", 2.0)]
    assert spec.step("browse.list").items() == [("p95", 0.3), ("p99", 2.0)]
    assert spec.flow("upload").availability == 0.995 and spec.flow("upload").window == "30d"
    assert spec.step("mysite.custom_step") == spec.default_step  # custom flows' steps are allowed


def test_profile_overrides_merge_over_the_config() -> None:
    base = {"error_ratio": 0.01, "steps": {"upload.chunk": {"p95": 1.0, "p99": 2.0}}}
    merged = merge_slo(base, {"steps": {"upload.chunk": {"p99": 3.0}}, "min_throughput": 5})
    assert merged == {
        "error_ratio": 0.01,
        "min_throughput": 5,
        "steps": {"upload.chunk": {"p95": 1.0, "p99": 3.0}},
    }


SLO_ERRORS = [
    ({"eror_ratio": 0.1}, "ksentinel.toml: slo.eror_ratio: unknown key; did you mean 'error_ratio'?"),
    (
        {"error_ratio": 5},
        "ksentinel.toml: slo.error_ratio: expected a ratio between 0 and 1 (0.01 = 1%), got 5",
    ),
    ({"error_ratio": "1%"}, 'ksentinel.toml: slo.error_ratio: expected a number, got "1%"'),
    ({"min_throughput": -1}, "ksentinel.toml: slo.min_throughput: expected a number >= 0, got -1"),
    ({"default_step": {"p90": 1}}, "ksentinel.toml: slo.default_step.p90: unknown key; did you mean 'p99'?"),
    ({"default_step": {"p95": 0}}, "ksentinel.toml: slo.default_step.p95: expected a number > 0, got 0"),
    (
        {"steps": {"upload.chunks": {"p95": 1}}},
        "ksentinel.toml: slo.steps.\"upload.chunks\": unknown step; did you mean 'upload.chunk'?",
    ),
    (
        {"steps": {"browse.get": {"p95": 3}}},
        'ksentinel.toml: slo.steps."browse.get": p99 (1s) must not be below p95 (3s) (the p99 is inherited: set it here too)',
    ),
    ({"steps": {"upload.chunk": 1}}, 'ksentinel.toml: slo.steps."upload.chunk": expected a table, got 1'),
    ({"flows": {"uplaod": {}}}, "ksentinel.toml: slo.flows.uplaod: unknown flow; did you mean 'upload'?"),
    (
        {"flows": {"upload": {"availability": 0}}},
        "ksentinel.toml: slo.flows.upload.availability: expected a number > 0, got 0",
    ),
    (
        {"flows": {"upload": {"window": "30 days"}}},
        "ksentinel.toml: slo.flows.upload.window: bad duration '30 days'",
    ),
    (
        {"default_flow": {"window": 30}},
        'ksentinel.toml: slo.default_flow.window: expected a duration like "30d", got 30',
    ),
]


@pytest.mark.parametrize(("raw", "message"), SLO_ERRORS)
def test_slo_validation_errors_are_one_line(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_slo(raw, known_steps=KNOWN_STEPS, known_flows=KNOWN_FLOWS)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_durations() -> None:
    assert parse_duration("30d") == 30 * 86400
    assert parse_duration("1h30m") == 5400
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration("soon")


# --- profiles ------------------------------------------------------------------------------------------


def test_shipped_profiles_are_valid() -> None:
    profiles = load_profiles(
        SUITE / "profiles.toml", known_flows=KNOWN_FLOWS, known_steps=KNOWN_STEPS
    ).profiles
    assert {"smoke", "ramp", "soak", "spike", "arrival"} <= set(profiles)
    smoke = profiles["smoke"]
    assert smoke.duration == 20 and not smoke.staged and smoke.users <= 10
    assert set(smoke.mix) == {"session", "upload", "browse"}
    for name in ("ramp", "soak", "spike"):
        assert profiles[name].staged, name
    assert profiles["arrival"].open and profiles["arrival"].arrival_rate > 0
    assert profiles["soak"].slo == {"error_ratio": 0.001}


def test_overrides_scale_a_staged_profile() -> None:
    (ramp,) = parse_profiles(
        {
            "profiles": {
                "ramp": {
                    "stages": [
                        {"duration": "1m", "users": 10, "spawn_rate": 2},
                        {"duration": "1m", "users": 50, "spawn_rate": 5},
                    ]
                }
            }
        }
    ).values()
    scaled = ramp.with_overrides(users=500, run_time=600)
    assert scaled.stages == (Stage(300.0, 100, 20.0), Stage(300.0, 500, 50.0))
    assert scaled.duration == 600 and scaled.peak_users == 500


PROFILE_ERRORS = [
    ("[profiles.smoke]\nuser = 3\n", "profiles.smoke.user: unknown key; did you mean 'users'?"),
    ("[profiles.smoke]\nusers = 0\n", "profiles.smoke.users: expected an integer >= 1, got 0"),
    ('[profiles.smoke]\nrun_time = "soon"\n', 'profiles.smoke.run_time: bad duration "soon"'),
    (
        "[profiles.smoke]\nmix = { uplaod = 1 }\n",
        "profiles.smoke.mix.uplaod: unknown flow; did you mean 'upload'?",
    ),
    (
        "[profiles.smoke]\nmix = { upload = 0 }\n",
        "profiles.smoke.mix: give at least one flow a weight above 0",
    ),
    ('[profiles.smoke]\nmodel = "opn"\n', 'profiles.smoke.model: expected "closed" or "open", got "opn"'),
    (
        '[profiles.a]\nmodel = "open"\n',
        "profiles.a: an open-model profile needs arrival_rate (flows per second)",
    ),
    ("[profiles.a]\nstages = [{ users = 3 }]\n", "profiles.a.stages[0]: missing required key 'duration'"),
    (
        "[profiles.a]\nchunk_bytes = 10\nupload_bytes = 5\n",
        "profiles.a.chunk_bytes: 10 is larger than upload_bytes (5)",
    ),
    ("[profiles.a]\nwait = [2, 1]\n", "profiles.a.wait: the maximum 1 is below the minimum 2"),
    ("[profiles.a]\nready_timeout = 0\n", "profiles.a.ready_timeout: expected a number > 0, got 0"),
    (
        "[profiles.a.slo]\nerror_ration = 1\n",
        "profiles.a.slo.error_ration: unknown key; did you mean 'error_ratio'?",
    ),
    ("[profile.a]\n", "profile: unknown key; did you mean 'profiles'?"),
    (
        '[profiles.a]\noptional_flows = ["uplaod"]\n',
        "profiles.a.optional_flows[0]: unknown flow \"uplaod\"; did you mean 'upload'?",
    ),
    (
        '[profiles.a]\noptional_flows = "upload"\n',
        'profiles.a.optional_flows: expected an array of flow names (e.g. ["upload"]), got "upload"',
    ),
    (
        "[profiles.a]\noptional_flow = []\n",
        "profiles.a.optional_flow: unknown key; did you mean 'optional_flows'?",
    ),
    ("[profiles.a\n", "not valid TOML"),
]


@pytest.mark.parametrize(("text", "message"), PROFILE_ERRORS)
def test_profile_validation_errors_are_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "profiles.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_profiles(path, known_flows=KNOWN_FLOWS, known_steps=KNOWN_STEPS)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_profiles_ready_timeout_wins_else_the_targets_applies() -> None:
    profiles = parse_profiles(
        {
            "defaults": {"mix": {"upload": 1}},
            "profiles": {"inherits": {}, "bounded": {"ready_timeout": 45}},
        },
        known_flows=KNOWN_FLOWS,
    )
    remote = Target("remote", "https://kaltura.example.com", 101, ready_timeout=240.0)
    assert profiles["inherits"].ready_timeout is None
    assert profiles["inherits"].flow_options(remote).ready_timeout == 240.0
    assert profiles["bounded"].flow_options(remote).ready_timeout == 45.0
    options = profiles["inherits"].flow_options(Target.for_reference("http://127.0.0.1:1", 101, "s" * 32))
    assert options.ready_timeout == 60.0
    assert (options.upload_bytes, options.chunk_bytes) == (256 * 1024, 64 * 1024)  # the rest is the profile's
    # the shipped profiles leave the bound to the target (ksentinel.toml ready_timeout)
    shipped = load_profiles(SUITE / "profiles.toml", known_flows=KNOWN_FLOWS, known_steps=KNOWN_STEPS)
    assert all(profile.ready_timeout is None for profile in shipped.profiles.values())


# A Locust process of `ksentinel load`: the environment the runner gives it, the profile and target
# from that environment, and one UploadUser's flow (ksentinel.load.users imports Locust: a subprocess).
_UPLOAD_USER = """
import json, sys
from pathlib import Path

from ksentinel.load.transport import FLOW_TYPE
from ksentinel.load.users import FlowUser, load_run
from locust.env import Environment

run = load_run(Path(sys.argv[1]), exit_on_error=False)
target = run.resolve_target()


class UploadUser(FlowUser):
    flow = "upload"
    host = target.url


flows = []
environment = Environment(user_classes=[UploadUser], host=target.url)
environment.events.request.add_listener(
    lambda request_type, name, exception, **_: flows.append(str(exception)) if request_type == FLOW_TYPE else None
)
user = UploadUser(environment)
user.run_one("upload")
print(json.dumps({"ready_timeout": user.ctx.options.ready_timeout, "flows": flows}))
"""


@pytest.mark.parametrize(("profile", "bound"), [("inherits", 0.5), ("bounded", 0.3)])
def test_a_locust_upload_user_waits_at_most_the_targets_ready_timeout_unless_the_profile_sets_one(
    tmp_path: Path, profile: str, bound: float
) -> None:
    from ksentinel.config import Config, Secret
    from ksentinel.flows import new_run_id
    from ksentinel.load.runner import _child_env

    profiles = tmp_path / "profiles.toml"
    profiles.write_text(
        "[defaults]\nmix = { upload = 1 }\nupload_bytes = 65536\nchunk_bytes = 65536\n"
        "[profiles.inherits]\n[profiles.bounded]\nready_timeout = 0.3\n"
    )
    with start_reference(tmp_path / "slow", ready_after=3.0) as ref:
        target = Target(
            "slow", ref.url, ref.p1.id, admin_secret=Secret(ref.p1.admin_secret), ready_timeout=0.5
        )
        settings = LoadSettings(profile=profile, profiles_path=profiles, run_tag=new_run_id())
        env = _child_env(target, settings, Config())
        assert env["KSENTINEL_READY_TIMEOUT"] == "0.5"
        proc = subprocess.run(
            [sys.executable, "-c", _UPLOAD_USER, str(profiles)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        seen = json.loads(proc.stdout.strip().splitlines()[-1])
        assert seen["ready_timeout"] == bound
        (failure,) = seen["flows"]
        assert re.search(
            rf"^CHECK: upload\.wait_ready: entry \S+ not READY after {bound:g} s \(ready_timeout\); "
            r"last status PRECONVERT \(1\)$",
            failure,
        ), failure
        assert ref.server.platform.store.all_entries() == [], "the entry is deleted after the failure"


def test_every_flow_of_a_closed_profile_gets_a_user_or_the_run_is_refused() -> None:
    (closed,) = parse_profiles(
        {"profiles": {"p": {"users": 6, "mix": {"session": 1, "upload": 1, "browse": 2}}}},
        known_flows=KNOWN_FLOWS,
    ).values()
    assert closed.flows == ("session", "upload", "browse")
    assert closed.user_counts() == {"session": 2, "upload": 1, "browse": 3}
    assert closed.user_counts(3) == {"session": 1, "upload": 1, "browse": 1}
    skewed = parse_profiles(
        {"profiles": {"p": {"users": 5, "mix": {"browse": 97, "session": 1, "upload": 2}}}}
    )
    assert skewed["p"].user_counts() == {"browse": 3, "session": 1, "upload": 1}, "one each, then by weight"
    assert sum(skewed["p"].user_counts(1000).values()) == 1000
    closed.check_users(3)
    with pytest.raises(ConfigError) as caught:
        closed.with_overrides(users=1).check_users()
    assert str(caught.value) == (
        "profile p: 1 user cannot run its 3 flows (session, upload, browse): every flow needs a user of "
        "its own; use --users 3 or more, or take flows out of the mix"
    )
    staged = parse_profiles(
        {"profiles": {"s": {"stages": [{"duration": "1m", "users": 10}, {"duration": "1m", "users": 2}]}}}
    )["s"]
    staged.check_users()  # the peak gives every flow a user
    with pytest.raises(ConfigError, match="2 users at its peak cannot run its 3 flows"):
        staged.with_overrides(users=2).check_users()
    opened = parse_profiles({"profiles": {"o": {"model": "open", "arrival_rate": 1.0, "users": 1}}})["o"]
    opened.check_users()  # one executor runs every flow of the mix in turn


def test_unknown_profile_name() -> None:
    profiles = load_profiles(SUITE / "profiles.toml")
    with pytest.raises(ConfigError, match="unknown profile 'smok'; did you mean 'smoke'"):
        profiles.get("smok")


def test_settings_round_trip_and_bad_values() -> None:
    settings = LoadSettings(
        profile="ramp", users=50, run_time=600.0, run_tag="t1", metrics_port=9646, workers=2
    )
    again = LoadSettings.from_env(settings.to_env())
    assert again == settings
    with pytest.raises(ConfigError, match=r"^\$KSENTINEL_LOAD_USERS: expected an integer, got 'many'$"):
        LoadSettings.from_env({"KSENTINEL_LOAD_USERS": "many"})


# --- the open model -----------------------------------------------------------------------------------


def test_arrival_schedule_keeps_its_rate_and_counts_lag() -> None:
    now = [100.0]
    schedule = ArrivalSchedule(4.0, clock=lambda: now[0])
    dues = [schedule.next_due() for _ in range(4)]
    assert dues == [100.0, 100.25, 100.5, 100.75]
    now[0] = 101.0  # the executors were busy: the next arrivals are late, and say so
    assert schedule.backlog() == 1
    assert schedule.started(dues[0], at=100.0) == 0.0
    assert schedule.started(dues[3], at=101.0) == pytest.approx(0.25)
    assert schedule.stats.late == 1 and schedule.stats.max_lag == pytest.approx(0.25)
    now[0] = 102.0
    schedule.close()
    now[0] = 200.0  # arrivals due after the end do not count
    assert schedule.snapshot() == {
        "due": 9,
        "started": 2,
        "late": 1,
        "max_lag_seconds": 0.25,
        "total_lag_seconds": 0.25,
    }


def test_open_model_arrivals_run_every_flow_of_the_mix_in_turn() -> None:
    """Arrivals used to pick flows at random: a short run could leave a flow without any data."""
    code = (
        "from ksentinel.load.profiles import parse_profiles\n"
        "from ksentinel.load.settings import LoadSettings\n"
        "from ksentinel.load.users import LoadRun\n"
        "profile = parse_profiles({'profiles': {'o': {'model': 'open', 'arrival_rate': 1.0,\n"
        "    'mix': {'session': 1, 'upload': 1, 'browse': 2, 'cache': 0}}}})['o']\n"
        "run = LoadRun(LoadSettings(), profile, ())\n"
        "print(' '.join(run.next_mix_flow() for _ in range(8)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    picks = proc.stdout.split()
    for window in (picks[:4], picks[4:]):  # every 4 arrivals (the weights' sum): each flow by weight
        assert sorted(window) == ["browse", "browse", "session", "upload"], picks
    assert picks[:2] != ["browse", "browse"], "interleaved, not in blocks"


# --- the Locust transport (fake client, no Locust) ----------------------------------------------------


class FakeResponse:
    """What geventhttpclient's HTTPClient.request returns, as far as the transport reads it."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.body = body
        self.released = False
        self.headers = headers or {"Content-Type": "application/json"}

    def info(self) -> dict[str, str]:
        return self.headers

    def read(self, length: int | None = None) -> bytes:  # consumes, like the real one
        data = self.body[:length]
        self.body = self.body[len(data) :]
        return data

    def release(self) -> None:
        self.released = True


class FakeSession:
    """A FastHttpSession whose connection pool answers from a script (status 0: no answer)."""

    def __init__(self, answers: list[tuple[int, bytes]] | list[tuple[int, bytes, dict[str, str]]]) -> None:
        self.answers = answers
        self.uris: list[str] = []
        self.client = SimpleNamespace(clientpool=SimpleNamespace(get_client=lambda url: self))

    def request(self, method: str, uri: str, *, body: bytes, headers: Any) -> FakeResponse:
        self.uris.append(uri)
        status, answer, *headers = self.answers.pop(0)
        if status == 0:
            raise ConnectionRefusedError("refused")
        return FakeResponse(status, answer, *headers)


def api_error(code: str) -> bytes:
    return json.dumps(
        {"objectType": "KalturaAPIException", "code": code, "message": "x", "args": []}
    ).encode()


def test_transport_judges_requests_steps_and_expected_errors() -> None:
    events: list[dict[str, Any]] = []
    entry = json.dumps({"objectType": "KalturaBaseEntry", "id": "0_abcdefgh"}).encode()
    session = FakeSession(
        [
            (200, entry),  # ok
            (200, api_error("INVALID_KS")),  # the flow expects it ...
            (200, entry),  # ... and carries on
            (500, b"<html>oops</html>"),  # HTTP error
            (200, api_error("ENTRY_ID_NOT_FOUND")),  # unexpected: the step fails with it
            (200, entry),  # a check fails without a failed request
            (200, api_error("ENTRY_ID_NOT_FOUND")),  # clean-up of something already gone
            (0, b""),  # no answer at all
        ]
    )
    transport = LocustTransport(session, SimpleNamespace(fire=lambda **kw: events.append(kw)))
    api = KalturaApi("http://127.0.0.1:9", partner_id=101, transport=transport)
    ctx = FlowContext(api, Sessions(Credentials(101, "s3cr3t-admin")), listeners=(transport.on_step,))
    transport.in_flow = True
    with ctx.step("t.ok"):
        ctx.api.call("baseEntry", "get", entryId="0_abcdefgh")
    with ctx.step("t.expected"):
        with pytest.raises(KalturaApiError):
            ctx.api.call("session", "get")
        ctx.api.call("baseEntry", "get", entryId="0_abcdefgh")
    for step in ("t.http", "t.unexpected"):
        with pytest.raises(FlowFailure), ctx.step(step):
            ctx.api.call("baseEntry", "get", entryId="0_abcdefgh")
    with pytest.raises(FlowFailure), ctx.step("t.check"):
        ctx.api.call("baseEntry", "get", entryId="0_abcdefgh")
        ctx.check(False, "entry 0_abcdefgh is not what was listed")
    token = STEP_LABEL.set("t.cleanup")
    with pytest.raises(KalturaApiError):
        ctx.api.call("baseEntry", "delete", entryId="0_abcdefgh")
    STEP_LABEL.reset(token)
    transport.flow_done()
    with pytest.raises(TransportConnectionError, match="CONNECTION"), ctx.step("t.down"):
        ctx.api.call("system", "ping")
    seen = [(e["request_type"], e["name"], repr(e["exception"]) if e["exception"] else None) for e in events]
    assert seen == [
        ("POST", "t.ok", None),
        ("POST", "t.expected", None),
        ("POST", "t.expected", None),
        ("POST", "t.http", "HTTP_500"),
        ("POST", "t.unexpected", "ENTRY_ID_NOT_FOUND"),
        ("POST", "t.check", None),
        (CHECK_TYPE, "t.check", "CHECK: entry <id> is not what was listed"),
        ("POST", "t.cleanup", None),
        ("POST", "t.down", "CONNECTION: ConnectionRefusedError"),
    ]
    assert session.uris[0] == "/api_v3/service/baseentry/action/get"
    assert all(e["response_time"] >= 0 and e["start_time"] > 0 for e in events)


def test_a_download_redirected_to_its_cdn_is_followed_and_not_a_failure() -> None:
    """A real Kaltura answers a download URL with 302 to a CDN host: one hop, not an HTTP_302 failure."""
    events: list[dict[str, Any]] = []
    cdn = "http://localhost:9/p/101/sp/10100/serveFlavor/entryId/0_abcdefgh/v/1/flavorId/0_abcdefgh_0/name/a.mp4"
    session = FakeSession(
        [
            (302, b"", {"Location": cdn, "Content-Length": "0"}),
            (200, b"media bytes", {"Content-Type": "video/mp4"}),
            (302, b"", {"Content-Length": "0"}),  # a redirect that names no place to go is an error
        ]
    )
    transport = LocustTransport(session, SimpleNamespace(fire=lambda **kw: events.append(kw)))
    api = KalturaApi("http://127.0.0.1:9", partner_id=101, transport=transport)
    token = STEP_LABEL.set("upload.content_match")
    try:
        assert api.download(
            "http://127.0.0.1:9/p/101/sp/10100/playManifest/entryId/0_abcdefgh/format/download"
        ) == (b"media bytes")
        with pytest.raises(KalturaApiError, match="HTTP_302"):
            api.download("http://127.0.0.1:9/p/101/sp/10100/playManifest/entryId/0_x/format/download")
    finally:
        STEP_LABEL.reset(token)
    assert session.uris[1].startswith("/p/101/sp/10100/serveFlavor/")
    seen = [(e["request_type"], e["name"], repr(e["exception"]) if e["exception"] else None) for e in events]
    assert seen == [
        ("GET", "upload.content_match", None),
        ("GET", "upload.content_match", None),
        ("GET", "upload.content_match", "HTTP_302"),
    ]


def test_failure_codes_are_bounded_and_scrubbed() -> None:
    failure = LoadFailure("CHECK", "entry 0_k3j4h5g6 of token 0_" + "a" * 32 + " with ks=djJ8MTAxfGFiYw")
    assert "0_k3j4h5g6" not in repr(failure) and "aaaa" not in repr(failure)
    assert code_of_error(repr(failure)) == "CHECK"
    assert bounded_code("HTTP_500") == "HTTP_500" and bounded_code("HTTP_418") == OTHER
    assert code_of_error("ValueError('x')") == OTHER
    assert {"INVALID_KS", "TIMEOUT", "CHECK"} <= KNOWN_CODES


# --- summary, verdict and exporter over fake Locust stats ----------------------------------------------


def entry(name: str, method: str, times: dict[int, int], failures: int = 0) -> SimpleNamespace:
    count = sum(times.values())
    total = sum(ms * n for ms, n in times.items())
    return SimpleNamespace(
        name=name,
        method=method,
        num_requests=count,
        num_failures=failures,
        response_times=times,
        total_response_time=total,
        max_response_time=max(times, default=0),
    )


def fake_stats() -> SimpleNamespace:
    entries = [
        entry("browse.list", "POST", {10: 90, 900: 10}),
        entry("upload.chunk", "POST", {5: 98, 20: 2}, failures=2),
        entry("upload.listed", CHECK_TYPE, {3: 1}, failures=1),
        entry("upload", FLOW_TYPE, {300: 9, 500: 1}, failures=1),
        entry("0_abcd1234", "POST", {1: 1}),  # a step name nobody should use: never a label
    ]
    errors = [
        SimpleNamespace(method="POST", name="upload.chunk", error=LoadFailure("HTTP_500"), occurrences=2),
        SimpleNamespace(method=CHECK_TYPE, name="upload.listed", error="CHECK: not listed", occurrences=1),
        SimpleNamespace(method=FLOW_TYPE, name="upload", error="HTTP_500: upload.chunk", occurrences=1),
        SimpleNamespace(
            method="POST", name="upload.chunk", error="WEIRD_NEW_CODE_FROM_SERVER", occurrences=0
        ),
    ]
    return SimpleNamespace(
        entries={(e.name, e.method): e for e in entries},
        errors={str(i): e for i, e in enumerate(errors)},
        total=SimpleNamespace(start_time=1000.0),
    )


def test_summary_and_slo_table() -> None:
    summary = build_summary(
        fake_stats(),
        run_tag="t",
        profile="smoke",
        model="closed",
        started=1000.0,
        ended=1010.0,
        peak_users=4,
        final_users=0,
        workers={"mode": "local", "covered": True},
    )
    assert summary["totals"] == {
        "requests": 201,
        "failures": 3,
        "checks_failed": 1,
        "error_ratio": round(3 / 202, 6),
        "rps": 20.1,
    }
    assert summary["steps"]["browse.list"]["latency"]["p95"] == 0.9
    assert summary["steps"]["upload.chunk"]["failures_by_code"]["HTTP_500"] == 2
    assert (
        summary["steps"]["upload.listed"]["checks_failed"] == 1
        and summary["steps"]["upload.listed"]["latency"] is None
    )
    assert summary["flows"]["upload"]["failures_by_code"] == {"HTTP_500": 1}
    spec = parse_slo({"error_ratio": 0.05, "min_throughput": 10, "steps": {"browse.get": {"p95": 0.2}}})
    rows = evaluate(summary, spec, flows={"browse": ("browse.list",)}, optional=("browse", "upload"))
    verdicts = {(r.slo, r.step): r.verdict for r in rows}
    assert verdicts[("error_ratio", "all")] == "met"
    assert verdicts[("throughput", "all")] == "met"
    assert verdicts[("p95", "browse.list")] == "missed"
    assert verdicts[("p99", "upload.chunk")] == "met"
    assert verdicts[("p95", "browse.get")] == "no data", "a configured step of an optional flow"
    assert ("p95", "upload.content_match") not in verdicts, "upload is not a flow of this run"
    assert exit_code(rows) == 1
    table = render_table(rows, summary)
    assert re.search(r"p95\s+browse\.list\s+<= 0\.500s\s+0\.900s\s+MISSED", table)
    assert "SLOs: " in table and "1 missed (p95 browse.list)" in table
    assert "failures: upload.chunk HTTP_500 x2" in table
    empty = evaluate({"totals": {"requests": 0, "error_ratio": None, "rps": 0}, "steps": {}}, SloSpec())
    assert empty[0].verdict == "missed", "a run without requests must not pass"


def fake_summary() -> dict[str, Any]:
    return build_summary(
        fake_stats(),
        run_tag="t",
        profile="p",
        model="closed",
        started=1000.0,
        ended=1010.0,
        peak_users=4,
        final_users=0,
        workers={"mode": "local", "covered": True},
    )


def test_an_objective_without_data_is_missed_unless_its_flow_is_optional() -> None:
    """`load --users 1` ran browse only: the steps of session and upload that never ran fail the gate."""
    from ksentinel.load.verdict import run_flows

    steps_of = {name: f.steps for name, f in FLOWS.items()}
    flows = run_flows(("session", "upload", "browse"), steps_of)
    spec = parse_slo({"steps": {"cache.seed": {"p95": 0.2}}}, known_steps=KNOWN_STEPS)
    rows = evaluate(fake_summary(), spec, flows=flows)
    by_step = {(r.slo, r.step): r for r in rows}
    for step in (*FLOWS["session"].steps, "upload.token_add", "upload.content_match", "browse.page"):
        row = by_step[("p95", step)]
        assert (row.verdict, row.measured_text) == ("missed", "no data"), step
    assert ("p95", "cache.seed") not in by_step, "a configured step of a flow the run does not run"
    assert by_step[("p95", "upload.chunk")].verdict == "met"
    assert exit_code(rows) == 1
    table = render_table(rows)
    assert re.search(r"p95\s+session\.start\s+<= 0\.500s\s+no data\s+MISSED", table), table
    optional = evaluate(fake_summary(), spec, flows=flows, optional=("session", "upload", "browse"))
    assert {r.verdict for r in optional if r.measured is None} == {"no data"}
    assert exit_code(optional) == 1, "browse.list's p95 is still missed"
    assert "without data (optional flows)" in render_table(optional)
    assert all(r.verdict != "no data" for r in optional if r.step == "browse.list")


def test_an_unset_throughput_objective_is_not_set_in_the_table_and_the_report(tmp_path: Path) -> None:
    from ksentinel.load.runner import LoadOutcome
    from ksentinel.load.verdict import summary_line
    from ksentinel.report.load_section import load_section
    from ksentinel.report.model import RunReport
    from ksentinel.report.render import render_html

    summary = fake_summary()
    flows = {"browse": ("browse.list",), "upload": ("upload.chunk",)}
    rows = evaluate(summary, parse_slo({"error_ratio": 0.05}), flows=flows, optional=("upload",))
    (throughput,) = [r for r in rows if r.slo == "throughput"]
    assert (throughput.verdict, throughput.objective_text, throughput.measured_text) == (
        "not set",
        "-",
        "20.1 req/s",
    )
    assert not throughput.missed
    table = render_table(rows, summary)
    assert re.search(r"throughput\s+all\s+-\s+20\.1 req/s\s+NOT SET", table), table
    met = len(re.findall(r"\sMET$", table, re.M))
    assert summary_line(rows) == (
        f"SLOs: {met} met, 1 missed (p95 browse.list), 4 without data (optional flows), throughput not set"
    )
    assert table.splitlines()[len(rows) + 2] == summary_line(rows)
    set_rows = evaluate(summary, parse_slo({"min_throughput": 50}), flows=flows, optional=("upload",))
    assert [r.verdict for r in set_rows if r.slo == "throughput"] == ["missed"]
    outcome = LoadOutcome(
        1, "p", "t", rows=rows, summary=summary, table=table, verdict_line=summary_line(rows)
    )
    section = load_section(outcome, tmp_path)
    assert {
        "slo": "throughput",
        "step": "all",
        "objective_text": "-",
        "measured_text": "20.1 req/s",
    }.items() <= (section["rows"][1].items())
    assert section["rows"][1]["verdict"] == "not set"
    assert section["verdict_line"].endswith("throughput not set")
    report = RunReport("t", "ref", "now", load=section)
    assert report.to_dict()["load"]["rows"][1]["verdict"] == "not set"
    html = render_html(report)
    row = re.search(r'<tr class="slo-not-set"[^>]*>(.*?)</tr>', html, re.S)
    assert row and "throughput" in row.group(1) and ">not set</span>" in row.group(1), html
    assert 'class="badge passed">not set' not in html and 'class="badge skipped">not set' in html
    assert "throughput not set" in html


def test_exporter_metrics_are_bounded() -> None:
    registry = CollectorRegistry()
    registry.register(LoadCollector(lambda: (fake_stats(), 7)))
    sample = registry.get_sample_value
    assert sample("ksentinel_load_requests_total", {"step": "browse.list"}) == 100
    assert sample("ksentinel_load_requests_total", {"step": "other"}) == 1
    assert sample("ksentinel_load_failures_total", {"step": "upload.chunk", "code": "HTTP_500"}) == 2
    assert sample("ksentinel_load_failures_total", {"step": "upload.chunk", "code": OTHER}) == 0
    assert sample("ksentinel_load_failures_total", {"step": "upload.listed", "code": "CHECK"}) == 1
    assert (
        sample("ksentinel_load_request_duration_seconds_bucket", {"step": "browse.list", "le": "0.01"}) == 90
    )
    assert (
        sample("ksentinel_load_request_duration_seconds_bucket", {"step": "browse.list", "le": "+Inf"}) == 100
    )
    assert sample("ksentinel_load_request_duration_seconds_sum", {"step": "browse.list"}) == pytest.approx(
        9.9
    )
    assert sample("ksentinel_load_users") == 7
    steps = {s.labels.get("step") for m in registry.collect() for s in m.samples} - {None}
    assert "0_abcd1234" not in steps and "upload" not in steps  # no ids, no FLOW rows


# --- ksentinel load, end to end ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_command(ref: Reference, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ksentinel.load",
        "--url",
        ref.url,
        "--partner-id",
        str(ref.p1.id),
        "--suite",
        str(SUITE),
        *args,
    ]


def load_env(ref: Reference | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KSENTINEL_", "LOCUST_"))}
    if ref is not None:
        env["KSENTINEL_ADMIN_SECRET"] = ref.p1.admin_secret
    return env


def run_cli(ref: Reference, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        load_command(ref, *args),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=load_env(ref),
        cwd=tmp_path,
        check=False,
    )


def leftovers(ref: Reference) -> tuple[list[str], list[str]]:
    store = ref.server.platform.store
    entries = [e["id"] for e in store.all_entries()]
    tokens = [t["id"] for t in store.all_tokens() if t["status"] in (0, 1, 2)]
    return entries, tokens


def created_ids(ref: Reference) -> set[str]:
    store = ref.server.platform.store
    return {e["id"] for e in store.all_entries(include_deleted=True)} | {t["id"] for t in store.all_tokens()}


@pytest.mark.slow
def test_smoke_passes_on_a_clean_platform_with_metrics_report_and_no_leftovers(tmp_path: Path) -> None:
    port = free_port()
    with start_reference(tmp_path / "ref") as ref:
        proc = subprocess.Popen(
            load_command(ref, "--profile", "smoke", "--metrics-port", str(port), "--report", "out"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=load_env(ref),
            cwd=tmp_path,
        )
        scrape = ""
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=2) as http:
            while (
                time.monotonic() < deadline
                and 'ksentinel_load_requests_total{step="upload.chunk"}' not in scrape
            ):
                time.sleep(0.5)
                try:
                    scrape = http.get(f"http://127.0.0.1:{port}/metrics").text
                except httpx.HTTPError:
                    continue
        out, err = proc.communicate(timeout=RUN_TIMEOUT)
        assert proc.returncode == 0, (out, err[-3000:])
        assert not any(leftovers(ref)), leftovers(ref)
        ids = created_ids(ref)
    assert re.search(r"error_ratio\s+all\s+<= 1\.00%\s+0\.00%\s+MET", out), out
    assert re.search(r"p95\s+upload\.chunk\s+<= 1\.000s\s+\S+\s+MET", out), out
    assert "SLOs: " in out and " 0 missed" in out
    assert (tmp_path / "out" / "load.html").stat().st_size > 10_000
    assert re.search(r"ksentinel: +\d+s +users +\d+ +requests +\d+", err), "live progress lines"
    # the exporter served ksentinel_load_* while running; labels are bounded and carry no secret
    for name in ("requests_total", "failures_total", "request_duration_seconds_bucket", "users"):
        assert f"ksentinel_load_{name}" in scrape, name
    labels = re.findall(
        r'(\w+)="([^"]*)"',
        "\n".join(line for line in scrape.splitlines() if line.startswith("ksentinel_load")),
    )
    assert labels
    for key, value in labels:
        assert key in ("step", "code", "le"), key
        if key == "step":
            assert re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*", value), value
        if key == "code":
            assert value in KNOWN_CODES or value == OTHER
        assert value not in ids and not looks_like_ks(value)
        assert ref.p1.admin_secret not in value and value != str(ref.p1.id)
    assert ids, "the run created objects"
    assert not any(i in scrape for i in ids), "an entry or token id reached the metrics"


@pytest.mark.slow
def test_slow_list_fails_the_list_latency_slo_and_names_the_step(tmp_path: Path) -> None:
    with start_reference(tmp_path / "ref", faults=("slow-list",)) as ref:
        proc = run_cli(ref, tmp_path, "--profile", "smoke", "--run-time", "8s", "--report", "out")
        assert not any(leftovers(ref))
    assert proc.returncode == 1, (proc.stdout, proc.stderr[-2000:])
    row = re.search(r"p95\s+browse\.list\s+<= 0\.500s\s+(\d+\.\d+)s\s+MISSED", proc.stdout)
    assert row and float(row.group(1)) >= 0.8, proc.stdout
    assert re.search(r"error_ratio\s+all\s+.*MET", proc.stdout)


@pytest.mark.slow
def test_http_500_fails_the_error_ratio_slo_and_still_cleans_up(tmp_path: Path) -> None:
    with start_reference(tmp_path / "ref", faults=("http-500",)) as ref:
        proc = run_cli(ref, tmp_path, "--profile", "smoke", "--run-time", "6s", "--report", "out")
        assert not any(leftovers(ref)), leftovers(ref)
    assert proc.returncode == 1, (proc.stdout, proc.stderr[-2000:])
    assert re.search(r"error_ratio\s+all\s+<= 1\.00%\s+\d+\.\d+%\s+MISSED", proc.stdout), proc.stdout
    assert "HTTP_500" in proc.stdout


@pytest.mark.slow
def test_sigint_mid_run_stops_cleanly_and_leaves_nothing(tmp_path: Path) -> None:
    with start_reference(tmp_path / "ref") as ref:
        proc = subprocess.Popen(
            load_command(ref, "--profile", "smoke", "--run-time", "60s", "--users", "8", "--report", "out"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=load_env(ref),
            cwd=tmp_path,
        )
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not ref.server.platform.store.all_entries():
            time.sleep(0.2)  # wait until the run has objects in flight
        time.sleep(1.5)
        assert ref.server.platform.store.all_entries(), "the run should be creating entries by now"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=90)
        assert not any(leftovers(ref)), leftovers(ref)
    assert proc.returncode == 130, (out, err[-3000:])
    assert "interrupted" in err
    assert "SLOs: " in out, "the table of what ran"
    assert (tmp_path / "out" / "load.html").exists()


@pytest.mark.slow
def test_two_workers_run_and_the_final_stats_cover_both(tmp_path: Path) -> None:
    from ksentinel.config import Target
    from ksentinel.load.runner import run_load

    lines: list[str] = []
    with start_reference(tmp_path / "ref") as ref:
        target = Target.for_reference(ref.url, ref.p1.id, ref.p1.admin_secret)
        outcome = run_load(
            target, profile="smoke", run_time=8, users=4, workers=2, suite=SUITE, output=lines.append
        )
        assert not any(leftovers(ref))
    summary = outcome.summary
    assert summary is not None, lines[-20:]
    assert summary["workers"] == {"mode": "master", "expected": 2, "seen": 2, "final": 2, "covered": True}
    assert outcome.exit_code == 0, outcome.table
    assert summary["totals"]["requests"] > 0
    assert "workers: final stats from 2 of 2 (expected 2)" in outcome.table
    assert sum("2 workers connected" in line for line in lines) == 1, "Locust's own master saw 2 workers"


# --- issue 12: a load run passes only when every flow ran --------------------------------------------

# Three flows, three users, a few seconds (a profile file of a test's own suite).
TRIO_PROFILES = """
[defaults]
users = 3
spawn_rate = 3
run_time = "4s"
wait = [0.1, 0.3]
mix = { session = 1, upload = 1, browse = 4 }
upload_bytes = 65536
chunk_bytes = 65536
list_seed = 2
ks_pool = 2

[profiles.trio]
"""


def trio_suite(tmp_path: Path, extra: str = "", profiles: str = "") -> Path:
    """A copy of the shipped suite with the trio profile (``extra`` appended to its locustfile)."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "locustfile.py").write_text((SUITE / "locustfile.py").read_text() + extra)
    (suite / "profiles.toml").write_text(TRIO_PROFILES + profiles)
    return suite


def test_load_refuses_a_profile_with_fewer_users_than_flows(tmp_path: Path) -> None:
    """`load --users 1` ran BrowseUser only and passed; now it does not start (no target needed)."""
    proc = subprocess.run(
        [sys.executable, "-m", "ksentinel.load", "--suite", str(SUITE), "--users", "1", "--run-time", "3s"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=load_env(),
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2, (proc.stdout, proc.stderr[-2000:])
    assert proc.stderr.splitlines() == [
        "ksentinel: error: profile smoke: 1 user cannot run its 3 flows (session, upload, browse): every "
        "flow needs a user of its own; use --users 3 or more, or take flows out of the mix"
    ]
    assert proc.stdout == ""


def locust_env(ref: Reference, profiles: Path, profile: str) -> dict[str, str]:
    env = load_env(ref)
    env.update(
        KSENTINEL_URL=ref.url,
        KSENTINEL_PARTNER_ID=str(ref.p1.id),
        KSENTINEL_LOAD_PROFILE=profile,
        KSENTINEL_LOAD_PROFILES=str(profiles),
    )
    return env


@pytest.mark.slow
def test_locust_on_its_own_runs_the_profiles_users_one_per_flow_at_least(tmp_path: Path) -> None:
    """`locust -f load/locustfile.py` with a profile: its users (3, not Locust's 1), each class one,
    for its run time; too few users is refused with one line."""
    suite = trio_suite(tmp_path)
    locust = [sys.executable, "-m", "locust", "-f", str(SUITE / "locustfile.py"), "--headless"]
    with start_reference(tmp_path / "ref") as ref:
        env = locust_env(ref, suite / "profiles.toml", "trio")
        proc = subprocess.run(locust, capture_output=True, text=True, timeout=40, env=env, cwd=tmp_path)
        refused = subprocess.run(
            [*locust, "-u", "2"], capture_output=True, text=True, timeout=40, env=env, cwd=tmp_path
        )
        assert not any(leftovers(ref)), leftovers(ref)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    spawned = re.search(r"All users spawned: (\{.*?\}) \((\d+) total users\)", out)
    assert spawned, out[-4000:]
    # Locust's weights alone give 3 users browse x2 + session (weights 4:1:1): upload never ran
    assert json.loads(spawned.group(1)) == {"BrowseUser": 1, "SessionUser": 1, "UploadUser": 1}
    assert "Run time limit set to 4 seconds" in out, "the profile's run time"
    assert re.search(r"p95\s+upload\.content_match\s+<= 2\.000s\s+\S+s\s+MET", out), out[-4000:]
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "Ramping" not in refused.stderr and "ksentinel: profile" not in refused.stderr, "nothing started"
    # Locust logs its "Starting Locust" line before a locustfile's init listener: beside it, one line
    assert [line for line in refused.stderr.splitlines() if "locust.main: Starting Locust" not in line] == [
        "ksentinel: error: profile trio: 2 users cannot run its 3 flows (session, upload, browse): every "
        "flow needs a user of its own; use -u 3 or more, or take flows out of the mix"
    ]


@pytest.mark.slow
def test_an_objective_without_data_fails_the_gate_unless_its_flow_is_optional(tmp_path: Path) -> None:
    """Uploads that never convert within the run: their later steps have no data. Missed, unless the
    profile lists upload in optional_flows; the unset throughput objective is "not set" throughout."""
    from ksentinel.load.runner import run_load
    from ksentinel.report.load_section import load_section
    from ksentinel.report.model import RunReport
    from ksentinel.report.render import render_html

    suite = trio_suite(tmp_path, profiles='\n[profiles.lenient]\noptional_flows = ["upload"]\n')
    with start_reference(tmp_path / "ref", ready_after=60.0) as ref:
        strict = run_cli(ref, tmp_path, "--suite", str(suite), "--profile", "trio", "--report", "a")
        target = Target.for_reference(ref.url, ref.p1.id, ref.p1.admin_secret)
        lenient = run_load(target, profile="lenient", suite=suite, output=lambda line: None)
        assert not any(leftovers(ref)), leftovers(ref)
    assert strict.returncode == 1, (strict.stdout, strict.stderr[-3000:])
    for step in ("upload.listed", "upload.content_match", "upload.delete"):
        assert re.search(rf"p95\s+{re.escape(step)}\s+<= \S+\s+no data\s+MISSED", strict.stdout), (
            strict.stdout
        )
    assert re.search(r"error_ratio\s+all\s+<= 1\.00%\s+0\.00%\s+MET", strict.stdout), strict.stdout
    assert re.search(r"p95\s+session\.start\s+<= 0\.500s\s+\S+s\s+MET", strict.stdout), "session ran"
    assert lenient.exit_code == 0, lenient.table
    assert re.search(r"p95\s+upload\.listed\s+<= 0\.500s\s+no data\s+NO DATA", lenient.table)
    # min_throughput is not set (0): reported, neither met nor missed, in the table, report and summary
    assert re.search(r"throughput\s+all\s+-\s+\d+\.\d req/s\s+NOT SET", lenient.table), lenient.table
    assert re.search(r"throughput\s+all\s+-\s+\d+\.\d req/s\s+NOT SET", strict.stdout)
    assert lenient.verdict_line.endswith("without data (optional flows), throughput not set")
    assert re.search(r"^SLOs: \d+ met, 0 missed, \d+ without data", lenient.verdict_line)
    section = load_section(lenient, tmp_path)
    (throughput,) = [row for row in section["rows"] if row["slo"] == "throughput"]
    assert throughput["verdict"] == "not set" and throughput["objective_text"] == "-"
    report = RunReport("load", ref.url, "now", load=section)
    assert json.dumps(report.to_dict()).count('"verdict": "not set"') == 1
    html = render_html(report)
    assert re.search(r'<tr class="slo-not-set"[^>]*>\s*<td>throughput</td>', html), html
    assert lenient.verdict_line in html


# The test's own worker process that dies a moment after its test starts: no final statistics.
_DYING_WORKER = """

import os as _os

import gevent as _gevent
from locust import events as _events
from locust.runners import WorkerRunner as _WorkerRunner


@_events.test_start.add_listener
def _die_once(environment, **_):
    if not isinstance(environment.runner, _WorkerRunner):
        return
    try:  # the first worker only
        _os.close(_os.open(Path(__file__).with_name("died"), _os.O_CREAT | _os.O_EXCL))
    except FileExistsError:
        return
    _gevent.spawn_later(0.5, _os._exit, 0)
"""


@pytest.mark.slow
def test_a_worker_without_final_stats_ends_the_run_with_exit_2_and_one_line(tmp_path: Path) -> None:
    from ksentinel.load.runner import run_load

    suite = trio_suite(tmp_path, _DYING_WORKER)
    lines: list[str] = []
    with start_reference(tmp_path / "ref") as ref:
        target = Target.for_reference(ref.url, ref.p1.id, ref.p1.admin_secret)
        outcome = run_load(target, profile="trio", workers=2, suite=suite, output=lines.append)
        assert not any(leftovers(ref)), leftovers(ref)
    assert (suite / "died").exists(), "one worker died"
    assert outcome.summary is not None, lines[-20:]
    assert outcome.summary["workers"]["covered"] is False, outcome.summary["workers"]
    assert outcome.exit_code == 2, (outcome.table, lines[-20:])
    assert outcome.message == (
        "1 of 2 workers sent no final statistics (died or lost the master): the statistics leave out "
        "what they ran, so the run has no SLO verdict"
    )


def test_bad_profile_and_bad_slo_are_one_line_usage_errors(tmp_path: Path) -> None:
    base = [sys.executable, "-m", "ksentinel.load", "--suite", str(SUITE)]
    proc = subprocess.run(
        [*base, "--profile", "smok"],
        capture_output=True,
        text=True,
        timeout=60,
        env=load_env(),
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"ksentinel: error: {SUITE / 'profiles.toml'}: unknown profile 'smok'; did you mean 'smoke'?"
    ]
    proc = subprocess.run(
        [*base, "--run-time", "soon"],
        capture_output=True,
        text=True,
        timeout=60,
        env=load_env(),
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.startswith('ksentinel: error: --run-time: bad duration "soon"')
        and proc.stderr.count("\n") == 1
    )
    (tmp_path / "ksentinel.toml").write_text('[slo.steps."browse.lst"]\np95 = 1.0\n')
    proc = subprocess.run(
        [*base], capture_output=True, text=True, timeout=60, env=load_env(), cwd=tmp_path, check=False
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"ksentinel: error: {tmp_path / 'ksentinel.toml'}: slo.steps.\"browse.lst\": unknown step; did you mean 'browse.list'?"
    ]


@pytest.mark.slow
def test_open_model_counts_the_queueing_a_stalling_server_causes(tmp_path: Path) -> None:
    """Arrivals at 4/s, 2 executors, lists take 0.8 s: flows start late and the latency says so."""
    from ksentinel.config import Target
    from ksentinel.load.runner import run_load

    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "locustfile.py").write_text((SUITE / "locustfile.py").read_text())
    (suite / "profiles.toml").write_text(
        '[profiles.open]\nmodel = "open"\narrival_rate = 4.0\nusers = 2\nspawn_rate = 10\n'
        'run_time = "6s"\nmix = { browse = 1 }\nlist_seed = 3\n'
    )
    with start_reference(tmp_path / "ref", faults=("slow-list",)) as ref:
        target = Target.for_reference(ref.url, ref.p1.id, ref.p1.admin_secret)
        outcome = run_load(target, profile="open", suite=suite, output=lambda line: None)
        assert not any(leftovers(ref))
    summary = outcome.summary
    assert summary is not None and summary["model"] == "open"
    arrival = summary["arrival"]
    assert arrival["rate"] == 4.0 and arrival["late"] > 0 and arrival["max_lag_seconds"] > 1.0, arrival
    assert arrival["due"] >= 20 and arrival["started"] < arrival["due"] / 2, "2 executors cannot keep 4/s"
    assert re.search(r"arrivals\s+all\s+>= 99\.00%\s+\d+\.\d+%\s+MISSED", outcome.table), outcome.table
    flow_p95 = summary["flows"]["browse"]["latency"]["p95"]
    assert flow_p95 > arrival["max_lag_seconds"] / 2 + 0.8, "flow latency counts from the intended start"
    first_request_p99 = summary["steps"]["browse.list"]["latency"]["p99"]
    assert first_request_p99 > 1.5, "the first request of a late flow carries the wait"
    assert outcome.exit_code == 1 and "arrivals: " in outcome.table


# --- the summary's timeline -----------------------------------------------------------------------------


class FakeEntry:
    """A Locust ``StatsEntry`` as the timeline reads it: totals, histogram, per-second counters."""

    def __init__(self, name: str, method: str = "POST") -> None:
        self.name, self.method = name, method
        self.num_requests = self.num_failures = 0
        self.response_times: dict[int, int] = {}
        self.num_reqs_per_sec: dict[int, int] = {}
        self.num_fail_per_sec: dict[int, int] = {}

    def log(self, second: int, ms: int, count: int = 1, failed: int = 0) -> None:
        if self.method != CHECK_TYPE:
            self.num_requests += count
            self.num_reqs_per_sec[second] = self.num_reqs_per_sec.get(second, 0) + count
            self.response_times[ms] = self.response_times.get(ms, 0) + count
        self.num_failures += failed
        if failed:
            self.num_fail_per_sec[second] = self.num_fail_per_sec.get(second, 0) + failed


def fake_live_stats(*entries: FakeEntry) -> SimpleNamespace:
    return SimpleNamespace(entries={(e.name, e.method): e for e in entries}, errors={})


def test_timeline_intervals_have_exact_percentiles_counts_and_no_flow_rows() -> None:
    from ksentinel.load.summary import percentile
    from ksentinel.load.timeline import Timeline

    chunk, listed, flow = (
        FakeEntry("upload.chunk"),
        FakeEntry("upload.listed", CHECK_TYPE),
        FakeEntry("upload", FLOW_TYPE),
    )
    stats = fake_live_stats(chunk, listed, flow)
    timeline = Timeline(1000.2, interval=1)
    timeline.baseline(stats)
    assert timeline.next_due == 1001.0
    chunk.log(1000, 5, count=10)  # interval (0, 0.8]: fast
    flow.log(1000, 300)
    timeline.sample(stats, 3, 1000.6)
    assert len(timeline) == 0, "nothing is due yet"
    timeline.sample(stats, 3, 1001.0)
    chunk.log(1001, 100, count=10, failed=2)  # interval (0.8, 1.8]: slow, 2 failed
    listed.log(1001, 0, failed=1)
    timeline.sample(stats, 4, 1002.01)
    chunk.log(1002, 7, count=4)  # stopped at 1002.4: a sliver, part of the interval before
    points = timeline.finish(stats, 0, 1002.4)
    assert [p["t"] for p in points] == [0.8, 2.2]
    assert [p["users"] for p in points] == [3, 0]
    assert all(set(p["steps"]) <= {"upload.chunk", "upload.listed"} for p in points), "no FLOW rows"
    first, second = points[0]["steps"]["upload.chunk"], points[1]["steps"]["upload.chunk"]
    assert first == {"requests": 10, "rps": 12.5, "failures": 0, "p50": 0.005, "p95": 0.005}
    # the second interval's percentiles come from its own requests, not the run's so far
    assert second["requests"] == 14 and second["failures"] == 2 and second["p95"] == 0.1
    assert second["p50"] == percentile({100: 10, 7: 4}, 0.5) / 1000.0
    assert points[1]["steps"]["upload.listed"] == {
        "requests": 0,
        "rps": 0.0,
        "failures": 1,
        "p50": None,
        "p95": None,
    }


def test_timeline_stays_bounded_and_merges_exactly() -> None:
    from ksentinel.load.timeline import Timeline

    step = FakeEntry("browse.list")
    stats = fake_live_stats(step)
    timeline = Timeline(5000.0, interval=1, max_points=20)
    timeline.baseline(stats)
    seconds = 500
    for k in range(seconds):  # second k: 3 requests of k + 1 ms each
        step.log(5000 + k, k + 1, count=3)
        if 5000 + k + 1 >= timeline.next_due:
            timeline.sample(stats, 7, 5000.0 + k + 1)
        assert len(timeline) < 20
    points = timeline.finish(stats, 0, 5000.0 + seconds)
    assert 10 <= len(points) <= 20 and timeline.interval >= 32
    times = [p["t"] for p in points]
    assert times == sorted(times) and len(set(times)) == len(times) and times[-1] == seconds
    assert sum(p["steps"]["browse.list"]["requests"] for p in points) == 3 * seconds
    previous = 0.0
    for point in points:  # latencies k+1 ms belong to second k: the merged percentiles stay in the interval
        values = point["steps"]["browse.list"]
        assert previous < values["p50"] * 1000 <= point["t"] + 1, (previous, point)
        assert values["p50"] <= values["p95"]
        assert values["rps"] == pytest.approx(3.0, rel=0.2)
        previous = point["t"]


@pytest.mark.slow
def test_summary_timeline_of_a_real_run_adds_up_to_the_totals(tmp_path: Path) -> None:
    from ksentinel.config import Target
    from ksentinel.load.runner import run_load
    from ksentinel.report.charts import load_charts

    with start_reference(tmp_path / "ref") as ref:
        target = Target.for_reference(ref.url, ref.p1.id, ref.p1.admin_secret)
        outcome = run_load(
            target, profile="smoke", run_time=5, users=4, suite=SUITE, output=lambda line: None
        )
        assert not any(leftovers(ref))
    summary = outcome.summary
    assert summary is not None and outcome.exit_code == 0, outcome.table
    timeline = summary["timeline"]
    assert len(timeline) >= 3, timeline
    times = [p["t"] for p in timeline]
    assert times == sorted(set(times)), "strictly increasing"
    assert 0 < times[0] <= 1.5 and times[-1] <= summary["duration_seconds"] + 0.5
    assert max(p["users"] for p in timeline) == 4
    steps = {name for p in timeline for name in p["steps"]}
    assert steps <= set(summary["steps"]) and not steps & set(summary["flows"])
    requests = summary["totals"]["requests"]
    assert sum(s["requests"] for p in timeline for s in p["steps"].values()) == requests
    previous, from_rates = 0.0, 0.0
    for point in timeline:
        from_rates += sum(s["rps"] for s in point["steps"].values()) * (point["t"] - previous)
        previous = point["t"]
        for values in point["steps"].values():
            assert values["p95"] is None or values["p50"] <= values["p95"] < 5
    assert from_rates == pytest.approx(requests, rel=0.02)
    assert len(load_charts(summary)) == 2
