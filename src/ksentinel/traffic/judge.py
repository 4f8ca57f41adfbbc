"""Judge each recorded ``/api_v3`` exchange against the Kaltura schema; nothing is sent.

Per answer (each sub-call of a multirequest on its own): an error must be a well-formed
``KalturaAPIException`` (:func:`ksentinel.contract.kaltura_checks.envelope_problems`; an XML error is
read into the same dict), a result must match the result type its action declares
(:func:`ksentinel.schema.answers.problems`, on the decoded JSON or the untyped XML value).
Per exchange: the KS and secrets the request carried must not come back, and a KS should not travel
in the URL (advisories, never failures). What cannot be judged (an action the schema lacks, a file
result, PHP or unknown formats, a body the HAR left out, a 304) is ``not_judged`` with the reason.
"""

from __future__ import annotations

import json
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import defusedxml
import defusedxml.ElementTree as SafeET

from ksentinel.kaltura.redact import (
    looks_like_ks,
    mask_ks,
    mask_secret,
    redact,
    redact_mapping,
    register_secret,
)
from ksentinel.kaltura.wire import xml_value
from ksentinel.schema.answers import envelope_problems, result_schema
from ksentinel.schema.answers import problems as schema_problems
from ksentinel.traffic.calls import ApiRequest, parse_request
from ksentinel.traffic.har import Exchange
from ksentinel.traffic.outcome import TOOL_ERROR, CallVerdict, ExchangeVerdict

logger = logging.getLogger(__name__)

EXCEPTION = "KalturaAPIException"
#: actions that answer a KS by design (session.get describes the KS it is given)
KS_ISSUING = frozenset({"session.start", "session.startwidgetsession", "session.impersonate", "session.get"})
MAX_EXCERPT = 2000
MIN_KS_LENGTH = 20
MIN_SECRET_LENGTH = 6
_PATH = re.compile(r"^/api_v3/service/([^/]+)/action/([^/]+)$")
_UNSAFE_XML = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_JSONP = re.compile(r"^\s*[0-9_a-zA-Z.$]*\s*\((.*)\)\s*;?\s*$", re.DOTALL)
_FILE_MIMES = ("application/octet-stream", "video/", "audio/", "image/", "application/pdf", "application/zip")


