"""Building blocks of the locustfile's users: catalogue flows run by Locust ``FastHttpUser`` s.

Importing this module imports Locust, which monkey-patches the standard library with gevent: only a
locustfile (a Locust process) may import it. ``load/locustfile.py`` shows the intended use::

    RUN = load_run(Path(__file__).with_name("profiles.toml"))   # profile + target from KSENTINEL_* env
    hooks.install(RUN)

    class UploadUser(FlowUser):
        flow = "upload"
        weight = RUN.profile.weight("upload")
        abstract = not RUN.profile.runs("upload")

* :class:`FlowUser` runs its ``flow`` from the catalogue again and again (closed model), with the
  profile's pause between flows. Its API client talks through a
  :class:`~ksentinel.load.transport.LocustTransport` over the user's own FastHttpUser client, so each
  HTTP call is a Locust request named by its step; each whole flow is one more ``FLOW`` event.
* :class:`ArrivalUser` is an executor of the open model: it takes the next due arrival of the
  process-wide :class:`~ksentinel.load.arrival.ArrivalSchedule`, runs the mix's next flow (a smooth
  weighted round robin: in every run of as many arrivals as the weights add up to, each flow comes
  up as often as its weight, so a short run still runs every flow) and measures from the arrival's
  due time.
* :func:`stages_shape` gives the staged profiles (ramp, soak, spike) their ``LoadTestShape``.

Sessions: ``sessions = "local"`` shares a pool of ``ks_pool`` :class:`~ksentinel.flows.Sessions`
(KS built from the secret, refreshed when a quarter of their life is left) between the users of a
process; ``sessions = "start"`` gives each user its own :class:`ServerSessions`, which gets its KS
from ``session.start`` (a request named ``sessions.start``).
"""

from __future__ import annotations

import itertools
import logging
import random
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import gevent
from locust import FastHttpUser, LoadTestShape, task

from ksentinel.config import Target, load_config, resolve_target
from ksentinel.errors import ConfigError, KsentinelError
from ksentinel.flows import (
    Credentials,
    Flow,
    FlowContext,
    Sessions,
    all_flows,
    get_flow,
    new_run_id,
    run_flow,
)
from ksentinel.flows.browse import KEEP_SEED, release_seed
from ksentinel.flows.sessions import credentials_of
from ksentinel.kaltura.api import KalturaApi
from ksentinel.kaltura.transport import STEP_LABEL
from ksentinel.load.arrival import ArrivalSchedule
from ksentinel.load.failures import LoadFailure
from ksentinel.load.profiles import Profile
from ksentinel.load.settings import LoadSettings
from ksentinel.load.transport import FLOW_TYPE, LocustTransport

log = logging.getLogger(__name__)


class ServerSessions(Sessions):
    """Sessions whose KS come from ``session.start`` (through the user's transport), refreshed alike."""

    def __init__(self, credentials: Credentials, api: KalturaApi, *, expiry: int, user_prefix: str) -> None:
        super().__init__(credentials, expiry=expiry, user_prefix=user_prefix)
        self._api = api.with_ks(None)

    def _get(self, partner_id: int, secret: str, user: str, session_type: int, privileges: str) -> str:
        key = (partner_id, user, session_type, privileges)
        now = time.time()
        cached = self._pool.get(key)
        if cached and cached[1] - now > self.expiry / 4:
            return cached[0]
        label = STEP_LABEL.set("sessions.start")
        try:
            ks = self._api.call(
                "session",
                "start",
                secret=secret,
                userId=user,
                type=session_type,
                partnerId=partner_id,
                expiry=self.expiry,
                privileges=privileges,
            )
        finally:
            STEP_LABEL.reset(label)
        if not isinstance(ks, str) or not ks:
            raise KsentinelError("session.start returned no KS")
        self._pool[key] = (ks, now + self.expiry)
        return ks


