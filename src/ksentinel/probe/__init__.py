"""Synthetic probes: the flow catalogue on a schedule, exported to Prometheus.

``ksentinel probe serve`` runs each configured (target, flow) on its interval and serves
``/metrics``; ``/probe?target=..&flow=..`` runs one flow on demand with blackbox_exporter's metric
names; ``ksentinel probe run --once`` makes one pass for cron or CI. See docs/probes.md.

Modules, bottom up::

    config     the [probes] schedule (ksentinel.toml or a standalone probes file), validated
    labels     the bounded label values (steps, results, error codes)
    run        one run in a worker thread: timeout, cancellation, clean-up, cache observation
    gate       the cache flow gets its partner to itself
    metrics    the ksentinel_* series (a collector) and the blackbox registry of /probe
    runner     runs from the event loop: one at a time per pair, timeouts, threads that finish
    scheduler  one task per pair, interval with jitter
    http       a small asyncio HTTP/1.1 server
    exporter   the endpoints of probe serve
    targets    which targets a command probes (the embedded platform when none)
    once       probe run --once: one pass and its table
    command    the click group ``probe``
"""

from __future__ import annotations
