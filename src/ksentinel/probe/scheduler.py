"""The schedule: one asyncio task per (target, flow), a run every interval with jitter.

Runs start on a fixed cadence (the interval is from start to start, each period stretched or
shrunk by up to ``jitter``), the first one after a random offset so that pairs do not all fire
at once: each pair gets its own share of the first 5 s, or of ``pairs / 20`` seconds when that is
longer (never more than its interval), since runs keep the cadence of their first start. A pair whose run (or clean-up) is still going when its next start comes waits for it and
then starts at once: runs of one pair never overlap, and missed starts are skipped, not queued.
A task never dies of an exception: it is logged and the next run is scheduled as usual.

How late each run's thread starts after its planned start (waiting for a worker thread beyond
``max_concurrent_runs``, for a busy event loop) is observed in ``ksentinel_probe_schedule_lag_seconds``:
an exporter with more pairs than it can run shows it there. The deliberate wait for the partner's
gate (the cache flow runs alone on its partner, gate.py) is not lag: a run's ``gate_wait`` is taken out.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence

from ksentinel.probe.config import Pair
from ksentinel.probe.runner import Runner

log = logging.getLogger(__name__)

FIRST_RUN_SPREAD = 5.0
#: first runs start at most this many a second: 1,000 pairs spread their first runs over 50 s
FIRST_RUNS_PER_SECOND = 20.0


class Scheduler:
    def __init__(
        self, runner: Runner, pairs: Sequence[Pair], *, jitter: float, seed: int | None = None
    ) -> None:
        self.runner = runner
        self.pairs = list(pairs)
        self.jitter = jitter
        self._random = random.Random(seed)
        self._tasks: list[asyncio.Task[None]] = []
        self.completed: set[tuple[str, str]] = set()

    @property
    def ready(self) -> bool:
        """Every pair has finished (or timed out) at least once."""
        return bool(self._tasks) and len(self.completed) >= len(self.pairs)

    @property
    def running(self) -> bool:
        return bool(self._tasks) and not all(task.done() for task in self._tasks)

    def start(self) -> None:
        count = len(self.pairs)
        spread = max(FIRST_RUN_SPREAD, count / FIRST_RUNS_PER_SECOND)
        slots = self._random.sample(range(count), count)  # each pair its own share of the spread
        for pair, slot in zip(self.pairs, slots, strict=True):
            offset = (slot + self._random.random()) / count * min(pair.interval, spread)
            task = asyncio.get_running_loop().create_task(
                self._loop(pair, offset), name=f"probe {pair.target}/{pair.flow}"
            )
            self._tasks.append(task)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _period(self, pair: Pair) -> float:
        return pair.interval * (1 + self._random.uniform(-self.jitter, self.jitter))

    async def _loop(self, pair: Pair, offset: float) -> None:
        loop = asyncio.get_running_loop()
        next_start = loop.time() + offset
        await asyncio.sleep(offset)
        while True:
            try:
                _, run = await self.runner.run(pair.target, pair.flow, pair.timeout, record=True)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("probe %s on %s: the scheduler could not run it", pair.flow, pair.target)
            else:
                # how late the run's thread started: both ends measured back from now, each on its own clock,
                # less the deliberate wait for the partner's gate (the cache flow runs alone on its partner)
                lag = (loop.time() - next_start) - (time.perf_counter() - run.started) - run.gate_wait
                self.runner.metrics.observe_schedule_lag(pair.flow, max(0.0, lag))
            self.completed.add((pair.target, pair.flow))
            next_start += self._period(pair)
            now = loop.time()
            if next_start < now:  # the run (or its clean-up) overran: start again now, skip the missed
                next_start = now
            await asyncio.sleep(next_start - now)
