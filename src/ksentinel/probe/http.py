"""The exporter's HTTP server: one handler behind a small Starlette app on uvicorn, in the caller's loop.

The exporter keeps its own two small types (:class:`Request`, :class:`Response`) and one
``handler``; this module serves it. The ASGI app, outermost first:

1. every response gets ``headers()`` (the web configuration's, e.g. ``X-Content-Type-Options``);
2. a request head over 16 KiB is a 431, a query that does not parse a 400, a request that
   announces a body over 64 KiB a 413 (the connection is closed after each); then the ``guard``
   sees the request (authentication, rate limit: ``web_config.WebGuard``) and may answer it
   instead; then anything but GET and HEAD is a 405 with ``Allow: GET, HEAD``;
3. Starlette's ``GZipMiddleware`` compresses answers of 500 bytes or more when the client accepts
   gzip, as client_python's exposition does (compresslevel 1: level 6 takes ~5x as long and level
   9 ~8x, for 15 to 25 % less); an answer that is already encoded passes as it is: ``/metrics``
   gzips itself, deflating only what changed since the last scrape (``gzip_cache.py``);
4. the handler; an exception in it (or in the guard) is logged and answered with a 500, and the
   server keeps serving.

uvicorn runs it with its h11 protocol: a head still incomplete after 16 KiB is a 400, at most 256
connections (503 beyond), idle keep-alive connections close after 60 s, and a request head must
arrive within 10 s of the connection (or of its first byte) or the connection is closed
(``_protocol()``: uvicorn itself has no such deadline). uvicorn's access log is off and its
error log goes through the project's logging (``uvicorn.error``), without uvicorn's own handlers.
The socket is bound here (port 0 and bind errors behave as for any socket), and uvicorn installs
no signal handlers: the exporter's caller owns them (``probe serve`` stops the exporter on SIGTERM).
With an ``ssl.SSLContext`` it serves TLS from that context, so a certificate reloaded into it is
served from the next handshake on; plain HTTP sent to it is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import h11
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request as StarletteRequest
from starlette.responses import Response as StarletteResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
IDLE_TIMEOUT = 60.0
HEAD_TIMEOUT = 10.0
MAX_CONNECTIONS = 256
MAX_QUERY_FIELDS = 32
#: gzip level: 1 compresses a 1,000-pair /metrics (~8.5 MB) whole in 20-40 ms (see above)
GZIP_LEVEL = 1
GZIP_MINIMUM = 500
SEND_BUFFER = 2 * 1024 * 1024
#: a body in parts goes out in pieces of about this size (``_PartsResponse``)
CHUNK = 1024 * 1024
SHUTDOWN_GRACE = 2.0
TEXT = "text/plain; charset=utf-8"
ALLOWED_METHODS = ("GET", "HEAD")
_REQUEST = "ksentinel.request"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Response:
    """``body`` is bytes, or a list of byte strings sent one after the other."""

    status: int
    body: bytes | list[bytes] = b""
    content_type: str = TEXT
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def text(cls, status: int, text: str) -> Response:
        return cls(status, (text if text.endswith("\n") else text + "\n").encode("utf-8"))


Handler = Callable[[Request], Awaitable[Response]]
#: Sees each request first; returns None to let it through, else the response to send instead.
Guard = Callable[[Request], Awaitable[Response | None]]


class HttpServer:
    """Serve ``handler`` on a listening socket; :meth:`close` stops accepting and closes connections."""

    def __init__(
        self,
        handler: Handler,
        *,
        max_connections: int = MAX_CONNECTIONS,
        ssl_context: ssl.SSLContext | None = None,
        guard: Guard | None = None,
        headers: Callable[[], Mapping[str, str]] | None = None,
        head_timeout: float = HEAD_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
        gzip_level: int = GZIP_LEVEL,
    ) -> None:
        self.handler = handler
        self.max_connections = max_connections
        self.ssl_context = ssl_context
        self.guard = guard
        self.headers = headers
        self.head_timeout = head_timeout
        self.idle_timeout = idle_timeout
        self.app = Starlette(
            routes=[Route("/{path:path}", self._endpoint, methods=list(ALLOWED_METHODS))],
            middleware=[
                Middleware(_Door, server=self),
                Middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM, compresslevel=gzip_level),
            ],
        )
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):  # accepted sockets inherit it: a scrape in few writes
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        try:
            sock.bind((host, port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        config = uvicorn.Config(
            self.app,
            http=_protocol(self.head_timeout),
            ws="none",
            lifespan="off",
            log_config=None,  # uvicorn's loggers propagate to the project's handlers
            access_log=False,
            proxy_headers=False,
            server_header=False,
            limit_concurrency=self.max_connections + 1,  # uvicorn counts the asking connection too
            timeout_keep_alive=self.idle_timeout,  # type: ignore[arg-type]  # a float works
            timeout_graceful_shutdown=SHUTDOWN_GRACE,  # type: ignore[arg-type]
            h11_max_incomplete_event_size=MAX_HEAD,
            backlog=128,
        )
        config.load()
        config.ssl = self.ssl_context  # the guard's context, reloaded in place: not a copy from files
        server = self._server = _Server(config)
        task = self._task = asyncio.get_running_loop().create_task(
            server.serve(sockets=[sock]), name="ksentinel-probe-http"
        )
        listening = asyncio.ensure_future(server.listening.wait())
        await asyncio.wait({task, listening}, return_when=asyncio.FIRST_COMPLETED)
        if not listening.done():
            listening.cancel()
            sock.close()
            task.result()  # raises what stopped uvicorn
            raise OSError(f"the HTTP server on {host}:{port} stopped while starting")
        bound = sock.getsockname()
        return str(bound[0]), int(bound[1])

    async def close(self) -> None:
        server, task = self._server, self._task
        if server is None or task is None:
            return
        server.should_exit = True
        done, _ = await asyncio.wait({task}, timeout=SHUTDOWN_GRACE + 3.0)
        if not done:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        elif not task.cancelled() and task.exception() is not None:
            log.error("the HTTP server stopped with an error", exc_info=task.exception())

    async def _endpoint(self, incoming: StarletteRequest) -> StarletteResponse:
        request: Request = incoming.scope[_REQUEST]
        try:
            response = await self.handler(request)
        except Exception:
            log.exception("handler failed for %s", request.path)
            response = Response.text(500, "internal error (see the exporter's log)")
        return _starlette(response)


class _Door:
    """The ASGI middleware in front of the handler: headers, bad requests, the guard, methods."""

    def __init__(self, app: ASGIApp, server: HttpServer) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        server = self.server
        if server.headers is not None:
            send = _with_headers(send, server.headers())
        if _head_size(scope) > MAX_HEAD:  # h11 bounds a head that trickles in; this one came at once
            await _send(send, _closing(Response.text(431, "request head too large")))
            return
        request = _request(scope)
        if request is None:
            await _send(send, _closing(Response.text(400, "bad request")))
            return
        length = request.headers.get("content-length", "0").strip() or "0"
        if not length.isdigit() or int(length) > MAX_BODY or "transfer-encoding" in request.headers:
            await _send(send, _closing(Response.text(413, "request body not accepted")))
            return
        if server.guard is not None:
            try:
                refusal = await server.guard(request)
            except Exception:  # never let a request through because the guard broke
                log.exception("request guard failed for %s", request.path)
                refusal = Response.text(500, "internal error (see the exporter's log)")
            if refusal is not None:
                await _send(send, refusal)
                return
        if request.method not in ALLOWED_METHODS:
            refused = Response.text(405, f"method {request.method[:20]} not allowed")
            refused.headers["Allow"] = ", ".join(ALLOWED_METHODS)
            await _send(send, refused)
            return
        scope[_REQUEST] = request
        await self.app(scope, receive, send)


def _head_size(scope: Scope) -> int:
    return (
        len(scope["raw_path"])
        + len(scope["query_string"])
        + sum(len(n) + len(v) + 4 for n, v in scope["headers"])
    )


def _closing(response: Response) -> Response:
    response.headers["Connection"] = "close"  # h11 closes the connection after this answer
    return response


def _request(scope: Scope) -> Request | None:
    try:
        query = parse_qs(
            scope["query_string"].decode("latin-1"), keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS
        )
    except ValueError:
        return None
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
    return Request(scope["method"].upper(), scope["path"], query, headers)


def _with_headers(send: Send, extra: Mapping[str, str]) -> Send:
    """``send`` with ``extra`` added to the response's headers (those it sets itself win)."""
    if not extra:
        return send
    encoded = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in extra.items()]

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            headers += [(name, value) for name, value in encoded if name not in present]
            message = {**message, "headers": headers}
        await send(message)

    return sending


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether a request's ``Accept-Encoding`` allows gzip, by the rule ``GZipMiddleware`` applies."""
    return "gzip" in (accept_encoding or "")


