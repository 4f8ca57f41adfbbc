"""Kaltura-aware response checks, written with schemathesis's check API.

Kaltura answers errors with HTTP 200 and a ``KalturaAPIException`` body, so schemathesis's
status-based checks see nothing wrong; these read the body instead. Importing this module registers
each check with ``@schemathesis.check`` (a re-import registers the same names again, harmlessly),
so the pytest suite and the schemathesis CLI share them: ``hooks = "ksentinel.contract.kaltura_checks"``
in ``schemathesis.toml`` (or ``SCHEMATHESIS_HOOKS``), then enable them by name under ``[checks]`` and
disable :data:`STATUS_BASED_CHECKS`. A broken rule raises ``AssertionError`` with one line that
starts with the rule's name.

- ``error_envelope_conformance``: an error is a KalturaAPIException with string ``code``,
  ``message`` and ``objectType`` and ``args`` (an object of strings or an empty array); never HTML, a
  PHP notice, a stack trace or an empty body.
- ``response_schema_conformance``: a result matches the declared result type, ``objectType``
  included; the message names the failing property path. schemathesis has a built-in check of that
  name, so ours is registered as ``kaltura_response_schema_conformance``.
- ``no_internal_error``: no ``INTERNAL_SERVERL_ERROR`` / ``INTERNAL_DATABASE_ERROR``, no HTTP 5xx.
- ``negative_data_rejected_with_validation_code``: input Kaltura must refuse (a missing mandatory
  parameter, a value outside its enum; :mod:`ksentinel.contract.negative`) is refused with a
  validation code, neither accepted nor answered with another error.
- ``no_success_without_ks``: an action whose ``sessionRequired`` is ``always`` fails when the
  request carries no KS. A schema without the attribute (apiVersion 3.x) is read with the values of
  ``schema.model.SESSION_REQUIRED_BY_DEFAULT``, so what the server serves without a KS
  (``session.start``, ``system.ping``, ...) is not judged.
- ``no_secret_in_response``: neither a registered secret nor the KS we sent appears in a body
  (session.start and startWidgetSession return a KS by design).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

import schemathesis

from ksentinel.contract.ks_placement import ks_of
from ksentinel.contract.negative import expected_rejection
from ksentinel.kaltura.redact import looks_like_ks, redact
from ksentinel.schema import answers as response_schema
from ksentinel.schema.answers import envelope_problems

if TYPE_CHECKING:
    from schemathesis import Case, CheckContext, Response

EXCEPTION = "KalturaAPIException"
INTERNAL_CODES = frozenset({"INTERNAL_SERVERL_ERROR", "INTERNAL_DATABASE_ERROR"})
VALIDATION_CODES = frozenset(
    {
        "MISSING_MANDATORY_PARAMETER",
        "INVALID_ENUM_VALUE",
        "INVALID_PARAMETER_CHAR",
        "OBJECT_TYPE_ABSTRACT",
        "INVALID_OBJECT_TYPE",
        "INVALID_FIELD_VALUE",
        "MANDATORY_PARAMETER_MISSING",
    }
)
VALIDATION_PREFIXES = ("PROPERTY_VALIDATION_",)
KS_ISSUING_ACTIONS = frozenset({"session.start", "session.startwidgetsession"})
# Server behaviour that a check would report but that Kaltura itself has, with the parameter that
# triggers it: session.get parses its `session` with ks::fromSecureString, which throws (and so
# answers INTERNAL_SERVERL_ERROR) for anything that is not a KS.
TOLERATED_INTERNAL_ERRORS = {"session.get": "session"}
# schemathesis built-ins that judge HTTP status codes or generic REST semantics: Kaltura answers
# errors with HTTP 200 and has one POST per action, so they are never run against it.
STATUS_BASED_CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "missing_required_header",
    "unsupported_method",
    "use_after_free",
    "ensure_resource_availability",
    "ignored_auth",
)
MAX_EXCERPT = 80

_NOT_JSON = object()
_SECRET_MASK = re.compile(r"\*\*\*[0-9a-f]{6}")
_JSON_KS = re.compile(r'"ks"\s*:\s*"([^"]+)"')


def _fail(rule: str, text: str) -> None:
    raise AssertionError(f"{rule}: {' '.join(text.split())}")


# ---- what came back ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    """A response as Kaltura means it: status, decoded JSON (if any) and whether it is an error."""

    status: int
    text: str
    body: Any  # decoded JSON, or _NOT_JSON

    @property
    def is_json(self) -> bool:
        return self.body is not _NOT_JSON

    @property
    def is_exception(self) -> bool:
        return isinstance(self.body, dict) and self.body.get("objectType") == EXCEPTION

    @property
    def code(self) -> str | None:
        return str(self.body.get("code")) if self.is_exception else None

    @property
    def succeeded(self) -> bool:
        return self.status == 200 and self.is_json and not self.is_exception


def answer_of(response: Response) -> Answer:
    text = response.content.decode("utf-8", "replace")
    try:
        body = json.loads(text) if text.strip() else _NOT_JSON
    except ValueError:
        body = _NOT_JSON
    return Answer(response.status_code, text, body)


def subject_of(case: Case) -> str:
    """``service.action`` as the converted schema names the operation (its operationId)."""
    return str(case.operation.definition.raw.get("operationId") or case.operation.label)


def excerpt(text: str, limit: int = MAX_EXCERPT) -> str:
    flat = " ".join(redact(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def sent_ks(response: Response, case: Case | None = None) -> str | None:
    """The KS a request carried, in its query string (never ours: ks_placement) or its body (a JSON
    body, a multipart ``json`` part or ``ks`` field)."""
    query = parse_qs(urlsplit(response.request.url or "").query)
    if query.get("ks") and query["ks"][0]:
        return query["ks"][0]
    body = response.request.body
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    found = _JSON_KS.search(text)
    if found:
        return found.group(1)
    if case is not None:
        found = ks_of(case)
        return found if isinstance(found, str) and found else None
    return None


def describe_non_json(text: str) -> str:
    """What a body that should have been JSON looks like instead."""
    stripped = text.strip()
    lowered = stripped[:4096].lower()
    if not stripped:
        return "an empty body"
    if any(
        mark in lowered for mark in ("<b>notice</b>", "<b>warning</b>", "<b>fatal error</b>", "php notice")
    ):
        return "a PHP notice"
    if any(mark in lowered for mark in ("php warning", "php fatal", "php parse error")):
        return "a PHP error"
    if "stack trace:" in lowered or "traceback (most recent call last)" in lowered:
        return "a stack trace"
    if lowered.startswith(("<!doctype html", "<html")) or "<body" in lowered:
        return "an HTML page"
    if lowered.startswith("<?xml"):
        return "XML although format=1 asked for JSON"
    return f"a body that is not JSON ({excerpt(stripped, 40)!r})"


def _returns_file(case: Case) -> bool:
    content = ((case.operation.definition.raw.get("responses") or {}).get("200") or {}).get("content") or {}
    return "application/octet-stream" in content


def is_validation_code(code: str | None) -> bool:
    return code is not None and (code in VALIDATION_CODES or code.startswith(VALIDATION_PREFIXES))


# ---- the checks -----------------------------------------------------------------------------------
@schemathesis.check
def error_envelope_conformance(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every error is a well-formed KalturaAPIException; nothing else comes back instead of one."""
    answer = answer_of(response)
    subject = subject_of(case)
    if not answer.is_json:
        content_type = ",".join(response.headers.get("content-type", []))
        if answer.status == 200 and _returns_file(case) and "json" not in content_type:
            return None  # a file result (serve-like actions)
        _fail(
            "error_envelope_conformance",
            f"{subject} answered HTTP {answer.status} with {describe_non_json(answer.text)}"
            " instead of a result or a KalturaAPIException",
        )
    body = answer.body
    if answer.is_exception:
        found = envelope_problems(body)
        if found:
            _fail(
                "error_envelope_conformance",
                f"{subject} answered a malformed KalturaAPIException: {'; '.join(found)}",
            )
    elif isinstance(body, dict) and "code" in body and "message" in body and "objectType" not in body:
        _fail(
            "error_envelope_conformance",
            f"{subject} answered an error without objectType KalturaAPIException ({excerpt(answer.text)})",
        )
    elif answer.status >= 400:
        _fail(
            "error_envelope_conformance",
            f"{subject} answered HTTP {answer.status} without a KalturaAPIException",
        )
    return None


