"""A loopback HTTP forward proxy that records every exchange as a HAR 1.2 entry.

Put it in front of a platform and point any client at it::

    with har_recorder(ref.url) as recorder:
        ...                      # call recorder.url as if it were the platform
        recorder.write(tmp / "traffic.har")

Every request (any method, path, query, headers and body) goes upstream as it came, the ``Host``
header included, so the answers name the proxy (download URLs, redirects) as a client behind a real
proxy sees them; a client that uses it as its HTTP proxy (``GET http://host/path``) works too.
Redirects are passed back, never followed. The HAR records the exchange as the client saw it: the
URL is the proxy's own (``http://<the Host the client called>/path?query``, or the absolute URL a
proxy client sent), the response headers are the ones the client got (hop-by-hop headers dropped,
``Content-Length`` set). Timings: ``send`` is reading the request, ``wait`` the upstream exchange,
``receive`` writing the answer; ``blocked``/``dns``/``connect``/``ssl`` are -1.

What a body becomes in the HAR:

- request (``postData``, HAR 1.2 has no encoding field there): a UTF-8 body is ``text`` as sent
  (a URL-encoded form also gets its ``params``, as browsers export it). A ``multipart/form-data``
  body keeps its structure and its text fields, but each part that is not UTF-8 (an uploaded file)
  has its bytes replaced by ``[N bytes of binary content not recorded]``; ``params`` lists the parts
  (``fileName``/``contentType`` for files) and ``comment`` says what was left out. Any other
  non-UTF-8 body is base64 in ``text`` with ``encoding: "base64"``, as in ``content`` (not a HAR
  1.2 field of ``postData``; ``ksentinel check-traffic`` reads it, other readers ignore it).
- response (``content``): UTF-8 text as is; anything else base64 with ``encoding: "base64"``.
- a body larger than ``max_body`` bytes is cut to that size (``comment`` says so); ``size`` and
  ``bodySize`` are always the real sizes.

Recording is thread-safe and bounded: at most ``max_entries`` exchanges are kept (``dropped`` counts
the others, they are still forwarded). Entries are in the order the requests arrived.

``python -m tests.har_recorder UPSTREAM_URL OUT.har`` records until interrupted, then writes the HAR.
"""

from __future__ import annotations

import base64
import contextlib
import email.message
import email.parser
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from tests.loopback import LoopbackProxy

HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "accept-encoding",
        "proxy-connection",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
    }
)
MAX_ENTRIES = 100_000
MAX_BODY = 1024 * 1024
CREATOR = {"name": "ksentinel-tests-har-recorder", "version": "1.0"}


