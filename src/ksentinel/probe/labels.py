"""Label values the probe exports: every one comes from a bounded set, never from a response.

``target`` is a configured target name, ``flow`` a registered flow, ``step`` one of the steps that
flow declares (else ``other``), ``result`` one of :data:`RESULTS` and ``code`` one of
:data:`KNOWN_CODES` (else ``OTHER``). So no KS, secret, URL or entry id can become a label value,
and the number of series depends on the configuration only, not on how long the exporter runs.
"""

from __future__ import annotations

import re

from ksentinel.flows import all_flows

RESULTS = ("success", "failure", "error")
CACHE_RESULTS = ("hit", "miss", "unknown")
OTHER = "OTHER"
OTHER_STEP = "other"

#: The ``code`` label values; anything else is ``OTHER``.
KNOWN_CODES = frozenset(
    {
        # transport (ksentinel.kaltura.transport); TIMEOUT also when the probe's own timeout passed
        "TIMEOUT",
        "CONNECTION",
        "PROTOCOL",
        "TOO_LARGE",
        "TRANSPORT",
        # HTTP statuses
        *(f"HTTP_{status}" for status in (400, 401, 403, 404, 405, 408, 413, 429, 500, 502, 503, 504)),
        # an answer that is not a Kaltura answer at all (garbage, HTML, truncated JSON)
        "KSENTINEL_BAD_RESPONSE",
        # KalturaAPIException codes of the actions the flows call
        "INVALID_KS",
        "MISSING_KS",
        "EXPIRED_KS",
        "SERVICE_FORBIDDEN",
        "SERVICE_FORBIDDEN_CONTENT_BLOCKED",
        "PARTNER_ACCESS_FORBIDDEN",
        "START_SESSION_ERROR",
        "ENTRY_ID_NOT_FOUND",
        "ENTRY_ALREADY_WITH_CONTENT",
        "ENTRY_TYPE_NOT_SUPPORTED",
        "RESOURCE_TYPE_NOT_SUPPORTED",
        "UPLOAD_ERROR",
        "UPLOAD_TOKEN_NOT_FOUND",
        "UPLOAD_TOKEN_INVALID_STATUS_FOR_UPLOAD",
        "UPLOAD_TOKEN_INVALID_STATUS_FOR_ADD_ENTRY",
        "UPLOAD_TOKEN_CANNOT_RESUME",
        "UPLOAD_TOKEN_CANNOT_MATCH_EXPECTED_SIZE",
        "UPLOAD_TOKEN_MISSING_FILE_SIZE",
        "QUERY_EXCEEDED_MAX_MATCHES_ALLOWED",
        "MISSING_MANDATORY_PARAMETER",
        "INVALID_PARAMETER_CHAR",
        "INVALID_ENUM_VALUE",
        "PROPERTY_VALIDATION_CANNOT_BE_NULL",
        "PROPERTY_VALIDATION_NOT_UPDATABLE",
        "SERVICE_DOES_NOT_EXISTS",
        "ACTION_DOES_NOT_EXISTS",
        "INTERNAL_SERVERL_ERROR",
        "UNKNOWN_ERROR",
    }
)

#: Codes that mean the target could not be tested at all (no answer, or not a Kaltura answer): a
#: run that fails with one is an ``error``, not a ``failure`` of the API's contract.
TARGET_CODES = frozenset(
    {"TIMEOUT", "CONNECTION", "PROTOCOL", "TOO_LARGE", "TRANSPORT", "KSENTINEL_BAD_RESPONSE"}
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
