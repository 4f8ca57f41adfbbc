"""Kaltura's wire format, without I/O: request encoding and response decoding.

* requests: :func:`json_params` (the JSON body), :func:`flatten` (the ``a:b:0:c=..`` form) and
  :func:`encode_multipart`; :data:`Null` sends ``name__null`` (set the property to null);
* responses: :func:`decode_response` turns a status, headers and body (JSON ``format=1`` or XML
  ``format=2``) into Python values, and every way it can fail into a :class:`KalturaApiError`
  (``HTTP_<status>``, the API's own code, or ``KSENTINEL_BAD_RESPONSE``).

See kaltura-api-v3.md sections 1-2.
"""

from __future__ import annotations

import contextlib
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from enum import Enum
from http import HTTPStatus
from typing import Any, Final

import defusedxml
import defusedxml.ElementTree as SafeET
import httpx

from ksentinel.errors import KalturaApiError

BAD_RESPONSE: Final = "KSENTINEL_BAD_RESPONSE"
API_EXCEPTION: Final = "KalturaAPIException"
FORMAT_JSON: Final = 1
FORMAT_XML: Final = 2

#: ``(filename, data)`` or ``(filename, data, content_type)``
FileSpec = tuple[str, bytes] | tuple[str, bytes, str]


class _NullType:
    """Type of :data:`Null`."""

    _instance: _NullType | None = None

    def __new__(cls) -> _NullType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "Null"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "Null"


Null: Final = _NullType()
"""Send this value to set a parameter or property explicitly to null (``name__null``)."""


# --- requests ----------------------------------------------------------------------------------------


def _scalar(value: Any) -> str:
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float | str):
        return str(value)
    raise TypeError(f"cannot send a {type(value).__name__} as a Kaltura parameter")


def _flatten_into(out: list[tuple[str, str]], name: str, value: Any) -> None:
    if value is None:
        return
    if value is Null:
        out.append((f"{name}__null", ""))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _flatten_into(out, f"{name}:{key}", item)
    elif isinstance(value, list | tuple):
        if not value:
            out.append((f"{name}:-", ""))
        for index, item in enumerate(value):
            _flatten_into(out, f"{name}:{index}", item)
    else:
        out.append((name, _scalar(value)))


_BRACKETS = re.compile(r"\[([^\]]*)\]")
#: deeper keys are cut here: nothing Kaltura declares nests this far
MAX_KEY_DEPTH = 32


def split_key(key: str) -> list[str]:
    """A flattened parameter name as its path: ``a:b:c`` or ``a[b][c]`` -> ``["a", "b", "c"]``."""
    if "[" in key and key.endswith("]"):
        head = key[: key.index("[")]
        return [head, *_BRACKETS.findall(key[len(head) :])][:MAX_KEY_DEPTH]
    return key.split(":")[:MAX_KEY_DEPTH]


def unflatten(pairs: Iterable[tuple[str, Any]], into: dict[str, Any] | None = None) -> dict[str, Any]:
    """The inverse of :func:`flatten`: flat ``a:b=v`` pairs regrouped into nested dicts (later pairs
    win), as the server reads a form or query string."""
    root: dict[str, Any] = {} if into is None else into
    for key, value in pairs:
        parts = split_key(str(key))
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return root


