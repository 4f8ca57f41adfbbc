"""The schedule: one asyncio task per (target, flow), a run every interval with jitter.

Runs start on a fixed cadence (the interval is from start to start, each period stretched or
shrunk by up to ``jitter``), the first one after a random offset so that pairs do not all fire
at once. A pair whose run (or clean-up) is still going when its next start comes waits for it and
then starts at once: runs of one pair never overlap, and missed starts are skipped, not queued.
A task never dies of an exception: it is logged and the next run is scheduled as usual.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence

from ksentinel.probe.config import Pair
from ksentinel.probe.runner import Runner

log = logging.getLogger(__name__)

FIRST_RUN_SPREAD = 5.0


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
        for pair in self.pairs:
            offset = self._random.uniform(0, min(pair.interval, FIRST_RUN_SPREAD))
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
        await asyncio.sleep(offset)
        next_start = loop.time()
        while True:
            try:
                await self.runner.run(pair.target, pair.flow, pair.timeout, record=True)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("probe %s on %s: the scheduler could not run it", pair.flow, pair.target)
            self.completed.add((pair.target, pair.flow))
            next_start += self._period(pair)
            now = loop.time()
            if next_start < now:  # the run (or its clean-up) overran: start again now, skip the missed
                next_start = now
            await asyncio.sleep(next_start - now)
