"""Probe sharding: replica ``i`` of ``n`` runs a stable-hash share of the (target, flow) pairs.

``[probes] shard = "i/n"`` or ``KSENTINEL_PROBE_SHARD=i/n`` (the variable wins). ``i`` counts from 0,
as StatefulSet ordinals do, and may be given as the pod's name (``ksentinel-probe-2/3``: the
number after the last ``-``), so a manifest can pass ``$(POD_NAME)/3`` from the downward API.

A pair belongs to the shard ``blake2b(target NUL flow) mod n``: the same on every replica, every
Python process and every start (unlike ``hash()``), so n replicas with the same schedule cover each
pair exactly once, and a pair stays on its replica while the schedule around it changes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from ksentinel.config.values import Invalid, describe

__all__ = ["ENV_SHARD", "MAX_SHARDS", "Shard", "parse_shard", "shard_of"]

ENV_SHARD = "KSENTINEL_PROBE_SHARD"
MAX_SHARDS = 1024
_SHARD = re.compile(r"(?:(?P<index>\d+)|(?P<pod>[A-Za-z0-9][A-Za-z0-9.-]*-(?P<ordinal>\d+)))/(?P<count>\d+)")


class _Pair(Protocol):
    @property
    def target(self) -> str: ...

    @property
    def flow(self) -> str: ...


P = TypeVar("P", bound=_Pair)


@dataclass(frozen=True)
class Shard:
    index: int  # 0 .. count-1
    count: int

    def owns(self, target: str, flow: str) -> bool:
        return shard_of(target, flow, self.count) == self.index

    def share(self, pairs: Iterable[P]) -> list[P]:
        """The pairs of this shard, in their order."""
        return [pair for pair in pairs if self.owns(pair.target, pair.flow)]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(target: str, flow: str, count: int) -> int:
    """The shard (0 .. count-1) that runs ``(target, flow)``."""
    digest = hashlib.blake2b(f"{target}\0{flow}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def parse_shard(value: object, where: str) -> Shard:
    """``"i/n"`` (or ``"<pod-name>-i/n"``) as a :class:`Shard`; raises :class:`Invalid` naming ``where``."""
    text = value.strip() if isinstance(value, str) else None
    match = _SHARD.fullmatch(text) if text else None
    if match is None:
        raise Invalid(
            f"{where}: expected 'i/n' (replica i of n, from 0), e.g. '0/3' or 'ksentinel-probe-0/3', "
            f"got {describe(value)}"
        )
    index = int(match["index"] if match["index"] is not None else match["ordinal"])
    count = int(match["count"])
    if not 1 <= count <= MAX_SHARDS:
        raise Invalid(f"{where}: n must be from 1 to {MAX_SHARDS}, got {count}")
    if index >= count:
        raise Invalid(f"{where}: replica {index} of {count} does not exist (i counts from 0 to {count - 1})")
    return Shard(index, count)
