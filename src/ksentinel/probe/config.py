"""The probe schedule: the ``[probes]`` section of ``ksentinel.toml`` (or a standalone probes file).

::

    [probes]
    targets = ["staging", "production"]   # names of [targets.*]; default: the usual target choice
    flows = ["session", "upload", "cache"] # default flows of rows that name none
    interval = 60                          # seconds between the starts of two runs of one (target, flow)
    timeout = 20                           # per run; must be shorter than the interval
    jitter = 0.1                           # each period is interval * (1 +/- jitter)
    shard = "0/3"                          # replica 0 of 3 runs a third of the pairs (probe/shard.py)

    [[probes.schedule]]                    # optional rows: flows x targets with their own timing
    flows = ["upload"]
    interval = 300
    timeout = 120

Without rows, one row runs ``flows`` (default :data:`DEFAULT_FLOWS`). A row's missing keys come
from the section; a missing timeout defaults to ``min(30, 0.8 * interval)``. A standalone probes
file (``--config probes/probes.toml``) holds the same keys at its top level, and the targets it names
come from ``ksentinel.toml`` as usual. Every problem is one line naming the file and the key path.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ksentinel.config import ENV_CONFIG, Config, TargetConfig, load_config
from ksentinel.config.values import Invalid, as_string, as_table, describe, did_you_mean, unknown_target
from ksentinel.errors import ConfigError
from ksentinel.flows import FlowOptions, all_flows
from ksentinel.probe.shard import ENV_SHARD, Shard, parse_shard

DEFAULT_FLOWS = ("session", "upload", "list", "delete", "cache")
DEFAULT_INTERVAL = 60.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_TIMEOUT_SHARE = 0.8
DEFAULT_JITTER = 0.1
DEFAULT_LISTEN = "127.0.0.1:9464"
DEFAULT_MAX_CONCURRENT = 16
MAX_CONCURRENT = 256
MIN_INTERVAL, MAX_INTERVAL = 1.0, 86400.0
MAX_JITTER = 0.5
MAX_UPLOAD_BYTES = 64 * 1024 * 1024
#: Probe runs upload less than contract runs: a probe measures, it does not stress.
PROBE_OPTIONS = FlowOptions(upload_bytes=256 * 1024, chunk_bytes=128 * 1024, poll_interval=0.1)

SECTION_KEYS = (
    "targets",
    "flows",
    "interval",
    "timeout",
    "jitter",
    "schedule",
    "listen",
    "upload_bytes",
    "chunk_bytes",
    "require_cache_headers",
    "max_concurrent_runs",
    "shard",
)
ROW_KEYS = ("targets", "flows", "interval", "timeout")
#: Stands for "the targets chosen at start" while a file is validated.
DEFAULT_TARGETS = "<default targets>"
#: Keys that mark a file as a ``ksentinel.toml`` rather than a standalone probes file.
_CONFIG_MARKERS = (
    "probes",
    "default_target",
    "slo",
    "contract",
    "load",
    "dashboards",
    "reports",
    "reference",
)


@dataclass(frozen=True)
class Row:
    """One ``[[probes.schedule]]`` row (or the implicit one); ``targets`` empty = the default targets."""

    flows: tuple[str, ...]
    interval: float
    timeout: float
    targets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pair:
    """One scheduled (target, flow) with its timing."""

    target: str
    flow: str
    interval: float
    timeout: float


@dataclass(frozen=True)
class ProbeConfig:
    """A validated probe schedule plus the ``ksentinel.toml`` it draws its targets from."""

    rows: tuple[Row, ...]
    targets: tuple[str, ...] = ()
    jitter: float = DEFAULT_JITTER
    listen: str | None = None
    options: FlowOptions = PROBE_OPTIONS
    config: Config = field(default_factory=Config)
    source: str = "defaults"
    prefix: str = "probes."
    max_concurrent_runs: int = DEFAULT_MAX_CONCURRENT
    shard: Shard | None = None  # this replica's share of the pairs (probe/shard.py); None: all of them

    @property
    def default_timeout(self) -> float:
        """The timeout of an on-demand run of a pair that is not scheduled."""
        return min(row.timeout for row in self.rows) if self.rows else DEFAULT_TIMEOUT

    def pairs(self, default_targets: Sequence[str], *, override: bool = False) -> list[Pair]:
        """The (target, flow) pairs; rows without targets (all rows when ``override``) use ``default_targets``."""
        pairs: list[Pair] = []
        seen: dict[tuple[str, str], int] = {}
        for index, row in enumerate(self.rows, start=1):
            names = default_targets if override or not row.targets else row.targets
            for target in dict.fromkeys(names):
                for flow in row.flows:
                    if (target, flow) in seen:
                        on = "" if target == DEFAULT_TARGETS else f" on target '{target}'"
                        raise ConfigError(
                            f"{self.source}: {self.prefix}schedule[{index}]: flow '{flow}'{on} is already "
                            f"scheduled by row {seen[target, flow]}"
                        )
                    seen[target, flow] = index
                    pairs.append(Pair(target, flow, row.interval, row.timeout))
        return pairs

    def flows_for(self, target: str) -> list[str]:
        return [p.flow for p in self.pairs([target], override=True) if p.target == target]


def load_probe_config(
    path: Path | None = None, *, cwd: Path | None = None, environ: Mapping[str, str] | None = None
) -> ProbeConfig:
    """The probe schedule from ``--config`` / ``$KSENTINEL_CONFIG`` / the ``ksentinel.toml`` found.

    A file with a ``[probes]`` table (or any other ``ksentinel.toml`` section) is read as
    ``ksentinel.toml``; any other file as a standalone probes file, whose targets come from the
    ``ksentinel.toml`` found walking up from ``cwd``.
    """
    env = dict(os.environ if environ is None else environ)
    probe_config = _load(path, base=(cwd or Path.cwd()).absolute(), env=env, environ=environ)
    if env.get(ENV_SHARD, "").strip():  # the variable wins over [probes] shard
        try:
            shard = parse_shard(env[ENV_SHARD], ENV_SHARD)
        except Invalid as exc:
            raise ConfigError(str(exc)) from None
        probe_config = replace(probe_config, shard=shard)
    return probe_config


def _load(
    path: Path | None, *, base: Path, env: dict[str, str], environ: Mapping[str, str] | None
) -> ProbeConfig:
    chosen = path if path is not None else (Path(env[ENV_CONFIG]) if env.get(ENV_CONFIG) else None)
    if chosen is not None:
        full = base / chosen.expanduser()
        data = _read(full) if full.is_file() else None
        if data is not None and not _is_ksentinel_toml(data):
            env.pop(ENV_CONFIG, None)
            config = load_config(None, cwd=base, environ=env)
            return _parse(data, config, full, prefix="")
    config = load_config(path, cwd=base, environ=environ)
    label = str(config.path) if config.path else "[probes] defaults"
    return _parse(dict(config.probes), config, config.path, prefix="probes.", label=label)


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def _is_ksentinel_toml(data: Mapping[str, Any]) -> bool:
    return any(key in data for key in _CONFIG_MARKERS) or isinstance(data.get("targets"), dict)


def _parse(
    data: dict[str, Any], config: Config, path: Path | None, *, prefix: str, label: str | None = None
) -> ProbeConfig:
    source = label or str(path)
    try:
        return _build(data, config, prefix, source)
    except Invalid as exc:
        hint = ""
        if not prefix and "unknown target" in str(exc):
            hint = f" (targets come from {config.path or 'ksentinel.toml, and none was found'})"
        raise ConfigError(f"{source}: {exc}{hint}") from None


def _build(data: dict[str, Any], config: Config, prefix: str, source: str) -> ProbeConfig:
    _check_keys(data, SECTION_KEYS, prefix.rstrip("."))
    known_flows = sorted(all_flows())
    targets = _targets(data.get("targets", []), f"{prefix}targets", config.targets)
    flows = _flows(data.get("flows", list(DEFAULT_FLOWS)), f"{prefix}flows", known_flows)
    interval = _interval(data.get("interval", DEFAULT_INTERVAL), f"{prefix}interval")
    timeout = data.get("timeout")
    jitter = _number(data.get("jitter", DEFAULT_JITTER), f"{prefix}jitter", 0.0, MAX_JITTER)
    listen = _listen(data["listen"], f"{prefix}listen") if "listen" in data else None
    options = _options(data, prefix)
    concurrent = data.get("max_concurrent_runs", DEFAULT_MAX_CONCURRENT)
    if (
        isinstance(concurrent, bool)
        or not isinstance(concurrent, int)
        or not 1 <= concurrent <= MAX_CONCURRENT
    ):
        raise Invalid(
            f"{prefix}max_concurrent_runs: expected an integer from 1 to {MAX_CONCURRENT}, got {describe(concurrent)}"
        )
    rows: list[Row] = []
    raw_rows = data.get("schedule", [])
    if not isinstance(raw_rows, list):
        raise Invalid(
            f"{prefix}schedule: expected an array of tables ([[{prefix}schedule]]), got {describe(raw_rows)}"
        )
    for index, raw in enumerate(raw_rows, start=1):
        where = f"{prefix}schedule[{index}]"
        table = as_table(raw, where)
        _check_keys(table, ROW_KEYS, where)
        row_interval = _interval(table.get("interval", interval), f"{where}.interval")
        row_timeout = table.get("timeout", timeout)
        timeout_where = f"{where}.timeout" if "timeout" in table else f"{prefix}timeout (used by {where})"
        rows.append(
            Row(
                flows=_flows(table.get("flows", list(flows)), f"{where}.flows", known_flows),
                interval=row_interval,
                timeout=_timeout(row_timeout, row_interval, timeout_where),
                targets=_targets(table.get("targets", list(targets)), f"{where}.targets", config.targets),
            )
        )
    if not rows:
        rows.append(
            Row(
                flows=flows,
                interval=interval,
                timeout=_timeout(timeout, interval, f"{prefix}timeout"),
                targets=targets,
            )
        )
    probe_config = ProbeConfig(
        rows=tuple(rows),
        targets=targets,
        jitter=jitter,
        listen=listen,
        options=options,
        config=config,
        source=source,
        prefix=prefix,
        max_concurrent_runs=concurrent,
        shard=parse_shard(data["shard"], f"{prefix}shard") if "shard" in data else None,
    )
    probe_config.pairs([DEFAULT_TARGETS])  # rows scheduling a pair twice fail now, not at start
    return probe_config


def _check_keys(table: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in known:
            path = f"{where}.{key}" if where else key
            raise Invalid(f"{path}: unknown key{did_you_mean(key, known)}")


def _names(value: Any, where: str, what: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise Invalid(f"{where}: expected an array of {what} names, got {describe(value)}")
    names = tuple(as_string(item, where) for item in value)
    for name in names:
        if names.count(name) > 1:
            raise Invalid(f"{where}: {what} '{name}' is listed twice")
    return names


def _targets(value: Any, where: str, known: Mapping[str, TargetConfig]) -> tuple[str, ...]:
    names = _names(value, where, "target")
    for name in names:
        if name not in known:
            raise Invalid(f"{where}: {unknown_target(name, known)}")
    return names


def _flows(value: Any, where: str, known: list[str]) -> tuple[str, ...]:
    names = _names(value, where, "flow")
    if not names:
        raise Invalid(f"{where}: expected at least one flow (known flows: {', '.join(known)})")
    for name in names:
        if name not in known:
            hint = did_you_mean(name, known, otherwise=f"; known flows: {', '.join(known)}")
            raise Invalid(f"{where}: unknown flow '{name}'{hint}")
    return names


def _number(value: Any, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise Invalid(f"{where}: expected a number, got {describe(value)}")
    if not low <= value <= high:
        raise Invalid(f"{where}: expected a number from {low:g} to {high:g}, got {describe(value)}")
    return float(value)


def _interval(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise Invalid(f"{where}: expected a number of seconds, got {describe(value)}")
    if not MIN_INTERVAL <= value <= MAX_INTERVAL:
        raise Invalid(
            f"{where}: expected {MIN_INTERVAL:g} to {MAX_INTERVAL:g} seconds, got {describe(value)}"
        )
    return float(value)


def _timeout(value: Any, interval: float, where: str) -> float:
    if value is None:
        return min(DEFAULT_TIMEOUT, round(interval * DEFAULT_TIMEOUT_SHARE, 3))
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise Invalid(f"{where}: expected a number of seconds > 0, got {describe(value)}")
    if value >= interval:
        raise Invalid(f"{where}: {value:g}s must be shorter than the interval ({interval:g}s)")
    return float(value)


def _listen(value: Any, where: str) -> str:
    text = as_string(value, where)
    parse_listen(text, where)
    return text


def parse_listen(text: str, where: str = "--listen") -> tuple[str, int]:
    """``host:port`` (``[::1]:9464`` for IPv6) as ``(host, port)``; raises :class:`Invalid`."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise Invalid(f"{where}: expected HOST:PORT (e.g. 127.0.0.1:9464), got {describe(text)}")
    return host, int(port)


def _options(data: Mapping[str, Any], prefix: str) -> FlowOptions:
    values: dict[str, Any] = {}
    for key in ("upload_bytes", "chunk_bytes"):
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int) or not 1024 <= value <= MAX_UPLOAD_BYTES:
                raise Invalid(
                    f"{prefix}{key}: expected an integer from 1024 to {MAX_UPLOAD_BYTES}, got {describe(value)}"
                )
            values[key] = value
    if "require_cache_headers" in data:
        value = data["require_cache_headers"]
        if not isinstance(value, bool):
            raise Invalid(f"{prefix}require_cache_headers: expected true or false, got {describe(value)}")
        values["require_cache_headers"] = value
    return replace(PROBE_OPTIONS, **values)
