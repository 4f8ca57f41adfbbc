"""One probe run: a flow against a target in a worker thread, with a timeout that still cleans up.

Flows are synchronous, so each run executes in a worker thread while the event loop keeps serving
``/metrics``. When the run's timeout passes, :meth:`Run.cancel` is called: the outcome is recorded
at once as an ``error`` (code ``TIMEOUT``), every further request of the flow fails immediately with
:class:`RunCancelled` so the flow stops at its next call, and the flow's clean-up (requests made
under the ``<flow>.cleanup`` step label) still goes out, so whatever the run created is removed.
The thread finishes on its own; the scheduler does not start the same (target, flow) again until
it has (see :class:`ksentinel.probe.runner.Runner`).

Each target has one :class:`ProbeTarget`: one HTTP connection pool and one :class:`BoundedSessions`
(KS built locally, reused and refreshed before expiry), shared by all the runs against it.

A run that could not start a session with the target's configured credentials (the flow ends with a
:class:`~ksentinel.flows.sessions.SessionError`) is an ``error`` with ``misconfigured`` set: a
configuration error, not a failure of the API.

Production (docs/production.md): a flow that writes is refused on a production target without
``allow_writes`` (an ``error`` without any request: the schedule leaves such pairs out, this also
guards ``/probe``). Every request goes through the target's rate cap (its ``max_rps``, one
:class:`~ksentinel.kaltura.transport.TokenBucket` per target) and backs off from throttling answers
(:class:`~ksentinel.kaltura.api.Backoff`, within the run's timeout and at most 60 s; each retry is
in the run log, counted in :attr:`Outcome.backoffs` and logged).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from ksentinel.config import Target
from ksentinel.errors import KsentinelError
from ksentinel.flows import Credentials, FlowContext, FlowOptions, FlowResult, Sessions, StepResult, get_flow
from ksentinel.flows.core import run_flow
from ksentinel.flows.sessions import SessionError
from ksentinel.kaltura.api import Backoff, BackoffEvent, KalturaApi, cache_status
from ksentinel.kaltura.redact import redact
from ksentinel.kaltura.transport import (
    STEP_LABEL,
    HttpRequest,
    HttpResponse,
    HttpxTransport,
    TokenBucket,
    Transport,
    TransportError,
    TransportTimeout,
)
from ksentinel.probe.labels import is_target_code

log = logging.getLogger(__name__)

MAX_LOG_LINES = 500
#: A request may run this much past the run's timeout, so the timeout itself always fires first.
DEADLINE_GRACE = 0.25
MAX_SESSIONS = 32
#: the most a run waits, all retries of one call together, when the target throttles it
MAX_BACKOFF = 60.0
#: Entry reads Kaltura's response cache may serve (the ``X-Kaltura`` header tells which it did).
CACHEABLE_SERVICES = frozenset({"baseentry", "media"})
CACHEABLE_ACTIONS = frozenset({"get", "list", "count"})
CacheObserver = Callable[[str, str], None]  # (target, hit|miss|unknown)


class RunCancelled(TransportTimeout):
    """A request of a run whose timeout has passed (clean-up requests are still sent)."""


class BoundedSessions(Sessions):
    """:class:`Sessions` whose pool keeps the :data:`MAX_SESSIONS` most recently used KS.

    Flows ask for per-run users (the cache flow's two USER sessions), so an unbounded pool would grow
    by a KS or two per run for as long as the exporter runs; the admin KS every run uses always stays.
    """

    def __init__(self, credentials: Credentials) -> None:
        super().__init__(credentials, max_pooled=MAX_SESSIONS)


class ProbeTarget:
    """What every run against one target shares: its name, URL, credentials, sessions, HTTP pool."""

    def __init__(self, target: Target, credentials: Credentials) -> None:
        self.target = target
        self.name = target.name
        self.credentials = credentials
        self.sessions = BoundedSessions(credentials)
        #: the target's own cap, shared by every run against it (``None``: not capped)
        self.rate_limit = TokenBucket(target.max_rps) if target.max_rps else None
        self.transport = HttpxTransport(rate_limit=self.rate_limit)

    def close(self) -> None:
        self.transport.close()


@dataclass
class Outcome:
    """What one run amounts to, for metrics, ``/probe`` and the ``probe run`` table."""

    target: str
    flow: str
    result: str  # success | failure | error
    duration: float
    steps: list[StepResult] = field(default_factory=list)
    reason: str = ""
    failed_step: str = ""
    code: str = ""
    timed_out: bool = False
    cleanup_errors: list[str] = field(default_factory=list)
    finished_at: float = 0.0
    #: seconds each fresh write of the run took to show up in list/count (the search index lag)
    index_lags: list[float] = field(default_factory=list)
    #: an ``error`` because the target refused to start a session with the configured credentials
    #: (wrong secret or partner id: ``code`` INVALID_KS, START_SESSION_ERROR or
    #: SERVICE_FORBIDDEN_CONTENT_BLOCKED): the probe's configuration is wrong, nothing was tested
    misconfigured: bool = False
    #: each retry after a throttling answer (ACTION_BLOCKED, HTTP 429, HTTP 503 with Retry-After)
    backoffs: list[BackoffEvent] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.result == "success"

    def backoff_summary(self) -> str:
        """``2 retries, 3.0s waited (HTTP_429 on baseEntry.list x2)``; empty without retries."""
        if not self.backoffs:
            return ""
        counts: dict[str, int] = {}
        for event in self.backoffs:
            key = f"{event.code} on {event.call}"
            counts[key] = counts.get(key, 0) + 1
        what = ", ".join(f"{key} x{n}" if n > 1 else key for key, n in counts.items())
        total = sum(event.delay for event in self.backoffs)
        plural = "retry" if len(self.backoffs) == 1 else "retries"
        return f"{len(self.backoffs)} {plural}, {total:.1f}s waited ({what})"

    @property
    def not_tested(self) -> list[StepResult]:
        """Steps that could not exercise their check on this target (neither failed nor passed)."""
        return [step for step in self.steps if step.ok and not step.tested]

    @property
    def waited(self) -> float:
        """Seconds the run waited on purpose for the platform's asynchronous work (conversion, index)."""
        return sum(step.waited for step in self.steps)

    @property
    def active(self) -> float:
        """The run's duration without its deliberate waits (what the flow latency objective judges);
        a timed-out run counts whole."""
        return self.duration if self.timed_out else max(0.0, self.duration - self.waited)

    def errors(self) -> list[tuple[str, str]]:
        """``(step, code)`` of each API or transport error the run met (invariant failures have no code)."""
        found = [(s.name, s.code) for s in self.steps if not s.ok and s.code]
        if self.code and not any(code == self.code for _, code in found):
            found.append((self.failed_step or "", self.code))
        return found


class RunTransport:
    """The run's view of the target's transport: cancellation, the step in progress, cache headers."""

    def __init__(self, inner: Transport, run: Run) -> None:
        self.inner = inner
        self.run = run

    def send(self, request: HttpRequest) -> HttpResponse:
        step = STEP_LABEL.get()
        cleanup = step.endswith(".cleanup")
        run = self.run
        what = f"{request.method} {_path(request.url)}" if run.keep_log or run.cancelled.is_set() else ""
        if run.cancelled.is_set() and not cleanup:
            run.note(f"{step or '-'}: {what} not sent: the run's {run.timeout:.3g}s timeout passed")
            raise RunCancelled(f"{what}: the probe's {run.timeout:.3g}s timeout passed")
        if not cleanup and step:
            run.current_step = step
        if not cleanup:  # a request never outlives the run's timeout (by more than a little grace)
            left = run.deadline - time.monotonic() + DEADLINE_GRACE
            request = replace(request, timeout=max(0.05, min(request.timeout, left)))
        try:
            response = self.inner.send(request)
        except TransportError as exc:
            if run.keep_log:
                run.note(f"{step or '-'}: {what} -> {exc.code}: {exc}")
            raise
        cache = self._cache_result(request, response)
        if run.keep_log:
            header = response.headers.get("X-Kaltura", "")
            run.note(
                f"{step or '-'}: {what} -> HTTP {response.status} in {response.elapsed:.3f}s"
                + (f" (X-Kaltura: {header.split(',')[0]})" if header else "")
            )
        if cache is not None and run.on_cache is not None:
            try:
                run.on_cache(run.target.name, cache)
            except Exception:  # metrics must never break a run
                log.exception("cache observer failed")
        return response

    @staticmethod
    def _cache_result(request: HttpRequest, response: HttpResponse) -> str | None:
        """``hit``/``miss``/``unknown`` for a cacheable read that did not ask to bypass the cache."""
        parts = urlsplit(request.url).path.rstrip("/").lower().split("/")
        if len(parts) < 4 or parts[-2] != "action" or parts[-4] != "service":
            return None
        if parts[-3] not in CACHEABLE_SERVICES or parts[-1] not in CACHEABLE_ACTIONS:
            return None
        if response.status != 200 or (request.body and b"nocache" in request.body):
            return None
        return cache_status(response.headers)


class Run:
    """One run of one flow against one target; :meth:`execute` runs in a worker thread."""

    def __init__(
        self,
        target: ProbeTarget,
        flow: str,
        timeout: float,
        options: FlowOptions,
        *,
        on_cache: CacheObserver | None = None,
        keep_log: bool = False,
    ) -> None:
        self.target = target
        self.flow = flow
        self.timeout = timeout
        # the conversion wait: the target's bound (a real Kaltura takes minutes), within the run's timeout
        self.options = replace(options, ready_timeout=min(target.target.ready_timeout, timeout))
        self.on_cache = on_cache
        self.cancelled = threading.Event()
        self.current_step = ""
        self.keep_log = keep_log
        self.log: deque[str] = deque(maxlen=MAX_LOG_LINES)
        self.started = time.perf_counter()
        #: seconds the run waited for its partner's gate before it could start (gate.py): deliberate
        self.gate_wait = 0.0
        self.deadline = time.monotonic() + timeout
        self._steps: list[StepResult] = []
        self._lags: list[float] = []
        self._backoffs: list[BackoffEvent] = []
        self._lock = threading.Lock()

    def note(self, line: str) -> None:
        if self.keep_log:
            self.log.append(f"{time.perf_counter() - self.started:8.3f}s  {redact(line)}")

    def cancel(self) -> None:
        self.note(f"timeout: {self.timeout:.3g}s passed during {self.current_step or 'the run'}; cleaning up")
        self.cancelled.set()

    def steps(self) -> list[StepResult]:
        with self._lock:
            return list(self._steps)

    def _on_step(self, step: StepResult) -> None:
        with self._lock:
            self._steps.append(step)
        if not step.ok:
            verdict = f"FAILED{f' [{step.code}]' if step.code else ''}: {step.reason}"
        else:
            verdict = "ok" if step.tested else f"not tested: {step.reason}"
        self.note(f"step {step.name} {verdict} ({step.duration:.3f}s)")

    def _on_backoff(self, event: BackoffEvent) -> None:
        with self._lock:
            self._backoffs.append(event)
        self.note(f"backing off: {event}")
        log.debug("%s/%s backing off: %s", self.target.name, self.flow, event)

    def _sleep(self, seconds: float) -> None:
        """A backoff wait that ends early when the run is cancelled (its next request then fails)."""
        self.cancelled.wait(seconds)

    def backoffs(self) -> list[BackoffEvent]:
        with self._lock:
            return list(self._backoffs)

    def lags(self) -> list[float]:
        with self._lock:
            return list(self._lags)

    def _on_lag(self, seconds: float) -> None:
        """A fresh write showed up in list/count after ``seconds`` (kept even if the run times out)."""
        with self._lock:
            self._lags.append(seconds)
        self.note(f"index lag: a fresh write was listed after {seconds:.3f}s")

    def execute(self) -> Outcome:
        """Run the flow and its clean-up; never raises."""
        self.started = time.perf_counter()
        self.deadline = time.monotonic() + self.timeout
        self.note(f"run of flow {self.flow} against target {self.target.name} (timeout {self.timeout:.3g}s)")
        # a request may outlive the run's timeout by the grace, so that timeout (not the request's) fires first
        api_timeout = min(self.target.target.timeout, self.timeout + DEADLINE_GRACE)
        transport = RunTransport(self.target.transport, self)
        backoff = Backoff(
            max_total=min(MAX_BACKOFF, self.timeout), sleep=self._sleep, on_backoff=self._on_backoff
        )
        try:
            flow_def = get_flow(self.flow)
            if flow_def.writes and not self.target.target.writes_allowed:
                return self._refused_write()
            with KalturaApi(
                self.target.target.url,
                partner_id=self.target.target.partner_id,
                timeout=api_timeout,
                transport=transport,
                backoff=backoff,
            ) as api:
                ctx = FlowContext(
                    api,
                    self.target.sessions,
                    options=self.options,
                    listeners=(self._on_step,),
                    lag_listeners=(self._on_lag,),
                )
                result = run_flow(flow_def, ctx)
            outcome = self._from_result(result)
        except Exception as exc:  # a flow bug or an answer no flow expected: an error, not a crash
            log.warning(
                "flow %s on %s raised %s", self.flow, self.target.name, type(exc).__name__, exc_info=True
            )
            reason = f"{type(exc).__name__}: {exc}"
            outcome = self._outcome("error", redact(reason), self.current_step, "OTHER")
        for error in outcome.cleanup_errors:
            self.note(f"clean-up: {error}")
        self.note(
            f"{outcome.result} in {outcome.duration:.3f}s" + (f": {outcome.reason}" if outcome.reason else "")
        )
        return outcome

    def _refused_write(self) -> Outcome:
        reason = (
            f"flow {self.flow} writes and target {self.target.name} is production without allow_writes: "
            "not run (read-only flows only; docs/production.md)"
        )
        self.note(reason)
        log.warning("%s", reason)
        return self._outcome("error", reason, "", "")

    def timed_out(self) -> Outcome:
        """The outcome recorded when the timeout passes (the thread is still finishing)."""
        outcome = self._outcome(
            "error",
            f"timed out after {self.timeout:.3g}s in {self.current_step or 'the run'}",
            self.current_step,
            "TIMEOUT",
        )
        outcome.timed_out = True
        outcome.duration = self.timeout
        return outcome

    def _from_result(self, result: FlowResult) -> Outcome:
        if result.ok:
            outcome = self._outcome("success", "", "", "")
        elif result.failure is not None:
            failure = result.failure
            status = "error" if is_target_code(failure.code) else "failure"
            outcome = self._outcome(status, failure.reason, failure.step, failure.code or "")
        else:
            error: KsentinelError | None = result.error
            reason = str(error) if error is not None else f"skipped: {result.skipped}"
            code = str(getattr(error, "code", "") or "")
            failed = next((s for s in reversed(result.steps) if not s.ok), None)
            outcome = self._outcome("error", reason, failed.name if failed else self.current_step, code)
            outcome.misconfigured = isinstance(error, SessionError)
        outcome.cleanup_errors = list(result.cleanup_errors)
        outcome.duration = result.duration
        return outcome

    def _outcome(self, result: str, reason: str, step: str, code: str) -> Outcome:
        return Outcome(
            target=self.target.name,
            flow=self.flow,
            result=result,
            duration=time.perf_counter() - self.started,
            steps=self.steps(),
            index_lags=self.lags(),
            backoffs=self.backoffs(),
            reason=reason.splitlines()[0][:300] if reason else "",
            failed_step=step,
            code=code,
            finished_at=time.time(),
        )


def _path(url: str) -> str:
    """The path of ``url`` only: no host, query or (for downloads) KS segments in the run log."""
    return redact(urlsplit(url).path)
