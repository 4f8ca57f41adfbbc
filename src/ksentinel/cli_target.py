"""The flags commands share (target, ``--report``, ``--fault``), and ``ksentinel config show``.

``@target_options`` adds ``--config``, ``--target``, ``--url``, ``--partner-id``, ``--target-name``
and ``--environment`` (each with its ``KSENTINEL_*`` variable) and passes one :class:`TargetSelection`
as the ``selection`` argument. The selection keeps only what came from the command line; values from
the environment are read again by :mod:`ksentinel.config`, so that every value knows whether it came
from a flag or a variable. ``--config`` is the global option of :mod:`ksentinel.cli_errors`: given
before the subcommand or after it, it means the same.

``@report_options(NAME)`` adds ``--report DIR`` (and a deprecated alias where the command had one) and
passes a :class:`ReportRequest` as the ``report`` argument: every command that writes a report writes
``DIR/NAME.html`` (its JSON twin ``DIR/NAME.json`` beside it), by default into a new
``reports/<time>/`` (:mod:`ksentinel.report.retention`, which keeps the newest ``[reports] keep``).
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from ksentinel.cli_errors import CONFIG_HELP, OneLineErrorGroup, config_option, global_config
from ksentinel.config import (
    ADHOC_TARGET,
    DEFAULT_ADMIN_SECRET_ENV,
    DEFAULT_REPORTS_KEEP,
    ENV_ENVIRONMENT,
    ENV_PARTNER_ID,
    ENV_TARGET,
    ENV_TARGET_NAME,
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
    "target_name": "target",
    "target_url": "url",
    "target_partner_id": "partner_id",
    "target_adhoc_name": "adhoc_name",
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
    #: ``--target-name``: the name of an ad-hoc ``--url`` target
    adhoc_name: str | None = None

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
            name=self.adhoc_name,
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
        given["config"] = global_config(ctx)  # before or after the subcommand
        return func(*args, selection=TargetSelection(**given), **kwargs)

    options = (
        config_option("target_config", CONFIG_HELP),
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
            "--target-name",
            "target_adhoc_name",
            metavar="NAME",
            envvar=ENV_TARGET_NAME,
            show_envvar=True,
            help=f"Name of the ad-hoc --url target: the target label of probe series, the report's target "
            f"[default: {ADHOC_TARGET}].",
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


# --- --report DIR ------------------------------------------------------------------------------------

_HTML_SUFFIXES = (".html", ".htm")


@dataclass(frozen=True)
class ReportRequest:
    """Where a command's report goes: ``--report DIR``, a deprecated form, or the default folder."""

    #: the report's name: ``DIR/NAME.html`` (``contract``, ``load``, ``traffic``, ``selftest``, ``index``)
    name: str
    #: ``--report DIR`` (or the demo's deprecated ``--out DIR``)
    folder: Path | None = None
    #: a deprecated form that names the file itself (``--html FILE``, ``--report FILE.html``)
    file: Path | None = None
    #: the option as given, for messages
    option: str = "--report"

    def html(self, config: Config | None = None) -> Path:
        """The report's HTML file. Its folder is made now (one-line ``ConfigError`` naming the option);
        the default ``reports/<time>/`` is made fresh and the oldest beyond ``[reports] keep`` pruned."""
        from ksentinel.report.render import prepare_folder
        from ksentinel.report.retention import new_run_folder

        if self.file is not None:
            prepare_folder(self.file.parent, self.option)
            return self.file
        if self.folder is not None:
            return prepare_folder(self.folder, self.option) / f"{self.name}.html"
        keep = config.reports.keep if config is not None else DEFAULT_REPORTS_KEEP
        folder = new_run_folder(self.option, keep=keep)
        return folder / f"{self.name}.html"


