"""Which actions the contract suite covers: ``[contract]`` in ksentinel.toml, else the suite's scope.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

from ksentinel.config import Config
from ksentinel.contract.settings import contract_settings
from ksentinel.errors import ConfigError
from ksentinel.schema.scope import SCOPE_KEYS, Scope


def load_scope(config: Config, suite: Path | None = None) -> Scope | None:
    """The contract scope, or None (everything) when neither place defines one."""
    contract_settings(config)  # every key of [contract] is known (a typo is a one-line error)
    section = {k: v for k, v in dict(config.contract).items() if k in SCOPE_KEYS}
    if section:
        return Scope.from_mapping(section)
    scope_file = (suite or Path("contracts")) / "scope.toml"
    if not scope_file.exists():
        return None
    try:
        data = tomllib.loads(scope_file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{scope_file}: not valid TOML ({exc})") from exc
    return Scope.from_mapping(data.get("contract", data), section=str(scope_file))
