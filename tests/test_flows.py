"""The flow catalogue against the reference platform: clean passes, each fault is caught by its flow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ksentinel.flows import Credentials, FlowContext, FlowOptions, Sessions, all_flows, get_flow, run_flow
from ksentinel.kaltura.api import KalturaApi
from tests.conftest import Reference, start_reference

FAST = FlowOptions(upload_bytes=200_000, chunk_bytes=64_000, ready_timeout=10, poll_interval=0.05)


OPEN_CLIENTS: list[KalturaApi] = []


def context(ref: Reference, *, peer: bool = True, options: FlowOptions = FAST, listeners=()) -> FlowContext:
    credentials = Credentials(
        ref.p1.id,
        ref.p1.admin_secret,
        ref.p1.user_secret,
        ref.p2.id if peer else None,
        ref.p2.admin_secret if peer else None,
    )
    api = KalturaApi(ref.url, partner_id=ref.p1.id, timeout=10)
    OPEN_CLIENTS.append(api)
    return FlowContext(api, Sessions(credentials), options=options, listeners=listeners)


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while OPEN_CLIENTS:
        OPEN_CLIENTS.pop().close()


@pytest.fixture
def faulty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Reference]:
    with start_reference(tmp_path / "faulty", faults=(request.param,), ready_after=0.1) as ref:
        yield ref


@pytest.mark.parametrize("name", sorted(all_flows()))
def test_flow_passes_on_a_clean_platform_and_cleans_up(name: str, fresh_reference: Reference) -> None:
    steps = []
    result = run_flow(get_flow(name), context(fresh_reference, listeners=(steps.append,)))
    assert result.status == "success", (result.failure, result.error, [s for s in result.steps if not s.ok])
    assert result.cleanup_errors == []
    assert [s.name for s in result.steps] == [s.name for s in steps]
    declared = set(get_flow(name).steps)
    assert {s.name for s in result.steps} <= declared, "a step name not declared in the catalogue"
    store = fresh_reference.server.platform.store
    assert store.all_entries() == [], "the flow left entries behind"
    assert all(t["status"] in (3, 5) for t in store.all_tokens()), "the flow left open upload tokens"


@pytest.mark.parametrize(
    ("faulty", "flow_name", "step"),
    [
        ("stale-cache", "cache", "cache.write_fresh"),
        ("cache-leak", "cache", "cache.partner_isolated"),
        ("pager-duplicates", "list", "list.total_count"),
        ("upload-corrupt", "upload", "upload.content_match"),
        ("wrong-error-code", "delete", "delete.gone"),
    ],
    indirect=["faulty"],
)
def test_flow_catches_its_fault(faulty: Reference, flow_name: str, step: str) -> None:
    result = run_flow(get_flow(flow_name), context(faulty))
    assert result.status == "failure", result
    assert result.failure is not None and result.failure.step == step, result.failure
    assert faulty.server.platform.store.all_entries() == [], "clean-up must run after a failure too"


@pytest.mark.parametrize("faulty", ["http-500"], indirect=True)
def test_http_500_fails_some_flow_with_the_http_code(faulty: Reference) -> None:
    results = [run_flow(get_flow(name), context(faulty)) for name in ("upload", "list", "cache")]
    failed = [r for r in results if not r.ok]
    assert failed, "one call in five is an HTTP 500: some flow must fail"
    assert any(s.code == "HTTP_500" for r in failed for s in r.steps if not s.ok)


def test_cache_flow_without_peer_skips_only_the_partner_step(fresh_reference: Reference) -> None:
    ctx = context(fresh_reference, peer=False)
    result = run_flow(get_flow("cache"), ctx)
    assert result.status == "success"
    assert "cache.partner_isolated" not in {s.name for s in result.steps}
    assert "skipped" in ctx.notes["cache.partner_isolated"]


def test_unknown_flow_is_a_clear_error() -> None:
    from ksentinel.errors import KsentinelError

    with pytest.raises(KsentinelError, match=r"unknown flow .uplaod.; known flows: .*cache, delete"):
        get_flow("uplaod")
