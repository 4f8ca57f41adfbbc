"""The ``[dashboards]`` section of ``ksentinel.toml``: how rules and provisioning files are generated.

The objectives themselves come from ``[slo]`` (:mod:`ksentinel.slo`); this section only says how
the alerts around them behave and where Grafana finds things::

    [dashboards]
    for = "10s"                      # when set, the `for` of every alert without its own key below
    interval = "1m"                  # evaluation interval of the rule groups
    min_rate_window = "5m"           # shortest rate() window once the burn windows are scaled
    flow_failing_for = "5m"          # KalturaFlowFailing: probe failing this long (beats `for`)
    probe_absent_for = "10m"         # KalturaProbeAbsent: no probe series this long (beats `for`)
    cache_window = "30m"             # window of the cache hit ratio and stale-read alerts
    cache_hit_ratio_min = 0.05       # KalturaCacheHitRatioLow below this share of hits (probe reads)
    runbook_base_url = "https://github.com/ORG/ksentinel/blob/main/docs/runbooks.md"
                                     # each alert links <runbook_base_url>#<alertname in lower case>;
                                     # unset: no runbook_url annotation (lint warns)
    folder = "ksentinel"             # Grafana folder (title and uid) of dashboards and alert rules
    datasource_uid = "ksentinel-prometheus"
    datasource_name = "ksentinel Prometheus"
    prometheus_url = "http://localhost:9090"        # the provisioned datasource's URL
    dashboards_path = "/var/lib/grafana/dashboards/ksentinel"  # where Grafana reads the JSON files

Every key is optional; a bad key or value is a one-line :class:`~ksentinel.errors.ConfigError`.
``runbook_base_url`` must be an absolute ``http``/``https`` URL: Alertmanager and Grafana open the
link as it is, so a path relative to this repository would lead nowhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ksentinel.config.values import describe as _describe
from ksentinel.config.values import did_you_mean
from ksentinel.errors import ConfigError
from ksentinel.slo import parse_duration

__all__ = ["DashboardSettings", "format_duration", "parse_settings"]

_UID = re.compile(r"[A-Za-z0-9_-]{1,40}\Z")
_DURATION_KEYS = (
    "for",
    "interval",
    "min_rate_window",
    "flow_failing_for",
    "probe_absent_for",
    "cache_window",
)
_TEXT_KEYS = (
    "runbook_base_url",
    "folder",
    "datasource_uid",
    "datasource_name",
    "prometheus_url",
    "dashboards_path",
)
KEYS = (*_DURATION_KEYS, "cache_hit_ratio_min", *_TEXT_KEYS)
RUNBOOK_EXAMPLE = "https://github.com/ORG/ksentinel/blob/main/docs/runbooks.md"
_RENAMED = {
    "runbook_url": "renamed to runbook_base_url, an absolute http(s) URL of runbooks.md "
    f'(e.g. "{RUNBOOK_EXAMPLE}"): alerts link <runbook_base_url>#<alertname in lower case>',
}


@dataclass(frozen=True)
class DashboardSettings:
    """Validated ``[dashboards]`` values; durations in seconds."""

    for_override: float | None = None
    interval: float = 60.0
    min_rate_window: float = 300.0
    flow_failing_for: float | None = None  # None: `for`, else 5m
    probe_absent_for: float | None = None  # None: `for`, else 10m
    cache_window: float = 1800.0
    cache_hit_ratio_min: float = 0.05
    runbook_base_url: str | None = None  # None: alerts carry no runbook_url annotation
    folder: str = "ksentinel"
    datasource_uid: str = "ksentinel-prometheus"
    datasource_name: str = "ksentinel Prometheus"
    prometheus_url: str = "http://localhost:9090"
    dashboards_path: str = "/var/lib/grafana/dashboards/ksentinel"

    def alert_for(self, natural: float, own: float | None = None) -> float:
        """The ``for`` of an alert: its own key when set, else ``for`` when set, else ``natural``."""
        if own is not None:
            return own
        return natural if self.for_override is None else self.for_override

    def runbook(self, alert: str) -> str | None:
        """The runbook link of ``alert`` (its section of runbooks.md), ``None`` without a base URL."""
        if self.runbook_base_url is None:
            return None
        return f"{self.runbook_base_url}#{alert.lower()}"


def parse_settings(raw: Mapping[str, Any] | None, *, source: str = "ksentinel.toml") -> DashboardSettings:
    """Validate a raw ``[dashboards]`` table; raises a one-line ``ConfigError``."""
    table = dict(raw or {})
    values: dict[str, Any] = {}
    for key in table:
        if key in _RENAMED:
            raise ConfigError(f"{source}: dashboards.{key}: {_RENAMED[key]}")
        if key not in KEYS:
            raise ConfigError(f"{source}: dashboards.{key}: unknown key{did_you_mean(str(key), KEYS)}")
    for key in _DURATION_KEYS:
        if key in table:
            seconds = _duration(table[key], f"{source}: dashboards.{key}", allow_zero=key == "for")
            values["for_override" if key == "for" else key] = seconds
    if "cache_hit_ratio_min" in table:
        value = table["cache_hit_ratio_min"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ConfigError(
                f"{source}: dashboards.cache_hit_ratio_min: expected a ratio between 0 and 1, "
                f"got {_describe(value)}"
            )
        values["cache_hit_ratio_min"] = float(value)
    for key in _TEXT_KEYS:
        if key in table:
            value = table[key]
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(
                    f"{source}: dashboards.{key}: expected a non-empty string, got {_describe(value)}"
                )
            if key in ("folder", "datasource_uid") and not _UID.match(value):
                raise ConfigError(
                    f"{source}: dashboards.{key}: a Grafana uid uses at most 40 letters, digits, '-' "
                    f"and '_', got {_describe(value)}"
                )
            if key == "runbook_base_url":
                _check_runbook_base_url(value.strip(), f"{source}: dashboards.{key}")
            values[key] = value.strip()
    return DashboardSettings(**values)


def _check_runbook_base_url(value: str, where: str) -> None:
    """An absolute http(s) URL with a host, no fragment (the alert's anchor is appended) and no spaces."""
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    expected = f'expected an absolute http(s) URL like "{RUNBOOK_EXAMPLE}"'
    if parts is None or parts.scheme.lower() not in ("http", "https") or not host:
        raise ConfigError(f"{where}: {expected}, got {_describe(value)}")
    if any(ch.isspace() for ch in value):
        raise ConfigError(f"{where}: {expected} (no spaces), got {_describe(value)}")
    if "#" in value:
        raise ConfigError(
            f"{where}: {expected} without a '#fragment' (each alert appends its own anchor), "
            f"got {_describe(value)}"
        )


def format_duration(seconds: float) -> str:
    """Seconds as a Prometheus duration: 2592000 -> ``30d``, 5400 -> ``1h30m``, 0.5 -> ``1s``."""
    if seconds <= 0:
        return "0s"
    total = max(1, math.ceil(seconds - 1e-9))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _duration(value: Any, where: str, *, allow_zero: bool) -> float:
    if not isinstance(value, str):
        raise ConfigError(f'{where}: expected a duration like "5m", got {_describe(value)}')
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if seconds <= 0 and not allow_zero:
        raise ConfigError(f"{where}: must be longer than 0")
    return seconds
