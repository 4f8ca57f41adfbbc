"""Which targets a probe command runs against.

Highest first: a target on the command line or in the environment (``--target``/``--url``,
``$KSENTINEL_TARGET``/``$KSENTINEL_URL``) replaces every target of the schedule; else the targets
the schedule names (``[probes] targets`` and the rows' ``targets``); else the usual choice
(``default_target``); else the embedded reference platform, which the command starts itself.

Environments (docs/production.md): a ``production`` target without ``allow_writes`` runs only the
flows that do not write (:attr:`ksentinel.flows.Flow.writes`); :func:`read_only_pairs` takes the
others out of the schedule and says which. ``--environment`` / ``$KSENTINEL_ENVIRONMENT`` (and
``$KSENTINEL_ALLOW_WRITES``) apply to a single chosen target only, like ``$KSENTINEL_PARTNER_ID``:
each target of a schedule keeps its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ksentinel.cli_target import TargetSelection
from ksentinel.config import (
    ENV_ALLOW_WRITES,
    ENV_ENVIRONMENT,
    ENV_PARTNER_ID,
    ENV_PEER_PARTNER_ID,
    ENV_TARGET,
    ENV_URL,
    Config,
    Target,
    resolve_target,
)
from ksentinel.errors import ConfigError
from ksentinel.flows import all_flows
from ksentinel.flows.sessions import credentials_of
from ksentinel.probe.config import Pair, ProbeConfig
from ksentinel.probe.run import ProbeTarget

log = logging.getLogger(__name__)

#: Per-target identity variables that only make sense for a single target.
_SINGLE_TARGET_ENV = (
    ENV_TARGET,
    ENV_URL,
    ENV_PARTNER_ID,
    ENV_PEER_PARTNER_ID,
    ENV_ENVIRONMENT,
    ENV_ALLOW_WRITES,
)


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
            config,
            target=selection.target,
            url=selection.url,
            partner_id=selection.partner_id,
            environ=env,
            environment=selection.environment,
        )
        return TargetChoice((resolved.target,), override=True)
    named = list(dict.fromkeys([*probes.targets, *(t for row in probes.rows for t in row.targets)]))
    if named:
        if selection.partner_id is not None:
            raise ConfigError(
                "--partner-id needs a target: add --url URL, or pick one with --target "
                f"(the schedule in {probes.source} names {len(named)} targets)"
            )
        if selection.environment:
            raise ConfigError(
                "--environment needs a single target: add --target NAME or --url URL, or set "
                f"environment in each [targets.NAME] (the schedule in {probes.source} names "
                f"{len(named)} targets)"
            )
        scoped = {k: v for k, v in env.items() if k not in _SINGLE_TARGET_ENV}
        targets = tuple(resolve_target(config, target=name, environ=scoped).target for name in named)
        return TargetChoice(targets, override=False)
    resolved = resolve_target(
        config, partner_id=selection.partner_id, environ=env, environment=selection.environment
    )
    return TargetChoice((resolved.target,), override=True)


def schedule(probes: ProbeConfig, choice: TargetChoice, names: list[str]) -> list[Pair]:
    """The pairs for the opened targets ``names`` (the embedded one has its name only once started)."""
    return probes.pairs(names, override=choice.override)


def sharded(probes: ProbeConfig, pairs: list[Pair], notices: list[str]) -> tuple[list[Pair], list[str]]:
    """This replica's share of ``pairs`` under ``[probes] shard`` / ``KSENTINEL_PROBE_SHARD``, with a
    notice saying so; all of them without a shard. An empty share is not an error: the replica still
    serves /metrics and on-demand /probe."""
    if probes.shard is None:
        return pairs, notices
    share = probes.shard.share(pairs)
    notice = f"shard {probes.shard}: {len(share)} of {len(pairs)} scheduled flows run on this replica"
    log.info("ksentinel probe: %s", notice)
    return share, [*notices, notice]


def read_only_pairs(
    pairs: list[Pair], targets: Mapping[str, ProbeTarget]
) -> tuple[list[Pair], dict[str, list[str]]]:
    """``pairs`` without the flows that write on production targets without ``allow_writes``, and
    the flows taken out, by target."""
    flows = all_flows()
    kept: list[Pair] = []
    skipped: dict[str, list[str]] = {}
    for pair in pairs:
        probe_target = targets.get(pair.target)
        flow_def = flows.get(pair.flow)
        writes = flow_def.writes if flow_def is not None else True
        if probe_target is not None and writes and not probe_target.target.writes_allowed:
            skipped.setdefault(pair.target, []).append(pair.flow)
            continue
        kept.append(pair)
    return kept, skipped


def read_only(pairs: list[Pair], targets: Mapping[str, ProbeTarget]) -> tuple[list[Pair], list[str]]:
    """:func:`read_only_pairs` for a command: the pairs that may run and the notices (also logged);
    a one-line ``ConfigError`` when nothing is left to run."""
    kept, skipped = read_only_pairs(pairs, targets)
    notices = [read_only_notice(name, flows) for name, flows in skipped.items()]
    for notice in notices:
        log.warning("ksentinel probe: %s", notice)
    if not kept:
        raise ConfigError(f"nothing to probe: {'; '.join(notices)}")
    return kept, notices


def read_only_notice(target: str, flows: list[str]) -> str:
    """The line that says a production target runs read-only flows only, and what was left out."""
    names = ", ".join(dict.fromkeys(flows))
    return (
        f"{target}: production target without allow_writes: read-only flows only; "
        f"not run: {names} (they write)"
    )


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
