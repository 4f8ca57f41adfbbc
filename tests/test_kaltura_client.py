"""The client core: wire encoding/decoding, KalturaApi over a fake transport, redaction, and
HttpxTransport against real misbehaving servers on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import gc
import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from enum import IntEnum
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from ksentinel import __version__
from ksentinel.errors import KalturaApiError, KsentinelError, TargetError
from ksentinel.kaltura import ks as ksmod
from ksentinel.kaltura import redact
from ksentinel.kaltura.api import ApiResponse, KalturaApi, cache_status
from ksentinel.kaltura.transport import (
    Headers,
    HttpRequest,
    HttpResponse,
    HttpxTransport,
    Transport,
    TransportError,
)
from ksentinel.kaltura.wire import BAD_RESPONSE, Null, decode_response, flatten, json_params
from tests.hostile import (
    Behaviour,
    answer_then_hang,
    close_without_answer,
    closed_port,
    endless_chunked,
    hang_after_accept,
    hang_after_request,
    html_page,
    huge_content_length,
    not_http,
    random_body,
    read_request,
    redirect_loop,
    reset,
    serve,
    server_error,
    trickle_body,
    trickle_headers,
)

SECRET = "0123456789abcdef0123456789abcdef"
TIMEOUT = 1.0
BOUND = 6.0  # generous: every failure must end well before this


@pytest.fixture(autouse=True)
def _isolated_secrets() -> Iterator[None]:
    redact.forget_secrets()
    yield
    redact.forget_secrets()


def a_ks(user: str = "alice") -> str:
    return ksmod.build_v2(SECRET, 101, user, 2, 3600, "")


# --- a fake transport: the seam ------------------------------------------------------------------


class FakeTransport:
    """Answers from ``handler(request)``; keeps every request."""

    def __init__(self, handler: Callable[[HttpRequest], HttpResponse | Any]) -> None:
        self.handler = handler
        self.requests: list[HttpRequest] = []
        self.closed = False

    def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        answer = self.handler(request)
        if isinstance(answer, HttpResponse):
            return answer
        return json_answer(answer)

    def close(self) -> None:
        self.closed = True


def json_answer(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    body = json.dumps(value).encode()
    return HttpResponse(status, Headers({"Content-Type": "application/json", **(headers or {})}), body, 0.01)


def raw_answer(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(status, Headers(headers or {}), body, 0.01)


def parse_body(request: HttpRequest) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
    """``(params, files)`` of a request as the server would see them."""
    content_type = request.headers["Content-Type"]
    assert request.body is not None
    if content_type == "application/json":
        return json.loads(request.body), {}
    if content_type == "application/x-www-form-urlencoded":
        return dict(parse_qsl(request.body.decode(), keep_blank_values=True)), {}
    assert content_type.startswith("multipart/form-data; boundary=")
    message = email.message_from_bytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + request.body, policy=email.policy.HTTP
    )
    fields: dict[str, Any] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if part.get_filename() is not None:
            files[name] = (part.get_filename(), payload)
        else:
            fields[name] = payload.decode()
    if "json" in fields:
        return json.loads(fields["json"]), files
    return fields, files


def test_fake_transport_satisfies_the_protocol() -> None:
    assert isinstance(FakeTransport(lambda r: None), Transport)
    assert isinstance(HttpxTransport(), Transport)


# --- flatten and JSON params ---------------------------------------------------------------------


class Status(IntEnum):
    READY = 2


def test_flatten_nests_objects_arrays_null_and_bools() -> None:
    params = {
        "filter": {"objectType": "KalturaMediaEntryFilter", "statusEqual": Status.READY, "tagsLike": None},
        "pager": {"pageSize": 10, "pageIndex": 1},
        "entry": {"multiLingual_name": [{"language": "en", "value": "x"}], "categories": []},
        "baseEntry": {"tags": Null},
        "resume": True,
        "finalChunk": False,
        "resumeAt": -1,
        "ratio": 1.5,
        "skipped": None,
        "clear": Null,
    }
    assert flatten(params) == [
        ("filter:objectType", "KalturaMediaEntryFilter"),
        ("filter:statusEqual", "2"),
        ("pager:pageSize", "10"),
        ("pager:pageIndex", "1"),
        ("entry:multiLingual_name:0:language", "en"),
        ("entry:multiLingual_name:0:value", "x"),
        ("entry:categories:-", ""),
        ("baseEntry:tags__null", ""),
        ("resume", "1"),
        ("finalChunk", "0"),
        ("resumeAt", "-1"),
        ("ratio", "1.5"),
        ("clear__null", ""),
    ]


def test_flatten_refuses_unknown_types() -> None:
    with pytest.raises(TypeError, match="bytes"):
        flatten({"x": b"raw"})


def test_json_params_keep_native_types() -> None:
    params = {"a": 1, "b": True, "c": None, "d": Null, "e": [], "f": {"g": Null, "h": [1, 2]}, "s": "x"}
    assert json_params(params) == {
        "a": 1,
        "b": True,
        "d__null": "",
        "e": {"-": ""},
        "f": {"g__null": "", "h": [1, 2]},
        "s": "x",
    }


# --- decoding ------------------------------------------------------------------------------------

ENTRY_JSON = {"id": "0_abc123de", "name": "n", "status": 2, "objectType": "KalturaMediaEntry"}


def decode(body: bytes | str, fmt: int = 1, *, multirequest: bool = False, status: int = 200, **headers: str):
    data = body.encode() if isinstance(body, str) else body
    result, _ = decode_response(status, Headers(headers), data, format=fmt, multirequest=multirequest)
    return result


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (json.dumps(ENTRY_JSON), ENTRY_JSON),
        ('"a string"', "a string"),
        ("true", True),
        ("null", None),
        ("12", 12),
        ('[{"objectType": "KalturaX", "id": 1}]', [{"objectType": "KalturaX", "id": 1}]),
    ],
)
def test_json_results(body: str, expected: Any) -> None:
    assert decode(body) == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [([], {}), ({"ENTRY_ID": "0_x"}, {"ENTRY_ID": "0_x"}), ({"ERR_CODE": -1}, {"ERR_CODE": "-1"})],
)
def test_json_error_raises_with_code_message_and_args(args: Any, expected: dict[str, str]) -> None:
    body = {
        "code": "ENTRY_ID_NOT_FOUND",
        "message": "Entry id not found",
        "objectType": "KalturaAPIException",
    }
    with pytest.raises(KalturaApiError) as info:
        decode(json.dumps({**body, "args": args}))
    assert (info.value.code, info.value.message, info.value.error_args) == (
        "ENTRY_ID_NOT_FOUND",
        "Entry id not found",
        expected,
    )
    assert info.value.http_status == 200


def test_json_multirequest_keeps_errors_in_place() -> None:
    error = {"code": "INVALID_KS", "message": "bad", "objectType": "KalturaAPIException", "args": {}}
    results = decode(json.dumps(["ks-text", error, None, ENTRY_JSON]), multirequest=True)
    assert results[0] == "ks-text"
    assert isinstance(results[1], KalturaApiError) and results[1].code == "INVALID_KS"
    assert results[2:] == [None, ENTRY_JSON]


XML_ENTRY = (
    '<?xml version="1.0" encoding="utf-8"?><xml><result><objectType>KalturaMediaEntry</objectType>'
    "<relatedObjects></relatedObjects><id>0_abc123de</id><name>a &amp; b</name><status>2</status>"
    "<tags></tags></result><executionTime>0.0123</executionTime></xml>"
)
XML_LIST = (
    "<xml><result><objectType>KalturaBaseEntryListResponse</objectType><relatedObjects></relatedObjects>"
    "<totalCount>2</totalCount><objects><item><objectType>KalturaMediaEntry</objectType><id>0_a</id></item>"
    "<item><objectType>KalturaMediaEntry</objectType><id>0_b</id></item></objects></result>"
    "<executionTime>0.01</executionTime></xml>"
)
XML_ERROR = (
    '<xml><result><error><code>ENTRY_ID_NOT_FOUND</code><message>Entry id "0_x" not found</message>'
    "<objectType>KalturaAPIException</objectType><args><item><objectType>KalturaApiExceptionArg</objectType>"
    "<name>ENTRY_ID</name><value>0_x</value></item></args></error></result>"
    "<executionTime>0.001</executionTime></xml>"
)


def test_xml_object_becomes_a_dict_of_strings_with_execution_time() -> None:
    result, execution_time = decode_response(200, Headers(), XML_ENTRY.encode(), format=2)
    assert result == {
        "objectType": "KalturaMediaEntry",
        "relatedObjects": "",
        "id": "0_abc123de",
        "name": "a & b",
        "status": "2",
        "tags": "",
    }
    assert execution_time == pytest.approx(0.0123)


def test_xml_list_scalar_void_and_map() -> None:
    listing = decode(XML_LIST, 2)
    assert listing["totalCount"] == "2"
    assert [o["id"] for o in listing["objects"]] == ["0_a", "0_b"]
    assert decode("<xml><result>1</result></xml>", 2) == "1"
    assert decode("<xml><result/><executionTime>0</executionTime></xml>", 2) is None
    mapping = (
        "<xml><result><item><itemKey>k1</itemKey><objectType>KalturaString</objectType><value>v</value>"
        "</item></result></xml>"
    )
    assert decode(mapping, 2) == {"k1": {"objectType": "KalturaString", "value": "v"}}


def test_xml_error_raises_with_args() -> None:
    with pytest.raises(KalturaApiError) as info:
        decode(XML_ERROR, 2)
    assert info.value.code == "ENTRY_ID_NOT_FOUND"
    assert info.value.message == 'Entry id "0_x" not found'
    assert info.value.error_args == {"ENTRY_ID": "0_x"}


def test_xml_multirequest_keeps_errors_and_voids_in_place() -> None:
    body = (
        "<xml><result><item>djJ8MTAxfGFi</item>"
        "<item><error><objectType>KalturaAPIException</objectType><code>INVALID_KS</code>"
        "<message>Invalid KS</message><args></args></error></item>"
        "<item></item>"
        "<item><objectType>KalturaUploadToken</objectType><id>0_t</id><status>1</status></item>"
        "</result><executionTime>0.2</executionTime></xml>"
    )
    results = decode(body, 2, multirequest=True)
    assert results[0] == "djJ8MTAxfGFi"
    assert isinstance(results[1], KalturaApiError) and results[1].code == "INVALID_KS"
    assert results[2] is None
    assert results[3] == {"objectType": "KalturaUploadToken", "id": "0_t", "status": "1"}


@pytest.mark.parametrize(
    ("body", "fmt", "reason"),
    [
        ("<!DOCTYPE html><html><body>Bad gateway</body></html>", 1, "HTML page"),
        ("<html><body>hi</body></html>", 2, "HTML page"),
        ("not json {", 1, "not JSON"),
        ('{"objects": []}', 1, "without objectType"),
        ("", 1, "empty body"),
        ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml><result>&a;</result></xml>', 2, "DTD"),
        ("<xml><result><!ENTITY x 'y'></result></xml>", 2, "DTD"),
        ("<other><result>1</result></other>", 2, "envelope"),
        ("<xml><result>unclosed</xml>", 2, "not XML"),
    ],
)
def test_bad_responses(body: str, fmt: int, reason: str) -> None:
    with pytest.raises(KalturaApiError) as info:
        decode(body, fmt)
    assert info.value.code == BAD_RESPONSE
    assert reason in info.value.message
    assert "\n" not in str(info.value)


def test_random_bytes_are_a_bad_response() -> None:
    noise = random.Random(7).randbytes(300)
    for fmt in (1, 2):
        with pytest.raises(KalturaApiError) as info:
            decode(noise, fmt)
        assert info.value.code == BAD_RESPONSE


def test_empty_body_with_error_header_uses_its_code() -> None:
    headers = {
        "X-Kaltura": "error- UNKNOWN_RESPONSE_FORMAT",
        "X-Kaltura-App": "exiting on error UNKNOWN_RESPONSE_FORMAT - Response format provided [7] is not "
        "recognized by server",
    }
    with pytest.raises(KalturaApiError) as info:
        decode("", **headers)
    assert info.value.code == "UNKNOWN_RESPONSE_FORMAT"
    assert "not recognized" in info.value.message


@pytest.mark.parametrize("status", [404, 500, 503, 302])
def test_http_errors_map_to_http_codes(status: int) -> None:
    with pytest.raises(KalturaApiError) as info:
        decode('{"objectType": "KalturaX"}', status=status, Location="/elsewhere")
    assert info.value.code == f"HTTP_{status}"
    assert info.value.http_status == status


# --- KalturaApi over the fake transport ----------------------------------------------------------


def test_call_posts_json_with_request_configuration() -> None:
    ks = a_ks()
    fake = FakeTransport(lambda r: ENTRY_JSON)
    api = KalturaApi("http://k.example/", ks=ks, partner_id=101, transport=fake, timeout=3.0)
    result = api.call("baseEntry", "get", entryId="0_abc123de", version=None, ignore=Null)
    assert result == ENTRY_JSON
    request = fake.requests[0]
    assert (request.method, request.url, request.timeout) == (
        "POST",
        "http://k.example/api_v3/service/baseentry/action/get",
        3.0,
    )
    assert request.headers["Content-Type"] == "application/json"
    params, files = parse_body(request)
    assert files == {}
    assert params == {
        "format": 1,
        "ks": ks,
        "partnerId": 101,
        "clientTag": "ksentinel",
        "apiVersion": params["apiVersion"],
        "entryId": "0_abc123de",
        "ignore__null": "",
    }


def test_call_raw_returns_error_and_headers_without_raising() -> None:
    error = {"code": "SERVICE_FORBIDDEN", "message": "no", "objectType": "KalturaAPIException", "args": []}
    answer = json_answer(error, headers={"X-Kaltura": "error-SERVICE_FORBIDDEN"})
    api = KalturaApi("http://k", transport=FakeTransport(lambda r: answer))
    response = api.call_raw("baseEntry", "list")
    assert isinstance(response, ApiResponse)
    assert not response.ok and response.error is not None and response.error.code == "SERVICE_FORBIDDEN"
    assert response.headers["x-kaltura"] == "error-SERVICE_FORBIDDEN"
    with pytest.raises(KalturaApiError):
        response.unwrap()
    with pytest.raises(KalturaApiError, match="SERVICE_FORBIDDEN"):
        api.call("baseEntry", "list")


@pytest.mark.parametrize(
    ("marker", "hit", "key"),
    [
        ("cached-dispatcher,3f2a9c,12", True, "3f2a9c"),
        ("cached-with-extra-fields,9c1d,40", True, "9c1d"),
        ("cache-key,77aa", False, "77aa"),
        ("cached-warmup-https,5e5e", False, "5e5e"),
        ("error-SERVICE_FORBIDDEN", False, None),
        (None, False, None),
    ],
)
def test_cache_headers(marker: str | None, hit: bool, key: str | None) -> None:
    headers = {"X-Kaltura": marker} if marker else {}
    api = KalturaApi("http://k", transport=FakeTransport(lambda r: json_answer(True, headers=headers)))
    response = api.call_raw("system", "ping")
    assert (response.cache_hit, response.cache_key) == (hit, key)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"X-Kaltura": "cached-dispatcher,k,0"}, "hit"),
        ({"x-kaltura": "cached-with-extra-fields,k,12"}, "hit"),
        (Headers([("X-KALTURA", "Cached-Dispatcher,k,3")]), "hit"),
        ({"X-Kaltura": "cache-key,k"}, "miss"),
        ({"X-Kaltura": "cached-warmup-http,k"}, "unknown"),  # a warm-up request: recomputed or not
        (Headers([("X-Kaltura", "cached-warmup-http,k"), ("X-Kaltura", "cached-dispatcher,k,5")]), "hit"),
        (Headers([("X-Kaltura", "cached-warmup-http,k"), ("X-Kaltura", "cache-key,k")]), "miss"),
        ({"X-Kaltura": "error-SERVICE_FORBIDDEN"}, "unknown"),
        ({"X-Kaltura": ""}, "unknown"),
        ({}, "unknown"),
    ],
)
def test_cache_status_reads_every_hit_and_miss_marker(headers: Any, expected: str) -> None:
    assert cache_status(headers) == expected


# --- downloads: redirects to a CDN host ----------------------------------------------------------


def redirect(location: str, status: int = 302) -> HttpResponse:
    return raw_answer(b"", status, {"Location": location})


def test_download_follows_redirects_across_hosts_sending_only_the_user_agent() -> None:
    hops = {
        "http://api.example/p/1/sp/100/playManifest/entryId/0_a/format/download": redirect(
            "https://cdn.example/v/0_a?token=t"
        ),
        "https://cdn.example/v/0_a?token=t": redirect("../bytes/0_a.mp4", 307),  # relative
        "https://cdn.example/bytes/0_a.mp4": redirect("/final", 301),
        "https://cdn.example/final": raw_answer(b"the bytes"),
    }
    fake = FakeTransport(lambda r: hops[r.url])
    api = KalturaApi("http://api.example", ks=a_ks(), partner_id=101, transport=fake)
    assert (
        api.download("http://api.example/p/1/sp/100/playManifest/entryId/0_a/format/download") == b"the bytes"
    )
    assert [r.url for r in fake.requests] == list(hops)
    for request in fake.requests:  # no KS, secret, Authorization or Cookie to any host
        assert request.method == "GET" and request.body is None
        assert dict(request.headers) == {"User-Agent": f"ksentinel/{__version__}"}
        assert api.ks not in request.url


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_download_follows_at_most_five_redirects(status: int) -> None:
    five = FakeTransport(
        lambda r: raw_answer(b"ok") if r.url.endswith("/5") else redirect(f"/{int(r.url[-1]) + 1}", status)
    )
    assert KalturaApi("http://k", transport=five).download("http://k/0") == b"ok"
    assert len(five.requests) == 6

    loop = FakeTransport(lambda r: redirect("/again", status))
    with pytest.raises(
        KalturaApiError, match=r"^TOO_MANY_REDIRECTS: download redirected more than 5 times"
    ) as err:
        KalturaApi("http://k", transport=loop).download("http://k/start")
    assert err.value.code == "TOO_MANY_REDIRECTS" and "\n" not in str(err.value)
    assert len(loop.requests) == 6, "the first request and five redirects, no more"


def test_download_failures_name_the_http_status() -> None:
    no_location = FakeTransport(lambda r: raw_answer(b"", 302))
    with pytest.raises(KalturaApiError, match="HTTP 302 without a Location") as err:
        KalturaApi("http://k", transport=no_location).download("http://k/x")
    assert err.value.code == "HTTP_302"
    missing = FakeTransport(
        lambda r: redirect("http://cdn/x") if r.url == "http://k/x" else raw_answer(b"", 404)
    )
    with pytest.raises(KalturaApiError, match="download answered HTTP 404") as err:
        KalturaApi("http://k", transport=missing).download("http://k/x")
    assert err.value.code == "HTTP_404"
    elsewhere = FakeTransport(lambda r: redirect("ftp://cdn/x"))
    with pytest.raises(KalturaApiError, match="BAD_REDIRECT"):
        KalturaApi("http://k", transport=elsewhere).download("http://k/x")


def test_xml_format_sends_format_2_and_decodes_xml() -> None:
    fake = FakeTransport(lambda r: raw_answer(XML_ENTRY.encode()))
    api = KalturaApi("http://k", format=2, transport=fake)
    response = api.call_raw("media", "get", entryId="0_abc123de")
    assert response.result["id"] == "0_abc123de"
    assert response.execution_time == pytest.approx(0.0123)
    assert parse_body(fake.requests[0])[0]["format"] == 2
    assert fake.requests[0].headers["Accept"] == "text/xml"


def test_form_encoding_sends_flattened_params() -> None:
    fake = FakeTransport(lambda r: {"objectType": "KalturaBaseEntryListResponse", "objects": []})
    api = KalturaApi("http://k", partner_id=5, transport=fake, encoding="form")
    api.call("baseEntry", "list", filter={"objectType": "KalturaBaseEntryFilter", "statusIn": "2,7"})
    request = fake.requests[0]
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    params, _ = parse_body(request)
    assert params["filter:objectType"] == "KalturaBaseEntryFilter"
    assert params["filter:statusIn"] == "2,7"
    assert (params["format"], params["partnerId"]) == ("1", "5")


def test_files_go_multipart_with_a_json_part() -> None:
    fake = FakeTransport(lambda r: {"objectType": "KalturaUploadToken", "id": "0_t", "status": 1})
    api = KalturaApi("http://k", transport=fake)
    data = bytes(range(256)) * 3
    api.call("uploadToken", "upload", files={"fileData": ('a "b".bin', data)}, uploadTokenId="0_t")
    params, files = parse_body(fake.requests[0])
    assert params["uploadTokenId"] == "0_t"
    assert files["fileData"][1] == data


def test_form_encoding_with_files_has_no_json_part() -> None:
    fake = FakeTransport(lambda r: {"objectType": "KalturaUploadToken", "id": "0_t"})
    api = KalturaApi("http://k", transport=fake, encoding="form")
    api.upload_chunk("0_t", b"abc", resume=True, final_chunk=False, resume_at=3)
    params, files = parse_body(fake.requests[0])
    assert params["resume"] == "1" and params["finalChunk"] == "0" and params["resumeAt"] == "3"
    assert files == {"fileData": ("chunk.bin", b"abc")}


def test_multirequest_body_back_references_and_results() -> None:
    ks = a_ks()
    error = {"code": "ENTRY_ID_NOT_FOUND", "message": "x", "objectType": "KalturaAPIException", "args": []}
    fake = FakeTransport(lambda r: [ks, {"objectType": "KalturaBaseEntryListResponse"}, error])
    api = KalturaApi("http://k", partner_id=101, transport=fake)
    mr = api.multirequest()
    r1 = mr.add("session", "start", secret=SECRET, partnerId=101)
    r2 = mr.add("baseEntry", "list", ks=r1.ref())
    mr.add("baseEntry", "get", ks=r1.ref(), entryId=r2.ref("objects", 0, "id"))
    assert (r1.ref(), r2.ref("objects", 0, "id")) == ("{1:result}", "{2:result:objects:0:id}")
    results = mr.execute()
    assert results[0] == ks and results[1]["objectType"] == "KalturaBaseEntryListResponse"
    assert isinstance(results[2], KalturaApiError) and results[2].code == "ENTRY_ID_NOT_FOUND"
    request = fake.requests[0]
    assert request.url == "http://k/api_v3/service/multirequest"
    params, _ = parse_body(request)
    assert params["0"] == {"service": "session", "action": "start", "secret": SECRET, "partnerId": 101}
    assert params["1"] == {"service": "baseentry", "action": "list", "ks": "{1:result}"}
    assert params["2"]["entryId"] == "{2:result:objects:0:id}"
    assert params["format"] == 1 and "ks" not in params


def test_multirequest_files_are_numbered_by_sub_request() -> None:
    fake = FakeTransport(
        lambda r: [{"objectType": "KalturaUploadToken"}, {"objectType": "KalturaUploadToken"}]
    )
    mr = KalturaApi("http://k", transport=fake).multirequest()
    token = mr.add("uploadToken", "add")
    mr.add("uploadToken", "upload", files={"fileData": ("f.bin", b"xyz")}, uploadTokenId=token.ref("id"))
    mr.execute()
    params, files = parse_body(fake.requests[0])
    assert files == {"1:fileData": ("f.bin", b"xyz")}
    assert params["1"]["uploadTokenId"] == "{1:result:id}"


def test_multirequest_whole_failure_raises() -> None:
    error = {"code": "INVALID_KS", "message": "x", "objectType": "KalturaAPIException", "args": []}
    mr = KalturaApi("http://k", transport=FakeTransport(lambda r: error)).multirequest()
    mr.add("system", "ping")
    with pytest.raises(KalturaApiError, match="INVALID_KS"):
        mr.execute()


def test_start_session_sends_partner_without_ks_and_registers_the_secret() -> None:
    new_ks = a_ks("bob")
    fake = FakeTransport(lambda r: new_ks)
    api = KalturaApi("http://k", ks=a_ks(), partner_id=101, transport=fake)
    assert api.start_session(SECRET, user_id="bob", privileges="edit:*") == new_ks
    params, _ = parse_body(fake.requests[0])
    assert fake.requests[0].url.endswith("/service/session/action/start")
    assert {k: params[k] for k in ("secret", "userId", "type", "partnerId", "expiry", "privileges")} == {
        "secret": SECRET,
        "userId": "bob",
        "type": 2,
        "partnerId": 101,
        "expiry": 86400,
        "privileges": "edit:*",
    }
    assert "ks" not in params
    assert SECRET not in redact.redact(f"secret={SECRET}")


def test_with_ks_shares_the_transport_and_only_the_owner_closes_it() -> None:
    fake = FakeTransport(lambda r: True)
    with KalturaApi("http://k", transport=fake) as api:
        other = api.with_ks(a_ks())
        assert other.transport is api.transport and other.ks != api.ks
        other.call("system", "ping")
        other.close()
    assert parse_body(fake.requests[0])[0]["ks"] == other.ks
    assert not fake.closed  # a transport passed in belongs to the caller


class TokenStore:
    """A fake uploadToken service that keeps the bytes."""

    def __init__(self, data: bytes = b"", status: int = 0) -> None:
        self.data = bytearray(data)
        self.status = status
        self.calls: list[dict[str, Any]] = []

    def __call__(self, request: HttpRequest) -> Any:
        params, files = parse_body(request)
        self.calls.append({**params, **({"chunk": files["fileData"][1]} if files else {})})
        if request.url.endswith("/upload"):
            chunk = files["fileData"][1]
            if not params["resume"]:
                self.data = bytearray(chunk)
            elif params["resumeAt"] < 0:
                self.data += chunk
            else:
                assert params["resumeAt"] == len(self.data)
                self.data[params["resumeAt"] :] = chunk
            self.status = 2 if params["finalChunk"] else 1
        return {
            "objectType": "KalturaUploadToken",
            "id": "0_t",
            "status": self.status,
            "uploadedFileSize": str(len(self.data)),
        }


def test_upload_file_sends_chunks_with_resume_offsets() -> None:
    store = TokenStore()
    api = KalturaApi("http://k", transport=FakeTransport(store))
    token = api.upload_file("0_t", b"0123456789", chunk_size=4)
    assert [(c["resume"], c["resumeAt"], c["finalChunk"], c["chunk"]) for c in store.calls] == [
        (False, -1, False, b"0123"),
        (True, 4, False, b"4567"),
        (True, 8, True, b"89"),
    ]
    assert bytes(store.data) == b"0123456789" and token["status"] == 2


def test_upload_file_from_an_iterable_and_an_empty_file() -> None:
    store = TokenStore()
    api = KalturaApi("http://k", transport=FakeTransport(store))
    api.upload_file("0_t", iter([b"01", b"2345", b"6"]), chunk_size=3)
    assert [c["chunk"] for c in store.calls] == [b"012", b"345", b"6"]
    store.calls.clear()
    api.upload_file("0_t", b"")
    assert [(c["resume"], c["finalChunk"], c["chunk"]) for c in store.calls] == [(False, True, b"")]


def test_resume_upload_continues_from_uploaded_size() -> None:
    store = TokenStore(b"012345", status=1)
    api = KalturaApi("http://k", transport=FakeTransport(store))
    token = api.resume_upload("0_t", b"0123456789", chunk_size=3)
    assert store.calls[0]["uploadTokenId"] == "0_t" and "chunk" not in store.calls[0]
    assert [(c["resume"], c["resumeAt"], c["finalChunk"], c["chunk"]) for c in store.calls[1:]] == [
        (True, 6, False, b"678"),
        (True, 9, True, b"9"),
    ]
    assert bytes(store.data) == b"0123456789" and token["status"] == 2


def test_resume_upload_of_a_fresh_or_finished_token() -> None:
    store = TokenStore()
    api = KalturaApi("http://k", transport=FakeTransport(store))
    api.resume_upload("0_t", iter([b"ab"]))
    assert store.calls[1]["resume"] is False and bytes(store.data) == b"ab"
    store.calls.clear()
    assert api.resume_upload("0_t", b"ab")["status"] == 2
    assert len(store.calls) == 1  # only uploadToken.get


# --- redaction -----------------------------------------------------------------------------------


def test_ks_never_shows_in_reprs_or_errors() -> None:
    ks = a_ks()
    message = f'Invalid KS "{ks}", Error "-5,EXPIRED"'
    error = {
        "code": "INVALID_KS",
        "message": message,
        "objectType": "KalturaAPIException",
        "args": {"KSID": ks},
    }
    api = KalturaApi("http://k", ks=ks, partner_id=101, transport=FakeTransport(lambda r: error))
    response = api.call_raw("baseEntry", "list")
    with pytest.raises(KalturaApiError) as info:
        response.unwrap()
    for text in (repr(api), repr(response), str(info.value), repr(info.value), str(info.value.error_args)):
        assert ks not in text
    assert "KS*" in repr(api)


def test_session_result_is_redacted_in_the_response_repr() -> None:
    ks = a_ks("carol")
    api = KalturaApi("http://k", partner_id=101, transport=FakeTransport(lambda r: ks))
    response = api.call_raw("session", "start", secret=SECRET, partnerId=101)
    assert response.result == ks and ks not in repr(response)


def test_transport_errors_are_redacted() -> None:
    ks = a_ks()
    with HttpxTransport() as transport, pytest.raises(TransportError) as info:
        transport.send(HttpRequest("POST", f"http://127.0.0.1:{closed_port()}/x?ks={ks}", timeout=TIMEOUT))
    assert ks not in str(info.value)
    assert ks not in repr(HttpRequest("POST", f"http://k/x?ks={ks}", {}, b"{}"))


def test_headers_are_case_insensitive_and_keep_repeats() -> None:
    headers = Headers([("X-Kaltura", "cache-key,1"), ("Set-Cookie", "a=1"), ("set-cookie", "b=2")])
    assert headers["x-kaltura"] == "cache-key,1" and "X-KALTURA" in headers
    assert headers["Set-Cookie"] == "a=1, b=2" and len(headers) == 2
    assert headers.items_raw()[2] == ("set-cookie", "b=2")


# --- HttpxTransport against real misbehaving servers ---------------------------------------------


def slow_but_in_time(sock: socket.socket, stop: threading.Event) -> None:
    read_request(sock)
    body = json.dumps(ENTRY_JSON).encode()
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Kaltura: cache-key,abc\r\n")
    sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body))
    for start in range(0, len(body), 20):
        stop.wait(0.05)
        sock.sendall(body[start : start + 20])


def send(url: str, transport: HttpxTransport | None = None) -> HttpResponse:
    with transport or HttpxTransport() as tr:
        return tr.send(HttpRequest("POST", url + "/api_v3/service/system/action/ping", {}, b"{}", TIMEOUT))


@pytest.mark.parametrize(
    ("behaviour", "code"),
    [
        (hang_after_accept, "TIMEOUT"),
        (hang_after_request, "TIMEOUT"),
        (trickle_body, "TIMEOUT"),
        (trickle_headers, "TIMEOUT"),
        (huge_content_length, "TOO_LARGE"),
        (not_http, "PROTOCOL"),
        (close_without_answer, "PROTOCOL"),
        (reset, "CONNECTION"),
    ],
)
def test_transport_failures_end_in_time_with_their_code(behaviour: Behaviour, code: str) -> None:
    with serve(behaviour) as url:
        started = time.monotonic()
        with pytest.raises(TransportError) as info:
            send(url)
        assert time.monotonic() - started < BOUND
    assert info.value.code == code
    assert isinstance(info.value, TargetError) and isinstance(info.value, KsentinelError)
    assert str(info.value).startswith(f"{code}: POST http://127.0.0.1:")


def test_a_finished_request_leaves_no_cyclic_garbage(reference: Any) -> None:
    """httpx ties a streamed response and its stream in a cycle; the transport breaks it once the
    body is read, so thousands of requests a minute (a probe exporter at fleet scale) do not pile
    up garbage for Python's full collections, which pause every thread, /metrics too."""
    url = reference.url + "/api_v3/service/system/action/ping"
    with HttpxTransport() as transport:
        transport.send(HttpRequest("POST", url, {}, b"{}", TIMEOUT))  # the pool's connection
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            answers = [transport.send(HttpRequest("POST", url, {}, b"{}", TIMEOUT)) for _ in range(20)]
            gc.collect()
            left = [type(o).__name__ for o in gc.garbage if isinstance(o, (httpx.Response, httpx.Request))]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    assert [a.status for a in answers] == [200] * 20
    assert left == [], f"{len(left)} httpx objects were freed only by the cycle collector"


