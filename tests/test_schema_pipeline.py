"""The schema pipeline: XML schema -> model (``schema.xml``) -> scope (``schema.scope``) -> OpenAPI 3.1
(``schema.openapi``), fetched from a server (``schema.fetch``) or read from a file (``schema.command``).

The real schema (``shared/data/kaltura-ovp-api-schema-22.15.0.xml``, or ``$KSENTINEL_KALTURA_SCHEMA``) is
only read here, never copied into the project.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate as validate_openapi
from openapi_spec_validator.schemas import openapi_v31_schema_validator

from ksentinel.errors import ConfigError, TargetError
from ksentinel.kaltura.transport import Headers, HttpRequest, HttpResponse
from ksentinel.reference.apidef import SCHEMA
from ksentinel.reference.schema_xml import render_schema_xml
from ksentinel.schema.answers import result_schema
from ksentinel.schema.command import Summary, render_openapi, write_openapi
from ksentinel.schema.errors import SchemaError
from ksentinel.schema.fetch import fetch_schema, schema_url
from ksentinel.schema.model import Schema
from ksentinel.schema.openapi import EXCEPTION, to_openapi
from ksentinel.schema.scope import DEFAULT_DESTRUCTIVE, Scope
from ksentinel.schema.serialization import typed
from ksentinel.schema.xml import MAX_SCHEMA_BYTES, parse_schema
from tests.conftest import Reference
from tests.helpers import admin_ks, is_error, raw_call, real_schema_path, upload_entry

COMPONENT_NAME = re.compile(r"^[a-zA-Z0-9.\-_]+$")
REF = "#/components/schemas/"


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def real_bytes() -> bytes:
    path = real_schema_path()
    return path.read_bytes()


@pytest.fixture(scope="module")
def real(real_bytes: bytes) -> Schema:
    return parse_schema(real_bytes)


@pytest.fixture(scope="module")
def real_doc(real: Schema) -> dict[str, Any]:
    return to_openapi(real)


@pytest.fixture(scope="module")
def ref_doc() -> dict[str, Any]:
    return to_openapi(SCHEMA)


def validator(doc: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """A JSON Schema validator for ``schema`` whose ``#/components/...`` references resolve in ``doc``."""
    return jsonschema.Draft202012Validator({**schema, "components": doc["components"]})


def component(doc: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    return validator(doc, {"$ref": REF + name})


def operation(doc: dict[str, Any], service_id: str, action: str) -> dict[str, Any]:
    return doc["paths"][f"/api_v3/service/{service_id}/action/{action}"]["post"]


def response_validator(doc: dict[str, Any], service_id: str, action: str) -> jsonschema.Draft202012Validator:
    schema = operation(doc, service_id, action)["responses"]["200"]["content"]["application/json"]["schema"]
    return validator(doc, schema)


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(value) for value in node))
    return set()


# ------------------------------------------------------------------------------------------ parsing (xml)


def test_parses_the_full_real_schema(real: Schema) -> None:
    assert real.api_version == "22.15.0"
    assert len(real.enums) == 312
    assert len(real.classes) == 674
    assert len(real.services) == 111
    assert sum(len(service.actions) for service in real.services.values()) == 884
    assert len(real.errors) == 653
    # the attributes the model gained for the real file
    assert sum(enum.plugin is not None for enum in real.enums.values()) == 10
    assert sum(enum.deprecated for enum in real.enums.values()) == 9
    props = [prop for cls in real.classes.values() for prop in cls.props]
    assert sum(prop.requires_permissions is not None for prop in props) == 77
    assert sum(prop.values_enum_type is not None for prop in props) == 22
    assert sum(prop.multi_lingual for prop in props) == 6
    actions = [action for service in real.services.values() for action in service.actions]
    assert sum(action.action_alias is not None for action in actions) == 20
    assert sum(service.plugin is not None for service in real.services.values()) == 50
    assert real.services["metadata_metadata"].name == "metadata"
    assert real.action("BASEENTRY", "addfromuploadedfile") is not None
    status = real.property("KalturaMediaEntry", "status")
    assert status is not None and (status.enum_type, status.read_only) == ("KalturaEntryStatus", True)
    assert [p.name for p in real.properties("KalturaMediaEntry")][:2] == ["id", "name"]  # base first


def test_parse_of_rendered_reference_schema_round_trips() -> None:
    assert parse_schema(render_schema_xml(SCHEMA)) == SCHEMA