@dataclass
class LoadRun:
    """What every user of one Locust process shares: settings, profile, target, KS pool, schedule."""

    settings: LoadSettings
    profile: Profile
    flows: tuple[str, ...]
    target: Target | None = None
    credentials: Credentials | None = None
    run_tag: str = ""
    workers: int = 1
    schedule: ArrivalSchedule | None = None
    pool: list[Sessions] = field(default_factory=list)
    _slots: Any = field(default_factory=itertools.count)
    _turns: dict[str, int] = field(default_factory=dict)

    def resolve_target(self, host: str | None = None) -> Target:
        """The target from the KSENTINEL_* environment (``--host`` overrides its URL); cached."""
        if self.target is None:
            config = load_config()
            resolved = resolve_target(config)
            if resolved.target is None:
                raise ConfigError(
                    "no target: set KSENTINEL_URL, KSENTINEL_PARTNER_ID and KSENTINEL_ADMIN_SECRET "
                    "(or KSENTINEL_TARGET), or run `ksentinel load`, which can start the embedded platform"
                )
            target = resolved.target
            if host:
                target = replace(target, url=host.rstrip("/"))
            self.target = target
            self.credentials = credentials_of(target)
        return self.target

    def next_slot(self) -> int:
        return next(self._slots) % max(1, self.profile.ks_pool)

    def local_sessions(self, slot: int) -> Sessions:
        if not self.pool:
            assert self.credentials is not None
            self.pool = [
                Sessions(self.credentials, expiry=self.profile.ks_expiry, user_prefix=f"ksentinel-load-{i}")
                for i in range(max(1, self.profile.ks_pool))
            ]
        return self.pool[slot % len(self.pool)]

    def next_mix_flow(self) -> str:
        """The flow of the next arrival: smooth weighted round robin over the mix (every flow early)."""
        weights = {name: self.profile.weight(name) for name in self.profile.flows}
        for name, weight in weights.items():
            self._turns[name] = self._turns.get(name, 0) + weight
        chosen = max(weights, key=lambda name: self._turns[name])
        self._turns[chosen] -= sum(weights.values())
        return chosen

    def arrivals(self) -> ArrivalSchedule:
        """This process's share of the open model's arrival rate."""
        if self.schedule is None:
            self.schedule = ArrivalSchedule(self.profile.arrival_rate / max(1, self.workers))
        return self.schedule


_RUN: LoadRun | None = None


def load_run(profiles: Path | str, *, exit_on_error: bool = True) -> LoadRun:
    """The process's :class:`LoadRun` (profile from ``$KSENTINEL_LOAD_PROFILE`` in ``profiles``).

    A bad profile or setting ends the process with one line on stderr and exit status 2.
    """
    global _RUN
    if _RUN is None:
        try:
            settings = LoadSettings.from_env(default_profiles=Path(profiles))
            flows = all_flows()
            known_steps = tuple(step for f in flows.values() for step in f.steps)
            profile = settings.load_profile(known_flows=tuple(flows), known_steps=known_steps)
        except ConfigError as exc:
            if not exit_on_error:
                raise
            sys.stderr.write(f"ksentinel: error: {exc}\n")
            raise SystemExit(2) from None
        _RUN = LoadRun(settings=settings, profile=profile, flows=tuple(flows), run_tag=settings.run_tag or "")
    return _RUN


def current_run() -> LoadRun:
    if _RUN is None:
        raise RuntimeError("load_run() has not been called (the locustfile calls it first)")
    return _RUN


