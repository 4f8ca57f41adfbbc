"""Which targets a probe command runs against.

Highest first: a target on the command line or in the environment (``--target``/``--url``,
``$KSENTINEL_TARGET``/``$KSENTINEL_URL``) replaces every target of the schedule; else the targets
the schedule names (``[probes] targets`` and the rows' ``targets``); else the usual choice
(``default_target``); else the embedded reference platform, which the command starts itself.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ksentinel.cli_target import TargetSelection
from ksentinel.config import (
    ENV_PARTNER_ID,
    ENV_PEER_PARTNER_ID,
    ENV_TARGET,
    ENV_URL,
    Config,
    Target,
    resolve_target,
)
from ksentinel.contract.runner import credentials_of
from ksentinel.errors import ConfigError
from ksentinel.probe.config import Pair, ProbeConfig
from ksentinel.probe.run import ProbeTarget

#: Per-target identity variables that only make sense for a single target.
_SINGLE_TARGET_ENV = (ENV_TARGET, ENV_URL, ENV_PARTNER_ID, ENV_PEER_PARTNER_ID)


@dataclass(frozen=True)
class TargetChoice:
    """The resolved targets (``None`` = the embedded platform) and whether they override the rows."""

    targets: tuple[Target | None, ...]
    override: bool


def choose_targets(
    probes: ProbeConfig, selection: TargetSelection, environ: Mapping[str, str] | None = None
) -> TargetChoice:
    """Resolve the targets (secrets from the environment); raises a one-line ``ConfigError``."""
    env = os.environ if environ is None else environ
    config = probes.config
    single = (
        selection.target or selection.url or env.get(ENV_TARGET, "").strip() or env.get(ENV_URL, "").strip()
    )
    if single:
        resolved = resolve_target(
            config, target=selection.target, url=selection.url, partner_id=selection.partner_id, environ=env
        )
        return TargetChoice((resolved.target,), override=True)
    named = list(dict.fromkeys([*probes.targets, *(t for row in probes.rows for t in row.targets)]))
    if named:
        if selection.partner_id is not None:
            raise ConfigError(
                "--partner-id needs a target: add --url URL, or pick one with --target "
                f"(the schedule in {probes.source} names {len(named)} targets)"
            )
        scoped = {k: v for k, v in env.items() if k not in _SINGLE_TARGET_ENV}
        targets = tuple(resolve_target(config, target=name, environ=scoped).target for name in named)
        return TargetChoice(targets, override=False)
    resolved = resolve_target(config, partner_id=selection.partner_id, environ=env)
    return TargetChoice((resolved.target,), override=True)


def schedule(probes: ProbeConfig, choice: TargetChoice, names: list[str]) -> list[Pair]:
    """The pairs for the opened targets ``names`` (the embedded one has its name only once started)."""
    return probes.pairs(names, override=choice.override)


@contextlib.contextmanager
def open_probe_targets(
    choice: TargetChoice, *, faults: tuple[str, ...] = (), config: Config | None = None
) -> Iterator[dict[str, ProbeTarget]]:
    """:class:`ProbeTarget` by name; the embedded platform (``None``) is started for the duration."""
    from ksentinel.embedded import open_target

    with contextlib.ExitStack() as stack:
        opened: dict[str, ProbeTarget] = {}
        for target in choice.targets:
            if target is None:
                target = stack.enter_context(open_target(None, faults=faults, config=config))
            probe_target = ProbeTarget(target, credentials_of(target))
            stack.callback(probe_target.close)
            opened[target.name] = probe_target
        yield opened