def _starlette(response: Response) -> StarletteResponse:
    if isinstance(response.body, list):
        return _PartsResponse(response.body, response.status, response.headers, response.content_type)
    return StarletteResponse(response.body, response.status, response.headers, response.content_type)


def _chunks(parts: list[bytes], size: int) -> Iterator[bytes]:
    """``parts`` joined into pieces of about ``size`` bytes (a part is never split)."""
    batch: list[bytes] = []
    length = 0
    for part in parts:
        batch.append(part)
        length += len(part)
        if length >= size:
            yield b"".join(batch)
            batch, length = [], 0
    if batch:
        yield b"".join(batch)


class _PartsResponse(StarletteResponse):
    """A body given in parts, sent in chunks of :data:`CHUNK` bytes under one ``Content-Length``.

    A 1,000-pair ``/metrics`` is ~8.5 MB in thousands of parts: sent this way it is never joined
    into one string, and uvicorn's flow control paces the chunks to the client's reading.
    """

    def __init__(self, parts: list[bytes], status: int, headers: Mapping[str, str], media_type: str) -> None:
        self.parts = parts
        sized = {**headers, "Content-Length": str(sum(len(part) for part in parts))}
        super().__init__(None, status, sized, media_type)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        previous: bytes | None = None
        for chunk in _chunks(self.parts, CHUNK):
            if previous is not None:
                await send({"type": "http.response.body", "body": previous, "more_body": True})
            previous = chunk
        await send({"type": "http.response.body", "body": previous or b""})


