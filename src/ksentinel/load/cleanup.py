"""Removing a run's leftovers by tag, persistently: a target under load (or with a fault that fails
one call in five) must not keep the clean-up from finishing. A pass that timed out, or was answered
with a body over the size limit, is not repeated: against a target that hangs or streams without end
each attempt would only cost as much again.

When a run stops, its users are stopped mid-flow, some in the middle of a call that creates an entry or
an upload token. The target may still carry such a call out after the first sweep, and it lists a new
entry only once its search index caught up (about a second on a real Kaltura): :func:`sweep_settled`
sweeps at once and once more ``settle`` seconds later."""

from __future__ import annotations

import time

from ksentinel.config import Target
from ksentinel.errors import KsentinelError
from ksentinel.flows import Credentials, Sessions
from ksentinel.flows.sweep import SweepResult, sweep
from ksentinel.kaltura.api import KalturaApi
from ksentinel.kaltura.transport import ResponseTooLarge, TransportTimeout

ATTEMPTS = 6
PAUSE = 0.25
#: seconds between the first sweep of a stopped run and the last (``$KSENTINEL_LOAD_SETTLE``)
SETTLE = 2.0


def sweep_run(
    target: Target, credentials: Credentials, run_tag: str, *, attempts: int = ATTEMPTS
) -> SweepResult:
    """``sweep --tag run_tag``, repeated until a pass finds nothing it cannot remove.

    Returns everything removed; ``errors`` holds what the last pass could not remove. Raises the
    last ``KsentinelError`` when no pass could even list the leftovers; a ``TIMEOUT`` or
    ``TOO_LARGE`` ends the attempts at once.
    """
    total = SweepResult()
    last_error: KsentinelError | None = None
    listed = False
    with KalturaApi(target.url, partner_id=target.partner_id, timeout=min(target.timeout, 30.0)) as api:
        admin = api.with_ks(Sessions(credentials).admin())
        for attempt in range(attempts):
            if attempt:
                time.sleep(PAUSE * attempt)
            try:
                result = sweep(admin, run_tag=run_tag)
            except (TransportTimeout, ResponseTooLarge) as exc:  # the next pass would cost as much
                last_error = exc
                break
            except KsentinelError as exc:  # a list call failed: try again
                last_error = exc
                continue
            listed = True
            total.entries += result.entries
            total.tokens += result.tokens
            total.errors = result.errors
            total.incomplete = result.incomplete  # a listing that had to stop at Kaltura's limit
            if not result.errors:
                break
    if not listed and last_error is not None:
        raise last_error
    return total


def sweep_settled(
    target: Target, credentials: Credentials, run_tag: str, *, settle: float = SETTLE
) -> SweepResult:
    """:func:`sweep_run` now and, when that pass could list, again ``settle`` seconds later.

    The second pass removes what calls still in flight when the users stopped created, and what the
    search index did not list yet. Raises like :func:`sweep_run` when the first pass cannot list;
    a failing second pass leaves its error in ``errors``.
    """
    started = time.monotonic()
    total = sweep_run(target, credentials, run_tag)
    if settle <= 0:
        return total
    time.sleep(max(0.0, started + settle - time.monotonic()))
    try:
        late = sweep_run(target, credentials, run_tag)
    except KsentinelError as exc:
        total.errors = [*total.errors, f"the second sweep: {exc}"]
        return total
    total.entries += late.entries
    total.tokens += late.tokens
    total.errors = late.errors
    total.incomplete = [*total.incomplete, *late.incomplete]
    return total
