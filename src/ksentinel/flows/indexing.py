"""Waiting for the search index: a real Kaltura lists and counts through an index that lags behind writes.

``baseEntry.get`` sees a write at once; ``baseEntry.list``/``count`` (and ``media.*``) see a created,
updated or deleted entry only about a second later (jittered), and during that time a deleted entry
may still count in ``totalCount`` while missing from ``objects``. A flow step that lists a fresh
write therefore polls with :func:`wait_listed` (bounded by ``FlowOptions.index_lag_timeout``) and
judges paging, totals, ordering and filters only once the index has caught up. How long that took
is recorded with :meth:`~ksentinel.flows.core.FlowContext.observe_index_lag` (exported and reported).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from ksentinel.flows.core import FlowContext

#: the first pause between polls, and the longest (each pause is 1.5 times the one before)
FIRST_INTERVAL, MAX_INTERVAL, GROWTH = 0.1, 1.0, 1.5


def poll_limit(timeout: float) -> int:
    """The most polls one wait makes: the growing pauses up to ``MAX_INTERVAL``, then one a second."""
    ramp = math.ceil(math.log(MAX_INTERVAL / FIRST_INTERVAL, GROWTH)) + 1
    return ramp + math.ceil(max(0.0, timeout) / MAX_INTERVAL) + 1


def wait_listed(
    ctx: FlowContext,
    call: Callable[[], Any],
    until: Callable[[Any], bool],
    *,
    what: str,
    since: float,
    describe: Callable[[Any], str] | None = None,
) -> Any:
    """Call ``call`` until ``until(answer)`` holds; return that answer.

    ``call`` lists or counts with ``nocache=1`` (a cached stale answer must not keep us waiting);
    ``since`` is the ``time.monotonic()`` at which the write (or the change waited for) happened;
    ``what`` says what a timeout means, as in ``entry 0_x not listed``. Polls with a growing pause (0.1 s up
    to 1 s), at most :func:`poll_limit` times and until ``since + index_lag_timeout``; on success the
    lag (seconds since ``since``) is observed, on timeout the current step fails naming the lag.
    API errors propagate (the step fails with their code). ``describe(answer)`` adds the last answer
    to the failure message.
    """
    timeout = max(0.0, ctx.options.index_lag_timeout)
    deadline = since + timeout
    interval = FIRST_INTERVAL
    answer: Any = None
    for _ in range(poll_limit(timeout)):
        answer = call()
        if until(answer):
            ctx.observe_index_lag(max(0.0, time.monotonic() - since))
            return answer
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ctx.pause(min(interval, left))
        interval = min(MAX_INTERVAL, interval * GROWTH)
    waited = time.monotonic() - since
    last = f"; last answer: {describe(answer)}" if describe is not None else ""
    ctx.check(
        False,
        f"{what} {_seconds(waited)} s after it was written "
        f"(search index lag beyond index_lag_timeout {timeout:g} s){last}",
    )
    return answer  # not reached: check(False) raises


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def listed_ids(answer: Any) -> list[Any]:
    """The ids in a list answer (``[]`` for anything that is not one)."""
    if not isinstance(answer, dict):
        return []
    return [item.get("id") for item in answer.get("objects") or [] if isinstance(item, dict)]
