"""Known errors (``KsentinelError``) as one line on stderr and exit 2, for every command and group.

The main command uses it, and so do the groups and commands that also run on their own
(``python -m ksentinel.probe``, ``python -m ksentinel.load``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, NoReturn, TypeVar

import click

from ksentinel.errors import KsentinelError

EXIT_USAGE = 2
F = TypeVar("F", bound=Callable[..., Any])


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


class OneLineErrorGroup(click.Group):
    """A group whose commands turn a ``KsentinelError`` into one line and exit 2."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except KsentinelError as exc:
            fail(exc)
