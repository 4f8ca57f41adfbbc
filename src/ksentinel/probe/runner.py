"""Driving runs from the event loop: one at a time per (target, flow), a timeout, threads that finish.

:meth:`Runner.run` takes the pair's lock and the target's :class:`~ksentinel.probe.gate.Gate`,
starts the :class:`~ksentinel.probe.run.Run` in the worker pool and waits at most its timeout. A
run that times out is cancelled and reported at once; its thread keeps the lock and the gate until
it has cleaned up, so neither the scheduler nor ``/probe`` starts the pair again before then.
Scheduled runs and on-demand runs share the locks and gates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor

from ksentinel.flows import FlowOptions
from ksentinel.probe.gate import EXCLUSIVE_FLOWS, Gate
from ksentinel.probe.metrics import ProbeMetrics
from ksentinel.probe.run import Outcome, ProbeTarget, Run

log = logging.getLogger(__name__)

MAX_ON_DEMAND = 8


class Busy(Exception):
    """The pair is still running (or cleaning up) and did not become free in time."""


class Runner:
    """Runs flows against targets from the event loop; owns the worker threads."""

    def __init__(
        self,
        targets: Mapping[str, ProbeTarget],
        options: FlowOptions,
        metrics: ProbeMetrics,
        *,
        max_concurrent: int,
        prestart: bool = False,
    ) -> None:
        self.targets = dict(targets)
        self.options = options
        self.metrics = metrics
        self.executor = ThreadPoolExecutor(
            max_workers=max(1, max_concurrent) + MAX_ON_DEMAND,
            thread_name_prefix="ksentinel-probe",
            initializer=_background_priority,
        )
        # scheduled runs whose threads are running (also after their timeout): a bounded number of
        # worker threads whatever the schedule, so memory reaches its steady state early
        self.slots = asyncio.Semaphore(max(1, max_concurrent))
        if prestart:
            _start_all_threads(self.executor, max(1, max_concurrent) + MAX_ON_DEMAND)
        self.on_demand = 0  # on-demand runs whose threads are running (also after their timeout)
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._gates: dict[tuple[str, int], Gate] = {}
        self._running: dict[Run, asyncio.Future[Outcome]] = {}
        self._last: dict[tuple[str, str], str] = {}

    def lock(self, target: str, flow: str) -> asyncio.Lock:
        return self._locks.setdefault((target, flow), asyncio.Lock())

    async def run(
        self,
        target: str,
        flow: str,
        timeout: float,
        *,
        record: bool,
        keep_log: bool = False,
        wait: float | None = None,
    ) -> tuple[Outcome, Run]:
        """One run of ``flow`` against ``target``.

        ``wait`` (on-demand runs) bounds the wait for the pair's lock and the target's gate, and
        that wait is taken out of ``timeout``: the whole call then takes at most ``timeout`` seconds.
        """
        lock = self.lock(target, flow)
        probe_target = self.targets[target]
        # keyed by platform and partner: two target names for one partner share one response cache
        gate = self._gates.setdefault((probe_target.target.url, probe_target.target.partner_id), Gate())
        exclusive = flow in EXCLUSIVE_FLOWS
        loop = asyncio.get_running_loop()
        waiting = loop.time()
        try:
            await asyncio.wait_for(lock.acquire(), wait)
        except TimeoutError:
            raise Busy(f"a run of {flow} against {target} is still in progress") from None
        try:
            left = None if wait is None else max(0.0, wait - (loop.time() - waiting))
            gated = loop.time()
            await asyncio.wait_for(gate.acquire(exclusive), left)
            gate_wait = loop.time() - gated
        except TimeoutError:
            lock.release()
            raise Busy(f"{target} is busy with runs that {flow} must not overlap") from None
        except BaseException:
            lock.release()
            raise
        slot = self.slots if record else None
        if slot is not None:
            try:
                await slot.acquire()
            except BaseException:
                gate.release(exclusive)
                lock.release()
                raise
        release = _Release(lock, gate, exclusive, slot)
        if wait is not None:
            timeout = max(0.1, timeout - (loop.time() - waiting))
        run = Run(
            probe_target,
            flow,
            timeout,
            self.options,
            on_cache=self.metrics.cache_lookup if record else None,
            keep_log=keep_log,
        )
        run.gate_wait = gate_wait
        try:
            future = loop.run_in_executor(self.executor, run.execute)
        except RuntimeError:  # the pool is shut down: the exporter is stopping
            release()
            raise
        if record:
            self.metrics.set_in_progress(target, flow, True)
        else:
            self.on_demand += 1
        self._running[run] = future
        try:
            done, _ = await asyncio.wait({future}, timeout=timeout)
        except asyncio.CancelledError:  # the exporter is stopping: the thread still cleans up
            run.cancel()
            future.add_done_callback(lambda f: self._done(f, run, release, record, late=True))
            raise
        if done:
            outcome = future.result()
            self._done(future, run, release, record, late=False)
        else:
            run.cancel()
            outcome = run.timed_out()
            future.add_done_callback(lambda f: self._done(f, run, release, record, late=True))
        if record:
            self.metrics.record(outcome)
            self._log_change(outcome)
        return outcome, run

    def _done(
        self, future: asyncio.Future[Outcome], run: Run, release: _Release, record: bool, *, late: bool
    ) -> None:
        """The run's thread has finished (after its clean-up): free the pair."""
        self._running.pop(run, None)
        if late:  # a timed-out run: its outcome was recorded already, only its clean-up counts now
            outcome = future.result() if not future.cancelled() and future.exception() is None else None
            if outcome is not None and record:
                self.metrics.add_cleanup_errors(run.target.name, run.flow, len(outcome.cleanup_errors))
            if outcome is not None and outcome.cleanup_errors:
                log.warning(
                    "clean-up after the timed-out %s run on %s: %s",
                    run.flow,
                    run.target.name,
                    outcome.cleanup_errors[0],
                )
        if record:
            self.metrics.set_in_progress(run.target.name, run.flow, False)
        else:
            self.on_demand -= 1
        release()

    def _log_change(self, outcome: Outcome) -> None:
        key = (outcome.target, outcome.flow)
        previous = self._last.get(key)
        self._last[key] = outcome.result
        if outcome.result == previous:
            return
        if outcome.ok:
            if previous is not None:
                log.warning("probe %s on %s: success again", outcome.flow, outcome.target)
        else:
            log.warning(
                "probe %s on %s: %s at %s: %s",
                outcome.flow,
                outcome.target,
                outcome.result,
                outcome.failed_step or "-",
                outcome.reason,
            )

    @property
    def running(self) -> int:
        return len(self._running)

    async def drain(self, grace: float) -> None:
        """Cancel every active run (they clean up) and wait up to ``grace`` seconds for the threads."""
        for run in list(self._running):
            run.cancel()
        pending = [f for f in self._running.values() if not f.done()]
        if pending:
            await asyncio.wait(pending, timeout=grace)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        for target in self.targets.values():
            target.close()


WORKER_NICENESS = 5


def _background_priority() -> None:
    """Worker threads yield the CPU to the event loop: answering a scrape comes first (Linux)."""
    if hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICENESS)


def _start_all_threads(executor: ThreadPoolExecutor, count: int) -> None:
    """Make the pool start its ``count`` threads now rather than one by one under load.

    Each thread costs about a megabyte once it has run a flow; a pool that grows whenever runs
    happen to overlap more than before makes the resident size creep up for hours. Started up
    front, the exporter's memory reaches its steady state within the first runs.
    """
    barrier = threading.Barrier(count + 1)
    for _ in range(count):
        executor.submit(barrier.wait, 10.0)
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(10.0)


class _Release:
    """Frees a run's thread slot, gate and pair lock, once."""

    def __init__(
        self, lock: asyncio.Lock, gate: Gate, exclusive: bool, slot: asyncio.Semaphore | None
    ) -> None:
        self.lock, self.gate, self.exclusive, self.slot = lock, gate, exclusive, slot
        self.done = False

    def __call__(self) -> None:
        if not self.done:
            self.done = True
            if self.slot is not None:
                self.slot.release()
            self.gate.release(self.exclusive)
            self.lock.release()
