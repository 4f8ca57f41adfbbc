"""One test per rule of how a real Kaltura server serializes declared types (kaltura/server source).

The rules live in ``ksentinel.schema.serialization`` and are written down in docs/reference-platform.md,
"Serialization". Each test shows both sides: what a real server sends for the declared type passes the
response checks, and a value no real server sends for it is still reported, with its property path.
The schema below is a small one in the real file's format, with properties shaped like real ones.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import httpx
import pytest

from ksentinel.kaltura.wire import xml_value
from ksentinel.schema import answers as response_schema
from ksentinel.schema import serialization
from ksentinel.schema.openapi import to_openapi
from ksentinel.schema.xml import parse_schema
from tests.conftest import Reference
from tests.helpers import admin_ks

SCHEMA = b"""<?xml version="1.0"?>
<xml apiVersion="22.15.0" generatedDate="1">
  <enums>
    <enum name="KalturaNullableBoolean" enumType="int">
      <const name="NULL_VALUE" value="-1"/><const name="FALSE_VALUE" value="0"/>
      <const name="TRUE_VALUE" value="1"/>
    </enum>
    <enum name="KalturaEntryStatus" enumType="string">
      <const name="ERROR_CONVERTING" value="-1"/><const name="READY" value="2"/>
      <const name="INFECTED" value="virusScan.Infected"/>
    </enum>
    <enum name="KalturaUploadTokenStatus" enumType="int">
      <const name="PENDING" value="0"/><const name="CLOSED" value="3"/>
    </enum>
  </enums>
  <classes>
    <class name="KalturaOperationAttributes" abstract="1" description=""/>
    <class name="KalturaClipAttributes" base="KalturaOperationAttributes" description="">
      <property name="offset" type="int" readOnly="0" insertOnly="0" writeOnly="0" description=""/>
    </class>
    <class name="KalturaString" description="">
      <property name="value" type="string" readOnly="0" insertOnly="0" writeOnly="0" description=""/>
    </class>
    <class name="KalturaEntry" description="">
      <property name="id" type="string" readOnly="1" insertOnly="0" writeOnly="0" description=""/>
      <property name="createdAt" type="int" readOnly="1" insertOnly="0" writeOnly="0" description=""/>
      <property name="updatedAt" type="int" readOnly="1" insertOnly="0" writeOnly="0" description=""/>
      <property name="status" type="string" enumType="KalturaEntryStatus" readOnly="1" insertOnly="0"
        writeOnly="0" description=""/>
      <property name="explicitLive" type="int" enumType="KalturaNullableBoolean" readOnly="0" insertOnly="0"
        writeOnly="0" description=""/>
      <property name="conversionQuality" type="string" readOnly="0" insertOnly="1" writeOnly="0"
        description=""/>
      <property name="rank" type="float" readOnly="1" insertOnly="0" writeOnly="0" description=""/>
      <property name="fileSize" type="bigint" readOnly="1" insertOnly="0" writeOnly="0" description=""/>
      <property name="blockAutoTranscript" type="bool" readOnly="0" insertOnly="0" writeOnly="0" description=""/>
      <property name="operationAttributes" type="array" arrayType="KalturaOperationAttributes" readOnly="0"
        insertOnly="0" writeOnly="0" description=""/>
      <property name="tagsList" type="array" arrayType="KalturaString" readOnly="0" insertOnly="0"
        writeOnly="0" description=""/>
      <property name="params" type="map" arrayType="KalturaString" readOnly="0" insertOnly="0" writeOnly="0"
        description=""/>
      <property name="token" type="KalturaToken" readOnly="1" insertOnly="0" writeOnly="0" description=""/>
    </class>
    <class name="KalturaToken" description="">
      <property name="status" type="int" enumType="KalturaUploadTokenStatus" readOnly="1" insertOnly="0"
        writeOnly="0" description=""/>
      <property name="autoFinalize" type="int" enumType="KalturaNullableBoolean" readOnly="0" insertOnly="0"
        writeOnly="0" description=""/>
      <property name="uploadedFileSize" type="float" readOnly="1" insertOnly="0" writeOnly="0" description=""/>
    </class>
  </classes>
  <services>
    <service id="entry" name="entry" description="">
      <action name="get" description="" enableInMultiRequest="1" sessionRequired="always">
        <param name="id" type="string" optional="0" description=""/>
        <result type="KalturaEntry"/>
      </action>
      <action name="count" description="" enableInMultiRequest="1" sessionRequired="always">
        <result type="int"/>
      </action>
    </service>
  </services>
  <errors/>
