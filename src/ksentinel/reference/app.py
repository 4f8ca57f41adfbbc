"""The reference platform's ASGI app: Kaltura's URLs, headers, formats and cache, over Starlette."""

from __future__ import annotations

import asyncio
import functools
import random
import socket
import time
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from ksentinel.reference import faults as fault_lib
from ksentinel.reference import serialize
from ksentinel.reference.apidef import SCHEMA
from ksentinel.reference.cache import hit_marker
from ksentinel.reference.codec import parse_int
from ksentinel.reference.dispatcher import call_action, call_multirequest, needs_worker_thread
from ksentinel.reference.errors import ApiException
from ksentinel.reference.platform import Platform
from ksentinel.reference.request import BodyTooLarge, ParsedRequest, parse
from ksentinel.reference.schema_xml import load_served_schema, render_schema_xml

EXPOSE = "Server, Content-Length, Content-Range, Date, X-Kaltura, X-Kaltura-Session, X-Me"
NO_STORE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, post-check=0, pre-check=0",
    "Expires": "Sun, 19 Nov 2000 08:52:00 GMT",
    "Pragma": "no-cache",
}
SLOW_ACTIONS = frozenset({("baseentry", "list"), ("media", "list")})
BODY_SLACK = 1024 * 1024  # multipart framing and the json part around a chunk
DRAIN_LIMIT = 256 * 1024 * 1024


def _headers(platform: Platform, extra: dict[str, str] | None = None) -> dict[str, str]:
    headers = {
        "X-Me": platform.config.host_name,
        "X-Kaltura-Session": f"{random.randint(0, 2**31 - 1)}, {int(time.time())}",
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Expose-Headers": EXPOSE,
        **NO_STORE,
    }
    if extra:
        headers.update(extra)
    return headers


def _die(platform: Platform, code: str, message: str) -> Response:
    """Kaltura's die-error render: HTTP 200, empty body, the error in headers."""
    return Response(
        b"",
        200,
        headers=_headers(
            platform, {"X-Kaltura": f"error- {code}", "X-Kaltura-App": f"exiting on error {code} - {message}"}
        ),
    )


def _format_of(params: dict[str, Any]) -> int:
    raw = params.get("format")
    return serialize.XML if raw in (None, "") else parse_int(raw)


