"""The target flags every command shares, and ``ksentinel config show``.

``@target_options`` adds ``--config``, ``--target``, ``--url``, ``--partner-id`` and
``--environment`` (each with its ``KSENTINEL_*`` variable) and passes one :class:`TargetSelection` as the ``selection`` argument. The
selection keeps only what came from the command line; values from the environment are read again by
:mod:`ksentinel.config`, so that every value knows whether it came from a flag or a variable.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from ksentinel.config import (
    DEFAULT_ADMIN_SECRET_ENV,
    ENV_CONFIG,
    ENV_ENVIRONMENT,
    ENV_PARTNER_ID,
    ENV_TARGET,
    ENV_URL,
    OPAQUE_SECTIONS,
    Config,
    ResolvedTarget,
    load_config,
    resolve_target,
)
from ksentinel.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

_PARAMS = {
    "target_config": "config",
    "target_name": "target",
    "target_url": "url",
    "target_partner_id": "partner_id",
    "target_environment": "environment",
}
_SHOWN = (
    "url",
    "partner_id",
    "admin_secret",
    "user_secret",
    "peer_partner_id",
    "peer_admin_secret",
    "timeout",
    "ready_timeout",
    "ks_version",
    "environment",
    "allow_writes",
    "max_rps",
)


@dataclass(frozen=True)
class TargetSelection:
    """The target flags as given on the command line (``None`` = not given as a flag)."""

    config: Path | None = None
    target: str | None = None
    url: str | None = None
    partner_id: int | None = None
    environment: str | None = None

    def load(self, *, cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
        return load_config(self.config, cwd=cwd, environ=environ)

    def resolve(
        self,
        *,
        cwd: Path | None = None,
        environ: Mapping[str, str] | None = None,
        require_secrets: bool = True,
    ) -> tuple[Config, ResolvedTarget]:
        """The loaded configuration and the effective target (raises ``ConfigError``)."""
        config = self.load(cwd=cwd, environ=environ)
        resolved = resolve_target(
            config,
            target=self.target,
            url=self.url,
            partner_id=self.partner_id,
            environ=environ,
            require_secrets=require_secrets,
            environment=self.environment,
        )
        return config, resolved


def target_options(func: F) -> F:
    """Add the target flags to a click command; it receives them as ``selection: TargetSelection``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        given: dict[str, Any] = {}
        for param, field_name in _PARAMS.items():
            value = kwargs.pop(param)
            from_flag = ctx.get_parameter_source(param) not in (
                ParameterSource.ENVIRONMENT,
                ParameterSource.DEFAULT,
                None,
            )
            given[field_name] = value if from_flag else None
        return func(*args, selection=TargetSelection(**given), **kwargs)

    options = (
        click.option(
            "--config",
            "target_config",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar=ENV_CONFIG,
            show_envvar=True,
            help="ksentinel.toml to use (default: the first one found walking up from here).",
        ),
        click.option(
            "--target",
            "target_name",
            metavar="NAME",
            envvar=ENV_TARGET,
            show_envvar=True,
            help="A [targets.NAME] from ksentinel.toml (default: its default_target, else the "
            "embedded reference platform).",
        ),
        click.option(
            "--url",
            "target_url",
            metavar="URL",
            envvar=ENV_URL,
            show_envvar=True,
            help="Base URL of an ad-hoc target (with --partner-id), or overrides the --target's url. "
            f"Secrets come only from the environment (${DEFAULT_ADMIN_SECRET_ENV}, ...) or files.",
        ),
        click.option(
            "--partner-id",
            "target_partner_id",
            type=int,
            metavar="N",
            envvar=ENV_PARTNER_ID,
            show_envvar=True,
            help="Partner id of the ad-hoc target, or overrides the --target's partner_id.",
        ),
        click.option(
            "--environment",
            "target_environment",
            metavar="ENV",
            envvar=ENV_ENVIRONMENT,
            show_envvar=True,
            help="production, staging or test: overrides the target's environment (docs/production.md; "
            "default: the target's, else staging).",
        ),
    )
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]


def render_config_show(config: Config, resolved: ResolvedTarget) -> str:
    """The ``ksentinel config show`` text: each effective value and where it came from, secrets masked."""
    rows = [("config file", str(config.path) if config.path else "none found", config.source)]
    target = resolved.target
    if target is None:
        rows.append(("target", "embedded reference platform", resolved.sources.get("target", "")))
        rows.append(("environment", "test", "the embedded platform is always a test target"))
        rows.append(("max_rps", "unlimited", "the embedded platform is never capped"))
    else:
        rows.append(("target", target.name, resolved.sources.get("target", "")))
        for key in _SHOWN:
            value = getattr(target, key)  # a Secret's str() is its mask
            rows.append((key, _shown(key, value), resolved.sources.get(key, "")))
    key_width = max(len(key) for key, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    lines = [f"{key:<{key_width}}  {value:<{value_width}}  ({source})" for key, value, source in rows]
    if config.targets:
        default = f" (default_target: {config.default_target})" if config.default_target else ""
        lines.append(f"targets in file: {', '.join(sorted(config.targets))}{default}")
    sections = [f"[{name}]" for name in OPAQUE_SECTIONS if getattr(config, name)]
    if sections:
        lines.append(f"other sections: {', '.join(sections)}")
    return "\n".join(lines)


def _shown(key: str, value: Any) -> str:
    if key == "max_rps":
        return "unlimited" if value is None else f"{value:g}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return "-" if value is None else str(value)


@click.group("config")
def config_group() -> None:
    """Inspect the effective configuration."""


@config_group.command("show")
@target_options
def show(selection: TargetSelection) -> None:
    """Print each effective target value and where it came from (secrets masked)."""
    config, resolved = selection.resolve()
    click.echo(render_config_show(config, resolved))


fault_option = click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="NAME",
    help="Embedded platform only: switch on a fault (repeatable; see ksentinel serve --list-faults).",
)


def check_faults(faults: tuple[str, ...], *, embedded: bool) -> None:
    """``--fault`` needs the embedded platform and names from its catalogue (one-line ``ConfigError``)."""
    if not faults:
        return
    if not embedded:
        raise ConfigError("--fault only applies to the embedded reference platform (no target given)")
    from ksentinel.reference.faults import parse_faults

    parse_faults(list(faults))
