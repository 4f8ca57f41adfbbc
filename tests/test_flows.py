"""The flow catalogue against the reference platform: clean passes, each fault is caught by its flow."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ksentinel.flows import Credentials, FlowContext, FlowOptions, Sessions, all_flows, get_flow, run_flow
from ksentinel.flows.listing import MAX_PAGE_SIZE
from ksentinel.flows.sessions import SessionError
from ksentinel.kaltura import ks as ks_lib
from ksentinel.kaltura.api import KalturaApi
from ksentinel.kaltura.transport import Headers, HttpRequest, HttpResponse, HttpxTransport, Transport
from tests.conftest import Reference, start_reference

FAST = FlowOptions(upload_bytes=200_000, chunk_bytes=64_000, ready_timeout=10, poll_interval=0.05)


OPEN_CLIENTS: list[KalturaApi] = []


def context(
    ref: Reference,
    *,
    peer: bool = True,
    options: FlowOptions = FAST,
    listeners=(),
    transport: Transport | None = None,
    partner_id: int | None = None,
    admin_secret: str | None = None,
    peer_secret: str | None = None,
) -> FlowContext:
    credentials = Credentials(
        partner_id or ref.p1.id,
        admin_secret or ref.p1.admin_secret,
        ref.p1.user_secret,
        ref.p2.id if peer else None,
        (peer_secret or ref.p2.admin_secret) if peer else None,
    )
    api = KalturaApi(ref.url, partner_id=partner_id or ref.p1.id, timeout=10, transport=transport)
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
        ("cache-user-leak", "cache", "cache.user_isolated"),
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


# --- steps that cannot be exercised: "not tested", never a pass nor a failure (issue 12) -----------


class Shim:
    """A transport in front of the reference platform that changes some answers (see subclasses)."""

    def __init__(self) -> None:
        self.inner = HttpxTransport()
        OPEN_SHIMS.append(self)

    def send(self, request: HttpRequest) -> HttpResponse:
        params = _params(request)
        if params is not None and request.url.lower().endswith("/service/baseentry/action/list"):
            return self.on_list(request, params)
        return self.inner.send(request)

    def on_list(self, request: HttpRequest, params: dict[str, Any]) -> HttpResponse:
        return self.inner.send(request)

    def close(self) -> None:
        self.inner.close()


OPEN_SHIMS: list[Shim] = []


@pytest.fixture(autouse=True)
def _close_shims() -> Iterator[None]:
    yield
    while OPEN_SHIMS:
        OPEN_SHIMS.pop().close()


def _params(request: HttpRequest) -> dict[str, Any] | None:
    if not request.body or request.headers.get("Content-Type") != "application/json":
        return None
    return json.loads(request.body)


def _with(request: HttpRequest, params: dict[str, Any]) -> HttpRequest:
    return dataclasses.replace(request, body=json.dumps(params).encode())


def _json(response: HttpResponse, value: Any, **headers: str) -> HttpResponse:
    kept = [(k, v) for k, v in response.headers.items() if k.lower() not in ("content-length", "x-kaltura")]
    return HttpResponse(
        response.status, Headers([*kept, *headers.items()]), json.dumps(value).encode(), response.elapsed
    )


class UnclampedPager(Shim):
    """A server without the page size clamp: ``pageSize`` over 500 lists that many entries."""

    def on_list(self, request: HttpRequest, params: dict[str, Any]) -> HttpResponse:
        size = int((params.get("pager") or {}).get("pageSize") or 0)
        if size <= MAX_PAGE_SIZE:
            return self.inner.send(request)
        objects: list[Any] = []
        answer: dict[str, Any] = {}
        for index in (1, 2):
            pager = {**params["pager"], "pageSize": MAX_PAGE_SIZE, "pageIndex": index}
            response = self.inner.send(_with(request, {**params, "pager": pager}))
            answer = json.loads(response.body)
            objects += answer.get("objects") or []
        return _json(response, {**answer, "objects": objects[:size]})


class LeakyListCache(Shim):
    """A response cache in front of ``baseEntry.list`` whose key has the partner but not the user."""

    def __init__(self) -> None:
        super().__init__()
        self.cached: dict[str, HttpResponse] = {}
        self.hits = 0

    def on_list(self, request: HttpRequest, params: dict[str, Any]) -> HttpResponse:
        if params.get("nocache"):
            return self.inner.send(request)
        partner = ks_lib.decode(params["ks"]).partner_id
        key = json.dumps([partner, {k: v for k, v in params.items() if k != "ks"}], sort_keys=True)
        if key in self.cached:
            self.hits += 1
            return _json(
                self.cached[key], json.loads(self.cached[key].body), **{"X-Kaltura": "cached-dispatcher,x,0"}
            )
        response = self.inner.send(request)
        self.cached[key] = response
        return response


class EveryUserListsAll(Shim):
    """A platform where a USER session lists every user's entries (as with ``list:*``)."""

    def __init__(self, admin_ks: Callable[[], str]) -> None:
        super().__init__()
        self.admin_ks = admin_ks

    def on_list(self, request: HttpRequest, params: dict[str, Any]) -> HttpResponse:
        return self.inner.send(_with(request, {**params, "ks": self.admin_ks()}))


