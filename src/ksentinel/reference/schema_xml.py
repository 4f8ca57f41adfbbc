"""``/api_v3/api_schema.php``: a :class:`~ksentinel.schema.model.Schema` written as ``KalturaClient.xml``.

The output follows the real file byte for byte in layout (libxml's two-space indentation, self-closing
empty elements, attribute order, entity escaping) and in order:

* enums: int enums, then string enums, each group by name; consts sorted by value the way PHP's
  ``asort`` compares them (numerically when both values are numeric, else as strings);
* classes: the client generator's order: sorted by inheritance level then name, each class written after
  its dependencies (base class, then the classes its properties use, array properties through their
  ``…Array`` / ``…Map`` wrapper types);
* services by service class name (``{name}Service``, case-insensitive), actions by name;
* errors in declaration order (the real catalogue's order).

Rendering is deterministic: the default ``generatedDate`` is derived from a hash of the rest of the
document, never from the clock.

``serve --schema FILE`` (``PlatformConfig.schema_file``) replaces the generated document with a real
one: :func:`load_served_schema` reads and parses it once, and the dispatcher answers the actions it
lists but the reference does not implement with ``SERVICE_FORBIDDEN``.
"""

from __future__ import annotations

import functools
import hashlib
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ksentinel.errors import ConfigError
from ksentinel.schema.errors import SchemaError
from ksentinel.schema.model import ActionDef, ClassDef, EnumDef, ErrorDef, PropDef, Schema, ServiceDef
from ksentinel.schema.xml import parse_schema

_Attrs = list[tuple[str, str]]

_INDENT = "  "
# the default generatedDate: a point in [_DATE_BASE, _DATE_BASE + _DATE_SPAN) picked by the content hash
_DATE_BASE = 1_700_000_000
_DATE_SPAN = 100_000_000

_CONFIGURATIONS: tuple[tuple[str, str, tuple[tuple[str, _Attrs], ...]], ...] = (
    (
        "client",
        "KalturaClientConfiguration",
        (("clientTag", [("type", "string")]), ("apiVersion", [("type", "string")])),
    ),
    (
        "request",
        "KalturaRequestConfiguration",
        (
            ("partnerId", [("type", "int"), ("description", "Impersonated partner id")]),
            ("ks", [("type", "string"), ("alias", "sessionId"), ("description", "Kaltura API session")]),
            ("language", [("type", "string"), ("description", "language")]),
            (
                "responseProfile",
                [
                    ("type", "KalturaBaseResponseProfile"),
                    ("volatile", "1"),
                    ("description", "Response profile, unset automatically after every API call."),
                ],
            ),
        ),
    ),
)


def render_schema_xml(schema: Schema, generated_date: int | None = None) -> bytes:
    """The schema as the real ``api_schema.php`` serves it (ASCII bytes, trailing newline)."""
    lines: list[str] = []
    _section(lines, "enums", [_enum_lines(enum) for enum in _ordered_enums(schema)])
    _section(lines, "classes", [_class_lines(schema.classes[name]) for name in _class_order(schema)])
    _section(lines, "services", [_service_lines(service) for service in _ordered_services(schema)])
    _section(lines, "plugins", [])
    _section(lines, "errors", [_error_lines(error) for error in schema.errors.values()])
    _section(lines, "configurations", [_configuration_lines(*conf) for conf in _CONFIGURATIONS])
    body = "".join(f"{_INDENT}{line}\n" for line in lines)

    if generated_date is None:
        digest = hashlib.sha256(f"{schema.api_version}\n{body}".encode("ascii")).digest()
        generated_date = _DATE_BASE + int.from_bytes(digest[:8], "big") % _DATE_SPAN
    stamp = time.strftime("%d/%m/%y %H:%M:%S", time.gmtime(generated_date))
    head = (
        '<?xml version="1.0"?>\n'
        f"<xml{_attrs([('apiVersion', schema.api_version), ('generatedDate', str(generated_date))])}>\n"
        f"{_INDENT}<!-- Generated on date {stamp} -->\n"
    )
    return f"{head}{body}</xml>\n".encode("ascii")


# ------------------------------------------------------------------------------------------- ordering


_NUMERIC = re.compile(r"^[ \t\n\r\v\f]*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?[ \t\n\r\v\f]*$")


def _php_compare(a: str, b: str) -> int:
    """PHP 8 ``<=>`` on two strings: numeric comparison when both are numeric strings."""
    if _NUMERIC.match(a) and _NUMERIC.match(b):
        x, y = float(a), float(b)
        return (x > y) - (x < y)
    return (a > b) - (a < b)


