"""Turn request parameters into typed action arguments, as Kaltura's request deserializer does.

Input is the merged, nested parameter mapping of one call (values are strings from forms and
query strings, or native JSON values). Output is a dict of argument name -> value where objects are
plain dicts carrying ``objectType``; a property sent as ``name__null`` is present with value ``None``
(explicitly cleared) while an unsent property is absent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ksentinel.reference.errors import ApiException
from ksentinel.schema.model import ActionDef, EnumDef, ParamDef, PropDef, Schema

_INVALID_XML_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
MAX_NESTING = 8


def parse_bool(value: Any) -> bool:
    """PHP-style truthiness with the string ``false`` (any case) as false."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    text = str(value)
    if text.lower() == "false":
        return False
    return text not in ("", "0")


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def parse_int(value: Any) -> int:
    """PHP ``(int)`` cast: leading digits, else 0; saturated to 64 bits as PHP integers are."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        number = int(value) if math.isfinite(value) else 0
    else:
        match = re.match(r"\s*([+-]?\d+)", str(value)[:64])
        number = int(match.group(1)) if match else 0
    return max(INT64_MIN, min(INT64_MAX, number))


def parse_float(value: Any) -> float:
    """A float as PHP would read it; infinities and NaN (which the store cannot keep) become 0."""
    if isinstance(value, (bool, int | float)):
        number = float(value)
    else:
        match = re.match(r"\s*([+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?)", str(value)[:64])
        number = float(match.group(1)) if match else 0.0
    return number if math.isfinite(number) and abs(number) < 2.0**63 else 0.0


def parse_default(literal: str | None, type_name: str) -> Any:
    """The Python value of a schema ``default`` literal."""
    if literal is None or literal == "null":
        return None
    if type_name == "bool":
        return literal == "true"
    if type_name in ("int", "bigint"):
        return parse_int(literal)
    if type_name == "float":
        return parse_float(literal)
    return literal


class Decoder:
    """Decodes the arguments of one action call against a schema."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        # per class / enum lookups derived from the (immutable) schema, built on first use
        self._key_positions: dict[str, dict[str, tuple[int, ...]]] = {}
        self._enum_values: dict[str, frozenset[str]] = {}

    def _positions(self, class_name: str) -> dict[str, tuple[int, ...]]:
        """For each key a sent object may carry (``name``, ``name__null``), the indexes in
        ``schema.properties(class_name)`` of the properties it concerns."""
        positions = self._key_positions.get(class_name)
        if positions is None:
            found: dict[str, list[int]] = {}
            for index, prop in enumerate(self.schema.properties(class_name)):
                found.setdefault(prop.name, []).append(index)
                found.setdefault(f"{prop.name}__null", []).append(index)
            positions = {key: tuple(indexes) for key, indexes in found.items()}
            self._key_positions[class_name] = positions
        return positions

    # ---- scalars ------------------------------------------------------------------------------
    def _string(self, value: Any, where: str) -> str:
        text = value if isinstance(value, str) else _to_text(value)
        # invalid UTF-8 (in JSON: lone surrogates) is stripped, as the server strips it
        text = text.encode("utf-8", "ignore").decode("utf-8")
        if _INVALID_XML_CHARS.search(text):
            raise ApiException("INVALID_PARAMETER_CHAR", where)
        return text

    def _enum(self, raw: Any, enum_name: str, is_int: bool, where: str) -> Any:
        enum = self.schema.enums.get(enum_name)
        if isinstance(raw, bool):
            raw = int(raw)
        if isinstance(raw, str) and raw.lower() in ("true", "false") and is_int:
            raw = 1 if raw.lower() == "true" else 0
        value: Any = parse_int(raw) if is_int else _to_text(raw)
        not_a_number = is_int and isinstance(raw, str) and not re.fullmatch(r"\s*[+-]?\d+\s*", raw)
        if not_a_number or (enum is not None and str(value) not in self._values_of(enum_name, enum)):
            raise ApiException("INVALID_ENUM_VALUE", raw, where, enum_name)
        return value

    def scalar(self, raw: Any, type_name: str, enum_type: str | None, where: str) -> Any:
        if enum_type:
            return self._enum(raw, enum_type, type_name == "int", where)
        if type_name in ("int", "bigint"):
            return parse_int(raw)
        if type_name == "float":
            return parse_float(raw)
        if type_name == "bool":
            return parse_bool(raw)
        return self._string(raw, where)

    def _values_of(self, enum_name: str, enum: EnumDef) -> frozenset[str]:
        values = self._enum_values.get(enum_name)
        if values is None:
            values = self._enum_values[enum_name] = enum.values()
        return values

    # ---- objects ------------------------------------------------------------------------------
    def obj(self, raw: Any, declared: str, mode: str, where: str, depth: int = 0) -> dict[str, Any] | None:
        """Build an object of class ``declared`` (or the subclass named by ``objectType``)."""
        if not isinstance(raw, Mapping):
            return None
        if depth > MAX_NESTING:
            raise ApiException("INVALID_PARAMETER_CHAR", where)
        class_name = declared
        sent_type = raw.get("objectType")
        if (
            isinstance(sent_type, str)
            and sent_type != declared
            and self.schema.is_subclass(sent_type, declared)
        ):
            class_name = sent_type
        cls = self.schema.classes.get(class_name)
        if cls is None or cls.abstract:
            raise ApiException("OBJECT_TYPE_ABSTRACT", class_name)
        result: dict[str, Any] = {"objectType": class_name}
        props = self.schema.properties(class_name)
        positions = self._positions(class_name)
        # only the properties the object mentions, in schema order (the others are skipped anyway)
        mentioned = sorted({index for key in raw for index in positions.get(key, ())})
        for prop in (props[index] for index in mentioned):
            null_key = f"{prop.name}__null"
            if null_key in raw:
                self._check_writable(prop, class_name, mode)
                result[prop.name] = None
                continue
            if prop.name not in raw:
                continue
            value = raw[prop.name]
            self._check_writable(prop, class_name, mode)
            result[prop.name] = self.value(value, prop, mode, f"{where}:{prop.name}", depth + 1)
        return result

    def _check_writable(self, prop: PropDef, class_name: str, mode: str) -> None:
        if mode == "filter":
            return
        if prop.read_only or (mode == "update" and prop.insert_only):
            raise ApiException("PROPERTY_VALIDATION_NOT_UPDATABLE", f"{class_name}::{prop.name}")

    def value(self, raw: Any, prop: PropDef | ParamDef, mode: str, where: str, depth: int = 0) -> Any:
        type_name = prop.type
        if type_name in ("array", "map"):
            items = _as_items(raw)
            item_type = prop.array_type or "string"
            if self.schema.is_class(item_type):
                decoded = [self.obj(item, item_type, mode, where, depth + 1) for item in items]
                return [item for item in decoded if item is not None]
            return [self.scalar(item, item_type, None, where) for item in items]
        if self.schema.is_class(type_name):
            return self.obj(raw, type_name, mode, where, depth)
        if isinstance(raw, Mapping | list):
            raise ApiException("INVALID_PARAMETER_CHAR", where)
        return self.scalar(raw, type_name, prop.enum_type, where)

    # ---- actions ------------------------------------------------------------------------------
    def arguments(
        self, action: ActionDef, params: Mapping[str, Any], files: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The typed arguments of ``action``; raises ``MISSING_MANDATORY_PARAMETER`` and friends."""
        mode = (
            "update"
            if action.name == "update"
            else "filter"
            if action.name in ("list", "count")
            else "insert"
        )
        args: dict[str, Any] = {}
        for param in action.params:
            if param.type == "file":
                if param.name in files:
                    args[param.name] = files[param.name]
                elif param.optional:
                    args[param.name] = None
                else:
                    raise ApiException("MISSING_MANDATORY_PARAMETER", param.name)
                continue
            if f"{param.name}__null" in params:
                args[param.name] = None
                continue
            raw = params.get(param.name)
            if raw is None:
                if not param.optional:
                    raise ApiException("MISSING_MANDATORY_PARAMETER", param.name)
                args[param.name] = parse_default(param.default, param.type)
                continue
            value = self.value(raw, param, mode, param.name)
            if value is None and not param.optional:
                raise ApiException("MISSING_MANDATORY_PARAMETER", param.name)
            args[param.name] = value
        return args


def _to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _as_items(raw: Any) -> list[Any]:
    if isinstance(raw, list):
        return raw
    if isinstance(raw, Mapping):
        if "-" in raw and len(raw) == 1:
            return []
        keyed = [(k, v) for k, v in raw.items() if str(k).lstrip("-").isdigit()]
        return [v for _, v in sorted(keyed, key=lambda kv: int(kv[0]))]
    if raw in ("", None):
        return []
    return [raw]
