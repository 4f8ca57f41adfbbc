"""The HTTP seam: one small :class:`Transport` protocol and its httpx implementation.

``send(HttpRequest) -> HttpResponse`` is all the API client needs, so a Locust transport (or a fake in
tests) only has to implement that. :class:`HttpxTransport` adds what a tool that talks to misbehaving
servers needs: a *total* deadline per request (connect, upload and the whole body), a cap on the body
size, no redirect following, and every failure mapped to a :class:`TransportError` with a stable
``code``::

    TargetError
     └── TransportError            code
          ├── TransportTimeout     TIMEOUT     the deadline passed (connect, send, headers or body)
          ├── TransportConnectionError  CONNECTION  refused, reset, DNS, broken pipe
          ├── ResponseTooLarge     TOO_LARGE   body (or its Content-Length) over max_body_bytes
          └── TransportProtocolError    PROTOCOL    not HTTP, bad framing, closed without an answer

The deadline is enforced below httpx: the default client's connection pool uses a network backend
whose every socket operation waits at most until the deadline of the request in progress.

**The rate cap.** A target's ``max_rps`` is enforced here, in the one seam the contract suite and
the probe send through: each :class:`HttpxTransport` request first takes a token from a
:class:`TokenBucket`: the one passed to the transport (the probe gives each target its own), else
the one registered for the request's origin (``scheme://host:port``) with :func:`set_rate_limit`,
which :func:`ksentinel.config.resolve_target` calls for every target it resolves. Waiting for a
token is part of the request's timeout but not of its measured ``elapsed``; a token that cannot be
had within the timeout fails the request with ``TIMEOUT`` (nothing was sent). The cap is per
process. ``ksentinel load`` is exempt on purpose: its users send through their own Locust
transport (:mod:`ksentinel.load.transport`), which never takes a token, because a load test's rate
is its profile's arrival model, not a cap (docs/production.md).
"""

from __future__ import annotations

import functools
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, ClassVar, Protocol, runtime_checkable
from urllib.parse import urlsplit

import httpcore
import httpx

from ksentinel.errors import TargetError
from ksentinel.kaltura.redact import redact

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024

#: The name of the flow step the current request belongs to (``upload.chunk``). Flows set it; a
#: transport that reports per-request statistics (Locust's) names each request after it.
STEP_LABEL: ContextVar[str] = ContextVar("ksentinel_step_label", default="")
DEFAULT_TIMEOUT = 30.0


class TransportError(TargetError):
    """The request did not produce a complete HTTP response; ``code`` says why."""

    code: ClassVar[str] = "TRANSPORT"

    def __init__(self, detail: str) -> None:
        super().__init__(f"{self.code}: {detail}")


class TransportTimeout(TransportError):
    code = "TIMEOUT"


class TransportConnectionError(TransportError):
    code = "CONNECTION"


class ResponseTooLarge(TransportError):
    code = "TOO_LARGE"


class TransportProtocolError(TransportError):
    code = "PROTOCOL"


# --- the rate cap ---------------------------------------------------------------------------------


class TokenBucket:
    """A thread-safe token bucket: ``rate`` tokens a second, at most ``burst`` saved up.

    :meth:`reserve` books the next free slot (the balance may go below zero, so callers queue in
    order) and returns how long to wait for it; :meth:`acquire` also sleeps. Over any span of ``T``
    seconds at most ``burst + rate * T`` tokens are granted. ``granted``, ``delayed`` and
    ``waited`` account for what it did.
    """

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError("a token bucket needs a rate > 0")
        self.rate = float(rate)
        self.burst = max(1.0, float(burst))
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._updated = clock()
        self.granted = 0
        self.delayed = 0
        self.waited = 0.0

    def reserve(self, max_wait: float | None = None) -> float | None:
        """Book a token; the seconds until it is due, or ``None`` (nothing booked) past ``max_wait``."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            wait = 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate
            if max_wait is not None and wait > max_wait:
                return None
            self._tokens -= 1.0
            self.granted += 1
            if wait > 0:
                self.delayed += 1
                self.waited += wait
            return wait

    def acquire(self, max_wait: float | None = None) -> float | None:
        """:meth:`reserve` and sleep until the token is due; the seconds waited (``None``: refused)."""
        wait = self.reserve(max_wait)
        if wait:
            self._sleep(wait)
        return wait

    def __repr__(self) -> str:
        return f"TokenBucket(rate={self.rate:g}/s, burst={self.burst:g}, granted={self.granted})"


_limits_lock = threading.Lock()
_limits: dict[str, TokenBucket] = {}


def origin_of(url: str) -> str:
    """``scheme://host:port`` of ``url`` (the default port spelled out), lower case."""
    parts = urlsplit(url)
    scheme = (parts.scheme or "http").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    port = port or (443 if scheme == "https" else 80)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def set_rate_limit(url: str, max_rps: float | None, burst: float = 1.0) -> TokenBucket | None:
    """Cap requests to ``url``'s origin at ``max_rps`` for every transport of this process that has
    no bucket of its own (``None`` removes the cap). An unchanged rate keeps the bucket (and its
    balance); the bucket in force is returned."""
    key = origin_of(url)
    with _limits_lock:
        if max_rps is None:
            _limits.pop(key, None)
            return None
        current = _limits.get(key)
        if current is None or current.rate != float(max_rps) or current.burst != max(1.0, burst):
            current = _limits[key] = TokenBucket(max_rps, burst)
        return current


