"""What every ksentinel command and group shares: one-line errors and the global options.

* A known error (``KsentinelError``) prints ``ksentinel: error: <what>`` on stderr and exits 2.
* A usage error (a bad option value, an unknown option or command, a missing argument) prints one
  line too, ``ksentinel: error: <what> (see 'ksentinel CMD --help')``, and exits 2; ``--help`` and a
  group called without a command still print click's help.
* ``--config FILE`` and ``--debug`` are accepted at every level, before or after the subcommand
  (``ksentinel --debug contract``, ``ksentinel contract --debug``, ``ksentinel dashboards build
  --config x.toml``): every group adds them to the commands it holds (:func:`add_global_options`),
  and their values land in the context's ``meta``, which all levels of one invocation share
  (:func:`global_config`, :func:`debug_enabled`). Given twice, the last one wins, as for any option.

The main command uses these classes, and so do the groups and commands that also run on their own
(``python -m ksentinel.probe``, ``python -m ksentinel.load``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from click.core import ParameterSource

from ksentinel.config import ENV_CONFIG
from ksentinel.errors import KsentinelError

EXIT_USAGE = 2
ENV_DEBUG = "KSENTINEL_DEBUG"
F = TypeVar("F", bound=Callable[..., Any])

#: click >= 8.2 shows a group's help for a missing command through this usage error (8.1 exits)
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())
_CONFIG_KEY = "ksentinel.config"
_DEBUG_KEY = "ksentinel.debug"
_COMMAND_KEY = "ksentinel.command_path"
CONFIG_HELP = (
    f"ksentinel.toml to use [env var: {ENV_CONFIG}; default: the first one found walking up from "
    "here]. Accepted before or after the subcommand."
)
DEBUG_HELP = (
    f"Show tracebacks and debug logs [env var: {ENV_DEBUG}]. Accepted before or after the subcommand."
)


def fail(exc: KsentinelError) -> NoReturn:
    click.echo(f"ksentinel: error: {exc}", err=True)
    sys.exit(EXIT_USAGE)


def one_line_errors(function: F) -> F:
    """Wrap a command callback: a ``KsentinelError`` becomes one line and exit 2."""

    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except KsentinelError as exc:
            fail(exc)

    return wrapper  # type: ignore[return-value]


# --- the global options ------------------------------------------------------------------------------


def _remember_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    # only a flag: $KSENTINEL_CONFIG is read by ksentinel.config itself, which names it as the source
    if value is not None and ctx.get_parameter_source(param.name or "") is ParameterSource.COMMANDLINE:
        ctx.meta[_CONFIG_KEY] = value
    return value


def _remember_debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[_DEBUG_KEY] = True
        logging.getLogger().setLevel(logging.DEBUG)
    return value


def config_attrs(name: str = "config", help: str = CONFIG_HELP) -> dict[str, Any]:
    """The ``--config FILE`` option's settings (``click.option("--config", **config_attrs())``)."""
    return {
        "param_decls": ["--config", name],
        "type": click.Path(dir_okay=False, path_type=Path),
        "metavar": "FILE",
        "allow_from_autoenv": False,  # $KSENTINEL_CONFIG is read by ksentinel.config
        "expose_value": False,
        "callback": _remember_config,
        "help": help,
    }


def _debug_attrs() -> dict[str, Any]:
    return {
        "param_decls": ["--debug"],
        "is_flag": True,
        "envvar": ENV_DEBUG,
        "expose_value": False,
        "callback": _remember_debug,
        "help": DEBUG_HELP,
    }


def config_option(name: str = "config", help: str = CONFIG_HELP) -> Callable[[F], F]:
    """``--config FILE`` as a decorator, for a command that wants it at a place of its choice."""
    attrs = config_attrs(name, help)
    return click.option(*attrs.pop("param_decls"), **attrs)


def add_global_options(command: click.Command) -> click.Command:
    """Give ``command`` ``--config`` and ``--debug`` unless it has them already."""
    have = {opt for param in command.params for opt in param.opts}
    for attrs in (config_attrs(), _debug_attrs()):
        decls = attrs.pop("param_decls")
        if decls[0] not in have:
            command.params.append(click.Option(decls, **attrs))
    return command


def global_config(ctx: click.Context | None = None) -> Path | None:
    """The ``--config FILE`` given at any level of this invocation (``None``: not given as a flag)."""
    ctx = ctx or click.get_current_context(silent=True)
    return ctx.meta.get(_CONFIG_KEY) if ctx is not None else None


def debug_enabled(ctx: click.Context | None = None) -> bool:
    """``--debug`` (or ``$KSENTINEL_DEBUG``) was given at some level of this invocation."""
    ctx = ctx or click.get_current_context(silent=True)
    return bool(ctx.meta.get(_DEBUG_KEY)) if ctx is not None else False


# --- usage errors as one line ------------------------------------------------------------------------


class OneLineUsageError(click.ClickException):
    """A click usage error, shown as ``ksentinel: error: <what> (see 'CMD --help')``."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, command_path: str) -> None:
        super().__init__(" ".join(message.split()))
        self.command_path = command_path

    def show(self, file: Any = None) -> None:
        click.echo(f"ksentinel: error: {self.message} (see '{self.command_path} --help')", err=True)


def _one_line(exc: click.UsageError, fallback: str) -> OneLineUsageError:
    path = exc.ctx.command_path if exc.ctx is not None else fallback
    return OneLineUsageError(exc.format_message(), path)


class OneLineErrors:
    """Mixin for a command or group: known and usage errors as one line and exit 2."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)  # type: ignore[misc]
        except _NO_ARGS_IS_HELP:
            raise
        except click.UsageError as exc:
            fallback = parent.meta.get(_COMMAND_KEY, "") if parent is not None else ""
            raise _one_line(exc, fallback or info_name or "ksentinel") from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except _NO_ARGS_IS_HELP:
            raise
        except click.UsageError as exc:
            raise _one_line(exc, ctx.meta.get(_COMMAND_KEY) or ctx.command_path) from None
        except KsentinelError as exc:
            fail(exc)


class OneLineErrorGroup(OneLineErrors, click.Group):
    """A group whose commands turn known and usage errors into one line and exit 2, and accept the
    global options (``--config``, ``--debug``) like the group itself."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        add_global_options(self)

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        add_global_options(cmd)
        super().add_command(cmd, name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        # a usage error without a context (``Option '--x' requires an argument.``) names this command
        ctx.meta[_COMMAND_KEY] = f"{ctx.command_path} {name}" if name else ctx.command_path
        return name, command, rest


class OneLineErrorCommand(OneLineErrors, click.Command):
    """A command that also runs on its own (``python -m ksentinel.load``): one-line errors, global options."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        add_global_options(self)
