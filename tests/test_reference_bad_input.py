"""Bad input never gives a traceback, an HTTP 500 or a hang: it gets what the real server answers."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import Reference
from tests.helpers import admin_ks, is_error, raw_call


def post_json_text(http: httpx.Client, url: str, path: str, text: str) -> httpx.Response:
    return http.post(f"{url}{path}", content=text.encode(), headers={"Content-Type": "application/json"})


def test_malformed_json_body_falls_back_to_no_params(reference: Reference, http: httpx.Client) -> None:
    response = post_json_text(
        http, reference.url, "/api_v3/service/baseentry/action/get?format=1", '{"ks": "x", "entryId": '
    )
    assert response.status_code == 200
    assert is_error(response.json(), "MISSING_MANDATORY_PARAMETER")
    assert response.json()["args"] == {"PARAM_NAME": "entryId"}


@pytest.mark.parametrize(
    ("service", "action", "code"),
    [
        ("nosuchservice", "list", "SERVICE_DOES_NOT_EXISTS"),
        ("baseEntry", "explode", "ACTION_DOES_NOT_EXISTS"),
    ],
)
def test_unknown_service_or_action(
    reference: Reference, http: httpx.Client, service: str, action: str, code: str
) -> None:
    response, result = raw_call(http, reference.url, service, action, ks=admin_ks(reference.p1))
    assert response.status_code == 200 and is_error(result, code)


def test_no_service_at_all(reference: Reference, http: httpx.Client) -> None:
    response = http.post(f"{reference.url}/api_v3/index.php", json={"format": 1})
    assert is_error(response.json(), "SERVICE_NOT_SPECIFIED")


def test_missing_mandatory_parameter(reference: Reference, http: httpx.Client) -> None:
    _, result = raw_call(http, reference.url, "uploadToken", "get", ks=admin_ks(reference.p1))
    assert is_error(result, "MISSING_MANDATORY_PARAMETER") and result["args"]["PARAM_NAME"] == "uploadTokenId"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"type": "banana", "secret": "x", "partnerId": 101}, "INVALID_ENUM_VALUE"),
        ({"type": 7, "secret": "x", "partnerId": 101}, "INVALID_ENUM_VALUE"),
        ({"type": 2, "secret": "x", "partnerId": "abc"}, "START_SESSION_ERROR"),  # PHP int cast gives 0
    ],
)
def test_wrong_types(reference: Reference, http: httpx.Client, params: dict, code: str) -> None:
    response, result = raw_call(http, reference.url, "session", "start", **params)
    assert response.status_code == 200 and is_error(result, code), result


def test_read_only_property_is_refused(reference: Reference, http: httpx.Client) -> None:
    _, result = raw_call(
        http,
        reference.url,
        "media",
        "add",
        ks=admin_ks(reference.p1),
        entry={"objectType": "KalturaMediaEntry", "mediaType": 1, "status": 2},
    )
    assert is_error(result, "PROPERTY_VALIDATION_NOT_UPDATABLE") and result["args"]["PROP_NAME"].endswith(
        "::status"
    )


def test_object_param_that_is_abstract_is_refused(reference: Reference, http: httpx.Client) -> None:
    _, result = raw_call(
        http,
        reference.url,
        "baseEntry",
        "addContent",
        ks=admin_ks(reference.p1),
        entryId="0_x",
        resource={"name": "no type"},
    )
    assert is_error(result, "OBJECT_TYPE_ABSTRACT")


def test_page_size_over_500_is_clamped(reference: Reference, http: httpx.Client) -> None:
    ks = admin_ks(reference.p1, "pager")
    created = []
    for index in range(3):
        _, entry = raw_call(
            http,
            reference.url,
            "baseEntry",
            "add",
            ks=ks,
            entry={"objectType": "KalturaBaseEntry", "name": f"clamp {index}", "referenceId": "clamp-test"},
        )
        created.append(entry["id"])
    filt = {"objectType": "KalturaBaseEntryFilter", "statusEqual": 7, "referenceIdEqual": "clamp-test"}
    _, big = raw_call(
        http, reference.url, "baseEntry", "list", ks=ks, filter=filt, pager={"pageSize": 100000}
    )
    assert big["totalCount"] == 3 and len(big["objects"]) == 3
    _, second = raw_call(
        http,
        reference.url,
        "baseEntry",
        "list",
        ks=ks,
        filter=filt,
        pager={"pageSize": 100000, "pageIndex": 2},
    )
    assert second.get("objects", []) == [], "pageSize must be clamped to 500, so page 2 starts at offset 500"
    _, two = raw_call(
        http, reference.url, "baseEntry", "list", ks=ks, filter=filt, pager={"pageSize": 2, "pageIndex": 2}
    )
    assert len(two["objects"]) == 1
    for entry_id in created:
        raw_call(http, reference.url, "baseEntry", "delete", ks=ks, entryId=entry_id)


def test_oversized_chunk_is_refused_with_upload_error(reference: Reference, http: httpx.Client) -> None:
    # the shared reference accepts chunks up to 4 MiB (+ framing slack)
    ks = admin_ks(reference.p1)
    _, token = raw_call(http, reference.url, "uploadToken", "add", ks=ks)
    response = http.post(
        f"{reference.url}/api_v3/service/uploadtoken/action/upload?format=1",
        data={"json": json.dumps({"format": 1, "ks": ks, "uploadTokenId": token["id"]})},
        files={"fileData": ("big.bin", b"\0" * (6 * 1024 * 1024), "application/octet-stream")},
    )
    assert response.status_code == 200 and is_error(response.json(), "UPLOAD_ERROR")
    _, after = raw_call(http, reference.url, "uploadToken", "get", ks=ks, uploadTokenId=token["id"])
    assert after["status"] == 0, "a refused chunk must not change the token"


def test_call_without_ks(reference: Reference, http: httpx.Client) -> None:
    _, result = raw_call(http, reference.url, "uploadToken", "add")
    assert is_error(result, "SERVICE_FORBIDDEN")


@pytest.mark.parametrize("fmt", ["4", "7", "8", "42", "abc"])
def test_unknown_format_gives_empty_body_and_error_header(
    reference: Reference, http: httpx.Client, fmt: str
) -> None:
    response = http.get(f"{reference.url}/api_v3/service/system/action/ping", params={"format": fmt})
    assert response.status_code == 200 and response.content == b""
    assert response.headers["X-Kaltura"] == "error- UNKNOWN_RESPONSE_FORMAT"
    assert f"[{fmt}]" in response.headers["X-Kaltura-App"]


def test_jsonp_needs_a_valid_callback(reference: Reference, http: httpx.Client) -> None:
    ok = http.get(
        f"{reference.url}/api_v3/service/system/action/ping", params={"format": 9, "callback": "cb.x_1"}
    )
    assert ok.text == "cb.x_1(true);" and ok.headers["content-type"].startswith("application/javascript")
    bad = http.get(
        f"{reference.url}/api_v3/service/system/action/ping", params={"format": 9, "callback": "alert(1)"}
    )
    assert bad.content == b"" and bad.headers["X-Kaltura"] == "error- INVALID_FIELD_VALUE"


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe\x00garbage", b'{"a":' * 5000 + b"1" + b"}" * 5000, b"ks=%ZZ&format=1&&&=", b"[1,2,3]"],
)
def test_garbage_bodies_never_crash(reference: Reference, http: httpx.Client, body: bytes) -> None:
    for content_type in ("application/json", "application/x-www-form-urlencoded", "text/plain"):
        response = http.post(
            f"{reference.url}/api_v3/service/baseentry/action/list?format=1",
            content=body,
            headers={"Content-Type": content_type},
        )
        assert response.status_code == 200
        assert response.json()["objectType"] == "KalturaAPIException"


def test_control_characters_are_refused(reference: Reference, http: httpx.Client) -> None:
    _, result = raw_call(
        http,
        reference.url,
        "baseEntry",
        "add",
        ks=admin_ks(reference.p1),
        entry={"objectType": "KalturaBaseEntry", "name": "bell\x07"},
    )
    assert is_error(result, "INVALID_PARAMETER_CHAR")


@pytest.mark.parametrize(
    ("service", "action", "params"),
    [
        ("uploadToken", "add", {"uploadToken": {"objectType": "KalturaUploadToken", "fileSize": "1e999"}}),
        ("uploadToken", "add", {"uploadToken": {"objectType": "KalturaUploadToken", "fileSize": -1e308}}),
        (
            "media",
            "count",
            {"filter": {"objectType": "KalturaMediaEntryFilter", "createdAtGreaterThanOrEqual": 2**70}},
        ),
        (
            "baseEntry",
            "list",
            {"pager": {"objectType": "KalturaFilterPager", "pageSize": 2**64, "pageIndex": -(2**65)}},
        ),
    ],
)
def test_out_of_range_numbers_never_crash(
    reference: Reference, http: httpx.Client, service: str, action: str, params: dict
) -> None:
    # found by schemathesis: infinities and integers past 64 bits used to crash the store (HTTP 500)
    response, result = raw_call(http, reference.url, service, action, ks=admin_ks(reference.p1), **params)
    assert response.status_code == 200
    assert result is not None, response.text
    assert not (isinstance(result, dict) and result.get("code") == "INTERNAL_SERVERL_ERROR"), result


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"garbage"),
        (
            "multipart/form-data; boundary=abc",
            b'--abc\r\nContent-Disposition: form-data; name="json"\r\n\r\n{"a":1}\r\n--ab',
        ),
        ("multipart/form-data; boundary=abc", b"--abc\r\nno headers at all\r\n--abc--\r\n"),
    ],
)
def test_malformed_multipart_is_answered_like_kaltura(
    reference: Reference, http: httpx.Client, content_type: str, body: bytes
) -> None:
    response = http.post(
        f"{reference.url}/api_v3/service/baseentry/action/list?format=1",
        content=body,
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 200 and is_error(response.json()), response.text


@pytest.mark.parametrize("fmt", [1, 2, 3, 9])
def test_lone_surrogates_never_crash(reference: Reference, http: httpx.Client, fmt: int) -> None:
    # found by schemathesis: JSON strings with lone UTF-16 surrogates used to give HTTP 500
    ks = admin_ks(reference.p1)
    body = '{"format": FMT, "ks": "KS", "entry": {"objectType": "KalturaBaseEntry", "name": "a\\ud800b"}, "action": "x\\udfff"}'
    body = body.replace("FMT", str(fmt)).replace("KS", ks)
    for path in ("/api_v3/service/baseentry/action/add", "/api_v3/service/baseentry/action/nothing\\ud800"):
        response = http.post(
            f"{reference.url}{path}?callback=cb",
            content=body.encode(),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text


def test_upload_token_list_far_page_is_refused_not_crashed(reference: Reference, http: httpx.Client) -> None:
    # found by schemathesis: an offset past 2^63 used to overflow SQLite (HTTP 500)
    _, result = raw_call(
        http,
        reference.url,
        "uploadToken",
        "list",
        ks=admin_ks(reference.p1),
        pager={"objectType": "KalturaFilterPager", "pageSize": 500, "pageIndex": 2**62},
    )
    assert is_error(result, "QUERY_EXCEEDED_MAX_MATCHES_ALLOWED")