def flatten(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Kaltura's flattened form: ``filter:objectType=..``, ``list:0:prop``, ``list:-``, ``x__null``.

    ``None`` is dropped, :data:`Null` becomes ``name__null`` and booleans ``1``/``0``.
    """
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        _flatten_into(out, str(key), value)
    return out


def _json_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return json_params(value)
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value] if value else {"-": ""}
    if value is Null:
        return None
    if isinstance(value, Enum):
        return value.value
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot send a {type(value).__name__} as a Kaltura parameter")


def json_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with native JSON types: ``None`` dropped, :data:`Null` as ``name__null``,
    an empty list as ``{"-": ""}`` (what the official client sends)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        if value is Null:
            out[f"{key}__null"] = ""
        else:
            out[str(key)] = _json_value(value)
    return out


def encode_multipart(
    fields: Iterable[tuple[str, str]], files: Iterable[tuple[str, FileSpec]]
) -> tuple[str, bytes]:
    """``(content_type, body)`` of a ``multipart/form-data`` request with text fields and file parts.

    httpx's encoder (the text fields first, then the files; HTML5 quoting of names; a random
    boundary), used without sending: the transports send the bytes themselves.
    """
    data: dict[str, list[str]] = {}
    for name, value in fields:
        data.setdefault(name, []).append(value)
    parts = [
        (name, (spec[0], bytes(spec[1]), spec[2] if len(spec) > 2 else "application/octet-stream"))  # type: ignore[misc]
        for name, spec in files
    ]
    request = httpx.Request("POST", "http://multipart.invalid/", data=data, files=parts)
    return request.headers["content-type"], request.read()


# --- responses ---------------------------------------------------------------------------------------

#: only names the refusal of a body the parser found malformed (``<!ENTITY`` inside an element); the
#: guard itself is the parser, which refuses declarations in any encoding
_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_REFUSED = "XML with a DTD or entity declaration refused"


def bad_response(reason: str, *, http_status: int | None = None) -> KalturaApiError:
    """A ``KSENTINEL_BAD_RESPONSE`` error with a one-line ``reason``."""
    return KalturaApiError(BAD_RESPONSE, " ".join(reason.split()), http_status=http_status)


def _snippet(body: bytes, limit: int = 60) -> str:
    text = body[:limit].decode("utf-8", "replace")
    text = "".join(ch if ch.isprintable() else "." for ch in text)
    return repr(text + ("..." if len(body) > limit else ""))


def _error_args(raw: Any) -> dict[str, str]:
    if isinstance(raw, Mapping):
        return {str(k): "" if v is None else str(v) for k, v in raw.items()}
    if isinstance(raw, list):  # [] when empty; tolerate [{"name":..,"value":..}]
        return {
            str(i["name"]): str(i.get("value", "")) for i in raw if isinstance(i, Mapping) and "name" in i
        }
    return {}


def is_json_error(value: Any) -> bool:
    """True for a decoded JSON ``KalturaAPIException`` object."""
    return isinstance(value, Mapping) and value.get("objectType") == API_EXCEPTION


def error_from_json(value: Mapping[str, Any], http_status: int | None = None) -> KalturaApiError:
    code = str(value.get("code") or "UNKNOWN_ERROR")
    return KalturaApiError(
        code, str(value.get("message") or ""), _error_args(value.get("args")), http_status=http_status
    )


def decode_json(body: bytes, *, multirequest: bool = False, http_status: int | None = None) -> Any:
    """The result of a ``format=1`` body; raises the API's error (a multirequest keeps them in place)."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise bad_response(f"not JSON: {_snippet(body)}", http_status=http_status) from None
    if is_json_error(value):
        raise error_from_json(value, http_status)
    if multirequest:
        if not isinstance(value, list):
            reason = f"multirequest answer is a {type(value).__name__}, not a list"
            raise bad_response(reason, http_status=http_status)
        return [error_from_json(v, http_status) if is_json_error(v) else v for v in value]
    if isinstance(value, dict) and not isinstance(value.get("objectType"), str):
        raise bad_response("JSON object without objectType is not a Kaltura value", http_status=http_status)
    return value


def xml_value(element: ET.Element) -> Any:
    """The untyped value of an XML answer element: text, ``{tag: value}``, a list of ``<item>`` or a map.

    Every leaf stays text (``""`` for an empty element): the declared types are applied by
    :func:`ksentinel.schema.serialization.typed`.
    """
    children = list(element)
    if not children:
        return element.text or ""
    if element.find("objectType") is not None or any(c.tag != "item" for c in children):
        return {child.tag: xml_value(child) for child in children}
    if all(item.find("itemKey") is not None for item in children):  # a map
        out: dict[str, Any] = {}
        for item in children:
            value = xml_value(item)
            key = value.pop("itemKey") if isinstance(value, dict) else ""
            out[str(key)] = value
        return out
    return [xml_value(item) for item in children]


def _is_empty(element: ET.Element) -> bool:
    return len(element) == 0 and not (element.text or "").strip()


def _xml_error(element: ET.Element, http_status: int | None) -> KalturaApiError | None:
    error = element.find("error")
    if error is None or element.find("objectType") is not None:
        return None
    return _error_from_xml(error, http_status)


