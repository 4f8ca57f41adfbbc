"""``run_load``: Locust headless in subprocesses, judged against the SLOs at the end.

Locust (and gevent, which monkey-patches the standard library) never runs in the calling process:
the run is ``python -m locust -f <suite>/locustfile.py --headless`` in a child process, or with
``workers=N`` Locust's own ``--master`` plus N ``--worker`` processes on loopback. The children get
the target and the run settings through the environment (:mod:`ksentinel.load.settings`), print
their progress through ``output``, and the master writes a JSON summary of the final stats at quit
(:mod:`ksentinel.load.summary`), which is judged here (:mod:`ksentinel.load.verdict`).

Ctrl-C (SIGINT) or SIGTERM: the master is asked to stop (SIGINT: its users clean up, the workers
send their final stats, the HTML report and the summary are written); a second one kills the
children. Whatever happened, the run's leftovers are swept by tag at the end.

No Locust process outlives this one, however it ends (SIGKILL included): each child holds a
lifeline (:mod:`ksentinel.load.lifeline`: the parent-death signal on Linux, and a pipe whose write
end only this process holds) and stops gracefully, cleaning up, when it breaks. The children are
started and waited for in the one calling thread, which the parent-death signal is tied to.

Exit codes (:attr:`LoadOutcome.exit_code`): 0 every SLO met, 1 an SLO missed (an objective without
data is missed unless its flow is optional), 2 usage, configuration or target error (a closed-model
profile with fewer users than flows is refused before anything starts), a run that produced no
summary, or a distributed run whose final statistics miss a worker, 130 interrupted.
"""

from __future__ import annotations

import collections
import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ksentinel.config import Config, Target, load_config
from ksentinel.config.child_env import target_environment
from ksentinel.errors import ConfigError, KsentinelError
from ksentinel.flows import all_flows, new_run_id
from ksentinel.flows.sessions import credentials_of
from ksentinel.flows.sweep import SweepResult
from ksentinel.load.cleanup import sweep_run
from ksentinel.load.lifeline import Lifeline
from ksentinel.load.profiles import Profile, load_profiles
from ksentinel.load.settings import ENV_ALLOW_PRODUCTION, ENV_SETTLE, ENV_STOP_WAIT, PREFIX, LoadSettings
from ksentinel.load.summary import read_summary
from ksentinel.load.verdict import (
    SloRow,
    evaluate,
    exit_code,
    missing_workers,
    render_table,
    run_flows,
    summary_line,
)
from ksentinel.slo import SloSpec, merge_slo, parse_slo

EXIT_OK, EXIT_MISSED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
STARTUP_GRACE = 60.0
STOP_GRACE = 60.0
Output = Callable[[str], None]


@dataclass
class LoadOutcome:
    """What a run came to; ``table`` is the SLO table to print."""

    exit_code: int
    profile: str
    run_tag: str
    rows: list[SloRow] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    table: str = ""
    verdict_line: str = ""  # "SLOs: 36 met, 0 missed, throughput not set" (empty without a summary)
    report_path: Path | None = None
    csv_prefix: str | None = None
    interrupted: bool = False
    swept: SweepResult | None = None
    message: str = ""


@dataclass(frozen=True)
class LoadPlan:
    """A validated run: the suite, the profile after overrides and the objectives."""

    locustfile: Path
    profiles_path: Path
    profile: Profile
    spec: SloSpec
    flows: dict[str, tuple[str, ...]]  # the flows the profile runs -> their steps (each needs data)


def find_suite(suite: Path | None) -> Path:
    """The load suite folder: ``suite``, else ``./load``, else the one shipped with ksentinel."""
    from ksentinel.suites import find_suite as find

    return find("load", suite).path


def plan_load(
    *,
    profile: str,
    users: int | None = None,
    spawn_rate: float | None = None,
    run_time: float | None = None,
    suite: Path | None = None,
    config: Config | None = None,
) -> LoadPlan:
    """Validate everything a run needs before anything starts (one-line ``ConfigError``)."""
    suite_dir = find_suite(suite)
    flows = all_flows()
    known_flows = tuple(flows)
    known_steps = tuple(step for f in flows.values() for step in f.steps)
    profiles_path = suite_dir / "profiles.toml"
    chosen = load_profiles(profiles_path, known_flows=known_flows, known_steps=known_steps).get(profile)
    chosen = chosen.with_overrides(users=users, spawn_rate=spawn_rate, run_time=run_time)
    chosen.check_users()
    config = config if config is not None else load_config()
    slo_args = {"known_steps": known_steps, "known_flows": known_flows}
    source = str(config.path) if config.path is not None else config.label
    parse_slo(config.slo, source=source, **slo_args)
    spec = parse_slo(
        merge_slo(config.slo, chosen.slo), source=f"{source} + profile {chosen.name}", **slo_args
    )
    steps_of = {name: f.steps for name, f in flows.items()}
    return LoadPlan(
        suite_dir / "locustfile.py", profiles_path, chosen, spec, run_flows(chosen.flows, steps_of)
    )