class Recorder(LoopbackProxy):
    """The proxy (``start``/``stop`` or a ``with`` block); ``url`` is where clients call it."""

    def __init__(
        self,
        upstream_url: str,
        *,
        max_entries: int = MAX_ENTRIES,
        max_body: int = MAX_BODY,
        timeout: float = 60.0,
    ) -> None:
        super().__init__(upstream_url, _Handler, name="har-recorder", timeout=timeout)
        self.max_entries = max_entries
        self.max_body = max_body
        self.dropped = 0
        self._entries: list[tuple[int, dict[str, Any]]] = []
        self._sequence = 0
        self._lock = threading.Lock()

    # --- the HAR

    def har(self) -> dict[str, Any]:
        """The HAR 1.2 document of what was recorded so far (a deep copy: free to change)."""
        with self._lock:
            entries = [entry for _, entry in sorted(self._entries, key=lambda pair: pair[0])]
            document = {
                "log": {
                    "version": "1.2",
                    "creator": dict(CREATOR),
                    "pages": [],
                    "entries": entries,
                }
            }
            if self.dropped:
                document["log"]["comment"] = f"{self.dropped} exchanges not recorded (max {self.max_entries})"
            return json.loads(json.dumps(document))

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.har(), indent=1), encoding="utf-8")
        return path

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.dropped = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    # --- requests

    def _ticket(self) -> int:
        with self._lock:
            self._sequence += 1
            return self._sequence

    def handle(self, handler: _Handler) -> None:
        ticket = self._ticket()
        started_wall = datetime.now(UTC)
        started = time.perf_counter()
        body = handler.read_body()
        read = time.perf_counter()
        outgoing = [(k, v) for k, v in handler.headers.items() if k.lower() not in HOP_HEADERS]
        comment = ""
        try:
            response = self._client.request(
                handler.command, self.upstream + _origin_form(handler.path), headers=outgoing, content=body
            )
            status, reason = response.status_code, response.reason_phrase
            headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in HOP_HEADERS]
            content = response.content
        except httpx.HTTPError as exc:
            status, reason = 502, "Bad Gateway"
            headers = [("Content-Type", "text/plain; charset=utf-8")]
            content = f"har_recorder: upstream failed: {type(exc).__name__}: {exc}".encode()
            comment = "the proxy answered: the upstream request failed"
        waited = time.perf_counter()
        sent_headers = [*headers, ("Content-Length", str(len(content)))]
        entry = self._entry(handler, body, started_wall, status, reason, sent_headers, content, comment)
        self._time(entry, started, read, waited, waited)
        # kept before the answer goes out: once a client has its answer, the HAR holds the exchange
        self._keep(ticket, entry)
        try:
            handler.answer(status, reason, sent_headers, content)
        finally:
            with self._lock:
                self._time(entry, started, read, waited, time.perf_counter())

    @staticmethod
    def _time(entry: dict[str, Any], started: float, read: float, waited: float, done: float) -> None:
        entry["timings"] = {
            "blocked": -1,
            "dns": -1,
            "connect": -1,
            "send": _ms(read - started),
            "wait": _ms(waited - read),
            "receive": _ms(done - waited),
            "ssl": -1,
        }
        entry["time"] = _ms(done - started)

    def _keep(self, ticket: int, entry: dict[str, Any]) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self.dropped += 1
            else:
                self._entries.append((ticket, entry))

    def _entry(
        self,
        handler: _Handler,
        body: bytes,
        started: datetime,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        content: bytes,
        comment: str,
    ) -> dict[str, Any]:
        if handler.path.lower().startswith(("http://", "https://")):
            url = handler.path  # absolute-form: the client used us as its HTTP proxy
        else:
            url = f"http://{handler.headers.get('Host') or f'127.0.0.1:{self.port}'}{handler.path}"
        request: dict[str, Any] = {
            "method": handler.command,
            "url": url,
            "httpVersion": handler.request_version,
            "cookies": [],
            "headers": [{"name": k, "value": v} for k, v in handler.headers.items()],
            "queryString": [
                {"name": k, "value": v} for k, v in parse_qsl(urlsplit(url).query, keep_blank_values=True)
            ],
            "headersSize": -1,
            "bodySize": len(body),
        }
        if body or handler.command in ("POST", "PUT", "PATCH"):
            request["postData"] = self._post_data(handler.headers.get("Content-Type", ""), body)
        location = next((v for k, v in headers if k.lower() == "location"), "")
        mime = next((v for k, v in headers if k.lower() == "content-type"), "")
        entry: dict[str, Any] = {
            "startedDateTime": started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "time": 0,
            "request": request,
            "response": {
                "status": status,
                "statusText": reason,
                "httpVersion": "HTTP/1.1",
                "cookies": [],
                "headers": [{"name": k, "value": v} for k, v in headers],
                "content": self._content(mime, content),
                "redirectURL": location,
                "headersSize": -1,
                "bodySize": len(content),
            },
            "cache": {},
            "timings": {},
            "serverIPAddress": "127.0.0.1",
        }
        if comment:
            entry["comment"] = comment
        return entry

    # --- bodies

    def _cut(self, data: bytes) -> tuple[bytes, str]:
        if len(data) <= self.max_body:
            return data, ""
        return data[: self.max_body], f"body cut to its first {self.max_body} of {len(data)} bytes"

    def _content(self, mime: str, data: bytes) -> dict[str, Any]:
        kept, cut = self._cut(data)
        content: dict[str, Any] = {"size": len(data), "mimeType": mime}
        text = _utf8(kept, cut=bool(cut))
        if text is None:
            content["text"] = base64.b64encode(kept).decode("ascii")
            content["encoding"] = "base64"
        else:
            content["text"] = text
        if cut:
            content["comment"] = cut
        return content

    def _post_data(self, mime: str, body: bytes) -> dict[str, Any]:
        post: dict[str, Any] = {"mimeType": mime}
        if "multipart/form-data" in mime.lower():
            multipart = _multipart(mime, body)
            if multipart is not None:
                text, params, omitted = multipart
                kept, cut = self._cut(text.encode("utf-8"))
                post["text"] = kept.decode("utf-8", errors="ignore")
                post["params"] = params
                notes = [f"{omitted} bytes of binary file content not recorded"] if omitted else []
                post["comment"] = "; ".join([*notes, *([cut] if cut else [])])
                if not post["comment"]:
                    del post["comment"]
                return post
        kept, cut = self._cut(body)
        try:
            post["text"] = kept.decode("utf-8")
        except UnicodeDecodeError:
            post["text"] = base64.b64encode(kept).decode("ascii")
            post["encoding"] = "base64"
        if "application/x-www-form-urlencoded" in mime.lower() and "encoding" not in post:
            post["params"] = [
                {"name": k, "value": v} for k, v in parse_qsl(post["text"], keep_blank_values=True)
            ]
        if cut:
            post["comment"] = cut
        return post


