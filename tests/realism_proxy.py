"""A loopback HTTP proxy that makes a plain reference platform behave like a real Kaltura.

Each behaviour a real server has (and the plain reference platform lacks) can be switched on on its
own, so a test can show that every flow copes with it, alone or with all the others::

    with realism_proxy(ref.url, lag=1.0, extra_fields=True, redirect=True, echo_ks=True, convert=True) as url:
        ...  # point any client (flows, contract suite, probe CLI) at url

- ``lag`` (seconds, ``lag_jitter`` share either way): the search index. ``baseEntry``/``media``
  ``list`` and ``count`` do not see an entry created, updated (or whose status changed) less than
  the lag ago: the proxy lists the whole match upstream (``pageSize`` 500), drops those entries,
  fixes ``totalCount`` and pages itself; a count is that total. An entry deleted less than the lag
  ago still counts in ``totalCount`` of the lists it was seen in, while missing from ``objects``.
  ``get`` is immediate. Inside a multirequest, a list drops lagging entries from its page.
- ``extra_fields``: cache hits are marked ``cached-with-extra-fields`` instead of ``cached-dispatcher``.
- ``redirect``: a ``playManifest`` download answers 302 to ``localhost`` (the proxy listens on
  ``127.0.0.1``: another host name) whose "CDN" answers once more with a relative redirect, then
  serves the bytes. ``redirect_loop``: the CDN redirects to itself forever.
- ``echo_ks``: ``INVALID_KS`` carries the KS as sent where the reference platform masks it.
- ``convert``: an entry whose content MediaInfo does not recognise as audio or video is
  ``ERROR_CONVERTING`` (-1) instead of READY, in every answer that shows it.

JSON and XML answers (``format`` 1 and 2) are both rewritten. :class:`RealismProxy` keeps counters of
what each behaviour did (``stats``) and the headers every download request carried (``downloads``).
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from ksentinel.kaltura.redact import mask_ks
from tests.loopback import LoopbackProxy

LIST_SERVICES = frozenset({"baseentry", "media"})
WRITE_ACTIONS = frozenset(
    {"add", "addfromuploadedfile", "addcontent", "update", "updatecontent", "delete", "approvereplace"}
)
HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "accept-encoding",
        "proxy-connection",
        "te",
        "upgrade",
    }
)
MAX_PAGE = 500
READY, ERROR_CONVERTING = "2", "-1"


@dataclass(frozen=True)
class Download:
    """One download request the proxy received: which host name, which path, which headers."""

    host: str
    path: str
    headers: dict[str, str]


@dataclass
class _Call:
    """What the proxy understood of one API request."""

    service: str = ""
    action: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    kind: str = "other"  # "json", "form" or "other" (multipart, unparsable: never rewritten)

    @property
    def ks(self) -> str:
        value = self.params.get("ks")
        return value if isinstance(value, str) else ""


# --- one view over JSON and XML answers ------------------------------------------------------------


class _JsonDoc:
    def __init__(self, body: bytes) -> None:
        self.value: Any = json.loads(body)

    def calls(self, multi: bool) -> list[Any]:
        if multi:
            return list(self.value) if isinstance(self.value, list) else []
        return [self.value]

    def entries(self, node: Any) -> Iterator[Any]:
        if isinstance(node, dict):
            kind = node.get("objectType")
            if isinstance(kind, str) and kind.endswith("Entry") and node.get("id"):
                yield node
            for value in node.values():
                yield from self.entries(value)
        elif isinstance(node, list):
            for value in node:
                yield from self.entries(value)

    @staticmethod
    def get(node: Any, key: str) -> str | None:
        value = node.get(key) if isinstance(node, dict) else None
        return None if value is None else str(value)

    @staticmethod
    def set_status(node: Any, value: str) -> None:
        node["status"] = int(value)

    @staticmethod
    def is_list(node: Any) -> bool:
        return isinstance(node, dict) and "totalCount" in node and "objects" in node

    @staticmethod
    def objects(node: Any) -> list[Any]:
        return list(node.get("objects") or [])

    @staticmethod
    def set_objects(node: Any, objects: list[Any], total: int) -> None:
        node["objects"] = objects
        node["totalCount"] = total

    @staticmethod
    def error_code(node: Any) -> str | None:
        if isinstance(node, dict) and node.get("objectType") == "KalturaAPIException":
            return str(node.get("code"))
        return None

    @staticmethod
    def scalar(node: Any) -> str | None:
        return None if isinstance(node, dict | list) or node is None else str(node)

    def set_scalar(self, value: int) -> None:
        self.value = value

    def encode(self) -> bytes:
        return json.dumps(self.value, separators=(",", ":")).encode()


class _XmlDoc:
    def __init__(self, body: bytes) -> None:
        self.root = ET.fromstring(body)
        result = self.root.find("result")
        if self.root.tag != "xml" or result is None:
            raise ValueError("not a Kaltura XML answer")
        self.result = result

    def calls(self, multi: bool) -> list[Any]:
        return list(self.result.iterfind("item")) if multi else [self.result]

    def entries(self, node: ET.Element) -> Iterator[ET.Element]:
        for element in node.iter():
            if (element.findtext("objectType") or "").endswith("Entry") and element.findtext("id"):
                yield element

    @staticmethod
    def get(node: ET.Element, key: str) -> str | None:
        return node.findtext(key)

    @staticmethod
    def set_status(node: ET.Element, value: str) -> None:
        status = node.find("status")
        if status is None:
            status = ET.SubElement(node, "status")
        status.text = value

    @staticmethod
    def is_list(node: ET.Element) -> bool:
        return node.find("objects") is not None and node.find("totalCount") is not None

    @staticmethod
    def objects(node: ET.Element) -> list[ET.Element]:
        holder = node.find("objects")
        return [] if holder is None else list(holder)

    @staticmethod
    def set_objects(node: ET.Element, objects: list[ET.Element], total: int) -> None:
        holder = node.find("objects")
        assert holder is not None
        for child in list(holder):
            holder.remove(child)
        holder.extend(objects)
        holder.text = None
        count = node.find("totalCount")
        assert count is not None
        count.text = str(total)

    @staticmethod
    def error_code(node: ET.Element) -> str | None:
        return node.findtext("error/code") if node.find("objectType") is None else None

    @staticmethod
    def scalar(node: ET.Element) -> str | None:
        return None if len(node) else (node.text or "")

    def set_scalar(self, value: int) -> None:
        self.result.text = str(value)

    def encode(self) -> bytes:
        return ET.tostring(self.root, encoding="utf-8", xml_declaration=True)


def _document(content_type: str, body: bytes) -> _JsonDoc | _XmlDoc | None:
    try:
        if "json" in content_type:
            return _JsonDoc(body)
        if "xml" in content_type:
            return _XmlDoc(body)
    except (ValueError, ET.ParseError):
        return None
    return None


# --- the proxy -----------------------------------------------------------------------------------


class RealismProxy(LoopbackProxy):
    """The proxy server (``start``/``stop`` or a ``with`` block); ``url`` is where clients call it."""

    def __init__(
        self,
        upstream_url: str,
        *,
        lag: float = 0.0,
        lag_jitter: float = 0.0,
        extra_fields: bool = False,
        redirect: bool = False,
        redirect_loop: bool = False,
        echo_ks: bool = False,
        convert: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__(upstream_url, _Handler, name="realism-proxy", timeout=30.0)
        self.lag = lag
        self.lag_jitter = lag_jitter
        self.extra_fields = extra_fields
        self.redirect = redirect or redirect_loop
        self.redirect_loop = redirect_loop
        self.echo_ks = echo_ks
        self.convert = convert
        self.stats: Counter[str] = Counter()
        self.downloads: list[Download] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._visible_at: dict[str, float] = {}  # entry id -> when list/count see its last write
        self._status: dict[str, str] = {}  # entry id -> last status seen
        self._seen_in: dict[str, set[str]] = {}  # entry id -> list queries (signatures) it was in
        self._ghosts: dict[str, tuple[float, frozenset[str]]] = {}  # deleted id -> (until, signatures)
        self._playable: dict[str, bool] = {}
        self._cdn: dict[str, str] = {}  # token -> upstream path of the download

    # --- requests

    def handle(self, handler: _Handler) -> None:
        body = handler.read_body()
        path = handler.path
        host = handler.headers.get("Host", "")
        if path.startswith("/cdn/"):
            return self._cdn_answer(handler, host, path)
        if "/playManifest/" in path and handler.command in ("GET", "HEAD"):
            self._record_download(host, path, handler)
            if self.redirect:
                token = uuid.uuid4().hex
                with self._lock:
                    self._cdn[token] = path
                self.stats["redirects"] += 1
                return handler.answer(302, {"Location": f"http://localhost:{self.port}/cdn/{token}"}, b"")
        if not path.startswith(("/api_v3", "/api/")) or handler.command != "POST":
            status, headers, content = self._forward(handler.command, path, handler.headers, body)
            return handler.answer(status, headers, content)
        call = _parse_call(path, handler.headers.get("Content-Type", ""), body)
        answer = None
        if self.lag > 0 and call.service in LIST_SERVICES and call.action in ("list", "count"):
            answer = self._lagging_list(handler, call, path, body)
        if answer is None:
            answer = self._forward("POST", path, handler.headers, body)
        status, headers, content = self._after(call, *answer)
        handler.answer(status, headers, content)

    def _forward(
        self, method: str, path: str, headers: Any, body: bytes, *, host: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        outgoing = {k: v for k, v in headers.items() if k.lower() not in HOP_HEADERS}
        if host is not None:
            outgoing = {k: v for k, v in outgoing.items() if k.lower() != "host"} | {"Host": host}
        response = self._client.request(method, self.upstream + path, headers=outgoing, content=body)
        answer = {k: v for k, v in response.headers.items() if k.lower() not in HOP_HEADERS}
        return response.status_code, answer, response.content

    # --- downloads: a redirect to another host name, the "CDN"

    def _record_download(self, host: str, path: str, handler: _Handler) -> None:
        with self._lock:
            self.downloads.append(Download(host, path, {k: v for k, v in handler.headers.items()}))

    def _cdn_answer(self, handler: _Handler, host: str, path: str) -> None:
        self._record_download(host, path, handler)
        parts = urlsplit(path)
        token = parts.path.split("/")[2] if len(parts.path.split("/")) > 2 else ""
        with self._lock:
            upstream_path = self._cdn.get(token)
        if upstream_path is None:
            return handler.answer(404, {}, b"")
        if self.redirect_loop:
            hop = int(dict(parse_qsl(parts.query)).get("hop", "0")) + 1
            self.stats["loop_redirects"] += 1
            return handler.answer(302, {"Location": f"/cdn/{token}?hop={hop}"}, b"")  # relative
        if not parts.path.endswith("/bytes"):
            return handler.answer(307, {"Location": f"/cdn/{token}/bytes"}, b"")  # relative
        response = self._client.get(self.upstream + upstream_path)
        self.stats["cdn_served"] += 1
        kind = response.headers.get("Content-Type", "application/octet-stream")
        return handler.answer(response.status_code, {"Content-Type": kind}, response.content)

    # --- the search index lag

    def _visible(self, entry_id: str, now: float) -> bool:
        return self._visible_at.get(entry_id, 0.0) <= now

    def _lag_active(self, now: float) -> bool:
        with self._lock:
            return any(at > now for at in self._visible_at.values()) or any(
                until > now for until, _ in self._ghosts.values()
            )

    def _written(self, entry_id: str, now: float) -> None:
        if self.lag <= 0:
            return
        lag = self.lag * (1 + self._random.uniform(-self.lag_jitter, self.lag_jitter))
        self._visible_at[entry_id] = now + max(0.0, lag)

    def _lagging_list(
        self, handler: _Handler, call: _Call, path: str, body: bytes
    ) -> tuple[int, dict[str, str], bytes] | None:
        """The list/count answer of an index that does not know recent writes yet (None: forward)."""
        now = time.monotonic()
        if call.kind not in ("json", "form") or not self._lag_active(now):
            return None
        full_path, full_body = _full_list_request(call, path, body)
        status, headers, content = self._forward("POST", full_path, handler.headers, full_body)
        doc = _document(headers.get("content-type", headers.get("Content-Type", "")), content)
        if status != 200 or doc is None:
            return None
        (node,) = doc.calls(False)
        if not doc.is_list(node):
            return None  # an error: let the real request answer it
        signature = _signature(call)
        objects = doc.objects(node)
        ids = [doc.get(o, "id") or "" for o in objects]
        with self._lock:
            for entry_id in ids:
                self._seen_in.setdefault(entry_id, set()).add(signature)
            visible = [o for o, entry_id in zip(objects, ids, strict=True) if self._visible(entry_id, now)]
            ghosts = sum(
                1
                for entry_id, (until, seen) in self._ghosts.items()
                if until > now and signature in seen and entry_id not in ids
            )
        hidden = len(objects) - len(visible)
        self.stats["hidden"] += hidden
        self.stats["ghosts"] += ghosts
        upstream_total = int(doc.get(node, "totalCount") or 0)
        total = upstream_total - hidden + ghosts
        if call.action == "count":
            status, headers, content = self._forward("POST", path, handler.headers, body)
            count_doc = _document(headers.get("content-type", headers.get("Content-Type", "")), content)
            if status != 200 or count_doc is None:
                return status, headers, content
            (count_node,) = count_doc.calls(False)
            if count_doc.error_code(count_node) is not None:
                return status, headers, content
            count_doc.set_scalar(total)
            return status, headers, count_doc.encode()
        size, index = _pager(call)
        doc.set_objects(node, visible[(index - 1) * size : index * size], total)
        return status, headers, doc.encode()

    # --- every API answer

    def _after(
        self, call: _Call, status: int, headers: dict[str, str], content: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if self.extra_fields:
            for name, value in list(headers.items()):
                if name.lower() == "x-kaltura" and value.startswith("cached-dispatcher"):
                    headers[name] = "cached-with-extra-fields" + value[len("cached-dispatcher") :]
                    self.stats["extra_fields"] += 1
        if self.echo_ks and call.ks and b"INVALID_KS" in content:
            masked = mask_ks(call.ks).encode()
            if masked in content:
                content = content.replace(masked, call.ks.encode())
                self.stats["echoed_ks"] += 1
        kind = headers.get("content-type", headers.get("Content-Type", ""))
        doc = _document(kind, content) if status == 200 else None
        if doc is None:
            return status, headers, content
        multi = call.service == "multirequest"
        results = doc.calls(multi)
        subcalls = _subcalls(call) if multi else [call]
        now = time.monotonic()
        changed = False
        with self._lock:
            for sub, node in zip(subcalls, results, strict=False):
                changed |= self._track(doc, sub, node, results, now, multi)
        if changed:
            return status, headers, doc.encode()
        return status, headers, content

    def _track(self, doc: Any, sub: _Call, node: Any, results: list[Any], now: float, multi: bool) -> bool:
        """Record writes and statuses of one (sub-)call's answer; rewrite it; True if it changed."""
        changed = False
        if doc.error_code(node) is not None:
            return False
        for entry in doc.entries(node):
            entry_id = doc.get(entry, "id") or ""
            if self.convert and doc.get(entry, "status") == READY and not self._is_playable(doc, entry):
                doc.set_status(entry, ERROR_CONVERTING)
                self.stats["converted_to_error"] += 1
                changed = True
            status = doc.get(entry, "status") or ""
            if self._status.get(entry_id, status) != status:
                self._written(entry_id, now)  # the index learns of a status change late too
            self._status[entry_id] = status
        if sub.service in LIST_SERVICES and sub.action in WRITE_ACTIONS:
            entry_id = _entry_id(sub, results) if sub.action == "delete" else doc.get(node, "id")
            if entry_id and sub.action == "delete":
                self._ghosts[entry_id] = (
                    now + self.lag,
                    frozenset(self._seen_in.pop(entry_id, set())),
                )
                self._visible_at.pop(entry_id, None)
            elif entry_id:
                self._written(entry_id, now)
        if sub.service in LIST_SERVICES and sub.action == "list" and doc.is_list(node):
            objects = doc.objects(node)
            if not multi:
                signature = _signature(sub)
                for item in objects:
                    self._seen_in.setdefault(doc.get(item, "id") or "", set()).add(signature)
            elif self.lag > 0:
                visible = [o for o in objects if self._visible(doc.get(o, "id") or "", now)]
                if len(visible) != len(objects):
                    self.stats["hidden"] += len(objects) - len(visible)
                    total = int(doc.get(node, "totalCount") or 0) - (len(objects) - len(visible))
                    doc.set_objects(node, visible, total)
                    changed = True
        return changed

    def _is_playable(self, doc: Any, entry: Any) -> bool:
        """MediaInfo finds an audio or video track in the entry's content (sniffed once per entry)."""
        entry_id = doc.get(entry, "id") or ""
        if entry_id in self._playable:
            return self._playable[entry_id]
        url = doc.get(entry, "downloadUrl")
        if not url:
            return True  # no content to judge
        from pymediainfo import MediaInfo

        parts = urlsplit(url)
        response = self._client.get(self.upstream + parts.path + (f"?{parts.query}" if parts.query else ""))
        if response.status_code != 200:
            return True  # not ours to judge: the download check will say what is wrong
        info = MediaInfo.parse(io.BytesIO(response.content))
        playable = any(track.track_type in ("Video", "Audio") for track in info.tracks)
        self._playable[entry_id] = playable
        return playable


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: ThreadingHTTPServer

    def do_GET(self) -> None:
        self.server.owner.handle(self)  # type: ignore[attr-defined]

    do_POST = do_HEAD = do_OPTIONS = do_GET

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in HOP_HEADERS and name.lower() not in ("date", "server"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


# --- requests: what the proxy needs to know of them --------------------------------------------------

_PATH = re.compile(r"/api_v3/service/([^/?]+)(?:/action/([^/?]+))?", re.IGNORECASE)


def _parse_call(path: str, content_type: str, body: bytes) -> _Call:
    params: dict[str, Any] = {}
    kind = "other"
    query = dict(parse_qsl(urlsplit(path).query))
    try:
        if "json" in content_type:
            value = json.loads(body or b"{}")
            if isinstance(value, dict):
                params, kind = value, "json"
        elif "x-www-form-urlencoded" in content_type:
            params, kind = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True)), "form"
    except (ValueError, UnicodeDecodeError):
        kind = "other"
    match = _PATH.search(path)
    service = (match.group(1) if match else None) or params.get("service") or query.get("service") or ""
    action = (match.group(2) if match else None) or params.get("action") or query.get("action") or ""
    return _Call(str(service).lower(), str(action).lower(), {**query, **params}, kind)


