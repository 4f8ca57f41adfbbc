"""``ksentinel.traffic``: reading HAR files, finding the Kaltura calls, judging the recorded answers.

The HAR entries are recorded from the reference platform over loopback (:func:`record`), then some are
edited to break one rule; nothing in ``ksentinel.traffic`` sends a request.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ksentinel.kaltura import ks as ks_lib
from ksentinel.reference.realism import Realism
from ksentinel.schema.openapi import to_openapi
from ksentinel.schema.xml import parse_schema
from ksentinel.traffic.calls import endpoint_of, multipart_fields, parse_request
from ksentinel.traffic.har import Exchange, HarError, parse_har, read_har
from ksentinel.traffic.judge import SchemaIndex, judge_all, judge_exchange
from ksentinel.traffic.outcome import ExchangeVerdict
from tests.conftest import Reference, start_reference
from tests.helpers import admin_ks, upload_entry

# ---- recording reference traffic into HAR entries ---------------------------------------------------


def record(
    response: httpx.Response, *, base64_body: bool = False, with_content: bool = True
) -> dict[str, Any]:
    """One HAR 1.2 entry of a response httpx received (its request included), as devtools export it."""
    request = response.request
    body = request.content
    req: dict[str, Any] = {
        "method": request.method,
        "url": str(request.url),
        "httpVersion": "HTTP/1.1",
        "headers": [{"name": k, "value": v} for k, v in request.headers.items()],
        "queryString": [{"name": k, "value": v} for k, v in request.url.params.multi_items()],
        "cookies": [],
        "headersSize": -1,
        "bodySize": len(body),
    }
    if body:
        mime = request.headers.get("content-type", "")
        req["postData"] = {"mimeType": mime, "text": body.decode("utf-8", "replace")}
    content: dict[str, Any] = {
        "size": len(response.content),
        "mimeType": response.headers.get("content-type", ""),
    }
    if with_content:
        if base64_body:
            content["text"] = base64.b64encode(response.content).decode()
            content["encoding"] = "base64"
        else:
            content["text"] = response.text
    return {
        "startedDateTime": "2026-01-01T00:00:00.000Z",
        "time": 1,
        "request": req,
        "response": {
            "status": response.status_code,
            "statusText": response.reason_phrase,
            "httpVersion": "HTTP/1.1",
            "headers": [{"name": k, "value": v} for k, v in response.headers.items()],
            "cookies": [],
            "content": content,
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": len(response.content),
        },
        "cache": {},
        "timings": {"send": 0, "wait": 1, "receive": 0},
    }


def har(*entries: dict[str, Any]) -> dict[str, Any]:
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "ksentinel-tests", "version": "1"},
            "entries": list(entries),
        }
    }


def synthetic(
    url: str,
    body: str | None,
    *,
    method: str = "POST",
    status: int = 200,
    mime: str = "application/json",
    request_mime: str = "application/x-www-form-urlencoded",
    request_text: str | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """A hand-made entry (for what the reference platform never answers)."""
    entry: dict[str, Any] = {
        "request": {"method": method, "url": url, "headers": []},
        "response": {
            "status": status,
            "headers": [{"name": k, "value": v} for k, v in (headers or [])],
            "content": {"mimeType": mime, "size": len(body or "")},
        },
    }
    if body is not None:
        entry["response"]["content"]["text"] = body
    if request_text is not None:
        entry["request"]["postData"] = {"mimeType": request_mime, "text": request_text}
    return entry


def set_body(entry: dict[str, Any], text: str) -> dict[str, Any]:
    entry["response"]["content"].update(text=text, size=len(text.encode()))
    entry["response"]["content"].pop("encoding", None)
    return entry


def body_of(entry: dict[str, Any]) -> str:
    content = entry["response"]["content"]
    if content.get("encoding") == "base64":
        return base64.b64decode(content["text"]).decode()
    return str(content["text"])


def exchanges_of(*entries: dict[str, Any]) -> list[Exchange]:
    exchanges, malformed = parse_har(json.dumps(har(*entries)).encode())
    assert malformed == 0
    return exchanges


def judge_one(entry: dict[str, Any], index: SchemaIndex) -> ExchangeVerdict:
    verdict = judge_exchange(exchanges_of(entry)[0], index)
    assert verdict is not None
    return verdict


# ---- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ref(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reference]:
    """A plain reference platform that echoes a refused KS (as a real Kaltura does)."""
    with start_reference(
        tmp_path_factory.mktemp("traffic"), realism=Realism.off(echo_invalid_ks=True)
    ) as started:
        yield started


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as http:
        yield http


@pytest.fixture(scope="module")
def schema_xml(ref: Reference, client: httpx.Client) -> bytes:
    return client.get(ref.url + "/api_v3/api_schema.php").content


@pytest.fixture(scope="module")
def index(schema_xml: bytes) -> SchemaIndex:
    return SchemaIndex(to_openapi(parse_schema(schema_xml)))


@pytest.fixture(scope="module")
def ks(ref: Reference) -> str:
    return admin_ks(ref.p1, "traffic-admin")


@pytest.fixture(scope="module")
def entry_id(ref: Reference, client: httpx.Client, ks: str) -> str:
    return str(upload_entry(client, ref.url, ks, b"traffic")["id"])


# ---- HAR files ------------------------------------------------------------------------------------------


def test_read_har_refuses_what_is_not_a_har(tmp_path: Path) -> None:
    with pytest.raises(HarError, match="no such file"):
        read_har(tmp_path / "missing.har")
    cases = {"x.har": b"{not json", "y.har": b'{"log": {}}', "z.har": b"[1, 2]", "w.har": b"\xff\xfe\x00"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises(HarError, match="not JSON"):
        read_har(tmp_path / "x.har")
    with pytest.raises(HarError, match="not a HAR file"):
        read_har(tmp_path / "y.har")
    with pytest.raises(HarError, match="not a HAR file"):
        read_har(tmp_path / "z.har")
    with pytest.raises(HarError, match="not JSON"):
        read_har(tmp_path / "w.har")
    (tmp_path / "big.har").write_text(json.dumps(har()))
    with pytest.raises(HarError, match="over the limit"):
        read_har(tmp_path / "big.har", max_bytes=10)


def test_entries_become_exchanges_with_decoded_bodies() -> None:
    plain = synthetic("http://k/api_v3/service/system/action/ping?format=1", "true")
    encoded = synthetic("http://k/api_v3/service/system/action/ping?format=1", None)
    encoded["response"]["content"].update(text=base64.b64encode(b"true").decode(), encoding="base64")
    bad_base64 = synthetic("http://k/api_v3/service/system/action/ping?format=1", None)
    bad_base64["response"]["content"].update(text="%%%", encoding="base64")
    no_content = synthetic("http://k/api_v3/service/system/action/ping?format=1", None)
    cut = synthetic("http://k/api_v3/service/system/action/ping?format=1", '{"objectType": "Kal')
    cut["response"]["content"]["size"] = 4000
    exchanges, malformed = parse_har(
        json.dumps(har(plain, encoded, bad_base64, no_content, {"x": 1}, 7, cut)).encode()
    )
    assert malformed == 2
    assert [e.index for e in exchanges] == [1, 2, 3, 4, 7]
    assert exchanges[4].response_body is None
    assert exchanges[4].body_note == "response body cut in the HAR (19 of 4000 bytes recorded)"
    assert exchanges[0].response_body == b"true" and exchanges[1].response_body == b"true"
    assert exchanges[2].response_body is None and "base64" in exchanges[2].body_note
    assert exchanges[3].response_body is None and "not recorded" in exchanges[3].body_note
    assert exchanges[0].status == 200 and exchanges[0].method == "POST"


def test_non_api_entries_are_skipped_and_counted(index: SchemaIndex) -> None:
    others = [
        "http://k/p/101/sp/10100/playManifest/entryId/0_a/format/url/protocol/http",
        "http://k/p/101/sp/10100/serveFlavor/entryId/0_a/v/2/flavorId/0_b/name/a.mp4",
        "http://k/p/101/sp/10100/thumbnail/entry_id/0_a/width/120",
        "http://k/static/app.js",
        "http://k/api_v3/api_schema.php",
        "http://k/api/v1/something",
    ]
    entries = [synthetic(url, "x", method="GET", mime="text/plain") for url in others]
    entries.append(synthetic("http://k/api_v3/service/system/action/ping?format=1", "true", method="GET"))
    verdicts, skipped = judge_all(exchanges_of(*entries), index)
    assert [v.index for v in verdicts] == [7]
    assert verdicts[0].outcome == "passed"
    assert skipped == {"playManifest": 1, "serveFlavor": 1, "thumbnail": 1, "other": 2, "api_schema.php": 1}


# ---- the calls of an exchange -----------------------------------------------------------------------------


def _exchange(url: str, *, mime: str = "", text: str | None = None, method: str = "POST") -> Exchange:
    return Exchange(
        index=1,
        method=method,
        url=url,
        request_mime=mime,
        request_body=None if text is None else text.encode(),
    )


@pytest.mark.parametrize(
    ("url", "service", "action"),
    [
        ("http://k/api_v3/service/media/action/get", "media", "get"),
        ("http://k/api_v3/service/baseentry/action/list/format/1/ks/abc", "baseentry", "list"),
        ("http://k/api_v3/index.php?service=media&action=list", "media", "list"),
        ("http://k/api_v3/index.php/service/media/action/count", "media", "count"),
        ("http://k/api_v3/?service=system&action=ping", "system", "ping"),
        ("http://k/api/service/system/action/ping", "system", "ping"),
    ],
)
def test_service_and_action_from_path_or_params(url: str, service: str, action: str) -> None:
    request = parse_request(_exchange(url))
    assert request is not None
    assert (request.service, request.action) == (service, action)
    assert [c.label for c in request.calls] == [f"{service}.{action}"]


def test_not_api_urls() -> None:
    for url in (
        "http://k/api_v3/api_schema.php",
        "http://k/p/1/playManifest/x",
        "http://k/api/v2/x",
        "::bad",
    ):
        assert endpoint_of(url) is None


def test_parameters_from_every_body_kind() -> None:
    url = "http://k/api_v3/service/media/action/list"
    form = parse_request(
        _exchange(
            url,
            mime="application/x-www-form-urlencoded",
            text="format=1&filter%3AstatusEqual=2&pager[pageSize]=5",
        )
    )
    assert form is not None and form.format == "1"
    assert form.params["filter"] == {"statusEqual": "2"} and form.params["pager"] == {"pageSize": "5"}
    as_json = parse_request(
        _exchange(url, mime="application/json", text='{"format": 2, "filter": {"statusEqual": 2}}')
    )
    assert as_json is not None and as_json.format == "2" and as_json.params["filter"] == {"statusEqual": 2}
    boundary = "XyZ"
    multipart = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="json"\r\n\r\n{{"format": 1, "ks": "k1"}}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="fileData"; filename="a.mp4"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n\x00\x01\r\n--{boundary}--\r\n"
    )
    parts = parse_request(_exchange(url, mime=f"multipart/form-data; boundary={boundary}", text=multipart))
    assert (
        parts is not None
        and parts.format == "1"
        and parts.params["ks"] == "k1"
        and "fileData" not in parts.params
    )
    fields = f'--{boundary}\r\nContent-Disposition: form-data; name="format"\r\n\r\n2\r\n--{boundary}--\r\n'
    assert multipart_fields(fields.encode(), f"multipart/form-data; boundary={boundary}") == [("format", "2")]
    listed = _exchange(url, mime="multipart/form-data")  # the exporter listed the params, no text
    listed.request_params = [("format", "1", False), ("fileData", "", True)]
    from_params = parse_request(listed)
    assert from_params is not None and from_params.format == "1" and "fileData" not in from_params.params
    # precedence: body < query string < path pairs
    merged = parse_request(
        _exchange(url + "/format/2?format=9", mime="application/json", text='{"format": 1}')
    )
    assert merged is not None and merged.format == "2"


def test_multirequest_sub_calls_both_styles() -> None:
    form = "format=1&ks=KS0&1:service=session&1:action=start&1:secret=s3cr3t-value&2:ks={1:result}&2:service=media&2:action=list"
    request = parse_request(
        _exchange("http://k/api_v3/service/multirequest", mime="application/x-www-form-urlencoded", text=form)
    )
    assert request is not None and request.multirequest
    assert [(c.position, c.label) for c in request.calls] == [(1, "session.start"), (2, "media.list")]
    assert request.secret_values == {"s3cr3t-value"} and request.ks_values == {"KS0"}
    body = json.dumps(
        {
            "format": 1,
            "0": {"service": "system", "action": "ping"},
            "1": {"service": "media", "action": "get"},
            "3": {"service": "x", "action": "y"},
        }
    )
    request = parse_request(
        _exchange("http://k/api_v3/index.php?service=multirequest", mime="application/json", text=body)
    )
    assert request is not None and [c.label for c in request.calls] == ["system.ping", "media.get"]


def test_ks_and_secrets_the_request_carried() -> None:
    ks_value = ks_lib.build("0123456789abcdef0123456789abcdef", 101, "u", 2, 3600, "")
    header_ks = ks_lib.build("0123456789abcdef0123456789abcdef", 101, "h", 2, 3600, "")
    exchange = _exchange(f"http://k/api_v3/service/media/action/list?ks={ks_value}")
    exchange.request_headers = [("Authorization", f"KS {header_ks}"), ("Content-Type", "text/plain")]
    request = parse_request(exchange)
    assert request is not None
    assert request.ks_values == {ks_value, header_ks}
    assert request.in_url == ["ks"]
    path_ks = parse_request(_exchange(f"http://k/api_v3/service/media/action/list/ks/{ks_value}"))
    assert path_ks is not None and path_ks.in_url == ["ks"]
    secret = parse_request(
        _exchange("http://k/api_v3/service/session/action/start?secret=abcdef123&partnerId=1")
    )
    assert secret is not None and secret.in_url == ["secret"] and secret.secret_values == {"abcdef123"}


# ---- judging recorded answers -----------------------------------------------------------------------------


def test_recorded_json_answer_passes_and_a_wrong_type_fails_with_its_path(
    ref: Reference, client: httpx.Client, index: SchemaIndex, ks: str, entry_id: str
) -> None:
    entry = record(
        client.post(
            ref.url + "/api_v3/service/media/action/get", json={"format": 1, "ks": ks, "entryId": entry_id}
        )
    )
    assert judge_one(entry, index).outcome == "passed"
    broken = set_body(entry, body_of(entry).replace('"createdAt":', '"createdAt":"2024-01-01","_was":', 1))
    verdict = judge_one(broken, index)
    assert verdict.outcome == "failed"
    assert verdict.calls[0].problems[0] == "$.createdAt: '2024-01-01' is not of type integer"
    assert verdict.failure_lines()[0].startswith(
        "#1 POST /api_v3/service/media/action/get media.get: $.createdAt:"
    )
    assert verdict.request is not None and ks not in json.dumps(verdict.request)


def test_service_names_match_case_insensitively(
    ref: Reference, client: httpx.Client, index: SchemaIndex, ks: str
) -> None:
    response = client.post(ref.url + "/api_v3/service/baseEntry/action/LIST", data={"format": 1, "ks": ks})
    verdict = judge_one(record(response), index)
    assert verdict.outcome == "passed", verdict


def test_error_envelopes_json_and_xml(
    ref: Reference, client: httpx.Client, index: SchemaIndex, ks: str
) -> None:
    url = ref.url + "/api_v3/service/media/action/get"
    as_json = record(client.post(url, data={"format": 1, "ks": ks, "entryId": "0_nothere"}))
    assert '"ENTRY_ID_NOT_FOUND"' in body_of(as_json)
    assert judge_one(as_json, index).outcome == "passed"
    malformed = json.loads(body_of(as_json))
    malformed["args"] = {"ENTRY_ID": 5}
    del malformed["message"]
    verdict = judge_one(set_body(as_json, json.dumps(malformed)), index)
    assert verdict.outcome == "failed"
    assert verdict.calls[0].problems == [
        "error envelope: message is not a string",
        "error envelope: args values are not strings (ENTRY_ID)",
    ]
    as_xml = record(client.post(url, data={"format": 2, "ks": ks, "entryId": "0_nothere"}))
    assert "<error>" in body_of(as_xml)
    assert judge_one(as_xml, index).outcome == "passed"
    no_type = re.sub(r"<objectType>KalturaAPIException</objectType>", "", body_of(as_xml))
    verdict = judge_one(set_body(as_xml, no_type), index)
    assert verdict.outcome == "failed" and verdict.calls[0].problems == [
        "error envelope: objectType is not a string"
    ]


def test_xml_results(
    ref: Reference, client: httpx.Client, index: SchemaIndex, ks: str, entry_id: str
) -> None:
    start = record(
        client.post(
            ref.url + "/api_v3/service/session/action/start",
            data={"format": 2, "secret": ref.p1.admin_secret, "partnerId": 101},
        )
    )
    assert judge_one(start, index).outcome == "passed"
    broken = set_body(start, "<xml><result><objectType>KalturaMediaEntry</objectType></result></xml>")
    assert judge_one(broken, index).calls[0].problems == [
        "$: {'objectType': 'KalturaMediaEntry'} is not of type string"
    ]
    dtd = set_body(
        start, '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><xml><result>&a;</result></xml>'
    )
    assert judge_one(dtd, index).problems == ["XML with a DTD or entity declaration (refused, not parsed)"]
    not_xml = set_body(start, "<html>oops")
    assert judge_one(not_xml, index).outcome == "failed"


def test_xml_objects_are_judged_by_their_declared_types(
    ref: Reference, client: httpx.Client, index: SchemaIndex, ks: str, entry_id: str
) -> None:
    if importlib.util.find_spec("ksentinel.schema.serialization") is None:
        pytest.skip("response_schema.problems() does not yet re-type XML text by the declared types")
    entry = record(
        client.post(
            ref.url + "/api_v3/service/media/action/get", data={"format": 2, "ks": ks, "entryId": entry_id}
        )
    )
    assert judge_one(entry, index).outcome == "passed"
    broken = set_body(
        entry, re.sub(r"<createdAt>\d+</createdAt>", "<createdAt>yesterday</createdAt>", body_of(entry))
    )
    verdict = judge_one(broken, index)
    assert verdict.outcome == "failed" and verdict.calls[0].problems[0].startswith("$.createdAt:")


def test_jsonp_is_unwrapped(ref: Reference, client: httpx.Client, index: SchemaIndex) -> None:
    entry = record(
        client.get(
            ref.url + "/api_v3/index.php",
            params={"service": "system", "action": "ping", "format": 9, "callback": "cb"},
        )
    )
    assert body_of(entry) == "cb(true);"
    assert judge_one(entry, index).outcome == "passed"
    assert judge_one(set_body(entry, 'cb("yes");'), index).outcome == "failed"


def test_multirequests_both_styles_judge_each_sub_call(
    ref: Reference, client: httpx.Client, index: SchemaIndex, ks: str, entry_id: str
) -> None:
    url = ref.url + "/api_v3/service/multirequest"
    form = {"format": 1, "ks": ks, "1:service": "media", "1:action": "get", "1:entryId": entry_id}
    form.update({"2:service": "media", "2:action": "get", "2:entryId": "0_nothere"})
    as_form = record(client.post(url, data=form))
    verdict = judge_one(as_form, index)
    assert verdict.multirequest and [c.outcome for c in verdict.calls] == ["passed", "passed"]
    answer = json.loads(body_of(as_form))
    answer[0]["createdAt"] = "soon"
    verdict = judge_one(set_body(as_form, json.dumps(answer)), index)
    assert [c.outcome for c in verdict.calls] == ["failed", "passed"]
    assert verdict.failure_lines() == [
        "#1[1] POST /api_v3/service/multirequest media.get: $.createdAt: 'soon' is not of type integer"
    ]
    as_json = record(
        client.post(
            url,
            json={
                "format": 1,
                "ks": ks,
                "0": {"service": "system", "action": "ping"},
                "1": {"service": "media", "action": "list"},
            },
        ),
        base64_body=True,
    )
    verdict = judge_one(as_json, index)
    assert [(c.label, c.outcome) for c in verdict.calls] == [
        ("system.ping", "passed"),
        ("media.list", "passed"),
    ]
    short = set_body(as_json, "[true]")
    assert judge_one(short, index).problems == ["2 sub-calls sent, 1 results answered"]
    as_xml = record(client.post(url, data={**form, "format": 2}))
    verdict = judge_one(as_xml, index)
    assert verdict.calls[1].outcome == "passed"  # the ENTRY_ID_NOT_FOUND envelope


def test_ks_echo_is_an_advisory(ref: Reference, client: httpx.Client, index: SchemaIndex) -> None:
    forged = ks_lib.build("f" * 32, ref.p1.id, "intruder", 2, 3600, "")
    entry = record(
        client.post(ref.url + "/api_v3/service/media/action/list", data={"format": 1, "ks": forged})
    )
    assert "INVALID_KS" in body_of(entry) and forged in body_of(entry).replace("\\/", "/")
    verdict = judge_one(entry, index)
    assert verdict.outcome == "advisory" and verdict.judged
    assert [f["check"] for f in verdict.findings] == ["ks.never_echoed"]
    assert forged not in json.dumps(verdict.findings) and forged not in json.dumps(verdict.response)


def test_secret_echo_and_ks_in_url_are_advisories(
    ref: Reference, client: httpx.Client, index: SchemaIndex, ks: str
) -> None:
    start = record(
        client.post(
            ref.url + "/api_v3/service/session/action/start",
            data={"format": 1, "secret": ref.p1.admin_secret, "partnerId": 101},
        )
    )
    assert judge_one(start, index).outcome == "passed"  # a new KS comes back by design
    echoed = set_body(start, json.dumps(f"{ref.p1.admin_secret}"))
    verdict = judge_one(echoed, index)
    assert verdict.outcome == "advisory" and verdict.findings[0]["check"] == "secrets.never_returned"
    in_url = record(
        client.get(ref.url + "/api_v3/service/system/action/ping", params={"format": 1, "ks": ks})
    )
    verdict = judge_one(in_url, index)
    assert verdict.outcome == "advisory" and verdict.findings[0]["check"] == "ks.not_in_url"
    assert ks not in verdict.path and ks not in json.dumps(verdict.request)


def test_what_cannot_be_judged_says_why(index: SchemaIndex) -> None:
    api = "http://k/api_v3/service/"
    cases = {
        "metadata_metadata.list is not in the schema": synthetic(
            api + "metadata_metadata/action/list?format=1", '{"objectType": "KalturaMetadataListResponse"}'
        ),
        "format 3 (PHP serialized) is not judged": synthetic(api + "system/action/ping?format=3", "b:1;"),
        "response body not recorded": synthetic(api + "system/action/ping?format=1", None),
        "file result (application/octet-stream)": synthetic(
            api + "media/action/get?format=1", "\x00\x01", mime="application/octet-stream"
        ),
        "HTTP 304 Not Modified": synthetic(api + "system/action/ping?format=1", "", status=304),
        "no response recorded (status 0": synthetic(api + "system/action/ping?format=1", "", status=0),
    }
    for reason, entry in cases.items():
        verdict = judge_one(entry, index)
        assert verdict.outcome == "not_judged" and not verdict.judged, verdict
        assert reason in verdict.reason, (reason, verdict.reason)
    unknown_error = synthetic(
        api + "metadata_metadata/action/list?format=1",
        '{"code": "X", "message": "m", "objectType": "KalturaAPIException", "args": []}',
    )
    assert judge_one(unknown_error, index).outcome == "passed"  # an error envelope is judged anyway


def test_http_errors(index: SchemaIndex) -> None:
    url = "http://k/api_v3/service/system/action/ping?format=1"
    html = judge_one(
        synthetic(url, "<html><body>Bad gateway</body></html>", status=502, mime="text/html"), index
    )
    assert html.outcome == "failed" and html.problems == ["HTTP 502 without a Kaltura answer"]
    envelope = (
        '{"code": "INTERNAL_SERVERL_ERROR", "message": "m", "objectType": "KalturaAPIException", "args": []}'
    )
    with_exception = judge_one(synthetic(url, envelope, status=500), index)
    assert with_exception.outcome == "passed" and with_exception.judged
    empty = judge_one(synthetic(url, ""), index)
    assert empty.outcome == "failed"
    die = judge_one(synthetic(url, "", headers=[("X-Kaltura", "error- UNKNOWN_RESPONSE_FORMAT")]), index)
    assert die.outcome == "not_judged" and "die error" in die.reason


def test_secrets_sent_are_masked_in_problems(index: SchemaIndex) -> None:
    secret = "0123456789abcdef-not-a-ks"
    entry = synthetic(
        f"http://k/api_v3/service/system/action/ping?format=1&secret={secret}", json.dumps(secret)
    )
    verdict = judge_one(entry, index)
    assert verdict.outcome == "failed"
    assert [f["check"] for f in verdict.findings] == ["secrets.not_in_url", "secrets.never_returned"]
    text = json.dumps([verdict.failure_lines(), verdict.findings, verdict.request, verdict.response])
    assert secret not in text and "is not of type boolean" in text


def test_options_preflights_are_skipped(index: SchemaIndex) -> None:
    preflight = synthetic("http://k/api_v3/service/system/action/ping", "", method="OPTIONS")
    head = synthetic("http://k/api_v3/service/system/action/ping?format=1", "", method="HEAD")
    verdicts, skipped = judge_all(exchanges_of(preflight, head), index)
    assert skipped == {"OPTIONS (CORS preflight)": 1}
    assert verdicts[0].outcome == "not_judged" and verdicts[0].reason == "HEAD request: no body to judge"


def test_a_tool_error_is_never_a_pass(index: SchemaIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    from ksentinel.traffic import judge
    from ksentinel.traffic.outcome import TrafficOutcome

    ping = synthetic("http://k/api_v3/service/system/action/ping?format=1", "true")
    bad = synthetic("http://k/api_v3/service/system/action/ping?format=1&boom=1", "true")
    real = judge.judge_exchange

    def flaky(exchange: Exchange, schema: SchemaIndex) -> ExchangeVerdict | None:
        if "boom" in exchange.url:
            raise ValueError("boom")
        return real(exchange, schema)

    monkeypatch.setattr(judge, "judge_exchange", flaky)
    verdicts, _ = judge_all(exchanges_of(ping, bad), index)
    assert [v.outcome for v in verdicts] == ["passed", "not_judged"]
    assert verdicts[1].reason.startswith("tool error: ksentinel could not judge it (ValueError: boom)")
    outcome = TrafficOutcome("x.har", "s.xml", exchanges=verdicts)
    assert (outcome.verdict, outcome.exit_code, outcome.ok) == ("TOOL ERROR", 2, False)


class _Recorder:
    """A ksentinel transport that keeps every exchange as a HAR entry (bodies base64, as mitmproxy does)."""

    def __init__(self) -> None:
        from ksentinel.kaltura.transport import HttpxTransport

        self.inner = HttpxTransport()
        self.entries: list[dict[str, Any]] = []

    def send(self, request: Any) -> Any:
        response = self.inner.send(request)
        req: dict[str, Any] = {
            "method": request.method,
            "url": request.url,
            "headers": [{"name": k, "value": v} for k, v in request.headers.items()],
        }
        if request.body:
            mime = request.headers.get("Content-Type", "")
            req["postData"] = {"mimeType": mime, "text": request.body.decode("utf-8", "replace")}
        content = {
            "mimeType": response.headers.get("content-type", ""),
            "text": base64.b64encode(response.body).decode(),
            "encoding": "base64",
        }
        headers = [{"name": k, "value": v} for k, v in response.headers.items()]
        self.entries.append(
            {"request": req, "response": {"status": response.status, "headers": headers, "content": content}}
        )
        return response

    def close(self) -> None:
        self.inner.close()


def test_clean_client_traffic_on_a_realistic_platform_holds(tmp_path: Path) -> None:
    """KalturaApi in JSON and XML, JSON and form bodies: sessions, chunked uploads, reads, multirequests."""
    from ksentinel.kaltura.api import KalturaApi

    recorder = _Recorder()
    with start_reference(tmp_path / "ref", realism=Realism()) as ref, httpx.Client() as http:
        index = SchemaIndex(to_openapi(parse_schema(http.get(ref.url + "/api_v3/api_schema.php").content)))
        for fmt in (1, 2):
            for encoding in ("json", "form"):
                api = KalturaApi(ref.url, partner_id=101, format=fmt, transport=recorder, encoding=encoding)
                admin = api.with_ks(api.start_session(ref.p1.admin_secret))
                token = admin.call("uploadToken", "add", uploadToken={"objectType": "KalturaUploadToken"})
                admin.upload_file(token["id"], b"x" * 3000, chunk_size=1024)
                entry = admin.call(
                    "baseEntry",
                    "addFromUploadedFile",
                    uploadTokenId=token["id"],
                    entry={"objectType": "KalturaMediaEntry", "name": "n", "mediaType": 1},
                )
                admin.call("media", "get", entryId=entry["id"])
                admin.call(
                    "baseEntry",
                    "list",
                    filter={"objectType": "KalturaBaseEntryFilter"},
                    pager={"pageSize": 5},
                )
                admin.call_raw("media", "get", entryId="0_nope")
                batch = admin.multirequest()
                batch.add("media", "get", entryId=entry["id"])
                batch.add("baseEntry", "get", entryId="0_x")
                batch.execute_raw()
                admin.call("baseEntry", "delete", entryId=entry["id"])
        recorder.close()
    verdicts, skipped = judge_all(exchanges_of(*recorder.entries), index)
    assert not skipped and len(verdicts) == len(recorder.entries) == 4 * 11
    assert {v.outcome for v in verdicts} == {"passed"}, [
        v.failure_lines() for v in verdicts if v.outcome != "passed"
    ]


def test_a_utf16_xml_answer_with_an_entity_is_refused_not_expanded() -> None:
    from ksentinel.traffic.judge import _Broken, _parse_xml

    body = (
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;">]><xml><result>&b;</result></xml>'
    ).encode("utf-16")
    with pytest.raises(_Broken, match="DTD or entity declaration"):
        _parse_xml(body, multirequest=False)
    plain = '<?xml version="1.0" encoding="UTF-16"?><xml><result>3</result></xml>'.encode("utf-16")
    assert _parse_xml(plain, multirequest=False)[0].value == "3"