def test_connection_refused() -> None:
    with pytest.raises(TransportError) as info:
        send(f"http://127.0.0.1:{closed_port()}")
    assert info.value.code == "CONNECTION"


def test_body_over_the_limit_without_content_length() -> None:
    with serve(endless_chunked) as url:
        started = time.monotonic()
        with pytest.raises(TransportError) as info:
            send(url, HttpxTransport(max_body_bytes=1024 * 1024))
        assert time.monotonic() - started < BOUND
    assert info.value.code == "TOO_LARGE"


def test_deadline_covers_a_reused_connection() -> None:
    with serve(answer_then_hang) as url, HttpxTransport() as transport:
        assert send_via(transport, url).body == b"true"
        started = time.monotonic()
        with pytest.raises(TransportError) as info:
            send_via(transport, url)
        assert time.monotonic() - started < BOUND
    assert info.value.code == "TIMEOUT"


def send_via(transport: HttpxTransport, url: str) -> HttpResponse:
    return transport.send(HttpRequest("POST", url + "/x", {}, b"{}", TIMEOUT))


def test_redirects_are_not_followed() -> None:
    with serve(redirect_loop) as url:
        response = send(url)
        assert response.status == 302
        assert response.headers["location"] == "/api_v3/service/system/action/ping"
        with KalturaApi(url, timeout=TIMEOUT) as api, pytest.raises(KalturaApiError) as info:
            api.call("system", "ping")
    assert info.value.code == "HTTP_302"


@pytest.mark.parametrize(
    ("behaviour", "code"),
    [(html_page, BAD_RESPONSE), (random_body, BAD_RESPONSE), (server_error, "HTTP_500")],
)
def test_api_over_real_servers_maps_bad_answers(behaviour: Behaviour, code: str) -> None:
    with serve(behaviour) as url, KalturaApi(url, timeout=TIMEOUT) as api:
        started = time.monotonic()
        with pytest.raises(KalturaApiError) as info:
            api.call("system", "ping")
        assert time.monotonic() - started < BOUND
    assert info.value.code == code


def test_api_over_a_slow_but_timely_server() -> None:
    with serve(slow_but_in_time) as url, KalturaApi(url, timeout=5.0) as api:
        response = api.call_raw("baseEntry", "get", entryId="0_abc123de")
    assert response.result == ENTRY_JSON
    assert response.cache_key == "abc" and not response.cache_hit
    assert response.elapsed > 0


def test_a_client_passed_in_is_used_and_left_open() -> None:
    client = httpx.Client()
    with serve(slow_but_in_time) as url:
        with HttpxTransport(client) as transport:
            assert json.loads(send_via(transport, url).body) == ENTRY_JSON
        assert not client.is_closed
    client.close()
