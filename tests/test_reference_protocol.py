"""The reference platform's wire protocol over loopback HTTP, driven through ``KalturaApi``.

Every test here is also an integration test of the client (formats, encodings, multirequests, chunked
uploads, cache headers); raw httpx is used only where the bytes on the wire are the subject.
See /work/shared/docs/kaltura-api-v3.md sections 1, 2, 5, 6 and 7.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ksentinel.errors import KalturaApiError
from ksentinel.kaltura.api import ApiResponse, KalturaApi, Null
from ksentinel.reference.apidef import SCHEMA
from ksentinel.reference.services import HANDLERS
from tests.conftest import Reference, start_reference
from tests.helpers import admin_ks, user_ks

# KalturaUploadTokenStatus
PENDING, PARTIAL, FULL, CLOSED = 0, 1, 2, 3
# KalturaEntryStatus
IMPORT, PRECONVERT, READY, NO_CONTENT = 0, 1, 2, 7

Connect = Callable[..., KalturaApi]


# --- fixtures and helpers ----------------------------------------------------------------------------


@pytest.fixture
def connect() -> Iterator[Connect]:
    """``connect(url, ks, **options)``: a KalturaApi closed at teardown."""
    made: list[KalturaApi] = []

    def make(url: str, ks: str | None = None, **options: Any) -> KalturaApi:
        client = KalturaApi(url, ks=ks, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def api(reference: Reference, connect: Connect) -> KalturaApi:
    """JSON client with an ADMIN KS of partner 101."""
    return connect(reference.url, admin_ks(reference.p1, "proto-admin"))


@pytest.fixture
def quiet(reference: Reference) -> None:
    """No entry of the shared platform is transcoding, so no cache TTL is cut short by a READY due soon
    (a stored answer never outlives the next status change of any entry)."""
    store = reference.server.platform.store
    deadline = time.monotonic() + 5.0
    while (due := store.next_transition_at()) is not None and time.monotonic() < deadline:
        time.sleep(max(0.0, due - time.time()) + 0.01)


def unique(prefix: str = "proto") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def entry_filter(**fields: Any) -> dict[str, Any]:
    return {"objectType": "KalturaBaseEntryFilter", **fields}


def add_entry(api: KalturaApi, name: str, tags: str = "", **fields: Any) -> dict[str, Any]:
    """A content-less entry (baseEntry.add)."""
    return api.call(
        "baseEntry", "add", entry={"objectType": "KalturaBaseEntry", "name": name, "tags": tags, **fields}
    )


def new_token(api: KalturaApi, **fields: Any) -> dict[str, Any]:
    return api.call("uploadToken", "add", uploadToken={"objectType": "KalturaUploadToken", **fields})


def upload_media(
    api: KalturaApi, data: bytes, *, name: str, tags: str = "", chunk_size: int = 1 << 20
) -> dict[str, Any]:
    """uploadToken.add -> KalturaApi.upload_file -> baseEntry.addFromUploadedFile."""
    token = new_token(api)
    full = api.upload_file(token["id"], data, chunk_size, filename="clip.mp4")
    assert full["status"] == FULL, full
    return api.call(
        "baseEntry",
        "addFromUploadedFile",
        uploadTokenId=token["id"],
        entry={"objectType": "KalturaMediaEntry", "name": name, "tags": tags, "mediaType": 1},
    )


def wait_for_status(api: KalturaApi, entry_id: str, status: int, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        entry = api.call("baseEntry", "get", entryId=entry_id)
        if entry["status"] == status or time.monotonic() > deadline:
            assert entry["status"] == status, entry
            return entry
        time.sleep(0.05)


def content_of(http: httpx.Client, entry: dict[str, Any]) -> bytes:
    response = http.get(entry["downloadUrl"])
    assert response.status_code == 200, response
    return response.content


def error_code(response: ApiResponse) -> str | None:
    return response.error.code if response.error is not None else None


def as_xml_text(value: Any) -> Any:
    """What a JSON value looks like once written as XML and read back: scalars as text, nulls and
    empty strings/lists as nothing (XML cannot tell them apart)."""
    if isinstance(value, dict):
        out = {k: as_xml_text(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in ("", [], None)}
    if isinstance(value, list):
        return [as_xml_text(v) for v in value]
    if isinstance(value, bool):
        return "1" if value else "0"
    return "" if value is None else str(value)


def all_strings(value: Any) -> bool:
    if isinstance(value, dict):
        return all(all_strings(v) for v in value.values())
    if isinstance(value, list):
        return all(all_strings(v) for v in value)
    return isinstance(value, str)


# --- formats ---------------------------------------------------------------------------------------


def test_json_and_xml_give_the_same_data(reference: Reference, api: KalturaApi, connect: Connect) -> None:
    xml_api = connect(reference.url, api.ks, format=2)
    tag = unique()
    entry = add_entry(api, f"{tag} <&> 'quoted' \"name\"", tag, description="a/b\\c é")
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("baseEntry", "get", {"entryId": entry["id"]}),
        ("baseEntry", "list", {"filter": entry_filter(tagsLike=tag, statusEqual=NO_CONTENT)}),
        ("baseEntry", "count", {"filter": entry_filter(tagsLike=tag, statusEqual=NO_CONTENT)}),
        ("media", "list", {"filter": {"objectType": "KalturaMediaEntryFilter", "idEqual": entry["id"]}}),
        ("session", "get", {}),
        ("system", "ping", {}),
    ]
    for service, action, params in calls:
        as_json = api.call_raw(service, action, **params)
        as_xml = xml_api.call_raw(service, action, **params)
        assert as_json.ok and as_xml.ok, (service, action, as_json, as_xml)
        assert as_json.headers["Content-Type"].startswith("application/json")
        assert as_xml.headers["Content-Type"].startswith("text/xml")
        assert as_json.execution_time is None and as_xml.execution_time is not None
        assert all_strings(as_xml.result), (service, action, as_xml.result)
        expected = as_xml_text(as_json.result)
        got = as_xml.result if not isinstance(as_xml.result, dict) else as_xml_text(as_xml.result)
        assert got == expected, (service, action)

    got = api.call("baseEntry", "get", entryId=entry["id"])
    assert got["status"] == NO_CONTENT and got["name"] == entry["name"] and got["description"] == "a/b\\c é"
    xml_got = xml_api.call("baseEntry", "get", entryId=entry["id"])
    assert xml_got["status"] == "7" and xml_got["name"] == entry["name"]
    assert api.call("system", "ping") is True and xml_api.call("system", "ping") == "1"

    # a multirequest in XML: items in order, the error in place
    mr = xml_api.multirequest()
    mr.add("system", "ping")
    mr.add("baseEntry", "get", entryId="0_nosuch00")
    mr.add("baseEntry", "get", entryId=entry["id"])
    ping, missing, again = mr.execute()
    assert ping == "1"
    assert isinstance(missing, KalturaApiError) and missing.code == "ENTRY_ID_NOT_FOUND"
    assert again["id"] == entry["id"] and again["objectType"] == "KalturaBaseEntry"


def test_xml_envelope_and_error_shape(reference: Reference, http: httpx.Client, connect: Connect) -> None:
    ks = admin_ks(reference.p1)
    ping = http.post(f"{reference.url}/api_v3/service/system/action/ping", data={"format": "2"})
    assert ping.headers["content-type"].startswith("text/xml")
    assert re.fullmatch(
        rb'<\?xml version="1\.0" encoding="utf-8"\?><xml><result>1</result>'
        rb"<executionTime>\d+(\.\d+)?</executionTime></xml>",
        ping.content,
    ), ping.content

    missing = http.post(
        f"{reference.url}/api_v3/service/baseentry/action/get",
        data={"format": "2", "ks": ks, "entryId": "0_nosuch00"},
    )
    assert missing.status_code == 200
    assert missing.content.startswith(
        b'<?xml version="1.0" encoding="utf-8"?><xml><result><error><code>ENTRY_ID_NOT_FOUND</code><message>'
    ), missing.content
    root = ET.fromstring(missing.content)
    assert root.tag == "xml" and [child.tag for child in root] == ["result", "executionTime"]
    error = root.find("result/error")
    assert error is not None
    assert error.findtext("code") == "ENTRY_ID_NOT_FOUND"
    assert error.findtext("message") == 'Entry id "0_nosuch00" not found'
    assert error.findtext("objectType") == "KalturaAPIException"
    assert [(i.findtext("name"), i.findtext("value")) for i in error.iterfind("args/item")] == [
        ("ENTRY_ID", "0_nosuch00")
    ]

    # the same error through KalturaApi, in both formats
    for fmt in (1, 2):
        response = connect(reference.url, ks, format=fmt).call_raw("baseEntry", "get", entryId="0_nosuch00")
        assert response.error is not None and response.status == 200
        assert response.error.code == "ENTRY_ID_NOT_FOUND"
        assert response.error.message == 'Entry id "0_nosuch00" not found'
        assert response.error.error_args == {"ENTRY_ID": "0_nosuch00"}

    as_json = http.post(
        f"{reference.url}/api_v3/service/baseentry/action/get",
        json={"format": 1, "ks": ks, "entryId": "0_nosuch00"},
    ).json()
    assert as_json == {
        "code": "ENTRY_ID_NOT_FOUND",
        "message": 'Entry id "0_nosuch00" not found',
        "objectType": "KalturaAPIException",
        "args": {"ENTRY_ID": "0_nosuch00"},
    }


# --- endpoints and parameters ----------------------------------------------------------------------


def test_every_endpoint_form_reaches_the_action(
    reference: Reference, api: KalturaApi, http: httpx.Client
) -> None:
    ks = api.ks
    assert ks is not None and "/" not in ks
    entry = add_entry(api, unique("endpoint"))
    url, eid = reference.url, entry["id"]
    answers = {
        "service path, JSON body": http.post(
            f"{url}/api_v3/service/baseentry/action/get", json={"format": 1, "ks": ks, "entryId": eid}
        ),
        "index.php query": http.post(
            f"{url}/api_v3/index.php?service=baseentry&action=get",
            data={"format": "1", "ks": ks, "entryId": eid},
        ),
        "index.php path pairs": http.get(
            f"{url}/api_v3/index.php/service/baseentry/action/get/format/1/ks/{ks}/entryId/{eid}"
        ),
        "GET query, camelCase service": http.get(
            f"{url}/api_v3/service/baseEntry/action/GET", params={"format": "1", "ks": ks, "entryId": eid}
        ),
        "names in the body": http.post(
            f"{url}/api_v3/index.php",
            data={"service": "baseEntry", "action": "get", "format": "1", "ks": ks, "entryId": eid},
        ),
        "/api rewrite": http.post(
            f"{url}/api/service/baseentry/action/get/format/1", data={"ks": ks, "entryId": eid}
        ),
    }
    for how, response in answers.items():
        assert response.status_code == 200, how
        body = response.json()
        assert body.get("id") == eid and body.get("name") == entry["name"], (how, body)


def test_flattened_filters_in_query_and_form(
    reference: Reference, api: KalturaApi, http: httpx.Client, connect: Connect
) -> None:
    tag = unique()
    ids = {add_entry(api, f"{tag}-{i}", tag)["id"] for i in range(3)}
    url, ks = reference.url, api.ks
    flat = {
        "format": "1",
        "ks": ks,
        "filter:objectType": "KalturaBaseEntryFilter",
        "filter:statusEqual": "7",
        "filter:tagsLike": tag,
        "pager:pageSize": "2",
        "pager:pageIndex": "1",
    }
    brackets = {
        "format": "1",
        "ks": ks,
        "filter[objectType]": "KalturaBaseEntryFilter",
        "filter[statusEqual]": "7",
        "filter[tagsLike]": tag,
        "pager[pageSize]": "2",
        "pager[pageIndex]": "1",
    }
    list_url = f"{url}/api_v3/service/baseentry/action/list"
    answers = {
        "GET query": http.get(list_url, params=flat).json(),
        "POST form": http.post(list_url, data=flat).json(),
        "GET brackets": http.get(list_url, params=brackets).json(),
        "POST brackets": http.post(list_url, data=brackets).json(),
    }
    form_api = connect(url, ks, encoding="form")
    answers["KalturaApi form"] = form_api.call(
        "baseEntry",
        "list",
        filter=entry_filter(statusEqual=NO_CONTENT, tagsLike=tag),
        pager={"objectType": "KalturaFilterPager", "pageSize": 2, "pageIndex": 1},
    )
    for how, listed in answers.items():
        assert listed["totalCount"] == 3, (how, listed)
        assert len(listed["objects"]) == 2 and {o["id"] for o in listed["objects"]} <= ids, how
    # the filter really applies: READY entries with this tag do not exist
    ready = http.get(list_url, params={**flat, "filter:statusEqual": "2"}).json()
    assert ready["totalCount"] == 0 and ready["objects"] == []
    second_page = form_api.call(
        "baseEntry",
        "list",
        filter=entry_filter(statusEqual=7, tagsLike=tag),
        pager={"pageSize": 2, "pageIndex": 2},
    )
    assert len(second_page["objects"]) == 1


def test_parameter_precedence_body_then_query_then_path(
    reference: Reference, api: KalturaApi, http: httpx.Client
) -> None:
    a, b, c = (add_entry(api, unique(n))["id"] for n in "abc")
    base, ks = f"{reference.url}/api_v3/service/baseentry/action/get", api.ks

    def got(url: str, **kwargs: Any) -> str:
        response = http.post(url, **kwargs)
        return response.json()["id"]

    assert got(base, data={"format": "1", "ks": ks, "entryId": a}) == a
    assert got(f"{base}?entryId={b}", data={"format": "1", "ks": ks, "entryId": a}) == b
    assert got(f"{base}?entryId={b}", json={"format": 1, "ks": ks, "entryId": a}) == b
    assert got(f"{base}/entryId/{c}?entryId={b}", data={"format": "1", "ks": ks, "entryId": a}) == c
    assert got(f"{base}/entryId/{c}", json={"format": 1, "ks": ks, "entryId": a}) == c

    ping = f"{reference.url}/api_v3/service/system/action/ping"
    assert http.post(f"{ping}?format=1", data={"format": "2"}).content == b"true"
    assert http.post(f"{ping}/format/2?format=1", data={"format": "1"}).content.startswith(b"<?xml")
    assert http.post(f"{ping}/format/1?format=2", json={"format": 2}).content == b"true"
    # a JSON body is only read with exactly "application/json"; with a charset it is ignored (XML default)
    ignored = http.post(
        ping, content=b'{"format": 1}', headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert ignored.content.startswith(b"<?xml")


@pytest.mark.parametrize("encoding", ["json", "form"])
def test_null_clears_a_property_on_update(reference: Reference, connect: Connect, encoding: str) -> None:
    api = connect(reference.url, admin_ks(reference.p1), encoding=encoding)
    entry = add_entry(api, unique("null"), "t1,t2", description="to be cleared", referenceId="ref-1")
    assert entry["description"] == "to be cleared" and entry["tags"] == "t1,t2"

    updated = api.call(
        "baseEntry",
        "update",
        entryId=entry["id"],
        baseEntry={"objectType": "KalturaBaseEntry", "description": Null, "tags": Null},
    )
    assert "description" not in updated and "tags" not in updated, updated
    assert updated["name"] == entry["name"] and updated["referenceId"] == "ref-1"  # untouched
    fetched = api.call("baseEntry", "get", entryId=entry["id"])
    assert "description" not in fetched and "tags" not in fetched and fetched["referenceId"] == "ref-1"

    # None (unlike Null) is not sent at all, so the property is left alone
    kept = api.call(
        "baseEntry",
        "update",
        entryId=entry["id"],
        baseEntry={"objectType": "KalturaBaseEntry", "referenceId": None},
    )
    assert kept["referenceId"] == "ref-1"


# --- multirequest ----------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["json", "form"])
def test_multirequest_back_references_and_errors_in_place(
    reference: Reference, connect: Connect, encoding: str
) -> None:
    api = connect(reference.url, admin_ks(reference.p1), encoding=encoding)
    tag = unique()
    mr = api.multirequest()
    first = mr.add(
        "baseEntry", "add", entry={"objectType": "KalturaBaseEntry", "name": f"{tag}-1", "tags": tag}
    )
    second = mr.add(
        "baseEntry",
        "add",
        entry={
            "objectType": "KalturaBaseEntry",
            "name": f"{tag}-2",
            "tags": tag,
            "description": f"after {first.ref('id')}!",
        },
    )
    listed = mr.add(
        "baseEntry", "list", filter=entry_filter(tagsLike=tag, statusEqual=7, orderBy="+createdAt")
    )
    mr.add("baseEntry", "get", entryId=listed.ref("objects", 0, "id"))
    mr.add("baseEntry", "get", entryId="0_nosuch00")
    mr.add("baseEntry", "list", filter=entry_filter(idIn=listed.ref("objects", "_all", "id"), statusIn="7"))
    mr.add(
        "baseEntry",
        "update",
        entryId=second.ref("id"),
        baseEntry={"objectType": "KalturaBaseEntry", "name": "renamed"},
    )
    mr.add("baseEntry", "get", entryId="{5:result:id}")  # a reference into an error resolves to ""
    assert [item.index for item in (first, second, listed)] == [1, 2, 3]
    assert first.ref("objects", "_all", "id") == "{1:result:objects:_all:id}"

    one, two, three, four, five, six, seven, eight = mr.execute()
    assert two["description"] == f"after {one['id']}!"
    assert three["totalCount"] == 2 and [o["id"] for o in three["objects"]] == [one["id"], two["id"]]
    assert four["id"] == one["id"]
    assert isinstance(five, KalturaApiError) and five.code == "ENTRY_ID_NOT_FOUND"
    assert six["totalCount"] == 2 and {o["id"] for o in six["objects"]} == {one["id"], two["id"]}
    assert seven["id"] == two["id"] and seven["name"] == "renamed"
    assert isinstance(eight, KalturaApiError) and eight.code == "ENTRY_ID_NOT_FOUND"
    assert eight.error_args == {"ENTRY_ID": ""}


def test_multirequest_numbering_from_zero_or_one(reference: Reference, http: httpx.Client) -> None:
    ks = admin_ks(reference.p1)
    url = f"{reference.url}/api_v3/service/multirequest"
    for start in (0, 1):
        name = unique(f"from{start}")
        body = {
            "format": 1,
            "ks": ks,
            str(start): {
                "service": "baseEntry",
                "action": "add",
                "entry": {"objectType": "KalturaBaseEntry", "name": name},
            },
            str(start + 1): {"service": "baseentry", "action": "get", "entryId": "{1:result:id}"},
            str(start + 2): {
                "service": "system",
                "action": "ping",
                "format": 2,
            },  # sub-request format is ignored
        }
        results = http.post(url, json=body).json()
        assert isinstance(results, list) and len(results) == 3, results
        assert results[0]["name"] == name and results[1]["id"] == results[0]["id"] and results[2] is True
    # numbering stops at the first index lacking service/action
    gap = {
        "format": 1,
        "ks": ks,
        "1": {"service": "system", "action": "ping"},
        "3": {"service": "system", "action": "ping"},
    }
    assert http.post(url, json=gap).json() == [True]
    # the flat form, as in the spec
    flat = {
        "format": "1",
        "ks": ks,
        "1:service": "system",
        "1:action": "ping",
        "2:service": "baseentry",
        "2:action": "list",
        "2:filter:objectType": "KalturaBaseEntryFilter",
        "2:filter:idIn": "{1:result}",
    }
    results = http.post(f"{reference.url}/api_v3/index.php?service=multirequest", data=flat).json()
    assert results[0] is True and results[1]["objectType"] == "KalturaBaseEntryListResponse"


@pytest.mark.parametrize("encoding", ["json", "form"])
def test_multirequest_with_files(
    reference: Reference, connect: Connect, http: httpx.Client, encoding: str
) -> None:
    api = connect(reference.url, admin_ks(reference.p1), encoding=encoding)
    small, large = os.urandom(700), os.urandom(3000)
    mr = api.multirequest()
    t1 = mr.add("uploadToken", "add", uploadToken={"objectType": "KalturaUploadToken"})
    t2 = mr.add("uploadToken", "add", uploadToken={"objectType": "KalturaUploadToken"})
    mr.add("uploadToken", "upload", files={"fileData": ("large.mp4", large)}, uploadTokenId=t2.ref("id"))
    mr.add("uploadToken", "upload", files={"fileData": ("small.mp3", small)}, uploadTokenId=t1.ref("id"))
    mr.add(
        "baseEntry",
        "addFromUploadedFile",
        uploadTokenId=t1.ref("id"),
        entry={"objectType": "KalturaMediaEntry", "name": unique("mrfile")},
    )
    tok1, tok2, up2, up1, entry = mr.execute()
    assert up2["id"] == tok2["id"] and up2["status"] == FULL and up2["uploadedFileSize"] == "3000"
    assert up1["id"] == tok1["id"] and up1["status"] == FULL and up1["uploadedFileSize"] == "700"
    assert up1["fileName"] == "small.mp3" and entry["mediaType"] == 5  # audio, from the file name
    assert sha256(content_of(http, entry)) == sha256(small)


# --- response cache --------------------------------------------------------------------------------


@pytest.mark.usefixtures("quiet")
def test_repeated_read_is_a_cache_hit_with_the_same_key(api: KalturaApi) -> None:
    tag = unique()
    entry = add_entry(api, tag, tag)
    for service, action, params in (
        ("baseEntry", "get", {"entryId": entry["id"]}),
        ("baseEntry", "list", {"filter": entry_filter(tagsLike=tag, statusIn="7")}),
        ("media", "count", {"filter": {"objectType": "KalturaMediaEntryFilter", "tagsLike": tag}}),
    ):
        first = api.call_raw(service, action, **params)
        assert first.ok and not first.cache_hit
        assert first.cache_key and first.headers["X-Kaltura"] == f"cache-key,{first.cache_key}"
        second = api.call_raw(service, action, **params)
        assert second.cache_hit, second.headers
        assert second.headers["X-Kaltura"] == f"cached-dispatcher,{first.cache_key},0"
        assert second.cache_key == first.cache_key
        assert second.body == first.body and second.result == first.result


@pytest.mark.usefixtures("quiet")
def test_nocache_bypasses_the_cache(reference: Reference, api: KalturaApi) -> None:
    entry = add_entry(api, "before")
    assert api.call_raw("baseEntry", "get", entryId=entry["id"]).ok
    assert api.call_raw("baseEntry", "get", entryId=entry["id"]).cache_hit
    # change the row behind the API's back: the cache cannot know
    reference.server.platform.store.update_entry(reference.p1.id, entry["id"], {"name": "after"})
    stale = api.call_raw("baseEntry", "get", entryId=entry["id"])
    assert stale.cache_hit and stale.result["name"] == "before"
    fresh = api.call_raw("baseEntry", "get", entryId=entry["id"], nocache=1)
    assert not fresh.cache_hit and "X-Kaltura" not in fresh.headers and fresh.cache_key is None
    assert fresh.result["name"] == "after"


@pytest.mark.usefixtures("quiet")
def test_writes_make_the_next_read_fresh(api: KalturaApi) -> None:
    tag = unique()
    entry = add_entry(api, "v1", tag)
    list_params = {"filter": entry_filter(tagsLike=tag, statusIn="7")}

    def read_twice(service: str, action: str, **params: Any) -> ApiResponse:
        first = api.call_raw(service, action, **params)
        assert not first.cache_hit
        second = api.call_raw(service, action, **params)
        assert second.cache_hit
        return second

    read_twice("baseEntry", "get", entryId=entry["id"])
    api.call(
        "baseEntry", "update", entryId=entry["id"], baseEntry={"objectType": "KalturaBaseEntry", "name": "v2"}
    )
    after_update = api.call_raw("baseEntry", "get", entryId=entry["id"])
    assert not after_update.cache_hit and after_update.result["name"] == "v2"

    assert read_twice("baseEntry", "list", **list_params).result["totalCount"] == 1
    other = add_entry(api, "other", tag)
    after_add = api.call_raw("baseEntry", "list", **list_params)
    assert not after_add.cache_hit and after_add.result["totalCount"] == 2

    read_twice("baseEntry", "get", entryId=other["id"])
    api.call("baseEntry", "delete", entryId=other["id"])
    after_delete = api.call_raw("baseEntry", "get", entryId=other["id"])
    assert not after_delete.cache_hit and error_code(after_delete) == "ENTRY_ID_NOT_FOUND"
    listed = api.call_raw("baseEntry", "list", **list_params)
    assert not listed.cache_hit and listed.result["totalCount"] == 1

    # a write inside a multirequest invalidates too
    read_twice("baseEntry", "get", entryId=entry["id"])
    mr = api.multirequest()
    mr.add(
        "baseEntry", "update", entryId=entry["id"], baseEntry={"objectType": "KalturaBaseEntry", "name": "v3"}
    )
    mr.execute()
    after_mr = api.call_raw("baseEntry", "get", entryId=entry["id"])
    assert not after_mr.cache_hit and after_mr.result["name"] == "v3"


@pytest.mark.usefixtures("quiet")
def test_cache_key_depends_on_who_asks(reference: Reference, api: KalturaApi) -> None:
    tag = unique()
    add_entry(api, tag, tag)
    params = {"filter": entry_filter(tagsLike=tag, statusIn="7")}
    p1 = reference.p1
    sessions = {
        "admin alice": admin_ks(p1, f"alice-{tag}"),
        "admin bob": admin_ks(p1, f"bob-{tag}"),
        "user alice": user_ks(p1, f"alice-{tag}"),
        "admin alice, list privilege": admin_ks(p1, f"alice-{tag}", privileges="list:*"),
        "admin alice, v1 KS": admin_ks(p1, f"alice-{tag}", version=1, privileges="list:*,edit:*"),
    }
    keys: dict[str, str] = {}
    for who, ks in sessions.items():
        response = api.with_ks(ks).call_raw("baseEntry", "list", **params)
        assert response.ok and not response.cache_hit, who
        assert response.cache_key is not None
        keys[who] = response.cache_key
    assert len(set(keys.values())) == len(keys), keys
    # the KS string itself is not part of the key: the same identity in a new KS is a hit
    again = api.with_ks(admin_ks(p1, f"alice-{tag}")).call_raw("baseEntry", "list", **params)
    assert again.cache_hit and again.cache_key == keys["admin alice"]
    # ... and so are the format and the parameters
    other_format = api.with_ks(sessions["admin alice"]).call_raw("baseEntry", "list", format=2, **params)
    assert not other_format.cache_hit and other_format.cache_key not in keys.values()


def test_first_read_after_a_due_transition_is_cached(tmp_path: Path, connect: Connect) -> None:
    """A transcoding entry that became due while nobody asked must not stop the next read from being
    stored (the cache TTL is bounded by the next *future* status change)."""
    with start_reference(tmp_path / "ref", ready_after=0.2) as ref:
        api = connect(ref.url, admin_ks(ref.p1))
        upload_media(api, b"y" * 100, name="transcoding")
        other = add_entry(api, "unrelated")
        time.sleep(0.3)  # the entry is due to be READY; no request has seen it yet
        for service, action, params in (
            ("uploadToken", "list", {}),
            ("baseEntry", "get", {"entryId": other["id"]}),
        ):
            first = api.call_raw(service, action, **params)
            assert first.ok and first.cache_key is not None and not first.cache_hit
            second = api.call_raw(service, action, **params)
            assert second.cache_hit, (service, action)


def test_cached_list_sees_an_entry_becoming_ready(tmp_path: Path, connect: Connect) -> None:
    with start_reference(tmp_path / "ref", ready_after=0.5) as ref:
        api = connect(ref.url, admin_ks(ref.p1))
        tag = unique()
        started = time.monotonic()
        entry = upload_media(api, b"x" * 2048, name="becoming ready", tags=tag)
        assert entry["status"] == PRECONVERT
        statuses = {"filter": entry_filter(tagsLike=tag, statusIn="1,2")}
        default = {"filter": entry_filter(tagsLike=tag)}
        first = api.call_raw("baseEntry", "list", **statuses)
        assert first.result["objects"][0]["status"] == PRECONVERT
        assert api.call_raw("baseEntry", "list", **statuses).cache_hit
        assert api.call_raw("baseEntry", "list", **default).result["totalCount"] == 0
        assert api.call_raw("baseEntry", "list", **default).cache_hit
        time.sleep(max(0.0, started + 0.7 - time.monotonic()))  # past ready_after
        later = api.call_raw("baseEntry", "list", **statuses)
        assert not later.cache_hit and later.result["objects"][0]["status"] == READY
        now_ready = api.call_raw("baseEntry", "list", **default)
        assert not now_ready.cache_hit and now_ready.result["totalCount"] == 1
        # and once READY it is cached again
        assert api.call_raw("baseEntry", "list", **default).cache_hit


# --- upload tokens ---------------------------------------------------------------------------------


def test_upload_token_status_transitions(api: KalturaApi) -> None:
    token = new_token(api, fileName="movie.mp4", fileSize=300)
    assert token["status"] == PENDING and type(token["status"]) is int
    assert token["fileSize"] == "300" and "uploadedFileSize" not in token  # null right after add
    part = os.urandom(100)
    partial = api.upload_chunk(token["id"], part, resume=False, final_chunk=False)
    assert partial["status"] == PARTIAL and partial["uploadedFileSize"] == "100"
    rest = os.urandom(200)
    full = api.upload_chunk(token["id"], rest, resume=True, final_chunk=True, resume_at=100)
    assert full["status"] == FULL and full["uploadedFileSize"] == "300" and full["fileSize"] == "300"
    assert api.call("uploadToken", "get", uploadTokenId=token["id"])["status"] == FULL
    api.call(
        "baseEntry",
        "addFromUploadedFile",
        uploadTokenId=token["id"],
        entry={"objectType": "KalturaMediaEntry", "name": unique("closed")},
    )
    closed = api.call("uploadToken", "get", uploadTokenId=token["id"])
    assert closed["status"] == CLOSED
    with pytest.raises(KalturaApiError) as raised:
        api.upload_chunk(token["id"], b"more", resume=False, final_chunk=True)
    assert raised.value.code == "UPLOAD_TOKEN_INVALID_STATUS_FOR_UPLOAD"
    again = api.call_raw(
        "baseEntry",
        "addFromUploadedFile",
        uploadTokenId=token["id"],
        entry={"objectType": "KalturaMediaEntry", "name": "twice"},
    )
    assert error_code(again) == "UPLOAD_TOKEN_INVALID_STATUS_FOR_ADD_ENTRY"


def test_resume_before_any_data_cannot_resume(api: KalturaApi) -> None:
    token = new_token(api)
    with pytest.raises(KalturaApiError) as raised:
        api.upload_chunk(token["id"], b"abc", resume=True, final_chunk=False, resume_at=0)
    assert raised.value.code == "UPLOAD_TOKEN_CANNOT_RESUME"
    assert api.call("uploadToken", "get", uploadTokenId=token["id"])["status"] == PENDING


def test_out_of_order_chunks_are_parked_then_merged(api: KalturaApi, http: httpx.Client) -> None:
    data = os.urandom(4000)
    parts = [data[i : i + 1000] for i in range(0, 4000, 1000)]
    token = new_token(api)
    tid = token["id"]
    assert api.upload_chunk(tid, parts[0], resume=False, final_chunk=False)["uploadedFileSize"] == "1000"
    parked = api.upload_chunk(tid, parts[2], resume=True, final_chunk=False, resume_at=2000)
    assert parked["status"] == PARTIAL and parked["uploadedFileSize"] == "1000"  # not contiguous yet
    merged = api.upload_chunk(tid, parts[1], resume=True, final_chunk=False, resume_at=1000)
    assert merged["status"] == PARTIAL and merged["uploadedFileSize"] == "3000"
    full = api.upload_chunk(tid, parts[3], resume=True, final_chunk=True, resume_at=3000)
    assert full["status"] == FULL and full["uploadedFileSize"] == "4000"
    entry = api.call(
        "baseEntry",
        "addFromUploadedFile",
        uploadTokenId=tid,
        entry={"objectType": "KalturaMediaEntry", "name": unique("ooo")},
    )
    assert sha256(content_of(http, entry)) == sha256(data)


def test_upload_file_and_resume_upload(api: KalturaApi, http: httpx.Client) -> None:
    data = os.urandom(10_000)

    def finish(token_id: str) -> bytes:
        entry = api.call(
            "baseEntry",
            "addFromUploadedFile",
            uploadTokenId=token_id,
            entry={"objectType": "KalturaMediaEntry", "name": unique("resumed")},
        )
        return content_of(http, entry)

    whole = new_token(api)["id"]
    token = api.upload_file(whole, data, chunk_size=3000)
    assert token["status"] == FULL and token["uploadedFileSize"] == "10000"
    assert sha256(finish(whole)) == sha256(data)

    interrupted = new_token(api)["id"]
    api.upload_chunk(interrupted, data[:4000], resume=False, final_chunk=False)
    token = api.resume_upload(interrupted, data, chunk_size=2500)
    assert token["status"] == FULL and token["uploadedFileSize"] == "10000"
    assert api.resume_upload(interrupted, data)["uploadedFileSize"] == "10000"  # already FULL: nothing sent
    assert sha256(finish(interrupted)) == sha256(data)

    untouched = new_token(api)["id"]
    token = api.resume_upload(untouched, iter([data[:10], data[10:7000], data[7000:]]), chunk_size=4096)
    assert token["status"] == FULL and token["uploadedFileSize"] == "10000"
    assert sha256(finish(untouched)) == sha256(data)


def test_auto_finalize(api: KalturaApi) -> None:
    token = new_token(api, autoFinalize=1, fileSize=5000)
    assert token["autoFinalize"] == 1 and token["fileSize"] == "5000"
    data = os.urandom(5000)
    first = api.upload_chunk(token["id"], data[:3000], resume=False, final_chunk=False)
    assert first["status"] == PARTIAL
    last = api.upload_chunk(token["id"], data[3000:], resume=True, final_chunk=False, resume_at=3000)
    assert last["status"] == FULL and last["uploadedFileSize"] == "5000"

    missing = api.call_raw(
        "uploadToken", "add", uploadToken={"objectType": "KalturaUploadToken", "autoFinalize": 1}
    )
    assert error_code(missing) == "UPLOAD_TOKEN_MISSING_FILE_SIZE"


def test_upload_token_list_of_a_user_session_shows_only_its_tokens(
    reference: Reference, api: KalturaApi
) -> None:
    tag = unique()
    alice = api.with_ks(user_ks(reference.p1, f"alice-{tag}"))
    bob = api.with_ks(user_ks(reference.p1, f"bob-{tag}"))
    mine = {new_token(alice)["id"] for _ in range(2)}
    theirs = new_token(bob)["id"]
    pager = {"objectType": "KalturaFilterPager", "pageSize": 500}
    listed = alice.call("uploadToken", "list", pager=pager)
    assert {t["userId"] for t in listed["objects"]} == {f"alice-{tag}"}
    assert {t["id"] for t in listed["objects"]} == mine and listed["totalCount"] == 2
    assert listed["objectType"] == "KalturaUploadTokenListResponse"
    by_id = alice.call(
        "uploadToken", "list", filter={"objectType": "KalturaUploadTokenFilter", "idEqual": theirs}
    )
    assert by_id["totalCount"] == 0
    assert error_code(alice.call_raw("uploadToken", "get", uploadTokenId=theirs)) == "UPLOAD_TOKEN_NOT_FOUND"
    everyone = api.call(
        "uploadToken",
        "list",
        filter={"objectType": "KalturaUploadTokenFilter", "idIn": ",".join([*mine, theirs])},
    )
    assert everyone["totalCount"] == 3


# --- entries ---------------------------------------------------------------------------------------


def test_add_content_with_a_full_token(api: KalturaApi, http: httpx.Client) -> None:
    entry = add_entry(api, unique("content"))
    assert (
        entry["status"] == NO_CONTENT
        and entry["objectType"] == "KalturaBaseEntry"
        and "downloadUrl" not in entry
    )
    data = os.urandom(1500)
    token = new_token(api)
    api.upload_file(token["id"], data, filename="clip.mp4")
    resource = {"objectType": "KalturaUploadedFileTokenResource", "token": token["id"]}
    added = api.call("baseEntry", "addContent", entryId=entry["id"], resource=resource)
    assert (
        added["status"] == PRECONVERT
        and added["objectType"] == "KalturaMediaEntry"
        and added["mediaType"] == 1
    )
    assert api.call("uploadToken", "get", uploadTokenId=token["id"])["status"] == CLOSED
    ready = wait_for_status(api, entry["id"], READY)
    assert sha256(content_of(http, ready)) == sha256(data)

    another = new_token(api)
    api.upload_file(another["id"], b"second")
    twice = api.call_raw(
        "baseEntry",
        "addContent",
        entryId=entry["id"],
        resource={"objectType": "KalturaUploadedFileTokenResource", "token": another["id"]},
    )
    assert error_code(twice) == "ENTRY_ALREADY_WITH_CONTENT"


def test_add_content_with_a_pending_token_imports_until_the_final_chunk(
    api: KalturaApi, http: httpx.Client
) -> None:
    entry = api.call(
        "media", "add", entry={"objectType": "KalturaMediaEntry", "name": unique("import"), "mediaType": 1}
    )
    assert entry["status"] == NO_CONTENT
    token = new_token(api)
    resource = {"objectType": "KalturaUploadedFileTokenResource", "token": token["id"]}
    importing = api.call("media", "addContent", entryId=entry["id"], resource=resource)
    assert importing["status"] == IMPORT
    attached = api.call("uploadToken", "get", uploadTokenId=token["id"])
    assert attached["status"] == PENDING and attached["attachedObjectId"] == entry["id"]

    data = os.urandom(2500)
    partial = api.upload_chunk(token["id"], data[:1000], resume=False, final_chunk=False)
    assert partial["status"] == PARTIAL
    assert api.call("media", "get", entryId=entry["id"])["status"] == IMPORT
    last = api.upload_chunk(token["id"], data[1000:], resume=True, final_chunk=True, resume_at=1000)
    assert last["status"] == CLOSED
    assert api.call("media", "get", entryId=entry["id"])["status"] in (PRECONVERT, READY)
    ready = wait_for_status(api, entry["id"], READY)
    assert sha256(content_of(http, ready)) == sha256(data)
    again = api.call_raw("media", "addContent", entryId=entry["id"], resource=resource)
    assert error_code(again) == "ENTRY_ALREADY_WITH_CONTENT"


def test_media_add_without_media_type(api: KalturaApi) -> None:
    response = api.call_raw("media", "add", entry={"objectType": "KalturaMediaEntry", "name": "no type"})
    assert error_code(response) == "PROPERTY_VALIDATION_CANNOT_BE_NULL"
    assert response.error is not None and response.error.error_args == {"PROP_NAME": "mediaType"}


def test_list_filters_ordering_and_count(api: KalturaApi) -> None:
    tag = unique()
    created = [add_entry(api, f"{tag}-{letter}", tag) for letter in "bca"]  # creation order b, c, a
    b, c, a = (e["id"] for e in created)

    def ids(**fields: Any) -> list[str]:
        filt = entry_filter(**{"tagsLike": tag, "statusIn": "7", **fields})
        listed = api.call("baseEntry", "list", filter=filt)
        assert api.call("baseEntry", "count", filter=filt) == listed["totalCount"] == len(listed["objects"])
        return [o["id"] for o in listed["objects"]]

    assert ids(orderBy="+createdAt") == [b, c, a]
    assert ids(orderBy="-createdAt") == [a, c, b]
    assert ids(orderBy="+name") == [a, b, c]
    assert ids(orderBy="-name") == [c, b, a]
    assert ids(nameLike=f"{tag}-c") == [c]
    assert sorted(ids(idIn=f"{a}, {c},0_nosuch00")) == sorted([a, c])
    assert ids(statusIn="2,1") == []
    assert ids(statusIn="2,7", orderBy="+name") == [a, b, c]
    assert ids(idNotIn=b, orderBy="+name") == [a, c]
    assert api.call("baseEntry", "list", filter=entry_filter(tagsLike=tag, statusIn="2"))["totalCount"] == 0
    assert api.call("baseEntry", "count", filter=entry_filter(tagsLike=tag, statusIn="2")) == 0
    paged = api.call(
        "baseEntry",
        "list",
        filter=entry_filter(tagsLike=tag, statusIn="7", orderBy="+name"),
        pager={"pageSize": 2, "pageIndex": 2},
    )
    assert paged["totalCount"] == 3 and [o["id"] for o in paged["objects"]] == [c]


def test_default_list_shows_only_ready_entries(api: KalturaApi) -> None:
    tag = unique()
    empty = add_entry(api, f"{tag}-empty", tag)
    uploaded = upload_media(api, os.urandom(500), name=f"{tag}-uploaded", tags=tag)
    wait_for_status(api, uploaded["id"], READY)
    for service, filter_type in (
        ("baseEntry", "KalturaBaseEntryFilter"),
        ("media", "KalturaMediaEntryFilter"),
    ):
        listed = api.call(service, "list", filter={"objectType": filter_type, "tagsLike": tag})
        assert [o["id"] for o in listed["objects"]] == [uploaded["id"]] and listed["totalCount"] == 1
        assert api.call(service, "count", filter={"objectType": filter_type, "tagsLike": tag}) == 1
    both = api.call("baseEntry", "list", filter=entry_filter(tagsLike=tag, statusIn="2,7"))
    assert {o["id"] for o in both["objects"]} == {empty["id"], uploaded["id"]}
    # an id filter lifts the implicit READY filter
    assert api.call("baseEntry", "list", filter=entry_filter(idEqual=empty["id"]))["totalCount"] == 1


def test_query_beyond_max_matches(api: KalturaApi) -> None:
    def page(index: int, size: int) -> ApiResponse:
        return api.call_raw(
            "baseEntry",
            "list",
            pager={"objectType": "KalturaFilterPager", "pageIndex": index, "pageSize": size},
        )

    assert page(20, 500).ok and page(100, 100).ok  # offsets 9500 and 9900
    for index, size in ((21, 500), (101, 100), (10_001, 1)):
        assert error_code(page(index, size)) == "QUERY_EXCEEDED_MAX_MATCHES_ALLOWED", (index, size)


# --- api_schema.php --------------------------------------------------------------------------------


def test_api_schema_lists_exactly_what_the_server_answers(
    fresh_reference: Reference, http: httpx.Client, connect: Connect
) -> None:
    response = http.get(f"{fresh_reference.url}/api_v3/api_schema.php")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(response.content)
    assert root.tag == "xml" and root.get("apiVersion") == SCHEMA.api_version
    declared = {
        (service.get("id") or "", action.get("name") or "")
        for service in root.iterfind("services/service")
        for action in service.iterfind("action")
    }
    assert declared and {(s, a.lower()) for s, a in declared} == set(HANDLERS)

    api = connect(fresh_reference.url)
    for number, (service, action) in enumerate(sorted(declared)):
        caller = api.with_ks(admin_ks(fresh_reference.p1, f"schema-probe-{number}"))
        answer = caller.call_raw(service, action)
        assert error_code(answer) not in ("ACTION_DOES_NOT_EXISTS", "SERVICE_DOES_NOT_EXISTS"), (
            service,
            action,
        )

    caller = api.with_ks(admin_ks(fresh_reference.p1))
    for service, action in (
        ("media", "approve"),
        ("baseEntry", "approve"),
        ("uploadToken", "resume"),
        ("system", "getTime"),
        ("session", "impersonate"),
    ):
        answer = caller.call_raw(service, action)
        assert error_code(answer) == "ACTION_DOES_NOT_EXISTS", (service, action)
        assert answer.error is not None and answer.error.error_args["ACTION_NAME"] == action
    assert error_code(caller.call_raw("metadata_metadata", "list")) == "SERVICE_DOES_NOT_EXISTS"


# --- headers ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("quiet")
def test_response_headers(reference: Reference, api: KalturaApi) -> None:
    entry = add_entry(api, unique("headers"))
    mr = api.multirequest()
    mr.add("system", "ping")
    answers = {
        "ok": api.call_raw("baseEntry", "get", entryId=entry["id"]),
        "cached": api.call_raw("baseEntry", "get", entryId=entry["id"]),
        "error": api.call_raw("baseEntry", "get", entryId="0_nosuch00"),
        "anonymous": api.with_ks(None).call_raw("system", "ping"),
        "multirequest": mr.execute_raw(),
    }
    assert answers["cached"].cache_hit
    for what, response in answers.items():
        headers = response.headers
        assert headers["X-Me"] == reference.server.platform.config.host_name, what
        match = re.fullmatch(r"(\d+), (\d+)", headers["X-Kaltura-Session"])
        assert match and abs(int(match.group(2)) - time.time()) < 60, (what, headers["X-Kaltura-Session"])
        assert headers["Access-Control-Allow-Origin"] == "*", what
        assert "X-Kaltura-Session" in headers["Access-Control-Expose-Headers"], what
        assert headers["Cache-Control"] == "no-store, no-cache, must-revalidate, post-check=0, pre-check=0", (
            what
        )
        assert headers["Expires"] == "Sun, 19 Nov 2000 08:52:00 GMT" and headers["Pragma"] == "no-cache", what


def test_keep_alive_requests_are_not_delayed(reference: Reference) -> None:
    """Requests on a reused connection answer at once (no Nagle / delayed-ACK stall of ~40 ms)."""
    with httpx.Client(timeout=5.0) as http:
        timings = []
        for _ in range(6):
            started = time.perf_counter()
            response = http.get(f"{reference.url}/api_v3/service/system/action/ping", params={"format": "1"})
            timings.append(time.perf_counter() - started)
            assert response.content == b"true"
    assert min(timings[1:]) < 0.02, timings


def test_options_answers_cors_with_an_empty_body(reference: Reference, http: httpx.Client) -> None:
    for path in (
        "/api_v3/index.php",
        "/api_v3/service/baseentry/action/list",
        "/api_v3/service/multirequest",
    ):
        response = http.options(
            f"{reference.url}{path}",
            headers={"Origin": "https://example.org", "Access-Control-Request-Method": "POST"},
        )
        assert response.status_code == 200 and response.content == b"", path
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert response.headers["Access-Control-Allow-Methods"] == "POST, GET, HEAD, OPTIONS"
        assert response.headers["Access-Control-Allow-Headers"] == (
            "Origin, X-Requested-With, Content-Type, Accept, Range, Cache-Control"
        )
        assert response.headers["Access-Control-Max-Age"] == "86400"


# --- schema conformance of responses ---------------------------------------------------------------


def undeclared(value: Any, where: str = "$", declared_as: str | None = None) -> list[str]:
    """Problems found walking a JSON value: unknown classes, undeclared properties, array items or
    nested objects that are not (subclasses of) the declared type."""
    problems: list[str] = []
    if isinstance(value, list):
        for index, item in enumerate(value):
            problems += undeclared(item, f"{where}[{index}]", declared_as)
        return problems
    if not isinstance(value, dict):
        return problems
    class_name = value.get("objectType")
    if class_name not in SCHEMA.classes:
        return [f"{where}: class {class_name!r} is not declared"]
    if declared_as and not SCHEMA.is_subclass(class_name, declared_as):
        problems.append(f"{where}: {class_name} is not a {declared_as}")
    for key, item in value.items():
        if key == "objectType":
            continue
        prop = SCHEMA.property(class_name, key)
        if prop is None:
            problems.append(f"{where}.{key}: not a property of {class_name}")
            continue
        if prop.type in ("array", "map"):
            problems += undeclared(item, f"{where}.{key}", prop.array_type)
        elif SCHEMA.is_class(prop.type):
            problems += undeclared(item, f"{where}.{key}", prop.type)
        elif isinstance(item, dict | list):
            problems.append(f"{where}.{key}: a {type(item).__name__} in a {prop.type} property")
    return problems


def undeclared_xml(element: ET.Element, where: str = "result") -> list[str]:
    problems: list[str] = []
    class_name = element.findtext("objectType")
    if element.find("objectType") is not None:
        if class_name not in SCHEMA.classes:
            return [f"{where}: class {class_name!r} is not declared"]
        names = {p.name for p in SCHEMA.properties(class_name)} | {"objectType"}
        problems += [
            f"{where}.{c.tag}: not a property of {class_name}" for c in element if c.tag not in names
        ]
    for child in element:
        problems += undeclared_xml(child, f"{where}.{child.tag}")
    return problems


def test_responses_carry_only_declared_properties(
    reference: Reference, api: KalturaApi, connect: Connect
) -> None:
    tag = unique()
    base = api.call(
        "baseEntry",
        "add",
        entry={
            "objectType": "KalturaBaseEntry",
            "name": tag,
            "tags": tag,
            "notAProperty": "x",
            "creditUserName": "y",
        },
        type=6,
    )
    media = api.call(
        "media",
        "add",
        entry={
            "objectType": "KalturaMediaEntry",
            "name": tag,
            "tags": tag,
            "mediaType": 2,
            "creditUserName": "me",
        },
    )
    uploaded = upload_media(api, os.urandom(300), name=tag, tags=tag)
    token = new_token(api, fileName="a.mp4", fileSize=10, autoFinalize=0)
    token = api.upload_chunk(token["id"], b"0123456789", resume=False, final_chunk=True)
    responses: dict[str, Any] = {
        "baseEntry.add": base,
        "media.add": media,
        "addFromUploadedFile": uploaded,
        "baseEntry.get": api.call("baseEntry", "get", entryId=uploaded["id"]),
        "media.get": api.call("media", "get", entryId=media["id"]),
        "baseEntry.update": api.call(
            "baseEntry",
            "update",
            entryId=media["id"],
            baseEntry={"objectType": "KalturaMediaEntry", "creditUrl": "u"},
        ),
        "uploadToken.upload": token,
        "uploadToken.get": api.call("uploadToken", "get", uploadTokenId=token["id"]),
        "uploadToken.list": api.call(
            "uploadToken", "list", filter={"objectType": "KalturaUploadTokenFilter", "idEqual": token["id"]}
        ),
        "baseEntry.list": api.call("baseEntry", "list", filter=entry_filter(tagsLike=tag, statusIn="1,2,7")),
        "media.list": api.call(
            "media",
            "list",
            filter={"objectType": "KalturaMediaEntryFilter", "tagsLike": tag, "statusIn": "1,2,7"},
        ),
        "session.get": api.call("session", "get"),
        "startWidgetSession": api.with_ks(None).call(
            "session", "startWidgetSession", widgetId=f"_{reference.p1.id}"
        ),
    }
    assert responses["baseEntry.list"]["totalCount"] == 3 and responses["media.list"]["totalCount"] == 2
    assert responses["media.get"]["creditUserName"] == "me"
    for what, value in responses.items():
        assert isinstance(value, dict) and value.get("objectType") in SCHEMA.classes, what
        assert undeclared(value) == [], what

    xml_api = connect(reference.url, api.ks, format=2)
    for service, action, params in (
        ("baseEntry", "list", {"filter": entry_filter(tagsLike=tag, statusIn="1,2,7")}),
        ("media", "get", {"entryId": media["id"]}),
        ("uploadToken", "get", {"uploadTokenId": token["id"]}),
        ("session", "get", {}),
    ):
        body = xml_api.call_raw(service, action, **params).body
        result = ET.fromstring(body).find("result")
        assert result is not None and undeclared_xml(result) == [], (service, action)
