"""``KalturaApi``: calls, multirequests, sessions and chunked uploads over any :class:`Transport`.

Every call is a ``POST {base}/api_v3/service/{service}/action/{action}`` with the parameters as JSON
(or, with ``encoding="form"``, Kaltura's flattened form), multipart when files are sent. The wire
format itself lives in :mod:`ksentinel.kaltura.wire`; this module adds the session, the request
configuration (``format``, ``ks``, ``partnerId``, ``clientTag``, ``apiVersion``) and the helpers.

**Backing off** (:class:`Backoff`, docs/production.md). A throttling answer (``ACTION_BLOCKED``,
HTTP 429, HTTP 503 with ``Retry-After``: :data:`ksentinel.kaltura.codes.THROTTLE_CODES`) is retried
after ``Retry-After`` (else 1, 2, 4, ... s), within a budget (60 s of waiting per call by default),
then the call fails with a reason that says so. A call is retried only when retrying cannot do a
write twice: a read (``get``, ``list``, ``count``, ... of any service: :data:`READ_ACTIONS`; a
multirequest of reads only) on any throttling answer; any other action (``add``, ``upload``,
``delete``, ``update``, ``start``, ...) only on ``ACTION_BLOCKED`` as the answer of a single call,
which Kaltura's dispatcher raises before the action runs (kaltura-api-v3.md section 4). A 429 or 503
to a write comes from whatever is in front of the API and does not prove the action did not run: it
fails at once, and its reason says it was not retried. Over :class:`HttpxTransport` (the contract
suite, the probe) clients back off by default; over other transports (Locust's: a load test measures
throttling, it does not hide it) only when given a :class:`Backoff`. A 503 with ``Retry-After`` has
the code ``HTTP_503_RETRY_AFTER`` on every client.
"""

from __future__ import annotations

import copy
import email.utils
import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlencode, urljoin, urlsplit

from ksentinel import __version__
from ksentinel.errors import KalturaApiError
from ksentinel.kaltura.codes import ACTION_BLOCKED, HTTP_503_RETRY_AFTER, THROTTLE_CODES
from ksentinel.kaltura.redact import redact, redact_value, register_secret
from ksentinel.kaltura.transport import HttpRequest, HttpxTransport, Transport, TransportTimeout
from ksentinel.kaltura.wire import (
    FORMAT_JSON,
    FORMAT_XML,
    FileSpec,
    Null,
    bad_response,
    decode_response,
    encode_multipart,
    flatten,
    json_params,
)

__all__ = [
    "READ_ACTIONS",
    "ApiResponse",
    "Backoff",
    "BackoffEvent",
    "CacheStatus",
    "KalturaApi",
    "MultiRequest",
    "MultiRequestItem",
    "Null",
    "cache_status",
    "flatten",
]

logger = logging.getLogger(__name__)

API_VERSION = "23.10.0"
DEFAULT_CHUNK_SIZE = 5 * 1024 * 1024
_CACHE_MARKERS = ("cached-dispatcher", "cache-key", "cached-with-extra-fields", "cached-warmup-")
_HIT_MARKERS = ("cached-dispatcher", "cached-with-extra-fields")
_MISS_MARKERS = ("cache-key",)
#: ``download`` follows at most this many redirects (a CDN answer is one or two hops away)
MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# KalturaUploadTokenStatus
_TOKEN_PENDING, _TOKEN_PARTIAL, _TOKEN_FULL, _TOKEN_CLOSED = 0, 1, 2, 3

Encoding = Literal["json", "form"]
CacheStatus = Literal["hit", "miss", "unknown"]

#: Actions that only read (any service): retrying one cannot write twice.
READ_ACTIONS = frozenset({"get", "list", "count", "ping", "gettime", "getversion"})


def is_read(service: str, action: str) -> bool:
    """``service.action`` only reads (see :data:`READ_ACTIONS`)."""
    return action.lower() in READ_ACTIONS


