"""Where a Kaltura answer departs from its declared result type, or an error from the documented envelope.

A small JSON Schema walker for the shapes :mod:`ksentinel.schema.openapi` emits (``$ref`` into
``#/components/schemas``, ``oneOf`` + ``discriminator`` on ``objectType``, ``anyOf``, ``type``,
``enum``/``const``, ``properties``/``required``/``additionalProperties``, ``items``, ``pattern``).
Length and value bounds (``maxLength``, ``minimum``, ...) are not judged: in Kaltura's schema they
are input validation, and stored data may predate them. An ``objectType`` naming a class the schema
does not declare at all (a plugin's, on a server with more plugins than the schema file) is not judged
either: nothing can judge it. A generic validator reports a subclass mismatch deep inside a list as
"not valid under any of the given schemas"; this one follows ``objectType`` to the one class the server
says it sent, so every problem names its property path (``$.objects[0].createdAt``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from ksentinel.schema import serialization

MAX_PROBLEMS = 20
_REF_PREFIX = "#/components/schemas/"
_CLASS_NAME = re.compile(r"^Kaltura[A-Za-z0-9_]+$")
_TYPES = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def result_schema(operation: Mapping[str, Any]) -> dict[str, Any] | None:
    """The declared result of an operation: the non-exception branch of its JSON 200 response."""
    content = ((operation.get("responses") or {}).get("200") or {}).get("content") or {}
    schema = (content.get("application/json") or {}).get("schema")
    if not isinstance(schema, dict):
        return None
    branches = schema.get("anyOf")
    if not isinstance(branches, list):
        return schema
    for branch in branches:
        if branch.get("$ref") != _REF_PREFIX + "KalturaAPIException":
            return branch
    return None


def problems(instance: Any, schema: Mapping[str, Any], components: Mapping[str, Any]) -> list[str]:
    """Every way ``instance`` breaks ``schema`` (at most :data:`MAX_PROBLEMS`), each ``"$.path: why"``.

    ``instance`` is an answer as decoded from JSON, or from XML by
    :func:`ksentinel.kaltura.wire.xml_value`: it is first read the way a real server writes the
    declared types (:func:`ksentinel.schema.serialization.typed`), so JSON and XML answers of the same
    call are judged alike and only what no real server sends is reported.
    """
    found: list[str] = []
    instance = serialization.typed(instance, schema, components)
    for problem in _Walker(components).walk(instance, schema, "$"):
        found.append(problem)
        if len(found) >= MAX_PROBLEMS:
            break
    return found


class _Walker:
    def __init__(self, components: Mapping[str, Any]) -> None:
        self.components = components

    def resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        return serialization.resolve(schema, self.components)

    def undeclared(self, class_name: str) -> bool:
        """Whether the schema knows nothing of ``class_name``: no component of that name at all."""
        return (
            _CLASS_NAME.match(class_name) is not None
            and class_name not in self.components
            and class_name + ".exact" not in self.components
        )

    def walk(self, value: Any, schema: Mapping[str, Any], path: str) -> Iterator[str]:
        schema = self.resolve(schema)
        if "oneOf" in schema and "discriminator" in schema and isinstance(value, dict):
            yield from self.discriminated(value, schema, path)
            return
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                yield from self.alternatives(value, schema[keyword], path)
                return
        expected = schema.get("type")
        if expected is not None:
            allowed = expected if isinstance(expected, list) else [expected]
            if not any(_TYPES.get(t, lambda v: True)(value) for t in allowed):
                yield f"{path}: {_show(value)} is not of type {' or '.join(allowed)}"
                return
        if "const" in schema and value != schema["const"]:
            yield f"{path}: {_show(value)} is not {_show(schema['const'])}"
            return
        if "enum" in schema and not _in_enum(value, schema["enum"]):
            yield f"{path}: {_show(value)} is not one of the declared values"
            return
        if isinstance(value, str):
            yield from _string(value, schema, path)
        elif isinstance(value, dict):
            yield from self.object(value, schema, path)
        elif isinstance(value, list):
            yield from self.array(value, schema, path)

    def discriminated(self, value: dict[str, Any], schema: Mapping[str, Any], path: str) -> Iterator[str]:
        name = schema["discriminator"].get("propertyName", "objectType")
        mapping = schema["discriminator"].get("mapping") or {}
        chosen = value.get(name)
        if chosen is None:
            yield f"{path}.{name}: missing"
            return
        target = mapping.get(chosen) if isinstance(chosen, str) else None
        if target is None and isinstance(chosen, str) and self.undeclared(chosen):
            # a plugin's class the schema file does not declare (a real server with more plugins
            # than the file sends them): nothing here can judge it, so it is not a finding
            return
        if target is None:
            title = str(schema.get("description", "")).split(" ", 1)[0] or "the declared type"
            yield f"{path}.{name}: {_show(chosen)} is not {title} or one of its subclasses"
            return
        yield from self.walk(value, {"$ref": target}, path)

    def alternatives(self, value: Any, branches: list[Mapping[str, Any]], path: str) -> Iterator[str]:
        outcomes = []
        for branch in branches:
            found = list(self.walk(value, branch, path))
            if not found:
                return
            outcomes.append((branch, found))
        # report the branch whose type fits the value, else the first one
        for branch, found in outcomes:
            expected = self.resolve(branch).get("type")
            if expected is not None and _TYPES.get(str(expected), lambda v: False)(value):
                yield from found
                return
        if outcomes:
            yield from outcomes[0][1]

    def object(self, value: dict[str, Any], schema: Mapping[str, Any], path: str) -> Iterator[str]:
        properties = schema.get("properties") or {}
        declared_class = (properties.get("objectType") or {}).get("const")
        sent_class = value.get("objectType")
        if (
            isinstance(declared_class, str)
            and isinstance(sent_class, str)
            and sent_class != declared_class
            and self.undeclared(sent_class)
        ):
            return  # a subclass the schema file does not know (see discriminated)
        for name in schema.get("required") or ():
            if name not in value:
                yield f"{path}.{name}: missing"
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            where = f"{path}.{key}"
            if key in properties:
                yield from self.walk(item, properties[key], where)
            elif extra is False:
                owner = value.get("objectType", "the declared type")
                yield f"{where}: unexpected property ({owner} declares no {key!r})"
            elif isinstance(extra, dict):
                yield from self.walk(item, extra, where)

    def array(self, value: list[Any], schema: Mapping[str, Any], path: str) -> Iterator[str]:
        if "maxItems" in schema and len(value) > int(schema["maxItems"]):
            yield f"{path}: {len(value)} items, at most {schema['maxItems']} allowed"
        items = schema.get("items")
        if isinstance(items, dict) and items:
            for index, item in enumerate(value):
                yield from self.walk(item, items, f"{path}[{index}]")


def _string(value: str, schema: Mapping[str, Any], path: str) -> Iterator[str]:
    pattern = schema.get("pattern")
    if isinstance(pattern, str) and _compiled(pattern).search(value) is None:
        yield f"{path}: {_show(value)} does not match {pattern}"


def _in_enum(value: Any, allowed: list[Any]) -> bool:
    # JSON Schema equality: 1 == 1.0, but True is not 1
    return any(value == option and isinstance(value, bool) == isinstance(option, bool) for option in allowed)


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error:
        return re.compile("")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def envelope_problems(error: Mapping[str, Any]) -> list[str]:
    """How a KalturaAPIException object departs from the documented envelope."""
    found = [
        f"{key} is not a string"
        for key in ("code", "message", "objectType")
        if not isinstance(error.get(key), str)
    ]
    if isinstance(error.get("code"), str) and not error["code"]:
        found.append("code is empty")
    if "args" not in error:
        found.append("args is missing")
    else:
        args = error["args"]
        if isinstance(args, list):
            if args:
                found.append("args is a non-empty array")
        elif isinstance(args, dict):
            bad = [k for k, v in args.items() if not isinstance(v, str)]
            if bad:
                found.append(f"args values are not strings ({', '.join(sorted(bad)[:3])})")
        else:
            found.append("args is neither an object nor an empty array")
    unexpected = sorted(set(error) - {"code", "message", "objectType", "args"})
    if unexpected:
        found.append(f"unexpected keys {', '.join(unexpected[:3])}")
    return found
