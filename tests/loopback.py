"""A threaded HTTP proxy on a free loopback port in front of an upstream: the life cycle the tests'
proxies share (tests/realism_proxy.py, tests/har_recorder.py); each brings its own handler."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

import httpx


class LoopbackProxy:
    """``start``/``stop`` or a ``with`` block; ``url`` is where clients call it, ``upstream`` where it
    forwards to (with ``_client``, which follows no redirect). Handlers reach the proxy as
    ``self.server.owner``."""

    def __init__(
        self, upstream_url: str, handler: type[BaseHTTPRequestHandler], *, name: str, timeout: float
    ) -> None:
        self.upstream = upstream_url.rstrip("/")
        self._client = httpx.Client(timeout=timeout, follow_redirects=False)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._server.owner = self  # type: ignore[attr-defined]
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._client.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