def _utf8(data: bytes, *, cut: bool = False) -> str | None:
    """``data`` as UTF-8 text, or None; a cut body may end in the middle of a character."""
    for back in (0, 1, 2, 3) if cut else (0,):
        try:
            return data[: len(data) - back].decode("utf-8")
        except UnicodeDecodeError:
            continue
    return None


def _origin_form(target: str) -> str:
    """``/path?query`` of a request target (a proxy client sends ``http://host/path?query``)."""
    if not target.lower().startswith(("http://", "https://")):
        return target
    parts = urlsplit(target)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _ms(seconds: float) -> float:
    return round(max(0.0, seconds) * 1000, 3)


def _multipart(mime: str, body: bytes) -> tuple[str, list[dict[str, Any]], int] | None:
    """The body with its binary parts' bytes replaced, its parts as HAR params, the bytes left out."""
    kind = email.message.Message()
    kind["Content-Type"] = mime
    boundary = kind.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        return None
    delimiter = ("--" + boundary).encode()
    params: list[dict[str, Any]] = []
    pieces: list[str] = []
    omitted = 0
    for raw in body.split(delimiter)[1:]:
        if raw.startswith(b"--"):  # the closing delimiter
            pieces.append("--" + boundary + raw.decode("utf-8", errors="replace"))
            break
        header_block, separator, payload = raw.partition(b"\r\n\r\n")
        if not separator:
            return None
        ending = b"\r\n" if payload.endswith(b"\r\n") else b""
        data = payload[: len(payload) - len(ending)]
        headers = email.parser.BytesParser().parsebytes(header_block.lstrip(b"\r\n") + b"\r\n\r\n")
        name = headers.get_param("name", header="content-disposition")
        if name is None:
            return None
        param: dict[str, Any] = {"name": str(name)}
        filename = headers.get_param("filename", header="content-disposition")
        if filename is not None:
            param["fileName"] = str(filename)
            param["contentType"] = headers.get("Content-Type", "")
        text = _utf8(data)
        if text is None:
            omitted += len(data)
            text = f"[{len(data)} bytes of binary content not recorded]"
        else:
            param["value"] = text
        params.append(param)
        head = header_block.decode("utf-8", errors="replace")
        pieces.append(f"--{boundary}{head}\r\n\r\n{text}{ending.decode()}")
    return "".join(pieces), params, omitted


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: ThreadingHTTPServer

    def do_GET(self) -> None:
        self.server.owner.handle(self)  # type: ignore[attr-defined]

    do_POST = do_HEAD = do_OPTIONS = do_PUT = do_PATCH = do_DELETE = do_GET

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def answer(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status, reason or None)
        for name, value in headers:
            if name.lower() not in ("date", "server"):
                self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@contextlib.contextmanager
def har_recorder(upstream_url: str, **options: Any) -> Iterator[Recorder]:
    """``with har_recorder(url) as recorder:`` call ``recorder.url``; ``recorder.har()`` / ``write``."""
    with Recorder(upstream_url, **options) as recorder:
        yield recorder


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.har_recorder UPSTREAM_URL OUT.har``: record until interrupted, then write."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("upstream")
    parser.add_argument("out", type=Path)
    parser.add_argument("--max-entries", type=int, default=MAX_ENTRIES)
    parser.add_argument("--max-body", type=int, default=MAX_BODY)
    args = parser.parse_args(argv)
    with Recorder(args.upstream, max_entries=args.max_entries, max_body=args.max_body) as recorder:
        print(recorder.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
        recorder.write(args.out)
        print(f"{len(recorder)} exchanges -> {args.out}", flush=True)


if __name__ == "__main__":
    main()
