"""Misbehaving HTTP servers on loopback for hostile-target tests.

Each behaviour gets the accepted socket and a stop event; :func:`serve` runs one behaviour on a
free 127.0.0.1 port in a thread and yields the base URL.
"""

from __future__ import annotations

import random
import socket
import socketserver
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


Behaviour = Callable[[socket.socket, threading.Event], None]


@contextmanager
def serve(behaviour: Behaviour) -> Iterator[str]:
    stop = threading.Event()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            with suppress(OSError):
                behaviour(self.request, stop)

    server = _Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_request(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += sock.recv(65536)
    return head


def respond(sock: socket.socket, status: str, body: bytes, *headers: str) -> None:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)


def hang_after_accept(sock: socket.socket, stop: threading.Event) -> None:
    stop.wait(30)


def hang_after_request(sock: socket.socket, stop: threading.Event) -> None:
    read_request(sock)
    stop.wait(30)


def trickle_body(sock: socket.socket, stop: threading.Event) -> None:
    read_request(sock)
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
    while not stop.wait(0.02):
        sock.sendall(b" ")


def trickle_headers(sock: socket.socket, stop: threading.Event) -> None:
    read_request(sock)
    sock.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while not stop.wait(0.02):
        sock.sendall(b"a")


def html_page(sock: socket.socket, stop: threading.Event) -> None:
    read_request(sock)
    respond(
        sock,
        "200 OK",
        b"<!DOCTYPE html><html><body>Welcome to nginx!</body></html>",
        "Content-Type: text/html",
    )


def random_body(sock: socket.socket, stop: threading.Event) -> None:
    read_request(sock)
    respond(sock, "200 OK", random.Random(3).randbytes(4096), "Content-Type: application/json")


def not_http(sock: socket.socket, stop: threading.Event) -> None:
    read_request(sock)
    sock.sendall(random.Random(5).randbytes(2048))


def huge_content_length(sock: socket.socket, stop: threading.Event) -> None:
    read_request(sock)
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2147483648\r\n\r\n" + b"x" * 1024)
    stop.wait(30)


def endless_chunked(sock: socket.socket, stop: threading.Event) -> None:
    read_request(sock)
    sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (65536, b"y" * 65536)
    while not stop.is_set():
        sock.sendall(chunk)


def redirect_loop(sock: socket.socket, stop: threading.Event) -> None:
    while read_request(sock):
        respond(sock, "302 Found", b"", "Location: /api_v3/service/system/action/ping")


def reset(sock: socket.socket, stop: threading.Event) -> None:
    read_request(sock)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def close_without_answer(sock: socket.socket, stop: threading.Event) -> None:
    read_request(sock)


def server_error(sock: socket.socket, stop: threading.Event) -> None:
    read_request(sock)
    respond(sock, "500 Internal Server Error", b"<html>oops</html>", "Content-Type: text/html")


def answer_then_hang(sock: socket.socket, stop: threading.Event) -> None:
    read_request(sock)
    respond(sock, "200 OK", b"true", "Content-Type: application/json")
    read_request(sock)  # the second request arrives on the same kept-alive connection
    stop.wait(30)


BEHAVIOURS: dict[str, Behaviour] = {
    "hang-after-accept": hang_after_accept,
    "hang-after-request": hang_after_request,
    "trickle-body": trickle_body,
    "trickle-headers": trickle_headers,
    "html": html_page,
    "random-bytes": random_body,
    "not-http": not_http,
    "huge-content-length": huge_content_length,
    "endless-chunked": endless_chunked,
    "redirect-loop": redirect_loop,
    "reset": reset,
    "close-without-answer": close_without_answer,
    "http-500": server_error,
    "json-not-kaltura": lambda sock, stop: (
        read_request(sock),
        respond(sock, "200 OK", b'{"hello": "world", "items": [1, 2, 3]}', "Content-Type: application/json"),
    ),
}
