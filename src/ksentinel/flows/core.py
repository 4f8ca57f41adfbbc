"""The flow engine: a registry of flows, the context they run in, and their step-by-step results.

A flow is a plain function ``flow(ctx: FlowContext) -> None`` that talks to the API through
``ctx.api`` (a :class:`~ksentinel.kaltura.api.KalturaApi`) and wraps each stage in
``with ctx.step("upload.chunk"):``. A step that raises, or whose invariant
(:meth:`FlowContext.check`) does not hold, fails the flow with a
:class:`~ksentinel.errors.FlowFailure` naming the step. Whatever happens, everything the flow
registered with ``ctx.cleanup`` is removed afterwards. Flows never know who drives them: the
contract suite, Locust users and the probe scheduler all call :func:`run_flow`.

A step whose check the target cannot exercise (too few entries for the page-size clamp) calls
``ctx.not_tested(reason)``: it is recorded with ``tested=False``, neither failed nor passed. A step
refused with a session code (``INVALID_KS``, ``START_SESSION_ERROR``,
``SERVICE_FORBIDDEN_CONTENT_BLOCKED``) because the configured secret or partner id is wrong
(:meth:`~ksentinel.flows.sessions.Sessions.refused`) ends the run with a
:class:`~ksentinel.flows.sessions.SessionError`: an error (nothing was tested), not a failure.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ksentinel.errors import FlowFailure, KalturaApiError, KsentinelError, TargetError
from ksentinel.flows.sessions import SESSION_CODES, SessionError, Sessions
from ksentinel.kaltura.api import KalturaApi
from ksentinel.kaltura.transport import STEP_LABEL

log = logging.getLogger(__name__)

TAG = "ksentinel"
FlowFunction = Callable[["FlowContext"], None]


@dataclass(frozen=True)
class FlowOptions:
    """Knobs a driver may turn (sizes come from load profiles, bounds from probe config)."""

    upload_bytes: int = 512 * 1024
    chunk_bytes: int = 128 * 1024
    #: how long an upload may take to convert (IMPORT/PRECONVERT -> READY); drivers may lower it
    ready_timeout: float = 300.0
    poll_interval: float = 0.2
    list_seed: int = 7
    list_page_size: int = 3
    require_cache_headers: bool = True
    #: how long a fresh write may take to show up in list/count (the search index lag bound)
    index_lag_timeout: float = 30.0


@dataclass(frozen=True)
class StepResult:
    """One step of one flow run."""

    flow: str
    name: str
    duration: float
    ok: bool
    reason: str = ""
    code: str = ""
    #: seconds of ``duration`` spent waiting on purpose for the platform's asynchronous work
    #: (conversion, the search index): ``duration - waited`` is the time the API itself took
    waited: float = 0.0
    #: False when the step could not exercise what it checks on this target (``reason`` says why;
    #: see :meth:`FlowContext.not_tested`): not a failure (``ok`` stays True) and not a pass either,
    #: and its duration is not the duration of the check it names (metrics leave it out)
    tested: bool = True

    @property
    def active(self) -> float:
        """The step's time without its deliberate waits (what latency objectives judge)."""
        return max(0.0, self.duration - self.waited)

    @property
    def outcome(self) -> str:
        """``success``, ``failure`` or ``not_tested``."""
        if not self.ok:
            return "failure"
        return "success" if self.tested else "not_tested"


@dataclass
class FlowResult:
    """A whole flow run: ``ok`` unless a step failed; ``skipped`` when the target lacks what it needs."""

    flow: str
    steps: list[StepResult] = field(default_factory=list)
    failure: FlowFailure | None = None
    error: KsentinelError | None = None
    skipped: str = ""
    duration: float = 0.0
    cleanup_errors: list[str] = field(default_factory=list)
    #: seconds each fresh write took to show up in list/count (see ``FlowContext.observe_index_lag``)
    index_lags: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure is None and self.error is None and not self.skipped

    @property
    def not_tested(self) -> list[StepResult]:
        """Steps that ran without exercising what they check (neither failed nor passed)."""
        return [step for step in self.steps if step.ok and not step.tested]

    @property
    def status(self) -> str:
        """``success``, ``failure`` (a broken invariant), ``error`` (could not run) or ``skipped``."""
        if self.skipped:
            return "skipped"
        if self.failure is not None:
            return "failure"
        return "error" if self.error is not None else "success"


