"""The ``[contract]`` section of ksentinel.toml: the scope keys and how strict some checks are.

``include``/``exclude``/``destructive`` choose the actions (:mod:`ksentinel.contract.scope`),
``fuzz_include`` which of them are fuzzed beyond the default (:mod:`ksentinel.contract.fuzz_scope`);
``strict_ks_echo`` turns the advisory "a refused KS came back in the answer" finding into a failure.
Every key is validated here, so a typo is a one-line error with a "did you mean".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ksentinel.config import Config
from ksentinel.config.values import describe, did_you_mean
from ksentinel.errors import ConfigError
from ksentinel.schema.scope import SCOPE_KEYS

SETTING_KEYS = ("strict_ks_echo",)
CONTRACT_KEYS = (*SCOPE_KEYS, *SETTING_KEYS)


@dataclass(frozen=True)
class ContractSettings:
    """The contract suite's own settings (the scope is :func:`ksentinel.contract.scope.load_scope`)."""

    #: a KS echoed in an answer that refused it fails the run (default: an advisory finding)
    strict_ks_echo: bool = False


def contract_settings(config: Config) -> ContractSettings:
    """Validate ``[contract]`` of ``config``; problems raise a one-line :class:`ConfigError`."""
    table = dict(config.contract)
    label = config.label
    for key in table:
        if key not in CONTRACT_KEYS:
            raise ConfigError(f"{label}: contract.{key}: unknown key{did_you_mean(str(key), CONTRACT_KEYS)}")
    values: dict[str, Any] = {}
    for key in SETTING_KEYS:
        if key in table:
            value = table[key]
            if not isinstance(value, bool):
                raise ConfigError(f"{label}: contract.{key}: expected true or false, got {describe(value)}")
            values[key] = value
    return ContractSettings(**values)
