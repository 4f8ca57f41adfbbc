"""The Locust transport: :class:`~ksentinel.kaltura.transport.Transport` over a FastHttpUser's client.

Every HTTP call is one Locust request event, named after the flow step it belongs to
(:data:`~ksentinel.kaltura.transport.STEP_LABEL`, e.g. ``upload.chunk``), and judged like this:

* no HTTP answer (refused, reset, timed out): a failure ``CONNECTION`` / ``TIMEOUT``, and the flow
  sees the matching ``TransportError``; as in :class:`~ksentinel.kaltura.transport.HttpxTransport`
  the request's timeout bounds the whole request (headers and body, with the ``deadline`` the user
  passes in: ``gevent.Timeout``) and a body over ``max_body_bytes`` is refused while it is read
  (``TOO_LARGE``), so a server that trickles or streams forever neither holds a user nor fills memory;
* an HTTP error status: a failure ``HTTP_<status>`` (not a redirect of a GET with a ``Location``, the
  hop of a download to its CDN host, which the client follows);
* HTTP 200 with a ``KalturaAPIException`` (looked for only when the body contains that word): a
  failure carrying the API's code, *unless the flow expected it*. Flows provoke some errors on
  purpose (``session.reuse_after_end`` wants ``INVALID_KS``), so the verdict waits until the flow
  shows what it made of the error: the step fails with that code -> failure; the flow carries on ->
  success. During clean-up (``<flow>.cleanup``) an object that is already gone is a success;
* otherwise a success.

A step that fails without a failed request (a broken invariant, a :class:`FlowFailure`) is reported
as one ``CHECK`` event under the step's name (:meth:`LocustTransport.on_step` is the flow context's
step listener). Response times are Locust's (ms); in the open model the first request of a flow
also carries the flow's start lag (:attr:`LocustTransport.lag`), so queueing is not hidden.

Requests go through the user's FastHttpUser client at the level below Locust's session wrapper: the
geventhttpclient connection pool of ``user.client`` (``session.client.clientpool``), with the user's
connection and network timeouts, keep-alive, TLS and proxy settings, but without the cookie jar,
redirects and URL re-parsing a Kaltura call does not need; the request events are fired here, with
the same fields Locust's own client fires. This module imports neither Locust nor gevent: the
session is duck-typed.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from ksentinel.errors import KalturaApiError
from ksentinel.flows.core import StepResult
from ksentinel.kaltura.transport import (
    DEFAULT_MAX_BODY_BYTES,
    STEP_LABEL,
    Headers,
    HttpRequest,
    HttpResponse,
    ResponseTooLarge,
    TransportConnectionError,
    TransportError,
    TransportProtocolError,
    TransportTimeout,
)
from ksentinel.kaltura.wire import API_EXCEPTION, decode_response
from ksentinel.load.failures import CHECK, GONE, LoadFailure

CHECK_TYPE = "CHECK"
FLOW_TYPE = "FLOW"
_MARKER = API_EXCEPTION.encode()
MAX_CACHED_URLS = 256
_BLOCK = 64 * 1024
#: ``deadline(seconds)``: a context manager that interrupts what runs inside after ``seconds``
Deadline = Callable[[float], AbstractContextManager[Any]]
_ACTION = re.compile(r"/service/([A-Za-z0-9_]+)(?:/action/([A-Za-z0-9_]+))?")


@dataclass
class _Held:
    """An API error whose verdict waits for the flow's reaction."""

    label: str
    code: str
    meta: dict[str, Any]


