"""Value checks shared by the file, the environment and flags; each failure names where the value was."""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ksentinel.config.model import (
    ADHOC_NAME_PATTERN,
    ENV_NAME_PATTERN,
    ENVIRONMENTS,
    MAX_RPS_LIMIT,
    UNLIMITED,
    TargetConfig,
)


class Invalid(Exception):
    """A validation problem; callers turn it into a one-line ``ConfigError`` (with the file's path)."""


def describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__}"


def as_table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(f"{where}: expected a table, got {describe(value)}")
    return value


def as_string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid(f"{where}: expected a non-empty string, got {describe(value)}")
    return value


def as_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"{where}: expected an integer, got {describe(value)}")
    return value


def as_count(value: Any, where: str) -> int:
    """An integer >= 0 (a TOML integer, not a float or a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Invalid(f"{where}: expected an integer >= 0, got {describe(value)}")
    return value


def as_adhoc_name(value: Any, where: str) -> str:
    """The name of an ad-hoc target: it becomes the ``target`` label of the probe's series."""
    if not isinstance(value, str) or not ADHOC_NAME_PATTERN.match(value):
        raise Invalid(
            f"{where}: expected a name of letters, digits, '_', '-' and '.' that starts with a letter "
            f"(at most 64 characters; it becomes the target label), got {describe(value)}"
        )
    return value


def as_timeout(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise Invalid(f"{where}: expected a number of seconds > 0, got {describe(value)}")
    return float(value)


def as_ks_version(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in (1, 2):
        raise Invalid(f"{where}: expected 1 or 2, got {describe(value)}")
    return int(value)


def as_environment(value: Any, where: str) -> str:
    if isinstance(value, str) and value.strip().lower() in ENVIRONMENTS:
        return value.strip().lower()
    choices = ", ".join(f'"{name}"' for name in ENVIRONMENTS)
    hint = ""
    if isinstance(value, str):
        hint = did_you_mean(value.strip().lower(), ENVIRONMENTS, otherwise="", cutoff=0.5)
    raise Invalid(f"{where}: expected one of {choices}, got {describe(value)}{hint}")


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def as_bool(value: Any, where: str) -> bool:
    """A TOML boolean; from the environment also true/false, yes/no, on/off, 1/0."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise Invalid(f"{where}: expected true or false, got {describe(value)}")


def as_max_rps(value: Any, where: str) -> float | None:
    """Requests per second > 0 (at most :data:`MAX_RPS_LIMIT`), or ``"unlimited"`` (``None``)."""
    if isinstance(value, str) and value.strip().lower() == UNLIMITED:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or not 0 < value <= MAX_RPS_LIMIT
    ):
        raise Invalid(
            f'{where}: expected requests per second > 0 (at most {MAX_RPS_LIMIT:g}) or "{UNLIMITED}", '
            f"got {describe(value)}"
        )
    return float(value)


def as_env_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not ENV_NAME_PATTERN.match(value):
        raise Invalid(f"{where}: expected an environment variable name, got {describe(value)}")
    return value


def as_url(value: Any, where: str) -> str:
    text = value.strip() if isinstance(value, str) else None
    parts = urlsplit(text) if text else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f"{where}: expected an http:// or https:// URL, got {describe(value)}")
    if parts.username is not None or parts.password is not None:
        raise Invalid(f"{where}: the URL must not carry credentials (user:password@)")
    if parts.query or parts.fragment:
        raise Invalid(f"{where}: expected a base URL without ?query or #fragment")
    return (text or "").rstrip("/")


def from_text(value: str, where: str, check: Any) -> Any:
    """An environment variable's text through a file check (numbers parsed first)."""
    text = value.strip()
    for number in (int, float):
        try:
            return check(number(text), where)
        except ValueError:
            continue
    return check(text, where)


def did_you_mean(
    name: str, known: Iterable[str], *, otherwise: str | None = None, cutoff: float = 0.6
) -> str:
    """The tail of an "unknown NAME" message: ``; did you mean 'x'?`` when ``name`` is close to one of
    ``known``, else ``otherwise`` (by default `` (known: a, b, c)``, in ``known``'s order).

    Every "unknown key/flow/target ...; did you mean" message is built with it, so they read alike.
    """
    choices = list(known)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=cutoff)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f" (known: {', '.join(choices)})" if otherwise is None else otherwise


def unknown_target(name: str, targets: Mapping[str, TargetConfig]) -> str:
    known = ", ".join(sorted(targets)) or "none"
    return f"unknown target '{name}'{did_you_mean(name, targets, otherwise=f' (known targets: {known})')}"
