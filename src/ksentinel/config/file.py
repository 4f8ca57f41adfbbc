"""Finding, parsing and validating ``ksentinel.toml``."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ksentinel.config.model import (
    CONFIG_FILENAME,
    ENV_CONFIG,
    OPAQUE_SECTIONS,
    REPORTS_KEYS,
    SECRET_FIELDS,
    TARGET_KEYS,
    TARGET_NAME_PATTERN,
    TOP_LEVEL_KEYS,
    Config,
    ReportsConfig,
    TargetConfig,
)
from ksentinel.config.values import (
    Invalid,
    as_bool,
    as_count,
    as_env_name,
    as_environment,
    as_int,
    as_ks_version,
    as_max_rps,
    as_string,
    as_table,
    as_timeout,
    as_url,
    describe,
    did_you_mean,
    unknown_target,
)
from ksentinel.errors import ConfigError
from ksentinel.kaltura.redact import SENSITIVE_KEYS


def find_config(start: Path) -> Path | None:
    """The first ``ksentinel.toml`` in ``start`` or one of its parents."""
    for directory in (start, *start.parents):
        candidate = directory / CONFIG_FILENAME
        if candidate.is_file():
            return candidate
    return None


def load_config(
    path: Path | None = None, *, cwd: Path | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Find, parse and validate ``ksentinel.toml``; raises :class:`ConfigError` (one line)."""
    env = os.environ if environ is None else environ
    base = (cwd or Path.cwd()).absolute()
    if path is not None:
        path, source = base / Path(path).expanduser(), "flag --config"
    elif env.get(ENV_CONFIG):
        path, source = base / Path(env[ENV_CONFIG]).expanduser(), f"env {ENV_CONFIG}"
    else:
        found = find_config(base)
        if found is None:
            return Config(source=f"searched upward from {base}")
        return _parse_file(found, f"found walking up from {base}")
    if not path.is_file():
        raise ConfigError(f"{source.removeprefix('flag ')} {path}: no such file")
    return _parse_file(path, source)


def _parse_file(path: Path, source: str) -> Config:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except ValueError as exc:  # TOMLDecodeError and UnicodeDecodeError
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return _build(data, path, source)
    except Invalid as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _build(data: dict[str, Any], path: Path, source: str) -> Config:
    _check_keys(data, TOP_LEVEL_KEYS, "")
    sections: dict[str, Mapping[str, Any]] = {}
    for name in OPAQUE_SECTIONS:
        sections[name] = as_table(data.get(name, {}), name)
    targets: dict[str, TargetConfig] = {}
    for name, table in as_table(data.get("targets", {}), "targets").items():
        if not TARGET_NAME_PATTERN.match(name):
            raise Invalid(
                f"targets.{json.dumps(name)}: a target name uses only letters, digits, '-', '_' and '.'"
            )
        targets[name] = _target(name, as_table(table, f"targets.{name}"), path.parent)
    default = data.get("default_target")
    if default is not None:
        default = as_string(default, "default_target")
        if default not in targets:
            raise Invalid(f"default_target: {unknown_target(default, targets)}")
    reports = _reports(as_table(data.get("reports", {}), "reports"))
    return Config(
        path=path, source=source, targets=targets, default_target=default, reports=reports, **sections
    )


def _reports(table: dict[str, Any]) -> ReportsConfig:
    _check_keys(table, REPORTS_KEYS, "reports")
    if "keep" not in table:
        return ReportsConfig()
    return ReportsConfig(keep=as_count(table["keep"], "reports.keep"), explicit=frozenset(table))


def _target(name: str, table: dict[str, Any], base: Path) -> TargetConfig:
    where = f"targets.{name}"
    _check_keys(table, TARGET_KEYS, where)
    for key in ("url", "partner_id"):
        if key not in table:
            raise Invalid(f"{where}: missing required key '{key}'")
    values: dict[str, Any] = {
        "url": as_url(table["url"], f"{where}.url"),
        "partner_id": as_int(table["partner_id"], f"{where}.partner_id"),
    }
    if "peer_partner_id" in table:
        values["peer_partner_id"] = as_int(table["peer_partner_id"], f"{where}.peer_partner_id")
    for key in ("timeout", "ready_timeout"):
        if key in table:
            values[key] = as_timeout(table[key], f"{where}.{key}")
    if "ks_version" in table:
        values["ks_version"] = as_ks_version(table["ks_version"], f"{where}.ks_version")
    if "environment" in table:
        values["environment"] = as_environment(table["environment"], f"{where}.environment")
    if "allow_writes" in table:
        if not isinstance(table["allow_writes"], bool):  # a TOML boolean, not "yes"
            raise Invalid(
                f"{where}.allow_writes: expected true or false, got {describe(table['allow_writes'])}"
            )
        values["allow_writes"] = as_bool(table["allow_writes"], f"{where}.allow_writes")
    if "max_rps" in table:
        values["max_rps"] = as_max_rps(table["max_rps"], f"{where}.max_rps")
    for _key, _label, env_key, file_key in SECRET_FIELDS:
        if env_key in table:
            values[env_key] = as_env_name(table[env_key], f"{where}.{env_key}")
        if file_key in table:
            values[file_key] = base / Path(as_string(table[file_key], f"{where}.{file_key}")).expanduser()
        if env_key in table and file_key in table:
            raise Invalid(f"{where}: set either {env_key} or {file_key}, not both")
    return TargetConfig(name=name, explicit=frozenset(table), **values)


def _check_keys(table: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in table:
        if key in known:
            continue
        path = f"{where}.{key}" if where else key
        if _is_inline_secret(key):
            env_key = next((s[2] for s in SECRET_FIELDS if s[0] == key), "admin_secret_env")
            file_key = env_key.replace("_env", "_file")
            raise Invalid(
                f"{path}: secrets are never read from {CONFIG_FILENAME}; name the environment "
                f"variable that holds it with {env_key} (or a file with {file_key})"
            )
        kind = "section" if not where else "key"
        raise Invalid(f"{path}: unknown {kind}{did_you_mean(key, known)}")


def _is_inline_secret(key: str) -> bool:
    lowered = key.lower()
    return lowered in SENSITIVE_KEYS or lowered.endswith(("_secret", "password"))