def test_the_page_size_clamp_is_not_tested_with_few_entries(fresh_reference: Reference) -> None:
    seen = []
    result = run_flow(get_flow("list"), context(fresh_reference, listeners=(seen.append,)))
    assert result.status == "success", result
    clamp = next(s for s in result.steps if s.name == "list.page_size_clamp")
    assert (clamp.ok, clamp.tested, clamp.outcome) == (True, False, "not_tested")
    assert clamp.reason == "only 7 entries match; the clamp needs more than 500"
    assert result.not_tested == [clamp] and seen[-2] == clamp  # listeners see it as recorded
    assert all(s.tested for s in result.steps if s is not clamp)


@pytest.mark.slow
def test_the_page_size_clamp_is_tested_with_more_than_500_entries_and_can_fail(
    fresh_reference: Reference,
) -> None:
    many = dataclasses.replace(FAST, list_seed=MAX_PAGE_SIZE + 1, list_page_size=200)
    result = run_flow(get_flow("list"), context(fresh_reference, options=many))
    assert result.status == "success", (result.failure, result.error)
    clamp = next(s for s in result.steps if s.name == "list.page_size_clamp")
    assert clamp.ok and clamp.tested and result.not_tested == []
    # a server that does not clamp: pageSize 501 lists 501 of the 501 entries
    result = run_flow(get_flow("list"), context(fresh_reference, options=many, transport=UnclampedPager()))
    assert result.status == "failure" and result.failure is not None
    assert result.failure.step == "list.page_size_clamp"
    assert "pageSize 501 returned 501 of 501 matching entries, expected 500" in result.failure.reason
    assert fresh_reference.server.platform.store.all_entries() == []


def test_the_clamp_step_still_fails_what_it_checks_with_few_entries(fresh_reference: Reference) -> None:
    class DefaultPage(Shim):  # a server that ignores a pageSize over the limit: the default page of 3
        def on_list(self, request: HttpRequest, params: dict[str, Any]) -> HttpResponse:
            if int((params.get("pager") or {}).get("pageSize") or 0) > MAX_PAGE_SIZE:
                params = {**params, "pager": {**params["pager"], "pageSize": 3}}
            return self.inner.send(_with(request, params))

    result = run_flow(get_flow("list"), context(fresh_reference, transport=DefaultPage()))
    assert result.status == "failure" and result.failure is not None
    assert result.failure.step == "list.page_size_clamp", result.failure
    assert "returned 3 of 7 matching entries, expected all 7" in result.failure.reason
    clamp = result.steps[-1]
    assert clamp.name == "list.page_size_clamp" and not clamp.ok and clamp.tested


def test_a_user_never_receives_a_list_cached_for_another_user(fresh_reference: Reference) -> None:
    leaky = LeakyListCache()
    result = run_flow(get_flow("cache"), context(fresh_reference, transport=leaky))
    assert result.status == "failure", result
    assert result.failure is not None and result.failure.step == "cache.user_isolated", result.failure
    assert "a USER session received the list cached for another USER session" in result.failure.reason
    assert "(a cache hit)" in result.failure.reason and leaky.hits >= 1
    assert fresh_reference.server.platform.store.all_entries() == []


