"""The last few HTTP exchanges of a client, kept redacted for the report of a failed check.

:class:`Recorder` is a :class:`~ksentinel.kaltura.transport.Transport` that hands every request to
the transport it wraps and keeps the last :data:`KEPT` exchanges (a bounded deque): the flow step
each belonged to (:data:`~ksentinel.kaltura.transport.STEP_LABEL`), the request (method, URL, body)
and the response (status, a few headers, body) or the transport error. Everything is redacted when
it is recorded, so no KS and no secret is kept even in memory: JSON and form bodies through
:func:`~ksentinel.kaltura.redact.redact_mapping` (a ``ks`` or ``secret`` parameter is masked whatever
its shape), any other text through :func:`~ksentinel.kaltura.redact.redact`. Bodies are cut to
:data:`MAX_BODY` characters; a binary body (a media chunk, a download) is described, not copied.

The contract suite sends through one, so a failed flow, caching or security check shows the
exchange that proves it, as a fuzzed action shows its own (:func:`evidence` picks it).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from ksentinel.kaltura.redact import redact, redact_mapping, redact_value
from ksentinel.kaltura.transport import STEP_LABEL, HttpRequest, HttpResponse, Transport, TransportError

#: exchanges kept (the oldest go first)
KEPT = 32
#: characters of a body kept (after redaction)
MAX_BODY = 2000
#: characters of a body read to redact and cut (a KS cut in half by the limit is beyond MAX_BODY)
_READ = 16 * 1024
#: the response headers worth showing: the cache verdict, redirects, throttling, the content type
RESPONSE_HEADERS = ("content-type", "x-kaltura", "location", "retry-after", "age")
_TEXT_TYPES = ("json", "xml", "text/", "x-www-form-urlencoded", "javascript")


@dataclass(frozen=True)
class Exchange:
    """One request and its answer (or the transport error), redacted."""

    seq: int
    step: str  # the flow step it belonged to ("" outside a flow)
    request: dict[str, Any]  # method, url, content_type, body
    response: dict[str, Any]  # status, headers, body, elapsed; or error

    def as_details(self) -> dict[str, Any]:
        """``{"request": ..., "response": ...}`` as a check's report details carry them."""
        request = {**self.request, "step": self.step} if self.step else dict(self.request)
        return {"request": request, "response": dict(self.response)}


class Recorder:
    """A transport that keeps the last ``keep`` exchanges it passed to ``inner`` (thread-safe)."""

    def __init__(self, inner: Transport, keep: int = KEPT) -> None:
        self.inner = inner
        self._kept: deque[Exchange] = deque(maxlen=keep)
        self._seq = itertools.count(1)
        self._last = 0
        self._lock = threading.Lock()

    @property
    def backs_off(self) -> bool:
        """As the wrapped transport (:class:`~ksentinel.kaltura.api.KalturaApi` asks)."""
        return bool(getattr(self.inner, "backs_off", False))

    def send(self, request: HttpRequest) -> HttpResponse:
        step = STEP_LABEL.get()
        try:
            response = self.inner.send(request)
        except TransportError as exc:
            self._keep(step, request, {"error": redact(str(exc))})
            raise
        self._keep(step, request, describe_response(response))
        return response

    def _keep(self, step: str, request: HttpRequest, answer: dict[str, Any]) -> None:
        sent = describe_request(request)
        with self._lock:
            seq = next(self._seq)
            self._kept.append(Exchange(seq, step, sent, answer))
            self._last = seq

    def mark(self) -> int:
        """A position: :meth:`since` it gives the exchanges recorded after this call."""
        with self._lock:
            return self._last

    def since(self, mark: int = 0) -> list[Exchange]:
        """The kept exchanges recorded after ``mark``, oldest first."""
        with self._lock:
            return [e for e in self._kept if e.seq > mark]

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()


def evidence(exchanges: Iterable[Exchange], step: str = "") -> Exchange | None:
    """The exchange that shows a failure: the last one of ``step`` (the step that failed), else the
    last one that was not a clean-up (a flow cleans up after it failed), else the last one."""
    kept = list(exchanges)
    for chosen in (
        [e for e in kept if step and e.step == step],
        [e for e in kept if not e.step.endswith(".cleanup")],
        kept,
    ):
        if chosen:
            return chosen[-1]
    return None


def describe_request(request: HttpRequest) -> dict[str, Any]:
    content_type = _header(request.headers, "content-type")
    return {
        "method": request.method,
        "url": redact(request.url),
        "content_type": content_type,
        "body": describe_body(request.body, content_type),
    }


def describe_response(response: HttpResponse) -> dict[str, Any]:
    content_type = _header(response.headers, "content-type")
    headers = {
        name: redact(str(value))
        for name in RESPONSE_HEADERS
        if (value := _header(response.headers, name)) and name != "content-type"
    }
    return {
        "status": response.status,
        "content_type": content_type,
        "headers": headers,
        "body": describe_body(response.body, content_type),
        "elapsed": round(response.elapsed, 4),
    }


def describe_body(body: bytes | None, content_type: str = "") -> str:
    """A body as the report shows it: redacted text cut to :data:`MAX_BODY`, or what it was."""
    if not body:
        return ""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind.startswith("multipart/"):
        return f"<{kind} body, {len(body)} bytes>"
    head = body[:_READ]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not (any(t in kind for t in _TEXT_TYPES) or exc.start >= len(head) - 3):
            return f"<{len(body)} bytes of {kind or 'binary data'}>"
        text = head.decode("utf-8", "replace")
    if not kind and any(ch in text for ch in "\x00\x01\x02\x03"):
        return f"<{len(body)} bytes of binary data>"
    shown = _redacted_text(text, kind, complete=len(head) == len(body))
    if len(shown) > MAX_BODY or len(head) < len(body):
        return f"{shown[:MAX_BODY]}... ({len(body)} bytes in all)"
    return shown


def _redacted_text(text: str, kind: str, *, complete: bool) -> str:
    if complete and "json" in kind:
        try:
            data = json.loads(text)
        except ValueError:
            pass
        else:
            return json.dumps(_redact_json(data), ensure_ascii=False)
    if complete and kind == "application/x-www-form-urlencoded":
        pairs = parse_qsl(text, keep_blank_values=True)
        return urlencode([(key, redact_value(key, value)) for key, value in pairs])
    return redact(text)


def _redact_json(data: Any) -> Any:
    if isinstance(data, Mapping):
        return redact_mapping(data)
    if isinstance(data, list):
        return [_redact_json(item) for item in data]
    return redact(data) if isinstance(data, str) else data


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return str(value)
    return ""