class LocustTransport:
    """One Locust request event per HTTP call; see the module docstring for the verdicts."""

    def __init__(
        self,
        session: Any,
        request_event: Any,
        *,
        deadline: Deadline | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.session = session
        self._deadline: Deadline = deadline or _no_deadline
        self.max_body_bytes = max_body_bytes
        self._pool = connection_pool(session)
        user = getattr(session, "user", None)  # FastHttpUser.default_headers go out with every call
        self._extra_headers: dict[str, str] = dict(getattr(user, "default_headers", None) or {})
        self._fire: Callable[..., Any] = request_event.fire
        self._targets: dict[str, tuple[Any, str]] = {}
        self.lag = 0.0
        #: True while a flow runs: its API errors wait for the flow's verdict (see the module doc)
        self.in_flow = False
        self._held: _Held | None = None
        self._failed: set[str] = set()

    # --- Transport -------------------------------------------------------------------------------

    def send(self, request: HttpRequest) -> HttpResponse:
        if self._held is not None:  # the flow made another call after the error: it expected it
            self._release(failed=False)
        label = STEP_LABEL.get() or fallback_label(request.url)
        client, uri = self._target(request.url)
        started = time.time()
        begin = time.perf_counter()
        error: BaseException | None = None
        body = b""
        status = 0
        headers: Mapping[str, str] = _NO_HEADERS
        try:
            headers_out = (
                {**self._extra_headers, **request.headers} if self._extra_headers else request.headers
            )
            with self._deadline(request.timeout):
                response = client.request(request.method, uri, body=request.body or b"", headers=headers_out)
                try:
                    status = int(response.status_code)
                    headers = _ResponseHeaders(response.info())
                    body = self._read_body(response, headers, f"{request.method} {request.url}")
                finally:
                    response.release()  # closes the connection when the body was not read to its end
        except Exception as exc:  # socket errors, timeouts, unparsable answers, TOO_LARGE
            error = exc
        except BaseException as exc:  # gevent.Timeout is a BaseException; GreenletExit must pass
            if "Timeout" not in type(exc).__name__:
                raise
            error = exc
        elapsed = time.perf_counter() - begin + self.lag
        self.lag = 0.0
        meta: dict[str, Any] = {
            "request_type": request.method,
            "name": label,
            "response_time": elapsed * 1000.0,
            "response_length": len(body),
            "response": None,
            "context": {},
            "exception": None,
            "start_time": started,
            "url": request.url,
        }
        if error is not None:
            failure = _failure_of(error)
            self._report(meta, LoadFailure(failure.code, type(error).__name__), label)
            if isinstance(error, TransportError):
                raise error
            raise failure(f"{request.method} {request.url}: {type(error).__name__}: {error}")
        result = HttpResponse(status, cast(Headers, headers), body, elapsed)
        if _is_redirect_hop(request.method, status, headers):
            self._fire(**meta)  # a download redirected to the CDN: the client follows it, not a failure
        elif status >= 300:
            self._report(meta, LoadFailure(f"HTTP_{status}"), label)
        elif _MARKER in body and (code := api_error_code(result)) is not None:
            if label.endswith(".cleanup"):
                self._report(meta, None if code in GONE else LoadFailure(code), label)
            elif not self.in_flow:
                self._report(meta, LoadFailure(code), label)
            else:
                self._held = _Held(label, code, meta)
        else:
            self._fire(**meta)
        return result

    def _read_body(self, response: Any, headers: Mapping[str, str], what: str) -> bytes:
        """The body, refused (``TOO_LARGE``) once it is over ``max_body_bytes``, declared or read."""
        limit = self.max_body_bytes
        declared = str(headers.get("content-length", "")).strip()
        if declared.isdigit():
            if int(declared) > limit:
                raise ResponseTooLarge(f"{what}: Content-Length {declared} over {limit} bytes")
            return bytes(response.read())  # the parser stops at the declared length; one call is cheaper
        body = bytearray()
        while chunk := response.read(_BLOCK):
            body += chunk
            if len(body) > limit:
                body.clear()  # now: the exception's traceback keeps this frame alive
                raise ResponseTooLarge(f"{what}: body over {limit} bytes")
        return bytes(body)

    def _target(self, url: str) -> tuple[Any, str]:
        """The pooled HTTP client of ``url``'s host and the request URI (cached for API URLs)."""
        hit = self._targets.get(url)
        if hit is None:
            parts = urlsplit(url)
            client = self._pool.get_client(f"{parts.scheme}://{parts.netloc}/")
            hit = (client, (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
            if "/api_v3/" in url and len(self._targets) < MAX_CACHED_URLS:
                self._targets[url] = hit
        return hit

    # --- the flow's side ----------------------------------------------------------------------------

    def on_step(self, result: StepResult) -> None:
        """Step listener: settle a held API error, report a failed step no request reported."""
        held = self._held
        if held is not None:
            self._release(failed=not result.ok and held.code == result.code and held.label == result.name)
        if not result.ok and result.name not in self._failed:
            self._fire(
                request_type=CHECK_TYPE,
                name=result.name,
                response_time=result.duration * 1000.0,
                response_length=0,
                response=None,
                context={},
                exception=LoadFailure(result.code or CHECK, result.reason),
                start_time=time.time() - result.duration,
                url="",
            )
        self._failed.clear()

    def flow_done(self) -> None:
        """After a flow (or when a user stops mid-flow): an error still held was expected."""
        if self._held is not None:
            self._release(failed=False)
        self._failed.clear()
        self.lag = 0.0

    # --- helpers -------------------------------------------------------------------------------------

    def _release(self, *, failed: bool) -> None:
        held, self._held = self._held, None
        if held is not None:
            self._report(held.meta, LoadFailure(held.code) if failed else None, held.label)

    def _report(self, meta: dict[str, Any], failure: LoadFailure | None, label: str) -> None:
        meta["exception"] = failure
        if failure is not None:
            self._failed.add(label)
        self._fire(**meta)


def connection_pool(session: Any) -> Any:
    """The geventhttpclient connection pool under a Locust ``FastHttpSession``.

    The one use of Locust past its public session API: ``FastHttpSession.client`` (Locust's
    ``LocustUserAgent``) and its ``clientpool`` (geventhttpclient's ``UserAgent``). pyproject.toml
    bounds Locust; ``tests/test_transport_internals.py`` fails as soon as an upgrade moves them.
    """
    pool = getattr(getattr(session, "client", None), "clientpool", None)
    if pool is None or not callable(getattr(pool, "get_client", None)):
        raise RuntimeError(
            "this Locust has no FastHttpSession.client.clientpool.get_client: ksentinel's load transport "
            "needs a Locust version within the bounds in pyproject.toml"
        )
    return pool


def api_error_code(response: HttpResponse) -> str | None:
    """The code of the ``KalturaAPIException`` a 200 answer carries at its top level, if any."""
    try:
        decode_response(response.status, response.headers, response.body, format=0)
    except KalturaApiError as exc:
        return exc.code
    return None


def fallback_label(url: str) -> str:
    """A request name for calls made outside any flow step: ``api.<service>.<action>``."""
    match = _ACTION.search(url)
    if match is None:
        return "api.download" if "/playManifest/" in url else "api.other"
    service, action = match.group(1), match.group(2) or "request"
    return f"api.{service.lower()}.{action.lower()}"


class _ResponseHeaders(Mapping[str, str]):
    """geventhttpclient's (case-insensitive) headers as :class:`~ksentinel.kaltura.transport.Headers`
    reads them, without copying them first: repeated names joined with ``", "``."""

    __slots__ = ("_headers",)

    def __init__(self, headers: Any) -> None:
        self._headers = headers

    def __getitem__(self, name: str) -> str:
        value = self._headers[name]
        return ", ".join(value) if isinstance(value, list) else value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._headers

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers)

    def __len__(self) -> int:
        return len(self._headers)

    def items_raw(self) -> tuple[tuple[str, str], ...]:
        return tuple(self._headers.items())


_NO_HEADERS = Headers()


def _no_deadline(seconds: float) -> AbstractContextManager[None]:
    return contextlib.nullcontext()


_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def _is_redirect_hop(method: str, status: int, headers: Mapping[str, str]) -> bool:
    """A GET/HEAD answered with a redirect that names where to go (``KalturaApi.download`` follows it)."""
    return method in ("GET", "HEAD") and status in _REDIRECTS and bool(headers.get("Location"))


def _failure_of(error: BaseException) -> type[TransportError]:
    if isinstance(error, TransportError):
        return type(error)
    if isinstance(error, TimeoutError) or "Timeout" in type(error).__name__:
        return TransportTimeout
    if "ParseError" in type(error).__name__ or "ProtocolViolation" in type(error).__name__:
        return TransportProtocolError
    return TransportConnectionError
