"""The exporter over uvicorn + Starlette: negotiation, gzip, health, bad requests, limits, TLS and auth.

Also the fast /metrics exposition held byte for byte to client_python's ``generate_latest`` (text
0.0.4) and OpenMetrics encoder on the same state, and read back by client_python's parsers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import http.client
import logging
import math
import re
import select
import signal
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h11
import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from prometheus_client.parser import text_string_to_metric_families
from uvicorn.protocols.http.h11_impl import H11Protocol

from ksentinel.flows import all_flows
from ksentinel.flows.core import StepResult
from ksentinel.probe.config import Pair, ProbeConfig, Row
from ksentinel.probe.exporter import Exporter
from ksentinel.probe.http import CHUNK, MAX_HEAD, HttpServer, Request, Response
from ksentinel.probe.metrics import ProbeMetrics
from ksentinel.probe.run import Outcome
from ksentinel.probe.web_config import load_web_config
from tests.conftest import Reference, start_reference
from tests.test_probe_exporter import probe_target, reference_target, serving, value, wait_for
from tests.test_probe_exporter_door import PASSWORD, bcrypt_hash, make_pki, web_config

#: what Prometheus 2.x/3.x sends by default (scrape_protocols: OpenMetrics first)
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
#: client_python adds "; escaping=underscores" when the client named a version
OM_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Prometheus' classic name rule: names that need no quoting or escaping in either format
LEGACY_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
ODD = ('quote"d', "back\\slash", "new\nline", "ünï ✓", "")


# --- the exposition, byte for byte --------------------------------------------------------------


def populated(*, process: bool = False) -> ProbeMetrics:
    """Several targets (some with odd names), flows, steps, failures, errors, lags, clean-up errors."""
    metrics = ProbeMetrics(process=process)
    targets = ("staging", "prod-eu", *ODD)
    flows = ("session", "upload", "list", "cache")
    metrics.configure([Pair(t, f, 60.0 if f != "upload" else 300.0, 30.0) for t in targets for f in flows])
    declared = all_flows()
    for round_ in range(3):
        for index, target in enumerate(targets):
            for flow in flows:
                steps = [
                    StepResult(
                        flow,
                        step,
                        0.001 * (1 + index) * (1 + position) + round_ * 7.3,
                        ok=(position + index + round_) % 5 != 3,
                        code="INVALID_KS" if (position + round_) % 7 == 2 else "",
                        tested=position != 4,
                    )
                    for position, step in enumerate(declared[flow].steps)
                ]
                steps.append(StepResult(flow, "not.declared", 0.25, ok=False, code="NOT_A_CODE"))
                result = ("success", "failure", "error")[(index + round_) % 3]
                metrics.record(
                    Outcome(
                        target,
                        flow,
                        result,
                        12345.678 * (round_ + 1),
                        steps,
                        failed_step=declared[flow].steps[0],
                        code="TIMEOUT" if result == "error" else "",
                        timed_out=result == "error" and flow == "session",
                        cleanup_errors=["left 0_abcdefgh"] if index % 2 else [],
                        finished_at=1_700_000_000.123456 + round_,
                        index_lags=[0.05, 1.7, 75.0] if flow == "list" else [],
                        misconfigured=(index == 1 and round_ == 2),
                    )
                )
                metrics.cache_lookup(target, ("hit", "miss", "weird")[(index + round_) % 3])
    for lag in (0.0, 0.004, 0.3, 2.0, 120.0, 1e-9):
        metrics.observe_schedule_lag("cache", lag)
    metrics.observe_schedule_lag("upload", 0.02)
    metrics.add_cleanup_errors("staging", "upload", 2_345_678)  # Go's exponent form past a million
    return metrics


def test_the_fast_exposition_is_client_pythons_byte_for_byte() -> None:
    metrics = populated()
    text, content_type = metrics.exposition(None)
    assert content_type == TEXT_CONTENT_TYPE
    assert b"".join(text) == generate_latest(metrics.registry)
    om, om_type = metrics.exposition(PROMETHEUS_ACCEPT)
    assert om_type.startswith(OM_CONTENT_TYPE)
    assert b"".join(om) == openmetrics.generate_latest(metrics.registry)
    assert metrics.render() == generate_latest(metrics.registry)
    # whatever the client asks for, the bytes are what client_python's choice would write
    for accept in (
        "",
        "text/plain",
        "text/plain;version=1.0.0;escaping=allow-utf-8",
        "application/openmetrics-text",
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
        "application/openmetrics-text;version=2.0.0",
        "application/json",
    ):
        encoder, expected_type = choose_encoder(accept)
        body, served_type = metrics.exposition(accept)
        assert served_type == expected_type, accept
        assert b"".join(body) == encoder(metrics.registry), accept
    # the escaping a client may ask for changes nothing because every name is a legacy one
    for family in metrics.collect():
        assert LEGACY_NAME.fullmatch(family.name)
        for sample in family.samples:
            assert LEGACY_NAME.fullmatch(sample.name)
            assert all(LEGACY_NAME.fullmatch(label) for label in sample.labels)


def test_the_exposition_reads_back_with_client_pythons_parsers() -> None:
    metrics = populated()
    expected = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in metrics.collect() for s in f.samples
    }
    text = b"".join(metrics.exposition(None)[0]).decode()
    parsed = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    assert parsed == expected
    om = b"".join(metrics.exposition(PROMETHEUS_ACCEPT)[0]).decode()
    assert om.endswith("# EOF\n") and om.count("# EOF") == 1
    families = {f.name: f for f in om_families(om)}
    om_parsed = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples
    }
    assert om_parsed == expected
    assert families["ksentinel_probe_runs"].type == "counter"  # OpenMetrics names counters without _total
    assert families["ksentinel_probe_step_duration_seconds"].type == "histogram"
    # the odd label values survive both formats
    targets = {dict(labels).get("target") for _, labels in parsed}
    assert set(ODD) <= targets
    # a sample of each kind, as recorded
    runs = sum(
        v
        for (n, labels), v in parsed.items()
        if n == "ksentinel_probe_runs_total" and ("target", 'quote"d') in labels
    )
    assert runs == 12
    cache = ("flow", "cache")
    assert parsed[("ksentinel_probe_schedule_lag_seconds_count", (cache,))] == 6
    assert parsed[("ksentinel_probe_schedule_lag_seconds_bucket", (cache, ("le", "+Inf")))] == 6
    assert parsed[("ksentinel_probe_schedule_lag_seconds_bucket", (cache, ("le", "0.01")))] == 3
    assert parsed[("ksentinel_probe_schedule_lag_seconds_count", (("flow", "list"),))] == 0  # from the start
    lag = (("target", "new\nline"),)
    assert parsed[("ksentinel_index_lag_seconds_count", lag)] == 9
    assert parsed[("ksentinel_index_lag_seconds_bucket", (*lag[:0], ("le", "60.0"), *lag))] == 6
    assert "1.700000002123456e+09" in text  # client_python's (Go's) number format for big floats


def test_the_process_series_come_after_ours_in_the_negotiated_format() -> None:
    metrics = populated(process=True)
    text = b"".join(metrics.exposition(None)[0]).decode()
    names = [f.name for f in text_string_to_metric_families(text)]
    assert names[0] == "ksentinel_probe_success" and "process_resident_memory_bytes" in names
    assert names.index("process_resident_memory_bytes") > names.index("ksentinel_probe_schedule_lag_seconds")
    om = b"".join(metrics.exposition(PROMETHEUS_ACCEPT)[0]).decode()
    assert om.endswith("# EOF\n") and om.count("# EOF") == 1
    assert "process_cpu_seconds" in {f.name for f in om_families(om)}
    assert {f.name for f in metrics.registry.collect()} >= {"process_cpu_seconds", "ksentinel_probe_success"}


def test_an_empty_exporter_exposes_its_families() -> None:
    metrics = ProbeMetrics(process=False)
    assert b"".join(metrics.exposition(None)[0]) == generate_latest(metrics.registry)
    assert b"".join(metrics.exposition(PROMETHEUS_ACCEPT)[0]) == openmetrics.generate_latest(metrics.registry)


# --- the server, on its own -----------------------------------------------------------------------


@contextlib.contextmanager
def server_thread(handler: Any, **options: Any) -> Iterator[tuple[int, HttpServer]]:
    """An :class:`HttpServer` on 127.0.0.1:0 in a thread with its own loop."""
    loop = asyncio.new_event_loop()
    server = HttpServer(handler, **options)
    box: dict[str, Any] = {}
    ready = threading.Event()

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            box["bound"] = loop.run_until_complete(server.start("127.0.0.1", 0))
        except BaseException as exc:
            box["error"] = exc
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(server.close())
        loop.close()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert ready.wait(15) and "error" not in box, box.get("error")
    try:
        yield box["bound"][1], server
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(15)
        assert not thread.is_alive()


async def _echo(request: Request) -> Response:
    if request.path == "/boom":
        raise RuntimeError("the handler broke")
    if request.path == "/slow":
        await asyncio.sleep(0.3)
    if request.path == "/big":
        return Response(
            200, [b"line %d\n" % i for i in range(2000)], "text/plain; version=0.0.4; charset=utf-8"
        )
    if request.path == "/huge":  # several of the server's chunks
        return Response(200, huge_body(), "text/plain; version=0.0.4; charset=utf-8")
    response = Response.text(200, f"{request.method} {request.path} {request.param('q')}")
    response.headers["X-Content-Type-Options"] = "mine"  # the handler's own header wins
    return response


def huge_body() -> list[bytes]:
    return [b"part %d: %s\n" % (i, b"x" * (i % 5000)) for i in range(5000)]


def raw(port: int, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it (or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


@pytest.fixture(scope="module")
def echo() -> Iterator[int]:
    with server_thread(
        _echo, headers=lambda: {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "deny"}
    ) as (port, _):
        yield port


def test_get_head_404_and_405(echo: int) -> None:
    url = f"http://127.0.0.1:{echo}"
    with httpx.Client(timeout=5) as client:
        got = client.get(f"{url}/x", params={"q": "1"})
        assert got.status_code == 200 and got.text == "GET /x 1\n"
        assert got.headers["X-Frame-Options"] == "deny" and got.headers["X-Content-Type-Options"] == "mine"
        assert "server" not in got.headers  # no "server: uvicorn"
        head = client.head(f"{url}/x")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len("HEAD /x None\n"))
        for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
            refused = client.request(method, f"{url}/x")
            assert refused.status_code == 405, method
            assert refused.headers["Allow"] == "GET, HEAD"
            assert refused.text == f"method {method} not allowed\n"
            assert refused.headers["X-Frame-Options"] == "deny", "every answer has the configured headers"


def test_a_handler_failure_is_a_500_and_the_server_keeps_serving(
    echo: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="ksentinel.probe.http")
    conn = http.client.HTTPConnection("127.0.0.1", echo, timeout=5)
    try:
        conn.request("GET", "/boom")
        failed = conn.getresponse()
        assert failed.status == 500 and failed.read() == b"internal error (see the exporter's log)\n"
        sock = conn.sock
        conn.request("GET", "/after")  # the same connection: a 500 does not close it
        after = conn.getresponse()
        assert after.status == 200 and after.read() == b"GET /after None\n"
        assert conn.sock is sock
    finally:
        conn.close()
    assert "handler failed for /boom" in caplog.text and "the handler broke" in caplog.text


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One HTTP/1.1 response (head, body) read off ``sock`` by its Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head, body


def test_keep_alive_serves_requests_one_after_the_other(echo: int) -> None:
    with socket.create_connection(("127.0.0.1", echo), timeout=5) as sock:
        bodies = []
        for path in (b"/one", b"/slow", b"/three"):
            sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            head, body = read_response(sock)
            assert head.startswith(b"HTTP/1.1 200 OK") and b"connection: close" not in head.lower()
            bodies.append(body)
        sock.sendall(b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, body = read_response(sock)
        assert b"connection: close" in head.lower()
        assert sock.recv(65536) == b"", "closed after a request that asked for it"
    assert [*bodies, body] == [
        b"GET /one None\n",
        b"GET /slow None\n",
        b"GET /three None\n",
        b"GET /last None\n",
    ]


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nbroken header line\r\n\r\n", b"400"),
        (b"GET /x?" + b"&".join(b"a%d=1" % i for i in range(40)) + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEAD + 10) + b"\r\n\r\n", b"431"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", b"413"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", b"413"),
    ],
)
def test_bad_and_oversized_requests_are_refused_and_closed(
    echo: int, request_bytes: bytes, status: bytes
) -> None:
    answer = raw(echo, request_bytes)  # returns once the server closes the connection
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]


def test_a_head_that_trickles_past_the_limit_is_refused(echo: int) -> None:
    with socket.create_connection(("127.0.0.1", echo), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
        answer = b""
        for _ in range(4 * MAX_HEAD // 1024):
            if select.select([sock], [], [], 0.01)[0]:  # answered (and about to close): stop sending
                answer = sock.recv(65536)
                break
            sock.sendall(b"a" * 1024)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]


def test_silent_and_half_sent_requests_are_dropped_after_the_head_timeout() -> None:
    with server_thread(_echo, head_timeout=0.5) as (port, _):
        for data in (b"", b"GET / HTTP/1.1\r\nHost: x\r\n"):
            started = time.monotonic()
            assert raw(port, data, timeout=5) == b""
            assert 0.4 < time.monotonic() - started < 3, data
        # a keep-alive connection between requests is not held to the head deadline
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            for _ in range(2):
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                head, body = read_response(sock)
                assert head.startswith(b"HTTP/1.1 200") and body == b"GET / None\n"
                time.sleep(0.8)


def test_the_uvicorn_internals_the_head_deadline_reads() -> None:
    """``http._protocol`` subclasses uvicorn's ``H11Protocol`` and reads its ``conn``, ``loop`` and
    ``transport``: this fails first when an uvicorn upgrade moves them (pyproject bounds uvicorn)."""
    with server_thread(_echo) as (port, server), socket.create_connection(("127.0.0.1", port), timeout=5):
        time.sleep(0.2)
        assert server._server is not None
        protocols = list(server._server.server_state.connections)
        assert len(protocols) == 1
        protocol = protocols[0]
        assert isinstance(protocol, H11Protocol)
        assert isinstance(protocol.conn, h11.Connection) and protocol.conn.their_state is h11.IDLE, (
            "uvicorn's H11Protocol.conn is not the h11 connection any more: adapt probe/http._protocol"
        )
        assert isinstance(protocol.loop, asyncio.AbstractEventLoop)
        assert isinstance(protocol.transport, asyncio.Transport)
        assert protocol._deadline is not None, "the head deadline runs from the connection"


def test_connections_beyond_the_limit_get_a_503() -> None:
    with server_thread(_echo, max_connections=2) as (port, _):
        first = socket.create_connection(("127.0.0.1", port), timeout=5)
        second = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            time.sleep(0.2)
            assert raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 503")
            second.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert second.recv(65536).startswith(b"HTTP/1.1 200"), (
                "the connections within the limit are served"
            )
        finally:
            first.close()
            second.close()
        time.sleep(0.2)
        assert raw(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(
            b"HTTP/1.1 200"
        )


def test_gzip_when_the_client_accepts_it(echo: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", echo, timeout=5)
    try:
        conn.request("GET", "/big", headers={"Accept-Encoding": "gzip"})
        zipped = conn.getresponse()
        body = zipped.read()
        assert (
            zipped.getheader("Content-Encoding") == "gzip" and zipped.getheader("Vary") == "Accept-Encoding"
        )
        assert int(zipped.getheader("Content-Length") or 0) == len(body)
        conn.request("GET", "/big", headers={"Accept-Encoding": "identity"})
        plain = conn.getresponse()
        assert plain.getheader("Content-Encoding") is None
        assert gzip.decompress(body) == plain.read() == b"".join(b"line %d\n" % i for i in range(2000))
        conn.request("GET", "/small", headers={"Accept-Encoding": "gzip"})
        small = conn.getresponse()
        assert small.getheader("Content-Encoding") is None and small.read() == b"GET /small None\n"
    finally:
        conn.close()


def test_start_binds_port_0_and_reports_bind_errors() -> None:
    async def scenario() -> None:
        before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        server = HttpServer(_echo)
        host, port = await server.start("127.0.0.1", 0)
        assert host == "127.0.0.1" and port > 0
        # uvicorn installs no signal handlers (the caller owns them), even in the main thread
        assert {sig: signal.getsignal(sig) for sig in before} == before
        with pytest.raises(OSError):
            await HttpServer(_echo).start("127.0.0.1", port)
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{port}/x")).status_code == 200
        await server.close()
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient() as client:
                await client.get(f"http://127.0.0.1:{port}/x")
        if socket.has_ipv6:
            six = HttpServer(_echo)
            try:
                _, port6 = await six.start("::1", 0)
            except OSError:
                return  # no IPv6 loopback here
            async with httpx.AsyncClient() as client:
                assert (await client.get(f"http://[::1]:{port6}/x")).status_code == 200
            await six.close()

    asyncio.run(scenario())


# --- the exporter's endpoints over the server -----------------------------------------------------


@pytest.fixture(scope="module")
def exporter_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Exporter, str]]:
    with contextlib.ExitStack() as stack:
        ref = stack.enter_context(start_reference(tmp_path_factory.mktemp("http-ref")))
        targets = {name: probe_target(reference_target(ref, name)) for name in ("ref", "ref-2")}
        probes = ProbeConfig(
            rows=(Row(flows=("session", "cache"), interval=30.0, timeout=10.0, targets=("ref",)),), jitter=0.1
        )
        exporter = Exporter(probes, targets, probes.pairs([]), seed=3, min_interval=0.0)
        url = stack.enter_context(serving(exporter))
        yield exporter, url


def test_metrics_in_the_text_format(exporter_url: tuple[Exporter, str]) -> None:
    _, url = exporter_url
    response = httpx.get(f"{url}/metrics", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["content-type"] == TEXT_CONTENT_TYPE
    assert "content-encoding" not in response.headers
    names = {f.name for f in text_string_to_metric_families(response.text)}
    assert {"ksentinel_probe_runs", "ksentinel_probe_schedule_lag_seconds", "process_cpu_seconds"} <= names
    assert value(response.text, "ksentinel_probe_interval_seconds", target="ref", flow="cache") == 30.0
    assert not response.text.rstrip().endswith("# EOF")


def test_metrics_negotiate_openmetrics(exporter_url: tuple[Exporter, str]) -> None:
    _, url = exporter_url
    for accept in (PROMETHEUS_ACCEPT, "application/openmetrics-text; version=1.0.0"):
        response = httpx.get(f"{url}/metrics", headers={"Accept": accept})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(OM_CONTENT_TYPE)
        assert response.text.endswith("# EOF\n")
        families = {f.name: f for f in om_families(response.text)}
        assert families["ksentinel_probe_runs"].type == "counter"
        assert {"ksentinel_probe_interval_seconds", "process_cpu_seconds"} <= set(families)


def test_scrapes_tell_the_full_collections_when_they_are_answered(exporter_url: tuple[Exporter, str]) -> None:
    exporter, url = exporter_url
    pacing = exporter.full_collections
    before = pacing.answered_at
    for encoding in ("identity", "gzip"):
        response = httpx.get(f"{url}/metrics", headers={"Accept-Encoding": encoding})
        assert response.status_code == 200
    assert pacing.answered_at is not None and pacing.answered_at != before
    assert pacing.scrapes_in_progress == 0


def test_a_body_in_parts_arrives_whole_in_chunks_under_one_length(echo: int) -> None:
    expected = b"".join(huge_body())
    assert len(expected) > 3 * CHUNK  # sent as several chunks
    conn = http.client.HTTPConnection("127.0.0.1", echo, timeout=10)
    try:
        for _ in range(2):  # and the connection stays usable after it
            conn.request("GET", "/huge", headers={"Accept-Encoding": "identity"})
            plain = conn.getresponse()
            assert plain.getheader("Content-Length") == str(len(expected))
            assert plain.getheader("Transfer-Encoding") is None and plain.read() == expected
        conn.request("GET", "/huge", headers={"Accept-Encoding": "gzip"})  # Starlette's GZip streams it
        zipped = conn.getresponse()
        assert zipped.getheader("Content-Encoding") == "gzip"
        assert gzip.decompress(zipped.read()) == expected
        conn.request("HEAD", "/huge")
        head = conn.getresponse()
        assert head.getheader("Content-Length") == str(len(expected)) and head.read() == b""
    finally:
        conn.close()


def test_metrics_gzipped_decompress_to_the_same_families(exporter_url: tuple[Exporter, str]) -> None:
    _, url = exporter_url
    conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=10)
    try:
        for accept, parse in (("", text_string_to_metric_families), (PROMETHEUS_ACCEPT, om_families)):
            conn.request("GET", "/metrics", headers={"Accept": accept, "Accept-Encoding": "gzip"})
            zipped = conn.getresponse()
            assert zipped.status == 200 and zipped.getheader("Content-Encoding") == "gzip"
            assert zipped.getheader("Vary") == "Accept-Encoding"
            text = gzip.decompress(zipped.read()).decode()
            conn.request("GET", "/metrics", headers={"Accept": accept, "Accept-Encoding": "identity"})
            plain = conn.getresponse().read().decode()
            # (runs may land between the two scrapes: the same families, the same series)
            assert [f.name for f in parse(text)] == [f.name for f in parse(plain)]
            assert [len(f.samples) for f in parse(text)][:3] == [len(f.samples) for f in parse(plain)][:3]
    finally:
        conn.close()


def test_probe_in_both_formats_and_gzipped(exporter_url: tuple[Exporter, str]) -> None:
    _, url = exporter_url
    params = {"target": "ref-2", "flow": "session"}
    text = httpx.get(f"{url}/probe", params=params, timeout=15)
    assert text.status_code == 200 and text.headers["content-type"] == TEXT_CONTENT_TYPE
    assert value(text.text, "probe_success") == 1.0
    om = httpx.get(f"{url}/probe", params=params, headers={"Accept": PROMETHEUS_ACCEPT}, timeout=15)
    assert om.status_code == 200 and om.headers["content-type"].startswith(OM_CONTENT_TYPE)
    assert om.text.endswith("# EOF\n")
    families = {f.name: f for f in om_families(om.text)}
    assert families["probe_success"].samples[0].value == 1.0
    assert {s.labels["step"] for s in families["probe_step_duration_seconds"].samples} == set(
        all_flows()["session"].steps
    )
    with httpx.Client(timeout=15) as client:  # httpx asks for gzip and decompresses
        zipped = client.get(f"{url}/probe", params=params, headers={"Accept": PROMETHEUS_ACCEPT})
        assert zipped.headers["content-encoding"] == "gzip" and zipped.text.endswith("# EOF\n")
    debug = httpx.get(
        f"{url}/probe", params={**params, "debug": "true"}, headers={"Accept": PROMETHEUS_ACCEPT}
    )
    assert debug.headers["content-type"] == "text/plain; charset=utf-8"
    assert "probe_success 1.0" in debug.text and "# EOF" not in debug.text, "the debug page is for people"


def test_health_ready_head_and_404(exporter_url: tuple[Exporter, str]) -> None:
    _, url = exporter_url
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{url}/-/healthy").text == "Healthy\n"
        wait_for(lambda: client.get(f"{url}/-/ready").status_code == 200, 30, "/-/ready")
        assert client.get(f"{url}/-/ready").text == "Ready\n"
        head = client.head(f"{url}/metrics")
        assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 1000
        missing = client.get(f"{url}/nowhere")
        assert missing.status_code == 404 and missing.text.startswith("not found: /nowhere")
        assert client.post(f"{url}/metrics").status_code == 405
        assert client.get(f"{url}/").headers["content-type"] == "text/html; charset=utf-8"


def test_the_schedule_lag_is_observed(exporter_url: tuple[Exporter, str]) -> None:
    _, url = exporter_url
    with httpx.Client(timeout=10) as client:
        wait_for(lambda: client.get(f"{url}/-/ready").status_code == 200, 30, "/-/ready")
        text = client.get(f"{url}/metrics").text
    for flow in ("session", "cache"):
        count = value(text, "ksentinel_probe_schedule_lag_seconds_count", flow=flow)
        assert count is not None and count >= 1  # one per scheduled run
        assert value(text, "ksentinel_probe_schedule_lag_seconds_sum", flow=flow) < 5 * count  # type: ignore[operator]
    assert value(text, "ksentinel_probe_schedule_lag_seconds_count", flow="upload") is None, (
        "scheduled flows only"
    )


# --- TLS and basic auth through the server --------------------------------------------------------


def test_tls_basic_auth_openmetrics_and_gzip_as_prometheus_scrapes(
    tmp_path: Path, reference: Reference
) -> None:
    pki = make_pki(tmp_path)
    path = web_config(
        tmp_path,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        f"basic_auth_users:\n  prometheus: {bcrypt_hash(PASSWORD)}\n"
        "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n",
    )
    probes = ProbeConfig(rows=(Row(flows=("session",), interval=60.0, timeout=5.0),), jitter=0.1)
    exporter = Exporter(
        probes, {"ref": probe_target(reference_target(reference, "ref"))}, [], web=load_web_config(path)
    )
    with serving(exporter) as plain_url:
        url = plain_url.replace("http://", "https://")
        trusted = ssl.create_default_context(cafile=str(pki.ca))
        headers = {"Accept": PROMETHEUS_ACCEPT}
        with httpx.Client(verify=trusted, timeout=10) as client:
            refused = client.get(f"{url}/metrics", headers=headers)
            assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Basic"
            assert refused.headers["X-Content-Type-Options"] == "nosniff"
            ok = client.get(f"{url}/metrics", headers=headers, auth=("prometheus", PASSWORD))
            assert ok.status_code == 200 and ok.http_version == "HTTP/1.1"
            assert (
                ok.headers["content-type"].startswith(OM_CONTENT_TYPE)
                and ok.headers["content-encoding"] == "gzip"
            )
            assert ok.headers["X-Content-Type-Options"] == "nosniff"
            assert ok.text.endswith("# EOF\n") and "ksentinel_probe_success" in ok.text
            assert client.post(f"{url}/metrics", auth=("prometheus", PASSWORD)).status_code == 405
            assert client.post(f"{url}/metrics").status_code == 401, "the guard sees every request first"
        with pytest.raises(httpx.TransportError):  # plain HTTP to the TLS port is not answered
            httpx.get(f"{plain_url}/metrics", auth=("prometheus", PASSWORD), timeout=5)


def test_a_guard_failure_is_a_500_not_a_way_in(caplog: pytest.LogCaptureFixture) -> None:
    async def broken_guard(request: Request) -> Response | None:
        raise RuntimeError("guard broke")

    with server_thread(_echo, guard=broken_guard) as (port, _):
        answer = httpx.get(f"http://127.0.0.1:{port}/x", timeout=5)
        assert answer.status_code == 500 and "GET /x" not in answer.text
    assert "request guard failed" in caplog.text


def test_number_format_matches_go_for_large_values() -> None:
    metrics = ProbeMetrics(process=False)
    metrics.configure([Pair("t", "session", 86400.0, 30.0)])
    metrics.record(Outcome("t", "session", "success", 1.5, [], finished_at=1_712_345_678.5))
    text = metrics.text()
    assert (
        'ksentinel_probe_last_success_timestamp_seconds{flow="session",target="t"} 1.7123456785e+09' in text
    )
    assert 'ksentinel_probe_interval_seconds{flow="session",target="t"} 86400.0' in text
    assert not math.isnan(
        value(text, "ksentinel_probe_duration_seconds", target="t", flow="session") or math.nan
    )
