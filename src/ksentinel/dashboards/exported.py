"""Which series names the exporters really export (what a dashboard or rule may read).

:func:`exported_names` asks the exporters' own code (the probe's ``ProbeMetrics``, the load run's
``LoadCollector``) for their metric families, without running anything; the tests do the same
with a live ``/metrics`` through :func:`names_in_exposition`. A family stands for the sample names
Prometheus stores: a counter ``x`` for ``x_total``, a histogram for ``x_bucket``,
``x_sum`` and ``x_count``, and so on.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import SimpleNamespace
from typing import Any

from ksentinel.errors import KsentinelError

__all__ = ["exported_names", "family_names", "names_in_exposition"]

_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_sum", "_count"),
    "info": ("_info",),
    "stateset": ("",),
    "gauge": ("",),
    "unknown": ("",),
    "untyped": ("",),
}


def family_names(families: Iterable[Any]) -> set[str]:
    """Sample names of ``prometheus_client`` metric families (also the samples they carry)."""
    names: set[str] = set()
    for family in families:
        for suffix in _SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
        names.update(sample.name for sample in family.samples)
    return names


def names_in_exposition(text: str) -> set[str]:
    """Sample names announced by a Prometheus text exposition (``# TYPE`` lines included)."""
    from prometheus_client.parser import text_string_to_metric_families

    return family_names(text_string_to_metric_families(text))


def probe_names() -> set[str]:
    """What ``probe serve``'s ``/metrics`` announces before any run (``# TYPE`` lines)."""
    from ksentinel.probe.metrics import ProbeMetrics

    return names_in_exposition(ProbeMetrics(process=False).render().decode("utf-8"))


def load_names() -> set[str]:
    from ksentinel.load.metrics import LoadCollector

    empty = SimpleNamespace(entries={}, errors={})
    return family_names(LoadCollector(lambda: (empty, 0)).collect())


def exported_names() -> set[str]:
    """Every ``ksentinel_*`` sample name the probe and load exporters export."""
    names: set[str] = set()
    for part, reader in (("probe", probe_names), ("load", load_names)):
        try:
            names |= reader()
        except (ImportError, AttributeError, TypeError) as exc:
            raise KsentinelError(f"cannot read the {part} exporter's metric names: {exc}") from exc
    return {name for name in names if name.startswith("ksentinel_")}
