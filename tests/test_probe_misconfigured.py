"""Issue 12 in the probe: a wrong secret is a configuration error, a step that cannot be exercised is
"not tested"; neither is a failure of the flow, and neither is measured as if it ran."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from ksentinel.config import Secret
from ksentinel.flows import FlowOptions, StepResult
from ksentinel.probe.command import probe_group
from ksentinel.probe.config import Pair
from ksentinel.probe.metrics import ProbeMetrics, probe_registry
from ksentinel.probe.once import (
    EXIT_FAILED,
    EXIT_MISCONFIGURED,
    EXIT_OK,
    PassResult,
    merged_step_states,
    merged_steps,
    render_table,
)
from ksentinel.probe.run import Outcome
from ksentinel.probe.runner import Runner
from tests.conftest import Reference
from tests.test_probe_exporter import probe_target, reference_target

WRONG = "wrong-secret-0123456789abcdef"


def _values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _v(text: str, name: str, **labels: str) -> float | None:
    return _values(text).get((name, tuple(sorted(labels.items()))))


# --- units: the outcome, the metrics, the table ------------------------------------------------------


def test_a_misconfigured_run_is_an_error_with_its_own_series_and_exit_2() -> None:
    metrics = ProbeMetrics(process=False)
    metrics.configure([Pair("t", "cache", 30.0, 10.0)])
    pair = {"target": "t", "flow": "cache"}
    text = metrics.text()
    assert _v(text, "ksentinel_probe_misconfigured", **pair) == 0  # from the start, like the counters
    assert _v(text, "ksentinel_probe_misconfigured_runs_total", **pair) == 0
    refused = [StepResult("cache", "cache.seed", 0.01, False, "INVALID_KS: Invalid KS", "INVALID_KS")]
    outcome = Outcome(
        "t",
        "cache",
        "error",
        0.02,
        refused,
        reason="cache.seed: INVALID_KS: partner 101 refuses the configured admin secret: ...",
        failed_step="cache.seed",
        code="INVALID_KS",
        misconfigured=True,
        finished_at=time.time(),
    )
    metrics.record(outcome)
    text = metrics.text()
    assert _v(text, "ksentinel_probe_success", **pair) == 0
    assert _v(text, "ksentinel_probe_misconfigured", **pair) == 1
    assert _v(text, "ksentinel_probe_misconfigured_runs_total", **pair) == 1
    assert _v(text, "ksentinel_probe_runs_total", **pair, result="error") == 1
    assert _v(text, "ksentinel_probe_runs_total", **pair, result="failure") == 0
    assert _v(text, "ksentinel_api_errors_total", **pair, step="cache.seed", code="INVALID_KS") == 1

    table = render_table(PassResult([outcome]))
    assert "t/cache at cache.seed [INVALID_KS] (misconfigured): cache.seed: INVALID_KS: partner 101" in table
    assert PassResult([outcome]).exit_code == EXIT_MISCONFIGURED == 2
    failed = dataclasses.replace(outcome, result="failure", misconfigured=False)
    assert PassResult([failed]).exit_code == EXIT_FAILED

    ok = Outcome("t", "cache", "success", 0.1, [], finished_at=time.time())
    metrics.record(ok)  # the secret is fixed: the gauge goes back to 0, the counter stays
    text = metrics.text()
    assert _v(text, "ksentinel_probe_misconfigured", **pair) == 0
    assert _v(text, "ksentinel_probe_misconfigured_runs_total", **pair) == 1


def test_a_step_not_tested_is_shown_and_never_measured_as_if_it_ran() -> None:
    steps = [
        StepResult("list", "list.ordering", 0.01, True),
        StepResult(
            "list",
            "list.page_size_clamp",
            0.02,
            True,
            "only 7 entries match; the clamp needs more",
            tested=False,
        ),
        StepResult("list", "list.narrower_filter", 0.01, True),
    ]
    outcome = Outcome("t", "list", "success", 0.04, steps, finished_at=time.time())
    assert outcome.ok and [s.name for s in outcome.not_tested] == ["list.page_size_clamp"]
    assert merged_step_states(outcome)[1] == ("list.page_size_clamp", 1, 0.02, "not tested")
    assert merged_steps(outcome)[1][3] is True  # "did not fail", for callers that only tell failures

    metrics = ProbeMetrics(process=False)
    metrics.configure([Pair("t", "list", 30.0, 10.0)])
    metrics.record(outcome)
    text = metrics.text()
    pair = {"target": "t", "flow": "list"}
    assert _v(text, "ksentinel_probe_step_duration_seconds_count", **pair, step="list.ordering") == 1
    assert (
        _v(text, "ksentinel_probe_step_duration_seconds_count", **pair, step="list.page_size_clamp") is None
    )
    assert _v(text, "ksentinel_probe_step_failures_total", **pair, step="list.page_size_clamp") is None
    assert _v(text, "ksentinel_probe_success", **pair) == 1
    blackbox = {s.labels.get("step"): s.value for f in probe_registry(outcome).collect() for s in f.samples}
    assert "list.ordering" in blackbox and "list.page_size_clamp" not in blackbox

    table = render_table(PassResult([outcome]))
    rows = [line.split() for line in table.splitlines()]
    assert ["list.page_size_clamp", "not", "tested", "0.020s"] in rows
    assert ["list.ordering", "ok", "0.010s"] in rows
    assert "probe: 1 of 1 flows succeeded, 1 step not tested" in table
    assert "t/list list.page_size_clamp not tested: only 7 entries match; the clamp needs more" in table
    assert PassResult([outcome]).exit_code == EXIT_OK


# --- against the reference platform: the runs `probe serve` records, `probe run` ---------------------


def _run(ref: Reference, flows: tuple[str, ...], **secrets: str) -> tuple[list[Outcome], str]:
    """One recorded run of each flow (as ``probe serve`` records them), with ``secrets`` replaced."""
    target = reference_target(ref, "ref")
    target = dataclasses.replace(target, **{k: Secret(v) for k, v in secrets.items()})
    probe = probe_target(target)
    metrics = ProbeMetrics(process=False)
    metrics.configure([Pair("ref", flow, 30.0, 20.0) for flow in flows])

    async def scenario() -> list[Outcome]:
        runner = Runner({"ref": probe}, FlowOptions(), metrics, max_concurrent=1)
        try:
            return [(await runner.run("ref", flow, 20.0, record=True))[0] for flow in flows]
        finally:
            runner.executor.shutdown(wait=True)
            probe.close()

    return asyncio.run(scenario()), metrics.text()


def test_probe_serve_counts_a_wrong_secret_as_a_misconfigured_error(fresh_reference: Reference) -> None:
    outcomes, text = _run(fresh_reference, ("session", "cache"), admin_secret=WRONG)
    session, cache = outcomes
    assert (session.result, session.code, session.misconfigured) == ("error", "START_SESSION_ERROR", True)
    assert (cache.result, cache.code, cache.misconfigured) == ("error", "INVALID_KS", True)
    assert cache.failed_step == "cache.seed"
    assert "refuses the configured admin secret" in cache.reason
    for flow in ("session", "cache"):
        pair = {"target": "ref", "flow": flow}
        assert _v(text, "ksentinel_probe_runs_total", **pair, result="error") == 1
        assert _v(text, "ksentinel_probe_runs_total", **pair, result="failure") == 0
        assert _v(text, "ksentinel_probe_misconfigured", **pair) == 1
        assert _v(text, "ksentinel_probe_misconfigured_runs_total", **pair) == 1
        assert _v(text, "ksentinel_probe_success", **pair) == 0


def test_probe_serve_keeps_platform_failures_failures(fresh_reference: Reference) -> None:
    outcomes, text = _run(fresh_reference, ("list", "cache"))
    assert all(o.ok and not o.misconfigured for o in outcomes), outcomes
    assert _v(text, "ksentinel_probe_misconfigured", target="ref", flow="cache") == 0
    # the list flow's clamp was not tested (7 entries): no duration of it was observed
    assert (
        _v(
            text,
            "ksentinel_probe_step_duration_seconds_count",
            target="ref",
            flow="list",
            step="list.page_size_clamp",
        )
        is None
    )
    assert (
        _v(text, "ksentinel_probe_step_duration_seconds_count", target="ref", flow="list", step="list.seed")
        == 1
    )


def test_probe_run_exits_2_when_the_peer_secret_is_wrong(fresh_reference: Reference, tmp_path: Path) -> None:
    ref = fresh_reference
    env = {
        "KSENTINEL_ADMIN_SECRET": ref.p1.admin_secret,
        "KSENTINEL_PEER_PARTNER_ID": str(ref.p2.id),
        "KSENTINEL_PEER_ADMIN_SECRET": WRONG,  # the preflight checks the admin secret only
        "KSENTINEL_CONFIG": "",
        "KSENTINEL_TARGET": "",
    }
    args = ["run", "--url", ref.url, "--partner-id", str(ref.p1.id), "--flow", "list", "--flow", "cache"]
    result = CliRunner().invoke(probe_group, args, env=env, catch_exceptions=False)
    assert result.exit_code == 2, result.output
    rows = [line.split() for line in result.stdout.splitlines()]
    assert ["adhoc", "cache", "ERROR"] in [r[:3] for r in rows]
    assert ["list.page_size_clamp", "not", "tested"] in [r[:3] for r in rows]
    assert (
        f"adhoc/cache at cache.partner_isolated [INVALID_KS] (misconfigured): cache.partner_isolated: "
        f"INVALID_KS: partner {ref.p2.id} refuses the configured peer admin secret"
    ) in result.stdout
    assert "adhoc/list list.page_size_clamp not tested: only 7 entries match" in result.stdout
    assert WRONG not in result.output
    assert ref.server.platform.store.all_entries() == []


@pytest.mark.parametrize("flow", ["session", "list"])
def test_probe_debug_log_names_a_step_not_tested_or_misconfigured(
    fresh_reference: Reference, flow: str
) -> None:
    from ksentinel.probe.run import Run

    target = reference_target(fresh_reference, "ref")
    if flow == "session":
        target = dataclasses.replace(target, admin_secret=Secret(WRONG))
    probe = probe_target(target)
    try:
        run = Run(probe, flow, 20.0, FlowOptions(), keep_log=True)
        outcome = run.execute()
    finally:
        probe.close()
    log = "\n".join(run.log)
    if flow == "session":
        assert outcome.misconfigured and "step session.start FAILED [START_SESSION_ERROR]" in log
    else:
        assert outcome.ok and "step list.page_size_clamp not tested: only 7 entries match" in log
    assert WRONG not in log
