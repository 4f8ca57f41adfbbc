"""Every flow copes with a real Kaltura (issue 11): index lag, asynchronous conversion of real media,
CDN redirects, ``cached-with-extra-fields`` hits and an echoed KS, each alone and all at once, in JSON
and XML; and when the platform really is broken, the failure says what happened.

The behaviours come from :mod:`tests.realism_proxy` in front of a plain reference platform, so these
tests do not depend on the reference platform's own realism settings.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ksentinel.flows import Credentials, FlowContext, FlowOptions, FlowResult, Sessions, get_flow, run_flow
from ksentinel.flows import upload as upload_module
from ksentinel.flows.entries import content, random_content, sample_media
from ksentinel.kaltura.api import KalturaApi
from ksentinel.kaltura.wire import FORMAT_JSON, FORMAT_XML
from tests.conftest import Reference, start_reference
from tests.helpers import admin_ks, raw_call
from tests.realism_proxy import RealismProxy, realism_proxy

LAG = 1.0
FLOWS = ("session", "upload", "list", "delete", "cache", "multirequest", "browse")
#: the flows that list a fresh write, and the step that waits for it
LISTING_STEPS = {
    "upload": "upload.listed",
    "list": "list.first_page",
    "cache": "cache.partner_isolated",
    "multirequest": "multirequest.backref",
    "browse": "browse.seed",
}
OPTIONS = FlowOptions(
    upload_bytes=100_000,
    chunk_bytes=40_000,
    ready_timeout=20,
    poll_interval=0.05,
    list_seed=5,
    list_page_size=2,
    index_lag_timeout=10,
)
ALL = {"lag": LAG, "extra_fields": True, "redirect": True, "echo_ks": True, "convert": True}
BEHAVIOURS = {
    "lag": {"lag": LAG, "lag_jitter": 0.3},
    "extra_fields": {"extra_fields": True},
    "redirect": {"redirect": True},
    "echo_ks": {"echo_ks": True},
    "convert": {"convert": True},
    "all": {**ALL, "lag_jitter": 0.5},
    "all-xml": {**ALL, "lag_jitter": 0.5},
}


@pytest.fixture(scope="module")
def ref(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reference]:
    """A plain reference platform (conversion takes 0.3 s); the proxy adds the realism."""
    with start_reference(tmp_path_factory.mktemp("realism"), ready_after=0.3) as reference:
        yield reference


def run(
    ref: Reference, url: str, name: str, *, options: FlowOptions = OPTIONS, format: int = FORMAT_JSON
) -> FlowResult:
    credentials = Credentials(
        ref.p1.id, ref.p1.admin_secret, ref.p1.user_secret, ref.p2.id, ref.p2.admin_secret
    )
    with KalturaApi(url, partner_id=ref.p1.id, timeout=10, format=format) as api:
        return run_flow(get_flow(name), FlowContext(api, Sessions(credentials), options=options))


def explain(result: FlowResult) -> Any:
    return result.failure, result.error, [s for s in result.steps if not s.ok], result.cleanup_errors


@pytest.mark.parametrize("behaviour", sorted(BEHAVIOURS))
def test_every_flow_passes_through_each_behaviour_alone_and_all_at_once(
    ref: Reference, behaviour: str
) -> None:
    with RealismProxy(ref.url, seed=11, **BEHAVIOURS[behaviour]) as proxy:
        fmt = FORMAT_XML if behaviour.endswith("xml") else FORMAT_JSON
        results = {name: run(ref, proxy.url, name, format=fmt) for name in FLOWS}
    for name, result in results.items():
        assert result.status == "success", (behaviour, name, explain(result))
        assert result.cleanup_errors == []
    assert ref.server.platform.store.all_entries() == [], "the flows left entries behind"

    stats, lagging = proxy.stats, "lag" in BEHAVIOURS[behaviour]
    # each behaviour really happened (so the flows did meet it)
    if lagging:
        assert stats["hidden"] > 0, stats
        for name, step in LISTING_STEPS.items():
            lags = results[name].index_lags
            assert lags and all(lag > 0 for lag in lags), (name, lags)
            # the lag the proxy imposed (at least LAG * (1 - jitter)) is what the flow observed
            assert max(lags) >= 0.4 * LAG, (name, step, lags)
            # and the step says it waited: the wait is not API latency (StepResult.active)
            waited = [s for s in results[name].steps if s.name == step]
            assert waited and max(s.waited for s in waited) > 0, (name, step, waited)
            assert all(s.active < s.duration for s in waited if s.waited), (name, step, waited)
    if BEHAVIOURS[behaviour].get("extra_fields"):
        assert stats["extra_fields"] > 0, stats
    if BEHAVIOURS[behaviour].get("redirect"):
        assert stats["redirects"] == 1 and stats["cdn_served"] == 1, stats
        cdn = [d for d in proxy.downloads if d.host.startswith("localhost:")]
        assert len(cdn) == 2, "a cross-host redirect, then a relative one"
        for download in proxy.downloads:  # never a KS, secret or credentials header, on any host
            names = {name.lower() for name in download.headers}
            assert not names & {"authorization", "cookie", "x-kaltura-session", "ks"}, download
            text = download.path + " ".join(download.headers.values())
            assert ref.p1.admin_secret not in text and "ks=" not in text.lower(), download
    if BEHAVIOURS[behaviour].get("convert"):
        assert stats["converted_to_error"] == 0, "the shipped sample media must convert"


def test_without_lag_the_lags_are_still_observed_and_small(ref: Reference) -> None:
    with realism_proxy(ref.url, extra_fields=True) as url:
        result = run(ref, url, "list")
    assert result.status == "success", explain(result)
    assert len(result.index_lags) == 1 and result.index_lags[0] > 0


def test_random_bytes_fail_upload_at_wait_ready_naming_error_converting(
    ref: Reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upload_module, "content", random_content)
    with RealismProxy(ref.url, convert=True) as proxy:
        result = run(ref, proxy.url, "upload")
    assert result.status == "failure"
    assert result.failure is not None and result.failure.step == "upload.wait_ready", explain(result)
    assert (
        "ended in ERROR_CONVERTING (-1): the platform could not convert the upload" in result.failure.reason
    )
    assert proxy.stats["converted_to_error"] >= 1
    assert ref.server.platform.store.all_entries() == [], "clean-up runs after a failure too"
    # the same bytes without the media sniffer convert: the failure is the conversion, nothing else
    with realism_proxy(ref.url) as url:
        assert run(ref, url, "upload").status == "success"


def test_a_conversion_slower_than_ready_timeout_names_the_last_status(tmp_path: Path) -> None:
    with start_reference(tmp_path / "slow", ready_after=30) as slow:
        options = FlowOptions(upload_bytes=50_000, chunk_bytes=50_000, ready_timeout=0.5, poll_interval=0.05)
        result = run(slow, slow.url, "upload", options=options)
        assert slow.server.platform.store.all_entries() == []
    assert result.failure is not None and result.failure.step == "upload.wait_ready", explain(result)
    assert "not READY after 0.5 s (ready_timeout); last status PRECONVERT (1)" in result.failure.reason


@pytest.mark.parametrize(("flow", "step"), sorted(LISTING_STEPS.items()))
def test_an_index_lag_beyond_index_lag_timeout_fails_naming_the_lag(
    ref: Reference, flow: str, step: str
) -> None:
    options = FlowOptions(
        upload_bytes=50_000,
        chunk_bytes=50_000,
        ready_timeout=20,
        poll_interval=0.05,
        list_seed=3,
        list_page_size=2,
        index_lag_timeout=0.4,
    )
    with realism_proxy(ref.url, lag=30.0) as url:
        result = run(ref, url, flow, options=options)
    assert result.status == "failure", explain(result)
    assert result.failure is not None and result.failure.step == step, explain(result)
    assert "s after it was written (search index lag beyond index_lag_timeout 0.4 s)" in result.failure.reason
    assert re.search(r"not (all )?listed|totalCount not 3", result.failure.reason), result.failure.reason
    assert result.index_lags == []
    assert ref.server.platform.store.all_entries() == []


def test_a_redirect_loop_fails_the_download_with_too_many_redirects(ref: Reference) -> None:
    with RealismProxy(ref.url, redirect_loop=True) as proxy:
        result = run(ref, proxy.url, "upload")
    assert result.failure is not None and result.failure.step == "upload.content_match", explain(result)
    assert result.failure.code == "TOO_MANY_REDIRECTS"
    assert "redirected more than 5 times" in result.failure.reason
    assert proxy.stats["redirects"] == 1 and proxy.stats["loop_redirects"] == 5


def test_uploads_are_playable_media_unique_per_run_and_sized() -> None:
    sample = sample_media()
    assert len(sample) == 6337 and sample[4:8] == b"ftyp"
    first, again, other = content(100_000, "run-1"), content(100_000, "run-1"), content(100_000, "run-2")
    assert len(first) == 100_000 and first == again and first != other
    assert first.startswith(sample) and first[len(sample) + 4 : len(sample) + 8] == b"free"
    assert int.from_bytes(first[len(sample) : len(sample) + 4], "big") == 100_000 - len(sample)
    tiny = content(10, "run-1")
    assert len(tiny) > len(sample) and tiny.startswith(sample), "never smaller than the sample"

    from pymediainfo import MediaInfo

    tracks = {t.track_type: t.format for t in MediaInfo.parse(io.BytesIO(first)).tracks}
    assert tracks.get("Video") == "AVC" and tracks.get("Audio") == "AAC", tracks
    noise = MediaInfo.parse(io.BytesIO(random_content(9000, "x"))).tracks
    assert not {t.track_type for t in noise} & {"Video", "Audio"}


# --- the proxy itself: what a client sees through it -------------------------------------------------


def _list(http: httpx.Client, url: str, ks: str, reference: str, action: str = "list", **extra: Any) -> Any:
    _, answer = raw_call(
        http,
        url,
        "baseEntry",
        action,
        ks=ks,
        filter={"objectType": "KalturaBaseEntryFilter", "referenceIdEqual": reference, "statusEqual": 7},
        nocache=1,
        **extra,
    )
    return answer


def test_the_proxy_lags_lists_and_counts_and_counts_fresh_deletes(ref: Reference, http: httpx.Client) -> None:
    ks = admin_ks(ref.p1)
    with realism_proxy(ref.url, lag=1.5) as url:
        _, entry = raw_call(
            http,
            url,
            "baseEntry",
            "add",
            ks=ks,
            entry={"objectType": "KalturaBaseEntry", "name": "lagging", "referenceId": "proxy-lag"},
        )
        fresh = _list(http, url, ks, "proxy-lag")
        assert (fresh["totalCount"], fresh["objects"]) == (0, []), "list lags behind the add"
        assert _list(http, url, ks, "proxy-lag", "count") == 0
        _, got = raw_call(http, url, "baseEntry", "get", ks=ks, entryId=entry["id"])
        assert got["id"] == entry["id"], "get is immediate"
        _wait(lambda: _list(http, url, ks, "proxy-lag")["totalCount"] == 1)
        assert _list(http, url, ks, "proxy-lag", "count") == 1
        raw_call(http, url, "baseEntry", "delete", ks=ks, entryId=entry["id"])
        ghost = _list(http, url, ks, "proxy-lag")
        assert ghost["totalCount"] == 1 and ghost["objects"] == [], "a fresh delete still counts"
        _wait(lambda: _list(http, url, ks, "proxy-lag")["totalCount"] == 0)


def test_the_proxy_echoes_the_ks_and_marks_extra_field_hits(ref: Reference, http: httpx.Client) -> None:
    forged = admin_ks(ref.p1)[:-6] + "AAAAAA"
    with realism_proxy(ref.url, echo_ks=True, extra_fields=True) as url:
        response, answer = raw_call(http, url, "baseEntry", "list", ks=forged)
        assert answer["code"] == "INVALID_KS" and forged in answer["message"], answer
        ks = admin_ks(ref.p1)
        params = {"ks": ks, "filter": {"objectType": "KalturaBaseEntryFilter", "idEqual": "0_none"}}
        raw_call(http, url, "baseEntry", "list", **params)
        response, _ = raw_call(http, url, "baseEntry", "list", **params)
        assert response.headers["X-Kaltura"].startswith("cached-with-extra-fields,")
    with realism_proxy(ref.url) as url:
        _, answer = raw_call(http, url, "baseEntry", "list", ks=forged)
        assert forged not in json.dumps(answer), "the plain reference platform masks it"


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the proxy's lag did not end"
        time.sleep(0.05)


# --- the reference platform's own realism (the default of every embedded target) ------------------


@pytest.fixture(scope="module")
def realistic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reference]:
    """The reference platform as every command starts it: realistic (index lag, conversion, ...)."""
    from ksentinel.reference.realism import Realism

    with start_reference(tmp_path_factory.mktemp("realistic"), ready_after=1.0, realism=Realism()) as ref:
        yield ref


def test_every_flow_passes_on_the_realistic_reference_platform(realistic: Reference) -> None:
    results = {name: run(realistic, realistic.url, name) for name in FLOWS}
    for name, result in results.items():
        assert result.status == "success", (name, explain(result))
        assert result.cleanup_errors == []
    for name in LISTING_STEPS:  # the platform's own lag was met and measured
        assert results[name].index_lags and min(results[name].index_lags) > 0, name
    steps = {s.name: s for s in results["upload"].steps}
    assert steps["upload.wait_ready"].waited >= 0.5, "the conversion takes a second: the flow waited"
    assert realistic.server.platform.store.all_entries() == []


def test_random_bytes_on_the_realistic_reference_end_in_error_converting_and_the_flow_names_it(
    realistic: Reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upload_module, "content", random_content)
    result = run(realistic, realistic.url, "upload")
    assert result.failure is not None and result.failure.step == "upload.wait_ready", explain(result)
    assert "ended in ERROR_CONVERTING (-1)" in result.failure.reason
    assert realistic.server.platform.store.all_entries() == [], "clean-up runs after a failure too"


def test_the_cache_flow_copes_with_invalidations_between_its_reads(tmp_path: Path) -> None:
    """Any write to the partner invalidates its cached answers: another user of a real partner, or the
    search index taking in the run's own writes, which the reference platform does after ``index_lag``.
    With a lag of milliseconds that lands between the two reads of ``cache.repeat_hit`` in most runs
    (a single repeat failed 25 of 40 runs): the flow retries a missed repeat, a bounded number of times."""
    from ksentinel.reference.realism import Realism

    with start_reference(tmp_path / "ref", realism=Realism(index_lag=0.005, index_lag_jitter=0.5)) as fast:
        results = [run(fast, fast.url, "cache") for _ in range(15)]
    failed = [explain(result) for result in results if not result.ok]
    assert failed == []