def _ordered_enums(schema: Schema) -> list[EnumDef]:
    return sorted(schema.enums.values(), key=lambda enum: (enum.enum_type != "int", enum.name))


def _sorted_consts(enum: EnumDef) -> list[tuple[str, str]]:
    return sorted(enum.consts, key=functools.cmp_to_key(lambda a, b: _php_compare(a[1], b[1])))


def _ordered_services(schema: Schema) -> list[ServiceDef]:
    return sorted(schema.services.values(), key=lambda service: f"{service.name}Service".lower())


def _class_order(schema: Schema) -> list[str]:
    """Class names in the client generator's order (see the module docstring)."""
    classes = schema.classes
    wrappers: dict[str, str] = {}  # "KalturaXArray" / "KalturaXMap" -> "KalturaX"
    for cls in classes.values():
        for prop in cls.props:
            wrapper = _wrapper_name(prop)
            if wrapper and prop.array_type:
                wrappers[wrapper] = prop.array_type

    def level(name: str) -> int:
        return 1 if name in wrappers else len(list(schema.lineage(name)))

    def dependencies(name: str) -> list[str]:
        if name in wrappers:
            return [wrappers[name]]
        found: list[str] = []
        base = classes[name].base
        if base in classes:
            found.append(base)
        for prop in schema.properties(name):
            dep = _wrapper_name(prop) or prop.type
            if (dep in classes or dep in wrappers) and dep not in found:
                found.append(dep)
        return found

    output: list[str] = []
    seen: set[str] = set()

    def visit(names: list[str]) -> None:
        for name in names:
            if name in seen:
                continue
            seen.add(name)
            visit(dependencies(name))
            output.append(name)

    visit(sorted([*classes, *wrappers], key=lambda name: (level(name), name)))
    return [name for name in output if name in classes]


def _wrapper_name(prop: PropDef) -> str | None:
    if prop.type in ("array", "map") and prop.array_type:
        return prop.array_type + ("Array" if prop.type == "array" else "Map")
    return None


# -------------------------------------------------------------------------------------------- elements


def _section(lines: list[str], tag: str, children: list[list[str]]) -> None:
    lines.extend(_element(tag, [], [line for child in children for line in child]))


def _element(tag: str, attrs: _Attrs, children: list[str]) -> list[str]:
    """An element as lines relative to its own indentation; children are already rendered lines."""
    if not children:
        return [f"<{tag}{_attrs(attrs)}/>"]
    return [f"<{tag}{_attrs(attrs)}>", *(f"{_INDENT}{line}" for line in children), f"</{tag}>"]


def _enum_lines(enum: EnumDef) -> list[str]:
    consts = [f"<const{_attrs([('name', name), ('value', value)])}/>" for name, value in _sorted_consts(enum)]
    attrs: _Attrs = [("name", enum.name), ("enumType", enum.enum_type)]
    if enum.deprecated:
        attrs.append(("deprecated", "1"))
    if enum.plugin:
        attrs.append(("plugin", enum.plugin))
    return _element("enum", attrs, consts)


def _class_lines(cls: ClassDef) -> list[str]:
    attrs: _Attrs = [("name", cls.name)]
    if cls.abstract:
        attrs.append(("abstract", "1"))
    if cls.base:
        attrs.append(("base", cls.base))
    if cls.plugin:
        attrs.append(("plugin", cls.plugin))
    attrs.append(("description", cls.description))
    if cls.deprecated:
        attrs.append(("deprecated", "1"))
    return _element("class", attrs, [line for prop in cls.props for line in _property_lines(prop)])


def _property_lines(prop: PropDef) -> list[str]:
    attrs: _Attrs = [("name", prop.name), ("type", prop.type)]
    if prop.enum_type:
        attrs.append(("enumType", prop.enum_type))
    if prop.array_type:
        attrs.append(("arrayType", prop.array_type))
    if prop.is_time:
        attrs.append(("isTime", "1"))
    attrs += [
        ("readOnly", _flag(prop.read_only)),
        ("insertOnly", _flag(prop.insert_only)),
        ("writeOnly", _flag(prop.write_only)),
        ("multiLingual", _flag(prop.multi_lingual)),
    ]
    if prop.values_enum_type:
        attrs.append(("valuesEnumType", prop.values_enum_type))
    if prop.requires_permissions:
        attrs.append(("requiresPermissions", prop.requires_permissions))
    attrs.append(("description", prop.description))
    for name, value in (
        ("minLength", prop.min_length),
        ("maxLength", prop.max_length),
        ("minValue", prop.min_value),
        ("maxValue", prop.max_value),
        ("utf8truncate", prop.utf8_truncate),
    ):
        if value is not None:
            attrs.append((name, str(value)))
    if prop.deprecated:
        attrs.append(("deprecated", "1"))
    return _element("property", attrs, [])


