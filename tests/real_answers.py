"""Real Kaltura OVP API v3 answers recorded from real servers (``tests/data/real-answers/``).

Each answer is one body file plus its manifest row (origin, licence, how it was taken: see
``SOURCES.md`` there). Helpers here load them, turn them into a HAR 1.2 document (what a client
would have sent, and the recorded answer), and make broken copies for the response checks: one
property value of the wrong type, or one property renamed.

A multirequest's ``request`` is ``{"1": {params of call 1}, ...}`` (numbered from 1), or ``{}`` when
the source did not record the requests; ``calls`` gives each call's service and action in order.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent / "data" / "real-answers"
MANIFEST = DATA_DIR / "manifest.json"
JSON_FORMAT = 1
XML_FORMAT = 2

# properties every Kaltura schema declares as int; the first one found is the one mutated
INT_PROPERTIES = ("createdAt", "updatedAt", "partnerId", "totalCount", "duration")
RENAMED_PROPERTIES = ("updatedAt", "createdAt", "partnerId", "totalCount")


@dataclass(frozen=True)
class RealAnswer:
    file: str
    service: str
    action: str
    format: int
    calls: tuple[dict[str, str], ...] | None
    request: dict[str, Any]
    status: int
    headers: dict[str, str]
    origin: str
    licence: str
    notes: str
    body: str

    @property
    def is_multirequest(self) -> bool:
        return self.calls is not None

    @property
    def mime_type(self) -> str:
        return "application/json" if self.format == JSON_FORMAT else "text/xml"


@dataclass(frozen=True)
class Mutation:
    """A changed copy, and where it changed: ``index`` of the sub-answer (multirequest) or None,
    ``path`` inside that (sub-)result, e.g. ``$.objects[0].createdAt``."""

    answer: RealAnswer
    index: int | None
    path: str
    old: str
    new: str

    @property
    def location(self) -> str:
        return self.path if self.index is None else f"$[{self.index}]{self.path[1:]}"


def load(directory: Path = DATA_DIR) -> list[RealAnswer]:
    rows = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    answers = []
    for row in rows:
        body = (directory / row["file"]).read_bytes().decode("utf-8")
        calls = row.get("calls")
        answers.append(
            RealAnswer(
                file=row["file"],
                service=row["service"],
                action=row["action"],
                format=int(row["format"]),
                calls=None if calls is None else tuple(dict(c) for c in calls),
                request=dict(row.get("request") or {}),
                status=int(row.get("status", 200)),
                headers=dict(row.get("headers") or {}),
                origin=row["origin"],
                licence=row["licence"],
                notes=row.get("notes", ""),
                body=body,
            )
        )
    return answers


# ----------------------------------------------------------------------------- HAR


def _request_body(answer: RealAnswer) -> dict[str, Any]:
    params = {k: v for k, v in answer.request.items() if k != "format"}
    if not answer.is_multirequest:
        return {**params, "format": answer.format}
    body: dict[str, Any] = {}
    for number, call in enumerate(answer.calls or (), start=1):
        own = params.get(str(number)) or {}
        body[str(number)] = {"service": call["service"], "action": call["action"], **own}
    return {**body, "format": answer.format}


def _pairs(mapping: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": str(k), "value": str(v)} for k, v in mapping.items()]


def to_har(answers: list[RealAnswer], base_url: str = "https://www.kaltura.com") -> dict[str, Any]:
    """A HAR 1.2 log: per answer the POST a client would send (params and ``format`` in a JSON
    body, any KS in the body, never in the URL) and the recorded answer."""
    base = base_url.rstrip("/")
    entries = []
    for number, answer in enumerate(answers):
        if answer.is_multirequest:
            url = f"{base}/api_v3/service/multirequest"
        else:
            url = f"{base}/api_v3/service/{answer.service}/action/{answer.action}"
        text = json.dumps(_request_body(answer), separators=(",", ":"))
        size = len(answer.body.encode("utf-8"))
        headers = dict(answer.headers)
        headers.setdefault("Content-Type", answer.mime_type)
        started = datetime(2000, 1, 1, tzinfo=UTC).timestamp() + number
        entries.append(
            {
                "startedDateTime": datetime.fromtimestamp(started, UTC).isoformat().replace("+00:00", "Z"),
                "time": 0,
                "request": {
                    "method": "POST",
                    "url": url,
                    "httpVersion": "HTTP/1.1",
                    "headers": _pairs(
                        {
                            "Content-Type": "application/json",
                            "Accept": "application/json" if answer.format == JSON_FORMAT else "text/xml",
                        }
                    ),
                    "queryString": [],
                    "cookies": [],
                    "headersSize": -1,
                    "bodySize": len(text.encode("utf-8")),
                    "postData": {"mimeType": "application/json", "text": text},
                },
                "response": {
                    "status": answer.status,
                    "statusText": "OK" if answer.status == 200 else "",
                    "httpVersion": "HTTP/1.1",
                    "headers": _pairs(headers),
                    "cookies": [],
                    "content": {"size": size, "mimeType": headers["Content-Type"], "text": answer.body},
                    "redirectURL": "",
                    "headersSize": -1,
                    "bodySize": size,
                },
                "cache": {},
                "timings": {"send": 0, "wait": 0, "receive": 0},
                "comment": f"{answer.file}: {answer.origin}",
            }
        )
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "ksentinel tests (real Kaltura answers)", "version": "1"},
            "entries": entries,
        }
    }


# ----------------------------------------------------------------------------- mutations


def _iso(value: str | int) -> str:
    return datetime.fromtimestamp(int(value), UTC).isoformat().replace("+00:00", "Z")


def _find_json(value: Any, names: tuple[str, ...], path: str, want_int: bool) -> tuple[list[Any], str] | None:
    """The first ``(container keys to it, path)`` of a property named in ``names`` (depth first)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in names and (not want_int or (isinstance(item, int) and not isinstance(item, bool))):
                return [key], f"{path}.{key}"
        for key, item in value.items():
            found = _find_json(item, names, f"{path}.{key}", want_int)
            if found:
                return [key, *found[0]], found[1]
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_json(item, names, f"{path}[{index}]", want_int)
            if found:
                return [index, *found[0]], found[1]
    return None