def report_options(
    name: str,
    *,
    alias: str | None = None,
    alias_names_file: bool = True,
    envvar: str | None = None,
    alias_envvar: str | None = None,
    what: str = "",
) -> Callable[[F], F]:
    """Add ``--report DIR`` (and a hidden deprecated ``alias``); the command receives ``report: ReportRequest``.

    ``--report FILE.html`` (a path ending in .html that is not a folder) is the deprecated form of the
    commands whose ``--report`` named the file: it still writes that file, with a one-line note.
    ``alias`` names a file when ``alias_names_file`` (load's ``--html FILE``), else a folder (the demo's
    ``--out DIR``).
    """
    written = what or f"DIR/{name}.html and DIR/{name}.json"

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            folder: Path | None = kwargs.pop("report")
            old: Path | None = kwargs.pop("report_alias") if alias else None
            kwargs["report"] = _report_request(name, folder, alias, old, alias_names_file)
            return func(*args, **kwargs)

        options = [
            click.option(
                "--report",
                "report",
                type=click.Path(path_type=Path),
                metavar="DIR",
                envvar=envvar,
                show_envvar=envvar is not None,
                help=f"Folder for the report: writes {written} [default: a new reports/<time>/; "
                "the oldest beyond [reports] keep are removed].",
            )
        ]
        if alias:
            options.append(
                click.option(
                    alias, "report_alias", type=click.Path(path_type=Path), envvar=alias_envvar, hidden=True
                )
            )
        wrapped: Any = wrapper
        for option in reversed(options):
            wrapped = option(wrapped)
        return wrapped  # type: ignore[no-any-return]

    return decorate


def _report_request(
    name: str, folder: Path | None, alias: str | None, old: Path | None, alias_names_file: bool
) -> ReportRequest:
    if old is not None:
        if folder is not None:
            raise click.UsageError(
                f"give --report DIR or {alias}, not both ({alias} is deprecated)",
                click.get_current_context(silent=True),
            )
        what = f"{alias} FILE" if alias_names_file else f"{alias} DIR"
        _deprecated(
            f"{what} is deprecated and goes in the next release: use --report DIR (writes DIR/{name}.html)"
        )
        return (
            ReportRequest(name, file=old, option=str(alias))
            if alias_names_file
            else ReportRequest(name, folder=old, option=str(alias))
        )
    if folder is not None and folder.suffix.lower() in _HTML_SUFFIXES and not folder.is_dir():
        _deprecated(
            "--report FILE.html is deprecated and goes in the next release: --report names a folder "
            f"now (writes DIR/{name}.html)"
        )
        return ReportRequest(name, file=folder)
    return ReportRequest(name, folder=folder)


def _deprecated(note: str) -> None:
    click.echo(f"ksentinel: warning: {note}", err=True)


# --- ksentinel config show ------------------------------------------------------------------------------


def render_config_show(config: Config, resolved: ResolvedTarget) -> str:
    """The ``ksentinel config show`` text: each effective value and where it came from, secrets masked;
    a secret the target needs that is not set shows as ``(missing: set ENV_NAME)``; then every effective
    ``[slo]`` and ``[reports]`` value, defaults included, each with where it came from."""
    rows = [("config file", str(config.path) if config.path else "none found", config.source)]
    target = resolved.target
    if target is None:
        rows.append(("target", "embedded reference platform", resolved.sources.get("target", "")))
        rows.append(("environment", "test", "the embedded platform is always a test target"))
        rows.append(("max_rps", "unlimited", "the embedded platform is never capped"))
    else:
        rows.append(("target", target.name, resolved.sources.get("target", "")))
        for key in _SHOWN:
            if key in resolved.missing:
                rows.append((key, f"(missing: set {resolved.missing[key]})", "needed, not set"))
                continue
            value = getattr(target, key)  # a Secret's str() is its mask
            rows.append((key, _shown(key, value), resolved.sources.get(key, "")))
    lines = _aligned(rows)
    if config.targets:
        default = f" (default_target: {config.default_target})" if config.default_target else ""
        lines.append(f"targets in file: {', '.join(sorted(config.targets))}{default}")
    sections = [f"[{name}]" for name in OPAQUE_SECTIONS if getattr(config, name)]
    if sections:
        lines.append(f"other sections: {', '.join(sections)}")
    try:
        slo = _aligned(slo_rows(config))
    except ConfigError:  # config show names it on stderr and exits 2
        lines.append("[slo] not valid (see the error)")
    else:
        lines.append("[slo] (every objective, defaults included)")
        lines.extend(f"  {line}" for line in slo)
    keep = config.reports.keep
    lines.append("[reports]")
    lines.extend(
        f"  {line}"
        for line in _aligned(
            [
                (
                    "keep",
                    f"{keep}" + (" (never prune)" if keep == 0 else ""),
                    config.label if "keep" in config.reports.explicit else "default",
                )
            ]
        )
    )
    return "\n".join(lines)


