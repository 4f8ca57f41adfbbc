"""``ksentinel check-traffic`` end to end, on traffic recorded from a real client.

The realistic reference platform (index lag, conversion, redirected downloads, the echoed
``INVALID_KS``) runs behind a HAR-recording proxy (tests/har_recorder.py). ``ksentinel contract
--profile quick`` runs through the proxy, then a few XML (``format=2``) calls and two calls with a
forged KS are recorded on top. That HAR must hold against the platform's own schema (no false alarm
on clean traffic); with one property of one answer changed to the wrong type it must fail, naming
the exchange (``#N``, its 1-based index among the HAR's entries) and the property path; a KS echoed
in ``INVALID_KS`` is an advisory, never a failure. The contract run happens once per module.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ksentinel.kaltura import ks as ks_lib
from ksentinel.reference.realism import Realism
from tests.conftest import Reference, start_reference
from tests.har_recorder import har_recorder
from tests.helpers import admin_ks, is_error, raw_call, target_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[1]
CONTRACT_TIMEOUT = 300
CHECK_TIMEOUT = 120
ISO_DATE = "2026-01-01T00:00:00+00:00"
_API = re.compile(r"/api_v3/service/([^/?]+)/action/([^/?]+)", re.IGNORECASE)


@dataclass
class Recorded:
    """The HAR of one contract run (plus our own XML and forged-KS calls) and what it came from."""

    ref: Reference
    har: Path
    schema: Path
    entries: int
    contract_seconds: float
    own: dict[str, int]  # what our own calls are: name -> 1-based index in the HAR
    forged_ks: str  # the KS of the two INVALID_KS calls (echoed back)


def _clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
    return {**env, **(extra or {})}


def _ksentinel(cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = CHECK_TIMEOUT):
    return subprocess.run(
        [sys.executable, "-m", "ksentinel.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_clean_env(env),
        cwd=cwd,
        check=False,
    )


def _output(proc: subprocess.CompletedProcess[str]) -> str:
    return (proc.stdout[-5000:] + "\n--- stderr\n" + proc.stderr[-3000:]).strip()


def _post_form(http: httpx.Client, url: str, service: str, action: str, **params: Any) -> httpx.Response:
    """A form-encoded call (the KS, if any, in the body, never in the URL)."""
    data = {k: str(v) for k, v in params.items()}
    return http.post(f"{url}/api_v3/service/{service}/action/{action}", data=data)


def _record_own_calls(url: str, ref: Reference, count: Callable[[], int]) -> tuple[dict[str, int], str]:
    """XML answers (format=2) and an echoed INVALID_KS, in JSON and XML, through the recorder."""
    ks = admin_ks(ref.p1)
    forged = ks_lib.build("0" * 32, ref.p1.id, "admin", 2, 3600, "")  # signed with another secret
    own: dict[str, int] = {}
    with httpx.Client(timeout=30.0) as http:
        _, entry = raw_call(
            http,
            url,
            "baseEntry",
            "add",
            ks=ks,
            entry={"objectType": "KalturaMediaEntry", "name": "har-xml", "mediaType": 1, "tags": "ksentinel"},
        )
        assert not is_error(entry), entry
        _, token = raw_call(
            http, url, "uploadToken", "add", ks=ks, uploadToken={"objectType": "KalturaUploadToken"}
        )
        assert not is_error(token), token
        _wait_listed(http, ref.url, ks, entry["id"])  # straight to the platform: not recorded
        calls: list[tuple[str, str, str, dict[str, Any]]] = [
            ("xml media.get", "media", "get", {"ks": ks, "format": 2, "entryId": entry["id"]}),
            (
                "xml uploadToken.get",
                "uploadToken",
                "get",
                {"ks": ks, "format": 2, "uploadTokenId": token["id"]},
            ),
            (
                "xml media.list",
                "media",
                "list",
                {"ks": ks, "format": 2, "filter:idEqual": entry["id"], "pager:pageSize": 5},
            ),
            ("json echo baseEntry.list", "baseEntry", "list", {"ks": forged, "format": 1}),
            ("xml echo baseEntry.list", "baseEntry", "list", {"ks": forged, "format": 2}),
        ]
        for name, service, action, params in calls:
            response = _post_form(http, url, service, action, **params)
            assert response.status_code == 200, (name, response.text)
            own[name] = count()
            if "xml" in name:
                assert response.headers["content-type"].startswith("text/xml"), (name, response.text)
                ET.fromstring(response.content)
            if name == "xml media.list":
                assert f"<id>{entry['id']}</id>" in response.text, response.text
            if "echo" in name:
                assert "INVALID_KS" in response.text and forged in response.text, response.text
            else:
                assert "KalturaAPIException" not in response.text and "<error>" not in response.text, (
                    name,
                    response.text,
                )
        raw_call(http, url, "baseEntry", "delete", ks=ks, entryId=entry["id"])
        raw_call(http, url, "uploadToken", "delete", ks=ks, uploadTokenId=token["id"])
    return own, forged


def _wait_listed(http: httpx.Client, url: str, ks: str, entry_id: str, timeout: float = 15.0) -> None:
    """Until the search index lists the entry (the realistic platform lags writes by about 1 s)."""
    deadline = time.monotonic() + timeout
    while True:
        _, listed = raw_call(http, url, "media", "list", ks=ks, filter={"idEqual": entry_id})
        if isinstance(listed, dict) and listed.get("objects"):
            return
        assert time.monotonic() < deadline, f"{entry_id} never listed: {listed}"
        time.sleep(0.2)


def test_the_recorder_is_bounded_and_keeps_every_method(tmp_path: Path) -> None:
    with (
        start_reference(tmp_path / "ref") as ref,
        har_recorder(ref.url, max_entries=4, max_body=64) as recorder,
    ):
        with httpx.Client(timeout=10.0) as http:
            ping = http.post(f"{recorder.url}/api_v3/service/system/action/ping", json={"format": 1})
            schema = http.get(f"{recorder.url}/api_v3/api_schema.php?x=1&y=2")
            head = http.head(f"{recorder.url}/api_v3/api_schema.php")
            odd = http.post(f"{recorder.url}/api_v3/service/system/action/ping", content=b"\xff\xfe" * 10)
            http.post(f"{recorder.url}/api_v3/service/system/action/ping", json={"format": 1})
        assert ping.json() is True and schema.status_code == 200 and head.status_code == 200
        document = recorder.har()
        assert recorder.dropped == 1
    entries = document["log"]["entries"]
    assert [e["request"]["method"] for e in entries] == ["POST", "GET", "HEAD", "POST"]
    assert document["log"]["version"] == "1.2" and "not recorded (max 4)" in document["log"]["comment"]
    first, second, _, fourth = entries
    assert first["request"]["postData"] == {"mimeType": "application/json", "text": '{"format":1}'}
    assert first["response"]["content"]["text"] == "true"
    assert second["request"]["queryString"] == [{"name": "x", "value": "1"}, {"name": "y", "value": "2"}]
    content = second["response"]["content"]
    assert content["size"] == len(schema.content) > 64 and len(content["text"]) == 64
    assert "cut to its first 64" in content["comment"]
    # a body that is not UTF-8 is base64 (postData has no encoding field in HAR 1.2: ours mirrors content's)
    assert base64.b64decode(fourth["request"]["postData"]["text"]) == b"\xff\xfe" * 10
    assert fourth["request"]["postData"]["encoding"] == "base64"
    assert fourth["response"]["status"] == odd.status_code
    written = recorder.write(tmp_path / "t.har")
    assert json.loads(written.read_text()) == document


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    tmp = tmp_path_factory.mktemp("recorded")
    with (
        start_reference(tmp / "ref", ready_after=0.5, realism=Realism()) as ref,
        har_recorder(ref.url) as recorder,
    ):
        started = time.monotonic()
        proc = _ksentinel(
            tmp,
            "contract",
            "--profile",
            "quick",
            "--suite",
            str(REPO / "contracts"),
            "--report",
            str(tmp / "out"),
            env={**target_env(ref), "KSENTINEL_URL": recorder.url},
            timeout=CONTRACT_TIMEOUT,
        )
        seconds = time.monotonic() - started
        assert proc.returncode == 0, "the contract run through the recorder failed:\n" + _output(proc)
        own, forged = _record_own_calls(recorder.url, ref, lambda: len(recorder))
        assert recorder.dropped == 0
        har = recorder.write(tmp / "traffic.har")
        schema = tmp / "api_schema.xml"
        schema.write_bytes(httpx.get(f"{ref.url}/api_v3/api_schema.php", timeout=30.0).content)
        yield Recorded(ref, har, schema, len(recorder), seconds, own, forged)


# --- reading the HAR and what check-traffic wrote ------------------------------------------------


def _entries(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text())["log"]["entries"]


def _call(entry: dict[str, Any]) -> tuple[str, str] | None:
    match = _API.search(entry["request"]["url"])
    return (match.group(1).lower(), match.group(2).lower()) if match else None


def _json_answer(entry: dict[str, Any]) -> Any:
    content = entry["response"]["content"]
    if entry["response"]["status"] != 200 or "json" not in content.get("mimeType", ""):
        return None
    try:
        return json.loads(content.get("text") or "")
    except ValueError:
        return None


def _set_text(entry: dict[str, Any], text: str) -> None:
    content = entry["response"]["content"]
    content["text"] = text
    content["size"] = len(text.encode())
    entry["response"]["bodySize"] = content["size"]


def _check(cwd: Path, har: Path, *args: str, env: dict[str, str] | None = None):
    return _ksentinel(cwd, "check-traffic", str(har), *args, env=env)


def _counts(path: Path) -> dict[str, int]:
    """``counts`` of check-traffic's JSON: exchanges by outcome, ``judged``, ``entries``, ``skipped``."""
    return json.loads(path.read_text())["counts"]


