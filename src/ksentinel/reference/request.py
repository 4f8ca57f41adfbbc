"""Read one HTTP request the way Kaltura's front controller does.

Parameters are merged (later wins): body < uploaded files < query string < path pairs. Flat keys
(``filter:statusEqual``, ``filter[statusEqual]``) are regrouped into nested mappings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from ksentinel.kaltura.wire import unflatten


class BodyTooLarge(Exception):
    """The request body is larger than the server accepts."""


@dataclass
class UploadedFile:
    """A file part, held in memory (chunks are bounded by the server's max chunk size)."""

    filename: str
    content_type: str
    data: bytes


@dataclass
class ParsedRequest:
    params: dict[str, Any]
    files: dict[str, UploadedFile] = field(default_factory=dict)
    path_service: str | None = None
    path_action: str | None = None


def merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overlay`` into ``base``."""
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def path_pairs(segments: list[str]) -> tuple[dict[str, str], str | None, str | None]:
    """Key/value pairs from the path after ``/api_v3`` (``service/S/action/A/ks/K/...``)."""
    pairs: dict[str, str] = {}
    for index in range(0, len(segments) - 1, 2):
        pairs[segments[index]] = segments[index + 1]
    return pairs, pairs.get("service"), pairs.get("action")


async def read_body(request: Request, limit: int) -> bytes:
    announced = request.headers.get("content-length")
    if announced and announced.isdigit() and int(announced) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def parse(request: Request, body_limit: int) -> ParsedRequest:
    """Merged parameters and files of ``request`` (raises ``BodyTooLarge``)."""
    segments = [s for s in request.url.path.split("/") if s]
    # /api_v3/service/..., /api_v3/index.php/service/..., /api/...
    while segments and segments[0] in ("api_v3", "api", "index.php"):
        segments = segments[1:]
    pairs, path_service, path_action = path_pairs(segments)
    params: dict[str, Any] = {}
    files: dict[str, UploadedFile] = {}
    content_type = request.headers.get("content-type", "")
    if request.method in ("POST", "PUT"):
        if content_type.lower().startswith("multipart/form-data"):
            await _read_multipart(request, body_limit, params, files)
        else:
            body = await read_body(request, body_limit)
            _read_simple_body(body, content_type, params)
    merge(params, unflatten(request.query_params.multi_items()))
    merge(params, unflatten((k, v) for k, v in pairs.items() if k not in ("service", "action")))
    return ParsedRequest(params, files, path_service, path_action)


def _read_simple_body(body: bytes, content_type: str, params: dict[str, Any]) -> None:
    text = body.strip()
    if content_type.lower() == "application/json" and text.startswith(b"{") and text.endswith(b"}"):
        try:
            decoded = json.loads(text)
        except (ValueError, RecursionError):
            decoded = None
        if isinstance(decoded, dict):
            merge(params, decoded)
            return
    if body and not content_type.lower().startswith("application/json"):
        from urllib.parse import parse_qsl

        try:
            pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=10_000)
        except ValueError:
            pairs = []
        unflatten(pairs, params)


async def _read_multipart(
    request: Request, limit: int, params: dict[str, Any], files: dict[str, UploadedFile]
) -> None:
    announced = request.headers.get("content-length")
    if announced and announced.isdigit() and int(announced) > limit:
        raise BodyTooLarge
    try:
        form = await request.form(max_files=100, max_fields=10_000, max_part_size=4 * 1024 * 1024)
    except HTTPException:  # malformed multipart: like PHP, carry on without body parameters
        return
    try:
        flat: list[tuple[str, Any]] = []
        json_params: dict[str, Any] | None = None
        total = 0
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read(limit + 1)
                total += len(data)
                if total > limit:
                    raise BodyTooLarge
                files[key] = UploadedFile(value.filename or "", value.content_type or "", data)
            elif key == "json":
                try:
                    decoded = json.loads(value)
                except (ValueError, RecursionError):
                    decoded = None
                if isinstance(decoded, dict):
                    json_params = decoded
            else:
                flat.append((key, value))
        if json_params is not None:
            merge(params, json_params)
        else:
            unflatten(flat, params)
    finally:
        await form.close()
