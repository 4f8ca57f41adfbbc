"""A :class:`Schema` as an OpenAPI 3.1 document that schemathesis (4.x) and validators can use.

* One ``POST /api_v3/service/{serviceId}/action/{action}`` per action (literal paths), operationId
  ``service.action``, the query parameter ``format=1`` and, unless the action needs no session, the
  ``ks`` API-key scheme (in the query). The JSON body holds the action's parameters; an action with
  ``file`` parameters takes ``multipart/form-data`` with a ``json`` part and one binary part per file.
* ``200`` is either the declared result or a ``KalturaAPIException`` (Kaltura reports errors with 200).
* Components (``#/components/schemas/...``), names stable and valid as component keys:

  - ``{Class}``: what a value declared as ``Class`` may be on the wire. For a class without
    non-abstract subclasses that is the class itself; otherwise a ``oneOf`` of the concrete schemas
    of every non-abstract class in its subtree with a ``discriminator`` on ``objectType``.
  - ``{Class}.exact``: the concrete schema of a non-abstract class that has non-abstract subclasses.
    A concrete schema lists every property (inherited ones first) and ``objectType`` (``const``,
    required), with ``additionalProperties: false`` when ``strict``.
  - An abstract class with no concrete subclass in the schema, and a class that is referenced but
    not declared (the public OVP file leaves out many plugin classes), get a permissive object that
    only requires an ``objectType`` string (``x-kaltura-abstract`` / ``x-kaltura-undeclared``).
  - ``KalturaAPIException``.

* Component schemas describe values as they are on the wire (docs/kaltura-api-v3.md section 2), which
  is looser than the declared types in two ways only: a string enum also accepts its numeric values
  as JSON integers (``"status": 2``), and ``float`` / ``bigint`` also accept numeric strings
  (``"uploadedFileSize": "1048576"``); a ``map`` also accepts ``[]`` (PHP's empty array). The
  request body's own parameters keep the declared types. Every declared value of an answer also
  names its Kaltura type (``x-kaltura-type``, with ``x-kaltura-enum``): the response checks read an
  answer by the real server's serialization rules first (:mod:`ksentinel.schema.serialization`).
* ``add``-like actions link to the same service's ``get`` / ``update`` / ``delete``: the created
  object's ``id`` goes into the target's id parameter through a link ``requestBody`` that
  schemathesis merges into the generated body.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ksentinel.schema.errors import SchemaError
from ksentinel.schema.model import ActionDef, ClassDef, ParamDef, PropDef, Schema, ServiceDef
from ksentinel.schema.scope import Scope
from ksentinel.schema.serialization import TYPE_KEY

OPENAPI_VERSION = "3.1.0"
EXCEPTION = "KalturaAPIException"
EXACT_SUFFIX = ".exact"
ANY_OBJECT = "KalturaObjectBase"  # the schema's "any object" type
LINK_TARGETS = ("get", "update", "delete")

_REF = "#/components/schemas/"
_COMPONENT_NAME = re.compile(r"^[a-zA-Z0-9.\-_]+$")
_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9_]+$")
_INT_TEXT = re.compile(r"^-?(0|[1-9][0-9]{0,17})$")
_NUMBER_TEXT = re.compile(r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$")
_BIGINT_PATTERN = r"^-?[0-9]+$"
_FLOAT_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
_ADD_LIKE = re.compile(r"^add($|[A-Z])")
_NO_DEFAULT = object()
_WIRE_TYPED = frozenset({"int", "bigint", "float", "bool", "string", "array", "map"})

_JSON = "application/json"
_MULTIPART = "multipart/form-data"


def to_openapi(
    schema: Schema, *, scope: Scope | None = None, server_url: str | None = None, strict: bool = True
) -> dict[str, Any]:
    """The OpenAPI 3.1 document (plain dicts and lists; dump with ``sort_keys=True`` for stable bytes).

    With a ``scope``, only its actions and the classes and enums they reach are written; without one,
    every action and every class. ``x-kaltura-destructive`` follows the scope (default patterns when
    there is none).
    """
    if scope is None:
        return _Converter(schema, Scope(), strict).document(server_url)
    return _Converter(scope.apply(schema), scope, strict).document(server_url)


def component_name(class_name: str) -> str:
    """The component a value declared as ``class_name`` refers to (``{Class}``), checked for validity."""
    if not _COMPONENT_NAME.match(class_name) or class_name.endswith(EXACT_SUFFIX):
        raise SchemaError(f"class name {class_name[:60]!r} cannot be an OpenAPI component name")
    return class_name


class _Converter:
    def __init__(self, schema: Schema, scope: Scope, strict: bool) -> None:
        self.schema = schema
        self.scope = scope
        self.strict = strict
        self.children: dict[str, list[str]] = {}
        for cls in schema.classes.values():
            if cls.base:
                self.children.setdefault(cls.base, []).append(cls.name)
        self._concrete: dict[str, list[str]] = {}
        self.undeclared: set[str] = set()
        names = [service.name.lower() for service in schema.services.values()]
        self._shared_names = {name for name in names if names.count(name) > 1}

    def label(self, service: ServiceDef) -> str:
        """The service part of operationIds: its name, or its id when another service has the same name."""
        return service.id if service.name.lower() in self._shared_names else service.name

    # ----------------------------------------------------------------------------- the document

    def document(self, server_url: str | None) -> dict[str, Any]:
        paths: dict[str, Any] = {}
        tags = []
        for service in sorted(self.schema.services.values(), key=lambda s: s.id):
            self._check_segment(service.id, "service id")
            tags.append({"name": service.name, **_text("description", service.description)})
            for action in sorted(service.actions, key=lambda a: a.name):
                self._check_segment(action.name, f"{service.name} action")
                path = f"/api_v3/service/{service.id}/action/{action.name}"
                paths[path] = {"post": self.operation(service, action)}
        components = self.components()
        doc: dict[str, Any] = {
            "openapi": OPENAPI_VERSION,
            "info": {
                "title": "Kaltura API",
                "version": self.schema.api_version,
                "description": "Generated by ksentinel from the Kaltura API schema (api_schema.php).",
            },
            "x-kaltura-api-version": self.schema.api_version,
            "tags": tags,
            "paths": paths,
            "components": components,
        }
        if server_url:
            doc["servers"] = [{"url": server_url.rstrip("/")}]
        return doc

    def components(self) -> dict[str, Any]:
        schemas: dict[str, Any] = {}
        for name in sorted(self.schema.classes):
            schemas.update(self.class_components(self.schema.classes[name]))
        if EXCEPTION in schemas:
            raise SchemaError(f"the schema declares a class named {EXCEPTION}, which is reserved")
        schemas[EXCEPTION] = self.exception_schema()
        for name in sorted(self.undeclared - set(schemas)):
            schemas[name] = {
                "type": "object",
                "description": f"{name} is referenced by the schema but not declared in it.",
                "properties": {"objectType": {"type": "string"}},
                "required": ["objectType"],
                "x-kaltura-undeclared": True,
            }
        return {
            "schemas": schemas,
            "parameters": {
                "format": {
                    "name": "format",
                    "in": "query",
                    "required": True,
                    "description": "Response format; 1 = JSON.",
                    "schema": {"type": "string", "const": "1"},
                }
            },
            "securitySchemes": {
                "ks": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "ks",
                    "description": "A Kaltura session (KS) from session.start.",
                }
            },
        }

    # ----------------------------------------------------------------------------- operations

    def operation(self, service: ServiceDef, action: ActionDef) -> dict[str, Any]:
        op_id = f"{self.label(service)}.{action.name}"
        op: dict[str, Any] = {
            "operationId": op_id,
            "tags": [service.name],
            "summary": _summary(action.description) or op_id,
            **_text("description", action.description),
            "parameters": [{"$ref": "#/components/parameters/format"}],
            "responses": {"200": self.response(service, action)},
            "x-kaltura-service-id": service.id,
            "x-kaltura-destructive": self.scope.destroys(service, action.name),
            "x-kaltura-session-required": action.session_required,
        }
        if action.params:
            op["requestBody"] = self.request_body(action)
        if action.session_required == "always":
            op["security"] = [{"ks": []}]
        elif action.session_required == "optional":
            op["security"] = [{"ks": []}, {}]
        if action.throws:
            op["x-kaltura-throws"] = list(action.throws)
        if action.deprecated or service.deprecated:
            op["deprecated"] = True
        return op

    def request_body(self, action: ActionDef) -> dict[str, Any]:
        files = [p for p in action.params if p.type == "file"]
        fields = [p for p in action.params if p.type != "file"]
        body = self._object({p.name: self.param_schema(p) for p in fields}, _required(fields))
        if not files:
            return {"required": bool(_required(fields)), "content": {_JSON: {"schema": body}}}
        parts: dict[str, Any] = {
            "json": {
                "type": "string",
                "description": "The non-file parameters as a JSON object.",
                "contentMediaType": _JSON,
                "contentSchema": body,
            }
        }
        encoding = {"json": {"contentType": _JSON}}
        for param in files:
            parts[param.name] = {
                "type": "string",
                "format": "binary",
                **_text("description", param.description),
            }
            encoding[param.name] = {"contentType": "application/octet-stream"}
        multipart = self._object(parts, ["json", *_required(files)])
        return {"required": True, "content": {_MULTIPART: {"schema": multipart, "encoding": encoding}}}

    def param_schema(self, param: ParamDef) -> dict[str, Any]:
        out = self.value(param.type, param.enum_type, param.array_type, wire=False)
        out.update(_text("description", param.description))
        if param.is_time:
            out["x-kaltura-is-time"] = True
        if param.optional and param.default is not None:
            default = _default(param, out)
            if default is _NO_DEFAULT:
                if param.default != "null":
                    out["x-kaltura-default"] = param.default
            else:
                out["default"] = default
        return out

    def response(self, service: ServiceDef, action: ActionDef) -> dict[str, Any]:
        exception = {"$ref": _REF + EXCEPTION}
        description = "The result, or a KalturaAPIException (Kaltura reports errors with HTTP 200)."
        if action.result_type == "file":
            content = {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                _JSON: {"schema": exception},
            }
            return {"description": description, "content": content}
        if action.result_type is None:
            result: dict[str, Any] = {"type": "null"}
        else:
            result = self.value(action.result_type, None, action.result_array_type, wire=True)
        out: dict[str, Any] = {
            "description": description,
            "content": {_JSON: {"schema": {"anyOf": [result, exception]}}},
        }
        links = self.links(service, action)
        if links:
            out["links"] = links
        return out

    def links(self, service: ServiceDef, action: ActionDef) -> dict[str, Any]:
        """From an ``add``-like action to the same service's get/update/delete, on the new ``id``."""
        result = action.result_type
        if not _ADD_LIKE.match(action.name) or result not in self.schema.classes:
            return {}
        if self.schema.property(result, "id") is None:
            return {}
        by_name = {a.name: a for a in service.actions}
        resource = next(
            (by_name[n].result_type for n in ("get", "update") if n in by_name and by_name[n].result_type),
            None,
        )
        if resource is None or not (
            self.schema.is_subclass(result, resource) or self.schema.is_subclass(resource, result)
        ):
            return {}
        links: dict[str, Any] = {}
        for target_name in LINK_TARGETS:
            target = by_name.get(target_name)
            if target is None or not target.params or any(p.type == "file" for p in target.params):
                continue
            first = target.params[0]
            if first.optional or first.type not in ("string", "int", "bigint"):
                continue
            if first.name != "id" and not first.name.endswith("Id"):
                continue
            target_id = f"{self.label(service)}.{target.name}"
            links[target_id] = {
                "operationId": target_id,
                "description": f"The {result} that {service.name}.{action.name} created.",
                "requestBody": {first.name: "$response.body#/id"},
                "x-schemathesis": {"merge_body": True},
            }
        return links

    # ----------------------------------------------------------------------------- components

    def class_components(self, cls: ClassDef) -> dict[str, Any]:
        name = component_name(cls.name)
        concrete = self.concrete(cls.name)
        if concrete == [cls.name]:
            return {name: self.concrete_schema(cls)}
        out: dict[str, Any] = {}
        if not cls.abstract:
            out[name + EXACT_SUFFIX] = self.concrete_schema(cls)
        if not concrete:
            out[name] = {
                "type": "object",
                "description": f"{cls.name} is abstract and none of its subclasses is declared.",
                "properties": {"objectType": {"type": "string"}},
                "required": ["objectType"],
                "x-kaltura-abstract": True,
            }
            return out
        refs = {c: _REF + self.exact_name(c) for c in concrete}
        out[name] = {
            "description": f"{cls.name} or any of its subclasses, told apart by objectType.",
            "oneOf": [{"$ref": ref} for ref in refs.values()],
            "discriminator": {"propertyName": "objectType", "mapping": refs},
        }
        return out

    def concrete(self, class_name: str) -> list[str]:
        """The non-abstract classes in the subtree of ``class_name`` (itself included), by name."""
        cached = self._concrete.get(class_name)
        if cached is None:
            found: list[str] = []
            seen: set[str] = set()
            pending = [class_name]
            while pending:
                name = pending.pop(0)
                if name in seen or name not in self.schema.classes:
                    continue
                seen.add(name)
                if not self.schema.classes[name].abstract:
                    found.append(name)
                pending.extend(sorted(self.children.get(name, ())))
            cached = sorted(found)
            self._concrete[class_name] = cached
        return cached

    def exact_name(self, class_name: str) -> str:
        return class_name if self.concrete(class_name) == [class_name] else class_name + EXACT_SUFFIX

    def concrete_schema(self, cls: ClassDef) -> dict[str, Any]:
        properties: dict[str, Any] = {"objectType": {"type": "string", "const": cls.name}}
        for prop in self.schema.properties(cls.name):
            if prop.name != "objectType":
                properties[prop.name] = self.prop_schema(prop)
        out: dict[str, Any] = {
            "type": "object",
            "title": cls.name,
            **_text("description", cls.description),
            "properties": properties,
            "required": ["objectType"],
        }
        if self.strict:
            out["additionalProperties"] = False
        if cls.deprecated:
            out["deprecated"] = True
        return out

    def prop_schema(self, prop: PropDef) -> dict[str, Any]:
        out = self.value(prop.type, prop.enum_type, prop.array_type, wire=True)
        _constrain(out, prop)
        out.update(_text("description", prop.description))
        if prop.read_only:
            out["readOnly"] = True
        if prop.write_only:
            out["writeOnly"] = True
        if prop.insert_only:
            out["x-kaltura-insert-only"] = True
        if prop.is_time:
            out["x-kaltura-is-time"] = True
        if prop.values_enum_type:
            out["x-kaltura-values-enum"] = prop.values_enum_type
        if prop.requires_permissions:
            out["x-kaltura-requires-permissions"] = prop.requires_permissions
        if prop.deprecated:
            out["deprecated"] = True
        return out

    def exception_schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "object",
            "description": "An API error; Kaltura answers it with HTTP 200.",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "objectType": {"type": "string", "const": EXCEPTION},
                "args": {
                    "anyOf": [
                        {"type": "object", "additionalProperties": {"type": "string"}},
                        {"type": "array", "maxItems": 0},
                    ]
                },
            },
            "required": ["code", "message", "objectType"],
        }
        if self.strict:
            out["additionalProperties"] = False
        return out

    # ----------------------------------------------------------------------------------- values

    def value(
        self, type_: str, enum_type: str | None, array_type: str | None, *, wire: bool
    ) -> dict[str, Any]:
        """The JSON Schema of one value; ``wire`` admits the looser forms of server answers and
        names the declared Kaltura type (``x-kaltura-type``), by which the response checks read an
        answer the way a real server writes it (:mod:`ksentinel.schema.serialization`)."""
        out = self._value(type_, enum_type, array_type, wire=wire)
        if wire and type_ in _WIRE_TYPED:
            out[TYPE_KEY] = type_
        return out

    def _value(
        self, type_: str, enum_type: str | None, array_type: str | None, *, wire: bool
    ) -> dict[str, Any]:
        if enum_type:
            return self.enum_value(type_, enum_type, wire=wire)
        if type_ == "int":
            return {"type": "integer"}
        if type_ == "bigint":
            return _or_numeric_string({"type": "integer"}, _BIGINT_PATTERN) if wire else {"type": "integer"}
        if type_ == "float":
            return _or_numeric_string({"type": "number"}, _FLOAT_PATTERN) if wire else {"type": "number"}
        if type_ == "bool":
            return {"type": "boolean"}
        if type_ == "string":
            return {"type": "string"}
        if type_ == "file":
            return {"type": "string", "format": "binary"}
        if type_ == "array":
            items = self.value(array_type, None, None, wire=wire) if array_type else {}
            return {"type": "array", "items": items}
        if type_ == "map":
            items = self.value(array_type, None, None, wire=wire) if array_type else {}
            as_object = {"type": "object", "additionalProperties": items}
            return {"anyOf": [as_object, {"type": "array", "maxItems": 0}]} if wire else as_object
        if type_ == ANY_OBJECT:
            return {
                "type": "object",
                "properties": {"objectType": {"type": "string"}},
                "required": ["objectType"],
            }
        name = component_name(type_)
        if type_ not in self.schema.classes:
            self.undeclared.add(name)
        return {"$ref": _REF + name}

    def enum_value(self, type_: str, enum_type: str, *, wire: bool) -> dict[str, Any]:
        enum = self.schema.enums.get(enum_type)
        values = list(dict.fromkeys(value for _, value in enum.consts)) if enum else []
        if not values:  # undeclared or empty (dynamic) enum: the base type
            out = self.value(type_ if type_ in ("int", "string") else "string", None, None, wire=wire)
        elif (enum.enum_type if enum else type_) == "int":
            out = {"type": "integer", "enum": [int(v) for v in values if _INT_TEXT.match(v)]}
        elif wire:
            numbers = [int(v) for v in values if _INT_TEXT.match(v)]
            out = (
                {"enum": [*values, *dict.fromkeys(numbers)]}
                if numbers
                else {"type": "string", "enum": values}
            )
        else:
            out = {"type": "string", "enum": values}
        out["x-kaltura-enum"] = enum_type
        return out

    # ----------------------------------------------------------------------------------- helpers

    def _object(self, properties: dict[str, Any], required: Iterable[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "object", "properties": properties}
        required = list(required)
        if required:
            out["required"] = required
        if self.strict:
            out["additionalProperties"] = False
        return out

    @staticmethod
    def _check_segment(name: str, what: str) -> None:
        if not _PATH_SEGMENT.match(name):
            raise SchemaError(f"{what} {name[:60]!r} cannot be used in a URL path")


def _required(params: Iterable[ParamDef]) -> list[str]:
    return [p.name for p in params if not p.optional]


def _text(key: str, value: str) -> dict[str, str]:
    return {key: value} if value else {}


def _summary(description: str) -> str:
    first = description.strip().splitlines()[0].strip() if description.strip() else ""
    sentence = re.split(r"(?<=\.)\s", first, maxsplit=1)[0]
    return sentence if len(sentence) <= 120 else sentence[:117].rstrip() + "..."


def _or_numeric_string(number: dict[str, Any], pattern: str) -> dict[str, Any]:
    return {"anyOf": [number, {"type": "string", "pattern": pattern}]}


def _constrain(out: dict[str, Any], prop: PropDef) -> None:
    if out.get("type") == "string" and "enum" not in out:
        if prop.min_length is not None:
            out["minLength"] = prop.min_length
        if prop.max_length is not None:
            out["maxLength"] = prop.max_length
    elif out.get("type") == "integer" and "enum" not in out:
        if prop.min_value is not None:
            out["minimum"] = prop.min_value
        if prop.max_value is not None:
            out["maximum"] = prop.max_value


def _default(param: ParamDef, schema: dict[str, Any]) -> Any:
    """The parameter's default literal as a JSON value, or ``_NO_DEFAULT`` when it is not one."""
    literal = param.default
    if literal is None or literal == "null":
        return _NO_DEFAULT
    value: Any
    if param.type == "bool":
        value = {"true": True, "false": False, "1": True, "0": False}.get(literal.lower(), _NO_DEFAULT)
    elif param.type in ("int", "bigint"):
        value = int(literal) if _INT_TEXT.match(literal) else _NO_DEFAULT
    elif param.type == "float":
        if _INT_TEXT.match(literal):
            value = int(literal)
        else:
            value = float(literal) if _NUMBER_TEXT.match(literal) else _NO_DEFAULT
    elif param.type == "string":
        value = literal
    else:
        return _NO_DEFAULT
    allowed = schema.get("enum")
    if value is not _NO_DEFAULT and allowed is not None and value not in allowed:
        return _NO_DEFAULT
    return value
