"""Parse Kaltura's XML API schema (``/api_v3/api_schema.php``, ``KalturaClient.xml``) into a :class:`Schema`.

The document may come from a hostile server, so it is parsed with ``defusedxml``: a DTD, an entity
declaration or an external reference is refused before anything is expanded or fetched, and the input
is capped in size. Whatever cannot be used raises :class:`~ksentinel.schema.errors.SchemaError` with
a one-line message.

Layout (docs/kaltura-api-v3.md section 7): ``<xml apiVersion>`` holding ``enums``, ``classes``,
``services``, ``plugins``, ``errors`` and ``configurations``; only ``services`` is mandatory.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import defusedxml
import defusedxml.ElementTree as SafeET

from ksentinel.schema.errors import SchemaError
from ksentinel.schema.model import (
    ActionDef,
    ClassDef,
    EnumDef,
    ErrorDef,
    ParamDef,
    PropDef,
    Schema,
    ServiceDef,
    default_session_required,
)

MAX_SCHEMA_BYTES = 64 * 1024 * 1024

_INT = re.compile(r"-?\d{1,18}")
_HTML_START = (b"<!doctype html", b"<html")


def parse_schema(data: bytes, *, max_bytes: int = MAX_SCHEMA_BYTES) -> Schema:
    """The schema in ``data``; raises :class:`SchemaError` for anything that is not a usable schema."""
    if len(data) > max_bytes:
        raise SchemaError(f"schema rejected: {len(data)} bytes is over the limit of {max_bytes} bytes")
    root = _parse_xml(bytes(data))
    return _schema(root)


# ------------------------------------------------------------------------------------------- the XML


def _parse_xml(data: bytes) -> ET.Element:
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        raise SchemaError("schema rejected: the document is empty")
    if head.lower().startswith(_HTML_START):
        raise SchemaError("not a Kaltura schema: the document is an HTML page")
    try:
        return SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DTDForbidden:
        raise SchemaError(f"schema XML rejected: {_dtd_reason(data)}") from None
    except defusedxml.EntitiesForbidden:
        raise SchemaError("schema XML rejected: entity declarations are not allowed") from None
    except defusedxml.ExternalReferenceForbidden:
        raise SchemaError("schema XML rejected: external references are not allowed") from None
    except ET.ParseError as exc:
        detail = str(exc).splitlines()[0] if str(exc) else "parse error"
        raise SchemaError(f"schema XML rejected: not well-formed ({detail})") from None
    except (ValueError, LookupError) as exc:  # e.g. an unknown encoding in the XML declaration
        raise SchemaError(f"schema XML rejected: {type(exc).__name__}: {str(exc)[:200]}") from None


def _dtd_reason(data: bytes) -> str:
    """What the refused document type declaration tried to do (read from the bytes, never expanded)."""
    start = data.find(b"<!DOCTYPE")
    doctype = data[start : start + 65536] if start >= 0 else b""
    if b"<!ENTITY" in doctype:
        kind = "external entities" if re.search(rb"<!ENTITY[^>]*\s(SYSTEM|PUBLIC)\s", doctype) else "entities"
        return f"entity declarations are not allowed (the DTD declares {kind})"
    if re.match(rb"<!DOCTYPE\s+\S+\s+(SYSTEM|PUBLIC)\s", doctype):
        return "a DTD is not allowed (it refers to an external DTD)"
    return "a DTD (<!DOCTYPE ...>) is not allowed"


# ------------------------------------------------------------------------------------------ the model


def _schema(root: ET.Element) -> Schema:
    if root.tag != "xml":
        raise SchemaError(f"not a Kaltura schema: the root element is <{_short(root.tag)}>, expected <xml>")
    api_version = root.get("apiVersion")
    if not api_version:
        raise SchemaError("not a Kaltura schema: the <xml> root has no apiVersion")
    services_el = root.find("services")
    if services_el is None or not services_el.findall("service"):
        raise SchemaError("not a Kaltura schema: it declares no services")

    enums: dict[str, EnumDef] = {}
    for el in _children(root, "enums", "enum"):
        _add(enums, _enum(el), "enum")
    classes: dict[str, ClassDef] = {}
    for el in _children(root, "classes", "class"):
        _add(classes, _class(el), "class")
    services: dict[str, ServiceDef] = {}
    for el in services_el.findall("service"):
        service = _service(el)
        if service.id in services:
            raise SchemaError(f"schema rejected: service {service.id!r} is declared twice")
        services[service.id] = service
    errors: dict[str, ErrorDef] = {}
    for el in _children(root, "errors", "error"):
        _add(errors, _error(el), "error")
    return Schema(api_version, enums, classes, services, errors)


def _children(root: ET.Element, section: str, tag: str) -> list[ET.Element]:
    parent = root.find(section)
    return [] if parent is None else parent.findall(tag)


def _add(table: dict, item: EnumDef | ClassDef | ErrorDef, kind: str) -> None:
    if item.name in table:
        raise SchemaError(f"schema rejected: {kind} {item.name!r} is declared twice")
    table[item.name] = item


def _enum(el: ET.Element) -> EnumDef:
    name = _required(el, "name", "an <enum>")
    consts = tuple(
        (
            _required(c, "name", f"enum {name!r}: a <const>"),
            _required(c, "value", f"enum {name!r}: a <const>", allow_empty=True),
        )
        for c in el.findall("const")
    )
    return EnumDef(
        name,
        _required(el, "enumType", f"enum {name!r}"),
        consts,
        deprecated=_flag(el, "deprecated"),
        plugin=el.get("plugin"),
    )


def _class(el: ET.Element) -> ClassDef:
    name = _required(el, "name", "a <class>")
    return ClassDef(
        name,
        tuple(_prop(p, name) for p in el.findall("property")),
        base=el.get("base") or None,
        abstract=_flag(el, "abstract"),
        description=el.get("description", ""),
        plugin=el.get("plugin"),
        deprecated=_flag(el, "deprecated"),
    )


def _prop(el: ET.Element, class_name: str) -> PropDef:
    name = _required(el, "name", f"class {class_name!r}: a <property>")
    return PropDef(
        name,
        _required(el, "type", f"{class_name}.{name}"),
        enum_type=el.get("enumType"),
        array_type=el.get("arrayType"),
        read_only=_flag(el, "readOnly"),
        insert_only=_flag(el, "insertOnly"),
        write_only=_flag(el, "writeOnly"),
        is_time=_flag(el, "isTime"),
        description=el.get("description", ""),
        min_length=_int(el, "minLength"),
        max_length=_int(el, "maxLength"),
        min_value=_int(el, "minValue"),
        max_value=_int(el, "maxValue"),
        multi_lingual=_flag(el, "multiLingual"),
        values_enum_type=el.get("valuesEnumType"),
        requires_permissions=el.get("requiresPermissions"),
        utf8_truncate=_int(el, "utf8truncate"),
        deprecated=_flag(el, "deprecated"),
    )


def _service(el: ET.Element) -> ServiceDef:
    service_id = _required(el, "id", "a <service>")
    name = _required(el, "name", f"service {service_id!r}")
    actions = tuple(_action(a, name, service_id) for a in el.findall("action"))
    seen: set[str] = set()
    for action in actions:
        if action.name.lower() in seen:
            raise SchemaError(f"schema rejected: action {name}.{action.name} is declared twice")
        seen.add(action.name.lower())
    return ServiceDef(
        service_id,
        name,
        actions,
        description=el.get("description", ""),
        plugin=el.get("plugin"),
        deprecated=_flag(el, "deprecated"),
    )


def _action(el: ET.Element, service_name: str, service_id: str) -> ActionDef:
    name = _required(el, "name", f"service {service_name!r}: an <action>")
    where = f"{service_name}.{name}"
    results = el.findall("result")
    if len(results) > 1:
        raise SchemaError(f"schema rejected: {where} has {len(results)} <result> elements")
    result = results[0] if results else None
    # old schemas (apiVersion 3.x) do not say: what the server serves without a KS is not "always"
    session = el.get("sessionRequired")
    if session is None:
        session = default_session_required(service_id, name)
    if session not in ("always", "optional", "none"):
        raise SchemaError(f"schema rejected: {where} has sessionRequired={_short(session)!r}")
    return ActionDef(
        name,
        tuple(_param(p, where) for p in el.findall("param")),
        result_type=(result.get("type") or None) if result is not None else None,
        result_array_type=result.get("arrayType") if result is not None else None,
        session_required=session,
        description=el.get("description", ""),
        throws=tuple(_required(t, "name", f"{where}: a <throws>") for t in el.findall("throws")),
        deprecated=_flag(el, "deprecated"),
        action_alias=el.get("actionAlias"),
        plugin=el.get("plugin"),
    )


def _param(el: ET.Element, where: str) -> ParamDef:
    name = _required(el, "name", f"{where}: a <param>")
    return ParamDef(
        name,
        _required(el, "type", f"{where}({name})"),
        enum_type=el.get("enumType"),
        array_type=el.get("arrayType"),
        optional=_flag(el, "optional"),
        default=el.get("default"),
        is_time=_flag(el, "isTime"),
        description=el.get("description", ""),
    )


def _error(el: ET.Element) -> ErrorDef:
    name = _required(el, "name", "an <error>")
    parameters = tuple(
        _required(p, "name", f"error {name!r}: a <parameter>") for p in el.findall("parameter")
    )
    return ErrorDef(name, el.get("message", ""), parameters)


# ------------------------------------------------------------------------------------------- helpers


def _required(el: ET.Element, attr: str, where: str, *, allow_empty: bool = False) -> str:
    value = el.get(attr)
    if value is None or (value == "" and not allow_empty):
        raise SchemaError(f"schema rejected: {where} has no {attr}")
    return value


def _flag(el: ET.Element, attr: str) -> bool:
    return el.get(attr) == "1"


def _int(el: ET.Element, attr: str) -> int | None:
    value = el.get(attr)
    return int(value) if value is not None and _INT.fullmatch(value) else None


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= 60 else text[:57] + "..."