class SchemaIndex:
    """The operations of an OpenAPI document by ``(service id, action)``, both case-insensitive."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.components: Mapping[str, Any] = (document.get("components") or {}).get("schemas") or {}
        self.operations: dict[tuple[str, str], Mapping[str, Any]] = {}
        for path, item in (document.get("paths") or {}).items():
            match = _PATH.match(path)
            if match and isinstance(item, Mapping) and isinstance(item.get("post"), Mapping):
                self.operations[(match.group(1).lower(), match.group(2).lower())] = item["post"]

    def operation(self, service: str, action: str) -> Mapping[str, Any] | None:
        return self.operations.get((service.lower(), action.lower()))

    def returns_file(self, service: str, action: str) -> bool:
        operation = self.operation(service, action)
        if operation is None:
            return False
        content = ((operation.get("responses") or {}).get("200") or {}).get("content") or {}
        return "application/octet-stream" in content


@dataclass
class _Item:
    """One decoded answer: a Kaltura error (as an envelope dict) or a value."""

    error: dict[str, Any] | None = None
    value: Any = None


class _Unjudgeable(Exception):
    """The answer cannot be judged (the reason is the message)."""


class _Broken(Exception):
    """The answer as a whole is not a Kaltura answer (the problem is the message)."""


def judge_exchange(exchange: Exchange, index: SchemaIndex) -> ExchangeVerdict | None:
    """The verdict on one exchange, or ``None`` when it is not an ``/api_v3`` call."""
    request = parse_request(exchange)
    if request is None:
        return None
    for value in request.secret_values | {ks for ks in request.ks_values if not looks_like_ks(ks)}:
        register_secret(value)  # masked in everything written from here on
    verdict = ExchangeVerdict(
        index=exchange.index,
        method=exchange.method,
        path=request.path,
        label=request.label,
        status=exchange.status,
        multirequest=request.multirequest,
    )
    verdict.calls = [CallVerdict(c.position, c.label) for c in request.calls]
    verdict.findings = _findings(request, exchange)
    try:
        items = _decode(exchange, request, index)
    except _Unjudgeable as exc:
        verdict.reason = str(exc)
        for call in verdict.calls:
            call.reason = call.reason or str(exc)
    except _Broken as exc:
        verdict.problems.append(str(exc))
        verdict.judged = True
    else:
        _judge_items(verdict, request, items, index)
    verdict.finish()
    if verdict.outcome in ("failed", "advisory"):
        verdict.request, verdict.response = _excerpts(exchange, request)
    return verdict


# ---- decoding the answer --------------------------------------------------------------------------------


def _decode(exchange: Exchange, request: ApiRequest, index: SchemaIndex) -> list[_Item]:
    if not request.service:
        raise _Unjudgeable("no service in the request")
    if not request.multirequest and not request.action:
        raise _Unjudgeable(f"service {request.service} without an action")
    if request.multirequest and not request.calls:
        raise _Unjudgeable("no sub-call found in the multirequest (request body not recorded?)")
    status = exchange.status
    if exchange.method == "HEAD":
        raise _Unjudgeable("HEAD request: no body to judge")
    if status == 0:
        raise _Unjudgeable("no response recorded (status 0: blocked, aborted or still pending)")
    if status == 304:
        raise _Unjudgeable("HTTP 304 Not Modified: no body to judge")
    returns_file = any(index.returns_file(c.service, c.action) for c in request.calls)
    if 300 <= status < 400:
        if returns_file or request.action.lower().startswith("serve"):
            raise _Unjudgeable(f"file result: HTTP {status} redirect")
        raise _Broken(f"HTTP {status} without a Kaltura answer")
    fmt = request.format or ""
    if fmt == "3":
        raise _Unjudgeable("format 3 (PHP serialized) is not judged")
    if fmt not in ("", "1", "2", "9"):
        raise _Unjudgeable(f"format {fmt[:20]} is not judged (only 1 JSON, 2 XML, 9 JSONP)")
    body = exchange.response_body
    if body is None:
        raise _Unjudgeable(exchange.body_note or "response body not recorded")
    mime = exchange.response_mime.lower()
    if status == 200 and (mime.startswith(_FILE_MIMES) or (returns_file and not _looks_textual(body))):
        raise _Unjudgeable(f"file result ({mime.split(';')[0] or 'binary body'})")
    if not body.strip():
        marker = exchange.response_header("x-kaltura")
        if status == 200 and marker.startswith("error-"):
            code = marker.removeprefix("error-").strip()
            raise _Unjudgeable(f"empty body with X-Kaltura: error-{code} (a die error, no envelope to judge)")
        raise _Broken(
            f"HTTP {status} without a Kaltura answer (empty body)"
            if status != 200
            else "empty body, not a Kaltura answer"
        )
    try:
        items = _parse(body, fmt, request.multirequest)
    except _Broken:
        if status != 200:
            raise _Broken(f"HTTP {status} without a Kaltura answer") from None
        raise
    if status != 200 and not (len(items) == 1 and items[0].error is not None):
        raise _Broken(f"HTTP {status} without a Kaltura answer")
    return items


def _looks_textual(body: bytes) -> bool:
    head = body.lstrip()[:1]
    return head in (b"{", b"[", b"<", b'"') or body.strip() in (b"null", b"true", b"false")


def _parse(body: bytes, fmt: str, multirequest: bool) -> list[_Item]:
    head = body.lstrip()[:64].lower()
    if head.startswith((b"<!doctype html", b"<html")):
        raise _Broken(f"an HTML page, not a Kaltura answer: {_snippet(body)}")
    if fmt == "2" or (fmt == "" and head.startswith(b"<")):
        return _parse_xml(body, multirequest)
    text = body.decode("utf-8", "replace")
    if fmt == "9":
        match = _JSONP.match(text)
        if match is None:
            raise _Broken(f"format 9 asked, the answer is not JSONP callback(...): {_snippet(body)}")
        text = match.group(1)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise _Broken(f"not JSON: {_snippet(body)}") from None
    if _is_error(value):
        return [_Item(error=value)]
    if not multirequest:
        return [_Item(value=value)]
    if not isinstance(value, list):
        raise _Broken(f"a multirequest answered with a JSON {type(value).__name__}, not a list")
    return [_Item(error=v) if _is_error(v) else _Item(value=v) for v in value]


def _is_error(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    kind = value.get("objectType")
    if kind == EXCEPTION:
        return True
    # an error that lost its objectType is still an error whose envelope is broken
    return "code" in value and "message" in value and (kind is None or "Exception" in str(kind))


def _parse_xml(body: bytes, multirequest: bool) -> list[_Item]:
    refused = "XML with a DTD or entity declaration (refused, not parsed)"
    if _UNSAFE_XML.search(body):
        raise _Broken(refused)
    try:  # defusedxml refuses declarations in every encoding (a UTF-16 body slips past the regex)
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException:
        raise _Broken(refused) from None
    except (ET.ParseError, LookupError, ValueError) as exc:
        raise _Broken(f"not XML ({exc}): {_snippet(body)}") from None
    result = root.find("result") if root.tag == "xml" else None
    if result is None:
        raise _Broken(f"XML without the <xml><result> envelope (root <{root.tag[:40]}>)")
    error = _xml_error(result)
    if error is not None:
        return [_Item(error=error)]
    if not multirequest:
        return [_Item(value=_xml_result(result))]
    items = []
    for item in result.findall("item"):
        item_error = _xml_error(item)
        items.append(_Item(error=item_error) if item_error is not None else _Item(value=_xml_result(item)))
    return items


def _xml_result(element: ET.Element) -> Any:
    if len(element) == 0 and not (element.text or "").strip():
        return None
    return xml_value(element)


def _xml_error(element: ET.Element) -> dict[str, Any] | None:
    """``<error><code>..`` as the JSON envelope dict (a missing child is a missing key)."""
    error = element.find("error")
    if error is None or element.find("objectType") is not None:
        return None
    out: dict[str, Any] = {}
    for key in ("code", "message", "objectType"):
        child = error.find(key)
        if child is not None:
            out[key] = child.text or ""
    args = error.find("args")
    if args is not None:
        items = args.findall("item")
        out["args"] = (
            {(i.findtext("name") or ""): (i.findtext("value") or "") for i in items} if items else []
        )
    return out


def _snippet(body: bytes, limit: int = 60) -> str:
    text = body[:limit].decode("utf-8", "replace")
    text = "".join(ch if ch.isprintable() else "." for ch in text)
    return repr(redact(text) + ("..." if len(body) > limit else ""))


# ---- judging the values -----------------------------------------------------------------------------------


def _judge_items(
    verdict: ExchangeVerdict, request: ApiRequest, items: list[_Item], index: SchemaIndex
) -> None:

    if request.multirequest and len(items) == 1 and items[0].error is not None:
        # the multirequest as a whole was refused (e.g. INVALID_KS before any sub-call ran)
        verdict.judged = True
        verdict.problems.extend(f"error envelope: {p}" for p in envelope_problems(items[0].error))
        for call in verdict.calls:
            call.reason = "the multirequest as a whole answered an error"
        return
    if request.multirequest and len(items) != len(request.calls):
        verdict.judged = True
        verdict.problems.append(f"{len(request.calls)} sub-calls sent, {len(items)} results answered")
    for call, sub, item in zip(verdict.calls, request.calls, items, strict=False):
        if item.error is not None:
            call.problems = [f"error envelope: {p}" for p in envelope_problems(item.error)]
            call.outcome = "failed" if call.problems else "passed"
            continue
        operation = index.operation(sub.service, sub.action)
        if operation is None:
            call.reason = f"{sub.label} is not in the schema"
            continue
        if index.returns_file(sub.service, sub.action):
            call.reason = f"{sub.label} returns a file"
            continue
        declared = result_schema(operation)
        if declared is None:
            call.reason = f"{sub.label} declares no JSON result"
            continue
        call.problems = schema_problems(item.value, declared, index.components)
        call.outcome = "failed" if call.problems else "passed"
    for call in verdict.calls[len(items) :]:
        call.reason = call.reason or "no result answered for this sub-call"


# ---- what must never come back ----------------------------------------------------------------------------


def _findings(request: ApiRequest, exchange: Exchange) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    for name in request.in_url:
        what = "KS" if name.split(":")[-1].lower() == "ks" else "secret"
        found.append(
            {
                "check": "ks.not_in_url" if what == "KS" else "secrets.not_in_url",
                "where": "URL",
                "message": f"{what} sent in the URL ({name}): URLs end up in logs, proxies and browser history",
            }
        )
    body = exchange.response_body.decode("utf-8", "replace") if exchange.response_body else ""
    issuing = request.label.lower() in KS_ISSUING
    for ks in sorted(request.ks_values):
        if len(ks) < MIN_KS_LENGTH or issuing:
            continue
        for where in _echoed(ks, body, exchange):
            found.append(
                {
                    "check": "ks.never_echoed",
                    "where": where,
                    "masked": mask_ks(ks),
                    "message": f"the KS the request carried came back in the {where} ({mask_ks(ks)})",
                }
            )
    for secret in sorted(request.secret_values):
        if len(secret) < MIN_SECRET_LENGTH:
            continue
        for where in _echoed(secret, body, exchange):
            found.append(
                {
                    "check": "secrets.never_returned",
                    "where": where,
                    "masked": mask_secret(secret),
                    "message": f"a secret the request carried came back in the {where} ({mask_secret(secret)})",
                }
            )
    return found


def _echoed(value: str, body: str, exchange: Exchange) -> list[str]:
    forms = {value, value.replace("/", "\\/"), quote(value, safe="")}
    where = ["body"] if any(form in body for form in forms) else []
    where += [f"header {name}" for name, text in exchange.response_headers if any(f in text for f in forms)]
    return where[:5]


def _excerpts(exchange: Exchange, request: ApiRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    params = json.dumps(redact_mapping(request.params), sort_keys=True, default=str)
    if len(params) > MAX_EXCERPT:
        params = params[:MAX_EXCERPT] + "..."
    body = (exchange.response_body or b"")[: MAX_EXCERPT * 2].decode("utf-8", "replace")
    if len(body) > MAX_EXCERPT:
        body = body[:MAX_EXCERPT] + "..."
    request_excerpt = {
        "method": exchange.method,
        "path": redact(request.path),
        "content_type": exchange.request_mime.split(";")[0][:80],
        "params": redact(params),
    }
    response_excerpt = {
        "status": exchange.status,
        "content_type": exchange.response_mime[:80],
        "body": redact(body) if exchange.response_body is not None else f"({exchange.body_note})",
    }
    return request_excerpt, response_excerpt


# ---- the whole file ---------------------------------------------------------------------------------------


def judge_all(exchanges: list[Exchange], index: SchemaIndex) -> tuple[list[ExchangeVerdict], dict[str, int]]:
    """Every ``/api_v3`` exchange's verdict, and the other entries counted by kind."""
    verdicts: list[ExchangeVerdict] = []
    skipped: dict[str, int] = {}
    for exchange in exchanges:
        try:
            verdict = judge_exchange(exchange, index) if exchange.method != "OPTIONS" else None
        except Exception as exc:  # a bug of ours must not hide the other exchanges' verdicts
            logger.debug("judging exchange #%d failed", exchange.index, exc_info=True)
            verdict = _tool_error(exchange, exc)
        if verdict is None:
            kind = skipped_kind(exchange.url, exchange.method)
            skipped[kind] = skipped.get(kind, 0) + 1
        else:
            verdicts.append(verdict)
    return verdicts, skipped


def _tool_error(exchange: Exchange, exc: Exception) -> ExchangeVerdict:
    verdict = ExchangeVerdict(
        index=exchange.index,
        method=exchange.method,
        path=exchange.url.split("?", 1)[0],
        label="?",
        status=exchange.status,
        reason=f"{TOOL_ERROR} ksentinel could not judge it ({type(exc).__name__}: {exc})"[:300],
    )
    verdict.finish()
    return verdict


def skipped_kind(url: str, method: str = "GET") -> str:
    """What a non-API entry is, for the count of skipped entries."""
    if method == "OPTIONS":
        return "OPTIONS (CORS preflight)"
    lowered = url.split("?", 1)[0].lower()
    for marker, kind in (
        ("api_schema.php", "api_schema.php"),
        ("/playmanifest/", "playManifest"),
        ("/serveflavor/", "serveFlavor"),
        ("/thumbnail/", "thumbnail"),
    ):
        if marker in lowered:
            return kind
    return "other"