def rate_limit_for(url: str) -> TokenBucket | None:
    """The bucket registered for ``url``'s origin, if any."""
    with _limits_lock:
        return _limits.get(origin_of(url))


def clear_rate_limits() -> None:
    """Forget every registered cap (tests)."""
    with _limits_lock:
        _limits.clear()


class _FromRegistry:
    def __repr__(self) -> str:
        return "FROM_REGISTRY"


#: :class:`HttpxTransport`'s default: the bucket registered for each request's origin.
FROM_REGISTRY: Any = _FromRegistry()


class Headers(Mapping[str, str]):
    """Immutable HTTP headers with case-insensitive lookup (repeated names joined with ``, ``)."""

    __slots__ = ("_index", "_items")

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        pairs = items.items() if isinstance(items, Mapping) else items
        self._items: tuple[tuple[str, str], ...] = tuple((str(k), str(v)) for k, v in pairs)
        index: dict[str, list[str]] = {}
        for name, value in self._items:
            index.setdefault(name.lower(), []).append(value)
        self._index = {name: ", ".join(values) for name, values in index.items()}

    def __getitem__(self, name: str) -> str:
        return self._index[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._index == {str(k).lower(): v for k, v in other.items()}
        return NotImplemented

    def items_raw(self) -> tuple[tuple[str, str], ...]:
        """The headers as received, in order, names as sent."""
        return self._items

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT

    def __repr__(self) -> str:
        size = "None" if self.body is None else f"<{len(self.body)} bytes>"
        return redact(f"HttpRequest({self.method!r}, {self.url!r}, body={size}, timeout={self.timeout:g})")


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Headers
    body: bytes = field(repr=False)
    elapsed: float


@runtime_checkable
class Transport(Protocol):
    """Anything that turns an :class:`HttpRequest` into an :class:`HttpResponse` or a TransportError."""

    def send(self, request: HttpRequest) -> HttpResponse: ...


# --- the deadline, enforced on every socket operation -------------------------------------------

_state = threading.local()


def _bounded(timeout: float | None, expired: type[Exception]) -> float | None:
    deadline: float | None = getattr(_state, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("total request deadline exceeded")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_tcp(host, port, bounded, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, bounded, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def deadline_client(**client_kwargs: Any) -> httpx.Client:
    """An ``httpx.Client`` whose sockets honour the total deadline :class:`HttpxTransport` sets.

    Redirects are not followed; ``client_kwargs`` go to ``httpx.Client`` (not ``transport``).
    """
    verify = client_kwargs.pop("verify", True)
    if verify is True:  # one verifying context for every client: each would load the CA bundle (~0.8 MB)
        verify = shared_ssl_context()
    transport = httpx.HTTPTransport(retries=0, verify=verify)
    if not install_deadline_backend(transport):  # deadline checked between body chunks only
        logger.warning("cannot install the deadline backend; the total timeout is best effort")
    client_kwargs.setdefault("follow_redirects", False)
    return httpx.Client(transport=transport, **client_kwargs)


@functools.lru_cache(maxsize=1)
def shared_ssl_context() -> ssl.SSLContext:
    """httpx's default verifying TLS context (its CA bundle, ``SSL_CERT_FILE``/``SSL_CERT_DIR``), made
    once: a probe exporter with hundreds of targets holds one, not one per client. A client-side
    context is safe to share between threads once made."""
    return httpx.create_ssl_context()


def install_deadline_backend(transport: httpx.HTTPTransport) -> bool:
    """Wrap the network backend of ``transport``'s connection pool in :class:`_DeadlineBackend`.

    The one reach into httpx's and httpcore's private attributes (``HTTPTransport._pool``,
    ``ConnectionPool._network_backend``): httpx has no public way to give ``HTTPTransport`` a network
    backend, and a per-socket deadline is what bounds a server that trickles its answer. pyproject.toml
    bounds both packages; ``tests/test_transport_internals.py`` fails as soon as an upgrade moves them.
    Returns False (and changes nothing) when the layout is not the expected one.
    """
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if not isinstance(backend, httpcore.NetworkBackend):
        return False
    if not isinstance(backend, _DeadlineBackend):
        pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]
    return True


# --- the transport --------------------------------------------------------------------------------

_PROTOCOL_ERRORS = (
    httpx.ProtocolError,
    httpx.DecodingError,
    httpx.TooManyRedirects,
    httpx.UnsupportedProtocol,
    httpx.InvalidURL,
)


class HttpxTransport:
    """:class:`Transport` over a sync ``httpx.Client``.

    With the default client (:func:`deadline_client`) the total deadline is strict. With a client
    passed in, each socket operation waits at most ``request.timeout`` and the total deadline is only
    checked between body chunks (a server trickling headers can then hold a request longer).
    """

    #: :class:`ksentinel.kaltura.api.KalturaApi` backs off from throttling answers by default over
    #: this transport (the contract suite, the probe); Locust's load transport does not
    backs_off: ClassVar[bool] = True

    def __init__(
        self,
        client: httpx.Client | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        *,
        rate_limit: TokenBucket | None = FROM_REGISTRY,
    ) -> None:
        self._owns_client = client is None
        self._client = client if client is not None else deadline_client()
        self.max_body_bytes = max_body_bytes
        #: this transport's own cap; :data:`FROM_REGISTRY` = each origin's registered one; None = none
        self.rate_limit = rate_limit

    def _bucket(self, url: str) -> TokenBucket | None:
        if self.rate_limit is FROM_REGISTRY:
            return rate_limit_for(url) if _limits else None
        return self.rate_limit

    def send(self, request: HttpRequest) -> HttpResponse:
        what = f"{request.method} {request.url}"
        bucket = self._bucket(request.url)
        if bucket is not None:
            # the wait for a token counts against the request's timeout, not its measured latency
            waited = bucket.acquire(max_wait=request.timeout)
            if waited is None:
                raise TransportTimeout(
                    f"{what}: the rate cap ({bucket.rate:g} requests/s) has no slot within "
                    f"{request.timeout:g}s; not sent"
                )
            if waited:
                request = replace(request, timeout=max(0.05, request.timeout - waited))
        start = time.monotonic()
        previous = getattr(_state, "deadline", None)
        _state.deadline = start + request.timeout
        try:
            return self._send(request, start, what)
        except httpx.TimeoutException as exc:
            raise TransportTimeout(f"{what}: no complete answer within {request.timeout:g}s") from exc
        except _PROTOCOL_ERRORS as exc:
            raise TransportProtocolError(f"{what}: {_reason(exc)}") from exc
        except httpx.TransportError as exc:  # NetworkError, ProxyError
            raise TransportConnectionError(f"{what}: {_reason(exc)}") from exc
        except httpx.HTTPError as exc:
            raise TransportProtocolError(f"{what}: {_reason(exc)}") from exc
        finally:
            _state.deadline = previous

    def _send(self, request: HttpRequest, start: float, what: str) -> HttpResponse:
        deadline = start + request.timeout
        outgoing = self._client.build_request(
            request.method,
            request.url,
            headers=dict(request.headers),
            content=request.body,
            timeout=httpx.Timeout(request.timeout),
        )
        response = self._client.send(outgoing, stream=True, follow_redirects=False)
        try:
            declared = response.headers.get("content-length", "").strip()
            if declared.isdigit() and int(declared) > self.max_body_bytes:
                raise ResponseTooLarge(f"{what}: Content-Length {declared} over {self.max_body_bytes} bytes")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self.max_body_bytes:
                    chunks.clear()  # now: the exception's traceback keeps this frame alive
                    raise ResponseTooLarge(f"{what}: body over {self.max_body_bytes} bytes")
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    chunks.clear()
                    raise TransportTimeout(f"{what}: body not complete within {request.timeout:g}s")
            headers = Headers(response.headers.multi_items())
            return HttpResponse(response.status_code, headers, b"".join(chunks), time.monotonic() - start)
        finally:
            response.close()
            response.stream = _CLOSED  # break response <-> stream cycle

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> HttpxTransport:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


_CLOSED = httpx.ByteStream(b"")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
