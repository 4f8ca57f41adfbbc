"""The reference platform's API declaration (``apidef.SCHEMA``) against the real Kaltura schema file, and
the ``api_schema.php`` renderer (``schema_xml``) against the real file's format.

The real schema (``shared/data/kaltura-ovp-api-schema-22.15.0.xml``, or ``$KSENTINEL_KALTURA_SCHEMA``) is
only read here, never copied into the project.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET

import pytest

from ksentinel.reference.apidef import SCHEMA
from ksentinel.reference.schema_xml import render_schema_xml
from ksentinel.schema.model import (
    SIMPLE_TYPES,
    ActionDef,
    ClassDef,
    EnumDef,
    ErrorDef,
    ParamDef,
    PropDef,
    Schema,
    ServiceDef,
)
from tests.helpers import real_schema_path


def _names(text: str) -> list[str]:
    return text.split()


# What the reference platform must declare (from its brief), independent of what apidef.py says.
REQUIRED_ENUMS = _names(
    "KalturaSessionType KalturaEntryStatus KalturaEntryType KalturaMediaType KalturaEntryModerationStatus"
    " KalturaNullableBoolean KalturaUploadTokenStatus KalturaBaseEntryOrderBy KalturaMediaEntryOrderBy"
    " KalturaUploadTokenOrderBy KalturaEntryDisplayInSearchType"
)
REQUIRED_PROPS = {
    "KalturaSessionInfo": "*",
    "KalturaStartWidgetSessionResponse": "*",
    "KalturaUploadToken": "*",
    "KalturaListResponse": "totalCount",
    "KalturaUploadTokenListResponse": "objects",
    "KalturaBaseEntryListResponse": "objects",
    "KalturaMediaListResponse": "objects",
    "KalturaBaseEntry": "id name description partnerId userId creatorId tags adminTags status moderationStatus"
    " moderationCount type createdAt updatedAt rank totalRank votes partnerData downloadUrl searchText version"
    " thumbnailUrl referenceId partnerSortValue rootEntryId displayInSearch",
    "KalturaPlayableEntry": "plays views lastPlayedAt width height duration msDuration",
    "KalturaMediaEntry": "mediaType sourceType dataUrl creditUserName creditUrl mediaDate flavorParamsIds"
    " isTrimDisabled",
    "KalturaFilterPager": "",
    "KalturaFilter": "orderBy",
    "KalturaRelatedFilter": "",
    "KalturaBaseEntryFilter": "",
    "KalturaPlayableEntryFilter": "",
    "KalturaMediaEntryFilter": "",
    "KalturaUploadTokenFilter": "",
    "KalturaResource": "",
    "KalturaContentResource": "",
    "KalturaUploadedFileTokenResource": "token",
    "KalturaApiExceptionArg": "name value",
}
# filter fields that must be declared somewhere in the filter's chain (wherever the real schema has them)
REQUIRED_FILTER_FIELDS = {
    "KalturaBaseEntryFilter": "idEqual idIn idNotIn nameLike nameEqual partnerIdEqual userIdEqual userIdIn"
    " tagsLike adminTagsLike statusEqual statusNotEqual statusIn statusNotIn typeEqual typeIn"
    " createdAtGreaterThanOrEqual createdAtLessThanOrEqual updatedAtGreaterThanOrEqual updatedAtLessThanOrEqual"
    " referenceIdEqual referenceIdIn moderationStatusEqual freeText",
    "KalturaMediaEntryFilter": "mediaTypeEqual mediaTypeIn",
    "KalturaUploadTokenFilter": "idEqual idIn userIdEqual statusEqual statusIn fileNameEqual fileSizeEqual",
    "KalturaFilterPager": "pageSize pageIndex",
}
REQUIRED_ACTIONS = {
    "session": "start get end startWidgetSession",
    "uploadToken": "add upload get list delete",
    "baseEntry": "add addContent addFromUploadedFile get list count update delete",
    "media": "add addContent get list count update delete",
    "system": "ping",
}
REQUIRED_ERRORS = _names(
    "SERVICE_NOT_SPECIFIED SERVICE_DOES_NOT_EXISTS ACTION_DOES_NOT_EXISTS INVALID_KS MISSING_KS SERVICE_FORBIDDEN"
    " SERVICE_FORBIDDEN_CONTENT_BLOCKED START_SESSION_ERROR PARTNER_ACCESS_FORBIDDEN INVALID_WIDGET_ID"
    " MISSING_MANDATORY_PARAMETER INVALID_ENUM_VALUE OBJECT_TYPE_ABSTRACT INVALID_OBJECT_TYPE"
    " PROPERTY_VALIDATION_NOT_UPDATABLE PROPERTY_VALIDATION_MIN_LENGTH PROPERTY_VALIDATION_MAX_LENGTH"
    " PROPERTY_VALIDATION_CANNOT_BE_NULL INVALID_PARAMETER_CHAR INTERNAL_SERVERL_ERROR ENTRY_ID_NOT_FOUND"
    " ENTRY_ALREADY_WITH_CONTENT ENTRY_TYPE_NOT_SUPPORTED UPLOAD_TOKEN_NOT_FOUND"
    " UPLOAD_TOKEN_INVALID_STATUS_FOR_UPLOAD UPLOAD_TOKEN_INVALID_STATUS_FOR_ADD_ENTRY UPLOAD_TOKEN_CANNOT_RESUME"
    " UPLOAD_TOKEN_MISSING_FILE_SIZE UPLOAD_ERROR UPLOAD_TOKEN_CANNOT_MATCH_EXPECTED_SIZE MAX_FILE_SIZE_EXCEEDED"
    " MAX_ALLOWED_CHUNK_COUNT_EXCEEDED QUERY_EXCEEDED_MAX_MATCHES_ALLOWED INVALID_UPLOAD_TOKEN_ID"
    " UPLOADED_FILE_NOT_FOUND_BY_TOKEN"
    # named in docs/kaltura-api-v3.md sections 3-4
    " INVALID_LANGUAGE_CODE ACTION_BLOCKED USER_BLOCKED UNKNOWN_ROLE_ID UPLOAD_TOKEN_FILE_TYPE_RESTRICTED_FOR_UPLOAD"
    " UPLOAD_PASSED_MAX_RESUME_TIME_ALLOWED PROPERTY_VALIDATION_UNTIL_NOT_VALID"
)


# ------------------------------------------------------------------------------------- parsing helpers


@dataclasses.dataclass
class Parsed:
    """An api_schema XML document as model objects, plus what the model has no field for."""

    root: ET.Element
    schema: Schema
    plugin_enums: set[str]
    plugin_services: set[str]


def _int_attr(el: ET.Element, name: str) -> int | None:
    value = el.get(name)
    return int(value) if value is not None and re.fullmatch(r"-?\d+", value) else None


def _prop(el: ET.Element) -> PropDef:
    return PropDef(
        name=el.attrib["name"],
        type=el.attrib["type"],
        enum_type=el.get("enumType"),
        array_type=el.get("arrayType"),
        read_only=el.get("readOnly") == "1",
        insert_only=el.get("insertOnly") == "1",
        write_only=el.get("writeOnly") == "1",
        is_time=el.get("isTime") == "1",
        description=el.get("description", ""),
        min_length=_int_attr(el, "minLength"),
        max_length=_int_attr(el, "maxLength"),
        min_value=_int_attr(el, "minValue"),
        max_value=_int_attr(el, "maxValue"),
    )


def _action(el: ET.Element) -> ActionDef:
    params = tuple(
        ParamDef(
            name=p.attrib["name"],
            type=p.attrib["type"],
            enum_type=p.get("enumType"),
            array_type=p.get("arrayType"),
            optional=p.get("optional") == "1",
            default=p.get("default"),
            is_time=p.get("isTime") == "1",
            description=p.get("description", ""),
        )
        for p in el.findall("param")
    )
    results = el.findall("result")
    assert len(results) == 1, f"action {el.get('name')}: {len(results)} <result> elements"
    return ActionDef(
        name=el.attrib["name"],
        params=params,
        result_type=results[0].get("type"),
        result_array_type=results[0].get("arrayType"),
        session_required=el.attrib["sessionRequired"],
        description=el.get("description", ""),
        throws=tuple(t.attrib["name"] for t in el.findall("throws")),
    )


def parse_schema_xml(data: bytes) -> Parsed:
    root = ET.fromstring(data, parser=ET.XMLParser(target=ET.TreeBuilder(insert_comments=True)))
    enums = {
        e.attrib["name"]: EnumDef(
            e.attrib["name"], e.attrib["enumType"], tuple((c.attrib["name"], c.attrib["value"]) for c in e)
        )
        for e in root.find("enums")
    }
    classes = {
        c.attrib["name"]: ClassDef(
            name=c.attrib["name"],
            props=tuple(_prop(p) for p in c.findall("property")),
            base=c.get("base"),
            abstract=c.get("abstract") == "1",
            description=c.get("description", ""),
        )
        for c in root.find("classes")
    }
    services = {
        s.attrib["id"]: ServiceDef(
            id=s.attrib["id"],
            name=s.attrib["name"],
            actions=tuple(_action(a) for a in s.findall("action")),
            description=s.get("description", ""),
        )
        for s in root.find("services")
    }
    errors = {
        e.attrib["name"]: ErrorDef(e.attrib["name"], e.attrib["message"], tuple(p.attrib["name"] for p in e))
        for e in root.find("errors")
    }
    for e in root.find("errors"):
        assert e.get("code") == e.get("name")
    schema = Schema(root.attrib["apiVersion"], enums, classes, services, errors)
    return Parsed(
        root=root,
        schema=schema,
        plugin_enums={e.attrib["name"] for e in root.find("enums") if e.get("plugin")},
        plugin_services={s.attrib["id"] for s in root.find("services") if s.get("plugin")},
    )


def _is_plugin_value(value: str) -> bool:
    """Plugin-contributed enum values look like ``virusScan.Infected`` (the plugin name, a dot, a value)."""
    return re.fullmatch(r"[A-Za-z]\w*\.\w+", value) is not None


def _no_description(obj):
    return dataclasses.replace(obj, description="")


def _action_key(action: ActionDef) -> tuple:
    return (
        action.name,
        tuple(_no_description(p) for p in action.params),
        action.result_type,
        action.result_array_type,
        action.session_required,
        action.throws,
        action.enable_in_multirequest,
    )


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def real_bytes() -> bytes:
    path = real_schema_path()
    return path.read_bytes()


@pytest.fixture(scope="module")
def real(real_bytes: bytes) -> Parsed:
    return parse_schema_xml(real_bytes)


@pytest.fixture(scope="module")
def rendered_bytes() -> bytes:
    return render_schema_xml(SCHEMA)


@pytest.fixture(scope="module")
def rendered(rendered_bytes: bytes) -> Parsed:
    return parse_schema_xml(rendered_bytes)


# ------------------------------------------------------------------------------- (a)-(d) vs. the real schema


def test_api_version_matches_real(real: Parsed) -> None:
    assert SCHEMA.api_version == real.schema.api_version == "22.15.0"


def test_enums_match_real(real: Parsed) -> None:
    for name in REQUIRED_ENUMS:
        assert name in SCHEMA.enums, f"required enum {name} not declared"
    for name, enum in SCHEMA.enums.items():
        assert enum.name == name
        real_enum = real.schema.enums.get(name)
        assert real_enum is not None, f"enum {name} not in the real schema"
        assert enum.enum_type == real_enum.enum_type, name
        for const in enum.consts:
            assert const in real_enum.consts, f"{name}.{const[0]}={const[1]!r} not in the real enum"
        # the full list minus plugin values, in the real (value-sorted) order
        expected = tuple(c for c in real_enum.consts if not _is_plugin_value(c[1]))
        assert enum.consts == expected, name


def test_classes_match_real(real: Parsed) -> None:
    for name, cls in SCHEMA.classes.items():
        assert cls.name == name
        real_cls = real.schema.classes.get(name)
        assert real_cls is not None, f"class {name} not in the real schema"
        assert cls.base == real_cls.base, f"{name}: base"
        assert cls.abstract == real_cls.abstract, f"{name}: abstract"
        real_props = {p.name: p for p in real_cls.props}
        for prop in cls.props:
            real_prop = real_props.get(prop.name)
            assert real_prop is not None, (
                f"{name}.{prop.name} is not declared in that class by the real schema"
            )
            assert _no_description(prop) == _no_description(real_prop), f"{name}.{prop.name}"
        real_order = [p.name for p in real_cls.props if p.name in {q.name for q in cls.props}]
        assert [p.name for p in cls.props] == real_order, f"{name}: property order"


def test_required_classes_and_properties_declared(real: Parsed) -> None:
    for name, props in REQUIRED_PROPS.items():
        assert name in SCHEMA.classes, f"required class {name} not declared"
        wanted = [p.name for p in real.schema.classes[name].props] if props == "*" else props.split()
        declared = {p.name for p in SCHEMA.classes[name].props}
        assert set(wanted) <= declared, f"{name}: missing {set(wanted) - declared}"
    for name, fields in REQUIRED_FILTER_FIELDS.items():
        declared = {p.name for p in SCHEMA.properties(name)}
        present_in_real = {p.name for p in real.schema.properties(name)}
        wanted = {f for f in fields.split() if f in present_in_real}
        assert wanted <= declared, f"{name}: missing {wanted - declared}"


def test_services_match_real(real: Parsed) -> None:
    by_name = {s.name: s for s in SCHEMA.services.values()}
    for service_name, actions in REQUIRED_ACTIONS.items():
        assert service_name in by_name, f"required service {service_name} not declared"
        declared = {a.name for a in by_name[service_name].actions}
        assert set(actions.split()) <= declared, f"{service_name}: missing {set(actions.split()) - declared}"
    for service_id, service in SCHEMA.services.items():
        assert service.id == service_id == service.id.lower()
        real_service = real.schema.services.get(service_id)
        assert real_service is not None, f"service {service_id} not in the real schema"
        assert service.name == real_service.name
        real_actions = {a.name: a for a in real_service.actions}
        assert len({a.name for a in service.actions}) == len(service.actions), (
            f"{service_id}: duplicate action"
        )
        for action in service.actions:
            real_action = real_actions.get(action.name)
            assert real_action is not None, f"{service.name}.{action.name} not in the real schema"
            assert _action_key(action) == _action_key(real_action), f"{service.name}.{action.name}"


def test_errors_match_real(real: Parsed) -> None:
    missing_in_real = [name for name in REQUIRED_ERRORS if name not in real.schema.errors]
    assert missing_in_real == ["MAX_FILE_SIZE_EXCEEDED"], "the real catalogue changed: update the brief list"
    for name in REQUIRED_ERRORS:
        if name in real.schema.errors:
            assert name in SCHEMA.errors, f"required error {name} not declared"
    for name, error in SCHEMA.errors.items():
        assert error.name == name
        assert error == real.schema.errors.get(name), name
    real_order = [name for name in real.schema.errors if name in SCHEMA.errors]
    assert list(SCHEMA.errors) == real_order


# ------------------------------------------------------------------------------------ (e) rendered XML


def test_rendered_top_level_structure_matches_real(real: Parsed, rendered: Parsed, real_bytes: bytes) -> None:
    data = render_schema_xml(SCHEMA)
    assert data.splitlines()[0] == real_bytes.splitlines()[0] == b'<?xml version="1.0"?>'
    for doc in (real.root, rendered.root):
        assert doc.tag == "xml"
        assert doc[0].tag is ET.Comment
        assert re.fullmatch(r" Generated on date \d\d/\d\d/\d\d \d\d:\d\d:\d\d ", doc[0].text)
    assert list(rendered.root.attrib) == list(real.root.attrib) == ["apiVersion", "generatedDate"]
    assert rendered.root.attrib["apiVersion"] == real.root.attrib["apiVersion"]
    assert [el.tag for el in rendered.root[1:]] == [el.tag for el in real.root[1:]]
    assert len(rendered.root.find("plugins")) == 0

    def configuration(doc: ET.Element) -> list:
        return [
            (
                conf.tag,
                conf.get("type"),
                [(f.tag, f.get("type"), f.get("alias"), f.get("volatile")) for f in conf],
            )
            for conf in doc.find("configurations")
        ]

    assert configuration(rendered.root) == configuration(real.root)


def test_rendered_attribute_order_matches_real(real: Parsed, rendered: Parsed) -> None:
    def layouts(doc: ET.Element) -> set[tuple[str, tuple[str, ...]]]:
        return {(el.tag, tuple(el.attrib)) for el in doc.iter() if isinstance(el.tag, str)}

    unknown = layouts(rendered.root) - layouts(real.root)
    assert not unknown, f"attribute layouts the real file never uses: {sorted(unknown)}"


def test_rendered_layout_matches_real_bytes(real: Parsed, real_bytes: bytes) -> None:
    """Rendering the real schema's errors and plain enums reproduces the real file's lines byte for byte."""
    again = (
        render_schema_xml(real.schema, int(real.root.attrib["generatedDate"])).decode("ascii").splitlines()
    )
    original = real_bytes.decode("ascii").splitlines()
    assert again[1:3] == original[1:3]  # root element and comment
    assert again[-1] == original[-1] == "</xml>"

    def section(lines: list[str], tag: str) -> list[str]:
        return lines[lines.index(f"  <{tag}>") : lines.index(f"  </{tag}>") + 1]

    assert section(again, "errors") == section(original, "errors")
    plain = [
        e.get("name") for e in real.root.find("enums") if set(e.attrib) == {"name", "enumType"}
    ]  # no plugin / deprecated flags (the model has no field for them)
    enum_lines = section(original, "enums")
    for name in plain:
        start = enum_lines.index(next(line for line in enum_lines if f'<enum name="{name}"' in line))
        end = enum_lines.index("    </enum>", start) if not enum_lines[start].endswith("/>") else start
        block = enum_lines[start : end + 1]
        got = section(again, "enums")
        got_start = got.index(block[0])
        assert got[got_start : got_start + len(block)] == block, name


def test_rendered_ordering_rules_match_real(real: Parsed) -> None:
    """The renderer's ordering rules, applied to the whole real schema, give the real file's order."""
    again = parse_schema_xml(render_schema_xml(real.schema))
    core_enums = [name for name in real.schema.enums if name not in real.plugin_enums]
    assert [name for name in again.schema.enums if name not in real.plugin_enums] == core_enums
    for name, enum in real.schema.enums.items():
        assert again.schema.enums[name].consts == enum.consts, name
    core_services = [sid for sid in real.schema.services if sid not in real.plugin_services]
    assert [sid for sid in again.schema.services if sid not in real.plugin_services] == core_services
    for sid, service in real.schema.services.items():
        assert [a.name for a in again.schema.services[sid].actions] == [a.name for a in service.actions], sid
    assert list(again.schema.errors) == list(real.schema.errors)
    # classes: dependency-first, as in the real file
    for parsed in (real, again):
        position = {name: i for i, name in enumerate(parsed.schema.classes)}
        for name, cls in parsed.schema.classes.items():
            if cls.base:
                assert position[cls.base] < position[name], f"{name} before its base {cls.base}"


def test_rendered_class_order_is_dependency_first(rendered: Parsed) -> None:
    assert set(rendered.schema.classes) == set(SCHEMA.classes)
    position = {name: i for i, name in enumerate(rendered.schema.classes)}
    for name, cls in SCHEMA.classes.items():
        if cls.base:
            assert position[cls.base] < position[name], f"{name} before its base"
    # dependencies through properties come first too (no cycles in this declaration)
    for name in SCHEMA.classes:
        for prop in SCHEMA.properties(name):
            dep = prop.array_type if prop.type in ("array", "map") else prop.type
            if dep in SCHEMA.classes and dep != name:
                assert position[dep] < position[name], f"{name} before {dep} used by {prop.name}"


def test_round_trip_reproduces_declaration(rendered: Parsed) -> None:
    back = rendered.schema
    assert back.api_version == SCHEMA.api_version
    assert back.enums == SCHEMA.enums
    assert back.classes == SCHEMA.classes
    assert back.errors == SCHEMA.errors
    assert list(back.errors) == list(SCHEMA.errors)
    assert set(back.services) == set(SCHEMA.services)
    for sid, service in SCHEMA.services.items():
        got = back.services[sid]
        assert (got.id, got.name, got.description) == (service.id, service.name, service.description)
        declared = {a.name: a for a in service.actions}
        assert {a.name: a for a in got.actions} == declared, sid
        for action_el in rendered.root.find(f"services/service[@id='{sid}']"):
            expected = declared[action_el.attrib["name"]].enable_in_multirequest
            assert action_el.get("enableInMultiRequest") == ("1" if expected else "0")


def test_escaping_round_trips() -> None:
    tricky = "a & b < c > d \"e\" 'f'\n\tg\r é ✓"
    schema = Schema(
        "1.0",
        {"KalturaX": EnumDef("KalturaX", "string", (("A", tricky),))},
        {"KalturaY": ClassDef("KalturaY", (PropDef("p", "string", description=tricky),), description=tricky)},
        {
            "y": ServiceDef(
                "y", "y", (ActionDef("a", (ParamDef("q", "string", optional=True, default=tricky),)),)
            )
        },
        {"E": ErrorDef("E", tricky, ("P",))},
    )
    data = render_schema_xml(schema)
    data.decode("ascii")  # non-ASCII goes out as character references
    back = parse_schema_xml(data).schema
    assert back.enums == schema.enums
    assert back.classes == schema.classes
    assert back.services == schema.services
    assert back.errors == schema.errors


# ----------------------------------------------------------------------------------------- (f) determinism


def test_rendering_is_deterministic() -> None:
    first = render_schema_xml(SCHEMA)
    assert render_schema_xml(SCHEMA) == first
    date = int(ET.fromstring(first).attrib["generatedDate"])
    assert 1_000_000_000 < date < 4_000_000_000
    given = render_schema_xml(SCHEMA, generated_date=1773236791)
    assert b'generatedDate="1773236791"' in given
    assert b"<!-- Generated on date 11/03/26 13:46:31 -->" in given
    assert render_schema_xml(SCHEMA, generated_date=1773236791) == given
    # the default date follows the declaration
    changed = dataclasses.replace(SCHEMA.classes["KalturaPager"], description="changed")
    other = Schema(
        SCHEMA.api_version,
        SCHEMA.enums,
        {**SCHEMA.classes, "KalturaPager": changed},
        SCHEMA.services,
        SCHEMA.errors,
    )
    assert ET.fromstring(render_schema_xml(other)).attrib["generatedDate"] != str(date)


# ------------------------------------------------------------------------------------- (g) type closure


def _check_type(where: str, type_: str, enum_type: str | None, array_type: str | None) -> None:
    if enum_type is not None:
        assert enum_type in SCHEMA.enums, f"{where}: undeclared enum {enum_type}"
        assert type_ == SCHEMA.enums[enum_type].enum_type, f"{where}: {type_} for a {enum_type}"
    elif type_ in ("array", "map"):
        assert array_type in SCHEMA.classes, f"{where}: {type_} of undeclared {array_type}"
    else:
        assert array_type is None, f"{where}: arrayType on a {type_}"
        assert type_ in SIMPLE_TYPES or type_ in SCHEMA.classes, f"{where}: undeclared type {type_}"


def test_every_referenced_type_is_declared() -> None:
    for name, cls in SCHEMA.classes.items():
        for ancestor in SCHEMA.lineage(name):
            assert ancestor.base is None or ancestor.base in SCHEMA.classes, (
                f"{ancestor.name}: base not declared"
            )
        for prop in cls.props:
            _check_type(f"{name}.{prop.name}", prop.type, prop.enum_type, prop.array_type)
            assert not (prop.is_time and prop.type != "int"), f"{name}.{prop.name}: isTime on {prop.type}"
        names = [prop.name for prop in SCHEMA.properties(name)]
        assert len(names) == len(set(names)), f"{name}: a property declared twice in its chain"
    for service in SCHEMA.services.values():
        for action in service.actions:
            where = f"{service.name}.{action.name}"
            for param in action.params:
                _check_type(f"{where}({param.name})", param.type, param.enum_type, param.array_type)
                assert param.optional == (param.default is not None), f"{where}({param.name}): default"
            if action.result_type is not None:
                _check_type(f"{where} result", action.result_type, None, action.result_array_type)
            assert action.session_required in ("always", "optional", "none"), where
            for error in action.throws:
                assert error in SCHEMA.errors, f"{where} throws undeclared {error}"
