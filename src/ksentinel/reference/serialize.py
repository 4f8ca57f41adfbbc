"""Write action results the way Kaltura's serializers do: JSON (1), XML (2), PHP (3) and JSONP (9).

Results are first made *plain* against the schema (objects keep only the properties their class
declares, base class first), then encoded. Faults that corrupt responses act on the plain form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any
from xml.sax.saxutils import escape

from ksentinel.reference.errors import ApiException
from ksentinel.schema.model import Schema

JSON, XML, PHP, JSONP = 1, 2, 3, 9
SUPPORTED_FORMATS = frozenset({JSON, XML, PHP, JSONP})
CONTENT_TYPES = {
    JSON: "application/json",
    XML: "text/xml",
    PHP: "text/plain",
    JSONP: "application/javascript",
}
_CALLBACK = re.compile(r"^[0-9_a-zA-Z.]*$")
_XML_ESCAPES = {'"': "&quot;", "'": "&apos;"}


_INT_TEXT = re.compile(r"^-?[0-9]{1,18}$")


def php_number(value: Any) -> Any:
    """What PHP holds for a value read from an INT column: the number for decimal text.

    The real server casts nothing on the way out (docs/reference-platform.md, "Serialization"), so a
    property declared ``string`` whose column is an INT goes out as a JSON number.
    """
    if isinstance(value, str) and _INT_TEXT.match(value):
        return int(value)
    return value


def error_object(exc: ApiException) -> dict[str, Any]:
    return {
        "code": exc.code,
        "message": exc.message,
        "objectType": "KalturaAPIException",
        "args": [
            {"objectType": "KalturaApiExceptionArg", "name": k, "value": v} for k, v in exc.error_args.items()
        ],
    }


def plain(value: Any, schema: Schema) -> Any:
    """``value`` with every object reduced to its declared properties, in schema order."""
    if isinstance(value, ApiException):
        return error_object(value)
    if isinstance(value, Mapping):
        class_name = value.get("objectType")
        if not isinstance(class_name, str) or class_name not in schema.classes:
            return {str(k): plain(v, schema) for k, v in value.items()}
        out: dict[str, Any] = {"objectType": class_name}
        for prop in schema.properties(class_name):
            if prop.name in value:
                out[prop.name] = plain(value[prop.name], schema)
        return out
    if isinstance(value, list | tuple):
        return [plain(item, schema) for item in value]
    return value


# ---- JSON -----------------------------------------------------------------------------------------
def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get("objectType") == "KalturaAPIException":
            args = {a["name"]: a["value"] for a in value.get("args", [])}
            return {
                "code": value["code"],
                "message": value["message"],
                "objectType": value["objectType"],
                "args": args or [],
            }
        out = {k: _json_ready(v) for k, v in value.items() if k != "objectType" and v is not None}
        if "objectType" in value:
            out["objectType"] = value["objectType"]
        return out
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return value


def encode_json(value: Any) -> str:
    return json.dumps(_json_ready(value), separators=(",", ":")).replace("/", "\\/")


# ---- XML ------------------------------------------------------------------------------------------
def _xml_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return escape(str(value), _XML_ESCAPES)


def _xml_value(value: Any, parts: list[str], ignore_null: bool) -> None:
    if isinstance(value, dict):
        if value.get("objectType") == "KalturaAPIException":
            parts.append("<error>")
            for key in ("code", "message", "objectType"):
                parts.append(f"<{key}>{_xml_text(value[key])}</{key}>")
            parts.append("<args>")
            for arg in value.get("args", []):
                parts.append("<item><objectType>KalturaApiExceptionArg</objectType>")
                parts.append(
                    f"<name>{_xml_text(arg['name'])}</name><value>{_xml_text(arg['value'])}</value></item>"
                )
            parts.append("</args></error>")
            return
        if "objectType" in value:
            parts.append(f"<objectType>{_xml_text(value['objectType'])}</objectType>")
        for key, item in value.items():
            if key == "objectType" or (item is None and ignore_null):
                continue
            parts.append(f"<{key}>")
            _xml_value(item, parts, ignore_null)
            parts.append(f"</{key}>")
        return
    if isinstance(value, list):
        for item in value:
            parts.append("<item>")
            _xml_value(item, parts, ignore_null)
            parts.append("</item>")
        return
    parts.append(_xml_text(value))


def encode_xml(
    value: Any, execution_time: float, *, ignore_null: bool = False, multirequest: bool = False
) -> str:
    parts = ['<?xml version="1.0" encoding="utf-8"?><xml><result>']
    if multirequest:
        for item in value:
            parts.append("<item>")
            _xml_value(item, parts, ignore_null)
            parts.append("</item>")
    else:
        _xml_value(value, parts, ignore_null)
    parts.append(f"</result><executionTime>{execution_time:.6f}</executionTime></xml>")
    return "".join(parts)


# ---- PHP serialize ---------------------------------------------------------------------------------
def _php(value: Any) -> str:
    if value is None:
        return "N;"
    if isinstance(value, bool):
        return f"b:{int(value)};"
    if isinstance(value, int):
        return f"i:{value};"
    if isinstance(value, float):
        return f"d:{value!r};"
    if isinstance(value, str):
        return f's:{len(value.encode("utf-8", "replace"))}:"{value}";'
    if isinstance(value, list):
        body = "".join(f"i:{i};{_php(v)}" for i, v in enumerate(value))
        return f"a:{len(value)}:{{{body}}}"
    if isinstance(value, dict):
        class_name = str(value.get("objectType", "stdClass"))
        if class_name == "KalturaAPIException":
            value = _json_ready(value)
        fields = {k: v for k, v in value.items() if k != "objectType"}
        body = "".join(f"{_php(str(k))}{_php(v)}" for k, v in fields.items())
        return f'O:{len(class_name)}:"{class_name}":{len(fields)}:{{{body}}}'
    return _php(str(value))


# ---- entry point -----------------------------------------------------------------------------------
def encode(
    value: Any,
    fmt: int,
    *,
    execution_time: float = 0.0,
    ignore_null: bool = False,
    multirequest: bool = False,
    callback: str | None = None,
) -> tuple[bytes, str]:
    """Body and content type for a plain ``value`` in format ``fmt`` (one of SUPPORTED_FORMATS)."""
    if fmt == XML:
        text = encode_xml(value, execution_time, ignore_null=ignore_null, multirequest=multirequest)
    elif fmt == PHP:
        text = _php(value)
    elif fmt == JSONP:
        text = f"{callback}({encode_json(value)});"
    else:
        text = encode_json(value)
    return text.encode("utf-8", "replace"), CONTENT_TYPES[fmt]


def valid_callback(callback: str | None) -> bool:
    return bool(callback) and bool(_CALLBACK.match(callback or ""))


PlainHook = Callable[[Any], Any]