@dataclass(frozen=True)
class BackoffEvent:
    """One retry after a throttling answer: what was throttled, how, and how long the client waits."""

    call: str  # baseEntry.list, multirequest
    code: str  # ACTION_BLOCKED, HTTP_429, HTTP_503_RETRY_AFTER
    delay: float
    retry: int  # 1 for the first retry
    retry_after: bool  # the delay is the answer's Retry-After

    def __str__(self) -> str:
        why = "as Retry-After asked" if self.retry_after else "(no Retry-After)"
        return f"{self.code} on {self.call}: retry {self.retry} in {self.delay:.3g}s {why}"


@dataclass(frozen=True)
class Backoff:
    """How a client backs off from throttling answers (see the module's docstring for the rule).

    ``max_total`` bounds the seconds waited for one call, all its retries together; a wait that
    would pass it (a long ``Retry-After``) is not started: the call fails at once, saying so.
    ``sleep`` may return early (a probe run's cancellation); ``on_backoff`` hears of each retry.
    """

    max_total: float = 60.0
    max_retries: int = 8
    first_delay: float = 1.0
    max_delay: float = 30.0
    sleep: Callable[[float], Any] = time.sleep
    on_backoff: Callable[[BackoffEvent], None] | None = None


_DEFAULT_BACKOFF: Any = object()


def cache_status(headers: Mapping[str, str]) -> CacheStatus:
    """What the ``X-Kaltura`` header says about the API response cache: ``hit``, ``miss`` or ``unknown``.

    - ``hit``: ``cached-dispatcher,<key>,<secs>`` or ``cached-with-extra-fields,<key>,<secs>`` (a hit
      whose key also carries "extra fields" such as the referrer or country; kaltura-api-v3.md section 6).
    - ``miss``: ``cache-key,<key>`` (computed now, stored for the next caller).
    - ``unknown``: anything else (no header, ``error-<CODE>``) and ``cached-warmup-<proto>,<key>``: that
      marker is put on the server's own warm-up request (sent with ``X-KALTURA-WARM-CACHE`` shortly
      before a cached answer expires, which a client never sends), and on its own it does not say
      whether the answer was recomputed (older ``KalturaResponseCacher``: always) or still served from
      the cache (newer ones add the warm-up marker and go on looking the key up); counting it as a
      hit or a miss would guess. When the server adds a hit or miss marker next to it (repeated
      headers are joined with ``, ``), that marker decides.
    """
    value = ""
    for name, text in headers.items():
        if name.lower() == "x-kaltura":
            value = str(text)
            break
    parts = [part.strip().lower() for part in value.split(",")]
    if any(part.startswith(_HIT_MARKERS) for part in parts):
        return "hit"
    if any(part.startswith(_MISS_MARKERS) for part in parts):
        return "miss"
    return "unknown"


@dataclass(frozen=True)
class ApiResponse:
    """One API answer: the decoded ``result`` or the ``error`` it carried, and the HTTP details."""

    result: Any
    status: int
    headers: Mapping[str, str]
    elapsed: float
    body: bytes = field(repr=False)
    error: KalturaApiError | None = None
    execution_time: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def cache_hit(self) -> bool:
        """The ``X-Kaltura`` header says the answer came from the API cache (see :func:`cache_status`)."""
        return cache_status(self.headers) == "hit"

    @property
    def cache_key(self) -> str | None:
        """The key in ``cached-dispatcher,<key>,<secs>`` / ``cache-key,<key>``, if any."""
        parts = [p.strip() for p in self.headers.get("X-Kaltura", "").split(",")]
        if len(parts) > 1 and parts[0].startswith(_CACHE_MARKERS) and parts[1]:
            return parts[1]
        return None

    def unwrap(self) -> Any:
        """The result, or the error raised."""
        if self.error is not None:
            raise self.error
        return self.result

    def __repr__(self) -> str:
        outcome = f"error={self.error!r}" if self.error is not None else f"result={self.result!r}"
        return redact(f"ApiResponse(status={self.status}, {outcome}, elapsed={self.elapsed:.3f})")


@dataclass(frozen=True)
class MultiRequestItem:
    """A call queued in a multirequest; ``index`` is its 1-based position."""

    index: int
    service: str
    action: str

    def ref(self, *path: str | int) -> str:
        """A back-reference to this call's result: ``{N:result}`` or ``{N:result:objects:0:id}``."""
        return "{" + ":".join([str(self.index), "result", *(str(p) for p in path)]) + "}"