def _dump_like(value: Any, original: str) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=True)
    return text.replace("/", "\\/") if "\\/" in original else text


def _json_target(
    answer: RealAnswer, names: tuple[str, ...], want_int: bool, skip: frozenset[int]
) -> tuple[Any, list[Any], int | None, str]:
    value = json.loads(answer.body)
    for name in names:  # in order of preference
        if answer.is_multirequest:
            for index, sub in enumerate(value):
                if index in skip or (
                    isinstance(sub, dict) and sub.get("objectType") == "KalturaAPIException"
                ):
                    continue
                found = _find_json(sub, (name,), "$", want_int)
                if found:
                    return value, [index, *found[0]], index, found[1]
        else:
            found = _find_json(value, (name,), "$", want_int)
            if found:
                return value, found[0], None, found[1]
    raise LookupError(f"{answer.file}: none of {names} found")


def _parent(value: Any, keys: list[Any]) -> Any:
    for key in keys[:-1]:
        value = value[key]
    return value


def _xml_result(body: str) -> ET.Element:
    root = ET.fromstring(body.encode("utf-8"))
    result = root.find("result")
    if result is None:
        raise ValueError("XML answer without <result>")
    return result


def _xml_target(answer: RealAnswer, names: tuple[str, ...], numeric: bool) -> tuple[str, int, str, str]:
    """``(tag, occurrence of <tag> in the document, path, text)`` of the first property to change."""
    result = _xml_result(answer.body)
    parents = {child: parent for parent in result.iter() for child in parent}
    for name in names:
        for occurrence, element in enumerate(result.iter(name)):
            text = element.text or ""
            if element is result or (numeric and not re.fullmatch(r"-?\d+", text)):
                continue
            steps = []
            node = element
            while node is not result:
                parent = parents[node]
                if node.tag == "item":
                    steps.append(f"[{list(parent).index(node)}]")
                else:
                    steps.append(f".{node.tag}")
                node = parent
            path = "$" + "".join(reversed(steps))
            if any(s.startswith(".error") for s in steps):
                continue
            return name, occurrence, path, text
    raise LookupError(f"{answer.file}: none of {names} found")


def _xml_replace(body: str, tag: str, occurrence: int, new_tag: str, new_text: str | None) -> str:
    """``body`` with the ``occurrence``-th ``<tag>`` leaf renamed and/or given a new text (None: keep)."""
    pattern = re.compile(rf"<{re.escape(tag)}>([^<]*)</{re.escape(tag)}>|<{re.escape(tag)}\s*/>")
    for count, match in enumerate(pattern.finditer(body)):
        if count == occurrence:
            text = match.group(1) or "" if new_text is None else new_text
            return body[: match.start()] + f"<{new_tag}>{text}</{new_tag}>" + body[match.end() :]
    raise LookupError(f"<{tag}> #{occurrence} not found")


def mutate_type(answer: RealAnswer, *, skip: Collection[int] = ()) -> Mutation:
    """A copy where one int property of the result (``createdAt`` first) holds an ISO date text.

    ``skip``: indexes of multirequest sub-answers to leave alone. Raises LookupError when there is
    no such property.
    """
    if answer.format == JSON_FORMAT:
        value, keys, index, path = _json_target(answer, INT_PROPERTIES, True, frozenset(skip))
        parent = _parent(value, keys)
        old = parent[keys[-1]]
        parent[keys[-1]] = _iso(old)
        body = _dump_like(value, answer.body)
        return Mutation(replace(answer, body=body), index, path, str(old), parent[keys[-1]])
    tag, occurrence, path, text = _xml_target(answer, INT_PROPERTIES, numeric=True)
    new = _iso(text)
    body = _xml_replace(answer.body, tag, occurrence, tag, new)
    return Mutation(replace(answer, body=body), None, path, text, new)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def mutate_rename(answer: RealAnswer, *, skip: Collection[int] = ()) -> Mutation:
    """A copy where one property of the result (``updatedAt`` first) is renamed to snake_case.

    ``skip`` as for :func:`mutate_type`.
    """
    if answer.format == JSON_FORMAT:
        value, keys, index, path = _json_target(answer, RENAMED_PROPERTIES, False, frozenset(skip))
        parent = _parent(value, keys)
        old = keys[-1]
        new = _snake(old)
        renamed = {(new if k == old else k): v for k, v in parent.items()}
        if len(keys) == 1:
            value = renamed
        else:
            _parent(value, keys[:-1])[keys[-2]] = renamed
        body = _dump_like(value, answer.body)
        new_path = path[: -len(old)] + new
        return Mutation(replace(answer, body=body), index, new_path, old, new)
    tag, occurrence, path, _text = _xml_target(answer, RENAMED_PROPERTIES, numeric=False)
    new = _snake(tag)
    body = _xml_replace(answer.body, tag, occurrence, new, None)
    return Mutation(replace(answer, body=body), None, path[: -len(tag)] + new, tag, new)
