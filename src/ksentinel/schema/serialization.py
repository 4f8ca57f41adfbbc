"""What a real Kaltura server writes for a declared type, and answers re-typed by the declared types.

A Kaltura answer is not typed by its schema. ``KalturaObject::fromObject`` copies what each getter
returns without a cast, and the serializers write what PHP holds (docs/reference-platform.md,
"Serialization", cites the server files). So one declared type arrives in a few shapes, and XML
carries only text. :func:`typed` turns every shape a real server can send into the declared type,
and leaves everything else alone for the response checks to report.

Declared type (``x-kaltura-type``) → what a real server also sends, and how it is read:

- ``int``, ``bigint``: decimal text (``"1048576"``: BIGINT columns, custom data, XML) → that int; a
  whole float (``10.0``) → int; with enum ``KalturaNullableBoolean`` also ``true``/``false`` → 1/0.
- ``float``: numeric text (``"2.5"``) → the number.
- ``bool``: ``0``/``1`` and ``"0"``/``"1"`` (an int column, custom data, XML) → the bool.
- ``string``: a number (PHP held an int or float: ``"conversionQuality": 9851841``, ``"status": 2``
  of a string enum) → its decimal text.
- ``array``: ``""`` (XML has no empty-array form) → ``[]``; ``map``: ``""`` or ``[]`` → ``{}``.
- every type but a plain ``string``: ``""`` (XML's null, an empty custom-data value) → no value.

What stays wrong: an ISO date where ``int`` is declared, ``true`` for a plain ``int``, a renamed or
an undeclared property, an object where a scalar is declared, a JSON ``null`` (the JSON serializer
drops null properties, so a real server never writes one).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final

NULLABLE_BOOLEAN: Final = "KalturaNullableBoolean"
TYPE_KEY: Final = "x-kaltura-type"
ENUM_KEY: Final = "x-kaltura-enum"
_REF_PREFIX = "#/components/schemas/"
_INT_TEXT = re.compile(r"^-?[0-9]{1,19}$")
_NUMBER_TEXT = re.compile(r"^-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$")
_BOOL_FORMS: Final[dict[Any, bool]] = {0: False, 1: True, "0": False, "1": True}
_MAX_DEPTH = 64


class _Absent:
    """A property a real server would have left out (JSON) or written empty (XML)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()


def typed(value: Any, schema: Mapping[str, Any], components: Mapping[str, Any]) -> Any:
    """``value`` (decoded from JSON, or from XML by :func:`ksentinel.kaltura.wire.xml_value`) in the
    declared types of ``schema``, as far as a real server's forms allow; ``None`` for no value."""
    out = _Typer(components).value(value, schema, 0)
    return None if out is ABSENT else out


def scalar(value: Any, declared: str, enum: str | None = None) -> Any:
    """One value of declared scalar type ``declared`` (``int``, ``bigint``, ``float``, ``bool``,
    ``string``) read as a real server can send it; unchanged when no rule applies."""
    if value == "" and isinstance(value, str) and (declared != "string" or enum):
        return ABSENT
    if declared in ("int", "bigint"):
        if isinstance(value, bool):
            return int(value) if enum == NULLABLE_BOOLEAN else value
        if isinstance(value, str) and _INT_TEXT.match(value):
            return int(value)
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        return value
    if declared == "float":
        if isinstance(value, str) and _NUMBER_TEXT.match(value):
            number = float(value)
            return int(number) if _INT_TEXT.match(value) else number
        return value
    if declared == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int | str) and value in _BOOL_FORMS:
            return _BOOL_FORMS[value]
        return value
    if declared == "string":
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float) and math.isfinite(value):
            return str(int(value)) if value.is_integer() else repr(value)
    return value


def resolve(schema: Mapping[str, Any], components: Mapping[str, Any]) -> Mapping[str, Any]:
    """``schema`` with its ``$ref`` chain into ``#/components/schemas`` followed (``{}`` for a ref
    elsewhere; at most 32 hops)."""
    hops = 0
    while "$ref" in schema and hops < 32:
        ref = str(schema["$ref"])
        if not ref.startswith(_REF_PREFIX):
            return {}
        schema = components.get(ref[len(_REF_PREFIX) :], {})
        hops += 1
    return schema


class _Typer:
    def __init__(self, components: Mapping[str, Any]) -> None:
        self.components = components

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        return resolve(schema, self.components)

    def value(self, value: Any, schema: Mapping[str, Any], depth: int) -> Any:
        if depth > _MAX_DEPTH or not isinstance(schema, Mapping):
            return value
        declared = schema.get(TYPE_KEY)
        if declared == "array":
            return self.array(value, schema, depth)
        if declared == "map":
            return self.map(value, schema, depth)
        if isinstance(declared, str) and declared in ("int", "bigint", "float", "bool", "string"):
            return scalar(value, declared, schema.get(ENUM_KEY))
        resolved = self.resolve(schema)
        if resolved is not schema:
            return self.value(value, resolved, depth + 1)
        if isinstance(value, str) and value == "" and _is_object_schema(schema):
            return ABSENT
        if not isinstance(value, dict):
            return value
        if "oneOf" in schema and "discriminator" in schema:
            target = (schema["discriminator"].get("mapping") or {}).get(value.get("objectType"))
            return self.value(value, {"$ref": target}, depth + 1) if isinstance(target, str) else value
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            return value
        out: dict[str, Any] = {}
        for key, item in value.items():
            declared_item = properties.get(key)
            typed_item = self.value(item, declared_item, depth + 1) if declared_item else item
            if typed_item is not ABSENT:
                out[key] = typed_item
        return out

    def array(self, value: Any, schema: Mapping[str, Any], depth: int) -> Any:
        if isinstance(value, str) and value == "":
            return []
        items = schema.get("items")
        if not isinstance(value, list) or not isinstance(items, Mapping) or not items:
            return value
        return [self.value(item, items, depth + 1) for item in value]

    def map(self, value: Any, schema: Mapping[str, Any], depth: int) -> Any:
        if (isinstance(value, str) and value == "") or (isinstance(value, list) and not value):
            return {}
        if not isinstance(value, dict):
            return value
        items = _map_items(schema)
        if not items:
            return value
        return {key: self.value(item, items, depth + 1) for key, item in value.items()}


def _map_items(schema: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for branch in [schema, *(schema.get("anyOf") or ())]:
        extra = branch.get("additionalProperties") if isinstance(branch, Mapping) else None
        if isinstance(extra, Mapping):
            return extra
    return None


def _is_object_schema(schema: Mapping[str, Any]) -> bool:
    return schema.get("type") == "object" or ("oneOf" in schema and "discriminator" in schema)