</xml>
"""

DOC = to_openapi(parse_schema(SCHEMA))
COMPONENTS = DOC["components"]["schemas"]


def declared(action: str) -> dict[str, Any]:
    operation = DOC["paths"][f"/api_v3/service/entry/action/{action}"]["post"]
    result = response_schema.result_schema(operation)
    assert result is not None
    return result


def judge(entry: dict[str, Any]) -> list[str]:
    return response_schema.problems({"objectType": "KalturaEntry", **entry}, declared("get"), COMPONENTS)


def judge_xml(body: str) -> list[str]:
    result = ET.fromstring(body).find("result")
    assert result is not None
    return response_schema.problems(xml_value(result), declared("get"), COMPONENTS)


# ---- KalturaObject::generateFromObjectClass: getters are copied with no cast -----------------------
def test_nullable_boolean_ints_come_as_json_booleans() -> None:
    # KalturaObject.php: the isNullableBoolean "(int)" cast is commented out, so a PHP bool goes out
    assert judge({"explicitLive": False}) == []
    assert judge({"explicitLive": True, "token": {"objectType": "KalturaToken", "autoFinalize": False}}) == []
    assert judge({"explicitLive": 1}) == []
    # a boolean for an int that is not a nullable boolean is not something PHP's getters give
    assert judge({"createdAt": True}) == ["$.createdAt: True is not of type integer"]
    # and a nullable boolean is still one of -1, 0, 1
    assert judge({"explicitLive": 7}) == ["$.explicitLive: 7 is not one of the declared values"]


def test_a_number_may_come_where_string_is_declared() -> None:
    # the getter returns the int the column holds: "conversionQuality": 9851841 on real servers
    assert judge({"conversionQuality": 9851841}) == []
    assert judge({"conversionQuality": 2.5}) == []
    assert judge({"conversionQuality": {"a": 1}})[0].startswith(
        "$.conversionQuality: {'a': 1} is not of type"
    )
    assert judge({"conversionQuality": True}) == ["$.conversionQuality: True is not of type string"]


def test_string_enums_come_as_numbers_from_int_columns() -> None:
    # entry.status is an INT column; coreToApi passes core values through (kPluginableEnumsManager)
    assert judge({"status": 2}) == []
    assert judge({"status": "2"}) == []
    assert judge({"status": "virusScan.Infected"}) == []
    assert judge({"status": 99}) == ["$.status: '99' is not one of the declared values"]


def test_ints_may_come_as_decimal_text_but_dates_stay_wrong() -> None:
    # BIGINT columns hydrate as PHP strings; custom-data values keep the type they were stored with
    assert judge({"fileSize": "1048576", "createdAt": "1700000000"}) == []
    assert judge({"token": {"objectType": "KalturaToken", "status": "3"}}) == []
    found = judge({"createdAt": "2026-01-01T00:00:00+00:00"})
    assert found == ["$.createdAt: '2026-01-01T00:00:00+00:00' is not of type integer"]
    assert judge({"createdAt": 1.5}) == ["$.createdAt: 1.5 is not of type integer"]


def test_floats_may_come_as_numeric_text() -> None:
    assert (
        judge({"rank": "2.5", "token": {"objectType": "KalturaToken", "uploadedFileSize": "1048576"}}) == []
    )
    assert judge({"rank": 3}) == []
    assert judge({"rank": "high"})[0].startswith("$.rank: 'high'")


def test_bools_may_come_as_zero_or_one() -> None:
    assert judge({"blockAutoTranscript": False}) == []
    assert judge({"blockAutoTranscript": 1}) == []
    assert judge({"blockAutoTranscript": "0"}) == []
    assert judge({"blockAutoTranscript": 2}) == ["$.blockAutoTranscript: 2 is not of type boolean"]


# ---- KalturaJsonSerializer::unsetNull --------------------------------------------------------------
def test_json_never_carries_null_properties() -> None:
    # unsetNull drops every null: a JSON null property is not something the real serializer writes
    assert judge({}) == []
    assert judge({"createdAt": None}) == ["$.createdAt: None is not of type integer"]


def test_renamed_and_undeclared_properties_are_still_drift() -> None:
    # what --fault schema-drift does to entries
    found = judge({"updated_at": 1700000000, "createdAt": "2026-01-01T00:00:00+00:00"})
    assert "$.updated_at: unexpected property (KalturaEntry declares no 'updated_at')" in found
    assert "$.createdAt: '2026-01-01T00:00:00+00:00' is not of type integer" in found


def test_a_plugin_class_the_schema_file_lacks_is_not_judged() -> None:
    # a real server with more plugins than the schema file sends their subclasses (the public OVP
    # file lacks e.g. KalturaAccessControlDrmPolicyAction, which real playback contexts carry)
    plugin = {"objectType": "KalturaDrmPluginToken", "anything": {"x": 1}}
    assert judge({"token": plugin}) == []
    assert judge({"operationAttributes": [{"objectType": "KalturaPluginAttributes", "offset": "x"}]}) == []
    # a class the schema does declare is judged, also where it is not the declared one
    assert judge({"token": {"objectType": "KalturaString", "value": "a"}}) != []
    assert judge({"token": {"objectType": "KalturaToken", "status": "2026-01-01"}}) != []


# ---- json_encode of PHP arrays ---------------------------------------------------------------------
def test_an_empty_map_is_a_json_empty_array() -> None:
    # KalturaAssociativeArray::toArray() of nothing is array(), which json_encode writes as []
    assert judge({"params": []}) == []
    assert judge({"params": {"k": {"objectType": "KalturaString", "value": 5}}}) == []
    assert judge({"params": [1]})[0].startswith("$.params")


# ---- KalturaXmlSerializer: text only ---------------------------------------------------------------
XML_ENTRY = (
    '<?xml version="1.0" encoding="utf-8"?><xml><result><objectType>KalturaEntry</objectType>'
    "<id>0_abc</id><createdAt>1700000000</createdAt><updatedAt></updatedAt><status>2</status>"
    "<explicitLive>0</explicitLive><conversionQuality>9851841</conversionQuality><rank>2.5</rank>"
    "<fileSize>1048576</fileSize><blockAutoTranscript>0</blockAutoTranscript>"
    "<operationAttributes></operationAttributes>"
    "<tagsList><item><objectType>KalturaString</objectType><value>a</value></item></tagsList>"
    "<params><item><itemKey>k</itemKey><objectType>KalturaString</objectType><value>1</value></item></params>"
    "<token><objectType>KalturaToken</objectType><status>3</status><autoFinalize>1</autoFinalize>"
    "<uploadedFileSize>1048576</uploadedFileSize></token>"
    "</result><executionTime>0.01</executionTime></xml>"
)


def test_xml_text_is_read_by_the_declared_types() -> None:
    # serializePrimitive writes text; bool as 1/0; null as an empty element (ignoreNull=0)
    assert judge_xml(XML_ENTRY) == []
    result = ET.fromstring(XML_ENTRY).find("result")
    value = serialization.typed(xml_value(result), declared("get"), COMPONENTS)
    assert value["createdAt"] == 1700000000
    assert value["blockAutoTranscript"] is False
    assert value["rank"] == 2.5
    assert value["token"] == {
        "objectType": "KalturaToken",
        "status": 3,
        "autoFinalize": 1,
        "uploadedFileSize": 1048576,
    }
    assert "updatedAt" not in value  # empty element: null, which JSON would have left out


def test_an_empty_xml_array_stays_an_array() -> None:
    # serializeArray of nothing writes nothing: <operationAttributes></operationAttributes>
    result = ET.fromstring(XML_ENTRY).find("result")
    value = serialization.typed(xml_value(result), declared("get"), COMPONENTS)
    assert value["operationAttributes"] == []
    assert value["tagsList"] == [{"objectType": "KalturaString", "value": "a"}]
    assert value["params"] == {"k": {"objectType": "KalturaString", "value": "1"}}


def test_xml_that_no_server_writes_is_still_caught() -> None:
    drifted = XML_ENTRY.replace("<createdAt>1700000000</createdAt>", "<createdAt>2026-01-01</createdAt>")
    assert judge_xml(drifted) == ["$.createdAt: '2026-01-01' is not of type integer"]
    renamed = XML_ENTRY.replace("<updatedAt></updatedAt>", "<updated_at>1</updated_at>")
    assert judge_xml(renamed) == ["$.updated_at: unexpected property (KalturaEntry declares no 'updated_at')"]


def test_scalar_results_are_typed_too() -> None:
    # a count answers <result>3</result> in XML and 3 in JSON
    assert response_schema.problems("3", declared("count"), COMPONENTS) == []
    assert response_schema.problems(3, declared("count"), COMPONENTS) == []
    assert response_schema.problems("three", declared("count"), COMPONENTS) != []


# ---- the reference platform writes what the real server writes ---------------------------------------
def call(http: httpx.Client, ref: Reference, action: str, fmt: int, **params: Any) -> httpx.Response:
    service, name = action.split(".")
    response = http.post(f"{ref.url}/api_v3/service/{service}/action/{name}?format={fmt}", json=params)
    response.raise_for_status()
    return response


def without_empty_text(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_empty_text(v) for k, v in value.items() if v != ""}
    if isinstance(value, list):
        return [without_empty_text(v) for v in value]
    return value


def served_document(http: httpx.Client, ref: Reference) -> dict[str, Any]:
    schema = http.get(f"{ref.url}/api_v3/api_schema.php")
    return to_openapi(parse_schema(schema.content))


@pytest.mark.parametrize(
    ("action", "make"),
    [
        ("uploadToken.get", lambda token, entry: {"uploadTokenId": token}),
        ("media.get", lambda token, entry: {"entryId": entry}),
        (
            "media.list",
            lambda token, entry: {"filter": {"objectType": "KalturaMediaEntryFilter", "idEqual": entry}},
        ),
    ],
)
def test_json_and_xml_answers_of_one_call_judge_alike(
    reference: Reference, http: httpx.Client, action: str, make: Any
) -> None:
    ks = admin_ks(reference.p1)
    token = call(
        http, reference, "uploadToken.add", 1, ks=ks, uploadToken={"objectType": "KalturaUploadToken"}
    )
    entry = call(
        http, reference, "media.add", 1, ks=ks, entry={"objectType": "KalturaMediaEntry", "mediaType": 1}
    )
    params = make(token.json()["id"], entry.json()["id"])
    as_json = call(http, reference, action, 1, ks=ks, **params).json()
    as_xml = xml_value(
        ET.fromstring(call(http, reference, action, 2, ks=ks, **params).content).find("result")
    )
    assert as_xml != as_json  # the XML is text only...
    document = served_document(http, reference)
    components = document["components"]["schemas"]
    service, name = action.split(".")
    operation = next(
        item["post"]
        for path, item in document["paths"].items()
        if path.lower() == f"/api_v3/service/{service}/action/{name}".lower()
    )
    result = response_schema.result_schema(operation)
    assert result is not None
    # ...and read by the declared types it is the JSON answer, which both pass
    # (an empty string is null or "" in XML; JSON leaves the null out: both read as "no text")
    assert without_empty_text(serialization.typed(as_xml, result, components)) == without_empty_text(
        serialization.typed(as_json, result, components)
    )
    assert response_schema.problems(as_json, result, components) == []
    assert response_schema.problems(as_xml, result, components) == []


def test_the_reference_writes_php_types(reference: Reference, http: httpx.Client) -> None:
    ks = admin_ks(reference.p1)
    token = call(
        http, reference, "uploadToken.add", 1, ks=ks, uploadToken={"objectType": "KalturaUploadToken"}
    )
    assert token.json()["autoFinalize"] is False  # UploadToken::getAutoFinalize: memcache miss
    entry = call(
        http, reference, "media.add", 1, ks=ks, entry={"objectType": "KalturaMediaEntry", "mediaType": 1}
    ).json()
    assert isinstance(entry["status"], int) and isinstance(entry["type"], int)  # string enums, INT columns
    assert entry["operationAttributes"] == [] and entry["blockAutoTranscript"] is False
    raw = call(http, reference, "media.get", 1, ks=ks, entryId=entry["id"]).text
    assert '"objectType":"KalturaMediaEntry"}' in raw  # unsetNull adds objectType after the properties
    assert "null" not in json.dumps(json.loads(raw))
