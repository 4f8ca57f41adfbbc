"""Locust event wiring of a ksentinel run (imported by the locustfile only: it imports Locust).

:func:`install` registers, once per process:

* ``--ksentinel-run-tag`` (``$KSENTINEL_LOAD_RUN_TAG``): the master (or local process) picks the run
  tag and Locust hands it to every worker with the spawn message, so every object the run creates
  carries the same tag; and the profile's users, spawn rate and run time as the defaults of
  ``-u``/``-r``/``-t`` (``locust -f load/locustfile.py`` runs the profile as ``ksentinel load`` does);
* at ``init``: a closed-model run with fewer users than flows is refused (one line, exit 2; headless
  or autostarted runs, and every staged one), the target (one-line error and exit 2 when there is
  none), the users' host, the ``ksentinel_load_*`` exporter and the progress lines (master / local
  process only);
* at ``test_start`` (master / local process only): each flow's user class gets its ``fixed_count``
  (:meth:`~ksentinel.load.profiles.Profile.user_counts` of the users started, the peak of a staged
  profile: at least one each, the rest by weight), and the timeline sampler
  (:mod:`ksentinel.load.timeline`), a greenlet that samples the statistics every second (every
  worker report interval on a master) until ``test_stop``;
* at ``test_stop``: on a worker, its users are stopped and its final stats sent at once; on the
  master, every worker is asked to do that and the master waits (bounded) for their final reports,
  so the final stats cover all workers (a worker Locust marks missing is not waited for); then the
  run's leftovers are swept (``sweep --tag``);
* at ``quitting`` (also after Ctrl-C / SIGINT, when users may still be running; SIGINT is handled
  even when the process was started with it ignored, as shells start background jobs): users stopped,
  leftovers swept, the JSON summary written to ``$KSENTINEL_LOAD_SUMMARY``; without that variable
  (``locust -f`` on its own) the SLO table is logged and decides Locust's exit code (2 with one
  error line when the final stats miss a worker).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent.event import Event
from locust import events as locust_events
from locust.runners import (
    STATE_CLEANUP,
    STATE_INIT,
    STATE_MISSING,
    STATE_STOPPED,
    STATE_STOPPING,
    WORKER_REPORT_INTERVAL,
    MasterRunner,
    WorkerRunner,
)

from ksentinel.config import load_config
from ksentinel.errors import ConfigError, KsentinelError
from ksentinel.flows import all_flows, new_run_id
from ksentinel.load import lifeline
from ksentinel.load.arrival import ArrivalStats
from ksentinel.load.cleanup import sweep_settled
from ksentinel.load.profiles import spread
from ksentinel.load.settings import ENV_ALLOW_PRODUCTION
from ksentinel.load.summary import build_summary, write_summary
from ksentinel.load.timeline import Timeline
from ksentinel.load.transport import CHECK_TYPE, FLOW_TYPE
from ksentinel.load.users import ArrivalUser, FlowUser, LoadRun
from ksentinel.load.verdict import evaluate, exit_code, missing_workers, render_table, run_flows
from ksentinel.slo import merge_slo, parse_slo

log = logging.getLogger("ksentinel.load")
STOP_MESSAGE = "ksentinel_stop"
REPORT_KEY = "ksentinel"


@dataclass
class _State:
    run: LoadRun
    environment: Any = None
    started: float | None = None
    peak_users: int = 0
    stopped: bool = False  # worker: its users are stopped, its next report is final
    seen: set[str] = field(default_factory=set)
    final: set[str] = field(default_factory=set)
    arrival: dict[str, dict[str, float]] = field(default_factory=dict)
    swept: bool = False
    summary_written: bool = False
    interrupted: bool = False
    timeline: Timeline | None = None
    sampler: Any = None  # the timeline's greenlet
    stopped_at: float | None = None
    stopped_users: int = 0
    line: lifeline.ChildLine | None = None  # started by `ksentinel load`: its lifeline
    pid: int = 0  # the process that installed the hooks (not a child forked by --processes)
    terminating: bool = False  # SIGTERM (or the lifeline) asked this process to stop
    quitting: bool = False
    quit_done: Any = None  # a gevent Event, set when the first `quitting` has finished


_STATE: _State | None = None


def install(run: LoadRun, events: Any = locust_events) -> None:
    """Register the listeners (once per process)."""
    global _STATE
    if _STATE is not None:
        return
    _STATE = state = _State(run, pid=os.getpid())
    # first: a Locust process of `ksentinel load` dies with it (SIGTERM at once if it is gone already)
    state.line = lifeline.attach()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the clean-up's client: no line per call
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # a shell starts background jobs with SIGINT ignored, and Python then installs no handler:
        # SIGINT must still stop the run cleanly (clean-up, summary, report)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    @events.init_command_line_parser.add_listener
    def _arguments(parser: Any, **_: Any) -> None:
        parser.add_argument(
            "--ksentinel-run-tag",
            type=str,
            default="",
            env_var="KSENTINEL_LOAD_RUN_TAG",
            help="Tag of every object the run creates (default: a new run id)",
            include_in_web_ui=False,
        )
        profile = run.profile
        if not profile.staged:  # a staged profile's LoadTestShape sets users and time itself
            parser.set_defaults(
                num_users=profile.users,
                spawn_rate=profile.spawn_rate,
                run_time=math.ceil(profile.run_time),
            )

    @events.init.add_listener
    def _init(environment: Any, runner: Any = None, **_: Any) -> None:
        state.environment = environment
        _watch_lifeline()
        _handle_sigterm_while_shaping(environment)
        if runner is not None and not isinstance(runner, WorkerRunner):
            _refuse_too_few_users(run, environment.parsed_options)
        try:
            target = run.resolve_target(environment.host)
        except KsentinelError as exc:
            sys.stderr.write(f"ksentinel: error: {exc}\n")
            raise SystemExit(2) from None
        if getattr(target, "production", False) and os.environ.get(ENV_ALLOW_PRODUCTION, "") != "1":
            sys.stderr.write(
                f"ksentinel: error: target '{target.name}' is a production target: refusing to load-test "
                f"it (ksentinel load --allow-production, or {ENV_ALLOW_PRODUCTION}=1 for a direct locust run)\n"
            )
            raise SystemExit(2)
        environment.host = environment.host or target.url
        for user_class in environment.user_classes:
            if issubclass(user_class, FlowUser):
                user_class.host = user_class.host or target.url
                user_class.network_timeout = user_class.connection_timeout = target.timeout
        if isinstance(runner, WorkerRunner):
            runner.register_message(STOP_MESSAGE, _stop_worker, concurrent=True)
            events.report_to_master.add_listener(_report)
            return
        options = environment.parsed_options
        run.run_tag = run.run_tag or str(getattr(options, "ksentinel_run_tag", "") or "") or new_run_id()
        if options is not None:
            options.ksentinel_run_tag = run.run_tag
        if isinstance(runner, MasterRunner):
            events.worker_report.add_listener(_worker_report)
        log.info(
            "ksentinel: profile %s (%s model) against %s, run tag %s",
            run.profile.name,
            run.profile.model,
            target.url,
            run.run_tag,
        )
        if run.settings.metrics_port is not None:
            _serve_metrics(environment, run.settings.metrics_host, run.settings.metrics_port)
        gevent.spawn(_progress, environment)

    @events.test_start.add_listener
    def _test_start(environment: Any, **_: Any) -> None:
        state.started = time.time()
        state.stopped = False
        state.swept = False
        state.summary_written = False
        state.final.clear()
        options = environment.parsed_options
        expected = run.settings.workers or int(getattr(options, "expect_workers", 0) or 0)
        run.workers = max(1, expected) if isinstance(environment.runner, WorkerRunner) else 1
        if not isinstance(environment.runner, WorkerRunner):
            _fix_user_counts(environment)
        _start_timeline(environment)

    @events.test_stopping.add_listener
    def _test_stopping(environment: Any, **_: Any) -> None:
        if run.schedule is not None:  # arrivals due while users are being stopped do not count
            run.schedule.close()

    @events.test_stop.add_listener
    def _test_stop(environment: Any, **_: Any) -> None:
        runner = environment.runner
        if run.schedule is not None:
            run.schedule.close()
        if isinstance(runner, WorkerRunner):
            state.stopped = True
            return
        _stop_timeline(runner)
        if isinstance(runner, MasterRunner):
            _collect_final_reports(runner)
        _sweep_leftovers()

    @events.quitting.add_listener
    def _quitting(environment: Any, **_: Any) -> None:
        runner = environment.runner
        if runner is None:
            return
        if state.quitting:  # a second signal: let the first finish its clean-up (Locust exits after)
            if state.quit_done is not None:
                state.quit_done.wait(timeout=state.run.settings.stop_wait + 120)
            return
        state.quitting = True
        state.quit_done = Event()
        try:
            if state.line is not None and state.line.broken():
                lifeline.silence_output()  # `ksentinel load` is gone, and the pipe it read with it
            if runner.state not in (STATE_STOPPED, STATE_STOPPING, STATE_CLEANUP):
                state.interrupted = True  # Ctrl-C / SIGINT / SIGTERM: users are still running
                runner.stop()
            if isinstance(runner, WorkerRunner):
                state.stopped = True
                _send_final_stats(runner)
                return
            if not state.swept:
                _sweep_leftovers()
            _finish(environment)
        finally:
            state.quit_done.set()


# --- stopping: SIGTERM and the lifeline -----------------------------------------------------------


def _watch_lifeline() -> None:
    """Started by `ksentinel load`: a greenlet that sends this process SIGTERM when it is gone."""
    assert _STATE is not None
    state = _STATE
    if state.line is None or os.getpid() != state.pid:  # a child forked by --processes: its parent watches
        return

    def stopping() -> bool:
        return state.terminating or state.quitting

    def broken() -> None:
        lifeline.silence_output()
        log.warning("ksentinel: `ksentinel load` (pid %d) is gone: stopping the run", state.line.parent)
        os.kill(os.getpid(), signal.SIGTERM)

    gevent.spawn(lifeline.watch, state.line, broken, stopping=stopping)


def _handle_sigterm_while_shaping(environment: Any) -> None:
    """SIGTERM ends a headless staged run gracefully (Locust's handler comes only after the shape)."""
    options = environment.parsed_options
    runner = environment.runner
    if environment.shape_class is None or runner is None or isinstance(runner, WorkerRunner):
        return
    if options is None or not getattr(options, "headless", False):
        return  # the web UI (also --autostart) runs with Locust's SIGTERM handler in place

    def terminate() -> None:
        assert _STATE is not None
        if _STATE.terminating or _STATE.quitting:
            return
        shape = getattr(runner, "shape_greenlet", None)
        if shape is None or shape.dead:
            if runner.state == STATE_INIT:  # nothing started (a master waiting for its workers)
                log.info("ksentinel: SIGTERM before the test started: exiting")
                raise SystemExit(128 + signal.SIGTERM)
            return  # the shape is over: the stop under way (then Locust's own handler) takes it
        _STATE.terminating = True
        _STATE.interrupted = True
        if _STATE.line is not None and _STATE.line.broken():
            lifeline.silence_output()
        log.info("ksentinel: SIGTERM: stopping the run (clean-up, final stats, summary)")
        shape.kill(block=False)  # Locust then quits the runner (test_stop: clean-up) and shuts down

    gevent.signal_handler(signal.SIGTERM, terminate)


# --- users per flow ------------------------------------------------------------------------------


def _refuse_too_few_users(run: LoadRun, options: Any) -> None:
    """Exit 2 with one line when a closed-model run cannot give every flow a user."""
    profile = run.profile
    if profile.open or options is None:
        return
    if profile.staged:
        users, option = profile.peak_users, "$KSENTINEL_LOAD_USERS"
    elif getattr(options, "headless", False) or getattr(options, "autostart", False):
        users, option = options.num_users if options.num_users is not None else profile.users, "-u"
    else:  # the web UI: the users come with each start (_fix_user_counts)
        return
    try:
        profile.check_users(users, option=option)
    except ConfigError as exc:
        sys.stderr.write(f"ksentinel: error: {exc}\n")
        raise SystemExit(2) from None


def _fix_user_counts(environment: Any) -> None:
    """Give each flow's user class a ``fixed_count``: one user at least, the rest by weight.

    Locust's weights alone give a class no user when there are few (1 user runs only the heaviest
    class). The counts are those of the users this start asks for (a staged profile's peak); a start
    with fewer users than classes (the web UI) is stopped with an error line.
    """
    assert _STATE is not None
    runner, profile = environment.runner, _STATE.run.profile
    if profile.open or runner is None:
        return
    classes = [
        c
        for c in runner.user_classes
        if issubclass(c, FlowUser) and not issubclass(c, ArrivalUser) and not c.abstract
    ]
    if not classes:
        return
    total = profile.peak_users if profile.staged else int(getattr(runner, "target_user_count", 0) or 0)
    if total < len(classes):
        names = ", ".join(c.__name__ for c in classes)
        log.error(
            "ksentinel: %d users cannot run the %d user classes of profile %s (%s): start %d or more",
            total,
            len(classes),
            profile.name,
            names,
            len(classes),
        )
        gevent.spawn(runner.stop)
        return
    for user_class, count in spread(total, {c: max(1, int(c.weight or 0)) for c in classes}).items():
        user_class.fixed_count = count


# --- workers -------------------------------------------------------------------------------------


def _stop_worker(environment: Any, msg: Any, **_: Any) -> None:
    """Master's request: stop the users (their flows clean up) and send the final stats now."""
    runner = environment.runner
    runner.stop()
    assert _STATE is not None
    _STATE.stopped = True
    _send_final_stats(runner)


def _send_final_stats(runner: Any) -> None:
    send = getattr(runner, "_send_stats", None)
    if callable(send):  # else the next periodic report (every few seconds) carries them
        try:
            send()
        except Exception as exc:  # the master may be gone already
            log.debug("final stats not sent: %s", exc)


def _report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    assert _STATE is not None
    schedule = _STATE.run.schedule
    data[REPORT_KEY] = {
        "stopped": _STATE.stopped,
        "arrival": schedule.snapshot() if schedule is not None else None,
    }


def _worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    assert _STATE is not None
    _STATE.seen.add(client_id)
    extra = data.get(REPORT_KEY) or {}
    if extra.get("arrival"):
        _STATE.arrival[client_id] = extra["arrival"]
    if extra.get("stopped"):
        _STATE.final.add(client_id)


def _collect_final_reports(runner: Any) -> None:
    assert _STATE is not None
    workers = {client.id for client in runner.clients.all} | _STATE.seen
    _STATE.seen |= workers
    for client_id in workers:
        runner.send_message(STOP_MESSAGE, None, client_id)
    deadline = time.monotonic() + _STATE.run.settings.stop_wait
    while time.monotonic() < deadline:
        lost = {client.id for client in runner.clients.all if client.state == STATE_MISSING}
        if workers - lost <= _STATE.final:  # a worker gone missing sends nothing more: not waited for
            break
        gevent.sleep(0.1)
    missing = workers - _STATE.final
    if missing:
        log.warning(
            "ksentinel: %d worker(s) sent no final stats in time; the summary misses them", len(missing)
        )


# --- clean-up, summary, verdict ------------------------------------------------------------------


def _sweep_leftovers() -> None:
    assert _STATE is not None
    run = _STATE.run
    if run.target is None or run.credentials is None or not run.run_tag:
        return
    # Once per run, whatever the outcome: a failed sweep is not repeated at quit (against a target
    # that stopped answering it would only cost another timeout); `ksentinel load` sweeps once more.
    _STATE.swept = True
    try:
        result = sweep_settled(run.target, run.credentials, run.run_tag, settle=run.settings.settle)
    except KsentinelError as exc:
        log.warning(
            "ksentinel: clean-up of run %s failed: %s (run `ksentinel sweep --tag %s --older-than 0s`)",
            run.run_tag,
            exc,
            run.run_tag,
        )
        return
    if result.entries or result.tokens:
        log.info(
            "ksentinel: clean-up removed %d entries and %d upload tokens left by run %s",
            len(result.entries),
            len(result.tokens),
            run.run_tag,
        )
    for error in result.errors:
        log.warning("ksentinel: clean-up could not remove %s", error)
    for note in result.incomplete:
        log.warning("ksentinel: clean-up incomplete: %s", note)


def _finish(environment: Any) -> None:
    assert _STATE is not None
    state, run = _STATE, _STATE.run
    if state.summary_written:
        return
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        expected = run.settings.workers or int(getattr(environment.parsed_options, "expect_workers", 0) or 0)
        workers = {
            "mode": "master",
            "expected": expected,
            "seen": len(state.seen),
            "final": len(state.final & state.seen),
            "covered": bool(state.seen) and state.seen <= state.final and len(state.seen) >= expected,
        }
        arrival_stats = ArrivalStats()
        for stats in state.arrival.values():
            arrival_stats.merge(stats)
        arrival_values = {**arrival_stats.as_dict(), "processes": max(1, len(state.arrival))}
    else:
        workers = {"mode": "local", "expected": 0, "seen": 0, "final": 0, "covered": True}
        arrival_values = run.schedule.snapshot() if run.schedule is not None else ArrivalStats().as_dict()
        arrival_values = {**arrival_values, "processes": 1}
    arrival = None
    if run.profile.open:
        arrival = {"rate": run.profile.arrival_rate, **arrival_values}
    _stop_timeline(runner)
    timeline: list[dict[str, Any]] = []
    if state.timeline is not None and state.stopped_at is not None:
        try:
            timeline = state.timeline.finish(runner.stats, state.stopped_users, state.stopped_at)
        except Exception:  # the summary and the verdict matter more than the charts
            log.warning("ksentinel: the timeline could not be built", exc_info=True)
    summary = build_summary(
        runner.stats,
        run_tag=run.run_tag,
        profile=run.profile.name,
        model=run.profile.model,
        started=state.started,
        ended=time.time(),
        peak_users=state.peak_users,
        final_users=runner.user_count,
        workers=workers,
        interrupted=state.interrupted,
        arrival=arrival,
        timeline=timeline,
    )
    state.summary_written = True
    if run.settings.summary_path is not None:
        write_summary(summary, run.settings.summary_path)
        environment.process_exit_code = 0  # `ksentinel load` judges the SLOs from the summary
        return
    try:  # `locust -f load/locustfile.py` on its own: judge here, Locust exits with our code
        config = load_config()
        spec = parse_slo(merge_slo(config.slo, run.profile.slo), source=config.label)
    except ConfigError as exc:
        log.error("ksentinel: %s", exc)
        environment.process_exit_code = 2
        return
    steps_of = {name: flow.steps for name, flow in all_flows().items()}
    flows = run_flows(run.profile.flows, steps_of)
    rows = evaluate(summary, spec, flows=flows, optional=run.profile.optional_flows)
    for line in render_table(rows, summary).splitlines():
        log.info("%s", line)
    environment.process_exit_code = exit_code(rows)
    lost = missing_workers(summary)
    if lost and not state.interrupted:
        log.error("ksentinel: error: %s", lost)
        environment.process_exit_code = 2


# --- timeline ------------------------------------------------------------------------------------


def _start_timeline(environment: Any) -> None:
    assert _STATE is not None
    state, runner = _STATE, environment.runner
    if isinstance(runner, WorkerRunner) or runner is None or state.started is None:
        return
    if state.sampler is not None:
        state.sampler.kill(block=False)
    # a master's statistics arrive with the workers' reports: one interval holds about one of each
    interval = math.ceil(WORKER_REPORT_INTERVAL) if isinstance(runner, MasterRunner) else 1
    state.timeline = Timeline(state.started, interval=interval)
    state.timeline.baseline(runner.stats)
    state.stopped_at = None
    state.sampler = gevent.spawn(_sample, environment, state.timeline)


def _stop_timeline(runner: Any) -> None:
    assert _STATE is not None
    state = _STATE
    if state.sampler is None:
        return
    state.sampler.kill(block=False)
    state.sampler = None
    state.stopped_at = time.time()
    state.stopped_users = runner.user_count


def _sample(environment: Any, timeline: Timeline) -> None:
    while True:
        gevent.sleep(max(0.0, timeline.next_due - time.time()))
        runner = environment.runner
        try:
            timeline.sample(runner.stats, runner.user_count, time.time())
        except Exception:  # never let the sampler take the run down
            log.warning("ksentinel: the timeline sampler failed; the summary has no timeline", exc_info=True)
            if _STATE is not None:
                _STATE.timeline = None
            return


# --- exporter and progress -----------------------------------------------------------------------


def _serve_metrics(environment: Any, host: str, port: int) -> None:
    from gevent.pywsgi import WSGIServer
    from prometheus_client import CollectorRegistry, make_wsgi_app

    from ksentinel.load.metrics import LoadCollector

    registry = CollectorRegistry()
    registry.register(LoadCollector(lambda: (environment.runner.stats, environment.runner.user_count)))
    server = WSGIServer((host, port), make_wsgi_app(registry), log=None, error_log=None)
    try:
        server.start()
    except OSError as exc:
        sys.stderr.write(f"ksentinel: error: cannot serve metrics on {host}:{port}: {exc.strerror or exc}\n")
        raise SystemExit(2) from None
    log.info("ksentinel: metrics on http://%s:%d/metrics", host, server.server_port)


def _progress(environment: Any) -> None:
    assert _STATE is not None
    state = _STATE
    interval = state.run.settings.progress_interval
    last = time.monotonic()
    while True:
        gevent.sleep(1.0)
        runner = environment.runner
        if runner is None:
            continue
        state.peak_users = max(state.peak_users, runner.user_count)
        if not interval or time.monotonic() - last < interval or state.started is None:
            continue
        if runner.state in (STATE_STOPPED, STATE_STOPPING, STATE_CLEANUP):
            continue
        last = time.monotonic()
        requests = failures = 0
        for entry in list(runner.stats.entries.values()):
            if entry.method == FLOW_TYPE:
                continue
            if entry.method != CHECK_TYPE:
                requests += entry.num_requests
            failures += entry.num_failures
        elapsed = time.time() - state.started
        ratio = failures / requests if requests else 0.0
        log.info(
            "ksentinel: %4.0fs  users %3d  requests %6d (%6.1f/s)  failures %4d (%.2f%%)",
            elapsed,
            runner.user_count,
            requests,
            requests / elapsed if elapsed > 0 else 0.0,
            failures,
            ratio * 100,
        )