def run_load(
    target: Target,
    *,
    profile: str,
    users: int | None = None,
    spawn_rate: float | None = None,
    run_time: float | None = None,
    workers: int = 0,
    html: Path | None = None,
    csv: str | None = None,
    metrics_port: int | None = None,
    suite: Path | None = None,
    config: Config | None = None,
    run_tag: str | None = None,
    output: Output | None = None,
) -> LoadOutcome:
    """Run ``profile`` against ``target`` and judge it (the caller has run ``check_target``).

    ``output`` receives the children's lines as they come (default: this process's stderr).
    """
    config = config if config is not None else load_config()
    plan = plan_load(
        profile=profile, users=users, spawn_rate=spawn_rate, run_time=run_time, suite=suite, config=config
    )
    if workers < 0:
        raise ConfigError(f"--workers: expected 0 or more, got {workers}")
    emit = output or _stderr
    tag = run_tag or new_run_id()
    if html is not None:
        html = html.absolute()
        html.parent.mkdir(parents=True, exist_ok=True)
    outcome = LoadOutcome(EXIT_USAGE, plan.profile.name, tag, report_path=html, csv_prefix=csv)
    # the variables without a flag (the stop wait, the settle time) reach the children too
    environment = LoadSettings.from_env(
        {name: os.environ[name] for name in (ENV_STOP_WAIT, ENV_SETTLE) if name in os.environ}
    )
    with tempfile.TemporaryDirectory(prefix="ksentinel-load-") as tmp:
        settings = LoadSettings(
            profile=plan.profile.name,
            profiles_path=plan.profiles_path,
            users=users,
            spawn_rate=spawn_rate,
            run_time=run_time,
            run_tag=tag,
            summary_path=Path(tmp) / "summary.json",
            metrics_port=metrics_port,
            workers=workers or None,
            stop_wait=environment.stop_wait,
            settle=environment.settle,
        )
        env = _child_env(target, settings, config)
        commands = _commands(plan, settings, workers=workers, html=html, csv=csv)
        try:
            outcome.interrupted, tail = _run_children(commands, env, plan, settings, emit)
        finally:
            outcome.swept = _final_sweep(target, tag, emit)
        summary = read_summary(settings.summary_path) if settings.summary_path else None
    outcome.summary = summary
    if summary is None:
        detail = " | ".join(tail[-3:]) or "no output"
        outcome.message = f"the load run ended without a summary of its statistics: {detail}"
        outcome.exit_code = EXIT_INTERRUPTED if outcome.interrupted else EXIT_USAGE
        return outcome
    outcome.rows = evaluate(summary, plan.spec, flows=plan.flows, optional=plan.profile.optional_flows)
    outcome.table = render_table(outcome.rows, summary)
    outcome.verdict_line = summary_line(outcome.rows)
    if html is not None and not html.exists():
        outcome.report_path = None
    outcome.exit_code = EXIT_INTERRUPTED if outcome.interrupted else exit_code(outcome.rows)
    lost = missing_workers(summary)
    if lost and not outcome.interrupted:
        outcome.message = lost
        outcome.exit_code = EXIT_USAGE
    return outcome


# --- the children --------------------------------------------------------------------------------


def _child_env(target: Target, settings: LoadSettings, config: Config) -> dict[str, str]:
    with target_environment(target):
        env = {name: value for name, value in os.environ.items() if not name.startswith(PREFIX)}
    env.update(settings.to_env())
    if config.path is not None:
        env["KSENTINEL_CONFIG"] = str(config.path)
    env["PYTHONUNBUFFERED"] = "1"
    if getattr(target, "production", False):  # the command let it through (--allow-production)
        env[ENV_ALLOW_PRODUCTION] = "1"
    return env


def _commands(
    plan: LoadPlan, settings: LoadSettings, *, workers: int, html: Path | None, csv: str | None
) -> list[list[str]]:
    profile = plan.profile
    locust = [sys.executable, "-m", "locust", "-f", str(plan.locustfile)]
    master = [*locust, "--headless", "--only-summary"]
    if not profile.staged:
        master += [
            "-u",
            str(profile.users),
            "-r",
            f"{profile.spawn_rate:g}",
            "-t",
            f"{math.ceil(profile.run_time)}s",
        ]
    if html is not None:
        master += ["--html", str(html)]
    if csv:
        master += ["--csv", csv]
    if not workers:
        return [master]
    port = _free_port()
    master += [
        "--master",
        "--master-bind-host",
        "127.0.0.1",
        "--master-bind-port",
        str(port),
        "--expect-workers",
        str(workers),
        "--expect-workers-max-wait",
        str(int(STARTUP_GRACE)),
    ]
    worker = [
        *locust,
        "--worker",
        "--master-host",
        "127.0.0.1",
        "--master-port",
        str(port),
        "--loglevel",
        "WARNING",
    ]
    return [master] + [list(worker) for _ in range(workers)]


