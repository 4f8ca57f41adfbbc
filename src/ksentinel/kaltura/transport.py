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
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Protocol, runtime_checkable

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
    transport = httpx.HTTPTransport(retries=0, verify=client_kwargs.pop("verify", True))
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if backend is not None:
        pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]
    else:  # a future httpx/httpcore layout: deadline checked between body chunks only
        logger.warning("cannot install the deadline backend; the total timeout is best effort")
    client_kwargs.setdefault("follow_redirects", False)
    return httpx.Client(transport=transport, **client_kwargs)


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

    def __init__(
        self, client: httpx.Client | None = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    ) -> None:
        self._owns_client = client is None
        self._client = client if client is not None else deadline_client()
        self.max_body_bytes = max_body_bytes

    def send(self, request: HttpRequest) -> HttpResponse:
        what = f"{request.method} {request.url}"
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

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> HttpxTransport:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
