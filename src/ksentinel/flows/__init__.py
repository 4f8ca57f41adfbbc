"""THE flow catalogue: session, upload, list, delete, cache and multirequest flows.

Contract tests, Locust users and probes all run these; never copy a flow into a driver.
"""

from __future__ import annotations

from ksentinel.flows.core import (
    REGISTRY,
    Cleanup,
    Flow,
    FlowContext,
    FlowOptions,
    FlowResult,
    FlowSkipped,
    StepResult,
    flow,
    get_flow,
    new_run_id,
    run_flow,
)
from ksentinel.flows.sessions import Credentials, Sessions

__all__ = [
    "REGISTRY",
    "Cleanup",
    "Credentials",
    "Flow",
    "FlowContext",
    "FlowOptions",
    "FlowResult",
    "FlowSkipped",
    "Sessions",
    "StepResult",
    "all_flows",
    "flow",
    "get_flow",
    "load_builtin",
    "new_run_id",
    "run_flow",
]


def load_builtin() -> None:
    """Register the built-in flows (importing the modules registers them)."""
    from ksentinel.flows import browse, cache, delete, listing, multirequest, session, upload  # noqa: F401


def all_flows() -> dict[str, Flow]:
    load_builtin()
    return dict(REGISTRY)