def _run_children(
    commands: list[list[str]], env: dict[str, str], plan: LoadPlan, settings: LoadSettings, emit: Output
) -> tuple[bool, list[str]]:
    """Start master (first) and workers, wait for the master, stop on SIGINT/SIGTERM; (interrupted, tail)."""
    tail: collections.deque[str] = collections.deque(maxlen=20)
    procs: list[subprocess.Popen[str]] = []
    pumps: list[threading.Thread] = []
    interrupted = False
    deadline = time.monotonic() + plan.profile.duration + STARTUP_GRACE + settings.stop_wait + STOP_GRACE
    with _signals_as_interrupts(), Lifeline() as lifeline:
        try:
            for index, command in enumerate(commands):
                proc = subprocess.Popen(
                    command,
                    env={**env, **lifeline.env},
                    pass_fds=lifeline.pass_fds,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    errors="replace",
                    start_new_session=True,  # a terminal's Ctrl-C reaches us only; we stop the master
                )
                procs.append(proc)
                prefix = "" if index == 0 else f"[worker {index}] "
                pump = threading.Thread(target=_pump, args=(proc.stdout, prefix, emit, tail), daemon=True)
                pump.start()
                pumps.append(pump)
            master = procs[0]
            while master.poll() is None:
                if time.monotonic() > deadline:
                    emit(
                        f"ksentinel: the run did not end {plan.profile.duration:.0f}s after it began; stopping it"
                    )
                    _signal(master, signal.SIGINT)
                    deadline = time.monotonic() + settings.stop_wait + STOP_GRACE
                    if not _wait(master, deadline):
                        break
                time.sleep(0.2)
        except KeyboardInterrupt:
            interrupted = True
            emit("ksentinel: interrupted, stopping the run (clean-up, final stats, report); again to kill it")
            try:
                _signal(procs[0] if procs else None, signal.SIGINT)
                _wait(procs[0] if procs else None, time.monotonic() + settings.stop_wait + STOP_GRACE)
            except KeyboardInterrupt:
                emit("ksentinel: killing the run")
        finally:
            workers_deadline = time.monotonic() + 15  # workers quit when the master tells them to
            for proc in procs[1:]:
                _wait(proc, workers_deadline)
            for proc in procs:
                _kill(proc)
            for pump in pumps:
                pump.join(timeout=5)
    return interrupted, list(tail)


def _pump(stream: IO[str] | None, prefix: str, emit: Output, tail: collections.deque[str]) -> None:
    if stream is None:
        return
    try:
        for line in stream:
            text = line.rstrip("\n")
            tail.append(text)
            emit(prefix + text)
    finally:
        stream.close()


@contextlib.contextmanager
def _signals_as_interrupts() -> Iterator[None]:
    """SIGTERM (a CI cancelling the job) stops the run like Ctrl-C (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _signal(proc: subprocess.Popen[str] | None, signum: int) -> None:
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)


def _wait(proc: subprocess.Popen[str] | None, deadline: float) -> bool:
    """Wait until ``proc`` ends or ``deadline``; True when it ended."""
    if proc is None:
        return True
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        return True
    except subprocess.TimeoutExpired:
        return False


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        _signal(proc, signal.SIGTERM)
        if not _wait(proc, time.monotonic() + 5):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=5)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _final_sweep(target: Target, tag: str, emit: Output) -> SweepResult | None:
    """Remove what the run left behind (a user killed mid-call, a crashed process)."""
    try:
        result = sweep_run(target, credentials_of(target), tag)
    except KsentinelError as exc:
        emit(
            f"ksentinel: clean-up of run {tag} failed: {exc}; run `ksentinel sweep --tag {tag} --older-than 0s`"
        )
        return None
    if result.entries or result.tokens:
        emit(
            f"ksentinel: clean-up removed {len(result.entries)} entries and {len(result.tokens)} upload tokens left by the run"
        )
    for error in result.errors:
        emit(f"ksentinel: clean-up could not remove {error}")
    for note in result.incomplete:
        emit(f"ksentinel: clean-up incomplete: {note}; run `ksentinel sweep --tag {tag} --older-than 0s`")
    return result


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
