"""Python's full garbage collections between two scrapes of ``/metrics``, not during one.

A full collection stops every thread, the event loop too, while it walks the heap: 20 to 70 ms in
an exporter with 1,000 pairs. CPython starts one whenever enough objects have outlived the young
generations, at any moment, so a scrape that meets one waits for it (the tail of the /metrics
latency). :class:`FullCollections` turns the automatic full collections off and runs them itself:
at most once per :data:`EVERY_SECONDS`, :data:`QUIET_SECONDS` after a scrape was answered (the next
one is a scrape interval away), when nobody has scraped for :data:`IDLE_SECONDS`, and at the latest
after :data:`BACKSTOP_SECONDS` whatever the scrapes do. The young generations stay automatic (a few
ms each).

Once the first round is done (every pair ran once), the next of these collections also freezes what
is alive (``gc.freeze``): the modules, the series, the pools and sessions live as long as the
process, and a frozen object is never walked again. (A frozen object that later becomes cyclic
garbage stays: a one-off, bounded by the first round.)
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

#: at most one full collection per this many seconds while scrapes come
EVERY_SECONDS = 30.0
#: a full collection runs this long after a scrape was answered (its body is sent meanwhile; the
#: next scrape is a scrape interval away)
QUIET_SECONDS = 0.1
#: without a scrape for this long, nobody scrapes: the period alone decides
IDLE_SECONDS = 30.0
#: a full collection at the latest this long after the previous one, scrapes or not
BACKSTOP_SECONDS = 120.0
#: how often the pacing looks at the first round, idle periods and the backstop
POLL_SECONDS = 1.0
#: polls before the pacing hands the collections back to CPython (30 days at POLL_SECONDS)
MAX_POLLS = 2_600_000
#: a generation-2 threshold CPython never reaches (it counts generation-1 collections)
NEVER = 1_000_000_000

log = logging.getLogger(__name__)


class FullCollections:
    """When the exporter runs Python's full collections (see the module's text)."""

    def __init__(
        self,
        *,
        every: float = EVERY_SECONDS,
        backstop: float = BACKSTOP_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every = every
        self.backstop = backstop
        self._clock = clock
        self.scrapes_in_progress = 0
        self.answered_at: float | None = None  # when the last scrape was answered
        self._last_full = clock()
        self._freeze_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None  # while run() paces
        self.frozen = False
        self.collections = 0

    def scrape_started(self) -> None:
        self.scrapes_in_progress += 1

    def scrape_answered(self) -> None:
        self.scrapes_in_progress = max(0, self.scrapes_in_progress - 1)
        self.answered_at = answered = self._clock()
        if self._loop is not None:
            self._loop.call_later(QUIET_SECONDS, self.after_scrape, answered)

    def freeze_at_next(self) -> None:
        """The first round is done: freeze what is alive at the next collection, which comes soon."""
        if not self.frozen:
            self._freeze_pending = True

    def _wanted(self, now: float) -> bool:
        return self._freeze_pending or now - self._last_full >= self.every

    def after_scrape(self, answered: float) -> bool:
        """The quiet moment after the scrape answered at ``answered``: collect if one is wanted and no
        other scrape came meanwhile. Returns whether it collected."""
        if answered != self.answered_at or self.scrapes_in_progress or not self._wanted(self._clock()):
            return False
        self.collect()
        return True

    def due(self) -> bool:
        """What the poll decides: the backstop, or a wanted collection while nobody scrapes."""
        now = self._clock()
        if now - self._last_full >= self.backstop:
            return True
        if self.scrapes_in_progress or not self._wanted(now):
            return False
        return self.answered_at is None or now - self.answered_at >= IDLE_SECONDS

    def collect(self) -> None:
        gc.collect()
        self._last_full = self._clock()
        self.collections += 1
        if self._freeze_pending:
            self._freeze_pending = False
            self.frozen = True
            gc.freeze()
            log.info("first round done: %d long-lived objects frozen", gc.get_freeze_count())

    async def run(self, ready: Callable[[], bool], *, max_polls: int = MAX_POLLS) -> None:
        """Pace the full collections until cancelled (or ``max_polls``); ``ready`` says when the first
        round is done. CPython's own thresholds are back in place when this returns."""
        thresholds = gc.get_threshold()
        gc.set_threshold(thresholds[0], thresholds[1], NEVER)
        self._loop = asyncio.get_running_loop()
        try:
            for _ in range(max_polls):
                await asyncio.sleep(POLL_SECONDS)
                if not self.frozen and not self._freeze_pending and ready():
                    self.freeze_at_next()
                if self.due():
                    self.collect()
        finally:
            self._loop = None
            gc.set_threshold(*thresholds)