def create_app(platform: Platform) -> Starlette:
    """The ASGI app serving ``platform``."""
    # serve --schema FILE: that file's bytes as is (read and parsed once, here; ConfigError if unusable)
    served = load_served_schema(platform.config.schema_file) if platform.config.schema_file else None
    schema_xml = served.data if served is not None else render_schema_xml(SCHEMA)
    body_limit = platform.config.max_chunk_bytes + BODY_SLACK

    async def api(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(
                b"",
                200,
                headers={
                    "Access-Control-Allow-Origin": "*",
                    "Access-Control-Allow-Headers": "Origin, X-Requested-With, Content-Type, Accept, Range, Cache-Control",
                    "Access-Control-Allow-Methods": "POST, GET, HEAD, OPTIONS",
                    "Access-Control-Max-Age": "86400",
                },
            )
        number = platform.next_request_number()
        if platform.has("http-500") and number % fault_lib.HTTP_500_EVERY == 0:
            return Response(
                b"<html><body><h1>500 Internal Server Error</h1></body></html>", 500, media_type="text/html"
            )
        started = time.perf_counter()
        try:
            parsed = await parse(request, body_limit)
        except BodyTooLarge:
            # read (and drop) the rest of a moderately oversized body so the client, still sending,
            # gets the answer instead of a reset connection; past DRAIN_LIMIT the connection closes
            await _drain(request, DRAIN_LIMIT)
            parsed = ParsedRequest({k: v for k, v in request.query_params.items()})
            return _respond(platform, request, parsed, started, error=ApiException("UPLOAD_ERROR"))
        return await _dispatch(platform, request, parsed, started)

    async def api_schema(request: Request) -> Response:
        return Response(schema_xml, 200, media_type="text/xml", headers=_headers(platform))

    def content_of(request: Request) -> tuple[dict[str, Any], Any] | None:
        """The entry named by a download URL and its content file (None: 404)."""
        platform.advance_clock()
        pid = parse_int(request.path_params["pid"])
        row = platform.store.get_entry(pid, request.path_params["entry_id"])
        if row is None or row["content_size"] is None:
            return None
        path = platform.store.content_path(row["id"])
        return (row, path) if path.exists() else None

    def other_origin(request: Request) -> str:
        """The download "CDN": the same server under its other loopback name (127.0.0.1 <-> localhost)."""
        url = request.url
        name = (url.hostname or "").strip("[]")
        if name == "localhost":
            bound = str((request.scope.get("server") or ("127.0.0.1", 0))[0])
            host = "[::1]" if bound == "::1" else "127.0.0.1"
        else:  # 127.0.0.1, ::1 or another name of this loopback server
            host = "localhost"
        port = url.port or (request.scope.get("server") or (None, None))[1]
        return f"{url.scheme}://{host}:{port}" if port else f"{url.scheme}://{host}"

    async def download(request: Request) -> Response:
        """playManifest ``format/download``: a 302 to serveFlavor on another origin (realism
        ``download_redirect``, as playManifestAction answers ``DOWNLOAD`` with a redirect to the CDN
        host's serveFlavor URL), or the bytes themselves. No KS is ever put in the URL."""
        found = content_of(request)
        if found is None:
            return Response(b"", 404, headers=_headers(platform))
        row, path = found
        if platform.config.realism.download_redirect:
            pid, entry_id = row["partner_id"], row["id"]
            suffix = (row["content_name"] or "").rpartition(".")[2].lower()
            ext = suffix if suffix.isalnum() and 0 < len(suffix) <= 5 else "mp4"
            location = (
                f"{other_origin(request)}/p/{pid}/sp/{pid}00/serveFlavor/entryId/{entry_id}"
                f"/v/1/flavorId/{entry_id}_0/name/a.{ext}"
            )
            return Response(b"", 302, headers=_headers(platform, {"Location": location}))
        return FileResponse(
            path, media_type="application/octet-stream", filename=row["content_name"] or row["id"]
        )

    async def serve_flavor(request: Request) -> Response:
        """serveFlavor: the content bytes (GET, HEAD; ranges as FileResponse serves them)."""
        found = content_of(request)
        if found is None:
            return Response(b"", 404, headers=_headers(platform))
        row, path = found
        return FileResponse(
            path, media_type="application/octet-stream", filename=row["content_name"] or row["id"]
        )

    routes = [
        Route("/api_v3/api_schema.php", api_schema, methods=["GET", "HEAD"]),
        Route(
            "/p/{pid}/sp/{sp}/playManifest/entryId/{entry_id}/{rest:path}", download, methods=["GET", "HEAD"]
        ),
        Route(
            "/p/{pid}/sp/{sp}/serveFlavor/entryId/{entry_id}/{rest:path}",
            serve_flavor,
            methods=["GET", "HEAD"],
        ),
        Route("/api_v3/{rest:path}", api, methods=["GET", "POST", "OPTIONS", "HEAD"]),
        Route("/api_v3", api, methods=["GET", "POST", "OPTIONS", "HEAD"]),
        Route("/api/{rest:path}", api, methods=["GET", "POST", "OPTIONS", "HEAD"]),
    ]
    return Starlette(routes=routes)


async def _dispatch(platform: Platform, request: Request, parsed: ParsedRequest, started: float) -> Response:
    params = parsed.params
    service = parsed.path_service or params.get("service")
    action = parsed.path_action or params.get("action")
    fmt = _format_of(params)
    if fmt not in serialize.SUPPORTED_FORMATS:
        return _die(
            platform,
            "UNKNOWN_RESPONSE_FORMAT",
            f"Response format provided [{params.get('format')}] is not recognized by server",
        )
    callback = request.query_params.get("callback")
    if fmt == serialize.JSONP and not serialize.valid_callback(callback):
        code = "MANDATORY_PARAMETER_MISSING" if not callback else "INVALID_FIELD_VALUE"
        return _die(platform, code, "callback")
    base_url = f"{request.url.scheme}://{request.headers.get('host') or request.url.netloc}"
    ignore_null = params.get("ignoreNull") in ("1", True)
    # a call that may wait for earlier upload chunks runs in a worker thread, off the event loop
    in_thread = needs_worker_thread(platform, service, action, params)
    if service == "multirequest" or (isinstance(service, str) and service.lower() == "multirequest"):
        if in_thread:
            results, _ = await run_in_threadpool(
                call_multirequest, platform, params, parsed.files, base_url=base_url, fmt=fmt
            )
        else:
            results, _ = call_multirequest(platform, params, parsed.files, base_url=base_url, fmt=fmt)
        body, content_type = serialize.encode(
            results,
            fmt,
            execution_time=time.perf_counter() - started,
            ignore_null=ignore_null,
            multirequest=True,
            callback=callback,
        )
        return Response(body, 200, media_type=content_type, headers=_headers(platform))
    params = {**params, "service": service, "action": action}
    nocache = "nocache" in params
    call = functools.partial(
        call_action,
        platform,
        params,
        parsed.files,
        base_url=base_url,
        fmt=fmt,
        use_cache=not nocache,
        lookup=platform.cache.get,
    )
    outcome = await run_in_threadpool(call) if in_thread else call()
    if (str(service or "").lower(), str(action or "").lower()) in SLOW_ACTIONS and platform.has("slow-list"):
        await asyncio.sleep(fault_lib.SLOW_LIST_SECONDS)
    if outcome.cached is not None:
        hit = outcome.cached
        return Response(
            hit.body,
            200,
            media_type=hit.content_type,
            headers=_headers(
                platform,
                {
                    "X-Kaltura": hit_marker(
                        outcome.cache_key or "", extra_fields=platform.config.realism.cache_extra_fields
                    )
                },
            ),
        )
    if outcome.wrote_partner and not platform.has("stale-cache"):
        platform.cache.invalidate_partner(outcome.wrote_partner)
    body, content_type = serialize.encode(
        outcome.value,
        fmt,
        execution_time=time.perf_counter() - started,
        ignore_null=ignore_null,
        callback=callback,
    )
    extra: dict[str, str] = {}
    if outcome.error is not None:
        if outcome.error.code == "SERVICE_FORBIDDEN":
            extra["X-Kaltura"] = f"error-{outcome.error.code}"
            extra["X-Kaltura-App"] = f"exiting on error {outcome.error.code} - {outcome.error.message}"
    elif outcome.cache_key and not nocache:
        extra["X-Kaltura"] = f"cache-key,{outcome.cache_key}"
        if outcome.cache_ttl > 0 and outcome.cache_partner is not None:
            platform.cache.put(
                outcome.cache_key, body, content_type, outcome.cache_partner, outcome.cache_ttl
            )
    return Response(body, 200, media_type=content_type, headers=_headers(platform, extra))


def _respond(
    platform: Platform, request: Request, parsed: ParsedRequest, started: float, *, error: ApiException
) -> Response:
    fmt = _format_of(parsed.params)
    if fmt not in serialize.SUPPORTED_FORMATS or fmt == serialize.JSONP:
        fmt = serialize.XML
    body, content_type = serialize.encode(
        serialize.plain(error, SCHEMA), fmt, execution_time=time.perf_counter() - started
    )
    return Response(body, 200, media_type=content_type, headers={**_headers(platform), "Connection": "close"})


async def _drain(request: Request, limit: int) -> None:
    """Consume what is left of the request body, up to ``limit`` bytes."""
    drained = 0
    while drained <= limit:
        message = await request.receive()
        if message["type"] != "http.request":
            return
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def host_name() -> str:
    return socket.gethostname()