def test_user_isolation_is_not_tested_where_users_list_every_entry(fresh_reference: Reference) -> None:
    ctx_box: list[FlowContext] = []
    shim = EveryUserListsAll(lambda: ctx_box[0].sessions.admin())
    ctx = context(fresh_reference, peer=False, transport=shim)  # the shim would give the peer our KS too
    ctx_box.append(ctx)
    result = run_flow(get_flow("cache"), ctx)
    assert result.status == "success", (result.failure, result.error)
    assert [(s.name, s.reason) for s in result.not_tested] == [
        (
            "cache.user_isolated",
            "a USER session lists other users' entries on this target: no per-user answer to compare",
        )
    ]


def test_not_tested_outside_a_step_is_a_programming_error(fresh_reference: Reference) -> None:
    ctx = context(fresh_reference)
    with pytest.raises(RuntimeError, match="outside a step"):
        ctx.not_tested("nothing runs")


# --- a session the target refuses with the configured credentials: an error, not a failure ---------


@pytest.mark.parametrize(
    ("flow_name", "step", "code", "partner", "secret"),
    [
        ("cache", "cache.seed", "INVALID_KS", None, "wrong-secret-0123456789abcdef"),
        ("list", "list.seed", "INVALID_KS", 999, None),
        ("session", "session.start", "START_SESSION_ERROR", None, "wrong-secret-0123456789abcdef"),
        ("session", "session.start", "SERVICE_FORBIDDEN_CONTENT_BLOCKED", 999, None),
    ],
)
def test_a_session_refused_for_wrong_credentials_is_an_error_not_a_failure(
    fresh_reference: Reference, flow_name: str, step: str, code: str, partner: int | None, secret: str | None
) -> None:
    ctx = context(fresh_reference, partner_id=partner, admin_secret=secret)
    result = run_flow(get_flow(flow_name), ctx)
    assert result.status == "error" and result.failure is None, result
    assert isinstance(result.error, SessionError), result.error
    assert (result.error.code, result.error.step) == (code, step)
    assert f"partner {partner or fresh_reference.p1.id} refuses the configured admin secret" in str(
        result.error
    )
    # session.start's answer names what is wrong: an unknown partner, or the secret
    expected = "is the partner id right?" if partner else "is the admin secret right?"
    assert expected in str(result.error), result.error
    failed = result.steps[-1]
    assert (failed.name, failed.ok, failed.code) == (step, False, code)


def test_a_wrong_peer_secret_is_an_error_of_the_partner_step(fresh_reference: Reference) -> None:
    ctx = context(fresh_reference, peer_secret="wrong-peer-secret-0123456789")
    result = run_flow(get_flow("cache"), ctx)
    assert result.status == "error" and isinstance(result.error, SessionError), result
    assert (result.error.code, result.error.step) == ("INVALID_KS", "cache.partner_isolated")
    assert f"partner {fresh_reference.p2.id} refuses the configured peer admin secret" in str(result.error)
    assert fresh_reference.server.platform.store.all_entries() == []


def test_a_valid_session_the_platform_refuses_is_a_failure(fresh_reference: Reference) -> None:
    class RefuseGets(Shim):  # INVALID_KS for every baseEntry.get, whatever the KS
        def send(self, request: HttpRequest) -> HttpResponse:
            if request.url.lower().endswith("/service/baseentry/action/get"):
                error = {"code": "INVALID_KS", "message": "Invalid KS", "objectType": "KalturaAPIException"}
                return HttpResponse(
                    200, Headers({"Content-Type": "application/json"}), json.dumps(error).encode(), 0.0
                )
            return super().send(request)

    result = run_flow(get_flow("cache"), context(fresh_reference, transport=RefuseGets()))
    assert result.status == "failure" and result.error is None, result
    assert result.failure is not None and result.failure.step == "cache.repeat_hit"
    assert result.failure.code == "INVALID_KS"
