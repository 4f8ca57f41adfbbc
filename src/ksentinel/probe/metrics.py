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
    ksentinel_probe_schedule_lag_seconds{flow}               histogram, planned start -> the run's thread starts,
                                                             less the deliberate wait for the partner's gate

:class:`ProbeMetrics` keeps plain numbers under one lock and is a client_python ``Collector``
(:meth:`ProbeMetrics.collect`, registered in :attr:`ProbeMetrics.registry` with the
``ProcessCollector``): that registry is the definition of what ``/metrics`` says. Serving it through
``generate_latest`` re-validates and re-escapes every label of every sample on every scrape: 1.6 s
(text) and 2.3 s (OpenMetrics) for the ~100,000 samples of 1,000 (target, flow) pairs, against 1 to
8 ms here (measured on a 2-CPU VM). So :meth:`ProbeMetrics.exposition` writes the same bytes itself, in either format client_python negotiates (text 0.0.4 or OpenMetrics
1.0.0): each sample line is built when its value changes (the two formats' sample lines are the
same; only the ``# HELP``/``# TYPE`` lines and OpenMetrics' ``# EOF`` differ), and a scrape joins
them. ``tests/test_probe_exporter_http.py`` holds it byte for byte to client_python's output.
Label values come from :mod:`ksentinel.probe.labels` only. ``/probe`` uses client_python as is: a
fresh ``CollectorRegistry`` per request, as blackbox_exporter does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from itertools import accumulate

from prometheus_client import CollectorRegistry, Gauge, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from ksentinel.probe.config import Pair
from ksentinel.probe.labels import CACHE_RESULTS, RESULTS, bounded_code, step_label
from ksentinel.probe.run import Outcome

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text"
EOF = b"# EOF\n"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: the search index lag: a real Kaltura's is about a second; the flows give up after 30 s by default
LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
#: how late scheduled runs start: milliseconds when the exporter keeps up, seconds when it does not
SCHEDULE_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STALE_STEP = "cache.write_fresh"
#: series per page of a gauge or counter family (see :class:`_Family`)
PAGE_SERIES = 512

Key = tuple[str, ...]


def _escape(value: str) -> str:
    """A label value as both formats write it (client_python: backslash, newline, double quote)."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    """``{a="1",b="2"}``: sorted by label name, as client_python writes them ("" without labels)."""
    text = ",".join(f'{name}="{_escape(value)}"' for name, value in sorted(pairs))
    return f"{{{text}}}" if text else ""


def _headers(family: str, kind: str, documentation: str) -> tuple[bytes, bytes]:
    """The ``# HELP``/``# TYPE`` lines in the text format and in OpenMetrics.

    The text format names a counter family after its ``_total`` samples and escapes backslash and
    newline in HELP; OpenMetrics names it without the suffix and escapes double quotes too.
    """
    text_name = f"{family}_total" if kind == "counter" else family
    text_help = documentation.replace("\\", r"\\").replace("\n", r"\n")
    text = f"# HELP {text_name} {text_help}\n# TYPE {text_name} {kind}\n"
    om = f"# HELP {family} {_escape(documentation)}\n# TYPE {family} {kind}\n"
    return text.encode(), om.encode()


class _Family:
    """One gauge or counter family: a text line per series, rebuilt when its value changes.

    The lines are served in pages of :data:`PAGE_SERIES` series: a page is joined again only when
    one of its series changed, so a scrape (and its gzip cache, :mod:`ksentinel.probe.gzip_cache`)
    reuses the pages nothing touched.
    """

    def __init__(self, name: str, kind: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name, self.kind, self.documentation, self.labels = name, kind, documentation, labels
        self.family = name.removesuffix("_total") if kind == "counter" else name
        self.header, self.om_header = _headers(self.family, kind, documentation)
        self.values: dict[Key, float] = {}
        self._prefix: dict[Key, str] = {}
        self._lines: dict[Key, str] = {}
        self._order: list[Key] | None = []  # None: a series was added since the last scrape
        self._page_of: dict[Key, int] = {}
        self._pages: list[bytes | None] = []

    def set(self, key: Key, value: float) -> None:
        prefix = self._prefix.get(key)
        if prefix is None:
            prefix = self._prefix[key] = f"{self.name}{_labels(zip(self.labels, key, strict=True))} "
            self._order = None  # sorted again once, by the next scrape, however many were added
        elif self.values[key] == value:
            return
        elif self._order is not None:
            self._pages[self._page_of[key]] = None
        self.values[key] = value
        self._lines[key] = f"{prefix}{floatToGoString(value)}\n"

    def _ordered(self) -> list[Key]:
        if self._order is None:
            self._order = sorted(self._prefix)
            self._page_of = {key: i // PAGE_SERIES for i, key in enumerate(self._order)}
            self._pages = [None] * -(-len(self._order) // PAGE_SERIES)
        return self._order

    def inc(self, key: Key, amount: int = 1) -> None:
        self.set(key, self.values.get(key, 0) + amount)

    def setdefault(self, key: Key, value: float) -> None:
        if key not in self.values:
            self.set(key, value)

    def parts(self) -> list[bytes]:
        """The sample lines in key order, a page at a time (a page object is kept until it changes)."""
        order = self._ordered()
        pages, lines = self._pages, self._lines
        for index, page in enumerate(pages):
            if page is None:
                keys = order[index * PAGE_SERIES : (index + 1) * PAGE_SERIES]
                pages[index] = "".join([lines[key] for key in keys]).encode()
        return pages  # type: ignore[return-value]  # every page is built above

    def collect(self) -> Metric:
        maker = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        family = maker(self.name, self.documentation, labels=self.labels)
        for key in self._ordered():
            family.add_metric(list(key), self.values[key])
        return family


class _Histogram:
    """One histogram series: bucket counts, sum, count, and its text, rebuilt on each observation.

    Rebuilding at observation time (a few microseconds per run) keeps the scrape itself down to
    joining strings, however many runs happened since the last one. The lines are in
    client_python's order: the buckets, ``_count``, ``_sum``.
    """

    __slots__ = ("bounds", "buckets", "counts", "key", "prefixes", "text", "total")

    def __init__(self, name: str, labels: tuple[str, ...], key: Key, buckets: tuple[float, ...]) -> None:
        self.key = key
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.bounds = [floatToGoString(b) for b in buckets] + ["+Inf"]
        pairs = list(zip(labels, key, strict=True))
        self.prefixes = [f"{name}_bucket{_labels([*pairs, ('le', bound)])} " for bound in self.bounds]
        self.prefixes += [f"{name}_count{_labels(pairs)} ", f"{name}_sum{_labels(pairs)} "]
        self.text = b""
        self._render()

    def observe(self, value: float) -> None:
        buckets = self.buckets
        index = next((i for i, bound in enumerate(buckets) if value <= bound), len(buckets))
        self.counts[index] += 1
        self.total += value
        self._render()

    def cumulative(self) -> list[int]:
        return list(accumulate(self.counts))

    def _render(self) -> None:
        cumulative = self.cumulative()
        values = [*cumulative, cumulative[-1], self.total]
        self.text = "".join(
            [f"{prefix}{floatToGoString(v)}\n" for prefix, v in zip(self.prefixes, values, strict=True)]
        ).encode()


class _Histograms:
    """One histogram family: its series by key, in key order.

    A scrape gets the series a group at a time: the series of one (target, flow) for the step
    histogram (one run observes them all at once), each series alone for the others. A group's
    text is joined again only after one of its series observed something.
    """

    def __init__(
        self, name: str, documentation: str, labels: tuple[str, ...], buckets: tuple[float, ...]
    ) -> None:
        self.name, self.documentation, self.labels, self.buckets = name, documentation, labels, buckets
        self.header, self.om_header = _headers(name, "histogram", documentation)
        self.series: dict[Key, _Histogram] = {}
        self._width = 2 if len(labels) > 2 else len(labels)  # how much of a key names its group
        self._groups: dict[Key, list[_Histogram]] | None = {}  # None: a series was added since
        self._texts: dict[Key, bytes] = {}

    def get(self, key: Key) -> _Histogram:
        histogram = self.series.get(key)
        if histogram is None:
            histogram = self.series[key] = _Histogram(self.name, self.labels, key, self.buckets)
            self._groups = None  # grouped again once, by the next scrape
            self._texts.pop(key[: self._width], None)
        return histogram

    def _grouped(self) -> dict[Key, list[_Histogram]]:
        if self._groups is None:
            groups: dict[Key, list[_Histogram]] = {}
            for key in sorted(self.series):
                groups.setdefault(key[: self._width], []).append(self.series[key])
            self._groups = groups
        return self._groups

    def observe(self, key: Key, value: float) -> None:
        self.get(key).observe(value)
        self._texts.pop(key[: self._width], None)

    def parts(self) -> list[bytes]:
        texts = self._texts
        parts = []
        for group, members in self._grouped().items():
            text = texts.get(group)
            if text is None:
                text = texts[group] = b"".join([histogram.text for histogram in members])
            parts.append(text)
        return parts

    def collect(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for members in self._grouped().values():
            for histogram in members:
                buckets = list(zip(histogram.bounds, histogram.cumulative(), strict=True))
                family.add_metric(list(histogram.key), buckets, histogram.total)
        return family


PAIR = ("target", "flow")
STEP_DURATION = "ksentinel_probe_step_duration_seconds"
INDEX_LAG = "ksentinel_index_lag_seconds"
SCHEDULE_LAG = "ksentinel_probe_schedule_lag_seconds"


class ProbeMetrics:
    """The state behind ``/metrics``; thread-safe (cache lookups arrive from worker threads).

    A client_python ``Collector``: :attr:`registry` holds it (and, with ``process``, the
    ``ProcessCollector``), so ``generate_latest(metrics.registry)`` is what ``/metrics`` serves;
    :meth:`exposition` serves the same bytes faster.
    """

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
        self.steps = _Histograms(STEP_DURATION, "Duration of flow steps", (*PAIR, "step"), BUCKETS)
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
        self.lags = _Histograms(
            INDEX_LAG,
            "Seconds a fresh write of a flow took to show up in list/count (the search index lag)",
            ("target",),
            LAG_BUCKETS,
        )
        self.schedule_lag = _Histograms(
            SCHEDULE_LAG,
            "Seconds from the planned start of a scheduled run of the flow to the start of the run "
            "(waiting for a worker thread, for the partner to be free of the cache flow or for it, for "
            "a busy exporter)",
            ("flow",),
            SCHEDULE_LAG_BUCKETS,
        )
        self._families: tuple[_Family | _Histograms, ...] = (
            self.success,
            self.duration,
            self.wait,
            self.steps,
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
            self.lags,
            self.schedule_lag,
        )
        #: what /metrics serves: these series, then the process' own
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._process: CollectorRegistry | None = None
        if process:
            collector = ProcessCollector(registry=None)
            self.registry.register(collector)
            self._process = CollectorRegistry(auto_describe=False)
            self._process.register(collector)

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
                self.lags.get((pair.target,))
                self.schedule_lag.get((pair.flow,))

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
                series = (*key, step_label(flow, step.name))
                if not step.tested:  # it did not run the check it names: no duration of that check
                    continue
                self.steps.observe(series, step.duration)
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
                for seconds in outcome.index_lags:
                    self.lags.observe((target,), max(0.0, float(seconds)))

    def observe_schedule_lag(self, flow: str, seconds: float) -> None:
        with self._lock:
            self.schedule_lag.observe((flow,), seconds)

    def last_result(self, target: str, flow: str) -> float | None:
        with self._lock:
            return self.success.values.get((target, flow))

    # --- client_python's view ---------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        """The series as client_python metric families (the ``Collector`` protocol)."""
        with self._lock:
            families = [family.collect() for family in self._families]
        yield from families

    # --- exposition -------------------------------------------------------------------------------

    def exposition(self, accept: str | None = None) -> tuple[list[bytes], str]:
        """``/metrics`` for a request's ``Accept`` header: the body in pieces, and its content type.

        The format is client_python's choice (``choose_encoder``: OpenMetrics when the client asks
        for it, as Prometheus does, else the text format 0.0.4), and the bytes are those of
        ``choose_encoder(accept)[0](self.registry)``. The escaping a client may ask for changes
        nothing here: every name is a legacy Prometheus name.
        """
        encoder, content_type = choose_encoder(accept or "")
        openmetrics = content_type.startswith(OPENMETRICS)
        parts = self.render_parts(openmetrics=openmetrics)
        if self._process is not None:
            parts.append(encoder(self._process))  # ends with OpenMetrics' "# EOF" when it is that
        elif openmetrics:
            parts.append(EOF)
        return parts, content_type

    def render(self) -> bytes:
        """The text exposition of every series (and the process' own, when enabled)."""
        return b"".join(self.exposition()[0])

    def render_parts(self, *, openmetrics: bool = False) -> list[bytes]:
        """This collector's families, without the process' and without OpenMetrics' ``# EOF``.

        Every piece is kept between scrapes until its values change, so a scrape copies nothing
        but the list.
        """
        with self._lock:
            parts: list[bytes] = []
            for family in self._families:
                parts.append(family.om_header if openmetrics else family.header)
                parts += family.parts()
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


def encoded(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """``registry`` in the format client_python negotiates for ``accept``, with its content type."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