class MultiRequest:
    """Calls sent together in one ``/api_v3/service/multirequest`` request."""

    def __init__(self, api: KalturaApi) -> None:
        self._api = api
        self._calls: list[tuple[MultiRequestItem, dict[str, Any], Mapping[str, FileSpec]]] = []

    def add(
        self, service: str, action: str, /, *, files: Mapping[str, FileSpec] | None = None, **params: Any
    ) -> MultiRequestItem:
        item = MultiRequestItem(len(self._calls) + 1, service, action)
        self._calls.append((item, params, files or {}))
        return item

    def __len__(self) -> int:
        return len(self._calls)

    def execute_raw(self) -> ApiResponse:
        """Send the calls; ``result`` is a list with :class:`KalturaApiError` in place of failed calls."""
        if not self._calls:
            raise ValueError("empty multirequest")
        body: dict[str, Any] = {}
        files: list[tuple[str, FileSpec]] = []
        for key, (item, params, call_files) in enumerate(self._calls):
            body[str(key)] = {"service": item.service.lower(), "action": item.action, **params}
            files += [(f"{key}:{name}", spec) for name, spec in call_files.items()]
        reads = all(is_read(item.service, item.action) for item, _, _ in self._calls)
        return self._api._post(
            self._api.url("multirequest"), body, files, multirequest=True, call="multirequest", reads=reads
        )

    def execute(self) -> list[Any]:
        """The results in order; raises only when the multirequest as a whole failed."""
        result = self.execute_raw().unwrap()
        return list(result)