def test_parse_render_reproduces_the_real_file_lines(real: Schema, real_bytes: bytes) -> None:
    """Every attribute the parser keeps is rendered back exactly (only the plugins section and the
    order of plugin-contributed items differ)."""
    again = render_schema_xml(real, 1773236791).decode("ascii").splitlines()
    original = real_bytes.decode("ascii").splitlines()

    def lines(text: list[str]) -> set[str]:
        start, end = (
            text.index("  <plugins>" if "  <plugins>" in text else "  <plugins/>"),
            text.index("  <errors>"),
        )
        return {line.strip() for line in text[:start] + text[end:]}

    assert lines(original) - lines(again) <= {
        line.strip() for line in original if "<responseProfile " in line
    }
    assert parse_schema(render_schema_xml(real)) == real


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE xml [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<xml apiVersion="1"><services><service id="s" name="s" description="&lol9;"/></services></xml>
"""
MINIMAL = (
    b'<xml apiVersion="1"><services><service id="s" name="s"><action name="a"/></service></services></xml>'
)


def external_entity(url: str) -> bytes:
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE xml [<!ENTITY ext SYSTEM "{url}">]>\n'
        '<xml apiVersion="1"><services><service id="s" name="s" description="x">&ext;</service></services></xml>'
    ).encode()


HOSTILE = {
    "billion laughs": (
        BILLION_LAUGHS,
        "schema XML rejected: entity declarations are not allowed (the DTD declares entities)",
    ),
    "internal DTD": (
        b'<!DOCTYPE xml [<!ELEMENT xml ANY>]><xml apiVersion="1"/>',
        "schema XML rejected: a DTD (<!DOCTYPE ...>) is not allowed",
    ),
    "external DTD": (
        b'<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/kaltura.dtd"><xml apiVersion="1"/>',
        "schema XML rejected: a DTD is not allowed (it refers to an external DTD)",
    ),
    "truncated": (MINIMAL[:-20], "schema XML rejected: not well-formed (unclosed token: line 1, column 73)"),
    "html page": (
        b"<!DOCTYPE html>\n<html><body><h1>Login</h1></body></html>",
        "not a Kaltura schema: the document is an HTML page",
    ),
    "plain text": (b"KalturaClient.xml was not found", "schema XML rejected: not well-formed (syntax error"),
    "empty": (b"  \n", "schema rejected: the document is empty"),
    "wrong root": (
        b'<schema apiVersion="1"/>',
        "not a Kaltura schema: the root element is <schema>, expected <xml>",
    ),
    "no api version": (
        MINIMAL.replace(b' apiVersion="1"', b""),
        "not a Kaltura schema: the <xml> root has no apiVersion",
    ),
    "no services": (
        b'<xml apiVersion="1"><enums/><services/></xml>',
        "not a Kaltura schema: it declares no services",
    ),
    "action without name": (
        MINIMAL.replace(b'<action name="a"/>', b"<action/>"),
        "schema rejected: service 's': an <action> has no name",
    ),
    "oversized": (
        b" " * (MAX_SCHEMA_BYTES + 1),
        f"schema rejected: {MAX_SCHEMA_BYTES + 1} bytes is over the limit",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_bad_schema_documents_are_rejected_with_one_line(case: str) -> None:
    data, expected = HOSTILE[case]
    with pytest.raises(SchemaError) as caught:
        parse_schema(data)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(expected), message
    assert isinstance(caught.value, ConfigError)


def test_parse_schema_size_cap_is_adjustable() -> None:
    assert parse_schema(MINIMAL, max_bytes=len(MINIMAL)).services["s"].actions[0].name == "a"
    with pytest.raises(SchemaError, match="over the limit of 10 bytes"):
        parse_schema(MINIMAL, max_bytes=10)


#: an apiVersion 3.x schema: no action says sessionRequired
OLD_SCHEMA = b"""<?xml version="1.0" encoding="UTF-8"?>
<xml apiVersion="3.1.6" generatedDate="1380000000">
  <classes>
    <class name="KalturaSessionInfo"><property name="ks" type="string"/></class>
  </classes>
  <services>
    <service id="session" name="session">
      <action name="start"><param name="secret" type="string"/><result type="string"/></action>
      <action name="startWidgetSession"><param name="widgetId" type="string"/><result type="string"/></action>
      <action name="end"><result/></action>
      <action name="get"><result type="KalturaSessionInfo"/></action>
    </service>
    <service id="system" name="system">
      <action name="ping"><result type="bool"/></action>
      <action name="getTime"><result type="int"/></action>
    </service>
    <service id="baseentry" name="baseEntry">
      <action name="count"><result type="int"/></action>
    </service>
    <service id="newthing_widget" name="widget" plugin="newthing">
      <action name="make"><result type="int"/></action>
    </service>
  </services>
</xml>
"""


def test_an_old_schema_without_session_required_is_not_taken_to_need_a_ks_everywhere() -> None:
    """What the server serves without a KS (docs/contracts.md, "Old schemas") is not judged as needing one."""
    import requests
    import schemathesis
    from schemathesis.errors import FailureGroup

    from ksentinel.contract.kaltura_checks import no_success_without_ks

    old = parse_schema(OLD_SCHEMA)
    session = {
        f"{service.name}.{action.name}": action.session_required
        for service in old.services.values()
        for action in service.actions
    }
    assert session == {
        "session.start": "none",
        "session.startWidgetSession": "none",
        "session.end": "optional",
        "session.get": "always",
        "system.ping": "none",
        "system.getTime": "none",
        "baseEntry.count": "always",
        "widget.make": "always",
    }
    # a schema that says wins over the defaults, whatever its version
    said = OLD_SCHEMA.replace(b'<action name="ping">', b'<action name="ping" sessionRequired="always">')
    assert parse_schema(said).action("system", "ping")[1].session_required == "always"

    doc = to_openapi(old, server_url="http://kaltura.invalid")
    assert "security" not in operation(doc, "session", "start")
    assert operation(doc, "baseentry", "count")["security"] == [{"ks": []}]
    schema = schemathesis.openapi.from_dict(doc)

    def verdict(service_id: str, action: str, result: Any) -> str | None:
        """The no_success_without_ks failure of ``result`` answered to a request without a KS."""
        case = schema[f"/api_v3/service/{service_id}/action/{action}"]["POST"].Case(query={"format": "1"})
        request = requests.Request("POST", f"http://kaltura.invalid{case.path}", params=case.query).prepare()
        response = schemathesis.Response(
            200, {"content-type": ["application/json"]}, json.dumps(result).encode(), request, 0.01, True
        )
        try:
            case.validate_response(response, checks=[no_success_without_ks])
        except FailureGroup as group:
            return str(group.exceptions[0].message)
        return None

    assert verdict("session", "start", "djJ8MTAxfA==") is None
    assert verdict("session", "startWidgetSession", "djJ8MTAxfA==") is None
    assert verdict("session", "end", None) is None
    assert verdict("system", "ping", True) is None
    assert verdict("system", "getTime", 1700000000) is None
    assert verdict("baseentry", "count", 3) == (
        "no_success_without_ks: baseEntry.count succeeded without a KS although it requires one"
    )
    assert verdict("session", "get", {"objectType": "KalturaSessionInfo", "ks": ""}) is not None


def test_external_entities_are_never_fetched(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        for url in (secret.as_uri(), "file:///etc/passwd", f"http://127.0.0.1:{port}/x.xml"):
            with pytest.raises(SchemaError) as caught:
                parse_schema(external_entity(url))
            message = str(caught.value)
            assert message == (
                "schema XML rejected: entity declarations are not allowed (the DTD declares external entities)"
            )
            assert "TOP-SECRET" not in message and "root:" not in message
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):  # nobody tried to connect
            listener.accept()


# --------------------------------------------------------------------------------------------------- scope


def test_scope_globs_are_case_insensitive_and_exclude_wins() -> None:
    scope = Scope(
        include=["baseEntry.*", "*.list", "media.get", "system"], exclude=["*.delete", "BASEENTRY.ADD"]
    )
    assert scope.includes("baseEntry", "get")
    assert scope.includes("baseentry", "UPDATE")
    assert scope.includes("category", "list")
    assert scope.includes("media", "get")
    assert scope.includes("system", "ping")  # a bare service name means service.*
    assert not scope.includes("media", "update")
    assert not scope.includes("baseEntry", "delete")
    assert not scope.includes("baseEntry", "add")
    assert scope.includes("baseEntry", "addFromUploadedFile")
    assert Scope().includes("anything", "atAll")
    assert not Scope(include=[]).includes("baseEntry", "get")


def test_default_destructive_actions() -> None:
    scope = Scope()
    assert scope.destructive == DEFAULT_DESTRUCTIVE
    for service, action in [
        ("baseEntry", "delete"),
        ("media", "update"),
        ("media", "updateContent"),
        ("baseEntry", "approveReplace"),
        ("baseEntry", "flag"),
        ("baseEntry", "reject"),
        ("session", "end"),
        ("user", "resetPassword"),
        ("user", "loginDataResetPassword"),
        ("liveStream", "regenerateStreamToken"),
        ("flavorAsset", "setContent"),
        ("bulk", "abort"),
    ]:
        assert scope.is_destructive(service, action), f"{service}.{action}"
    for service, action in [
        ("baseEntry", "add"),
        ("baseEntry", "get"),
        ("media", "list"),
        ("media", "count"),
        ("uploadToken", "upload"),
        ("media", "addFromUploadedFile"),
        ("session", "start"),
        ("baseEntry", "clone"),
        ("system", "ping"),
    ]:
        assert not scope.is_destructive(service, action), f"{service}.{action}"
    assert Scope(destructive=["media.*"]).is_destructive("MEDIA", "get")


def test_default_destructive_never_marks_a_read(real: Schema) -> None:
    scope = Scope()
    reads = re.compile(r"^(get|list|count|search|serve)")
    marked = [
        f"{service.name}.{action.name}"
        for service in real.services.values()
        for action in service.actions
        if scope.destroys(service, action.name)
    ]
    assert not [name for name in marked if reads.match(name.split(".")[1])]
    assert "baseEntry.delete" in marked and "category.update" in marked


def test_scope_from_mapping_validates_keys_and_values() -> None:
    scope = Scope.from_mapping({"include": ["baseEntry.*"], "exclude": ["*.delete"]})
    assert scope.include == ("baseEntry.*",) and scope.exclude == ("*.delete",)
    assert scope.destructive == DEFAULT_DESTRUCTIVE
    bad = {
        "exlude": "unknown key 'exlude' in [contract]; did you mean 'exclude'?",
        "destructiv": "unknown key 'destructiv' in [contract]; did you mean 'destructive'?",
        "checks": "unknown key 'checks' in [contract] (known keys: include, exclude, destructive, fuzz_include)",
    }
    for key, message in bad.items():
        with pytest.raises(ConfigError) as caught:
            Scope.from_mapping({key: ["x.y"]})
        assert str(caught.value) == message
    with pytest.raises(ConfigError, match=r"^\[contract\] include must be a list of patterns"):
        Scope.from_mapping({"include": "baseEntry.*"})
    with pytest.raises(
        ConfigError, match=r"^\[contract\] exclude: 'base entry\.\*' is not a 'service\.action' glob"
    ):
        Scope.from_mapping({"exclude": ["base entry.*"]})
    with pytest.raises(ConfigError, match=r"^\[probes\] include: 3 is not"):
        Scope.from_mapping({"include": [3]}, section="probes")


def test_scope_apply_keeps_only_what_the_actions_reach(real: Schema) -> None:
    scoped = Scope(include=["uploadToken.*"], exclude=["*.delete"]).apply(real)
    assert list(scoped.services) == ["uploadtoken"]
    assert "delete" not in {a.name for a in scoped.services["uploadtoken"].actions}
    assert {"KalturaUploadToken", "KalturaUploadTokenFilter", "KalturaFilterPager", "KalturaFilter"} <= set(
        scoped.classes
    )
    assert "KalturaUploadTokenStatus" in scoped.enums
    assert "KalturaMediaEntry" not in scoped.classes
    assert "KalturaBaseEntryFilter" not in scoped.classes  # a sibling through the KalturaFilter base
    assert scoped.errors == real.errors
    # a declared class brings its subclasses (they may stand in for it)
    entries = Scope(include=["baseEntry.get"]).apply(real)
    assert {"KalturaBaseEntry", "KalturaMediaEntry", "KalturaPlayableEntry"} <= set(entries.classes)
    # every reached type is in the scoped schema
    for cls in scoped.classes.values():
        for prop in cls.props:
            for name in (prop.type, prop.array_type):
                if name in real.classes:
                    assert name in scoped.classes, f"{cls.name}.{prop.name}"
            if prop.enum_type in real.enums:
                assert prop.enum_type in scoped.enums


# -------------------------------------------------------------------------------------------------- openapi


def test_full_real_schema_converts_to_a_consistent_openapi_document(
    real: Schema, real_doc: dict[str, Any]
) -> None:
    assert real_doc["openapi"] == "3.1.0"
    assert real_doc["info"]["version"] == real_doc["x-kaltura-api-version"] == "22.15.0"
    # the OpenAPI 3.1 document schema, as openapi-spec-validator applies it
    assert not list(openapi_v31_schema_validator.iter_errors(real_doc))
    assert len(real_doc["paths"]) == 884
    schemas = real_doc["components"]["schemas"]
    assert all(COMPONENT_NAME.match(name) for name in schemas)
    assert set(real.classes) <= set(schemas)  # one per class (+ ".exact" ones and undeclared stubs)
    assert schemas["KalturaDocumentEntry"]["x-kaltura-undeclared"] is True  # a plugin class the file omits
    operation_ids = [op["post"]["operationId"] for op in real_doc["paths"].values()]
    assert len(set(operation_ids)) == 884
    for ref in refs(real_doc):  # every reference resolves
        node: Any = real_doc
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(node, dict) and part in node, ref
            node = node[part]
    for name, schema in schemas.items():
        if "discriminator" in schema:
            mapping = schema["discriminator"]["mapping"]
            assert [{"$ref": target} for target in mapping.values()] == schema["oneOf"]
            for class_name, target in mapping.items():
                assert schemas[target[len(REF) :]]["properties"]["objectType"]["const"] == class_name, name
    for path in real_doc["paths"].values():
        for link in path["post"]["responses"]["200"].get("links", {}).values():
            assert link["operationId"] in operation_ids
    # abstract classes have no concrete schema
    assert "KalturaFilter.exact" not in schemas and "oneOf" in schemas["KalturaFilter"]
    assert json.loads(render_openapi(real_doc)) == real_doc


def test_openapi_spec_validator_accepts_the_reference_and_a_scoped_real_document(
    real: Schema, ref_doc: dict[str, Any]
) -> None:
    validate_openapi(ref_doc)
    validate_openapi(to_openapi(real, scope=Scope(include=["uploadToken.*", "session.*", "system.*"])))


@pytest.mark.slow
def test_openapi_spec_validator_accepts_the_full_real_document(real_doc: dict[str, Any]) -> None:
    """About 15 s: openapi-spec-validator checks each of the ~10,000 schema objects in Python."""
    validate_openapi(real_doc)


def test_golden_shape_of_base_entry_get(ref_doc: dict[str, Any]) -> None:
    assert operation(ref_doc, "baseentry", "get") == {
        "operationId": "baseEntry.get",
        "tags": ["baseEntry"],
        "summary": "baseEntry.get",
        "parameters": [{"$ref": "#/components/parameters/format"}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "entryId": {"type": "string"},
                            "version": {"type": "integer", "default": -1},
                        },
                        "required": ["entryId"],
                        "additionalProperties": False,
                    }
                }
            },
        },
        "responses": {
            "200": {
                "description": "The result, or a KalturaAPIException (Kaltura reports errors with HTTP 200).",
                "content": {
                    "application/json": {
                        "schema": {"anyOf": [{"$ref": REF + "KalturaBaseEntry"}, {"$ref": REF + EXCEPTION}]}
                    }
                },
            }
        },
        "security": [{"ks": []}],
        "x-kaltura-service-id": "baseentry",
        "x-kaltura-destructive": False,
        "x-kaltura-session-required": "always",
    }
    components = ref_doc["components"]
    assert components["parameters"]["format"]["schema"] == {"type": "string", "const": "1"}
    assert components["parameters"]["format"]["required"] is True
    assert components["securitySchemes"]["ks"] == {
        "type": "apiKey",
        "in": "query",
        "name": "ks",
        "description": "A Kaltura session (KS) from session.start.",
    }


def test_operation_details(ref_doc: dict[str, Any]) -> None:
    start = operation(ref_doc, "session", "start")
    assert "security" not in start and start["x-kaltura-session-required"] == "none"
    assert start["x-kaltura-throws"] == ["START_SESSION_ERROR"]
    assert start["summary"] == "Create a KS"
    params = start["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert params["type"] == {
        "type": "integer",
        "enum": [0, 2],
        "default": 0,
        "x-kaltura-enum": "KalturaSessionType",
    }
    assert params["userId"] == {"type": "string", "default": ""}
    assert params["partnerId"] == {"type": "integer"}  # "null": no default
    assert operation(ref_doc, "session", "end")["security"] == [{"ks": []}, {}]
    assert operation(ref_doc, "baseentry", "delete")["x-kaltura-destructive"] is True
    assert operation(ref_doc, "baseentry", "update")["x-kaltura-destructive"] is True
    add = operation(ref_doc, "baseentry", "add")
    entry_param = add["requestBody"]["content"]["application/json"]["schema"]["properties"]["entry"]
    assert entry_param == {"$ref": REF + "KalturaBaseEntry"}
    count = operation(ref_doc, "baseentry", "count")["responses"]["200"]["content"]["application/json"]
    assert count["schema"]["anyOf"][0] == {"type": "integer", "x-kaltura-type": "int"}
    ping = operation(ref_doc, "system", "ping")
    assert "requestBody" not in ping
    delete = operation(ref_doc, "uploadtoken", "delete")["responses"]["200"]["content"]["application/json"]
    assert delete["schema"]["anyOf"][0] == {"type": "null"}
    upload = operation(ref_doc, "uploadtoken", "upload")["requestBody"]
    multipart = upload["content"]["multipart/form-data"]
    assert set(upload["content"]) == {"multipart/form-data"}
    assert multipart["schema"]["required"] == ["json", "fileData"]
    assert multipart["schema"]["properties"]["fileData"] == {"type": "string", "format": "binary"}
    assert multipart["schema"]["properties"]["json"]["contentSchema"]["required"] == ["uploadTokenId"]
    assert multipart["encoding"]["json"] == {"contentType": "application/json"}
    scoped = to_openapi(SCHEMA, scope=Scope(include=["media.*"], destructive=["*.get"]))
    assert {op["post"]["operationId"].split(".")[0] for op in scoped["paths"].values()} == {"media"}
    assert operation(scoped, "media", "get")["x-kaltura-destructive"] is True
    assert operation(scoped, "media", "delete")["x-kaltura-destructive"] is False
    assert to_openapi(SCHEMA, server_url="https://kaltura.example/")["servers"] == [
        {"url": "https://kaltura.example"}
    ]
    assert "servers" not in ref_doc


def test_links_from_add_to_get_update_delete(ref_doc: dict[str, Any], real_doc: dict[str, Any]) -> None:
    links = operation(ref_doc, "baseentry", "add")["responses"]["200"]["links"]
    assert sorted(links) == ["baseEntry.delete", "baseEntry.get", "baseEntry.update"]
    assert links["baseEntry.get"] == {
        "operationId": "baseEntry.get",
        "description": "The KalturaBaseEntry that baseEntry.add created.",
        "requestBody": {"entryId": "$response.body#/id"},
        "x-schemathesis": {"merge_body": True},
    }
    token_links = operation(ref_doc, "uploadtoken", "add")["responses"]["200"]["links"]
    assert sorted(token_links) == ["uploadToken.delete", "uploadToken.get"]
    assert token_links["uploadToken.get"]["requestBody"] == {"uploadTokenId": "$response.body#/id"}
    assert "links" not in operation(ref_doc, "baseentry", "list")["responses"]["200"]
    category = operation(real_doc, "category", "add")["responses"]["200"]["links"]
    assert category["category.get"]["requestBody"] == {"id": "$response.body#/id"}
    # a bulk upload job's id is not a category id
    assert "links" not in operation(real_doc, "category", "addFromBulkUpload")["responses"]["200"]


def test_schemathesis_reads_the_links(ref_doc: dict[str, Any]) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    machine = schemathesis.openapi.from_dict(ref_doc).as_state_machine()
    rules = [name for name in dir(machine) if "___200_" in name]
    assert any("baseentry_action_add___200_baseEntry_get" in name for name in rules), rules
    assert any("uploadtoken_action_add___200_uploadToken_delete" in name for name in rules), rules


def test_polymorphic_schema_takes_subclasses_by_object_type(
    ref_doc: dict[str, Any], real_doc: dict[str, Any]
) -> None:
    for doc in (ref_doc, real_doc):
        base_entry = component(doc, "KalturaBaseEntry")
        assert base_entry.is_valid(
            {"objectType": "KalturaMediaEntry", "id": "0_abc", "mediaType": 1, "plays": 3}
        )
        assert base_entry.is_valid({"objectType": "KalturaBaseEntry", "id": "0_abc"})
        assert not base_entry.is_valid(
            {"objectType": "KalturaBaseEntry", "updated_at": 1}
        )  # renamed property
        assert not base_entry.is_valid(
            {"objectType": "KalturaBaseEntry", "mediaType": 1}
        )  # a subclass's field
        assert not base_entry.is_valid({"objectType": "KalturaNoSuchEntry"})
        assert not base_entry.is_valid({"id": "0_abc"})  # objectType is required
        assert not component(doc, "KalturaMediaEntry").is_valid({"objectType": "KalturaBaseEntry"})
    schemas = ref_doc["components"]["schemas"]
    assert schemas["KalturaBaseEntry"]["discriminator"]["propertyName"] == "objectType"
    assert "KalturaBaseEntry.exact" in schemas and "KalturaMediaEntry.exact" not in schemas
    assert "KalturaResource.exact" not in schemas  # abstract
    assert schemas["KalturaResource"]["oneOf"] == [{"$ref": REF + "KalturaUploadedFileTokenResource"}]
    media = schemas["KalturaMediaEntry"]
    names = list(media["properties"])
    assert names[:3] == ["objectType", "id", "name"]  # inherited first
    assert names.index("plays") < names.index("mediaType")
    assert media["required"] == ["objectType"] and media["additionalProperties"] is False
    loose = to_openapi(SCHEMA, strict=False)
    assert component(loose, "KalturaBaseEntry").is_valid({"objectType": "KalturaBaseEntry", "updated_at": 1})
    assert "additionalProperties" not in loose["components"]["schemas"]["KalturaBaseEntry.exact"]


def test_response_schemas_accept_the_wire_forms_and_nothing_looser(
    ref_doc: dict[str, Any], real_doc: dict[str, Any]
) -> None:
    for doc in (ref_doc, real_doc):
        entry = component(doc, "KalturaBaseEntry")
        for status, ok in [(2, True), ("2", True), (-1, True), ("-1", True), (99, False), ("banana", False)]:
            assert entry.is_valid({"objectType": "KalturaBaseEntry", "status": status}) is ok, status
        assert entry.is_valid({"objectType": "KalturaBaseEntry", "createdAt": 1700000000})
        assert not entry.is_valid({"objectType": "KalturaBaseEntry", "createdAt": "2024-01-01"})
        assert not entry.is_valid({"objectType": "KalturaBaseEntry", "createdAt": None})  # nulls are omitted
        assert not entry.is_valid({"objectType": "KalturaBaseEntry", "moderationStatus": "2"})  # an int enum
        token = component(doc, "KalturaUploadToken")
        for size, ok in [
            ("1048576", True),
            (1048576, True),
            (1.5, True),
            ("abc", False),
            ("", False),
            (True, False),
        ]:
            assert token.is_valid({"objectType": "KalturaUploadToken", "uploadedFileSize": size}) is ok, size
        assert token.is_valid({"objectType": "KalturaUploadToken", "status": 0})
        assert not token.is_valid({"objectType": "KalturaUploadToken", "status": "0"})
        error = component(doc, EXCEPTION)
        assert error.is_valid({"code": "X", "message": "m", "objectType": EXCEPTION, "args": []})
        assert error.is_valid(
            {"code": "X", "message": "m", "objectType": EXCEPTION, "args": {"ENTRY_ID": "0_x"}}
        )
        assert not error.is_valid({"code": "X", "message": "m", "objectType": EXCEPTION, "args": {"A": 1}})
        assert not error.is_valid({"code": "X", "message": "m", "objectType": EXCEPTION, "args": [1]})
        assert not error.is_valid({"message": "m", "objectType": EXCEPTION})
    # plugin values of a string enum stay strings
    real_entry = component(real_doc, "KalturaBaseEntry")
    assert real_entry.is_valid({"objectType": "KalturaBaseEntry", "status": "virusScan.Infected"})
    # a bigint: integer or integer string
    assert component(real_doc, "KalturaBulkUpload").is_valid({"objectType": "KalturaBulkUpload", "id": "12"})
    assert not component(real_doc, "KalturaBulkUpload").is_valid(
        {"objectType": "KalturaBulkUpload", "id": "1.5"}
    )
    # the request body keeps the declared types
    get = operation(ref_doc, "baseentry", "get")["requestBody"]["content"]["application/json"]["schema"]
    assert not validator(ref_doc, get).is_valid({"entryId": "0_x", "version": "1"})
    assert not validator(ref_doc, get).is_valid({"entryId": "0_x", "ks": "x"})
    responses = response_validator(ref_doc, "baseentry", "get")
    assert responses.is_valid(
        {"code": "ENTRY_ID_NOT_FOUND", "message": "m", "objectType": EXCEPTION, "args": []}
    )
    assert not responses.is_valid(None)
    assert response_validator(ref_doc, "baseentry", "delete").is_valid(None)
    assert response_validator(ref_doc, "baseentry", "count").is_valid(3)


def test_output_is_deterministic() -> None:
    first = render_openapi(to_openapi(SCHEMA))
    again = render_openapi(to_openapi(parse_schema(render_schema_xml(SCHEMA))))
    assert first == again
    assert first.endswith(b"}\n")
    text = first.decode("ascii")
    assert list(json.loads(text)) == sorted(json.loads(text))


def test_names_in_paths_and_operation_ids() -> None:
    weird = parse_schema(MINIMAL.replace(b'<action name="a"/>', b'<action name="a/../b"/>'))
    with pytest.raises(SchemaError, match="cannot be used in a URL path"):
        to_openapi(weird)
    twins = parse_schema(
        b'<xml apiVersion="1"><services><service id="plugin_x" name="x"><action name="get"/></service>'
        b'<service id="x" name="x"><action name="get"/></service></services></xml>'
    )
    ids = sorted(op["post"]["operationId"] for op in to_openapi(twins)["paths"].values())
    assert ids == ["plugin_x.get", "x.get"]  # a service name used twice: the ids tell them apart


# ----------------------------------------------------------------------------------------- fetch / command


def test_fetch_from_the_reference_platform_and_convert(reference: Reference) -> None:
    data = fetch_schema(reference.url, timeout=10.0)
    schema = parse_schema(data)
    assert schema == SCHEMA
    doc = to_openapi(schema, server_url=reference.url)
    validate_openapi(doc)
    assert doc["servers"] == [{"url": reference.url}]
    assert schema_url(reference.url + "/") == reference.url + "/api_v3/api_schema.php"
    assert schema_url(reference.url + "/api_v3/api_schema.php") == reference.url + "/api_v3/api_schema.php"


def test_reference_answers_conform_to_the_generated_responses(reference: Reference) -> None:
    doc = to_openapi(parse_schema(fetch_schema(reference.url, timeout=10.0)))
    ks = admin_ks(reference.p1)
    with httpx.Client(timeout=10.0) as http:
        entry = upload_entry(http, reference.url, ks, b"\x00" * 1024, name="schema-pipeline")
        assert response_validator(doc, "baseentry", "addFromUploadedFile").is_valid(entry)
        calls = [
            (
                "uploadToken",
                "add",
                {"uploadToken": {"objectType": "KalturaUploadToken", "fileName": "a.mp4"}},
            ),
            ("baseEntry", "get", {"entryId": entry["id"]}),
            ("media", "get", {"entryId": entry["id"]}),
            (
                "baseEntry",
                "list",
                {"filter": {"objectType": "KalturaBaseEntryFilter", "idEqual": entry["id"]}},
            ),
            ("baseEntry", "count", {}),
            ("baseEntry", "get", {"entryId": "0_nosuchentry"}),
            ("session", "get", {}),
            ("system", "ping", {}),
        ]
        components = doc["components"]["schemas"]
        for service, action, params in calls:
            _, body = raw_call(http, reference.url, service, action, ks=ks, **params)
            if not is_error(body):
                # read the way a real server writes the declared types (autoFinalize: false), as every
                # response check does; a generic validator then judges the declared types
                declared = result_schema(operation(doc, service.lower(), action))
                assert declared is not None
                body = typed(body, declared, components)
            errors = list(response_validator(doc, service.lower(), action).iter_errors(body))
            assert not errors, (service, action, body, [e.message for e in errors][:3])
        _, missing = raw_call(http, reference.url, "baseEntry", "get", ks=ks, entryId="0_nosuchentry")
        assert is_error(missing, "ENTRY_ID_NOT_FOUND")


class _FakeTransport:
    def __init__(self, status: int, body: bytes) -> None:
        self.status, self.body = status, body
        self.requests: list[HttpRequest] = []

    def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        return HttpResponse(self.status, Headers({"Content-Type": "text/html"}), self.body, 0.01)


def test_fetch_errors_are_one_line() -> None:
    not_found = _FakeTransport(404, b"<html>no</html>")
    with pytest.raises(TargetError) as caught:
        fetch_schema("https://kaltura.example", timeout=5.0, transport=not_found)
    assert str(caught.value) == (
        "https://kaltura.example/api_v3/api_schema.php did not answer with a Kaltura schema (HTTP 404)"
    )
    assert not_found.requests[0].method == "GET" and not_found.requests[0].timeout == 5.0
    with pytest.raises(TargetError) as caught:
        fetch_schema(
            "https://kaltura.example",
            timeout=5.0,
            transport=_FakeTransport(200, b"KalturaClient.xml was not found"),
        )
    assert str(caught.value) == (
        "https://kaltura.example/api_v3/api_schema.php did not answer with a Kaltura schema"
        " (HTTP 200, 'KalturaClient.xml was not found')"
    )
    with pytest.raises(TargetError, match="sent a schema over 10 bytes"):
        fetch_schema(
            "https://kaltura.example", timeout=5.0, transport=_FakeTransport(200, MINIMAL), max_bytes=10
        )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(TargetError) as caught:
            fetch_schema(f"http://127.0.0.1:{port}", timeout=5.0)
    message = str(caught.value)
    assert (
        message.startswith(f"cannot reach http://127.0.0.1:{port}/api_v3/api_schema.php: ")
        and "\n" not in message
    )
    with pytest.raises(ConfigError, match="is not an http"):
        fetch_schema("ftp://kaltura.example", timeout=5.0)


def test_write_openapi_from_a_file_and_from_a_url(tmp_path: Path, reference: Reference) -> None:
    source = tmp_path / "schema.xml"
    source.write_bytes(render_schema_xml(SCHEMA))
    out = tmp_path / "openapi.json"
    summary = write_openapi(str(source), out, Scope(include=["baseEntry.*", "system.*"]), 10.0)
    data = out.read_bytes()
    assert summary == Summary(
        source=str(source),
        output=out,
        api_version="22.15.0",
        services=2,
        actions=9,
        destructive_actions=2,
        classes=summary.classes,
        bytes_written=len(data),
    )
    assert 0 < summary.classes < len(SCHEMA.classes)
    doc = json.loads(data)
    assert "servers" not in doc and len(doc["paths"]) == 9
    assert write_openapi(str(source), out, Scope(include=["baseEntry.*", "system.*"]), 10.0) == summary
    assert out.read_bytes() == data  # same input, same bytes
    from_url = write_openapi(reference.url, tmp_path / "ref.json", None, 10.0)
    assert from_url.actions == sum(len(s.actions) for s in SCHEMA.services.values())
    assert json.loads((tmp_path / "ref.json").read_bytes())["servers"] == [{"url": reference.url}]
    with pytest.raises(ConfigError, match="no schema file at"):
        write_openapi(str(tmp_path / "missing.xml"), out, None, 10.0)
    with pytest.raises(ConfigError, match="the scope leaves no action"):
        write_openapi(str(source), out, Scope(include=["nothing.here"]), 10.0)
    with pytest.raises(ConfigError, match="no directory"):
        write_openapi(str(source), tmp_path / "nope" / "out.json", None, 10.0)
