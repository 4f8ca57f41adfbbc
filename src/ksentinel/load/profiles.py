"""Load profiles: ``load/profiles.toml``, validated on load.

A profile says how many users run which flows for how long::

    [profiles.smoke]
    description = "a short check that everything works (about 20 s)"
    users = 6                    # concurrent users (closed model) or flow executors (open model)
    spawn_rate = 3               # users started per second
    run_time = "20s"
    mix = { session = 1, upload = 1, browse = 2 }   # flow -> weight (SessionUser, UploadUser, BrowseUser)
    optional_flows = ["upload"]  # flows whose objectives may have no data (else no data = missed)
    wait = [0.2, 1.0]            # seconds a user pauses between two flows (random in the range)
    upload_bytes = 65536         # size of each generated upload
    chunk_bytes = 16384          # uploadToken.upload chunk size
    ready_timeout = 120          # seconds an upload may take to convert (default: the target's)
    sessions = "local"           # "local": KS built from the secret; "start": session.start per user
    ks_pool = 4                  # distinct user ids the KS are issued to
    ks_expiry = 3600             # seconds a KS lives (refreshed when a quarter is left)
    [profiles.smoke.slo]         # optional overrides of ksentinel.toml's [slo]
    min_throughput = 5

    [profiles.ramp]              # closed model with a LoadTestShape: one table per stage
    stages = [ { duration = "30s", users = 10, spawn_rate = 2 }, { duration = "1m", users = 50 } ]

    [profiles.arrival]           # open model: a fixed arrival rate of flows
    model = "open"
    arrival_rate = 10            # flows started per second (all workers together)
    users = 30                   # executors: at most this many flows in flight

``[defaults]`` holds values every profile inherits. Errors are one-line ``ConfigError`` naming the
file and the key path, with "did you mean" for unknown keys.

In the closed model every flow of the mix is one user class, and each class gets at least one user
(:meth:`Profile.user_counts`: the rest by weight); a run with fewer users than flows is refused
(:meth:`Profile.check_users`).
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ksentinel.config import Target
from ksentinel.config.values import describe as _describe
from ksentinel.config.values import did_you_mean
from ksentinel.errors import ConfigError
from ksentinel.flows.core import FlowOptions
from ksentinel.slo import merge_slo, parse_duration, parse_slo

PROFILE_KEYS = (
    "description",
    "model",
    "users",
    "spawn_rate",
    "run_time",
    "stages",
    "arrival_rate",
    "mix",
    "optional_flows",
    "wait",
    "upload_bytes",
    "chunk_bytes",
    "ready_timeout",
    "list_seed",
    "list_page_size",
    "sessions",
    "ks_pool",
    "ks_expiry",
    "slo",
)
STAGE_KEYS = ("duration", "users", "spawn_rate")
MODELS = ("closed", "open")
SESSION_MODES = ("local", "start")
_NAME = re.compile(r"[A-Za-z0-9_-]+\Z")
MAX_BYTES = 1024 * 1024 * 1024


@dataclass(frozen=True)
class Stage:
    """One step of a staged profile: hold ``users`` (reached at ``spawn_rate``/s) for ``duration`` s."""

    duration: float
    users: int
    spawn_rate: float


@dataclass(frozen=True)
class Profile:
    """One validated profile."""

    name: str
    description: str = ""
    model: str = "closed"
    users: int = 1
    spawn_rate: float = 1.0
    run_time: float = 60.0
    stages: tuple[Stage, ...] = ()
    arrival_rate: float = 0.0
    mix: Mapping[str, int] = field(default_factory=lambda: {"session": 1, "upload": 1, "browse": 1})
    optional_flows: tuple[str, ...] = ()  # flows whose objectives may have no data
    wait: tuple[float, float] = (0.5, 2.0)
    upload_bytes: int = 256 * 1024
    chunk_bytes: int = 64 * 1024
    ready_timeout: float | None = None  # None: the target's ``ready_timeout``
    list_seed: int = 5
    list_page_size: int = 2
    sessions: str = "local"
    ks_pool: int = 8
    ks_expiry: int = 3600
    slo: Mapping[str, Any] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        return self.model == "open"

    @property
    def staged(self) -> bool:
        return bool(self.stages)

    @property
    def duration(self) -> float:
        """How long a run lasts (the stages' total for a staged profile)."""
        return sum(s.duration for s in self.stages) if self.stages else self.run_time

    @property
    def peak_users(self) -> int:
        return max((s.users for s in self.stages), default=self.users)

    def weight(self, flow: str) -> int:
        """The mix weight of ``flow`` (0 = not run)."""
        return int(self.mix.get(flow, 0))

    def runs(self, flow: str) -> bool:
        """True when a closed-model user class of ``flow`` takes part in this profile."""
        return not self.open and self.weight(flow) > 0

    @property
    def flows(self) -> tuple[str, ...]:
        """The flows this profile runs (weight above 0), in the mix's order."""
        return tuple(name for name, weight in self.mix.items() if weight > 0)

    def user_counts(self, users: int | None = None) -> dict[str, int]:
        """Users per flow of a closed-model run of ``users`` (default: the peak): one each, the rest by weight."""
        return spread(self.peak_users if users is None else users, {f: self.weight(f) for f in self.flows})

    def check_users(self, users: int | None = None, *, option: str = "--users") -> None:
        """A closed-model run of ``users`` (default: the peak) gives every flow a user, else ``ConfigError``."""
        if self.open:
            return
        users = self.peak_users if users is None else users
        flows = self.flows
        if users < len(flows):
            peak = " at its peak" if self.staged else ""
            raise ConfigError(
                f"profile {self.name}: {users} user{'s' if users != 1 else ''}{peak} cannot run its "
                f"{len(flows)} flows ({', '.join(flows)}): every flow needs a user of its own; "
                f"use {option} {len(flows)} or more, or take flows out of the mix"
            )

    def ready_timeout_for(self, target: Target) -> float:
        """How long an upload may take to convert: the profile's ``ready_timeout``, else the target's."""
        return self.ready_timeout if self.ready_timeout is not None else target.ready_timeout

    def flow_options(self, target: Target) -> FlowOptions:
        """The options of every flow this profile runs against ``target``."""
        return FlowOptions(
            upload_bytes=self.upload_bytes,
            chunk_bytes=self.chunk_bytes,
            ready_timeout=self.ready_timeout_for(target),
            list_seed=self.list_seed,
            list_page_size=self.list_page_size,
        )

    def with_overrides(
        self, *, users: int | None = None, spawn_rate: float | None = None, run_time: float | None = None
    ) -> Profile:
        """The profile after ``--users``/``--spawn-rate``/``--run-time``.

        A staged profile is scaled: user counts (and spawn rates) by ``users / peak users``, stage
        durations by ``run_time / total duration``; ``spawn_rate`` then caps every stage's rate.
        """
        if not self.stages:
            return replace(
                self,
                users=users if users is not None else self.users,
                spawn_rate=spawn_rate if spawn_rate is not None else self.spawn_rate,
                run_time=run_time if run_time is not None else self.run_time,
            )
        user_scale = users / self.peak_users if users is not None else 1.0
        time_scale = run_time / self.duration if run_time is not None else 1.0
        stages = tuple(
            Stage(
                duration=s.duration * time_scale,
                users=max(0, round(s.users * user_scale)),
                spawn_rate=min(s.spawn_rate * user_scale, spawn_rate)
                if spawn_rate
                else s.spawn_rate * user_scale,
            )
            for s in self.stages
        )
        return replace(self, stages=stages, users=max(s.users for s in stages))


@dataclass(frozen=True)
class ProfileSet:
    """Every profile of one ``profiles.toml``."""

    path: Path
    profiles: Mapping[str, Profile]

    def get(self, name: str) -> Profile:
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles)) or "none"
            hint = did_you_mean(name, self.profiles, otherwise=f"; known profiles: {known}")
            raise ConfigError(f"{self.path}: unknown profile '{name}'{hint}") from None