def _subcalls(call: _Call) -> list[_Call]:
    """The sub-requests of a multirequest, in order (JSON ``{"0": {...}}`` or form ``1:service=``)."""
    if call.kind == "json":
        keys = sorted((k for k in call.params if k.isdigit()), key=int)
        subs = []
        for key in keys:
            sub = call.params[key]
            if isinstance(sub, dict):
                subs.append(
                    _Call(
                        str(sub.get("service", "")).lower(), str(sub.get("action", "")).lower(), sub, "json"
                    )
                )
        return subs
    if call.kind == "form":
        grouped: dict[int, dict[str, Any]] = {}
        for key, value in call.params.items():
            head, _, rest = key.partition(":")
            if head.isdigit() and rest:
                grouped.setdefault(int(head), {})[rest] = value
        return [
            _Call(str(p.get("service", "")).lower(), str(p.get("action", "")).lower(), p, "form")
            for _, p in sorted(grouped.items())
        ]
    return []


def _entry_id(call: _Call, results: list[Any]) -> str | None:
    """``entryId`` of a call, back-references (``{1:result:id}``) resolved against earlier results."""
    value = call.params.get("entryId")
    if not isinstance(value, str):
        return None
    match = re.fullmatch(r"\{(\d+):result:id\}", value)
    if match is None:
        return value
    index = int(match.group(1)) - 1
    if not 0 <= index < len(results):
        return None
    node = results[index]
    if isinstance(node, dict):
        return str(node.get("id") or "") or None
    if isinstance(node, ET.Element):
        return node.findtext("id")
    return None


