"""Run the reference platform: in the foreground (``ksentinel serve``) or in a thread (tests, demo)."""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn

from ksentinel.errors import ConfigError, TargetError
from ksentinel.reference.app import create_app
from ksentinel.reference.platform import Platform, PlatformConfig

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
log = logging.getLogger(__name__)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0 picks a free one); loopback only."""
    if host not in LOOPBACK:
        raise ConfigError(f"the reference platform listens on loopback only (127.0.0.1 or ::1), not {host!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP (not 0): asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # accepted sockets inherit it; without it every keep-alive answer stalls ~40 ms (Nagle + delayed ACK)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _uvicorn_config(platform: Platform) -> uvicorn.Config:
    loop = "uvloop"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        loop = "asyncio"
    return uvicorn.Config(
        create_app(platform),
        log_level="warning",
        access_log=False,
        loop=loop,
        http="httptools",
        lifespan="off",
        timeout_keep_alive=30,
        limit_concurrency=4096,
    )


def serve_forever(platform: Platform, sock: socket.socket) -> None:
    """Serve until SIGINT or SIGTERM, then finish in-flight requests and return normally."""
    server = uvicorn.Server(_uvicorn_config(platform))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]

    def stop(signum: int, frame: object) -> None:
        if server.should_exit:  # a second signal: stop waiting for open connections
            server.force_exit = True
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@dataclass
class RunningServer:
    url: str
    platform: Platform


@contextlib.contextmanager
def run_in_thread(
    config: PlatformConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    environ: dict[str, str] | None = None,
    ready_timeout: float = 10.0,
) -> Iterator[RunningServer]:
    """Start the platform in a background thread; stop it (and close its store) on exit."""
    platform = Platform.open(config, environ)
    try:
        sock = bind(host, port)
    except BaseException:
        platform.close()
        raise
    try:
        uv_config = _uvicorn_config(platform)  # builds the app: a bad --schema file raises here
    except BaseException:
        sock.close()
        platform.close()
        raise
    uv_config.loop = "asyncio"
    server = uvicorn.Server(uv_config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="ksentinel-reference", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + ready_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            platform.close()
            raise TargetError("the reference platform did not start")
        time.sleep(0.01)
    try:
        yield RunningServer(url_of(sock), platform)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        platform.close()