class _Invalid(Exception):
    pass


def load_profiles(
    path: Path, *, known_flows: tuple[str, ...] = (), known_steps: tuple[str, ...] = ()
) -> ProfileSet:
    """Read and validate ``path``; raises a one-line :class:`ConfigError`."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such profiles file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:  # TOMLDecodeError, UnicodeDecodeError
        raise ConfigError(f"{path}: not valid TOML: {' '.join(str(exc).split())}") from None
    profiles = parse_profiles(data, known_flows=known_flows, known_steps=known_steps, source=str(path))
    return ProfileSet(path, profiles)


def parse_profiles(
    data: Mapping[str, Any],
    *,
    known_flows: tuple[str, ...] = (),
    known_steps: tuple[str, ...] = (),
    source: str = "profiles.toml",
) -> dict[str, Profile]:
    """Validate the parsed TOML of a profiles file; raises a one-line :class:`ConfigError`."""
    try:
        return _parse_profiles(data, known_flows, known_steps, source)
    except _Invalid as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _parse_profiles(
    data: Mapping[str, Any], known_flows: tuple[str, ...], known_steps: tuple[str, ...], source: str
) -> dict[str, Profile]:
    _check_keys(data, ("defaults", "profiles"), "")
    defaults = _table(data.get("defaults", {}), "defaults")
    _check_keys(defaults, PROFILE_KEYS, "defaults")
    tables = _table(data.get("profiles", {}), "profiles")
    if not tables:
        raise _Invalid("profiles: no profile defined (add a [profiles.NAME] table)")
    out: dict[str, Profile] = {}
    for name, raw in tables.items():
        where = f"profiles.{name}"
        if not _NAME.match(name):
            raise _Invalid(
                f"profiles.{json.dumps(name)}: a profile name uses only letters, digits, '-' and '_'"
            )
        table = _table(raw, where)
        _check_keys(table, PROFILE_KEYS, where)
        merged = {**defaults, **table}
        if "slo" in defaults and "slo" in table:
            merged["slo"] = merge_slo(defaults["slo"], table["slo"])
        out[name] = _profile(name, merged, where, known_flows, known_steps, source)
    return out


def _profile(
    name: str,
    table: Mapping[str, Any],
    where: str,
    known_flows: tuple[str, ...],
    known_steps: tuple[str, ...],
    source: str,
) -> Profile:
    values: dict[str, Any] = {"name": name}
    if "description" in table:
        values["description"] = _string(table["description"], f"{where}.description")
    model = table.get("model", "closed")
    if model not in MODELS:
        raise _Invalid(f'{where}.model: expected "closed" or "open", got {_describe(model)}')
    values["model"] = model
    for key in ("users", "list_seed", "list_page_size", "ks_pool"):
        if key in table:
            values[key] = _int(table[key], f"{where}.{key}", minimum=1)
    if "ks_expiry" in table:
        values["ks_expiry"] = _int(table["ks_expiry"], f"{where}.ks_expiry", minimum=60)
    for key in ("upload_bytes", "chunk_bytes"):
        if key in table:
            values[key] = _int(table[key], f"{where}.{key}", minimum=1, maximum=MAX_BYTES)
    for key in ("spawn_rate", "ready_timeout"):
        if key in table:
            values[key] = _number(table[key], f"{where}.{key}", exclusive_zero=True)
    if "run_time" in table:
        values["run_time"] = _duration(table["run_time"], f"{where}.run_time")
    if "arrival_rate" in table:
        values["arrival_rate"] = _number(table["arrival_rate"], f"{where}.arrival_rate", exclusive_zero=True)
    if "sessions" in table:
        if table["sessions"] not in SESSION_MODES:
            raise _Invalid(
                f'{where}.sessions: expected "local" or "start", got {_describe(table["sessions"])}'
            )
        values["sessions"] = table["sessions"]
    if "wait" in table:
        values["wait"] = _wait(table["wait"], f"{where}.wait")
    if "mix" in table:
        values["mix"] = _mix(table["mix"], f"{where}.mix", known_flows)
    if "optional_flows" in table:
        values["optional_flows"] = _flow_names(
            table["optional_flows"], f"{where}.optional_flows", known_flows
        )
    if "stages" in table:
        values["stages"] = _stages(table["stages"], f"{where}.stages")
    if "slo" in table:
        slo = _table(table["slo"], f"{where}.slo")
        try:
            parse_slo(
                slo, source=source, where=f"{where}.slo", known_steps=known_steps, known_flows=known_flows
            )
        except ConfigError as exc:
            raise _Invalid(str(exc).removeprefix(f"{source}: ")) from None
        values["slo"] = slo
    profile = Profile(**values)
    if profile.open and profile.stages:
        raise _Invalid(f"{where}: an open-model profile has an arrival_rate, not stages")
    if profile.open and "arrival_rate" not in table:
        raise _Invalid(f"{where}: an open-model profile needs arrival_rate (flows per second)")
    if not profile.open and "arrival_rate" in table:
        raise _Invalid(f'{where}.arrival_rate: only an open-model profile (model = "open") has one')
    if profile.stages and "run_time" in table:
        raise _Invalid(f"{where}: set either run_time or stages, not both (the stages' durations add up)")
    if not any(weight > 0 for weight in profile.mix.values()):
        raise _Invalid(f"{where}.mix: give at least one flow a weight above 0")
    if profile.chunk_bytes > profile.upload_bytes:
        raise _Invalid(
            f"{where}.chunk_bytes: {profile.chunk_bytes} is larger than upload_bytes ({profile.upload_bytes})"
        )
    return profile


def _stages(value: Any, where: str) -> tuple[Stage, ...]:
    if not isinstance(value, list) or not value:
        raise _Invalid(f"{where}: expected a non-empty array of tables, got {_describe(value)}")
    stages = []
    for index, raw in enumerate(value):
        path = f"{where}[{index}]"
        table = _table(raw, path)
        _check_keys(table, STAGE_KEYS, path)
        for key in ("duration", "users"):
            if key not in table:
                raise _Invalid(f"{path}: missing required key '{key}'")
        users = _int(table["users"], f"{path}.users", minimum=0)
        rate = (
            _number(table["spawn_rate"], f"{path}.spawn_rate", exclusive_zero=True)
            if "spawn_rate" in table
            else float(max(users, 1))
        )
        stages.append(Stage(_duration(table["duration"], f"{path}.duration"), users, rate))
    if not any(s.users for s in stages):
        raise _Invalid(f"{where}: every stage has 0 users")
    return tuple(stages)


def spread(total: int, weights: Mapping[Any, int]) -> dict[Any, int]:
    """``total`` users over ``weights`` (all above 0): one each first, then as near the weights as can be.

    With fewer users than keys the heaviest keys get one each (ties: the first).
    """
    keys = list(weights)
    if total <= len(keys):
        ranked = sorted(keys, key=lambda key: -weights[key])[: max(0, total)]
        return {key: int(key in ranked) for key in keys}
    whole = sum(weights.values())
    share = {key: total * weights[key] / whole for key in keys}
    counts = {key: max(1, math.floor(share[key])) for key in keys}
    while sum(counts.values()) < total:  # the largest shortfall first
        counts[max(keys, key=lambda key: share[key] - counts[key])] += 1
    while sum(counts.values()) > total:  # one-per-flow pushed it over: take from the largest excess
        counts[max((k for k in keys if counts[k] > 1), key=lambda key: counts[key] - share[key])] -= 1
    return counts


def _unknown_flow(name: str, where: str, known_flows: tuple[str, ...], *, named: bool = False) -> _Invalid:
    hint = did_you_mean(name, known_flows, otherwise=f"; known flows: {', '.join(sorted(known_flows))}")
    return _Invalid(f"{where}: unknown flow{f' {json.dumps(name)}' if named else ''}{hint}")


def _mix(value: Any, where: str, known_flows: tuple[str, ...]) -> dict[str, int]:
    table = _table(value, where)
    if not table:
        raise _Invalid(f"{where}: name at least one flow (e.g. {{ upload = 1 }})")
    mix = {}
    for flow_name, weight in table.items():
        if known_flows and flow_name not in known_flows:
            raise _unknown_flow(flow_name, f"{where}.{flow_name}", known_flows)
        mix[flow_name] = _int(weight, f"{where}.{flow_name}", minimum=0)
    return mix


def _flow_names(value: Any, where: str, known_flows: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _Invalid(f'{where}: expected an array of flow names (e.g. ["upload"]), got {_describe(value)}')
    for index, name in enumerate(value):
        if not isinstance(name, str):
            raise _Invalid(f"{where}[{index}]: expected a flow name, got {_describe(name)}")
        if known_flows and name not in known_flows:
            raise _unknown_flow(name, f"{where}[{index}]", known_flows, named=True)
    return tuple(dict.fromkeys(value))


def _wait(value: Any, where: str) -> tuple[float, float]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        low = high = _number(value, where)
    elif isinstance(value, list) and len(value) == 2:
        low, high = (_number(v, f"{where}[{i}]") for i, v in enumerate(value))
    else:
        raise _Invalid(f"{where}: expected seconds or [min, max] seconds, got {_describe(value)}")
    if high < low:
        raise _Invalid(f"{where}: the maximum {high:g} is below the minimum {low:g}")
    return (low, high)


def parse_run_time(text: str, where: str = "run time") -> float:
    """``"20s"``, ``"1m30s"``, ``"2h"`` or a number of seconds -> seconds (``ConfigError`` if bad)."""
    try:
        return _duration(text, where)
    except _Invalid as exc:
        raise ConfigError(str(exc)) from None


def _duration(value: Any, where: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text) if re.fullmatch(r"\d+(?:\.\d+)?", text) else parse_duration(text)
        except ValueError:
            raise _Invalid(
                f'{where}: bad duration {_describe(value)}: use e.g. "20s", "5m" or "1h30m"'
            ) from None
    else:
        raise _Invalid(f'{where}: expected a duration like "20s", got {_describe(value)}')
    if not 0 < seconds < math.inf:
        raise _Invalid(f"{where}: must be longer than 0, got {_describe(value)}")
    return seconds


def _table(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _Invalid(f"{where}: expected a table, got {_describe(value)}")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"{where}: expected a string, got {_describe(value)}")
    return value


def _int(value: Any, where: str, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"{where}: expected an integer, got {_describe(value)}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise _Invalid(f"{where}: expected an integer {bound}, got {value}")
    return value


def _number(value: Any, where: str, *, exclusive_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Invalid(f"{where}: expected a number, got {_describe(value)}")
    if value < 0 or (exclusive_zero and value == 0):
        raise _Invalid(
            f"{where}: expected a number {'>' if exclusive_zero else '>='} 0, got {_describe(value)}"
        )
    return float(value)


def _check_keys(table: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in known:
            path = f"{where}.{key}" if where else key
            raise _Invalid(f"{path}: unknown key{did_you_mean(str(key), known)}")
