"""The probe's Prometheus series: ``/metrics`` (scheduled runs) and ``/probe`` (one run, blackbox names).

``/metrics`` (ARCHITECTURE.md section 6, plus a few for dashboards; docs/probes.md lists them all)::

    ksentinel_probe_success{target,flow}                     gauge 0/1, last run
    ksentinel_probe_duration_seconds{target,flow}            gauge, last run without its deliberate waits
    ksentinel_probe_wait_seconds{target,flow}                gauge, the last run's deliberate waits
    ksentinel_probe_step_duration_seconds{target,flow,step}  histogram (steps that were not tested left out)
    ksentinel_probe_runs_total{target,flow,result}           counter, result=success|failure|error
    ksentinel_probe_misconfigured{target,flow}               gauge 0/1, the last run could not start a session
    ksentinel_probe_misconfigured_runs_total{target,flow}    counter, such runs (also counted as errors)
    ksentinel_probe_last_success_timestamp_seconds{target,flow}
    ksentinel_api_errors_total{target,flow,step,code}        counter, code bounded (else OTHER)
    ksentinel_cache_lookups_total{target,result}             counter, result=hit|miss|unknown
    ksentinel_cache_stale_reads_total{target}                counter, cache.write_fresh saw stale data
    ksentinel_probe_step_failures_total{target,flow,step}    counter, any failed step
    ksentinel_probe_cleanup_errors_total{target,flow}        counter, clean-up left something behind
    ksentinel_probe_in_progress{target,flow}                 gauge, a run (or its clean-up) is running
    ksentinel_probe_interval_seconds{target,flow}            gauge, the configured interval
    ksentinel_probe_timeout_seconds{target,flow}             gauge, the configured timeout
    ksentinel_index_lag_seconds{target}                      histogram, fresh write -> seen in list/count

:class:`ProbeMetrics` keeps plain numbers under one lock and writes the text exposition format
(0.0.4) itself: each series' ``name{labels} `` prefix is built once, when the series first appears,
and each family's text is kept until one of its values changes. client_python's generic
``generate_latest`` re-validates and re-escapes every label of every sample on every scrape, which
costs over 100 ms for the ~5,000 samples of 10 targets x 5 flows; this costs about 1 ms. Label
values come from :mod:`ksentinel.probe.labels` only. ``/probe`` uses client_python as is: a fresh
``CollectorRegistry`` per request, as blackbox_exporter does.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from itertools import accumulate

from prometheus_client import CollectorRegistry, Gauge, ProcessCollector, generate_latest

from ksentinel.probe.config import Pair
from ksentinel.probe.labels import CACHE_RESULTS, RESULTS, bounded_code, step_label
from ksentinel.probe.run import Outcome

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: the search index lag: a real Kaltura's is about a second; the flows give up after 30 s by default
LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
STALE_STEP = "cache.write_fresh"

Key = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(names: tuple[str, ...], values: Key) -> str:
    return ",".join(f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True))


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return "NaN" if math.isnan(value) else repr(value)


class _Family:
    """One metric family: a text line per series, rebuilt when its value changes."""

    def __init__(self, name: str, kind: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name, self.kind, self.labels = name, kind, labels
        self.header = f"# HELP {name} {documentation}\n# TYPE {name} {kind}\n"
        self.values: dict[Key, float] = {}
        self._prefix: dict[Key, str] = {}
        self._lines: dict[Key, str] = {}
        self._order: list[Key] = []
        self._text: bytes | None = None

    def set(self, key: Key, value: float) -> None:
        prefix = self._prefix.get(key)
        if prefix is None:
            prefix = self._prefix[key] = f"{self.name}{{{_labels(self.labels, key)}}} "
            self._order = sorted([*self._order, key])
        elif self.values[key] == value:
            return
        self.values[key] = value
        self._lines[key] = f"{prefix}{_number(value)}\n"
        self._text = None

    def inc(self, key: Key, amount: int = 1) -> None:
        self.set(key, self.values.get(key, 0) + amount)

    def setdefault(self, key: Key, value: float) -> None:
        if key not in self.values:
            self.set(key, value)

    def render(self) -> bytes:
        if self._text is None:
            lines = self._lines
            self._text = (self.header + "".join([lines[key] for key in self._order])).encode()
        return self._text


class _Histogram:
    """One histogram series: bucket counts, sum, count, and its text, rebuilt on each observation.

    Rebuilding at observation time (a few microseconds per run) keeps the scrape itself down to
    joining strings, however many runs happened since the last one.
    """

    __slots__ = ("buckets", "counts", "template", "text", "total")

    def __init__(self, name: str, labels: str, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        bounds = [repr(b) for b in buckets] + ["+Inf"]
        prefixes = [f'{name}_bucket{{{labels},le="{bound}"}} ' for bound in bounds]
        prefixes += [f"{name}_sum{{{labels}}} ", f"{name}_count{{{labels}}} "]
        escaped = [p.replace("{", "{{").replace("}", "}}") for p in prefixes]
        self.template = (
            "".join(f"{p}{{}}\n" for p in escaped[:-2]) + f"{escaped[-2]}{{!r}}\n{escaped[-1]}{{}}\n"
        )
        self.text = b""
        self._render()

    def observe(self, value: float) -> None:
        buckets = self.buckets
        index = next((i for i, bound in enumerate(buckets) if value <= bound), len(buckets))
        self.counts[index] += 1
        self.total += value
        self._render()

    def _render(self) -> None:
        cumulative = list(accumulate(self.counts))
        self.text = self.template.format(*cumulative, self.total, cumulative[-1]).encode()


PAIR = ("target", "flow")
STEP_DURATION = "ksentinel_probe_step_duration_seconds"
INDEX_LAG = "ksentinel_index_lag_seconds"


class ProbeMetrics:
    """The state behind ``/metrics``; thread-safe (cache lookups arrive from worker threads)."""

    def __init__(self, *, process: bool = True) -> None:
        self._lock = threading.Lock()
        family = _Family
        self.success = family(
            "ksentinel_probe_success", "gauge", "1 if the last run of the flow succeeded, else 0", PAIR
        )
        self.duration = family(
            "ksentinel_probe_duration_seconds",
            "gauge",
            "Duration of the last run of the flow, without its deliberate waits for conversion and the "
            "search index (ksentinel_probe_wait_seconds)",
            PAIR,
        )
        self.wait = family(
            "ksentinel_probe_wait_seconds",
            "gauge",
            "Seconds the last run of the flow waited on purpose for the platform's asynchronous work "
            "(conversion, the search index)",
            PAIR,
        )
        self.runs = family(
            "ksentinel_probe_runs_total", "counter", "Runs of the flow by result", (*PAIR, "result")
        )
        self.misconfigured = family(
            "ksentinel_probe_misconfigured",
            "gauge",
            "1 if the last run of the flow could not start a session with the configured credentials "
            "(wrong secret or partner id: a configuration error, not a failure of the API), else 0",
            PAIR,
        )
        self.misconfigured_runs = family(
            "ksentinel_probe_misconfigured_runs_total",
            "counter",
            "Runs that could not start a session with the configured credentials (also counted in "
            'ksentinel_probe_runs_total with result="error")',
            PAIR,
        )
        self.last_success = family(
            "ksentinel_probe_last_success_timestamp_seconds",
            "gauge",
            "Unix time the last successful run of the flow finished",
            PAIR,
        )
        self.api_errors = family(
            "ksentinel_api_errors_total",
            "counter",
            "API and transport errors that failed a flow step, by bounded error code",
            (*PAIR, "step", "code"),
        )
        self.cache = family(
            "ksentinel_cache_lookups_total",
            "counter",
            "Cacheable entry reads of the flows by the X-Kaltura header of the answer",
            ("target", "result"),
        )
        self.stale = family(
            "ksentinel_cache_stale_reads_total",
            "counter",
            "Reads after an update that returned stale data (cache flow, cache.write_fresh)",
            ("target",),
        )
        self.step_failures = family(
            "ksentinel_probe_step_failures_total",
            "counter",
            "Failed flow steps (broken invariants, API errors and timeouts)",
            (*PAIR, "step"),
        )
        self.cleanup_errors = family(
            "ksentinel_probe_cleanup_errors_total",
            "counter",
            "Objects a run's clean-up could not remove (ksentinel sweep removes them)",
            PAIR,
        )
        self.in_progress = family(
            "ksentinel_probe_in_progress",
            "gauge",
            "1 while a run of the flow (or its clean-up after a timeout) is running",
            PAIR,
        )
        self.interval = family(
            "ksentinel_probe_interval_seconds", "gauge", "Configured interval of the flow", PAIR
        )
        self.timeout = family(
            "ksentinel_probe_timeout_seconds", "gauge", "Configured timeout of the flow", PAIR
        )
        self.steps: dict[Key, _Histogram] = {}
        self._steps_order: list[Key] = []
        self._steps_header = (
            f"# HELP {STEP_DURATION} Duration of flow steps\n# TYPE {STEP_DURATION} histogram\n".encode()
        )
        self.lags: dict[Key, _Histogram] = {}
        self._lags_order: list[Key] = []
        self._lags_header = (
            f"# HELP {INDEX_LAG} Seconds a fresh write of a flow took to show up in list/count "
            f"(the search index lag)\n# TYPE {INDEX_LAG} histogram\n"
        ).encode()
        self._families = (
            self.success,
            self.duration,
            self.wait,
            "steps",  # the step histograms go here
            self.runs,
            self.misconfigured,
            self.misconfigured_runs,
            self.last_success,
            self.api_errors,
            self.cache,
            self.stale,
            self.step_failures,
            self.cleanup_errors,
            self.in_progress,
            self.interval,
            self.timeout,
            "lags",  # the index lag histograms
        )
        self._process: CollectorRegistry | None = None
        if process:
            self._process = CollectorRegistry(auto_describe=False)
            ProcessCollector(registry=self._process)

    # --- recording --------------------------------------------------------------------------------

    def configure(self, pairs: Iterable[Pair]) -> None:
        """Create the series every scheduled pair has from the start (counters at 0)."""
        with self._lock:
            for pair in pairs:
                key = (pair.target, pair.flow)
                self.interval.set(key, pair.interval)
                self.timeout.set(key, pair.timeout)
                self.in_progress.set(key, 0)
                self.cleanup_errors.setdefault(key, 0)
                self.misconfigured.setdefault(key, 0)
                self.misconfigured_runs.setdefault(key, 0)
                for result in RESULTS:
                    self.runs.setdefault((*key, result), 0)
                for result in CACHE_RESULTS:
                    self.cache.setdefault((pair.target, result), 0)
                self.stale.setdefault((pair.target,), 0)
                self._lag_histogram(pair.target)

    def set_in_progress(self, target: str, flow: str, running: bool) -> None:
        with self._lock:
            self.in_progress.set((target, flow), 1 if running else 0)

    def cache_lookup(self, target: str, result: str) -> None:
        with self._lock:
            self.cache.inc((target, result if result in CACHE_RESULTS else "unknown"))

    def add_cleanup_errors(self, target: str, flow: str, count: int) -> None:
        if count:
            with self._lock:
                self.cleanup_errors.inc((target, flow), count)

    def record(self, outcome: Outcome) -> None:
        """Account for one finished (or timed-out) run."""
        target, flow = outcome.target, outcome.flow
        key = (target, flow)
        result = outcome.result if outcome.result in RESULTS else "error"
        with self._lock:
            self.success.set(key, 1 if outcome.ok else 0)
            self.duration.set(key, outcome.active)
            self.wait.set(key, outcome.waited)
            if outcome.ok:
                self.last_success.set(key, outcome.finished_at)
            self.runs.inc((*key, result))
            self.misconfigured.set(key, 1 if outcome.misconfigured else 0)
            if outcome.misconfigured:
                self.misconfigured_runs.inc(key)
            for step in outcome.steps:
                label = step_label(flow, step.name)
                series = (*key, label)
                if not step.tested:  # it did not run the check it names: no duration of that check
                    continue
                histogram = self.steps.get(series)
                if histogram is None:
                    labels = _labels(("target", "flow", "step"), series)
                    histogram = self.steps[series] = _Histogram(STEP_DURATION, labels)
                    self._steps_order = sorted(self.steps)
                histogram.observe(step.duration)
                if not step.ok:
                    self.step_failures.inc(series)
                    if step.name == STALE_STEP and not step.code:
                        self.stale.inc((target,))
            for step_name, code in outcome.errors():
                self.api_errors.inc((*key, step_label(flow, step_name), bounded_code(code)))
            if outcome.timed_out:
                self.step_failures.inc((*key, step_label(flow, outcome.failed_step)))
            else:
                self.cleanup_errors.inc(key, len(outcome.cleanup_errors))
            if outcome.index_lags:
                lag = self._lag_histogram(target)
                for seconds in outcome.index_lags:
                    lag.observe(max(0.0, float(seconds)))

    def _lag_histogram(self, target: str) -> _Histogram:
        """The target's index lag histogram (created with zero counts); call with the lock held."""
        histogram = self.lags.get((target,))
        if histogram is None:
            labels = _labels(("target",), (target,))
            histogram = self.lags[(target,)] = _Histogram(INDEX_LAG, labels, LAG_BUCKETS)
            self._lags_order = sorted(self.lags)
        return histogram

    def last_result(self, target: str, flow: str) -> float | None:
        with self._lock:
            return self.success.values.get((target, flow))

    # --- rendering --------------------------------------------------------------------------------

    def render(self) -> bytes:
        """The text exposition of every series (and the process' own, when enabled)."""
        return b"".join(self.render_parts())

    def render_parts(self) -> list[bytes]:
        """:meth:`render` in pieces.

        Every piece is kept between scrapes until its values change, so a scrape copies nothing
        but the list; the HTTP layer writes the pieces as they are.
        """
        with self._lock:
            parts: list[bytes] = []
            for family in self._families:
                if family == "steps":
                    parts.append(self._steps_header)
                    steps = self.steps
                    parts += [steps[key].text for key in self._steps_order]
                elif family == "lags":
                    parts.append(self._lags_header)
                    lags = self.lags
                    parts += [lags[key].text for key in self._lags_order]
                elif isinstance(family, _Family):
                    parts.append(family.render())
        if self._process is not None:
            parts.append(generate_latest(self._process))
        return parts

    def text(self) -> str:
        return self.render().decode()


def probe_registry(outcome: Outcome) -> CollectorRegistry:
    """A fresh registry with blackbox_exporter's names for one on-demand run (``/probe``)."""
    registry = CollectorRegistry(auto_describe=True)
    success = Gauge("probe_success", "Displays whether or not the probe was a success", registry=registry)
    duration = Gauge(
        "probe_duration_seconds", "Returns how long the probe took to complete in seconds", registry=registry
    )
    steps = Gauge(
        "probe_step_duration_seconds",
        "Duration of each flow step (summed when a step repeats)",
        ["step"],
        registry=registry,
    )
    success.set(1 if outcome.ok else 0)
    duration.set(outcome.duration)
    totals: dict[str, float] = {}
    for step in outcome.steps:
        if not step.tested:
            continue
        label = step_label(outcome.flow, step.name)
        totals[label] = totals.get(label, 0.0) + step.duration
    for label, total in totals.items():
        steps.labels(step=label).set(total)
    if outcome.index_lags:  # only runs that wrote and then listed: the session flow never has it
        lag = Gauge(
            "probe_index_lag_seconds",
            "Longest time a fresh write of the run took to show up in list/count (the search index lag)",
            registry=registry,
        )
        lag.set(max(outcome.index_lags))
    return registry
