"""Which invalid requests Kaltura must refuse, as opposed to the many it quietly accepts.

schemathesis calls a case *negative* when it breaks the OpenAPI schema, but Kaltura's deserializer
is lenient by design (docs/kaltura-api-v3.md section 1): unknown properties and an ``objectType``
that is not a subclass are ignored, numbers and booleans are cast from strings, a nested object
without ``objectType`` is built as the declared class. What it does refuse, with a validation code:

* a mandatory parameter that is missing, ``null`` or not an object where an object is declared
  (``MISSING_MANDATORY_PARAMETER``);
* a value outside an enum, for parameters and for properties of the objects it builds
  (``INVALID_ENUM_VALUE``).

:func:`expected_rejection` says, for one case as it is about to be sent (after ksentinel's own
edits, which schemathesis revalidates), whether it falls in one of those groups and why.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from schemathesis.core import NotSet

from ksentinel.contract.ks_placement import ks_of
from ksentinel.kaltura.redact import looks_like_ks

if TYPE_CHECKING:
    from schemathesis import Case

_JSON = "application/json"
_MULTIPART = "multipart/form-data"
_INT_TEXT = re.compile(r"^\s*[+-]?\d+\s*$")
_REF = "#/components/schemas/"
# coverage scenarios that deliberately break the request's shape (method, content type): only a
# server error is a finding for them
_SHAPE_PROBES = frozenset({"unspecified_http_method", "malformed_content_type", "unsupported_content_type"})


def request_schema(operation: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """The JSON schema of an operation's parameters and the names of its mandatory file parts."""
    content = (operation.get("requestBody") or {}).get("content") or {}
    if _JSON in content:
        return dict(content[_JSON].get("schema") or {}), set()
    if _MULTIPART in content:
        multipart = content[_MULTIPART].get("schema") or {}
        parts = multipart.get("properties") or {}
        params = dict((parts.get("json") or {}).get("contentSchema") or {})
        files = {name for name in multipart.get("required") or () if name != "json"}
        return params, files
    return {}, set()


def request_params(case: Case) -> tuple[Any, dict[str, Any]]:
    """The parameters a case sends (a dict, or whatever non-object the body is) and its file parts."""
    body = case.body
    if isinstance(body, NotSet) or body is None:
        return {}, {}
    if (case.media_type or "").startswith(_MULTIPART) and isinstance(body, dict):
        files = {k: v for k, v in body.items() if k != "json"}
        part = body.get("json")
        if isinstance(part, bytes):
            part = part.decode("utf-8", "replace")
        if isinstance(part, str):
            try:
                part = json.loads(part)
            except ValueError:
                part = {}
        return (part if part is not None else {}), files
    return body, {}


def expected_rejection(case: Case) -> str | None:
    """Why Kaltura must refuse ``case`` with a validation code, or None when it need not."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative:
        return None
    scenario = getattr(meta.phase.data, "scenario", None)
    if scenario is not None and str(scenario.value) in _SHAPE_PROBES:
        return None
    operation = case.operation.definition.raw
    ks = ks_of(case)
    if ks is not None and not (isinstance(ks, str) and looks_like_ks(ks)):
        return None  # a generated, broken KS: refused with INVALID_KS first
    if operation.get("x-kaltura-session-required") == "always" and not ks:
        return None  # refused for the missing session first; no_success_without_ks judges that
    schema, mandatory_files = request_schema(operation)
    params, files = request_params(case)
    components = (case.operation.schema.raw_schema.get("components") or {}).get("schemas") or {}
    return _missing(schema, mandatory_files, params, files) or _outside_enum(params, schema, components, "")


def _missing(
    schema: dict[str, Any], mandatory_files: set[str], params: Any, files: dict[str, Any]
) -> str | None:
    properties = schema.get("properties") or {}
    for name in schema.get("required") or ():
        value = params.get(name) if isinstance(params, dict) else None
        if value is None:
            return f"mandatory parameter {name!r} missing"
        declared = properties.get(name) or {}
        is_class = "$ref" in declared or (declared.get("type") == "object" and "properties" in declared)
        if is_class and not isinstance(value, dict):
            return f"mandatory parameter {name!r} is not an object"
    for name in sorted(mandatory_files):
        if name not in files:
            return f"mandatory file {name!r} missing"
    return None


def _outside_enum(
    value: Any, schema: Mapping[str, Any], components: Mapping[str, Any], path: str
) -> str | None:
    """The first value outside its enum, reading objects as Kaltura builds them: the class named by
    ``objectType`` when it is one the schema allows there, else the declared class."""
    schema, name = _resolve(schema, components)
    if "discriminator" in schema and isinstance(value, dict):
        mapping = schema["discriminator"].get("mapping") or {}
        sent = value.get("objectType")
        target = (mapping.get(sent) if isinstance(sent, str) else None) or mapping.get(name)
        if target is None:
            return None
        return _outside_enum(value, {"$ref": target}, components, path)
    if isinstance(value, dict):
        for key, item in value.items():
            declared = (schema.get("properties") or {}).get(key)
            if key == "objectType" or not isinstance(declared, dict):
                continue
            found = _outside_enum(item, declared, components, f"{path}.{key}" if path else key)
            if found:
                return found
        return None
    if isinstance(value, list):
        items = schema.get("items")
        if not isinstance(items, dict):
            return None
        for index, item in enumerate(value):
            found = _outside_enum(item, items, components, f"{path}[{index}]")
            if found:
                return found
        return None
    allowed = schema.get("enum")
    if not isinstance(allowed, list) or value is None:
        return None
    is_int = schema.get("type") == "integer"
    if not _enum_accepts(value, allowed, is_int):
        return f"{path}={value!r} is not a {schema.get('x-kaltura-enum', 'declared')} value"
    return None


def _resolve(schema: Mapping[str, Any], components: Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    name = ""
    for _ in range(16):
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith(_REF):
            break
        name = ref[len(_REF) :]
        schema = components.get(name) or {}
    return schema, name


def _enum_accepts(value: Any, allowed: list[Any], is_int: bool) -> bool:
    """Kaltura's reading of an enum value: booleans as 0/1, numbers cast, then compared as text."""
    if isinstance(value, bool):
        value = int(value)
    if is_int and isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "false"):
            value = int(text == "true")
        elif _INT_TEXT.match(value):
            value = int(value)
        else:
            return False
    elif isinstance(value, float) and (is_int or value.is_integer()):
        value = int(value)
    return str(value) in {str(option) for option in allowed}