def _error_from_xml(error: ET.Element, http_status: int | None) -> KalturaApiError:
    args: dict[str, str] = {}
    for item in error.iterfind("args/item"):
        args[item.findtext("name") or ""] = item.findtext("value") or ""
    code = error.findtext("code") or "UNKNOWN_ERROR"
    return KalturaApiError(code, error.findtext("message") or "", args, http_status=http_status)


def decode_xml(
    body: bytes, *, multirequest: bool = False, http_status: int | None = None
) -> tuple[Any, float | None]:
    """``(result, executionTime)`` of a ``format=2`` body; DTDs and entity declarations are refused.

    The body is parsed by ``defusedxml`` whatever its encoding (UTF-8, UTF-16 with a BOM or declared):
    the parser itself refuses a DTD, an entity declaration or an external reference before anything is
    expanded, so no byte pattern has to recognise them first.
    """
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException:
        raise bad_response(_REFUSED, http_status=http_status) from None
    except ET.ParseError as exc:
        if _DECLARATION.search(body):  # a declaration where the grammar has no place for one
            raise bad_response(_REFUSED, http_status=http_status) from None
        raise bad_response(f"not XML ({exc}): {_snippet(body)}", http_status=http_status) from None
    except (ValueError, LookupError) as exc:  # e.g. an unknown encoding in the XML declaration
        reason = f"not XML ({type(exc).__name__}: {str(exc)[:100]}): {_snippet(body)}"
        raise bad_response(reason, http_status=http_status) from None
    result = root.find("result") if root.tag == "xml" else None
    if result is None:
        reason = f"XML without the <xml><result> envelope (root <{root.tag[:40]}>)"
        raise bad_response(reason, http_status=http_status)
    try:
        execution_time: float | None = float(root.findtext("executionTime") or "")
    except ValueError:
        execution_time = None
    error = _xml_error(result, http_status)
    if error is not None:
        raise error
    if multirequest:
        items: list[Any] = []
        for item in result.iterfind("item"):
            item_error = _xml_error(item, http_status)
            items.append(item_error or (None if _is_empty(item) else xml_value(item)))
        return items, execution_time
    return (None if _is_empty(result) else xml_value(result)), execution_time


def _header_error(headers: Mapping[str, str]) -> tuple[str, str] | None:
    marker = headers.get("X-Kaltura", "")
    if not marker.startswith("error-"):
        return None
    code = marker[len("error-") :].strip() or "UNKNOWN_ERROR"
    app = headers.get("X-Kaltura-App", "")
    message = app.split(" - ", 1)[1] if " - " in app else "empty body with an X-Kaltura error header"
    return code, message


def _looks_like_html(body: bytes) -> bool:
    head = body.lstrip()[:64].lower()
    return head.startswith((b"<!doctype html", b"<html"))


def decode_response(
    status: int, headers: Mapping[str, str], body: bytes, *, format: int, multirequest: bool = False
) -> tuple[Any, float | None]:
    """``(result, executionTime)`` of an API answer, or a :class:`KalturaApiError` raised.

    ``format`` is the one requested: 1 JSON, 2 XML, anything else is sniffed from the body.
    """
    if status >= 300:
        parts = [f"HTTP {status}"]
        with contextlib.suppress(ValueError):
            parts.append(HTTPStatus(status).phrase)
        if 300 <= status < 400 and headers.get("Location"):
            parts.append(f"to {headers['Location'][:100]}")
        marker = _header_error(headers)
        if marker:
            parts.append(f"({marker[0]})")
        raise KalturaApiError(f"HTTP_{status}", " ".join(parts), http_status=status)
    if not body.strip():
        marker = _header_error(headers)
        if marker:
            raise KalturaApiError(marker[0], marker[1], http_status=status)
        raise bad_response("empty body", http_status=status)
    if _looks_like_html(body):
        raise bad_response(f"an HTML page, not a Kaltura answer: {_snippet(body)}", http_status=status)
    if format == FORMAT_XML or (format != FORMAT_JSON and body.lstrip().startswith(b"<")):
        return decode_xml(body, multirequest=multirequest, http_status=status)
    return decode_json(body, multirequest=multirequest, http_status=status), None