@schemathesis.check
def kaltura_response_schema_conformance(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """A successful answer matches the declared result type, objectType included."""
    answer = answer_of(response)
    if not answer.succeeded:
        return None
    declared = response_schema.result_schema(case.operation.definition.raw)
    if declared is None:
        return None
    components = (case.operation.schema.raw_schema.get("components") or {}).get("schemas") or {}
    found = response_schema.problems(answer.body, declared, components)
    if found:
        shown = "; ".join(found[:2])
        more = f" (and {len(found) - 2} more)" if len(found) > 2 else ""
        _fail("response_schema_conformance", f"{subject_of(case)} result {shown}{more}")
    return None


@schemathesis.check
def no_internal_error(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """No HTTP 5xx and no INTERNAL_SERVERL_ERROR / INTERNAL_DATABASE_ERROR, whatever the input."""
    subject = subject_of(case)
    if response.status_code >= 500:
        _fail("no_internal_error", f"{subject} answered HTTP {response.status_code}")
    answer = answer_of(response)
    if answer.code in INTERNAL_CODES:
        trigger = TOLERATED_INTERNAL_ERRORS.get(subject)
        if trigger and isinstance(case.body, dict) and case.body.get(trigger) is not None:
            return None
        message = answer.body.get("message", "")
        _fail("no_internal_error", f"{subject} answered {answer.code} ({excerpt(str(message), 60)})")
    return None


@schemathesis.check
def negative_data_rejected_with_validation_code(
    ctx: CheckContext, response: Response, case: Case
) -> bool | None:
    """Input Kaltura must refuse is refused with a validation code (not accepted, not an internal error)."""
    reason = expected_rejection(case)
    if reason is None:
        return None
    answer = answer_of(response)
    subject = subject_of(case)
    rule = "negative_data_rejected_with_validation_code"
    if answer.succeeded:
        _fail(rule, f"{subject} accepted invalid input ({reason})")
    if answer.is_exception and not is_validation_code(answer.code):
        _fail(
            rule,
            f"{subject} answered {answer.code} instead of a validation error for invalid input ({reason})",
        )
    return None


@schemathesis.check
def no_success_without_ks(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """An action that always needs a session fails when the request carries none (an old schema's
    actions served without a KS are ``none``/``optional``, never judged: docs/contracts.md)."""
    if case.operation.definition.raw.get("x-kaltura-session-required") != "always":
        return None
    if sent_ks(response, case):
        return None
    if answer_of(response).succeeded:
        _fail("no_success_without_ks", f"{subject_of(case)} succeeded without a KS although it requires one")
    return None


@schemathesis.check
def no_secret_in_response(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Neither a registered secret nor the KS we sent comes back in a body."""
    text = response.content.decode("utf-8", "replace")
    subject = subject_of(case)
    if set(_SECRET_MASK.findall(redact(text))) - set(_SECRET_MASK.findall(text)):
        _fail("no_secret_in_response", f"{subject} answered with a secret in its body")
    ks = sent_ks(response, case)
    if (
        ks
        and looks_like_ks(ks)
        and subject.lower() not in KS_ISSUING_ACTIONS
        and (ks in text or quote(ks, safe="") in text)
    ):
        _fail("no_secret_in_response", f"{subject} answered with the KS it was sent")
    return None


KALTURA_CHECKS = (
    no_internal_error,
    error_envelope_conformance,
    kaltura_response_schema_conformance,
    negative_data_rejected_with_validation_code,
    no_success_without_ks,
    no_secret_in_response,
)


RULE_ORDER = (
    "no_internal_error",
    "error_envelope_conformance",
    "response_schema_conformance",
    "negative_data_rejected_with_validation_code",
    "no_success_without_ks",
    "no_secret_in_response",
)


def rule_of(message: str) -> str:
    """The rule a check's failure message names (the message starts with it)."""
    return message.split(":", 1)[0].strip()


def by_rule(messages: list[str]) -> list[str]:
    """Failure messages in :data:`RULE_ORDER` (the most telling rule first)."""
    rank = {rule: index for index, rule in enumerate(RULE_ORDER)}
    return sorted(messages, key=lambda m: rank.get(rule_of(m), len(rank)))