def _service_lines(service: ServiceDef) -> list[str]:
    actions = sorted(service.actions, key=lambda action: action.name.lower())
    attrs = [("id", service.id), ("name", service.name), ("description", service.description)]
    if service.deprecated:
        attrs.append(("deprecated", "1"))
    if service.plugin:
        attrs.append(("plugin", service.plugin))
    return _element("service", attrs, [line for action in actions for line in _action_lines(action)])


def _action_lines(action: ActionDef) -> list[str]:
    children: list[str] = []
    for param in action.params:
        attrs: _Attrs = [("name", param.name), ("type", param.type)]
        if param.enum_type:
            attrs.append(("enumType", param.enum_type))
        if param.array_type:
            attrs.append(("arrayType", param.array_type))
        if param.is_time:
            attrs.append(("isTime", "1"))
        attrs.append(("optional", _flag(param.optional)))
        if param.optional and param.default is not None:
            attrs.append(("default", param.default))
        attrs.append(("description", param.description))
        children += _element("param", attrs, [])
    result: _Attrs = []
    if action.result_type:
        result.append(("type", action.result_type))
        if action.result_array_type:
            result.append(("arrayType", action.result_array_type))
    children += _element("result", result, [])
    children += [f"<throws{_attrs([('name', name)])}/>" for name in action.throws]
    attrs = [("name", action.name)]
    if action.deprecated:
        attrs.append(("deprecated", "1"))
    attrs += [
        ("description", action.description),
        ("enableInMultiRequest", _flag(action.enable_in_multirequest)),
    ]
    if action.action_alias:
        attrs.append(("actionAlias", action.action_alias))
    if action.plugin:
        attrs.append(("plugin", action.plugin))
    attrs.append(("sessionRequired", action.session_required))
    return _element("action", attrs, children)


def _error_lines(error: ErrorDef) -> list[str]:
    params = [f"<parameter{_attrs([('name', name)])}/>" for name in error.parameters]
    return _element("error", [("name", error.name), ("code", error.name), ("message", error.message)], params)


def _configuration_lines(tag: str, type_name: str, fields: tuple[tuple[str, _Attrs], ...]) -> list[str]:
    return _element(
        tag, [("type", type_name)], [line for name, attrs in fields for line in _element(name, attrs, [])]
    )


# --------------------------------------------------------------------------------------------- escaping

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}


def _escape(value: str) -> str:
    """An attribute value as libxml writes it (non-ASCII as hex character references)."""
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) > 0x7F:
            out.append(f"&#x{ord(ch):X};")
        else:
            out.append(ch)
    return "".join(out)


def _attrs(attrs: _Attrs) -> str:
    return "".join(f' {name}="{_escape(value)}"' for name, value in attrs)


def _flag(value: bool) -> str:
    return "1" if value else "0"


# ------------------------------------------------------------------------------------- a served file


@dataclass(frozen=True, eq=False)
class ServedSchema:
    """A real schema document served as is (``serve --schema FILE``) and what it declares."""

    path: Path
    data: bytes
    schema: Schema

    def service(self, service_id: str) -> ServiceDef | None:
        return self.schema.service(service_id)

    def declares(self, service_id: str, action_name: str) -> tuple[ServiceDef, ActionDef] | None:
        """The service and action the file lists for a call (ids lowercase, actions case-insensitive)."""
        return self.schema.action(service_id, action_name)


def load_served_schema(path: Path) -> ServedSchema:
    """The schema file at ``path``, read and parsed once (later calls with the same path reuse it).

    Raises :class:`~ksentinel.errors.ConfigError` with one line for a missing, unreadable or
    unparsable file (a failure is not remembered).
    """
    return _load(Path(path))


@functools.lru_cache(maxsize=8)
def _load(path: Path) -> ServedSchema:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"schema file {path} cannot be read: {exc.strerror or exc}") from None
    try:
        schema = parse_schema(data)
    except SchemaError as exc:
        raise ConfigError(f"schema file {path} is not a usable Kaltura schema: {exc.message}") from None
    return ServedSchema(path, data, schema)
