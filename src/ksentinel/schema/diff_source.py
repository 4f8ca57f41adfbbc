"""Where ``ksentinel schema diff`` reads OLD and NEW: a schema file, a URL or ``target:NAME``.

Grammar of each argument, tried in this order:

* ``target:NAME``: the live schema of ``[targets.NAME]`` in ksentinel.toml (its ``url``, its
  ``timeout``); ``KSENTINEL_URL``, ``KSENTINEL_PARTNER_ID`` and ``KSENTINEL_TARGET`` do not apply, so
  ``target:NAME`` always means that target. No secret is needed: the schema is public.
* ``http://...`` or ``https://...``: a server's base URL or its ``/api_v3/api_schema.php``;
* anything else: a schema XML file (a file literally named ``target:x`` is ``./target:x``).

Both go through the schema pipeline's own reader (size cap, deadline) and defused XML parser.
"""

from __future__ import annotations

import os
from pathlib import Path

from ksentinel.errors import ConfigError, KsentinelError, TargetError
from ksentinel.schema.diff_output import DiffSide
from ksentinel.schema.model import Schema

TARGET_PREFIX = "target:"


def load_side(
    argument: str, label: str, *, timeout: float, config_path: Path | None = None
) -> tuple[Schema, DiffSide]:
    """The parsed schema named by ``argument`` (``label`` is ``OLD`` or ``NEW``, for messages)."""
    from ksentinel.schema.command import is_url, read_schema_source
    from ksentinel.schema.fetch import schema_url
    from ksentinel.schema.xml import parse_schema

    try:
        if argument.startswith(TARGET_PREFIX):
            data, source = _from_target(argument[len(TARGET_PREFIX) :].strip(), config_path)
        elif is_url(argument):
            source = schema_url(argument)
            data = read_schema_source(argument, timeout=timeout)
        else:
            path = Path(argument).expanduser()
            if not path.is_file():
                why = "not a file" if path.exists() else "no such file"
                raise ConfigError(f"{why} (give a schema XML file, an http(s):// URL or target:NAME)")
            source = str(path)
            data = read_schema_source(source, timeout=timeout)
        schema = parse_schema(data)
    except KsentinelError as exc:
        kind = type(exc) if isinstance(exc, ConfigError | TargetError) else ConfigError
        raise kind(f"{label} {argument}: {exc.message}") from None
    from ksentinel.kaltura.redact import redact

    return schema, DiffSide(redact(source), schema.api_version)


def _from_target(name: str, config_path: Path | None) -> tuple[bytes, str]:
    from ksentinel.config import ENV_PARTNER_ID, ENV_TARGET, ENV_URL, load_config, resolve_target
    from ksentinel.schema.fetch import fetch_schema, schema_url

    if not name:
        raise ConfigError("target: needs a name, as in target:staging (a [targets.NAME] of ksentinel.toml)")
    config = load_config(config_path)
    environ = {k: v for k, v in os.environ.items() if k not in (ENV_URL, ENV_PARTNER_ID, ENV_TARGET)}
    target = resolve_target(config, target=name, environ=environ, require_secrets=False).target
    if target is None:  # pragma: no cover - a named target always resolves to one
        raise ConfigError(f"no target {name!r}")
    return fetch_schema(target.url, timeout=target.timeout), f"target:{name} {schema_url(target.url)}"