class FlowUser(FastHttpUser):
    """A user that runs one catalogue flow (``flow``) again and again."""

    abstract = True
    flow: ClassVar[str] = ""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.load_run = current_run()
        self.transport = LocustTransport(self.client, environment.events.request, deadline=gevent.Timeout)
        self.ctx: FlowContext | None = None
        self.sessions: Sessions | None = None
        self._flows: dict[str, Flow] = {}

    def wait_time(self) -> float:
        low, high = self.load_run.profile.wait
        return random.uniform(low, high) if high > low else low

    # --- one flow --------------------------------------------------------------------------------

    def _flow_context(self) -> FlowContext:
        if self.ctx is None:
            run = self.load_run
            assert run.target is not None and run.credentials is not None
            api = KalturaApi(
                self.host or run.target.url,
                partner_id=run.target.partner_id,
                timeout=run.target.timeout,
                transport=self.transport,
            )
            slot = run.next_slot()
            if run.profile.sessions == "start":
                self.sessions = ServerSessions(
                    run.credentials, api, expiry=run.profile.ks_expiry, user_prefix=f"ksentinel-load-{slot}"
                )
            else:
                self.sessions = run.local_sessions(slot)
            tag = run.run_tag or _run_tag_of(self.environment)
            ctx = FlowContext(
                api,
                self.sessions,
                run_id=tag,
                options=run.profile.flow_options(run.target),
                listeners=(self.transport.on_step,),
            )
            ctx.notes[KEEP_SEED] = True
            self.ctx = ctx
        return self.ctx

    def run_one(self, name: str, due: float | None = None) -> None:
        """Run flow ``name`` once; ``due`` is its intended start (open model)."""
        began = time.time()
        try:
            ctx = self._flow_context()
            assert self.sessions is not None
            ks = self.sessions.admin()  # the pool's KS, refreshed when a quarter of its life is left
            if ks != ctx.api.ks:
                ctx.api = ctx.api.with_ks(ks)
        except KsentinelError as exc:  # no KS (session.start failed): already reported as a request
            log.debug("no session for %s: %s", name, exc)
            self.transport.flow_done()
            return
        if due is not None:
            self.transport.lag = max(0.0, began - due)
        start = due if due is not None else began
        self.transport.in_flow = True
        flow = self._flows.get(name) or self._flows.setdefault(name, get_flow(name))
        try:
            result = run_flow(flow, ctx)
        finally:
            self.transport.in_flow = False
            self.transport.flow_done()
        failure: LoadFailure | None = None
        if result.failure is not None:
            failure = LoadFailure(
                result.failure.code or "CHECK", f"{result.failure.step}: {result.failure.reason}"
            )
        elif result.error is not None:
            failure = LoadFailure(str(getattr(result.error, "code", "ERROR")), str(result.error))
        self.environment.events.request.fire(
            request_type=FLOW_TYPE,
            name=name,
            response_time=(time.time() - start) * 1000.0,
            response_length=0,
            response=None,
            context={},
            exception=failure,
            start_time=start,
            url="",
        )

    def next_flow(self) -> None:
        self.run_one(self.flow)

    @task
    def flow_task(self) -> None:
        self.next_flow()

    def on_stop(self) -> None:
        self.transport.in_flow = False
        self.transport.flow_done()
        if self.ctx is not None:
            errors = release_seed(self.ctx)
            for error in errors:
                log.warning("clean-up: %s", error)


class ArrivalUser(FlowUser):
    """An executor of the open model: flows start at the profile's ``arrival_rate``, not when a user is free."""

    abstract = True

    def wait_time(self) -> float:
        return 0.0

    def next_flow(self) -> None:
        schedule = self.load_run.arrivals()
        due = schedule.next_due()
        delay = due - time.time()
        if delay > 0:
            gevent.sleep(delay)
        schedule.started(due)
        self.run_one(self.load_run.next_mix_flow(), due=due)


class StagesShape(LoadTestShape):
    """The stages of a staged profile: ``(users, spawn rate)`` of the stage the run is in, then stop."""

    abstract: ClassVar[bool] = True

    def tick(self) -> tuple[int, float] | None:
        elapsed = self.get_run_time()
        end = 0.0
        for stage in current_run().profile.stages:
            end += stage.duration
            if elapsed < end:
                return (stage.users, stage.spawn_rate)
        return None


def stages_shape(profile: Profile) -> type[LoadTestShape] | None:
    """A concrete shape class for a staged profile, else None (Locust then uses users/spawn rate)."""
    if not profile.staged:
        return None
    return type(
        "ProfileShape", (StagesShape,), {"abstract": False, "__doc__": f"stages of profile {profile.name}"}
    )


def _run_tag_of(environment: Any) -> str:
    """The run tag the master sent with the spawn message (``--ksentinel-run-tag``)."""
    options = getattr(environment, "parsed_options", None)
    tag = str(getattr(options, "ksentinel_run_tag", "") or "")
    run = current_run()
    if not run.run_tag:  # no tag from anywhere: this process tags with its own id
        run.run_tag = tag or new_run_id()
    return run.run_tag
