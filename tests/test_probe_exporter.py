"""``probe serve`` in process: /metrics, /probe, health, bounded labels, broken targets, clean-up."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ksentinel.config import Target
from ksentinel.flows import Credentials, all_flows
from ksentinel.kaltura.redact import looks_like_ks, register_secret
from ksentinel.probe.config import ProbeConfig, Row
from ksentinel.probe.exporter import Exporter
from ksentinel.probe.labels import KNOWN_CODES
from ksentinel.probe.run import ProbeTarget
from tests.conftest import Reference, start_reference

SECTION_6 = (
    "ksentinel_probe_success",
    "ksentinel_probe_duration_seconds",
    "ksentinel_probe_step_duration_seconds",
    "ksentinel_probe_runs",
    "ksentinel_probe_last_success_timestamp_seconds",
    "ksentinel_api_errors",
    "ksentinel_cache_lookups",
)
ALLOWED_LABELS = {"target", "flow", "step", "result", "code", "le"}
ENTRY_ID = re.compile(r"0_[0-9a-z]{8}")
TOKEN = re.compile(r"[A-Za-z0-9+/=_%\-]{40,}")


# --- helpers shared with the other probe tests ------------------------------------------------------


def reference_target(ref: Reference, name: str, *, url: str | None = None, timeout: float = 30.0) -> Target:
    base = Target.for_reference(
        url or ref.url, ref.p1.id, ref.p1.admin_secret, ref.p1.user_secret, ref.p2.id, ref.p2.admin_secret
    )
    return dataclasses.replace(base, name=name, embedded=False, timeout=timeout)


def probe_target(target: Target) -> ProbeTarget:
    assert target.admin_secret is not None
    credentials = Credentials(
        target.partner_id,
        target.admin_secret.reveal(),
        target.user_secret.reveal() if target.user_secret else None,
        target.peer_partner_id,
        target.peer_admin_secret.reveal() if target.peer_admin_secret else None,
    )
    return ProbeTarget(target, credentials)


@contextlib.contextmanager
def serving(exporter: Exporter) -> Iterator[str]:
    """Run ``exporter`` in a thread with its own event loop; yields its base URL."""
    started = threading.Event()
    box: dict[str, object] = {}

    def listening(bound: tuple[str, int]) -> None:
        box["url"] = f"http://127.0.0.1:{bound[1]}"
        started.set()

    def main() -> None:
        try:
            asyncio.run(exporter.serve("127.0.0.1", 0, on_listening=listening))
        except BaseException as exc:  # surfaced by the assert below
            box["error"] = exc
            started.set()

    thread = threading.Thread(target=main, name="probe-exporter", daemon=True)
    thread.start()
    assert started.wait(15) and "error" not in box, box.get("error")
    try:
        yield str(box["url"])
    finally:
        exporter.stop()
        thread.join(60)
        assert not thread.is_alive(), "the exporter did not stop"
        assert "error" not in box, box.get("error")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class _Bad(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        mode = self.server.mode  # type: ignore[attr-defined]
        self.request.settimeout(5)
        with contextlib.suppress(OSError):
            self.request.recv(65536)
            if mode == "garbage":
                body = b"<html>surprise</html>"
                head = f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n"
                self.request.sendall(head.encode() + body)
            elif mode == "not-http":
                self.request.sendall(b"\x00\x01garbage that is not HTTP\r\n\r\n")
            else:  # slow: never answer
                self.server.stopping.wait(10)  # type: ignore[attr-defined]


@contextlib.contextmanager
def bad_server(mode: str) -> Iterator[str]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Bad)
    server.daemon_threads = True
    server.mode = mode  # type: ignore[attr-defined]
    server.stopping = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.stopping.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()
        thread.join(5)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- one exporter for the module: healthy targets under two names, plus broken ones ----------------

GOOD = ("ref", "ref-2")
BROKEN = ("down", "garbage", "not-http", "slow")


@pytest.fixture(scope="module")
def exporter_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Exporter, str, Reference]]:
    with contextlib.ExitStack() as stack:
        ref = stack.enter_context(start_reference(tmp_path_factory.mktemp("probe-ref")))
        urls = {
            "down": f"http://127.0.0.1:{closed_port()}",
            "garbage": stack.enter_context(bad_server("garbage")),
            "not-http": stack.enter_context(bad_server("not-http")),
            "slow": stack.enter_context(bad_server("slow")),
            "idle-slow": stack.enter_context(bad_server("slow")),  # for /probe only: never scheduled
        }
        targets = {name: probe_target(reference_target(ref, name)) for name in GOOD}
        targets.update(
            {name: probe_target(reference_target(ref, name, url=url)) for name, url in urls.items()}
        )
        probes = ProbeConfig(
            rows=(
                Row(flows=tuple(sorted(all_flows())), interval=2.0, timeout=1.8, targets=GOOD),
                Row(flows=("session", "cache"), interval=1.0, timeout=0.5, targets=BROKEN),
            ),
            jitter=0.1,
        )
        exporter = Exporter(probes, targets, probes.pairs([]), seed=7)
        url = stack.enter_context(serving(exporter))
        yield exporter, url, ref


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as client:
        yield client


def _ready(http: httpx.Client, url: str) -> None:
    wait_for(lambda: http.get(f"{url}/-/ready").status_code == 200, 30, "/-/ready")


def test_ready_and_healthy(exporter_env: tuple[Exporter, str, Reference], http: httpx.Client) -> None:
    _, url, _ = exporter_env
    assert http.get(f"{url}/-/healthy").text == "Healthy\n"
    _ready(http, url)
    assert http.get(f"{url}/-/ready").text == "Ready\n"
    assert http.get(f"{url}/nowhere").status_code == 404
    index = http.get(f"{url}/")
    assert index.status_code == 200 and "ksentinel probe" in index.text


def test_metrics_export_section_6_and_flows_succeed(
    exporter_env: tuple[Exporter, str, Reference], http: httpx.Client
) -> None:
    _, url, _ = exporter_env
    _ready(http, url)
    text = http.get(f"{url}/metrics").text
    names = {family.name for family in text_string_to_metric_families(text)}
    assert set(SECTION_6) <= names
    for target in GOOD:
        for flow in sorted(all_flows()):
            # a run on a busy CI machine may time out now and then: every pair has succeeded, though
            assert value(text, "ksentinel_probe_runs_total", target=target, flow=flow, result="success"), (
                target,
                flow,
            )
            assert value(text, "ksentinel_probe_last_success_timestamp_seconds", target=target, flow=flow)
    assert value(text, "ksentinel_probe_success", target="ref", flow="session") in (0.0, 1.0)
    assert value(text, "ksentinel_cache_lookups_total", target="ref", result="hit")
    assert value(text, "ksentinel_cache_lookups_total", target="ref", result="miss")
    assert value(
        text, "ksentinel_probe_step_duration_seconds_count", target="ref", flow="upload", step="upload.chunk"
    )
    assert value(text, "ksentinel_cache_stale_reads_total", target="ref") == 0.0
    assert value(text, "ksentinel_probe_interval_seconds", target="ref", flow="upload") == 2.0
    # the list and upload flows wait until their writes are listed: each time is an index lag
    assert value(text, "ksentinel_index_lag_seconds_count", target="ref") >= 2
    assert value(text, "ksentinel_index_lag_seconds_bucket", target="ref", le="+Inf") == value(
        text, "ksentinel_index_lag_seconds_count", target="ref"
    )


def test_broken_targets_give_zero_and_counted_errors(
    exporter_env: tuple[Exporter, str, Reference], http: httpx.Client
) -> None:
    _, url, _ = exporter_env

    def all_errored() -> bool:
        text = http.get(f"{url}/metrics").text
        return all(
            (value(text, "ksentinel_probe_runs_total", target=t, flow="session", result="error") or 0) >= 1
            for t in BROKEN
        )

    wait_for(all_errored, 20, "an error from every broken target")
    text = http.get(f"{url}/metrics").text
    for target in BROKEN:
        assert value(text, "ksentinel_probe_success", target=target, flow="session") == 0.0
    errors = {
        labels: count
        for (name, labels), count in samples(text).items()
        if name == "ksentinel_api_errors_total" and count
    }
    codes: dict[str, set[str]] = {}
    for labels in errors:
        if dict(labels)["target"] in BROKEN:
            codes.setdefault(dict(labels)["target"], set()).add(dict(labels)["code"])
    assert codes == {
        "down": {"CONNECTION"},
        "garbage": {"KSENTINEL_BAD_RESPONSE"},
        "not-http": {"PROTOCOL"},
        "slow": {"TIMEOUT"},
    }, errors
    assert value(
        text, "ksentinel_probe_step_failures_total", target="slow", flow="session", step="session.start"
    )
    assert http.get(f"{url}/-/healthy").status_code == 200


def test_series_stay_bounded_across_runs(
    exporter_env: tuple[Exporter, str, Reference], http: httpx.Client
) -> None:
    _, url, _ = exporter_env
    _ready(http, url)

    def total_runs(text: str) -> float:
        return sum(v for (n, _), v in samples(text).items() if n == "ksentinel_probe_runs_total")

    wait_for(lambda: len(samples(http.get(f"{url}/metrics").text)) > 0, 5, "metrics")
    time.sleep(1.5)  # every pair has been through its first failures and successes
    before = http.get(f"{url}/metrics").text
    wait_for(
        lambda: total_runs(http.get(f"{url}/metrics").text) >= total_runs(before) + 40, 30, "40 more runs"
    )
    after = http.get(f"{url}/metrics").text
    # series only appear for a step a flow declares and a bounded code (a run that times out on a
    # busy machine may add an error series); none ever disappear, none carry run-specific values
    may_grow = ("ksentinel_api_errors_total", "ksentinel_probe_step_failures_total", "ksentinel_probe_step_")
    new = set(samples(after)) - set(samples(before))
    assert all(name.startswith(may_grow) for name, _ in new), new
    for _, labels in new:
        label = dict(labels)
        assert label.get("code", "OTHER") in {*KNOWN_CODES, "OTHER"}
        assert label["step"] in {*all_flows()[label["flow"]].steps, "other"}
    assert set(samples(before)) - set(samples(after)) == set()


def test_no_label_value_carries_a_ks_secret_or_entry_id(
    exporter_env: tuple[Exporter, str, Reference], http: httpx.Client
) -> None:
    _, url, ref = exporter_env
    _ready(http, url)
    text = http.get(f"{url}/metrics").text
    entry_ids = {e["id"] for e in ref.server.platform.store.all_entries(include_deleted=True)}
    assert entry_ids, "the flows created entries"
    secrets = {ref.p1.admin_secret, ref.p1.user_secret, ref.p2.admin_secret, ref.p2.user_secret}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert set(sample.labels) <= ALLOWED_LABELS, sample
            for label_value in sample.labels.values():
                assert not looks_like_ks(label_value), sample
                assert not ENTRY_ID.search(label_value), sample
                assert label_value not in entry_ids and label_value not in secrets, sample
    for secret in secrets:
        assert secret not in text
    for token in TOKEN.findall(text):
        assert not looks_like_ks(token)


def test_probe_endpoint_is_blackbox_compatible(
    exporter_env: tuple[Exporter, str, Reference], http: httpx.Client
) -> None:
    _, url, _ = exporter_env
    response = http.get(f"{url}/probe", params={"target": "ref", "flow": "session"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert set(families) == {"probe_success", "probe_duration_seconds", "probe_step_duration_seconds"}
    assert families["probe_success"].samples[0].value == 1.0, response.text
    assert families["probe_duration_seconds"].samples[0].value > 0
    steps = {s.labels["step"] for s in families["probe_step_duration_seconds"].samples}
    assert steps == {"session.start", "session.get", "session.end", "session.reuse_after_end"}
    broken = http.get(f"{url}/probe", params={"target": "down", "flow": "session"})
    assert value(broken.text, "probe_success") == 0.0


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"target": "reff", "flow": "session"}, "unknown target 'reff'; did you mean 'ref'?"),
        (
            {"target": "nowhere", "flow": "session"},
            "unknown target 'nowhere' (known: down, garbage, idle-slow, not-http, ref, ref-2, slow)",
        ),
        ({"target": "ref", "flow": "sesion"}, "unknown flow 'sesion'; did you mean 'session'?"),
        ({"target": "ref"}, "missing parameter: flow"),
        ({"flow": "session"}, "missing parameter: target"),
    ],
)
def test_probe_endpoint_rejects_unknown_names_in_one_line(
    exporter_env: tuple[Exporter, str, Reference], http: httpx.Client, query: dict[str, str], reason: str
) -> None:
    _, url, _ = exporter_env
    response = http.get(f"{url}/probe", params=query)
    assert response.status_code == 400
    assert response.text == reason + "\n"


def test_probe_debug_returns_the_runs_log(
    exporter_env: tuple[Exporter, str, Reference], http: httpx.Client
) -> None:
    _, url, ref = exporter_env
    for secret in (ref.p1.admin_secret, ref.p2.admin_secret):
        register_secret(secret)
    response = http.get(f"{url}/probe", params={"target": "ref", "flow": "cache", "debug": "true"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "step cache.write_fresh ok" in text and "X-Kaltura: cached-dispatcher" in text
    assert "Probe succeeded" in text and "probe_success 1.0" in text
    assert ref.p1.admin_secret not in text
    assert not any(looks_like_ks(token) for token in TOKEN.findall(text))
    failed = http.get(f"{url}/probe", params={"target": "idle-slow", "flow": "session", "debug": "1"}).text
    assert "Probe failed (error: timed out after" in failed and "probe_success 0.0" in failed


def test_probe_honours_the_scrape_timeout_header(
    exporter_env: tuple[Exporter, str, Reference], http: httpx.Client
) -> None:
    _, url, _ = exporter_env
    started = time.monotonic()
    response = http.get(
        f"{url}/probe",
        params={"target": "idle-slow", "flow": "cache"},
        headers={"X-Prometheus-Scrape-Timeout-Seconds": "0.8"},
    )
    assert time.monotonic() - started < 0.8
    assert value(response.text, "probe_success") == 0.0


def test_timed_out_runs_still_clean_up(tmp_path: Path) -> None:
    """A run cancelled by its timeout removes what it created; the pair waits for that."""
    from ksentinel.probe.config import PROBE_OPTIONS, Pair
    from ksentinel.probe.once import run_pass

    with start_reference(tmp_path / "ref", faults=("slow-list",)) as ref:
        targets = {"ref": probe_target(reference_target(ref, "ref"))}
        try:
            result = run_pass(
                targets, [Pair("ref", "list", 0.0, 0.5), Pair("ref", "list", 0.0, 0.5)], PROBE_OPTIONS
            )
        finally:
            targets["ref"].close()
        assert [o.result for o in result.outcomes] == ["error", "error"]
        assert all(o.timed_out and o.code == "TIMEOUT" for o in result.outcomes)
        assert result.outcomes[0].failed_step == "list.first_page"
        assert ref.server.platform.store.all_entries() == []
        assert len(ref.server.platform.store.all_entries(include_deleted=True)) == 14
