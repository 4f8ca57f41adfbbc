"""The Kaltura call(s) an exchange made, read the way the server reads a request (kaltura-api-v3.md §1).

Endpoints: ``/api_v3/service/<s>/action/<a>[/<key>/<value>...]``, ``/api_v3/index.php[/...]`` with
``service``/``action`` in the query or body, ``/api/...`` (rewritten by Apache to ``/api_v3``) and
multirequests (``service=multirequest``). Parameters merge as on the server (later wins): body < query
string < path pairs. Bodies: ``application/json`` (nested), ``multipart/form-data`` (a ``json`` text
part, or form fields; file parts only named), form-urlencoded, or the HAR's ``postData.params``.
Flattened keys (``filter:statusEqual``, ``1:service``, PHP brackets) are nested.

Besides what to judge, a :class:`ApiRequest` carries what must never come back: every KS the request
sent (params, sub-calls, headers) and every secret or password, and whether a KS went into the URL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ksentinel.kaltura.redact import looks_like_ks
from ksentinel.kaltura.wire import split_key, unflatten
from ksentinel.traffic.har import Exchange

MAX_SUBCALLS = 500
MAX_DEPTH = 32
MAX_PARAMS = 20_000
SECRET_KEYS = frozenset({"secret", "adminsecret", "usersecret", "password", "newpassword", "oldpassword"})
_RESULT_REF = re.compile(r"\{[0-9]+:result")


@dataclass
class SubCall:
    """One call of a multirequest (or the only call of a single request)."""

    position: int  # 1-based, the ``{N:result}`` numbering
    service: str
    action: str

    @property
    def label(self) -> str:
        return f"{self.service}.{self.action}"


@dataclass
class ApiRequest:
    """An ``/api_v3`` request as Kaltura reads it."""

    path: str  # the URL path, without the query string
    service: str  # "multirequest" for a multirequest
    action: str
    params: dict[str, Any]
    format: str  # as sent ("1", "2", "9", ...); "" when absent (the server answers XML)
    calls: list[SubCall] = field(default_factory=list)
    ks_values: set[str] = field(default_factory=set)
    secret_values: set[str] = field(default_factory=set)
    #: parameter names that carried a KS or a secret in the URL (query string or path pairs)
    in_url: list[str] = field(default_factory=list)
    truncated: bool = False  # more sub-calls than :data:`MAX_SUBCALLS`

    @property
    def multirequest(self) -> bool:
        return self.service.lower() == "multirequest"

    @property
    def label(self) -> str:
        return "multirequest" if self.multirequest else f"{self.service}.{self.action}"


def endpoint_of(url: str) -> tuple[str, list[str]] | None:
    """``(path, segments after /api_v3/)`` of an API call, or ``None`` for anything else.

    ``/api_v3/api_schema.php`` and other scripts are not API calls; ``/api/...`` is ``/api_v3/...``.
    """
    try:
        path = urlsplit(url).path
    except ValueError:
        return None
    segments = [unquote(s) for s in path.split("/")]
    for at, segment in enumerate(segments):
        if segment.lower() in ("api_v3", "api"):
            rest = segments[at + 1 :]
            while rest and rest[-1] == "":
                rest.pop()
            if rest and rest[0].lower() == "index.php":
                rest = rest[1:]
            elif rest and rest[0].lower() != "service":
                return None
            return path, rest
    return None


def parse_request(exchange: Exchange) -> ApiRequest | None:
    """The Kaltura request of an exchange, or ``None`` when it is not an ``/api_v3`` call."""
    found = endpoint_of(exchange.url)
    if found is None:
        return None
    path, segments = found
    query = _pairs_from_query(urlsplit(exchange.url).query)
    path_pairs = [
        (segments[i], segments[i + 1] if i + 1 < len(segments) else "") for i in range(0, len(segments), 2)
    ]
    params: dict[str, Any] = {}
    _merge_body(params, exchange)
    for key, value in [*query, *path_pairs][:MAX_PARAMS]:
        _put(params, key, value)
    request = ApiRequest(
        path=path,
        service=str(params.get("service") or ""),
        action=str(params.get("action") or ""),
        params=params,
        format=str(params.get("format") or "").strip(),
    )
    for key, value in [*query, *path_pairs]:
        last = split_key(key)[-1].lower() if split_key(key) else ""
        if value and not _RESULT_REF.search(value) and (last == "ks" or last in SECRET_KEYS):
            request.in_url.append(key)
    _collect_sensitive(request, params, exchange)
    if request.multirequest:
        request.calls, request.truncated = _subcalls(params)
    else:
        request.calls = [SubCall(1, request.service, request.action)]
    return request


# ---- parameters ---------------------------------------------------------------------------------------


def _pairs_from_query(query: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_PARAMS)
    except ValueError:
        return []


def _merge_body(params: dict[str, Any], exchange: Exchange) -> None:
    mime = exchange.request_mime.lower()
    body = exchange.request_body
    if body is not None and mime.startswith("application/json"):
        decoded = _json_object(body)
        if decoded is not None:
            params.update(decoded)
            return
    if body is not None and mime.startswith("multipart/form-data"):
        fields = multipart_fields(body, exchange.request_mime)
        if fields is not None:
            _merge_fields(params, fields)
            return
    if body is not None and (mime.startswith("application/x-www-form-urlencoded") or not mime):
        text = body.decode("utf-8", "replace").strip()
        if text.startswith("{"):
            decoded = _json_object(body)
            if decoded is not None:
                params.update(decoded)
                return
        _merge_fields(params, _pairs_from_query(text))
        return
    if exchange.request_params:
        _merge_fields(
            params, [(name, value) for name, value, is_file in exchange.request_params if not is_file]
        )


def _merge_fields(params: dict[str, Any], fields: list[tuple[str, str]]) -> None:
    for name, value in fields[:MAX_PARAMS]:
        if name == "json":
            decoded = _json_object(value.encode("utf-8", "replace"))
            if decoded is not None:
                params.update(decoded)
                continue
        _put(params, name, value)


def _json_object(body: bytes) -> dict[str, Any] | None:
    text = body.decode("utf-8", "replace").strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def multipart_fields(body: bytes, content_type: str) -> list[tuple[str, str]] | None:
    """The text fields of a ``multipart/form-data`` body (file parts left out); ``None`` if unreadable."""
    match = re.search(r'boundary="?([^";,]+)"?', content_type, re.IGNORECASE)
    if not match:
        return None
    delimiter = b"--" + match.group(1).strip().encode("latin-1", "replace")
    fields: list[tuple[str, str]] = []
    for part in body.split(delimiter)[1:MAX_PARAMS]:
        if part.startswith(b"--"):
            break
        head, sep, content = part.lstrip(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            continue
        headers = head.decode("utf-8", "replace")
        name = re.search(r'\bname="([^"]*)"', headers)
        if name is None or re.search(r"\bfilename=", headers):
            continue
        fields.append((name.group(1), content.removesuffix(b"\r\n").decode("utf-8", "replace")))
    return fields


def _put(params: dict[str, Any], key: str, value: Any) -> None:
    unflatten([(key, value)], params)


# ---- multirequest -------------------------------------------------------------------------------------


def _subcalls(params: dict[str, Any]) -> tuple[list[SubCall], bool]:
    """The sub-calls in the server's order: from min(1, lowest key) up, until one lacks service/action."""
    numbered = {int(k): v for k, v in params.items() if isinstance(k, str) and k.isdigit() and len(k) < 7}
    if not numbered:
        return [], False
    calls: list[SubCall] = []
    key = min(1, min(numbered))
    while len(calls) < MAX_SUBCALLS:
        sub = numbered.get(key)
        if not isinstance(sub, dict) or not sub.get("service") or not sub.get("action"):
            return calls, False
        calls.append(SubCall(len(calls) + 1, str(sub["service"]), str(sub["action"])))
        key += 1
    return calls, isinstance(numbered.get(key), dict)


# ---- what must never come back ----------------------------------------------------------------------


def _collect_sensitive(request: ApiRequest, params: dict[str, Any], exchange: Exchange) -> None:
    for key, value in _walk(params):
        if not isinstance(value, str) or not value or _RESULT_REF.search(value):
            continue
        if key == "ks":
            request.ks_values.add(value)
        elif key in SECRET_KEYS:
            request.secret_values.add(value)
    for name, value in exchange.request_headers:
        if name.lower() in ("cookie", "content-type", "content-length", "host"):
            continue
        for token in re.split(r"[\s,;]+", value)[:20]:
            for candidate in (token, token.split("=", 1)[-1]):
                if len(candidate) >= 40 and looks_like_ks(candidate):
                    request.ks_values.add(candidate)
                    break


def _walk(value: Any, key: str = "", depth: int = 0) -> Iterator[tuple[str, Any]]:
    if depth > MAX_DEPTH:
        return
    if isinstance(value, dict):
        for child_key, child in list(value.items())[:MAX_PARAMS]:
            yield from _walk(child, str(child_key).lower(), depth + 1)
    elif isinstance(value, list):
        for child in value[:MAX_PARAMS]:
            yield from _walk(child, key, depth + 1)
    else:
        yield key, value
