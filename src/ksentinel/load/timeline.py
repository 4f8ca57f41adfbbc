"""The run's timeline: per-step throughput, failures and latency percentiles over time.

The master (or the single local process) samples Locust's cumulative statistics every ``interval``
seconds (:meth:`Timeline.sample`, driven by a greenlet in :mod:`ksentinel.load.hooks`); each sample
closes one point. At the end :meth:`Timeline.finish` turns the points into the summary's
``"timeline"`` list::

    [{"t": 3.0, "users": 6,
      "steps": {"browse.list": {"requests": 41, "rps": 13.667, "failures": 0, "p50": 0.004, "p95": 0.011}}}]

``t`` is the end of the interval the point covers, in seconds since the run started (a point covers
``(previous t, t]``). Steps without a request or a failure in an interval are left out of its point.

* Latencies: the delta of each step's ``{rounded ms: count}`` histogram between two samples, so the
  interval's percentiles are exact (Locust's own rounding aside). Against a master they are the
  workers' reports that arrived in the interval (workers report every 3 s, hence a 3 s interval).
* Requests and failures: from Locust's per-second counters (``num_reqs_per_sec``,
  ``num_fail_per_sec``), which carry the second the request ended in on whichever process made it;
  counted once at the end, when every worker's final report is in, so the sum over the timeline
  equals the summary's totals. A failed invariant (``CHECK``) is a failure of its step, as in the
  summary; ``FLOW`` rows are not steps.
* Bounded: at ``max_points`` points, neighbours are merged pairwise (exactly: histograms and counts
  add) and the interval doubles, so a soak of any length keeps at most ``max_points`` points.

This module imports neither Locust nor gevent: statistics are duck-typed.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ksentinel.load.summary import percentile
from ksentinel.load.transport import CHECK_TYPE, FLOW_TYPE

MAX_POINTS = 300
Histogram = dict[int, int]


@dataclass
class _Point:
    end: float  # epoch seconds
    users: int
    times: dict[str, Histogram] = field(default_factory=dict)

    def absorb(self, later: _Point) -> None:
        """Become the union of this point and the ``later`` one that follows it."""
        self.end, self.users = later.end, later.users
        for step, hist in later.times.items():
            _add(self.times.setdefault(step, {}), hist)


def _add(into: Histogram, other: Mapping[int, int]) -> None:
    for value, count in other.items():
        into[value] = into.get(value, 0) + count


def _delta(current: Mapping[int, int], previous: Mapping[int, int]) -> Histogram:
    delta = {value: count - previous.get(value, 0) for value, count in current.items()}
    if any(count < 0 for count in delta.values()):  # the stats were reset: start over
        return dict(current)
    return {value: count for value, count in delta.items() if count}


def _request_entries(stats: Any) -> list[Any]:
    return [e for e in list(stats.entries.values()) if e.method not in (FLOW_TYPE, CHECK_TYPE)]


class Timeline:
    """Samples of one run (see the module docstring); ``started`` and every ``now`` are epoch seconds."""

    def __init__(self, started: float, *, interval: int = 1, max_points: int = MAX_POINTS) -> None:
        if interval < 1 or max_points < 2:
            raise ValueError("interval must be >= 1 s and max_points >= 2")
        self.started = started
        self.interval = interval
        self.max_points = max_points
        self._points: list[_Point] = []
        self._previous: dict[str, Histogram] = {}
        self.next_due = float(math.floor(started) + interval)
        if self.next_due - started < interval / 2:  # no sliver of a first interval
            self.next_due += interval

    def baseline(self, stats: Any) -> None:
        """Take the current histograms as the zero the first interval counts from."""
        self._previous = self._histograms(stats)

    def sample(self, stats: Any, users: int, now: float) -> None:
        """Close the interval that ends now (on the grid of due times when on time); early: nothing."""
        late = now - self.next_due
        if late < -0.1:  # a timer that fired a little early is on time
            return
        end = self.next_due if late < self.interval else now
        self._close(stats, users, end)
        while self.next_due <= max(now, end):
            self.next_due += self.interval

    def finish(self, stats: Any, users: int, now: float) -> list[dict[str, Any]]:
        """The summary's ``"timeline"``: a last point up to ``now``, then the counts.

        Histogram deltas that arrive after the last sample (a master's final worker reports) go to
        the last point: call once every report is in, with ``now`` the time the run stopped.
        """
        self._close(stats, users, max(now, self._points[-1].end if self._points else now))
        return self._export(stats)

    def _close(self, stats: Any, users: int, end: float) -> None:
        current = self._histograms(stats)
        times = {}
        for step, hist in current.items():
            delta = _delta(hist, self._previous.get(step, {}))
            if delta:
                times[step] = delta
        self._previous = current
        point = _Point(end, users, times)
        last = self._points[-1] if self._points else None
        if last is not None and end - last.end < self.interval / 2:
            last.absorb(point)  # a sliver (the end of the run): part of the interval before
        else:
            self._points.append(point)
        if len(self._points) >= self.max_points:
            self._halve()

    def __len__(self) -> int:
        return len(self._points)

    # --- internals -------------------------------------------------------------------------------

    @staticmethod
    def _histograms(stats: Any) -> dict[str, Histogram]:
        out: dict[str, Histogram] = {}
        for entry in _request_entries(stats):
            _add(out.setdefault(entry.name, {}), entry.response_times)
        return out

    def _halve(self) -> None:
        merged: list[_Point] = []
        for index in range(0, len(self._points), 2):
            point = self._points[index]
            if index + 1 < len(self._points):
                point.absorb(self._points[index + 1])
            merged.append(point)
        self._points = merged
        self.interval *= 2
        self.next_due = self._points[-1].end + self.interval

    def _export(self, stats: Any) -> list[dict[str, Any]]:
        ends = [p.end for p in self._points]
        counts: list[dict[str, list[int]]] = [{} for _ in self._points]  # step -> [requests, failures]
        for entry in list(stats.entries.values()):
            if entry.method == FLOW_TYPE:
                continue
            series = [(1, getattr(entry, "num_fail_per_sec", None) or {})]
            if entry.method != CHECK_TYPE:
                series.append((0, getattr(entry, "num_reqs_per_sec", None) or {}))
            for slot, per_second in series:
                for second, count in list(per_second.items()):
                    # second k holds requests that ended in [k, k + 1): the point whose end is after k
                    index = min(bisect.bisect_right(ends, second), len(ends) - 1)
                    row = counts[index].setdefault(entry.name, [0, 0])
                    row[slot] += count
        points = []
        previous_end = self.started
        for point, count in zip(self._points, counts, strict=True):
            span = max(point.end - previous_end, 1e-9)
            steps: dict[str, dict[str, Any]] = {}
            for step in sorted(set(count) | set(point.times)):
                requests, failures = count.get(step, [0, 0])
                hist = point.times.get(step) or {}
                if not (requests or failures or hist):
                    continue
                steps[step] = {
                    "requests": requests,
                    "rps": round(requests / span, 3),
                    "failures": failures,
                    "p50": percentile(hist, 0.50) / 1000.0 if hist else None,
                    "p95": percentile(hist, 0.95) / 1000.0 if hist else None,
                }
            points.append({"t": round(point.end - self.started, 3), "users": point.users, "steps": steps})
            previous_end = point.end
        return points
