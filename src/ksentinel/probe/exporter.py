"""The exporter behind ``ksentinel probe serve``: the schedule, the runner and the HTTP endpoints.

=================================  ======================================================
``/metrics``                       the ``ksentinel_*`` series of the scheduled runs
``/probe?target=T&flow=F``         one run now, into a fresh registry with blackbox names
``/probe?...&debug=true``          that run's log instead (blackbox_exporter's debug)
``/-/healthy``                     200 while the scheduler runs
``/-/ready``                       200 once every scheduled pair has finished a first run
``/``                              a small status page
=================================  ======================================================

``/metrics`` and ``/probe`` answer in the format client_python negotiates from ``Accept``
(OpenMetrics 1.0.0 when asked for, as Prometheus does; else the text format 0.0.4), gzipped when the
client accepts it (``http.py``). An unknown target or flow on ``/probe`` is a 400 with a one-line
reason. ``/probe`` honours Prometheus' ``X-Prometheus-Scrape-Timeout-Seconds`` header (minus half a
second), as blackbox does. Its door (``door.py``): a write flow against a production target without
``allow_writes`` is a 403; a pair whose on-demand run is in progress, or started less than
``min_interval`` seconds ago, is a 429 with ``Retry-After``. With a web configuration (``web_config.py``) every endpoint is served over
TLS and/or behind basic auth (or a bearer token), as Prometheus exporters do.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections.abc import Mapping, Sequence

from ksentinel.config.values import did_you_mean
from ksentinel.flows import all_flows
from ksentinel.probe.config import Pair, ProbeConfig
from ksentinel.probe.door import DEFAULT_MIN_INTERVAL, Door, write_refusal
from ksentinel.probe.gc_pacing import FullCollections
from ksentinel.probe.gzip_cache import GzipCache
from ksentinel.probe.http import GZIP_LEVEL, HttpServer, Request, Response, accepts_gzip
from ksentinel.probe.metrics import ProbeMetrics, encoded, probe_registry
from ksentinel.probe.run import Outcome, ProbeTarget
from ksentinel.probe.runner import MAX_ON_DEMAND, Busy, Runner
from ksentinel.probe.scheduler import Scheduler
from ksentinel.probe.web_config import WebConfig, WebGuard

log = logging.getLogger(__name__)

SCRAPE_TIMEOUT_HEADER = "x-prometheus-scrape-timeout-seconds"
SCRAPE_TIMEOUT_OFFSET = 0.5
SHUTDOWN_GRACE = 30.0
_TRUE = frozenset({"true", "1", "yes"})


class Exporter:
    """Everything ``probe serve`` runs; :meth:`serve` until :meth:`stop`."""

    def __init__(
        self,
        probes: ProbeConfig,
        targets: Mapping[str, ProbeTarget],
        pairs: Sequence[Pair],
        *,
        seed: int | None = None,
        min_interval: float = DEFAULT_MIN_INTERVAL,
        web: WebConfig | None = None,
    ) -> None:
        self.probes = probes
        self.targets = dict(targets)
        self.pairs = list(pairs)
        self.metrics = ProbeMetrics()
        self._gzip = GzipCache(GZIP_LEVEL)
        #: when full garbage collections may run: between scrapes (``probe serve`` paces them)
        self.full_collections = FullCollections()
        self.metrics.configure(self.pairs)
        self.runner: Runner | None = None
        self.scheduler: Scheduler | None = None
        self.seed = seed
        self.started = time.time()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timeouts = {(p.target, p.flow): p.timeout for p in self.pairs}
        self.door = Door(min_interval)
        self.web = web
        self.guard = WebGuard(web) if web is not None else None

    @property
    def scheme(self) -> str:
        return "https" if self.guard is not None and self.guard.context is not None else "http"

    async def serve(self, host: str, port: int, *, on_listening: object = None) -> None:
        """Listen, run the schedule, and return after :meth:`stop` once runs have cleaned up."""
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self.runner = Runner(
            self.targets,
            self.probes.options,
            self.metrics,
            max_concurrent=min(len(self.pairs), self.probes.max_concurrent_runs),
            prestart=True,
        )
        self.scheduler = Scheduler(self.runner, self.pairs, jitter=self.probes.jitter, seed=self.seed)
        guard = self.guard
        server = HttpServer(
            self.handle,
            ssl_context=guard.context if guard is not None else None,
            guard=guard,
            headers=(lambda: guard.headers) if guard is not None else None,
        )
        try:
            bound = await server.start(host, port)
            if callable(on_listening):
                on_listening(bound)
            self.scheduler.start()
            await self._stop.wait()
        finally:
            if self.scheduler is not None:
                await self.scheduler.stop()
            await self.runner.drain(SHUTDOWN_GRACE)
            await server.close()
            self.runner.close()

    def stop(self) -> None:
        """Stop serving (from any thread, or a signal handler)."""
        if self._stop is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)

    # --- HTTP ------------------------------------------------------------------------------------

    async def _metrics(self, request: Request) -> Response:
        """``/metrics``: gzipped here (only the parts that changed since the last scrape, off the loop)."""
        self.full_collections.scrape_started()
        try:
            parts, content_type = self.metrics.exposition(request.headers.get("accept"))
            if not accepts_gzip(request.headers.get("accept-encoding")):
                return Response(200, parts, content_type, {"Vary": "Accept-Encoding"})
            body = await asyncio.to_thread(self._gzip.gzip, parts)
            return Response(200, body, content_type, {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
        finally:
            self.full_collections.scrape_answered()

    def first_round_done(self) -> bool:
        """Every scheduled pair has run once (what the first round built lives on)."""
        return self.scheduler is not None and self.scheduler.ready

    async def handle(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        if path == "/metrics":
            return await self._metrics(request)
        if path == "/probe":
            return await self._probe(request)
        if path == "/-/healthy":
            healthy = self.scheduler is not None and (self.scheduler.running or not self.pairs)
            return (
                Response.text(200, "Healthy")
                if healthy
                else Response.text(503, "Not healthy: the scheduler stopped")
            )
        if path == "/-/ready":
            return self._ready()
        if path == "/":
            return Response(200, self._index().encode("utf-8"), "text/html; charset=utf-8")
        return Response.text(
            404, f"not found: {request.path[:100]} (try /metrics, /probe, /-/healthy, /-/ready)"
        )

    def _ready(self) -> Response:
        scheduler = self.scheduler
        if scheduler is None:
            return Response.text(503, "Not ready: starting")
        if not self.pairs or scheduler.ready:
            return Response.text(200, "Ready")
        done = len(scheduler.completed)
        return Response.text(
            503, f"Not ready: {done} of {len(self.pairs)} scheduled flows have finished a first run"
        )

    async def _probe(self, request: Request) -> Response:
        target = request.param("target")
        flow = request.param("flow")
        if not target:
            return Response.text(400, "missing parameter: target")
        if not flow:
            return Response.text(400, "missing parameter: flow")
        if target not in self.targets:
            return Response.text(400, _unknown("target", target, self.targets))
        known_flows = all_flows()
        if flow not in known_flows:
            return Response.text(400, _unknown("flow", flow, known_flows))
        refusal = write_refusal(target, self.targets[target].target, flow, known_flows[flow])
        if refusal is not None:
            return Response.text(403, refusal)
        timeout = self._timeouts.get((target, flow), self.probes.default_timeout)
        header = request.headers.get(SCRAPE_TIMEOUT_HEADER, "")
        try:
            scrape_timeout = float(header) - SCRAPE_TIMEOUT_OFFSET if header else None
        except ValueError:
            return Response.text(400, f"bad {SCRAPE_TIMEOUT_HEADER} header: {header[:40]!r}")
        if scrape_timeout is not None and scrape_timeout > 0:
            timeout = min(timeout, scrape_timeout)
        debug = (request.param("debug") or "").lower() in _TRUE
        runner = self.runner
        if runner is None:
            return Response.text(503, "starting")
        if runner.on_demand >= MAX_ON_DEMAND:
            return Response.text(
                503, f"{MAX_ON_DEMAND} on-demand probes are running already; try again later"
            )
        turned_away = self.door.enter(target, flow, timeout)
        if turned_away is not None:
            response = Response.text(429, turned_away.reason)
            response.headers["Retry-After"] = str(turned_away.retry_after)
            return response
        lines: list[str]
        try:
            outcome, run = await runner.run(target, flow, timeout, record=False, keep_log=debug, wait=timeout)
            lines = list(run.log)
        except Busy as exc:
            outcome = Outcome(target, flow, "error", 0.0, reason=str(exc), finished_at=time.time())
            lines = [f"not run: {exc}"]
        finally:
            self.door.leave(target, flow)
        registry = probe_registry(outcome)
        if not debug:
            body, content_type = encoded(registry, request.headers.get("accept"))
            return Response(200, body, content_type)
        body, _ = encoded(registry, None)  # the log is for people: the text format
        verdict = "succeeded" if outcome.ok else f"failed ({outcome.result}: {outcome.reason})"
        text = "\n".join([*lines, f"Probe {verdict}", "", "Metrics that would have been returned:", ""])
        return Response(200, text.encode("utf-8") + body, "text/plain; charset=utf-8")

    def _index(self) -> str:
        rows = []
        for pair in self.pairs:
            last = self.metrics.last_result(pair.target, pair.flow)
            state = "not run yet" if last is None else "success" if last == 1 else "failing"
            link = f"/probe?target={pair.target}&flow={pair.flow}&debug=true"
            rows.append(
                f"<tr><td>{html.escape(pair.target)}</td><td>{html.escape(pair.flow)}</td>"
                f"<td>{pair.interval:g}s</td><td>{pair.timeout:g}s</td><td>{state}</td>"
                f'<td><a href="{html.escape(link)}">run now (debug)</a></td></tr>'
            )
        return (
            "<!doctype html><html><head><title>ksentinel probe</title></head><body>"
            "<h1>ksentinel probe</h1><p><a href='/metrics'>metrics</a> · <a href='/-/ready'>ready</a> · "
            "<a href='/-/healthy'>healthy</a></p><table border='1' cellpadding='4'>"
            "<tr><th>target</th><th>flow</th><th>interval</th><th>timeout</th><th>last run</th><th></th></tr>"
            + "".join(rows)
            + "</table></body></html>"
        )


def _unknown(kind: str, name: str, known: Mapping[str, object]) -> str:
    shown = name[:60].replace("\n", " ").replace("\r", " ")
    listed = f" (known: {', '.join(sorted(known)) or 'none'})"
    return f"unknown {kind} '{shown}'{did_you_mean(name, sorted(known), otherwise=listed)}"
