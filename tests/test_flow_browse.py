"""The browse flow: seeded once per context when a driver keeps the seed, pages checked, cleaned up."""

from __future__ import annotations

from pathlib import Path

from ksentinel.flows import Credentials, FlowContext, FlowOptions, Sessions, get_flow, run_flow
from ksentinel.flows.browse import KEEP_SEED, SEED, Seed, release_seed
from ksentinel.kaltura.api import KalturaApi
from tests.conftest import Reference, start_reference

FAST = FlowOptions(ready_timeout=5, poll_interval=0.05, list_seed=5, list_page_size=2)


def context(ref: Reference, api: KalturaApi) -> FlowContext:
    credentials = Credentials(ref.p1.id, ref.p1.admin_secret, ref.p1.user_secret)
    return FlowContext(api, Sessions(credentials), options=FAST)


def test_a_kept_seed_is_reused_then_released(fresh_reference: Reference) -> None:
    store = fresh_reference.server.platform.store
    with KalturaApi(fresh_reference.url, partner_id=fresh_reference.p1.id, timeout=10) as api:
        ctx = context(fresh_reference, api)
        ctx.notes[KEEP_SEED] = True
        first = run_flow(get_flow("browse"), ctx)
        assert first.status == "success", first.failure
        seed = ctx.notes[SEED]
        assert isinstance(seed, Seed) and seed.complete and len(seed.names) == 5
        assert {e["id"] for e in store.all_entries()} == set(seed.names), "kept between runs"
        second = run_flow(get_flow("browse"), ctx)
        assert second.status == "success", second.failure
        assert "browse.seed" not in {s.name for s in second.steps}, "seeded once per context"
        assert [s.name for s in second.steps].count("browse.page") == 2  # 5 entries, 2 per page
        assert all(e["tags"] == ctx.tags for e in store.all_entries())
        assert release_seed(ctx) == []
    assert store.all_entries() == []
    assert SEED not in ctx.notes


def test_overlapping_pages_fail_browse_page_and_nothing_is_left(tmp_path: Path) -> None:
    with start_reference(tmp_path / "ref", faults=("pager-duplicates",)) as ref:
        with KalturaApi(ref.url, partner_id=ref.p1.id, timeout=10) as api:
            ctx = context(ref, api)
            ctx.notes[KEEP_SEED] = True
            result = run_flow(get_flow("browse"), ctx)
            assert result.status == "failure"
            assert result.failure is not None and result.failure.step == "browse.page", result.failure
            assert SEED not in ctx.notes, "a seed that failed is dropped (and deleted)"
        assert ref.server.platform.store.all_entries() == []


def test_slow_lists_are_what_the_steps_time(tmp_path: Path) -> None:
    with start_reference(tmp_path / "ref", faults=("slow-list",)) as ref:
        with KalturaApi(ref.url, partner_id=ref.p1.id, timeout=10) as api:
            result = run_flow(get_flow("browse"), context(ref, api))
        assert result.status == "success", result.failure
        durations = {s.name: s.duration for s in result.steps}
        assert durations["browse.list"] >= 0.8 and durations["browse.list_nocache"] >= 0.8
        assert durations["browse.get"] < 0.8
        assert ref.server.platform.store.all_entries() == []
