"""Removing a run's leftovers by tag, persistently: a target under load (or with a fault that fails
one call in five) must not keep the clean-up from finishing. A pass that timed out, or was answered
with a body over the size limit, is not repeated: against a target that hangs or streams without end
each attempt would only cost as much again."""

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
            if not result.errors:
                break
    if not listed and last_error is not None:
        raise last_error
    return total
