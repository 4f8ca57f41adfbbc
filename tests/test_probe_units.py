"""Small parts of the probe: the gate, bounded labels, the metrics text, sessions and the KS registry."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ksentinel.flows import Credentials, StepResult
from ksentinel.kaltura import redact
from ksentinel.kaltura.api import KalturaApi
from ksentinel.kaltura.transport import Headers, HttpRequest, HttpResponse
from ksentinel.probe.config import Pair
from ksentinel.probe.gate import Gate
from ksentinel.probe.labels import bounded_code, is_target_code, step_label
from ksentinel.probe.metrics import ProbeMetrics
from ksentinel.probe.run import MAX_SESSIONS, BoundedSessions, Outcome, RunTransport
from tests.conftest import Reference


def test_gate_lets_shared_runs_overlap_and_exclusive_ones_alone() -> None:
    async def scenario() -> list[str]:
        gate, order = Gate(), []

        async def run(name: str, exclusive: bool, hold: float) -> None:
            await gate.acquire(exclusive)
            order.append(f"+{name}")
            await asyncio.sleep(hold)
            order.append(f"-{name}")
            gate.release(exclusive)

        shared = asyncio.create_task(run("a", False, 0.05))
        await asyncio.sleep(0)
        cache = asyncio.create_task(run("cache", True, 0.05))
        await asyncio.sleep(0)
        late = asyncio.create_task(run("b", False, 0.01))  # queued behind the exclusive waiter
        await asyncio.gather(shared, cache, late)
        return order

    assert asyncio.run(scenario()) == ["+a", "-a", "+cache", "-cache", "+b", "-b"]


def test_a_cancelled_gate_waiter_does_not_block_the_others() -> None:
    async def scenario() -> bool:
        gate = Gate()
        await gate.acquire(False)
        waiter = asyncio.create_task(gate.acquire(True))
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        await asyncio.wait_for(gate.acquire(False), 1)  # not stuck behind the cancelled exclusive waiter
        gate.release(False)
        gate.release(False)
        await asyncio.wait_for(gate.acquire(True), 1)
        return True

    assert asyncio.run(scenario())


@pytest.mark.parametrize(
    ("code", "label", "target_code"),
    [
        ("INVALID_KS", "INVALID_KS", False),
        ("HTTP_503", "HTTP_503", True),
        ("HTTP_599", "OTHER", True),
        ("TIMEOUT", "TIMEOUT", True),
        ("KSENTINEL_BAD_RESPONSE", "KSENTINEL_BAD_RESPONSE", True),
        ("0_abcd1234", "OTHER", False),
        ("", "OTHER", False),
    ],
)
def test_codes_are_bounded(code: str, label: str, target_code: bool) -> None:
    assert bounded_code(code) == label
    assert is_target_code(code) is target_code


def test_steps_are_bounded_to_what_the_flow_declares() -> None:
    assert step_label("upload", "upload.chunk") == "upload.chunk"
    assert step_label("upload", "cache.seed") == "other"
    assert step_label("upload", "upload.0_abcd1234") == "other"
    assert step_label("no-such-flow", "x.y") == "other"


def _outcome(result: str, steps: list[StepResult], **extra: object) -> Outcome:
    return Outcome("t", "cache", result, 0.5, steps, finished_at=time.time(), **extra)  # type: ignore[arg-type]


def test_metrics_text_parses_and_counts() -> None:
    metrics = ProbeMetrics(process=False)
    metrics.configure([Pair("t", "cache", 30.0, 10.0)])
    ok = [StepResult("cache", "cache.seed", 0.004, True), StepResult("cache", "cache.repeat_hit", 0.3, True)]
    metrics.record(_outcome("success", ok))
    stale = [
        StepResult("cache", "cache.seed", 0.02, True),
        StepResult("cache", "cache.write_fresh", 0.01, False, "stale name"),
    ]
    metrics.record(_outcome("failure", stale, failed_step="cache.write_fresh", reason="stale name"))
    metrics.record(_outcome("error", [], failed_step="cache.seed", code="TIMEOUT", timed_out=True))
    metrics.cache_lookup("t", "hit")
    metrics.cache_lookup("t", "weird")
    text = metrics.text()
    values = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }

    def v(name: str, **labels: str) -> float:
        return values[(name, tuple(sorted(labels.items())))]

    pair = {"target": "t", "flow": "cache"}
    assert v("ksentinel_probe_success", **pair) == 0
    assert v("ksentinel_probe_runs_total", **pair, result="success") == 1
    assert v("ksentinel_probe_runs_total", **pair, result="failure") == 1
    assert v("ksentinel_probe_runs_total", **pair, result="error") == 1
    assert v("ksentinel_cache_stale_reads_total", target="t") == 1
    assert v("ksentinel_api_errors_total", **pair, step="cache.seed", code="TIMEOUT") == 1
    assert v("ksentinel_probe_step_failures_total", **pair, step="cache.write_fresh") == 1
    assert v("ksentinel_probe_step_failures_total", **pair, step="cache.seed") == 1
    assert v("ksentinel_cache_lookups_total", target="t", result="hit") == 1
    assert v("ksentinel_cache_lookups_total", target="t", result="unknown") == 1
    seed = {**pair, "step": "cache.seed"}
    assert v("ksentinel_probe_step_duration_seconds_count", **seed) == 2
    assert v("ksentinel_probe_step_duration_seconds_bucket", **seed, le="0.005") == 1
    assert v("ksentinel_probe_step_duration_seconds_bucket", **seed, le="0.025") == 2
    assert v("ksentinel_probe_step_duration_seconds_bucket", **seed, le="+Inf") == 2
    assert v("ksentinel_probe_step_duration_seconds_sum", **seed) == pytest.approx(0.024)
    assert v("ksentinel_probe_interval_seconds", **pair) == 30


def test_sessions_pool_stays_bounded_and_keeps_the_admin_ks() -> None:
    sessions = BoundedSessions(Credentials(101, "admin-secret-0123456789"))
    admin = sessions.admin()
    for index in range(MAX_SESSIONS * 3):
        sessions.user(f"viewer-{index}")
        assert sessions.admin() == admin
    assert len(sessions._pool) <= MAX_SESSIONS


def test_sessions_register_the_secret_and_never_a_ks(reference: Reference) -> None:
    """A long-running probe mints a KS per run: none of them may grow the secret registry."""
    redact.forget_secrets()
    credentials = Credentials(reference.p1.id, reference.p1.admin_secret, reference.p1.user_secret)
    with KalturaApi(reference.url, partner_id=reference.p1.id) as api:
        tokens = [BoundedSessions(credentials).user(f"viewer-{i}") for i in range(3)]
        tokens += [api.start_session(reference.p1.admin_secret, type=2) for _ in range(3)]
        for token in tokens:
            api.with_ks(token).call("system", "ping")
    assert len(set(tokens)) == len(tokens)
    assert redact.registered_secrets() <= 2  # the admin and user secrets: no KS
    assert all(token not in redact.redact(f"ks={token}") for token in tokens)  # masked by shape
    assert reference.p1.admin_secret not in redact.redact(f"secret={reference.p1.admin_secret}")


@pytest.mark.parametrize(
    ("url", "body", "header", "expected"),
    [
        ("http://x/api_v3/service/baseentry/action/get", b"{}", "cached-dispatcher,k,1", "hit"),
        ("http://x/api_v3/service/media/action/list", b"{}", "cache-key,k", "miss"),
        ("http://x/api_v3/service/baseentry/action/count", b"{}", "", "unknown"),
        ("http://x/api_v3/service/baseentry/action/get", b'{"nocache":1}', "", None),
        ("http://x/api_v3/service/baseentry/action/update", b"{}", "", None),
        ("http://x/api_v3/service/session/action/get", b"{}", "", None),
    ],
)
def test_cache_lookups_are_read_from_entry_reads_only(
    url: str, body: bytes, header: str, expected: str | None
) -> None:
    request = HttpRequest("POST", url, {}, body)
    response = HttpResponse(200, Headers({"X-Kaltura": header} if header else {}), b"{}", 0.001)
    assert RunTransport._cache_result(request, response) == expected


# --- the search index lag ----------------------------------------------------------------------------


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def test_index_lags_are_one_histogram_per_target() -> None:
    metrics = ProbeMetrics(process=False)
    metrics.configure([Pair("t", "list", 30.0, 10.0), Pair("quiet", "session", 30.0, 10.0)])
    now = time.time()
    metrics.record(Outcome("t", "list", "success", 2.0, [], finished_at=now, index_lags=[0.05, 1.2, 40.0]))
    metrics.record(
        Outcome("t", "upload", "error", 3.0, [], finished_at=now, index_lags=[0.3], timed_out=True)
    )
    metrics.record(Outcome("t", "delete", "success", 1.0, [], finished_at=now))
    text = metrics.text()
    assert "# TYPE ksentinel_index_lag_seconds histogram" in text
    buckets = _samples(text, "ksentinel_index_lag_seconds_bucket")
    assert {label for key in buckets for label, _ in key} == {"target", "le"}  # no flow, no step
    got = {dict(key)["le"]: value for key, value in buckets.items() if dict(key)["target"] == "t"}
    assert got == {
        "0.1": 1,
        "0.25": 1,
        "0.5": 2,
        "1.0": 2,
        "2.0": 3,
        "5.0": 3,
        "10.0": 3,
        "30.0": 3,
        "60.0": 4,
        "+Inf": 4,
    }
    counts = {dict(k)["target"]: v for k, v in _samples(text, "ksentinel_index_lag_seconds_count").items()}
    assert counts == {"t": 4, "quiet": 0}  # every configured target from the start, at 0
    total = _samples(text, "ksentinel_index_lag_seconds_sum")[(("target", "t"),)]
    assert total == pytest.approx(41.55)


def test_probe_registry_has_the_longest_lag_of_the_run_only_when_there_was_one() -> None:
    from prometheus_client import generate_latest

    from ksentinel.probe.metrics import probe_registry

    lagged = Outcome("t", "list", "success", 2.0, [], finished_at=time.time(), index_lags=[0.4, 1.25])
    text = generate_latest(probe_registry(lagged)).decode()
    assert _samples(text, "probe_index_lag_seconds") == {(): 1.25}
    plain = Outcome("t", "session", "success", 0.1, [], finished_at=time.time())
    assert "probe_index_lag_seconds" not in generate_latest(probe_registry(plain)).decode()


@pytest.fixture
def lag_flows() -> Iterator[threading.Event]:
    """Two throwaway flows that report index lags: one finishes, one hangs until released."""
    from ksentinel.flows import core

    release = threading.Event()

    def quick(ctx: core.FlowContext) -> None:
        with ctx.step("ksentinel-test-lag.write"):
            ctx.observe_index_lag(0.7)
            ctx.observe_index_lag(1.9)

    def hanging(ctx: core.FlowContext) -> None:
        with ctx.step("ksentinel-test-hang.write"):
            ctx.observe_index_lag(0.4)
            release.wait(10)

    core.get_flow("session")  # the built-in flows are registered first
    added = {
        "ksentinel-test-lag": core.Flow("ksentinel-test-lag", quick, "test", ("ksentinel-test-lag.write",)),
        "ksentinel-test-hang": core.Flow(
            "ksentinel-test-hang", hanging, "test", ("ksentinel-test-hang.write",)
        ),
    }
    core.REGISTRY.update(added)
    try:
        yield release
    finally:
        release.set()
        for name in added:
            core.REGISTRY.pop(name, None)


def test_lags_a_flow_observes_reach_the_outcome_and_the_metrics_also_after_a_timeout(
    lag_flows: threading.Event,
) -> None:
    from ksentinel.config import Secret, Target
    from ksentinel.flows import FlowOptions
    from ksentinel.probe.once import PassResult, render_table
    from ksentinel.probe.run import ProbeTarget
    from ksentinel.probe.runner import Runner

    target = Target("t", "http://127.0.0.1:9", 101, admin_secret=Secret("a" * 32))
    probe_target = ProbeTarget(target, Credentials(101, "a" * 32))
    metrics = ProbeMetrics(process=False)

    async def scenario() -> tuple[Outcome, Outcome]:
        runner = Runner({"t": probe_target}, FlowOptions(), metrics, max_concurrent=1)
        try:
            done, _ = await runner.run("t", "ksentinel-test-lag", 5.0, record=True)
            timed, _ = await runner.run("t", "ksentinel-test-hang", 1.0, record=True)
            lag_flows.set()
            await runner.drain(10.0)
        finally:
            runner.executor.shutdown(wait=True)
            probe_target.close()
        return done, timed

    done, timed = asyncio.run(scenario())
    assert done.ok and done.index_lags == [0.7, 1.9]
    assert timed.timed_out and timed.index_lags == [0.4]  # observed before the timeout: kept
    text = metrics.text()
    assert _samples(text, "ksentinel_index_lag_seconds_count") == {(("target", "t"),): 3}
    assert _samples(text, "ksentinel_index_lag_seconds_sum")[(("target", "t"),)] == pytest.approx(3.0)

    table = render_table(PassResult([done, timed]))
    header, first = table.splitlines()[:2]
    assert header.split()[-2:] == ["INDEX", "LAG"]
    assert first.startswith("t ") and first.endswith("median 1.30s, max 1.90s (2 writes)")
    assert "median 0.40s, max 0.40s (1 write)" in table


def test_the_once_table_has_no_lag_column_without_lags() -> None:
    from ksentinel.probe.once import PassResult, render_table

    plain = Outcome("t", "session", "success", 0.1, [StepResult("session", "session.start", 0.1, True)])
    table = render_table(PassResult([plain]))
    assert table.splitlines()[0].split() == ["TARGET", "FLOW", "STEP", "RESULT", "DURATION"]
    assert "median" not in table


def _gauge(metrics: ProbeMetrics, name: str, flow: str) -> float:
    for family in text_string_to_metric_families(metrics.text()):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("flow") == flow:
                return sample.value
    raise AssertionError(f"{name}{{flow={flow}}} not exported")


def test_the_run_duration_leaves_out_the_deliberate_waits_and_exports_them_apart() -> None:
    """A real Kaltura converts for minutes: that wait must not count against the flow latency objective."""
    steps = [
        StepResult("upload", "upload.add_entry", 0.05, True),
        StepResult("upload", "upload.wait_ready", 95.0, True, waited=94.7),
        StepResult("upload", "upload.listed", 1.6, True, waited=1.5),
    ]
    outcome = Outcome("t", "upload", "success", 96.8, steps, finished_at=time.time())
    assert outcome.waited == pytest.approx(96.2)
    assert outcome.active == pytest.approx(0.6)
    metrics = ProbeMetrics(process=False)
    metrics.configure([Pair("t", "upload", 60.0, 300.0)])
    metrics.record(outcome)
    assert _gauge(metrics, "ksentinel_probe_duration_seconds", "upload") == pytest.approx(0.6)
    assert _gauge(metrics, "ksentinel_probe_wait_seconds", "upload") == pytest.approx(96.2)
    # a timed-out run counts whole: it was slow whatever it waited for
    timed = Outcome("t", "upload", "error", 300.0, steps, timed_out=True, finished_at=time.time())
    assert timed.active == 300.0
    metrics.record(timed)
    assert _gauge(metrics, "ksentinel_probe_duration_seconds", "upload") == 300.0


@pytest.mark.parametrize(
    ("target_bound", "run_timeout", "expected"),
    [(0.5, 30.0, 0.5), (300.0, 20.0, 20.0), (60.0, 90.0, 60.0)],
)
def test_a_run_waits_for_the_conversion_the_targets_ready_timeout_within_its_own_timeout(
    target_bound: float, run_timeout: float, expected: float
) -> None:
    from ksentinel.config import Secret, Target
    from ksentinel.flows import FlowOptions
    from ksentinel.probe.config import PROBE_OPTIONS
    from ksentinel.probe.run import ProbeTarget, Run

    target = Target("t", "http://127.0.0.1:9", 101, admin_secret=Secret("a" * 32), ready_timeout=target_bound)
    probe_target = ProbeTarget(target, Credentials(101, "a" * 32))
    try:
        for options in (PROBE_OPTIONS, FlowOptions(ready_timeout=1000.0)):  # the flow options do not decide
            run = Run(probe_target, "upload", run_timeout, options)
            assert run.options.ready_timeout == expected
            assert run.options.upload_bytes == options.upload_bytes  # everything else is kept
    finally:
        probe_target.close()
