"""Label values the probe exports: every one comes from a bounded set, never from a response.

``target`` is a configured target name, ``flow`` a registered flow, ``step`` one of the steps that
flow declares (else ``other``), ``result`` one of :data:`RESULTS` and ``code`` one of
:data:`KNOWN_CODES` (else ``OTHER``). So no KS, secret, URL or entry id can become a label value,
and the number of series depends on the configuration only, not on how long the exporter runs.
"""

from __future__ import annotations

import re

from ksentinel.flows import all_flows
from ksentinel.kaltura.codes import ERROR_CODES, THROTTLE_CODES

RESULTS = ("success", "failure", "error")
CACHE_RESULTS = ("hit", "miss", "unknown")
OTHER = "OTHER"
OTHER_STEP = "other"

#: The ``code`` label values; anything else is ``OTHER``.
KNOWN_CODES = ERROR_CODES

#: Codes that mean the target could not be tested at all (no answer, not a Kaltura answer, or a
#: throttled one: ACTION_BLOCKED, HTTP 429, HTTP 503 with Retry-After after the run backed off): a
#: run that fails with one is an ``error``, not a ``failure`` of the API's contract.
TARGET_CODES = frozenset(
    {
        "TIMEOUT",
        "CONNECTION",
        "PROTOCOL",
        "TOO_LARGE",
        "TRANSPORT",
        "KSENTINEL_BAD_RESPONSE",
        *THROTTLE_CODES,
    }
)

_STEP = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*){0,3}\Z")


def bounded_code(code: str | None) -> str:
    """``code`` when it is a known Kaltura/transport code, else ``OTHER``."""
    return code if code in KNOWN_CODES else OTHER


def is_target_code(code: str | None) -> bool:
    """True for codes that say the target could not be tested (transport, HTTP 5xx, not Kaltura)."""
    return bool(code) and (code in TARGET_CODES or str(code).startswith("HTTP_5"))


_DECLARED: dict[str, frozenset[str]] = {}


def step_label(flow: str, step: str) -> str:
    """``step`` when ``flow`` declares it, else ``other``."""
    declared = _DECLARED.get(flow)
    if declared is None:
        flow_def = all_flows().get(flow)
        declared = frozenset(s for s in flow_def.steps if _STEP.match(s)) if flow_def else frozenset()
        _DECLARED[flow] = declared
    return step if step in declared else OTHER_STEP
