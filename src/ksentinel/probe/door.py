"""What ``/probe`` lets through: one on-demand run per (target, flow), spaced, read-only in production.

``/probe`` runs a flow against a real platform for whoever reaches the port. Two rules keep that
from becoming load (or writes) nobody scheduled:

* **One at a time, and not too often.** While an on-demand run of a pair is going, another request
  for the same pair is refused at once; a new one is refused until ``min_interval`` seconds after the
  previous one *started* (start to start, as the schedule's interval: Prometheus scraping ``/probe``
  every ``min_interval`` seconds or slower is never refused). Both refusals are HTTP 429 with
  ``Retry-After`` (whole seconds) and a one-line reason. Only requests that pass the 400 and 403
  checks count.
* **Read-only in production.** A flow that writes (creates, changes or deletes objects) does not
  run on demand against a target whose ``environment`` is ``production`` unless that target sets
  ``allow_writes``: HTTP 403 with a one-line reason.

The target's ``environment``/``allow_writes`` and the flow's ``writes`` marker are read with
fallbacks, so this works with targets and flows that do not declare them yet: a target without an
environment is a test target; a flow without a marker writes unless it is known to only read.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_MIN_INTERVAL = 10.0
#: Flows known to only read (and to clean up nothing). Every other flow of the catalogue creates
#: entries: upload, delete, cache, multirequest, and also list and browse, which seed the entries they
#: page through and delete them afterwards. A flow declaring ``writes`` overrides this guess.
READ_ONLY_FLOWS = frozenset({"session"})
PRODUCTION = "production"


def flow_writes(name: str, flow: object = None) -> bool:
    """Whether a run of the flow writes to the target (the flow's own ``writes``, else a guess by name)."""
    marker = getattr(flow, "writes", None)
    if isinstance(marker, bool):
        return marker
    return name not in READ_ONLY_FLOWS


def write_refusal(target_name: str, target: object, flow_name: str, flow: object = None) -> str | None:
    """The one-line reason a write flow may not run on demand against ``target``, else None."""
    environment = getattr(target, "environment", "test")
    if environment != PRODUCTION or getattr(target, "allow_writes", False) is True:
        return None
    if not flow_writes(flow_name, flow):
        return None
    return (
        f"flow '{flow_name}' writes to the platform and target '{target_name}' is a production target "
        "without allow_writes: only read-only flows run on demand there"
    )


@dataclass(frozen=True)
class Refusal:
    """A request the door turns away: HTTP 429 with ``Retry-After: retry_after``."""

    retry_after: int
    reason: str


class Door:
    """The on-demand admission of each (target, flow); used from the event loop only.

    :meth:`enter` admits a request (the caller must :meth:`leave` when its run is done) or returns
    a :class:`Refusal`. State is one start time per pair that was ever admitted, and pairs are
    configured targets and registered flows only (checked before), so it stays bounded.
    """

    def __init__(
        self, min_interval: float = DEFAULT_MIN_INTERVAL, *, clock: Callable[[], float] = time.monotonic
    ):
        if min_interval < 0 or not math.isfinite(min_interval):
            raise ValueError(f"min_interval must be 0 or more seconds, got {min_interval}")
        self.min_interval = min_interval
        self._clock = clock
        self._started: dict[tuple[str, str], float] = {}
        self._running: dict[tuple[str, str], float] = {}  # pair -> when its run should be over

    def enter(self, target: str, flow: str, timeout: float) -> Refusal | None:
        key = (target, flow)
        now = self._clock()
        if key in self._running:
            started = self._started[key]
            free_at = max(self._running[key], started + self.min_interval)
            return Refusal(
                _seconds(free_at - now),
                f"an on-demand run of {flow} against {target} is in progress (started {now - started:.1f}s ago); "
                f"retry in {_seconds(free_at - now)}s",
            )
        started = self._started.get(key)
        if started is not None and now - started < self.min_interval:
            wait = started + self.min_interval - now
            return Refusal(
                _seconds(wait),
                f"the last on-demand run of {flow} against {target} started {now - started:.1f}s ago; "
                f"runs of a pair are at least {self.min_interval:g}s apart: retry in {_seconds(wait)}s",
            )
        self._started[key] = now
        self._running[key] = now + max(0.0, timeout)
        return None

    def leave(self, target: str, flow: str) -> None:
        self._running.pop((target, flow), None)

    def busy(self, target: str, flow: str) -> bool:
        return (target, flow) in self._running


def _seconds(value: float) -> int:
    """Whole seconds for ``Retry-After``: rounded up, at least 1."""
    return max(1, math.ceil(value - 1e-9))