async def _send(send: Send, response: Response) -> None:
    """Answer from the middleware (before routing), as the endpoint would."""
    answer = _starlette(response)
    await send({"type": "http.response.start", "status": answer.status_code, "headers": answer.raw_headers})
    await send({"type": "http.response.body", "body": answer.body})


class _Server(uvicorn.Server):
    """uvicorn's server without signal handling, telling when it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the exporter's caller owns SIGINT/SIGTERM (probe serve: loop.add_signal_handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.listening.set()


def _protocol(head_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a deadline on each request head (``head_timeout`` seconds).

    uvicorn times out idle keep-alive connections but not a connection that sends nothing, or half
    a request head: enough of those would hold every connection slot. The deadline runs from the
    connection and from the first byte of each later request until the head is complete, and closes
    the connection when it passes. This reads uvicorn's ``H11Protocol`` attributes ``conn`` (the
    h11 connection), ``loop`` and ``transport``; tests/test_probe_exporter_http.py fails if they change.
    """

    class _Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._deadline = self.loop.call_later(head_timeout, self._head_timed_out)

        def data_received(self, data: bytes) -> None:
            if self._deadline is None and self.conn.their_state is h11.IDLE:
                self._deadline = self.loop.call_later(head_timeout, self._head_timed_out)
            super().data_received(data)
            if self._deadline is not None and self.conn.their_state is not h11.IDLE:
                self._deadline.cancel()
                self._deadline = None

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            super().connection_lost(exc)

        def _head_timed_out(self) -> None:
            self._deadline = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return _Protocol