def slo_rows(config: Config) -> list[tuple[str, str, str]]:
    """Every effective ``[slo]`` value as (key, value, source): the file's label for a value the file
    sets, ``default`` for a built-in one, ``as slo.default_step`` / ``as slo.default_flow`` for one a
    step or flow inherits. Raises the one-line ``ConfigError`` of an invalid ``[slo]``."""
    from ksentinel.slo import DEFAULT_STEPS, parse_slo

    spec = parse_slo(config.slo, source=config.label)
    raw: Mapping[str, Any] = config.slo
    label = config.label

    def source(table: Any, key: str, otherwise: str = "default") -> str:
        return label if isinstance(table, Mapping) and key in table else otherwise

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:g}s"

    rows = [
        ("error_ratio", f"{spec.error_ratio:g}", source(raw, "error_ratio")),
        ("min_throughput", f"{spec.min_throughput:g}/s", source(raw, "min_throughput")),
    ]
    default_step = raw.get("default_step", {})
    for key in ("p95", "p99"):
        rows.append(
            (f"default_step.{key}", seconds(getattr(spec.default_step, key)), source(default_step, key))
        )
    step_tables = raw.get("steps", {})
    for name in sorted(spec.steps):
        table = step_tables.get(name, {}) if isinstance(step_tables, Mapping) else {}
        inherited = "default" if name in DEFAULT_STEPS else "as slo.default_step"
        for key in ("p95", "p99"):
            rows.append(
                (
                    f"steps.{_quoted(name)}.{key}",
                    seconds(getattr(spec.steps[name], key)),
                    source(table, key, inherited),
                )
            )
    flows = {"default_flow": (spec.default_flow, raw.get("default_flow", {}), "default")}
    flow_tables = raw.get("flows", {})
    for name in sorted(spec.flows):
        table = flow_tables.get(name, {}) if isinstance(flow_tables, Mapping) else {}
        flows[f"flows.{_quoted(name)}"] = (spec.flows[name], table, "as slo.default_flow")
    for prefix, (objective, table, inherited) in flows.items():
        rows.append(
            (
                f"{prefix}.availability",
                f"{objective.availability:g}",
                source(table, "availability", inherited),
            )
        )
        rows.append(
            (
                f"{prefix}.latency_seconds",
                seconds(objective.latency_seconds),
                source(table, "latency_seconds", inherited),
            )
        )
        rows.append((f"{prefix}.window", objective.window, source(table, "window", inherited)))
    return rows


def _quoted(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _aligned(rows: list[tuple[str, str, str]]) -> list[str]:
    key_width = max(len(key) for key, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    return [f"{key:<{key_width}}  {value:<{value_width}}  ({source})" for key, value, source in rows]


def _shown(key: str, value: Any) -> str:
    if key == "max_rps":
        return "unlimited" if value is None else f"{value:g}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return "-" if value is None else str(value)


@click.group("config", cls=OneLineErrorGroup)
def config_group() -> None:
    """Inspect the effective configuration."""


@config_group.command("show")
@target_options
def show(selection: TargetSelection) -> None:
    """Print each effective value and where it came from (secrets masked), and every [slo] objective.

    A secret the selected target needs that is not set shows as (missing: set ENV_NAME); the command
    then exits 1 after printing everything (0 when nothing is missing). An invalid configuration
    exits 2 with one line: at once, or after the rest is printed when only [slo] is invalid.
    """
    config, resolved = selection.resolve(require_secrets=False)
    click.echo(render_config_show(config, resolved))
    slo_rows(config)  # an invalid [slo]: its one-line error, exit 2
    if resolved.missing:
        names = ", ".join(f"${env_name}" for env_name in resolved.missing.values())
        click.echo(f"ksentinel: config show: the target needs secrets that are not set: {names}", err=True)
        sys.exit(1)


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