def _filter_of(call: _Call) -> Any:
    if call.kind == "json":
        return call.params.get("filter")
    return {k: v for k, v in call.params.items() if k.startswith("filter:")}


def _signature(call: _Call) -> str:
    """Which list a query is (the filter, whatever the pager, the KS or the format)."""
    return call.service + " " + json.dumps(_filter_of(call), sort_keys=True, default=str)


def _pager(call: _Call) -> tuple[int, int]:
    if call.kind == "json":
        pager = call.params.get("pager") if isinstance(call.params.get("pager"), dict) else {}
        size, index = pager.get("pageSize"), pager.get("pageIndex")
    else:
        size, index = call.params.get("pager:pageSize"), call.params.get("pager:pageIndex")
    try:
        size = int(size) if size not in (None, "") else 30
    except (TypeError, ValueError):
        size = 30
    try:
        index = int(index) if index not in (None, "") else 1
    except (TypeError, ValueError):
        index = 1
    return (min(MAX_PAGE, size) if size > 0 else 30), max(1, index)


def _full_list_request(call: _Call, path: str, body: bytes) -> tuple[str, bytes]:
    """The same query as ``list`` with one page of 500: everything the index would match."""
    full_pager = {"objectType": "KalturaFilterPager", "pageSize": MAX_PAGE, "pageIndex": 1}
    full_path = re.sub(r"/action/count\b", "/action/list", path, flags=re.IGNORECASE)
    if call.kind == "json":
        params = {**call.params, "pager": full_pager}
        if "action" in params:
            params["action"] = "list"
        return full_path, json.dumps(params).encode()
    params = {k: v for k, v in call.params.items() if not k.startswith("pager:")}
    params.update({f"pager:{k}": str(v) for k, v in full_pager.items()})
    if "action" in params:
        params["action"] = "list"
    return full_path, urlencode(params).encode()


@contextlib.contextmanager
def realism_proxy(upstream_url: str, **behaviours: Any) -> Iterator[str]:
    """``with realism_proxy(url, lag=1.0, extra_fields=True, ...) as proxied_url:`` (see the module)."""
    with RealismProxy(upstream_url, **behaviours) as proxy:
        yield proxy.url


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.realism_proxy UPSTREAM_URL --lag 1 --all``: serve until interrupted."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("upstream")
    parser.add_argument("--lag", type=float, default=0.0)
    parser.add_argument("--lag-jitter", type=float, default=0.0)
    for flag in ("extra-fields", "redirect", "redirect-loop", "echo-ks", "convert"):
        parser.add_argument(f"--{flag}", action="store_true")
    parser.add_argument("--all", action="store_true", help="lag 1 s (unless --lag) and every behaviour")
    args = parser.parse_args(argv)
    on = args.all
    with RealismProxy(
        args.upstream,
        lag=args.lag or (1.0 if on else 0.0),
        lag_jitter=args.lag_jitter,
        extra_fields=args.extra_fields or on,
        redirect=args.redirect or on,
        redirect_loop=args.redirect_loop,
        echo_ks=args.echo_ks or on,
        convert=args.convert or on,
    ) as proxy:
        print(proxy.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
