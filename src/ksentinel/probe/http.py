"""A small HTTP/1.1 server on asyncio streams, enough for Prometheus and orchestrators.

GET and HEAD only, keep-alive, bounded request heads (16 KiB), idle and read timeouts, a cap on
open connections, and every handler failure turned into a 500 without dropping the server. The
probe needs no more than that, and stdlib streams keep the exporter free of a web framework.

Optionally TLS (an ``ssl.SSLContext``; a client that does not complete the handshake in
``READ_TIMEOUT`` is dropped, as is plain HTTP sent to it), a ``guard`` that sees every parsed
request before anything else and may answer it instead (authentication, rate limit: see
``web_config.WebGuard``), and ``headers`` added to every response.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
IDLE_TIMEOUT = 60.0
READ_TIMEOUT = 10.0
MAX_CONNECTIONS = 256
SEND_BUFFER = 2 * 1024 * 1024
TEXT = "text/plain; charset=utf-8"


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
    """``body`` is bytes, or a list of byte strings written one after the other."""

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
        headers: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self.handler = handler
        self.max_connections = max_connections
        self.ssl_context = ssl_context
        self.guard = guard
        self.headers = headers
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        sock.listen(128)
        sock.setblocking(False)
        self._server = await asyncio.start_server(
            self._serve,
            sock=sock,
            limit=MAX_HEAD,
            ssl=self.ssl_context,
            ssl_handshake_timeout=READ_TIMEOUT if self.ssl_context is not None else None,
        )
        bound = sock.getsockname()
        return str(bound[0]), int(bound[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._connections):
            writer.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= self.max_connections:
            await _send(writer, Response.text(503, "too many connections"), keep_alive=False, head=False)
            writer.close()
            return
        self._connections.add(writer)
        sock = writer.get_extra_info("socket")
        if sock is not None:  # a /metrics answer (~0.5 MB for 50 flows) goes to the kernel in one write
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        try:
            while True:
                keep_alive = await self._one(reader, writer)
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except Exception:
            log.exception("HTTP connection failed")
        finally:
            self._connections.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT)
        except asyncio.LimitOverrunError:
            await _send(writer, Response.text(431, "request head too large"), keep_alive=False, head=False)
            return False
        except asyncio.IncompleteReadError:
            return False
        request, version = _parse(head)
        if request is None:
            await _send(writer, Response.text(400, "bad request"), keep_alive=False, head=False)
            return False
        keep_alive = _keep_alive(version, request.headers.get("connection", ""))
        length = request.headers.get("content-length", "0").strip() or "0"
        if not length.isdigit() or int(length) > MAX_BODY or "transfer-encoding" in request.headers:
            await _send(writer, Response.text(413, "request body not accepted"), keep_alive=False, head=False)
            return False
        if int(length):
            await asyncio.wait_for(reader.readexactly(int(length)), READ_TIMEOUT)
        refused = None
        if self.guard is not None:
            try:
                refused = await self.guard(request)
            except Exception:  # never let a request through because the guard broke
                log.exception("request guard failed for %s", request.path)
                refused = Response.text(500, "internal error (see the exporter's log)")
        if refused is not None:
            response = refused
        elif request.method not in ("GET", "HEAD"):
            response = Response.text(405, f"method {request.method} not allowed")
            response.headers["Allow"] = "GET, HEAD"
        else:
            try:
                response = await self.handler(request)
            except Exception:
                log.exception("handler failed for %s", request.path)
                response = Response.text(500, "internal error (see the exporter's log)")
        if self.headers is not None:
            for name, value in self.headers().items():
                response.headers.setdefault(name, value)
        await _send(writer, response, keep_alive=keep_alive, head=request.method == "HEAD")
        return keep_alive


def _parse(head: bytes) -> tuple[Request | None, str]:
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
        if not version.startswith("HTTP/1.") or not target.startswith("/"):
            return None, ""
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep or not name.strip():
                return None, ""
            headers[name.strip().lower()] = value.strip()
        parts = urlsplit(target)
        query = parse_qs(parts.query, keep_blank_values=True, max_num_fields=32)
    except ValueError:
        return None, ""
    return Request(method.upper(), parts.path, query, headers), version


def _keep_alive(version: str, connection: str) -> bool:
    tokens = {t.strip().lower() for t in connection.split(",")}
    if version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


async def _send(writer: asyncio.StreamWriter, response: Response, *, keep_alive: bool, head: bool) -> None:
    reason = HTTPStatus(response.status).phrase if response.status in HTTPStatus._value2member_map_ else ""
    body = response.body if isinstance(response.body, list) else [response.body]
    lines = [
        f"HTTP/1.1 {response.status} {reason}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {sum(len(piece) for piece in body)}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
        *(f"{name}: {value}" for name, value in response.headers.items()),
    ]
    head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    writer.writelines([head_bytes] if head else [head_bytes, *body])
    await writer.drain()
