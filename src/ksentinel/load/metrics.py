"""The ``ksentinel_load_*`` metrics, read from Locust's statistics at scrape time::

    ksentinel_load_requests_total{step}                 counter: HTTP requests
    ksentinel_load_failures_total{step,code}            counter: failed requests and broken checks
    ksentinel_load_request_duration_seconds{step}       histogram of request latency
    ksentinel_load_users                                gauge: running users (all workers)

The collector runs where the statistics of every worker meet (the master, or the single local
process), so one scrape sees the whole run. Labels are bounded: ``step`` is a dotted step name
(anything else, or more than :data:`MAX_STEPS` of them, becomes ``other``) and ``code`` one of
:data:`ksentinel.load.failures.KNOWN_CODES` or ``OTHER``; no KS, secret or entry id can reach them.
Locust counts from the start of a test, so a new test in the web UI resets the counters, which
Prometheus' ``rate()`` treats as a counter reset.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from ksentinel.load.failures import bounded_code, code_of_error
from ksentinel.load.transport import CHECK_TYPE, FLOW_TYPE

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MAX_STEPS = 200
OTHER_STEP = "other"
_STEP = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*){0,3}\Z")

StatsSource = Callable[[], tuple[Any, int]]


class LoadCollector(Collector):
    """A collector over ``source() -> (locust RequestStats, user count)``."""

    def __init__(self, source: StatsSource) -> None:
        self.source = source
        self._steps: set[str] = set()

    def step_label(self, name: str) -> str:
        if not _STEP.match(name) or len(name) > 64:
            return OTHER_STEP
        if name not in self._steps:
            if len(self._steps) >= MAX_STEPS:
                return OTHER_STEP
            self._steps.add(name)
        return name

    def collect(self) -> Iterator[Any]:
        stats, users = self.source()
        requests = CounterMetricFamily(
            "ksentinel_load_requests", "HTTP requests of the load run by flow step", labels=["step"]
        )
        failures = CounterMetricFamily(
            "ksentinel_load_failures",
            "Failed requests and broken flow checks by flow step and error code",
            labels=["step", "code"],
        )
        durations = HistogramMetricFamily(
            "ksentinel_load_request_duration", "Request latency by flow step", labels=["step"], unit="seconds"
        )
        by_step: dict[str, list[Any]] = {}
        for entry in list(stats.entries.values()):
            if entry.method in (FLOW_TYPE, CHECK_TYPE):
                continue
            by_step.setdefault(self.step_label(entry.name), []).append(entry)
        for step, entries in sorted(by_step.items()):
            requests.add_metric([step], float(sum(e.num_requests for e in entries)))
            times: dict[int, int] = {}
            total_ms = 0.0
            for entry in entries:
                total_ms += entry.total_response_time
                for value, count in entry.response_times.items():
                    times[value] = times.get(value, 0) + count
            durations.add_metric([step], _buckets(times), total_ms / 1000.0)
        failed: dict[tuple[str, str], float] = {}
        for error in list(stats.errors.values()):
            if error.method == FLOW_TYPE:
                continue
            text = error.error if isinstance(error.error, str) else repr(error.error)
            key = (self.step_label(error.name), bounded_code(code_of_error(text)))
            failed[key] = failed.get(key, 0.0) + float(error.occurrences)
        for (step, code), count in sorted(failed.items()):
            failures.add_metric([step, code], count)
        yield requests
        yield failures
        yield durations
        yield GaugeMetricFamily("ksentinel_load_users", "Running users of the load run", value=float(users))


def _buckets(times: dict[int, int]) -> list[tuple[str, float]]:
    ordered = sorted(times.items())
    out: list[tuple[str, float]] = []
    cumulative = 0
    index = 0
    for bound in BUCKETS:
        while index < len(ordered) and ordered[index][0] / 1000.0 <= bound:
            cumulative += ordered[index][1]
            index += 1
        out.append((_bound(bound), float(cumulative)))
    out.append(("+Inf", float(sum(times.values()))))
    return out


def _bound(value: float) -> str:
    return repr(float(value))
