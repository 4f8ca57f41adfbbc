"""Picking the effective target: flag > ``KSENTINEL_*`` env > file > default, secrets from env or files."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ksentinel.config.model import (
    ADHOC_TARGET,
    CONFIG_FILENAME,
    DEFAULT_ENVIRONMENT,
    DEFAULT_KS_VERSION,
    DEFAULT_READY_TIMEOUT,
    DEFAULT_TIMEOUT,
    ENV_ALLOW_WRITES,
    ENV_ENVIRONMENT,
    ENV_KS_VERSION,
    ENV_MAX_RPS,
    ENV_PARTNER_ID,
    ENV_PEER_PARTNER_ID,
    ENV_READY_TIMEOUT,
    ENV_TARGET,
    ENV_TARGET_NAME,
    ENV_TIMEOUT,
    ENV_URL,
    SECRET_FIELDS,
    Config,
    ResolvedTarget,
    Secret,
    Target,
    TargetConfig,
    default_max_rps,
)
from ksentinel.config.values import (
    Invalid,
    as_adhoc_name,
    as_bool,
    as_environment,
    as_int,
    as_ks_version,
    as_max_rps,
    as_timeout,
    as_url,
    from_text,
    unknown_target,
)
from ksentinel.errors import ConfigError


def resolve_target(
    config: Config,
    *,
    target: str | None = None,
    url: str | None = None,
    partner_id: int | None = None,
    environ: Mapping[str, str] | None = None,
    require_secrets: bool = True,
    environment: str | None = None,
    name: str | None = None,
) -> ResolvedTarget:
    """The effective target for these flags (``None`` = flag not given) and environment.

    ``name`` is the ``--target-name`` flag: the name of an ad-hoc ``--url`` target (else
    ``$KSENTINEL_TARGET_NAME``, else ``adhoc``); the flag with any other target is an error, the
    variable is ignored there.

    ``environment`` is the ``--environment`` flag: it, else ``$KSENTINEL_ENVIRONMENT``, else the
    target's ``environment``, else ``staging``. ``max_rps`` defaults by environment
    (:func:`~ksentinel.config.model.default_max_rps`) once the environment is known. The resolved
    target's cap is installed for its origin in the HTTP seam
    (:func:`ksentinel.kaltura.transport.set_rate_limit`), so every client of this process that talks
    to it through :class:`~ksentinel.kaltura.transport.HttpxTransport` is capped.

    Required secrets: the admin secret, the peer admin secret when there is a peer partner, and any
    secret whose ``*_env``/``*_file`` the file names. ``require_secrets=False`` (commands that open
    no session, like ``schema``, and ``config show``) leaves a missing one ``None`` instead and names
    it in :attr:`ResolvedTarget.missing`.
    """
    try:
        env = os.environ if environ is None else environ
        resolved = _resolve(config, target, url, partner_id, env, require_secrets, environment, name)
    except Invalid as exc:
        raise ConfigError(str(exc)) from None
    if resolved.target is not None:
        from ksentinel.kaltura.transport import set_rate_limit  # httpx: only once a target is resolved

        set_rate_limit(resolved.target.url, resolved.target.max_rps)
    return resolved


def _resolve(
    config: Config,
    target: str | None,
    url: str | None,
    partner_id: int | None,
    env: Mapping[str, str],
    require_secrets: bool,
    environment: str | None = None,
    adhoc_name: str | None = None,
) -> ResolvedTarget:
    sources: dict[str, str] = {}
    name, name_source = _layer(target, "flag --target", env, ENV_TARGET)
    url_value, url_source = _layer(url, "flag --url", env, ENV_URL)
    pid_value, pid_source = _layer(partner_id, "flag --partner-id", env, ENV_PARTNER_ID)
    if name is None and url_value is None and config.default_target:
        name, name_source = config.default_target, f"{config.label} default_target"

    if name is not None:
        if adhoc_name is not None:
            raise Invalid(
                f"--target-name names an ad-hoc --url target; target '{name}' ({name_source}) "
                "already has its name"
            )
        if name not in config.targets:
            where = config.path or f"no {CONFIG_FILENAME} found"
            origin = name_source.removeprefix("flag ")
            raise Invalid(f"{origin}: {unknown_target(name, config.targets)} ({where})")
        tc = config.targets[name]
        sources["target"] = name_source
        who = f"target '{name}'"
        base: dict[str, Any] = {}
        for key in (
            "url",
            "partner_id",
            "peer_partner_id",
            "timeout",
            "ready_timeout",
            "ks_version",
            "environment",
            "allow_writes",
            "max_rps",
        ):
            if key == "max_rps" and key not in tc.explicit:
                continue  # the environment's default, once the environment is known
            base[key] = getattr(tc, key)
            sources[key] = f"{config.label} [targets.{name}]" if key in tc.explicit else "default"
    elif url_value is not None:
        if pid_value is None:
            origin = "--url" if url is not None else f"${ENV_URL}"
            raise Invalid(
                f"{origin} needs a partner id: add --partner-id N (or set {ENV_PARTNER_ID}), "
                "or pick a configured target with --target"
            )
        named, sources["target"] = _adhoc_name(adhoc_name, env)
        tc = TargetConfig(name=named, url="", partner_id=0)
        who = "the ad-hoc target"
        base = {
            "peer_partner_id": None,
            "timeout": DEFAULT_TIMEOUT,
            "ready_timeout": DEFAULT_READY_TIMEOUT,
            "ks_version": DEFAULT_KS_VERSION,
            "environment": DEFAULT_ENVIRONMENT,
            "allow_writes": False,
        }
        sources.update(
            peer_partner_id="default",
            timeout="default",
            ready_timeout="default",
            ks_version="default",
            environment="default",
            allow_writes="default",
        )
    elif pid_value is not None:
        origin = "--partner-id" if partner_id is not None else f"${ENV_PARTNER_ID}"
        raise Invalid(f"{origin} needs a target: add --url URL (or set {ENV_URL}), or pick one with --target")
    else:
        if environment:
            raise Invalid(
                "--environment needs a target (--target or --url): the embedded reference platform "
                "is always a test target"
            )
        if adhoc_name is not None:
            raise Invalid("--target-name names an ad-hoc target: add --url URL --partner-id N")
        sources["target"] = f"no --target, --url, ${ENV_TARGET} or default_target"
        return ResolvedTarget(None, sources)

    if url_value is not None:
        base["url"], sources["url"] = _checked(url_value, url_source, as_url), url_source
    if pid_value is not None:
        base["partner_id"], sources["partner_id"] = _checked(pid_value, pid_source, as_int), pid_source
    for key, env_name, check in (
        ("peer_partner_id", ENV_PEER_PARTNER_ID, as_int),
        ("timeout", ENV_TIMEOUT, as_timeout),
        ("ready_timeout", ENV_READY_TIMEOUT, as_timeout),
        ("ks_version", ENV_KS_VERSION, as_ks_version),
        ("environment", ENV_ENVIRONMENT, as_environment),
        ("max_rps", ENV_MAX_RPS, as_max_rps),
    ):
        if env.get(env_name, "").strip():
            base[key] = from_text(env[env_name], f"env {env_name}", check)
            sources[key] = f"env {env_name}"
    if env.get(ENV_ALLOW_WRITES, "").strip():
        base["allow_writes"] = as_bool(env[ENV_ALLOW_WRITES], f"env {ENV_ALLOW_WRITES}")
        sources["allow_writes"] = f"env {ENV_ALLOW_WRITES}"
    if environment is not None and environment != "":
        base["environment"] = as_environment(environment, "--environment")
        sources["environment"] = "flag --environment"
    if "max_rps" not in base:
        base["max_rps"] = default_max_rps(base["environment"], base["url"])
        loopback = (
            " on a loopback address" if base["max_rps"] is None and base["environment"] != "test" else ""
        )
        sources["max_rps"] = f"default for {base['environment']}{loopback}"

    secrets: dict[str, Secret | None] = {}
    missing: dict[str, str] = {}
    for key, label, env_key, file_key in SECRET_FIELDS:
        if key == "peer_admin_secret" and base["peer_partner_id"] is None:
            secrets[key] = None
            sources[key] = "not used: no peer_partner_id"
            continue
        needed = (
            key in ("admin_secret", "peer_admin_secret") or env_key in tc.explicit or file_key in tc.explicit
        )
        env_name = getattr(tc, env_key)
        secret, sources[key] = _read_secret(
            who, label, env_name, getattr(tc, file_key), env, require_secrets and needed
        )
        secrets[key] = secret
        if secret is None and needed:
            missing[key] = env_name
    target_ = Target(name=tc.name, **base, **secrets, adhoc=name is None)
    return ResolvedTarget(target_, sources, missing)


def check_adhoc_name(value: str, where: str = "--target-name") -> str:
    """``value`` if it can name an ad-hoc target (a plain name: it becomes the target label), else a
    one-line ``ConfigError``."""
    try:
        return as_adhoc_name(value, where)
    except Invalid as exc:
        raise ConfigError(str(exc)) from None


def _adhoc_name(flag: str | None, env: Mapping[str, str]) -> tuple[str, str]:
    """The ad-hoc target's name and where it came from: ``--target-name`` > env > ``adhoc``."""
    where = "ad-hoc (--url and --partner-id)"
    if flag is not None:
        return as_adhoc_name(flag, "--target-name"), f"{where}, named by flag --target-name"
    value = env.get(ENV_TARGET_NAME, "").strip()
    if value:
        return as_adhoc_name(value, f"env {ENV_TARGET_NAME}"), f"{where}, named by env {ENV_TARGET_NAME}"
    return ADHOC_TARGET, where


def _layer(flag: Any, flag_source: str, env: Mapping[str, str], env_name: str) -> tuple[Any, str]:
    """flag > environment: the value (``None`` if neither) and its source."""
    if flag is not None and flag != "":
        return flag, flag_source
    value = env.get(env_name, "").strip()
    if value:
        return value, f"env {env_name}"
    return None, ""


def _checked(value: Any, source: str, check: Any) -> Any:
    where = source.removeprefix("flag ")
    if isinstance(value, str) and check is not as_url:
        return from_text(value, where, check)
    return check(value, where)


def _read_secret(
    who: str, label: str, env_name: str, path: Path | None, env: Mapping[str, str], required: bool
) -> tuple[Secret | None, str]:
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise Invalid(f"{who} reads the {label} from {path}, which cannot be read: {detail}") from None
        if not text:
            raise Invalid(f"{who} reads the {label} from {path}, which is empty")
        return Secret(text), f"file {path}"
    value = env.get(env_name, "").strip()
    if value:
        return Secret(value), f"env {env_name}"
    if required:
        raise Invalid(f"{who} needs the {label} in ${env_name}, which is not set")
    return None, f"${env_name} not set"
