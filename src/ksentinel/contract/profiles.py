"""Contract profiles: how much to fuzz and which flows to run (quick < ci < deep)."""

from __future__ import annotations

from dataclasses import dataclass

from ksentinel.errors import ConfigError
from ksentinel.flows.core import FlowOptions


@dataclass(frozen=True)
class ContractProfile:
    name: str
    description: str
    max_examples: int
    phases: tuple[str, ...]
    flow_options: FlowOptions
    stateful: bool = False
    #: seconds a run of this profile is expected to take at most: the fuzzing KS lives this long plus a
    #: margin (``schemathesis_support.fuzz_ks_expiry``)
    time_budget: int = 300


PROFILES: dict[str, ContractProfile] = {
    p.name: p
    for p in (
        ContractProfile(
            "quick",
            "every flow and security check, schema examples and coverage only (about 20 s)",
            max_examples=3,
            phases=("examples", "coverage"),
            flow_options=FlowOptions(
                upload_bytes=64 * 1024, chunk_bytes=16 * 1024, list_seed=5, list_page_size=2
            ),
            time_budget=120,
        ),
        ContractProfile(
            "ci",
            "everything in quick plus fuzzing of every in-scope action (about a minute)",
            max_examples=12,
            phases=("examples", "coverage", "fuzzing"),
            flow_options=FlowOptions(
                upload_bytes=256 * 1024, chunk_bytes=64 * 1024, list_seed=7, list_page_size=3
            ),
            time_budget=300,
        ),
        ContractProfile(
            "deep",
            "ci plus more examples and stateful sequences through add -> get/update/delete links",
            max_examples=60,
            phases=("examples", "coverage", "fuzzing", "stateful"),
            flow_options=FlowOptions(
                upload_bytes=2 * 1024 * 1024, chunk_bytes=512 * 1024, list_seed=12, list_page_size=5
            ),
            stateful=True,
            time_budget=1200,
        ),
    )
}


def get_profile(name: str) -> ContractProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown contract profile {name!r}; choose one of {', '.join(PROFILES)}") from None