def _junit(path: Path) -> dict[str, int]:
    """The suite's own totals and what its test cases hold (they must agree)."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    cases = [case for suite in suites for case in suite.iter("testcase")]
    totals = {
        key: sum(int(suite.get(key) or 0) for suite in suites)
        for key in ("tests", "failures", "errors", "skipped")
    }
    assert totals["tests"] == len(cases), totals
    assert totals["failures"] + totals["errors"] == sum(
        1 for c in cases if c.find("failure") is not None or c.find("error") is not None
    ), totals
    return totals


# --- the tests -----------------------------------------------------------------------------------


def test_the_contract_run_passes_through_the_recorder_and_the_har_is_what_the_client_saw(
    recorded: Recorded,
) -> None:
    entries = _entries(recorded.har)
    assert len(entries) == recorded.entries > 100
    recorder_origin = re.match(r"http://127\.0\.0\.1:\d+", entries[0]["request"]["url"])
    assert recorder_origin is not None
    port = recorder_origin.group(0).rsplit(":", 1)[1]
    for entry in entries:
        url = entry["request"]["url"]
        assert url.startswith((f"http://127.0.0.1:{port}/", f"http://localhost:{port}/")), url
        assert entry["startedDateTime"] and entry["time"] >= 0 and entry["timings"]["wait"] >= 0
        content = entry["response"]["content"]
        assert content["size"] == entry["response"]["bodySize"]
    # redirected downloads were passed through, not followed
    redirects = [e for e in entries if e["response"]["status"] in (301, 302, 303, 307, 308)]
    assert redirects and all(e["response"]["redirectURL"] for e in redirects)
    # binary answers (the downloaded media) are base64, whole
    binary_answers = [e for e in entries if e["response"]["content"].get("encoding") == "base64"]
    assert binary_answers, "the upload flow downloads its media"
    for entry in binary_answers:
        content = entry["response"]["content"]
        assert len(base64.b64decode(content["text"])) == content["size"] > 0
    # an upload's file bytes are left out, its API parameters kept
    uploads = [e for e in entries if _call(e) == ("uploadtoken", "upload")]
    assert uploads
    multipart = [e for e in uploads if "multipart" in e["request"]["postData"]["mimeType"]]
    binary = [e for e in multipart if "binary content not recorded" in e["request"]["postData"]["text"]]
    assert binary, "the upload flow's media file is binary"
    for entry in binary:
        post = entry["request"]["postData"]
        assert "bytes of binary file content not recorded" in post["comment"]
        assert entry["request"]["bodySize"] > len(post["text"].encode())
        files = [p for p in post["params"] if "fileName" in p]
        assert files and all("value" not in p for p in files)


def test_clean_recorded_traffic_holds_against_the_platforms_schema(
    recorded: Recorded, tmp_path: Path
) -> None:
    started = time.monotonic()
    proc = _check(
        tmp_path,
        recorded.har,
        "--schema",
        str(recorded.schema),
        "--junit",
        str(tmp_path / "j.xml"),
        "--json",
        str(tmp_path / "o.json"),
    )
    seconds = time.monotonic() - started
    assert proc.returncode == 0, "false alarm on clean recorded traffic:\n" + _output(proc)
    counts = _counts(tmp_path / "o.json")
    assert counts["entries"] == recorded.entries, counts
    assert counts["failed"] == 0 and counts["not_judged"] == 0, counts
    assert counts["judged"] > 20 and counts["judged"] == counts["exchanges"], counts
    assert counts["exchanges"] + counts["skipped"] == counts["entries"], counts
    # the echoed INVALID_KS of the security checks (and our own) is advisory, never a failure
    assert counts["advisory"] >= 2, counts
    assert "verdict: PASS" in proc.stdout, _output(proc)
    # our XML answers were judged too, and held
    outcomes = {e["index"]: e["outcome"] for e in json.loads((tmp_path / "o.json").read_text())["exchanges"]}
    for name in ("xml media.get", "xml uploadToken.get", "xml media.list"):
        assert outcomes[recorded.own[name]] == "passed", (name, outcomes[recorded.own[name]])
    for name in ("json echo baseEntry.list", "xml echo baseEntry.list"):
        assert outcomes[recorded.own[name]] == "advisory", (name, outcomes[recorded.own[name]])
    junit = _junit(tmp_path / "j.xml")
    assert junit["failures"] == 0 and junit["errors"] == 0 and junit["tests"] >= counts["judged"], junit
    print(
        f"\ncontract --profile quick through the recorder: {recorded.contract_seconds:.1f} s; "
        f"check-traffic: {counts['entries']} entries, {counts['judged']} judged "
        f"({counts['advisory']} advisory) in {seconds:.2f} s"
    )


@pytest.mark.parametrize("how", ["target", "url"])
def test_clean_recorded_traffic_holds_against_the_schema_the_target_serves(
    recorded: Recorded, tmp_path: Path, how: str
) -> None:
    ref = recorded.ref
    if how == "target":
        config = tmp_path / "ksentinel.toml"
        config.write_text(
            f'[targets.ref]\nurl = "{ref.url}"\npartner_id = {ref.p1.id}\n'
            'admin_secret_env = "HAR_TEST_ADMIN_SECRET"\n'
        )
        choice = ["--config", str(config), "--target", "ref"]
        env = {"HAR_TEST_ADMIN_SECRET": ref.p1.admin_secret}
    else:
        choice = ["--url", ref.url, "--partner-id", str(ref.p1.id)]
        env = {"KSENTINEL_ADMIN_SECRET": ref.p1.admin_secret}
    proc = _check(tmp_path, recorded.har, *choice, "--json", str(tmp_path / "o.json"), env=env)
    assert proc.returncode == 0, "false alarm on clean recorded traffic:\n" + _output(proc)
    counts = _counts(tmp_path / "o.json")
    assert counts["judged"] > 20 and counts["failed"] == 0 and counts["not_judged"] == 0, counts
    assert ref.url in json.loads((tmp_path / "o.json").read_text())["schema"]


def _first(entries: list[dict[str, Any]], want: Callable[[tuple[str, str], Any], bool]) -> int:
    for index, entry in enumerate(entries):
        call = _call(entry)
        answer = _json_answer(entry)
        if call and answer is not None and want(call, answer):
            return index
    raise AssertionError("no such exchange in the recorded traffic")


def _is_entry(answer: Any) -> bool:
    return isinstance(answer, dict) and isinstance(answer.get("createdAt"), int) and "id" in answer


GETS = {("media", "get"), ("baseentry", "get")}
LISTS = {("media", "list"), ("baseentry", "list")}


@pytest.mark.parametrize("kind", ["get", "list"])
def test_a_json_property_of_the_wrong_type_fails_naming_the_exchange_and_the_path(
    recorded: Recorded, tmp_path: Path, kind: str
) -> None:
    entries = _entries(recorded.har)
    if kind == "get":
        index = _first(entries, lambda call, answer: call in GETS and _is_entry(answer))
        answer = _json_answer(entries[index])
        answer["createdAt"] = ISO_DATE
        path = "$.createdAt"
    else:
        index = _first(
            entries,
            lambda call, answer: (
                call in LISTS
                and isinstance(answer, dict)
                and bool(answer.get("objects"))
                and _is_entry(answer["objects"][0])
            ),
        )
        answer = _json_answer(entries[index])
        answer["objects"][0]["createdAt"] = ISO_DATE
        path = "$.objects[0].createdAt"
    mutated = json.loads(recorded.har.read_text())
    _set_text(mutated["log"]["entries"][index], json.dumps(answer))
    har = tmp_path / "mutated.har"
    har.write_text(json.dumps(mutated))
    proc = _check(tmp_path, har, "--schema", str(recorded.schema), "--json", str(tmp_path / "o.json"))
    assert proc.returncode == 1, _output(proc)
    number = index + 1
    service, action = _call(entries[index]) or ("", "")
    failing = [line for line in proc.stdout.splitlines() if re.search(rf"#{number}\b", line)]
    assert failing, f"#{number} not named:\n{_output(proc)}"
    assert any(path in line and f" {service}.{action}:" in line.lower() for line in failing), _output(proc)
    counts = _counts(tmp_path / "o.json")
    assert counts["failed"] == 1 and counts["judged"] == counts["exchanges"], counts


@pytest.mark.parametrize(
    ("own", "path"), [("xml media.get", "$.createdAt"), ("xml media.list", "$.objects[0].createdAt")]
)
def test_an_xml_property_of_the_wrong_type_fails_naming_the_exchange_and_the_path(
    recorded: Recorded, tmp_path: Path, own: str, path: str
) -> None:
    number = recorded.own[own]
    mutated = json.loads(recorded.har.read_text())
    entry = mutated["log"]["entries"][number - 1]
    label = own.removeprefix("xml ")
    assert _call(entry) == tuple(label.lower().split("."))
    text = entry["response"]["content"]["text"]
    changed, replaced = re.subn(
        r"<createdAt>\d+</createdAt>", f"<createdAt>{ISO_DATE}</createdAt>", text, count=1
    )
    assert replaced == 1, text
    _set_text(entry, changed)
    har = tmp_path / "mutated-xml.har"
    har.write_text(json.dumps(mutated))
    proc = _check(tmp_path, har, "--schema", str(recorded.schema), "--json", str(tmp_path / "o.json"))
    assert proc.returncode == 1, _output(proc)
    failing = [line for line in proc.stdout.splitlines() if re.search(rf"#{number}\b", line)]
    assert failing, f"#{number} not named:\n{_output(proc)}"
    assert any(path in line and label in line for line in failing), _output(proc)
    assert _counts(tmp_path / "o.json")["failed"] == 1


def test_a_ks_echoed_in_invalid_ks_is_an_advisory_not_a_failure(recorded: Recorded, tmp_path: Path) -> None:
    document = json.loads(recorded.har.read_text())
    entries = document["log"]["entries"]
    keep = [
        recorded.own["xml media.get"],
        recorded.own["json echo baseEntry.list"],
        recorded.own["xml echo baseEntry.list"],
        recorded.own["xml uploadToken.get"],
    ]
    document["log"]["entries"] = [entries[number - 1] for number in keep]
    har = tmp_path / "echo.har"
    har.write_text(json.dumps(document))
    proc = _check(tmp_path, har, "--schema", str(recorded.schema), "--json", str(tmp_path / "o.json"))
    assert proc.returncode == 0, "an echoed KS must not fail the run:\n" + _output(proc)
    assert "advisor" in proc.stdout.lower(), _output(proc)
    counts = _counts(tmp_path / "o.json")
    assert counts == {**counts, "exchanges": 4, "judged": 4, "failed": 0, "advisory": 2, "passed": 2}, counts
    report = json.loads((tmp_path / "o.json").read_text())
    echoed = [e for e in report["exchanges"] if e["outcome"] == "advisory"]
    assert [e["index"] for e in echoed] == [2, 3], echoed
    assert all(f["check"] == "ks.never_echoed" for e in echoed for f in e["findings"]), echoed
    assert "verdict: PASS" in proc.stdout, _output(proc)
    # the echoed KS is never printed or written in the clear
    forged = recorded.forged_ks
    assert forged not in proc.stdout + proc.stderr
    assert forged not in (tmp_path / "o.json").read_text()