class KalturaApi:
    """A Kaltura API v3 client bound to one base URL, partner and (optionally) KS."""

    def __init__(
        self,
        base_url: str,
        *,
        ks: str | None = None,
        partner_id: int | None = None,
        format: int = FORMAT_JSON,
        timeout: float = 30.0,
        transport: Transport | None = None,
        client_tag: str = "ksentinel",
        encoding: Encoding = "json",
        backoff: Backoff | None = _DEFAULT_BACKOFF,
    ) -> None:
        if format not in (FORMAT_JSON, FORMAT_XML):
            raise ValueError(f"format must be 1 (JSON) or 2 (XML), not {format!r}")
        if encoding not in ("json", "form"):
            raise ValueError(f"encoding must be 'json' or 'form', not {encoding!r}")
        self.base_url = base_url.rstrip("/")
        self.partner_id = partner_id
        self.format = format
        self.timeout = timeout
        self.client_tag = client_tag
        self.encoding: Encoding = encoding
        self._owns_transport = transport is None
        self.transport: Transport = transport if transport is not None else HttpxTransport()
        self._ks = ks or None
        if backoff is _DEFAULT_BACKOFF:  # the HTTP seam backs off; a load test's transport does not
            backoff = Backoff() if getattr(self.transport, "backs_off", False) else None
        #: how throttling answers are retried (``None``: never)
        self.backoff: Backoff | None = backoff

    # --- session ---------------------------------------------------------------------------------

    @property
    def ks(self) -> str | None:
        return self._ks

    def with_ks(self, ks: str | None) -> KalturaApi:
        """A copy that sends ``ks`` and shares this client's transport."""
        clone = copy.copy(self)
        clone._ks = ks or None
        clone._owns_transport = False
        return clone

    def start_session(
        self, secret: str, user_id: str = "", type: int = 2, expiry: int = 86400, privileges: str = ""
    ) -> str:
        """``session.start`` for this client's partner; returns the new KS (not set on this client)."""
        if self.partner_id is None:
            raise ValueError("start_session needs partner_id")
        register_secret(secret)
        params = {"secret": secret, "userId": user_id, "type": int(type), "expiry": expiry}
        ks = self.with_ks(None).call(
            "session", "start", partnerId=self.partner_id, privileges=privileges, **params
        )
        if not isinstance(ks, str) or not ks:
            raise bad_response(f"session.start returned a {_type_name(ks)}, not a KS")
        return ks

    # --- calls -----------------------------------------------------------------------------------

    def url(self, service: str, action: str | None = None) -> str:
        path = f"{self.base_url}/api_v3/service/{service.lower()}"
        return f"{path}/action/{action}" if action else path

    def call_raw(
        self, service: str, action: str, /, *, files: Mapping[str, FileSpec] | None = None, **params: Any
    ) -> ApiResponse:
        """One call; API and HTTP errors are returned in ``.error``, transport errors raised.

        A throttling answer is retried as :attr:`backoff` says (the module's docstring has the rule).
        """
        return self._post(
            self.url(service, action),
            params,
            list((files or {}).items()),
            call=f"{service}.{action}",
            reads=is_read(service, action),
        )

    def call(
        self, service: str, action: str, /, *, files: Mapping[str, FileSpec] | None = None, **params: Any
    ) -> Any:
        """One call's decoded result; raises :class:`KalturaApiError` or ``TransportError``."""
        return self.call_raw(service, action, files=files, **params).unwrap()

    def multirequest(self) -> MultiRequest:
        return MultiRequest(self)

    def _common(self) -> dict[str, Any]:
        common: dict[str, Any] = {"format": self.format}
        if self._ks:
            common["ks"] = self._ks
        if self.partner_id is not None:
            common["partnerId"] = self.partner_id
        common["clientTag"] = self.client_tag
        common["apiVersion"] = API_VERSION
        return common

    def _post(
        self,
        url: str,
        params: Mapping[str, Any],
        files: list[tuple[str, FileSpec]],
        *,
        multirequest: bool = False,
        call: str = "",
        reads: bool = False,
    ) -> ApiResponse:
        merged = {**self._common(), **params}  # explicit params win (contract tests send odd formats)
        fmt = _as_format(merged.get("format"))
        if self.encoding == "json":
            text = json.dumps(json_params(merged), separators=(",", ":"))
            if files:
                content_type, body = encode_multipart([("json", text)], files)
            else:
                content_type, body = "application/json", text.encode("utf-8")
        else:
            pairs = flatten(merged)
            if files:
                content_type, body = encode_multipart(pairs, files)
            else:
                content_type, body = "application/x-www-form-urlencoded", urlencode(pairs).encode("ascii")
        headers = {
            "Content-Type": content_type,
            "Accept": "text/xml" if fmt == FORMAT_XML else "application/json",
            "User-Agent": f"ksentinel/{__version__}",
        }
        request = HttpRequest("POST", url, headers, body, self.timeout)
        answer = self._send(request, fmt, multirequest)
        code = answer.error.code if answer.error is not None else ""
        if code not in THROTTLE_CODES:
            return answer
        return self._backoff(request, answer, fmt, multirequest, call or url, reads)

    def _backoff(
        self,
        request: HttpRequest,
        answer: ApiResponse,
        fmt: int,
        multirequest: bool,
        call: str,
        reads: bool,
    ) -> ApiResponse:
        """Retry a throttled call while the rule and the budget allow; the last answer, its error
        saying why it was not (or no longer) retried."""
        policy = self.backoff
        waited = 0.0
        retries = 0
        while answer.error is not None and answer.error.code in THROTTLE_CODES:
            code = answer.error.code
            if policy is None:
                return answer
            if not reads and (code != ACTION_BLOCKED or multirequest):
                return _annotated(
                    answer,
                    f"not retried: {call} writes, and {code} does not prove it did not run "
                    "(only ACTION_BLOCKED to a single call does)",
                )
            hinted = retry_after(answer.headers)
            delay = hinted if hinted is not None else _exponential(policy, retries)
            if retries >= policy.max_retries or waited + delay > policy.max_total:
                if retries >= policy.max_retries:
                    why = f"{retries} retries is the most"
                else:
                    why = f"waiting {delay:.3g}s more would pass the {policy.max_total:g}s backoff budget"
                return _annotated(
                    answer, f"gave up after {retries} retries and {waited:.3g}s of backoff: {why}"
                )
            retries += 1
            event = BackoffEvent(call, code, delay, retries, hinted is not None)
            logger.warning("backing off: %s", event)
            if policy.on_backoff is not None:
                try:
                    policy.on_backoff(event)
                except Exception:  # a listener must not break the call
                    logger.exception("backoff listener failed")
            policy.sleep(delay)
            waited += delay
            answer = self._send(request, fmt, multirequest)
        return answer

    def _send(self, request: HttpRequest, fmt: int, multirequest: bool) -> ApiResponse:
        """One request and its decoded answer (throttling answers get their own codes)."""
        url = request.url
        response = self.transport.send(request)
        error: KalturaApiError | None = None
        result: Any = None
        execution_time: float | None = None
        try:
            result, execution_time = decode_response(
                response.status, response.headers, response.body, format=fmt, multirequest=multirequest
            )
        except KalturaApiError as exc:
            error = exc
        if error is not None and error.code == "HTTP_503" and retry_after(response.headers) is not None:
            error = KalturaApiError(
                HTTP_503_RETRY_AFTER,
                f"{error.message} (Retry-After {_header(response.headers, 'Retry-After')})",
                error.error_args,
                http_status=error.http_status,
            )
        logger.debug(
            "POST %s -> %s in %.3fs%s",
            url,
            response.status,
            response.elapsed,
            f" ({error.code})" if error else "",
        )
        return ApiResponse(
            result, response.status, response.headers, response.elapsed, response.body, error, execution_time
        )

    def download(self, url: str) -> bytes:
        """GET ``url`` (an entry's ``downloadUrl``) through this client's transport, within one deadline.

        A real platform answers the ``playManifest`` URL with a redirect to a CDN host that serves the
        bytes, so up to :data:`MAX_REDIRECTS` redirects (301/302/303/307/308; a relative ``Location``
        is resolved against the current URL) are followed here, across hosts (the transport itself
        never follows them). Every hop sends the ``User-Agent`` and nothing else: never a KS, a
        secret, ``Authorization`` or ``Cookie``, since a redirect may lead to any host.
        """
        headers = {"User-Agent": f"ksentinel/{__version__}"}  # nothing else, on any host
        deadline = time.monotonic() + self.timeout
        current = url
        for hop in range(MAX_REDIRECTS + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransportTimeout(f"download: no content within {self.timeout:g}s ({hop} redirects)")
            response = self.transport.send(HttpRequest("GET", current, headers, None, left))
            if response.status not in _REDIRECT_STATUSES:
                break
            location = response.headers.get("Location", "").strip()
            if not location:
                raise KalturaApiError(
                    f"HTTP_{response.status}",
                    f"download answered HTTP {response.status} without a Location",
                    http_status=response.status,
                )
            target = urljoin(current, location)
            if urlsplit(target).scheme not in ("http", "https"):
                raise KalturaApiError(
                    "BAD_REDIRECT", f"download redirected to a {urlsplit(target).scheme or 'relative'} URL"
                )
            current = target
        else:
            raise KalturaApiError(
                "TOO_MANY_REDIRECTS",
                f"download redirected more than {MAX_REDIRECTS} times (last to {_origin(current)})",
                http_status=response.status,
            )
        if response.status != 200:
            raise KalturaApiError(
                f"HTTP_{response.status}",
                f"download answered HTTP {response.status}",
                http_status=response.status,
            )
        return response.body

    # --- chunked upload --------------------------------------------------------------------------

    def upload_chunk(
        self,
        token_id: str,
        data: bytes,
        *,
        resume: bool,
        final_chunk: bool,
        resume_at: int = -1,
        filename: str = "chunk.bin",
    ) -> dict[str, Any]:
        """``uploadToken.upload`` of one chunk; returns the token."""
        token = self.call(
            "uploadToken",
            "upload",
            files={"fileData": (filename, data)},
            uploadTokenId=token_id,
            resume=resume,
            finalChunk=final_chunk,
            resumeAt=resume_at,
        )
        return _as_token(token)

    def upload_file(
        self,
        token_id: str,
        data: bytes | Iterable[bytes],
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        *,
        filename: str = "chunk.bin",
    ) -> dict[str, Any]:
        """Upload ``data`` in chunks of ``chunk_size`` (the first replaces, later ones append at their
        offset, the last is final); returns the last token."""
        return self._send_chunks(token_id, _rechunk(data, chunk_size), 0, False, filename)

    def resume_upload(
        self,
        token_id: str,
        data: bytes | Iterable[bytes],
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        *,
        filename: str = "chunk.bin",
    ) -> dict[str, Any]:
        """Continue an upload from the token's ``uploadedFileSize`` (``data`` is the whole file)."""
        token = _as_token(self.call("uploadToken", "get", uploadTokenId=token_id))
        status = _as_int(token.get("status"))
        if status in (_TOKEN_FULL, _TOKEN_CLOSED):
            return token
        uploaded = _as_int(token.get("uploadedFileSize"))
        resume = uploaded > 0 or status == _TOKEN_PARTIAL
        chunks = _rechunk(_skip(data, uploaded), chunk_size)
        return self._send_chunks(token_id, chunks, uploaded, resume, filename)

    def _send_chunks(
        self, token_id: str, chunks: Iterator[bytes], offset: int, resume: bool, filename: str
    ) -> dict[str, Any]:
        token: dict[str, Any] = {}
        for chunk, last in _with_last(chunks):
            token = self.upload_chunk(
                token_id,
                chunk,
                resume=resume,
                final_chunk=last,
                resume_at=offset if resume else -1,
                filename=filename,
            )
            offset += len(chunk)
            resume = True
        return token

    # --- resources -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the transport if this client created it."""
        close = getattr(self.transport, "close", None)
        if self._owns_transport and callable(close):
            close()

    def __enter__(self) -> KalturaApi:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        ks = redact_value("ks", self._ks) if self._ks else None
        return (
            f"KalturaApi({redact(self.base_url)!r}, partner_id={self.partner_id!r}, "
            f"format={self.format}, encoding={self.encoding!r}, ks={ks!r})"
        )


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the ``Retry-After`` header asks to wait (delta-seconds or an HTTP date), else None."""
    value = _header(headers, "Retry-After").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return str(value)
    return ""


def _exponential(policy: Backoff, retries: int) -> float:
    """1, 2, 4, ... s (``first_delay`` doubling, at most ``max_delay``), +-10% so clients spread out."""
    delay = min(policy.max_delay, policy.first_delay * (2**retries))
    return delay * random.uniform(0.9, 1.1)


def _annotated(answer: ApiResponse, note: str) -> ApiResponse:
    """``answer`` with ``note`` added to its error's message (code and args unchanged)."""
    error = answer.error
    if error is None:
        return answer
    annotated = KalturaApiError(
        error.code, f"{error.message} ({note})", error.error_args, http_status=error.http_status
    )
    return replace(answer, error=annotated)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else url[:60]


def _type_name(value: object) -> str:
    return type(value).__name__


def _as_format(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0  # unknown: sniffed from the body


def _as_int(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


def _as_token(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_response(f"expected a KalturaUploadToken, got a {_type_name(value)}")
    return value


def _skip(data: bytes | Iterable[bytes], count: int) -> bytes | Iterator[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)[count:]
    return _skip_pieces(iter(data), count)


def _skip_pieces(pieces: Iterator[bytes], count: int) -> Iterator[bytes]:
    for piece in pieces:
        if count >= len(piece):
            count -= len(piece)
            continue
        yield piece[count:]
        count = 0


def _rechunk(data: bytes | Iterable[bytes], size: int) -> Iterator[bytes]:
    if size <= 0:
        raise ValueError("chunk_size must be positive")
    if isinstance(data, bytes | bytearray | memoryview):
        whole = bytes(data)
        for start in range(0, len(whole), size):
            yield whole[start : start + size]
        return
    buffer = bytearray()
    for piece in data:
        buffer += piece
        if len(buffer) >= size:
            view = memoryview(buffer)
            cut = len(buffer) - len(buffer) % size
            for start in range(0, cut, size):
                yield bytes(view[start : start + size])
            view.release()
            del buffer[:cut]
    if buffer:
        yield bytes(buffer)


def _with_last(chunks: Iterator[bytes]) -> Iterator[tuple[bytes, bool]]:
    """Each chunk with ``True`` on the last one; an empty source gives one empty final chunk."""
    previous: bytes | None = None
    for chunk in chunks:
        if previous is not None:
            yield previous, False
        previous = chunk
    yield (previous if previous is not None else b""), True
