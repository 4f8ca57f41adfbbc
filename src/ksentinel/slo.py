"""Service level objectives: the ``[slo]`` section of ``ksentinel.toml``.

This is the ONE source of objectives: the load gate (``ksentinel load``) judges a run against it, and
the generated alert rules (issue 6) are built from it. A load profile may override any value in its
own ``[profiles.NAME.slo]`` table (same format, merged over this one)::

    [slo]
    error_ratio = 0.01          # at most 1% of requests may fail (failed / total, whole run)
    min_throughput = 5.0        # requests per second over the whole run (0 = report only)

    [slo.default_step]          # latency of every step without its own table
    p95 = 0.5                   # seconds
    p99 = 1.0

    [slo.steps."browse.list"]   # one step (a flow step name, the Locust request name)
    p95 = 0.3                   # a key left out falls back to the step's built-in objective
    p99 = 0.8                   # (DEFAULT_STEPS: steps that move content), else [slo.default_step]

    [slo.default_flow]          # probe objectives of every flow without its own table
    availability = 0.99         # share of successful probe runs over the window
    latency_seconds = 10.0      # a probe run of the flow should take at most this long
    window = "30d"              # the SLO window the alert rules burn against

    [slo.flows.upload]          # one flow (a key left out falls back to [slo.default_flow])
    availability = 0.995
    latency_seconds = 20.0

Every key is optional; :data:`DEFAULTS` lists what an absent key means. Validation is strict: an
unknown key (with a "did you mean" hint), a wrong type or an impossible value is a one-line
:class:`~ksentinel.errors.ConfigError` naming the key path, e.g. ``ksentinel.toml: slo.steps."up.chunk":
unknown step; did you mean 'upload.chunk'?``. Step and flow names that are not close to a known one
are accepted (custom flows of a forked suite), so the check needs the caller's list of known names.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ksentinel.config.values import describe as _describe
from ksentinel.config.values import did_you_mean
from ksentinel.errors import ConfigError

__all__ = [
    "DEFAULTS",
    "FlowObjective",
    "LatencyObjective",
    "SloSpec",
    "merge_slo",
    "parse_duration",
    "parse_slo",
]

DEFAULT_ERROR_RATIO = 0.01
DEFAULT_MIN_THROUGHPUT = 0.0
DEFAULT_P95 = 0.5
DEFAULT_P99 = 1.0
DEFAULT_AVAILABILITY = 0.99
DEFAULT_FLOW_LATENCY = 10.0
DEFAULT_WINDOW = "30d"

#: Built-in objectives of the catalogue's steps that move content (a chunk, the whole upload back):
#: what ``[slo.steps."NAME"]`` means when the file does not set it.
DEFAULT_STEPS: Mapping[str, tuple[float, float]] = {
    "upload.chunk": (1.0, 2.0),
    "upload.content_match": (2.0, 4.0),
}

#: What each absent key means (documented in docs/slo.md).
DEFAULTS: Mapping[str, Any] = {
    "error_ratio": DEFAULT_ERROR_RATIO,
    "min_throughput": DEFAULT_MIN_THROUGHPUT,
    "default_step": {"p95": DEFAULT_P95, "p99": DEFAULT_P99},
    "default_flow": {
        "availability": DEFAULT_AVAILABILITY,
        "latency_seconds": DEFAULT_FLOW_LATENCY,
        "window": DEFAULT_WINDOW,
    },
}

TOP_KEYS = ("error_ratio", "min_throughput", "default_step", "steps", "default_flow", "flows")
LATENCY_KEYS = ("p95", "p99")
FLOW_KEYS = ("availability", "latency_seconds", "window")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class LatencyObjective:
    """Latency objectives of one step, in seconds (``None`` = not judged)."""

    p95: float | None = DEFAULT_P95
    p99: float | None = DEFAULT_P99

    def items(self) -> list[tuple[str, float]]:
        """``[("p95", 0.5), ("p99", 1.0)]``, the percentiles that are judged."""
        return [(name, value) for name, value in (("p95", self.p95), ("p99", self.p99)) if value is not None]


@dataclass(frozen=True)
class FlowObjective:
    """Probe objectives of one flow (for alert rules)."""

    availability: float = DEFAULT_AVAILABILITY
    latency_seconds: float = DEFAULT_FLOW_LATENCY
    window: str = DEFAULT_WINDOW

    @property
    def window_seconds(self) -> float:
        return parse_duration(self.window)

    @property
    def error_budget(self) -> float:
        """The share of runs that may fail over the window (1 - availability)."""
        return 1.0 - self.availability


@dataclass(frozen=True)
class SloSpec:
    """The validated objectives; :meth:`step` and :meth:`flow` apply the fallbacks."""

    error_ratio: float = DEFAULT_ERROR_RATIO
    min_throughput: float = DEFAULT_MIN_THROUGHPUT
    default_step: LatencyObjective = field(default_factory=LatencyObjective)
    steps: Mapping[str, LatencyObjective] = field(
        default_factory=lambda: {name: LatencyObjective(*values) for name, values in DEFAULT_STEPS.items()}
    )
    default_flow: FlowObjective = field(default_factory=FlowObjective)
    flows: Mapping[str, FlowObjective] = field(default_factory=dict)

    def step(self, name: str) -> LatencyObjective:
        """The objective of step ``name``: its own table, else ``[slo.default_step]``."""
        return self.steps.get(name, self.default_step)

    def flow(self, name: str) -> FlowObjective:
        """The objective of flow ``name``: its own table, else ``[slo.default_flow]``."""
        return self.flows.get(name, self.default_flow)


class _Invalid(Exception):
    pass


def parse_slo(
    raw: Mapping[str, Any] | None,
    *,
    source: str = "ksentinel.toml",
    where: str = "slo",
    known_steps: Iterable[str] = (),
    known_flows: Iterable[str] = (),
) -> SloSpec:
    """Validate a raw ``[slo]`` table into a :class:`SloSpec`; raises a one-line ``ConfigError``.

    ``source`` names the file in messages, ``where`` the table's path in it; ``known_steps`` and
    ``known_flows`` feed the "did you mean" check of step and flow names.
    """
    try:
        return _parse(raw or {}, where, tuple(known_steps), tuple(known_flows))
    except _Invalid as exc:
        raise ConfigError(f"{source}: {exc}") from None


def merge_slo(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` merged over ``base`` (tables merge key by key, other values replace)."""
    merged: dict[str, Any] = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_slo(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_duration(text: str) -> float:
    """``"30d"``, ``"90s"``, ``"1h30m"``, ``"2w"`` -> seconds; raises ``ValueError``."""
    compact = str(text).replace(" ", "").lower()
    if not compact or _DURATION.sub("", compact):
        raise ValueError(f"bad duration {text!r}: use a number with s, m, h, d or w (e.g. 30d, 1h30m)")
    return float(sum(float(n) * _UNITS[unit] for n, unit in _DURATION.findall(compact)))


# --- validation --------------------------------------------------------------------------------------


def _parse(
    raw: Mapping[str, Any], where: str, known_steps: tuple[str, ...], known_flows: tuple[str, ...]
) -> SloSpec:
    table = _table(raw, where)
    _check_keys(table, TOP_KEYS, where)
    values: dict[str, Any] = {}
    if "error_ratio" in table:
        values["error_ratio"] = _ratio(table["error_ratio"], f"{where}.error_ratio", allow_zero=True)
    if "min_throughput" in table:
        values["min_throughput"] = _number(table["min_throughput"], f"{where}.min_throughput", minimum=0.0)
    default_step = _latency(table.get("default_step", {}), f"{where}.default_step", LatencyObjective())
    steps = {name: LatencyObjective(*values) for name, values in DEFAULT_STEPS.items()}
    for name, step_table in _table(table.get("steps", {}), f"{where}.steps").items():
        path = f"{where}.steps.{_quote(name)}"
        _check_name(name, known_steps, path, "step")
        steps[name] = _latency(step_table, path, steps.get(name, default_step))
    default_flow = _flow(table.get("default_flow", {}), f"{where}.default_flow", FlowObjective())
    flows: dict[str, FlowObjective] = {}
    for name, flow_table in _table(table.get("flows", {}), f"{where}.flows").items():
        path = f"{where}.flows.{_quote(name)}"
        _check_name(name, known_flows, path, "flow")
        flows[name] = _flow(flow_table, path, default_flow)
    return SloSpec(default_step=default_step, steps=steps, default_flow=default_flow, flows=flows, **values)


def _latency(raw: Any, where: str, fallback: LatencyObjective) -> LatencyObjective:
    table = _table(raw, where)
    _check_keys(table, LATENCY_KEYS, where)
    p95 = (
        _number(table["p95"], f"{where}.p95", minimum=0.0, exclusive=True) if "p95" in table else fallback.p95
    )
    p99 = (
        _number(table["p99"], f"{where}.p99", minimum=0.0, exclusive=True) if "p99" in table else fallback.p99
    )
    if p95 is not None and p99 is not None and p99 < p95:
        inherited = "p99" if "p99" not in table else "p95" if "p95" not in table else ""
        hint = f" (the {inherited} is inherited: set it here too)" if inherited else ""
        raise _Invalid(f"{where}: p99 ({p99:g}s) must not be below p95 ({p95:g}s){hint}")
    return LatencyObjective(p95=p95, p99=p99)


def _flow(raw: Any, where: str, fallback: FlowObjective) -> FlowObjective:
    table = _table(raw, where)
    _check_keys(table, FLOW_KEYS, where)
    availability = fallback.availability
    if "availability" in table:
        availability = _ratio(table["availability"], f"{where}.availability", allow_zero=False)
    latency = fallback.latency_seconds
    if "latency_seconds" in table:
        latency = _number(table["latency_seconds"], f"{where}.latency_seconds", minimum=0.0, exclusive=True)
    window = fallback.window
    if "window" in table:
        window = table["window"]
        if not isinstance(window, str):
            raise _Invalid(f'{where}.window: expected a duration like "30d", got {_describe(window)}')
        try:
            seconds = parse_duration(window)
        except ValueError as exc:
            raise _Invalid(f"{where}.window: {exc}") from None
        if seconds <= 0:
            raise _Invalid(f"{where}.window: must be longer than 0")
    return FlowObjective(availability=availability, latency_seconds=latency, window=window)


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _Invalid(f"{where}: expected a table, got {_describe(value)}")
    return value


def _number(value: Any, where: str, *, minimum: float, exclusive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Invalid(f"{where}: expected a number, got {_describe(value)}")
    if value < minimum or (exclusive and value == minimum):
        relation = ">" if exclusive else ">="
        raise _Invalid(f"{where}: expected a number {relation} {minimum:g}, got {_describe(value)}")
    return float(value)


def _ratio(value: Any, where: str, *, allow_zero: bool) -> float:
    number = _number(value, where, minimum=0.0, exclusive=not allow_zero)
    if number > 1:
        raise _Invalid(f"{where}: expected a ratio between 0 and 1 (0.01 = 1%), got {_describe(value)}")
    return number


def _check_keys(table: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in known:
            raise _Invalid(f"{where}.{_quote(str(key))}: unknown key{did_you_mean(str(key), known)}")


def _check_name(name: str, known: tuple[str, ...], where: str, kind: str) -> None:
    if not known or name in known:
        return
    hint = did_you_mean(name, known, otherwise="", cutoff=0.8)
    if hint:  # a name not close to a known one is accepted (a custom flow of a forked suite)
        raise _Invalid(f"{where}: unknown {kind}{hint}")


def _quote(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)
