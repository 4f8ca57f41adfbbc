"""``ksentinel schema``: a target's (or a file's) Kaltura schema written as an OpenAPI 3.1 document.

The output is JSON (also valid YAML), keys sorted, two-space indented and newline-terminated, so the
same schema and scope always give the same bytes; it is written to a temporary file and renamed.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ksentinel.errors import ConfigError
from ksentinel.schema.errors import SchemaError
from ksentinel.schema.fetch import fetch_schema
from ksentinel.schema.openapi import to_openapi
from ksentinel.schema.scope import Scope
from ksentinel.schema.xml import MAX_SCHEMA_BYTES, parse_schema

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Summary:
    """What :func:`write_openapi` wrote (counts are after the scope was applied)."""

    source: str
    output: Path
    api_version: str
    services: int
    actions: int
    destructive_actions: int
    classes: int
    bytes_written: int


def is_url(url_or_file: str) -> bool:
    return url_or_file.strip().lower().startswith(("http://", "https://"))


def read_schema_source(url_or_file: str, *, timeout: float) -> bytes:
    """The schema bytes from a server (``http(s)://`` base URL) or from a local file."""
    if is_url(url_or_file):
        return fetch_schema(url_or_file, timeout=timeout)
    path = Path(url_or_file).expanduser()
    if not path.is_file():
        raise ConfigError(f"no schema file at {path} (give a file or an http(s):// URL)")
    size = path.stat().st_size
    if size > MAX_SCHEMA_BYTES:
        raise SchemaError(f"schema rejected: {path} is {size} bytes, over the limit of {MAX_SCHEMA_BYTES}")
    return path.read_bytes()


def render_openapi(document: dict) -> bytes:
    """The document's stable bytes: keys sorted, one line (json's C encoder; indenting would take the
    pure-Python one, about five times slower for the 4 MB of a real schema). ``python -m json.tool``
    indents it for reading."""
    return (json.dumps(document, sort_keys=True, separators=(",", ":")) + "\n").encode("ascii")


def write_openapi(
    url_or_file: str,
    output: Path,
    scope: Scope | None = None,
    timeout: float = 30.0,
    *,
    strict: bool = True,
    server_url: str | None = None,
) -> Summary:
    """Read the schema (URL or file), convert it within ``scope`` and write the OpenAPI document.

    ``server_url`` goes into ``servers``; it defaults to the URL the schema came from.
    """
    schema = parse_schema(read_schema_source(url_or_file, timeout=timeout))
    scoped = schema if scope is None else scope.apply(schema)
    if not scoped.services:
        raise ConfigError("the scope leaves no action of the schema (check [contract] include/exclude)")
    if server_url is None and is_url(url_or_file):
        server_url = url_or_file.strip().split("?", 1)[0].rstrip("/").removesuffix("/api_v3/api_schema.php")
    data = render_openapi(to_openapi(scoped, scope=scope, server_url=server_url, strict=strict))
    _write_atomically(Path(output), data)
    actions = [(s, a) for s in scoped.services.values() for a in s.actions]
    judge = scope or Scope()  # compiled once: its patterns judge every action
    summary = Summary(
        source=url_or_file,
        output=Path(output),
        api_version=scoped.api_version,
        services=len(scoped.services),
        actions=len(actions),
        destructive_actions=sum(1 for s, a in actions if judge.destroys(s, a.name)),
        classes=len(scoped.classes),
        bytes_written=len(data),
    )
    logger.info(
        "wrote %s: %d actions of %d services, %d bytes", output, summary.actions, summary.services, len(data)
    )
    return summary


def _write_atomically(path: Path, data: bytes) -> None:
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise ConfigError(f"cannot write {path}: no directory {directory}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
