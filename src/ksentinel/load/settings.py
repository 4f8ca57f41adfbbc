"""The environment contract between ``ksentinel load`` and the locustfile.

The target reaches the locustfile as the variables :func:`ksentinel.config.child_env.target_environment`
sets (``KSENTINEL_URL``, ``KSENTINEL_PARTNER_ID``, ``KSENTINEL_ADMIN_SECRET``, ...; or
``KSENTINEL_TARGET`` naming a target of ``ksentinel.toml``), the run settings as these::

    KSENTINEL_LOAD_PROFILE       profile name (default: smoke)
    KSENTINEL_LOAD_PROFILES      profiles file (default: profiles.toml beside the locustfile)
    KSENTINEL_LOAD_USERS         override the profile's users (a staged profile is scaled)
    KSENTINEL_LOAD_SPAWN_RATE    override the spawn rate
    KSENTINEL_LOAD_RUN_TIME      override the run time ("20s", "10m"; a staged profile is stretched)
    KSENTINEL_LOAD_RUN_TAG       tag of every object the run creates (default: a new run id)
    KSENTINEL_LOAD_SUMMARY       the master writes the JSON summary of the final stats here at quit
    KSENTINEL_LOAD_METRICS_PORT  the master serves ksentinel_load_* metrics on this port
    KSENTINEL_LOAD_METRICS_HOST  ... bound to this address (default 127.0.0.1; 0.0.0.0 in a pod)
    KSENTINEL_LOAD_WORKERS       workers sharing an open model's arrival rate (default: --expect-workers)
    KSENTINEL_LOAD_PROGRESS      seconds between progress lines on the master (default 5, 0 = none)
    KSENTINEL_LOAD_STOP_WAIT     seconds the master waits for the workers' final stats (default 30)
    KSENTINEL_LOAD_SETTLE        seconds after the users stopped when the run's tag is swept again
                                 (default 2, 0 = once): creates still in flight, the search index lag

so ``locust -f load/locustfile.py`` works on its own (web UI included) with the same variables.
The names match the ``ksentinel load`` flags' variables (``KSENTINEL_LOAD_USERS`` is ``--users``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ksentinel.errors import ConfigError
from ksentinel.load.profiles import Profile, load_profiles, parse_run_time

PREFIX = "KSENTINEL_LOAD_"
#: a direct ``locust -f load/locustfile.py`` run loads a production target only with this set to 1
#: (``ksentinel load`` sets it for its children once ``--allow-production`` let the run through)
ENV_ALLOW_PRODUCTION = "KSENTINEL_LOAD_ALLOW_PRODUCTION"
ENV_PROFILE = "KSENTINEL_LOAD_PROFILE"
ENV_PROFILES = "KSENTINEL_LOAD_PROFILES"
ENV_USERS = "KSENTINEL_LOAD_USERS"
ENV_SPAWN_RATE = "KSENTINEL_LOAD_SPAWN_RATE"
ENV_RUN_TIME = "KSENTINEL_LOAD_RUN_TIME"
ENV_RUN_TAG = "KSENTINEL_LOAD_RUN_TAG"
ENV_SUMMARY = "KSENTINEL_LOAD_SUMMARY"
ENV_METRICS_PORT = "KSENTINEL_LOAD_METRICS_PORT"
ENV_METRICS_HOST = "KSENTINEL_LOAD_METRICS_HOST"
ENV_WORKERS = "KSENTINEL_LOAD_WORKERS"
ENV_PROGRESS = "KSENTINEL_LOAD_PROGRESS"
ENV_STOP_WAIT = "KSENTINEL_LOAD_STOP_WAIT"
ENV_SETTLE = "KSENTINEL_LOAD_SETTLE"
DEFAULT_PROFILE = "smoke"
DEFAULT_METRICS_HOST = "127.0.0.1"


@dataclass(frozen=True)
class LoadSettings:
    profile: str = DEFAULT_PROFILE
    profiles_path: Path | None = None
    users: int | None = None
    spawn_rate: float | None = None
    run_time: float | None = None
    run_tag: str | None = None
    summary_path: Path | None = None
    metrics_port: int | None = None
    metrics_host: str = DEFAULT_METRICS_HOST
    workers: int | None = None
    progress_interval: float = 5.0
    stop_wait: float = 30.0
    settle: float = 2.0

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, default_profiles: Path | None = None
    ) -> LoadSettings:
        """Read the ``KSENTINEL_LOAD_*`` variables; a bad value is a one-line ``ConfigError``."""
        env = os.environ if environ is None else environ

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        profiles = text(ENV_PROFILES)
        run_time = text(ENV_RUN_TIME)
        summary = text(ENV_SUMMARY)
        progress = _float(text(ENV_PROGRESS), ENV_PROGRESS, allow_zero=True)
        stop_wait = _float(text(ENV_STOP_WAIT), ENV_STOP_WAIT)
        settle = _float(text(ENV_SETTLE), ENV_SETTLE, allow_zero=True)
        return cls(
            profile=text(ENV_PROFILE) or DEFAULT_PROFILE,
            profiles_path=Path(profiles) if profiles else default_profiles,
            users=_int(text(ENV_USERS), ENV_USERS, minimum=1),
            spawn_rate=_float(text(ENV_SPAWN_RATE), ENV_SPAWN_RATE),
            run_time=parse_run_time(run_time, f"${ENV_RUN_TIME}") if run_time else None,
            run_tag=text(ENV_RUN_TAG),
            summary_path=Path(summary) if summary else None,
            metrics_port=_int(text(ENV_METRICS_PORT), ENV_METRICS_PORT, minimum=0, maximum=65535),
            metrics_host=text(ENV_METRICS_HOST) or DEFAULT_METRICS_HOST,
            workers=_int(text(ENV_WORKERS), ENV_WORKERS, minimum=1),
            progress_interval=5.0 if progress is None else progress,
            stop_wait=30.0 if stop_wait is None else stop_wait,
            settle=2.0 if settle is None else settle,
        )

    def to_env(self) -> dict[str, str]:
        """The variables that reproduce these settings in a child process."""
        values = {
            ENV_PROFILE: self.profile,
            ENV_PROFILES: str(self.profiles_path) if self.profiles_path else None,
            ENV_USERS: str(self.users) if self.users is not None else None,
            ENV_SPAWN_RATE: f"{self.spawn_rate:g}" if self.spawn_rate is not None else None,
            ENV_RUN_TIME: f"{self.run_time:g}" if self.run_time is not None else None,
            ENV_RUN_TAG: self.run_tag,
            ENV_SUMMARY: str(self.summary_path) if self.summary_path else None,
            ENV_METRICS_PORT: str(self.metrics_port) if self.metrics_port is not None else None,
            ENV_METRICS_HOST: self.metrics_host,
            ENV_WORKERS: str(self.workers) if self.workers is not None else None,
            ENV_PROGRESS: f"{self.progress_interval:g}",
            ENV_STOP_WAIT: f"{self.stop_wait:g}",
            ENV_SETTLE: f"{self.settle:g}",
        }
        return {name: value for name, value in values.items() if value is not None}

    def load_profile(
        self, *, known_flows: tuple[str, ...] = (), known_steps: tuple[str, ...] = ()
    ) -> Profile:
        """The chosen profile with the users / spawn rate / run time overrides applied."""
        if self.profiles_path is None:
            raise ConfigError(f"no profiles file: set ${ENV_PROFILES}")
        profiles = load_profiles(self.profiles_path, known_flows=known_flows, known_steps=known_steps)
        return profiles.get(self.profile).with_overrides(
            users=self.users, spawn_rate=self.spawn_rate, run_time=self.run_time
        )


def _int(text: str | None, name: str, *, minimum: int, maximum: int | None = None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"${name}: expected an integer, got {text!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ConfigError(f"${name}: expected an integer {bound}, got {value}")
    return value


def _float(text: str | None, name: str, *, allow_zero: bool = False) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"${name}: expected a number, got {text!r}") from None
    if not value > 0 and not (allow_zero and value == 0):
        raise ConfigError(f"${name}: expected a number {'>=' if allow_zero else '>'} 0, got {text!r}")
    return value