class FlowSkipped(Exception):
    """The target lacks what the flow needs (a peer partner, a user secret)."""


class Cleanup:
    """Undo actions for what a run created, run last-in first-out and never allowed to fail the run."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], Any]]] = []

    def add(self, description: str, action: Callable[[], Any]) -> None:
        self._actions.append((description, action))

    def run(self) -> list[str]:
        errors: list[str] = []
        while self._actions:
            description, action = self._actions.pop()
            try:
                action()
            except KalturaApiError as exc:
                if exc.code not in ("ENTRY_ID_NOT_FOUND", "UPLOAD_TOKEN_NOT_FOUND"):
                    errors.append(f"{description}: {exc}")
            except KsentinelError as exc:
                errors.append(f"{description}: {exc}")
        return errors

    def __len__(self) -> int:
        return len(self._actions)


StepListener = Callable[[StepResult], None]
LagListener = Callable[[float], None]


class FlowContext:
    """What a flow gets: an admin API client, sessions, a run tag, clean-up and options."""

    def __init__(
        self,
        api: KalturaApi,
        sessions: Sessions,
        *,
        run_id: str | None = None,
        options: FlowOptions | None = None,
        listeners: tuple[StepListener, ...] = (),
        lag_listeners: tuple[LagListener, ...] = (),
    ) -> None:
        self.sessions = sessions
        self.api = api.with_ks(sessions.admin())
        self.run_id = run_id or new_run_id()
        self.options = options or FlowOptions()
        self.listeners = listeners
        self.lag_listeners = lag_listeners
        self.index_lags: list[float] = []
        self.cleanup = Cleanup()
        self.flow_name = ""
        self.steps: list[StepResult] = []
        self.notes: dict[str, Any] = {}
        self._waited = 0.0
        self._not_tested: str | None = None

    @property
    def tags(self) -> str:
        """The tags every created entry carries: ``ksentinel`` and this run's tag."""
        return f"{TAG},{TAG}-{self.run_id}"

    def api_as(self, ks: str) -> KalturaApi:
        """A client sharing this context's transport but calling with ``ks``."""
        return self.api.with_ks(ks)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time one step; an API error or a broken check inside fails it (and the flow)."""
        token = STEP_LABEL.set(name)
        started = time.perf_counter()
        self._waited = 0.0
        self._not_tested = None
        try:
            yield
        except FlowFailure as exc:
            self._record(name, started, False, exc.reason, exc.code or "")
            raise
        except KalturaApiError as exc:
            refused = self.sessions.refused(self.api) if exc.code in SESSION_CODES else None
            self._record(name, started, False, str(exc), exc.code)
            if refused is not None:
                raise SessionError(f"{name}: {exc.code}: {refused}", code=exc.code, step=name) from exc
            raise FlowFailure(name, f"unexpected {exc.code}: {exc.message}", code=exc.code) from exc
        except TargetError as exc:
            code = getattr(exc, "code", "TARGET")
            self._record(name, started, False, str(exc), str(code))
            raise
        else:
            if self._not_tested is None:
                self._record(name, started, True)
            else:
                self._record(name, started, True, self._not_tested, tested=False)
        finally:
            self._not_tested = None
            STEP_LABEL.reset(token)

    def not_tested(self, reason: str) -> None:
        """Mark the current step as not tested: the target lacks what its check needs (``reason``).

        The step goes on (it may still check what it can, and fail); if it does not fail it is
        recorded with ``tested=False``: neither a failure nor a pass.
        """
        if not STEP_LABEL.get():
            raise RuntimeError("ctx.not_tested() outside a step")
        self._not_tested = reason

    def pause(self, seconds: float) -> None:
        """Sleep on purpose (polling the platform's asynchronous work); counted as the step's wait."""
        if seconds <= 0:
            return
        began = time.perf_counter()
        time.sleep(seconds)
        self._waited += time.perf_counter() - began

    def check(self, condition: bool, reason: str, *, code: str = "") -> None:
        """Fail the current step with ``reason`` unless ``condition`` holds."""
        if not condition:
            raise FlowFailure(STEP_LABEL.get() or self.flow_name, reason, code=code or None)

    def require(self, condition: bool, reason: str) -> None:
        """Skip the flow (not fail it) when the target lacks something it needs."""
        if not condition:
            raise FlowSkipped(reason)

    def observe_index_lag(self, seconds: float) -> None:
        """Record how long a fresh write took to show up in list/count (exported, reported)."""
        self.index_lags.append(seconds)
        _notify(self.lag_listeners, seconds, "index lag")

    def _record(
        self, name: str, started: float, ok: bool, reason: str = "", code: str = "", *, tested: bool = True
    ) -> None:
        result = StepResult(
            self.flow_name,
            name,
            time.perf_counter() - started,
            ok,
            reason,
            code,
            waited=self._waited,
            tested=tested,
        )
        self.steps.append(result)
        _notify(self.listeners, result, "step")


def _notify(listeners: tuple[Callable[[Any], None], ...], value: Any, what: str) -> None:
    """Tell each listener; a broken listener must not break the flow."""
    for listener in listeners:
        try:
            listener(value)
        except Exception:
            log.exception("%s listener failed", what)


@dataclass(frozen=True)
class Flow:
    name: str
    function: FlowFunction
    description: str
    steps: tuple[str, ...]
    #: the flow creates, changes or deletes objects of the partner (entries, upload tokens); a
    #: production target without ``allow_writes`` runs only flows with ``writes=False``
    #: (docs/production.md). Sessions are not objects: ``session.start``/``session.end`` of a KS
    #: the flow made itself leave nothing behind.
    writes: bool = True


REGISTRY: dict[str, Flow] = {}


def flow(
    name: str, *, description: str, steps: tuple[str, ...], writes: bool = True
) -> Callable[[FlowFunction], FlowFunction]:
    """Register a flow; ``steps`` lists its stable step names (for dashboards and docs).

    ``writes`` says whether it creates, changes or deletes anything (a flow that does not say is
    taken to write: read-only is a promise a flow makes explicitly).
    """

    def register(function: FlowFunction) -> FlowFunction:
        if name in REGISTRY and REGISTRY[name].function is not function:
            raise RuntimeError(f"flow {name!r} is registered twice")
        REGISTRY[name] = Flow(name, function, description, steps, writes)
        return function

    return register


def get_flow(name: str) -> Flow:
    from ksentinel.flows import load_builtin

    load_builtin()
    try:
        return REGISTRY[name]
    except KeyError:
        raise KsentinelError(f"unknown flow {name!r}; known flows: {', '.join(sorted(REGISTRY))}") from None


def run_flow(flow_def: Flow, ctx: FlowContext) -> FlowResult:
    """Run one flow in ``ctx``, then its clean-up; never raises for API or target trouble."""
    ctx.flow_name = flow_def.name
    ctx.steps = []
    ctx.index_lags = []
    result = FlowResult(flow_def.name)
    started = time.perf_counter()
    try:
        flow_def.function(ctx)
    except FlowSkipped as exc:
        result.skipped = str(exc)
    except FlowFailure as exc:
        result.failure = exc
    except KsentinelError as exc:
        result.error = exc
    finally:
        label = STEP_LABEL.set(f"{flow_def.name}.cleanup")
        try:
            result.cleanup_errors = ctx.cleanup.run()
        finally:
            STEP_LABEL.reset(label)
        result.steps = list(ctx.steps)
        result.index_lags = list(ctx.index_lags)
        result.duration = time.perf_counter() - started
    return result


def new_run_id() -> str:
    return time.strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:6]
