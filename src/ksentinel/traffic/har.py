"""Read a HAR file (HTTP Archive 1.2, as browsers' devtools, mitmproxy and proxies export it).

:func:`read_har` checks the document and turns each entry into a plain :class:`Exchange`: the
request (method, URL, headers, body bytes or the form ``params`` the exporter listed instead) and
the response (status, headers, body bytes, or ``None`` when the exporter left the content out).
``content.encoding: base64`` is decoded; ``content.text`` is already decompressed in a HAR. Every
limit is bounded: the file size (:data:`MAX_HAR_BYTES`), the number of entries and the bytes of a
body kept for judging (:data:`MAX_BODY_BYTES`; a larger body is marked, not judged).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ksentinel.errors import ConfigError

MAX_HAR_BYTES = 512 * 1024 * 1024
MAX_ENTRIES = 200_000
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_HEADERS = 200


class HarError(ConfigError):
    """The file is not a readable HAR document (one line, exit 2)."""


@dataclass
class Exchange:
    """One recorded request and its answer, as plain values."""

    index: int  # 1-based position in log.entries
    method: str
    url: str
    request_headers: list[tuple[str, str]] = field(default_factory=list)
    request_mime: str = ""
    request_body: bytes | None = None
    #: ``postData.params`` (name, value, is_file) when the exporter listed them
    request_params: list[tuple[str, str, bool]] = field(default_factory=list)
    status: int = 0
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_mime: str = ""
    #: ``None`` when the HAR holds no content for the answer
    response_body: bytes | None = None
    #: why the response body is missing or was not kept (``""`` when it is there)
    body_note: str = ""

    def request_header(self, name: str) -> str:
        return _header(self.request_headers, name)

    def response_header(self, name: str) -> str:
        return _header(self.response_headers, name)


def _header(headers: list[tuple[str, str]], name: str) -> str:
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return ""


def read_har(path: Path, *, max_bytes: int = MAX_HAR_BYTES) -> tuple[list[Exchange], int]:
    """``(exchanges, malformed)``: every well-formed entry, and how many entries were not.

    Raises :class:`HarError` with one line for a missing, oversized, non-JSON or non-HAR file.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise HarError(f"{path}: no such file") from None
    except OSError as exc:
        raise HarError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not path.is_file():
        raise HarError(f"{path}: not a file")
    if size > max_bytes:
        raise HarError(f"{path}: {size} bytes, over the limit of {max_bytes} bytes for a HAR file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise HarError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_har(data, str(path))


def parse_har(data: bytes, name: str = "HAR") -> tuple[list[Exchange], int]:
    """:func:`read_har` on bytes already read."""
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise HarError(f"{name}: not JSON (not UTF-8 text)") from None
    except (ValueError, RecursionError) as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise HarError(f"{name}: not JSON{where}; a HAR file is a JSON document") from None
    log = document.get("log") if isinstance(document, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise HarError(f"{name}: not a HAR file (no log.entries list)")
    if len(entries) > MAX_ENTRIES:
        raise HarError(f"{name}: {len(entries)} entries, over the limit of {MAX_ENTRIES}")
    exchanges: list[Exchange] = []
    malformed = 0
    for index, entry in enumerate(entries, start=1):
        exchange = _exchange(index, entry)
        if exchange is None:
            malformed += 1
        else:
            exchanges.append(exchange)
    return exchanges, malformed


def _exchange(index: int, entry: Any) -> Exchange | None:
    if not isinstance(entry, dict):
        return None
    request, response = entry.get("request"), entry.get("response")
    if not isinstance(request, dict) or not isinstance(request.get("url"), str):
        return None
    exchange = Exchange(
        index=index,
        method=str(request.get("method") or "GET").upper()[:16],
        url=request["url"],
        request_headers=_headers(request.get("headers")),
    )
    post = request.get("postData")
    if isinstance(post, dict):
        exchange.request_mime = str(post.get("mimeType") or "")
        text = post.get("text")
        if isinstance(text, str):
            exchange.request_body = _decode(text, post.get("encoding"))
        exchange.request_params = _params(post.get("params"))
    if not exchange.request_mime:
        exchange.request_mime = exchange.request_header("content-type")
    if isinstance(response, dict):
        _read_response(exchange, response)
    else:
        exchange.body_note = "no response recorded"
    return exchange


def _read_response(exchange: Exchange, response: dict[str, Any]) -> None:
    status = response.get("status")
    if isinstance(status, str) and status.strip().isdigit():
        status = int(status)
    exchange.status = status if isinstance(status, int) and not isinstance(status, bool) else 0
    exchange.response_headers = _headers(response.get("headers"))
    content = response.get("content")
    content = content if isinstance(content, dict) else {}
    exchange.response_mime = str(content.get("mimeType") or exchange.response_header("content-type") or "")
    text = content.get("text")
    if not isinstance(text, str):
        exchange.body_note = "response body not recorded (the HAR was exported without content)"
        return
    if len(text) > MAX_BODY_BYTES * 2:
        exchange.body_note = f"response body over {MAX_BODY_BYTES} bytes, not judged"
        return
    body = _decode(text, content.get("encoding"))
    if body is None:
        exchange.body_note = "response body is not valid base64 (content.encoding)"
    elif len(body) > MAX_BODY_BYTES:
        exchange.body_note = f"response body of {len(body)} bytes, over the {MAX_BODY_BYTES} judged"
    elif _truncated(content.get("size"), len(body)):
        exchange.body_note = f"response body cut in the HAR ({len(body)} of {content['size']} bytes recorded)"
    else:
        exchange.response_body = body


def _truncated(size: Any, recorded: int) -> bool:
    """``content.size`` is the whole decoded body: more than was recorded (a BOM aside) means a cut."""
    return isinstance(size, int) and not isinstance(size, bool) and size > recorded + 3


def _decode(text: str, encoding: Any) -> bytes | None:
    if isinstance(encoding, str) and encoding.lower() == "base64":
        try:
            return base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError):
            return None
    return text.encode("utf-8", "surrogatepass")


def _headers(raw: Any) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if not isinstance(raw, list):
        return out
    for item in raw[:MAX_HEADERS]:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            out.append((item["name"], str(item.get("value") or "")))
    return out


def _params(raw: Any) -> list[tuple[str, str, bool]]:
    out: list[tuple[str, str, bool]] = []
    if not isinstance(raw, list):
        return out
    for item in raw[:10_000]:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            is_file = bool(item.get("fileName"))
            out.append((item["name"], str(item.get("value") or ""), is_file))
    return out
