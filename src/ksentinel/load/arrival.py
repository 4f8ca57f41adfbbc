"""The open model: flows start at a fixed rate, whatever the server does.

A closed model (N users, each starting its next flow when the last one ended) slows down with the
server and so hides how long requests would have waited: the load generator "coordinates" with the
server it measures. Here arrivals are scheduled: arrival ``k`` is due at ``start + k / rate``. An
executor (a Locust user) takes the next due arrival, sleeps until it is due, runs the flow, and
takes the next; when every executor is busy arrivals queue up and are started late. Latency is
measured from the *intended* start (the due time), so the wait in that queue is part of what the
first request of the flow and the flow itself report (wrk2's correction of coordinated omission).

:class:`ArrivalSchedule` is the per-process schedule (each of N workers runs ``rate / N``); it is
plain Python so that it can be tested without gevent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

LATE_AFTER = 0.05  # an arrival started more than this late counts as late


@dataclass
class ArrivalStats:
    """How well the executors kept up with the schedule: ``due`` arrivals by the end of the run,
    ``started`` by an executor, ``late`` ones among them."""

    due: int = 0
    started: int = 0
    late: int = 0
    max_lag: float = 0.0
    total_lag: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "due": self.due,
            "started": self.started,
            "late": self.late,
            "max_lag_seconds": round(self.max_lag, 4),
            "total_lag_seconds": round(self.total_lag, 4),
        }

    def merge(self, other: dict[str, float]) -> None:
        self.due += int(other.get("due", 0))
        self.started += int(other.get("started", 0))
        self.late += int(other.get("late", 0))
        self.max_lag = max(self.max_lag, float(other.get("max_lag_seconds", 0.0)))
        self.total_lag += float(other.get("total_lag_seconds", 0.0))


class ArrivalSchedule:
    """Due times of arrivals at ``rate`` per second, starting at the first :meth:`next_due`."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.time) -> None:
        if rate <= 0:
            raise ValueError("the arrival rate must be above 0")
        self.rate = rate
        self.clock = clock
        self.start: float | None = None
        self.closed_at: float | None = None
        self.issued = 0
        self.stats = ArrivalStats()

    def next_due(self) -> float:
        """The due time of the next arrival (``clock`` seconds); each call takes one arrival."""
        if self.start is None:
            self.start = self.clock()
        due = self.start + self.issued / self.rate
        self.issued += 1
        return due

    def started(self, due: float, at: float | None = None) -> float:
        """Record that the arrival due at ``due`` started at ``at`` (now); returns its lag (>= 0)."""
        lag = max(0.0, (self.clock() if at is None else at) - due)
        self.stats.started += 1
        if lag > LATE_AFTER:
            self.stats.late += 1
        self.stats.max_lag = max(self.stats.max_lag, lag)
        self.stats.total_lag += lag
        return lag

    def due(self, now: float | None = None) -> int:
        """Arrivals due by ``now`` (or by :meth:`close`)."""
        if self.start is None:
            return 0
        current = self.closed_at if self.closed_at is not None else self.clock() if now is None else now
        return int((current - self.start) * self.rate) + 1

    def backlog(self, now: float | None = None) -> int:
        """Arrivals already due but not yet taken by an executor."""
        return max(0, self.due(now) - self.issued)

    def close(self, at: float | None = None) -> None:
        """The run ended: arrivals due after this moment are not counted."""
        if self.closed_at is None and self.start is not None:
            self.closed_at = self.clock() if at is None else at

    def snapshot(self) -> dict[str, float]:
        """:class:`ArrivalStats` as a dict, with the arrivals due so far."""
        self.stats.due = max(self.due(), self.stats.started)
        return self.stats.as_dict()
