"""The schemathesis part of the contract suite: Kaltura checks, safety on a shared partner, and
``pytest contracts/test_schema.py`` against clean and faulty reference platforms."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.errors import FailureGroup
from schemathesis.generation.meta import (
    CaseMetadata,
    ComponentInfo,
    FuzzingPhaseData,
    GenerationInfo,
    PhaseInfo,
    TestPhase,
)

from ksentinel.config import Target
from ksentinel.contract import kaltura_checks as checks
from ksentinel.contract.fuzz_safety import Created, FuzzGuard, ObjectPool, delete_params, remove_created
from ksentinel.contract.profiles import get_profile
from ksentinel.contract.schemathesis_support import KsAuth, call_with_ks_refresh, load_schema
from ksentinel.flows import Credentials, Sessions
from ksentinel.kaltura.api import KalturaApi
from ksentinel.kaltura.redact import register_secret
from ksentinel.reference.apidef import SCHEMA
from ksentinel.schema.openapi import to_openapi
from ksentinel.schema.scope import Scope
from tests.conftest import Reference, start_reference
from tests.helpers import admin_ks, upload_entry

REPO = Path(__file__).resolve().parents[1]
SCOPE = Scope(include=["session.*", "uploadToken.*", "baseEntry.*", "media.*", "system.ping"])
RUN_TIMEOUT = 300
ENTRY = {"objectType": "KalturaMediaEntry", "id": "0_abc", "name": "clip", "partnerId": 101, "createdAt": 1}
ERROR = {"code": "ENTRY_ID_NOT_FOUND", "message": "Entry id not found", "objectType": "KalturaAPIException"}


# ---- an offline schema, cases and crafted answers ------------------------------------------------------
@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return to_openapi(SCHEMA, scope=SCOPE, server_url="http://kaltura.invalid")


@pytest.fixture(scope="module")
def schema(document: dict[str, Any]) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_dict(document)


def operation(schema: schemathesis.BaseSchema, subject: str) -> schemathesis.APIOperation:
    service, action = subject.split(".")
    return schema[f"/api_v3/service/{service.lower()}/action/{action}"]["POST"]


def make_case(
    schema: schemathesis.BaseSchema,
    subject: str,
    body: Any = None,
    *,
    ks: str | None = "djJ8MTAxfGZha2U=",
    negative: bool = False,
) -> schemathesis.Case:
    query = {"format": "1", **({"ks": ks} if ks else {})}
    meta = None
    if negative:
        mode = GenerationMode.NEGATIVE
        meta = CaseMetadata(
            generation=GenerationInfo(time=0.0, mode=mode),
            components={ParameterLocation.BODY: ComponentInfo(mode=mode)},
            phase=PhaseInfo(name=TestPhase.FUZZING, data=FuzzingPhaseData(None, None, None, None)),
        )
    kwargs: dict[str, Any] = {"query": query, "_meta": meta}
    if body is not None:
        kwargs.update(body=body, media_type="application/json")
    return operation(schema, subject).Case(**kwargs)


def answer(
    case: schemathesis.Case, body: Any, *, status: int = 200, raw: bytes | None = None
) -> schemathesis.Response:
    import requests

    request = requests.Request(
        "POST",
        f"http://kaltura.invalid{case.path}",
        params=case.query,
        json=case.body if isinstance(case.body, dict) else None,
    ).prepare()
    content = raw if raw is not None else json.dumps(body).encode()
    kind = "application/json" if raw is None else "text/html"
    return schemathesis.Response(status, {"content-type": [kind]}, content, request, 0.01, True)


def broken(case: schemathesis.Case, response: schemathesis.Response, check: Any) -> str | None:
    """The message ``check`` fails with, or None when it passes."""
    try:
        case.validate_response(response, checks=[check])
    except FailureGroup as group:
        return str(group.exceptions[0].message)
    return None


# ---- each check fails on a bad answer and passes on good ones -----------------------------------------
@pytest.mark.parametrize(
    ("body", "raw", "status", "fragment"),
    [
        (None, b"", 200, "an empty body"),
        (None, b"<html><body><h1>502 Bad Gateway</h1></body></html>", 502, "an HTML page"),
        (None, b"<br />\n<b>Notice</b>: Undefined index: entryId in x.php<br />{}", 200, "a PHP notice"),
        (None, b"Fatal error\nStack trace:\n#0 /opt/kaltura/app.php(12)", 200, "a stack trace"),
        (
            {"code": 5, "message": "m", "objectType": "KalturaAPIException", "args": []},
            None,
            200,
            "code is not a string",
        ),
        ({**ERROR, "args": {"ENTRY_ID": 5}}, None, 200, "args values are not strings"),
        ({**ERROR, "args": ["x"]}, None, 200, "non-empty array"),
        ({"code": "X", "message": "no objectType"}, None, 200, "without objectType"),
    ],
)
def test_error_envelope_conformance_fails_on_malformed_errors(
    schema, body: Any, raw: bytes | None, status: int, fragment: str
) -> None:
    case = make_case(schema, "baseEntry.get", {"entryId": "0_x"})
    message = broken(case, answer(case, body, status=status, raw=raw), checks.error_envelope_conformance)
    assert message is not None and message.startswith("error_envelope_conformance: baseEntry.get")
    assert fragment in message and "\n" not in message


@pytest.mark.parametrize(
    "body", [{**ERROR, "args": {"ENTRY_ID": "0_x"}}, {**ERROR, "args": []}, ENTRY, None, 3]
)
def test_error_envelope_conformance_passes_on_kaltura_answers(schema, body: Any) -> None:
    case = make_case(schema, "baseEntry.get", {"entryId": "0_x"})
    assert broken(case, answer(case, body), checks.error_envelope_conformance) is None


def test_response_schema_conformance_names_the_failing_path(schema) -> None:
    case = make_case(schema, "baseEntry.list", {})
    drifted = {**ENTRY, "createdAt": "2026-01-01T00:00:00+00:00", "updated_at": 5}
    body = {"objects": [ENTRY, drifted], "totalCount": 2, "objectType": "KalturaBaseEntryListResponse"}
    message = broken(case, answer(case, body), checks.kaltura_response_schema_conformance)
    assert message is not None and message.startswith("response_schema_conformance: baseEntry.list result")
    assert "$.objects[1].createdAt" in message and "$.objects[1].updated_at" in message


@pytest.mark.parametrize(
    ("subject", "body", "fragment"),
    [
        ("baseEntry.get", {**ENTRY, "objectType": "KalturaUploadToken"}, "$.objectType"),
        ("baseEntry.get", {k: v for k, v in ENTRY.items() if k != "objectType"}, "$.objectType: missing"),
        ("uploadToken.get", {"objectType": "KalturaUploadToken", "id": "t", "status": 9}, "$.status"),
        ("baseEntry.count", "many", "$: 'many' is not of type integer"),
        ("system.ping", {"objectType": "KalturaSomething"}, "is not of type boolean"),
    ],
)
def test_response_schema_conformance_fails_on_wrong_results(
    schema, subject: str, body: Any, fragment: str
) -> None:
    case = make_case(schema, subject, {})
    message = broken(case, answer(case, body), checks.kaltura_response_schema_conformance)
    assert message is not None and fragment in message, message


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("baseEntry.get", ENTRY),
        ("baseEntry.get", ERROR | {"args": []}),  # errors are the envelope check's business
        (
            "uploadToken.get",
            {"objectType": "KalturaUploadToken", "id": "t", "status": 0, "fileSize": "1048576"},
        ),
        ("baseEntry.count", 3),
        ("system.ping", True),
        ("session.end", None),
        ("baseEntry.list", {"objects": [], "totalCount": 0, "objectType": "KalturaBaseEntryListResponse"}),
    ],
)
def test_response_schema_conformance_passes_on_declared_results(schema, subject: str, body: Any) -> None:
    case = make_case(schema, subject, {})
    assert broken(case, answer(case, body), checks.kaltura_response_schema_conformance) is None


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (ERROR | {"code": "INTERNAL_SERVERL_ERROR", "args": []}, 200, "INTERNAL_SERVERL_ERROR"),
        (ERROR | {"code": "INTERNAL_DATABASE_ERROR", "args": []}, 200, "INTERNAL_DATABASE_ERROR"),
        (ERROR | {"args": []}, 503, "HTTP 503"),
    ],
)
def test_no_internal_error_fails_on_internal_errors(schema, body: Any, status: int, fragment: str) -> None:
    case = make_case(schema, "media.get", {"entryId": "0_x"})
    message = broken(case, answer(case, body, status=status), checks.no_internal_error)
    assert message is not None and message.startswith("no_internal_error: media.get") and fragment in message


def test_no_internal_error_passes_on_api_errors_and_known_quirks(schema) -> None:
    case = make_case(schema, "media.get", {"entryId": "0_x"})
    assert broken(case, answer(case, ERROR | {"args": []}), checks.no_internal_error) is None
    # Kaltura's session.get throws (INTERNAL_SERVERL_ERROR) for a `session` that is not a KS
    quirk = make_case(schema, "session.get", {"session": "not a ks"})
    internal = ERROR | {"code": "INTERNAL_SERVERL_ERROR", "args": []}
    assert broken(quirk, answer(quirk, internal), checks.no_internal_error) is None
    plain = make_case(schema, "session.get", {})
    assert broken(plain, answer(plain, internal), checks.no_internal_error) is not None


@pytest.mark.parametrize(
    ("subject", "body", "fragment"),
    [
        ("media.get", {}, "'entryId' missing"),
        ("baseEntry.add", {"entry": "not an object"}, "'entry' is not an object"),
        ("baseEntry.add", {"entry": {"objectType": "KalturaBaseEntry"}, "type": "9999"}, "type='9999'"),
        (
            "media.list",
            {"filter": {"objectType": "KalturaMediaEntryFilter", "statusEqual": "99"}},
            "filter.statusEqual='99'",
        ),
        ("session.start", {"secret": "s", "type": 7}, "type=7"),
    ],
)
def test_negative_data_must_be_rejected_with_a_validation_code(
    schema, subject: str, body: dict, fragment: str
) -> None:
    case = make_case(schema, subject, body, negative=True)
    check = checks.negative_data_rejected_with_validation_code
    accepted = broken(case, answer(case, ENTRY), check)
    assert accepted is not None and "accepted invalid input" in accepted and fragment in accepted, accepted
    internal = broken(case, answer(case, ERROR | {"code": "INTERNAL_SERVERL_ERROR", "args": []}), check)
    assert internal is not None and "INTERNAL_SERVERL_ERROR instead of a validation error" in internal
    refused = ERROR | {"code": "MISSING_MANDATORY_PARAMETER", "args": {"PARAM_NAME": "x"}}
    assert broken(case, answer(case, refused), check) is None
    enum = ERROR | {"code": "PROPERTY_VALIDATION_NOT_UPDATABLE", "args": {"PROP_NAME": "x"}}
    assert broken(case, answer(case, enum), check) is None


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        # what Kaltura's lenient deserializer legitimately accepts
        ("baseEntry.add", {"entry": {"objectType": "NoSuchClass", "unknown": 1}}),
        ("baseEntry.add", {"entry": {"objectType": "KalturaBaseEntry"}, "type": 1}),
        ("session.start", {"secret": "s", "type": "2", "expiry": "12"}),
        ("uploadToken.list", {"filter": {"objectType": "KalturaUploadTokenFilter", "statusEqual": True}}),
    ],
)
def test_negative_data_that_kaltura_accepts_is_not_judged(schema, subject: str, body: dict) -> None:
    case = make_case(schema, subject, body, negative=True)
    assert broken(case, answer(case, ENTRY), checks.negative_data_rejected_with_validation_code) is None


def test_negative_data_check_ignores_positive_cases_and_broken_sessions(schema) -> None:
    check = checks.negative_data_rejected_with_validation_code
    positive = make_case(schema, "media.get", {})
    assert broken(positive, answer(positive, ENTRY), check) is None
    no_ks = make_case(schema, "media.get", {}, ks=None, negative=True)
    assert broken(no_ks, answer(no_ks, ERROR | {"code": "SERVICE_FORBIDDEN", "args": []}), check) is None
    garbage_ks = make_case(schema, "media.get", {}, ks="S\x01", negative=True)
    assert broken(garbage_ks, answer(garbage_ks, ERROR | {"code": "INVALID_KS", "args": []}), check) is None


def test_no_success_without_ks(schema) -> None:
    check = checks.no_success_without_ks
    anonymous = make_case(schema, "baseEntry.list", {}, ks=None)
    listing = {"objects": [], "totalCount": 0, "objectType": "KalturaBaseEntryListResponse"}
    message = broken(anonymous, answer(anonymous, listing), check)
    assert message == "no_success_without_ks: baseEntry.list succeeded without a KS although it requires one"
    assert broken(anonymous, answer(anonymous, ERROR | {"code": "MISSING_KS", "args": []}), check) is None
    with_ks = make_case(schema, "baseEntry.list", {})
    assert broken(with_ks, answer(with_ks, listing), check) is None
    ping = make_case(schema, "system.ping", None, ks=None)  # sessionRequired="none"
    assert broken(ping, answer(ping, True), check) is None


def test_no_secret_in_response() -> None:
    secret = "ksentinel-test-secret-0123456789abcdef"
    register_secret(secret)
    ks = admin_ks(type("P", (), {"admin_secret": "a" * 32, "id": 101})())
    schema = schemathesis.openapi.from_dict(
        to_openapi(SCHEMA, scope=SCOPE, server_url="http://kaltura.invalid")
    )
    check = checks.no_secret_in_response
    case = make_case(schema, "baseEntry.get", {"entryId": "0_x"}, ks=ks)
    leaked = broken(case, answer(case, {**ENTRY, "description": f"set up with {secret}"}), check)
    assert leaked == "no_secret_in_response: baseEntry.get answered with a secret in its body"
    echoed = broken(case, answer(case, {**ENTRY, "description": ks}), check)
    assert echoed == "no_secret_in_response: baseEntry.get answered with the KS it was sent"
    assert broken(case, answer(case, ENTRY), check) is None
    # session.start hands out a KS by design
    start = make_case(schema, "session.start", {"secret": "x"}, ks=ks)
    assert broken(start, answer(start, ks), check) is None


def test_checks_are_registered_with_schemathesis_once() -> None:
    import importlib

    from schemathesis.checks import CHECKS, load_all_checks

    load_all_checks()
    importlib.reload(checks)  # a second import registers the same names again, without error
    names = set(CHECKS.get_all_names())
    assert {c.__name__ for c in checks.KALTURA_CHECKS} <= names
    assert "kaltura_response_schema_conformance" in names and "response_schema_conformance" in names


# ---- safety, offline ---------------------------------------------------------------------------------
class _Factory:
    def __init__(self) -> None:
        self.made: list[str] = []

    def __call__(self, wanted: str) -> Created | None:
        if wanted not in ("entry", "uploadtoken"):
            return None
        object_id = f"0_ours{len(self.made)}"
        self.made.append(object_id)
        return Created(object_id, "mediaentry" if wanted == "entry" else "uploadtoken", "media")


def guard_for(document: dict[str, Any], factory: Any = None) -> FuzzGuard:
    return FuzzGuard(
        document,
        ObjectPool(factory),
        tags="ksentinel,ksentinel-run1-fuzz",
        file_prefix="ksentinel-run1-fuzz",
        throwaway_ks=lambda: "THROWAWAY",
    )


def test_destructive_cases_only_ever_name_objects_of_the_run(schema, document) -> None:
    factory = _Factory()
    guard = guard_for(document, factory)
    for subject, param in [
        ("media.delete", "entryId"),
        ("baseEntry.update", "entryId"),
        ("uploadToken.delete", "uploadTokenId"),
        ("media.addContent", "entryId"),  # not destructive by name, but changes the entry it names
    ]:
        case = make_case(schema, subject, {param: "0_someone_elses"})
        assert guard.prepare(case) is None
        assert guard.pool.owns(case.body[param]) and case.body[param] in factory.made, subject
    reads = make_case(schema, "baseEntry.get", {"entryId": "0_someone_elses"})
    assert guard.prepare(reads) is None and reads.body["entryId"] == "0_someone_elses"


def test_destructive_cases_without_an_id_of_the_run_are_not_sent(schema, document) -> None:
    guard = guard_for(document)  # no factory: nothing can stand in
    case = make_case(schema, "media.delete", {"entryId": "0_someone_elses"})
    assert "no object created by this run" in (guard.prepare(case) or "")
    assert case.body["entryId"] == "0_someone_elses"
    odd = make_case(schema, "baseEntry.delete", {"entryId": ["0_x"]})
    assert guard_for(document, _Factory()).prepare(odd) is not None
    missing = make_case(schema, "baseEntry.delete", {})  # nothing named, nothing at risk
    assert guard.prepare(missing) is None


def test_session_end_only_ends_a_throwaway_ks(schema, document) -> None:
    case = make_case(schema, "session.end", None, ks="THE-SUITE-KS")
    assert guard_for(document).prepare(case) is None
    assert case.body["ks"] == "THROWAWAY" and "ks" not in case.query  # in the body, never the URL


def test_created_objects_are_tagged_recorded_and_removed(schema, document) -> None:
    guard = guard_for(document)
    add = make_case(schema, "media.add", {"entry": {"objectType": "KalturaMediaEntry", "name": "x"}})
    token = make_case(schema, "uploadToken.add", {"uploadToken": {"objectType": "KalturaUploadToken"}})
    unknown = make_case(schema, "baseEntry.add", {"entry": {"objectType": "Bogus", "tags": "mine"}})
    for case in (add, token, unknown):
        assert guard.prepare(case) is None
    assert add.body["entry"]["tags"] == "ksentinel,ksentinel-run1-fuzz"
    assert unknown.body["entry"]["tags"] == "ksentinel,ksentinel-run1-fuzz"  # built as the declared class
    assert token.body["uploadToken"]["fileName"].startswith("ksentinel-run1-fuzz")
    guard.record(add, answer(add, {**ENTRY, "id": "0_new"}))
    guard.record(token, answer(token, {"objectType": "KalturaUploadToken", "id": "t_new", "status": 0}))
    assert guard.pool.owns("0_new") and guard.pool.owns("t_new")
    delete = make_case(schema, "media.delete", {"entryId": "0_new"})
    assert guard.prepare(delete) is None and delete.body["entryId"] == "0_new"
    guard.record(delete, answer(delete, None))
    assert guard.pool.pick("entry") is None  # deleted, so no longer a stand-in

    calls: list[tuple[str, str, dict]] = []

    class Api:
        def call(self, service: str, action: str, **params: Any) -> None:
            calls.append((service, action, params))

    assert remove_created(Api(), guard.pool, delete_params(document)) == []  # type: ignore[arg-type]
    assert ("media", "delete", {"entryId": "0_new"}) in calls
    assert ("uploadtoken", "delete", {"uploadTokenId": "t_new"}) in calls


# ---- against the reference platform ------------------------------------------------------------------
def target_of(ref: Reference) -> Target:
    return Target.for_reference(ref.url, ref.p1.id, ref.p1.admin_secret, ref.p1.user_secret)


def test_load_schema_uses_the_targets_own_schema_and_refreshes_an_invalid_ks(reference: Reference) -> None:
    target = target_of(reference)
    sessions = Sessions(Credentials(reference.p1.id, reference.p1.admin_secret))
    auth = KsAuth(sessions)
    schema = load_schema(target, SCOPE, profile=get_profile("quick"), auth=auth)
    assert len(list(schema.get_all_operations())) == 25
    assert schema.config.base_url == reference.url
    case = operation(schema, "baseEntry.count").Case(body={}, media_type="application/json")
    stale = auth.current()
    case.query = {"format": "1", "ks": stale}
    with KalturaApi(reference.url, ks=stale) as api:
        api.call("session", "end")  # our KS is now refused with INVALID_KS (HTTP 200)
    response = call_with_ks_refresh(case, auth)
    assert response.status_code == 200 and isinstance(response.json(), int), response.text
    assert auth.refreshes == 1 and case.body["ks"] != stale and "ks" not in case.query


def run_schema_suite(
    ref: Reference, tmp: Path, profile: str, *extra: str, url: str | None = None
) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    """``pytest contracts/test_schema.py`` against ``ref`` (or ``url``, a proxy in front of it)."""
    results = tmp / "results.json"
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(REPO / "contracts" / "test_schema.py"),
        "-c",
        str(REPO / "contracts" / "pytest.ini"),
        "--rootdir",
        str(REPO / "contracts"),
        "--ksentinel-url",
        url or ref.url,
        "--ksentinel-partner-id",
        str(ref.p1.id),
        "--ksentinel-profile",
        profile,
        "--ksentinel-results",
        str(results),
        "-q",
        *extra,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
    env["KSENTINEL_ADMIN_SECRET"] = ref.p1.admin_secret
    proc = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=env, cwd=tmp)
    return proc, json.loads(results.read_text()) if results.exists() else []


@pytest.fixture
def seeded(fresh_reference: Reference) -> Iterator[dict[str, Any]]:
    """Objects another user of the partner owns: the run must leave them exactly as they are."""
    admin = admin_ks(fresh_reference.p1, "someone-else")
    with httpx.Client(timeout=10) as http:
        ready = upload_entry(http, fresh_reference.url, admin, os.urandom(1000), name="precious")
    with KalturaApi(fresh_reference.url, ks=admin) as api:
        draft = api.call(
            "baseEntry", "add", entry={"objectType": "KalturaBaseEntry", "name": "precious draft"}
        )
        token = api.call("uploadToken", "add")
    store = fresh_reference.server.platform.store
    import time

    deadline = time.monotonic() + 10
    while any(e["status"] == 1 for e in store.all_entries()) and time.monotonic() < deadline:
        time.sleep(0.1)
        httpx.get(f"{fresh_reference.url}/api_v3/service/system/action/ping?format=1", timeout=5)
    yield {
        "entries": {e["id"]: (e["name"], e["updated_at"], e["status"]) for e in store.all_entries()},
        "ids": {ready["id"], draft["id"]},
        "token": token["id"],
    }


def test_clean_reference_keeps_every_action_contract_and_the_run_is_safe(
    tmp_path: Path, fresh_reference: Reference, seeded: dict[str, Any]
) -> None:
    proc, results = run_schema_suite(fresh_reference, tmp_path, "ci")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    actions = {r["subject"] for r in results if r["kind"] == "action" and r["outcome"] == "passed"}
    assert {"baseEntry.get", "media.delete", "session.end", "uploadToken.upload", "system.ping"} <= actions
    assert len(actions - {"all actions"}) == 25
    store = fresh_reference.server.platform.store
    after = {e["id"]: (e["name"], e["updated_at"], e["status"]) for e in store.all_entries()}
    assert after == seeded["entries"], "the run changed, removed or left entries"
    token = store.get_token(fresh_reference.p1.id, seeded["token"])
    assert token is not None and token["status"] == 0, "the run touched an upload token it did not create"
    leftovers = [t for t in store.all_tokens() if t["id"] != seeded["token"] and t["status"] not in (3, 5)]
    assert leftovers == [], "the run left open upload tokens"
    assert fresh_reference.p1.admin_secret not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("fault", "rule", "subjects"),
    [
        ("schema-drift", "response_schema_conformance", {"baseEntry.add", "media.add"}),
        ("http-500", "no_internal_error", None),
        ("wrong-error-code", "no_internal_error", {"baseEntry.get", "media.get"}),
    ],
)
def test_faults_break_the_named_rule(
    tmp_path: Path, fault: str, rule: str, subjects: set[str] | None
) -> None:
    with start_reference(tmp_path / "ref", faults=(fault,)) as ref:
        proc, results = run_schema_suite(ref, tmp_path, "quick")
        store = ref.server.platform.store
        assert store.all_entries() == [], "the run left entries behind"
    assert proc.returncode == 1, proc.stdout[-3000:]
    hits = {r["subject"] for r in results if r["kind"] == "action" and rule in (r.get("rule") or "")}
    assert hits and (subjects is None or subjects & hits), [(r["subject"], r.get("rule")) for r in results]
    failure = next(r for r in results if r["subject"] in hits)
    assert failure["outcome"] == "failed" and failure["message"].startswith(rule)
    assert failure["request"]["method"] == "POST" and failure["response"]["status"] in (200, 500)


def test_an_action_that_answers_without_a_ks_breaks_no_success_without_ks(document) -> None:
    """schemathesis never drops the KS itself, so the fuzzer probes each action once without it."""
    import http.server
    import threading

    from ksentinel.contract.fuzz_runner import ContractBroken, Fuzzer
    from ksentinel.contract.schemathesis_support import schemathesis_config

    listing = {"objects": [], "totalCount": 0, "objectType": "KalturaBaseEntryListResponse"}
    seen: list[str] = []

    class Lenient(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            sent = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append((self.path, json.loads(sent or b"{}")))
            body = json.dumps(listing).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Lenient)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        schema = schemathesis.openapi.from_dict(
            document, config=schemathesis_config(url, get_profile("quick"), timeout=5)
        )
        auth = KsAuth(Sessions(Credentials(101, "f" * 32)))
        fuzzer = Fuzzer(schema, guard_for(document), auth)
        case = operation(schema, "baseEntry.list").Case(
            body={}, media_type="application/json", query={"format": "1", "ks": auth.current()}
        )
        with pytest.raises(ContractBroken) as caught:
            fuzzer.run(case)
    finally:
        server.shutdown()
        server.server_close()
    assert caught.value.rules == ["no_success_without_ks"]
    assert len(seen) == 2 and all("ks=" not in path for path, _ in seen)  # never in the URL
    assert "ks" in seen[0][1] and "ks" not in seen[1][1]  # in the body, then left out


# ---- honest verdicts ---------------------------------------------------------------------------------
class CountingProxy:
    """A loopback proxy in front of a target that counts the API calls schemathesis sends (its
    ``User-Agent``), per ``service.action`` as the URL spells them: what the fuzzer says it sent must
    have reached the server."""

    _HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"})

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.calls: Counter[str] = Counter()
        self.url = ""
        self._lock = threading.Lock()

    def __enter__(self) -> CountingProxy:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy.forward(self)

            def do_POST(self) -> None:
                proxy.forward(self)

            def log_message(self, *args: object) -> None:
                pass

        self._client = httpx.Client(timeout=60, follow_redirects=False)
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()

    def forward(self, handler: Any) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in self._HOP | {"host"}}
        called = re.match(r"^/api_v3/service/(\w+)/action/(\w+)", handler.path)
        if called and handler.headers.get("User-Agent", "").startswith("schemathesis/"):
            with self._lock:
                self.calls[f"{called.group(1).lower()}.{called.group(2).lower()}"] += 1
        answer = self._client.request(
            handler.command, self.upstream + handler.path, headers=headers, content=body
        )
        handler.send_response(answer.status_code)
        for name, value in answer.headers.multi_items():
            if name.lower() not in self._HOP:
                handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(answer.content)))
        handler.end_headers()
        handler.wfile.write(answer.content)

    def sent(self, subject: str) -> int:
        """Calls of ``service.action`` (operationId spelling) that reached the server."""
        return self.calls[subject.lower()]


# actions the reference platform does not implement, served in its schema (it answers SERVICE_FORBIDDEN):
# one that needs a KS, one that does not, and one shaped like the 22.15.0 schema's media.bulkUploadAdd (a
# file part beside a json part holding a oneOf), on which schemathesis 4.32.5 crashes (BINARY_WORKAROUND)
EXTRA_ACTIONS = {
    "baseentry": """<action name="export" description="" enableInMultiRequest="1" sessionRequired="always">
        <param name="entryId" type="string" description=""/>
        <param name="storageProfileId" type="int" description=""/>
        <result type="KalturaBaseEntry"/>
      </action>
      """,
    "system": """<action name="getVersion" description="" enableInMultiRequest="1" sessionRequired="none">
        <result type="string"/>
      </action>
      """,
    "media": """<action name="bulkUploadAdd" description="" enableInMultiRequest="0" sessionRequired="always">
        <param name="fileData" type="file" description=""/>
        <param name="entry" type="KalturaBaseEntry" optional="1" default="null" description=""/>
        <result type="KalturaMediaEntry"/>
      </action>
      """,
}


def extra_actions_xml() -> str:
    """The reference platform's own schema XML plus :data:`EXTRA_ACTIONS`."""
    from ksentinel.reference.schema_xml import render_schema_xml

    xml = render_schema_xml(SCHEMA).decode()
    for service, action in EXTRA_ACTIONS.items():
        at = xml.index("<action", xml.index(f'<service id="{service}"'))
        xml = xml[:at] + action + xml[at:]
    return xml


def schema_with_extra_actions(path: Path) -> Path:
    path.write_text(extra_actions_xml(), encoding="utf-8")
    return path


@contextlib.contextmanager
def reference_serving(tmp: Path, schema_file: Path) -> Iterator[Reference]:
    """A plain reference platform that serves ``schema_file`` at /api_v3/api_schema.php."""
    from ksentinel.reference.platform import PlatformConfig
    from ksentinel.reference.realism import Realism
    from ksentinel.reference.server import run_in_thread
    from tests.conftest import make_partners, partners_env

    p1, p2 = make_partners()
    config = PlatformConfig(data_dir=tmp, ready_after=0.2, realism=Realism.off(), schema_file=schema_file)
    with run_in_thread(config, environ={"KSENTINEL_REF_PARTNERS": partners_env(p1, p2)}) as server:
        yield Reference(server.url, p1, p2, server, tmp)


def by_subject(results: list[dict]) -> dict[str, dict]:
    return {r["subject"]: r for r in results if r["kind"] == "action"}


def test_an_action_nothing_was_judged_for_is_not_tested_never_passed(tmp_path: Path) -> None:
    """Issue 12: a guard refusal and an action the target does not offer used to pass with no request."""
    config = tmp_path / "ksentinel.toml"
    config.write_text(
        "[contract]\n"
        'include = ["baseEntry.get", "baseEntry.count", "baseEntry.export", "system.*"]\n'
        'destructive = ["*.count"]\n'
        'fuzz_include = ["baseEntry.export"]\n'  # never fuzzed by default unless named (issue 14)
    )
    junit = tmp_path / "junit.xml"
    with (
        reference_serving(tmp_path / "ref", schema_with_extra_actions(tmp_path / "schema.xml")) as ref,
        CountingProxy(ref.url) as proxy,
    ):
        proc, results = run_schema_suite(
            ref, tmp_path, "ci", "--ksentinel-config", str(config), "--junitxml", str(junit), url=proxy.url
        )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    got = by_subject(results)
    assert set(got) - {"stateful sequences"} == {
        "baseEntry.get",
        "baseEntry.count",
        "baseEntry.export",
        "system.ping",
        "system.getVersion",
        "all actions",
    }
    # refused by the guard: never sent, so never passed
    count = got["baseEntry.count"]
    assert count["outcome"] == "not_tested", count
    assert count["message"] == (
        "not tested: baseEntry.count changes existing state and names no object this run could provide"
    )
    assert (
        count["cases"]["sent"] == 0 and count["cases"]["judged"] == 0 and proxy.sent("baseEntry.count") == 0
    )
    # not offered by the target, with a KS and without one: one request each, then not tested
    for subject in ("baseEntry.export", "system.getVersion"):
        result = got[subject]
        assert result["outcome"] == "not_tested", result
        assert result["message"] == "not tested: not available on this target (SERVICE_FORBIDDEN)"
        assert result["cases"]["judged"] == 0 and result["cases"]["reasons"] == {
            "answered SERVICE_FORBIDDEN": 1
        }
        assert result["cases"]["sent"] == 1 == proxy.sent(subject)
    # passed: requests really reached the server and were judged
    for subject in ("baseEntry.get", "system.ping"):
        result = got[subject]
        assert result["outcome"] == "passed", result
        assert result["cases"]["judged"] > 0 and proxy.sent(subject) >= result["cases"]["sent"] > 0
    assert got["all actions"]["outcome"] == "passed"
    # JUnit: a not-tested action is a skipped case saying why, every action carries its counts
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    export = next(c for name, c in cases.items() if "baseentry/action/export" in (name or ""))
    skipped = export.find("skipped")
    assert skipped is not None
    assert skipped.get("message") == "not tested: not available on this target (SERVICE_FORBIDDEN)"
    properties = {p.get("name"): p.get("value") for p in export.iter("property")}
    assert properties["ksentinel.outcome"] == "not_tested"
    assert properties["ksentinel.cases"] == "sent 1, judged 0, not tested 1 (answered SERVICE_FORBIDDEN: 1)"
    ping = next(c for name, c in cases.items() if "system/action/ping" in (name or ""))
    assert ping.find("skipped") is None and ping.find("failure") is None
    assert re.fullmatch(
        r"sent [1-9]\d*, judged [1-9]\d*, not tested 0",
        {p.get("name"): p.get("value") for p in ping.iter("property")}["ksentinel.cases"],
    )


def test_an_action_verdict_is_passed_only_when_answers_were_judged() -> None:
    from ksentinel.contract.fuzz_runner import ContractBroken, NotTested, Tally, action_verdict

    judged = Tally(sent=3, judged=3)
    assert action_verdict(judged, broken=None, raised=None).outcome == "passed"
    refused = Tally()
    refused.not_tested["media.flag changes existing state"] += 4
    verdict = action_verdict(refused, broken=None, raised=NotTested("media.flag changes existing state"))
    assert (verdict.outcome, verdict.message) == (
        "not_tested",
        "not tested: media.flag changes existing state",
    )
    assert verdict.cases == {
        "sent": 0,
        "judged": 0,
        "not_tested": 4,
        "reasons": {"media.flag changes existing state": 4},
    }
    # answers to requests without our KS were judged, but the action is not offered: still not tested
    gone = Tally(sent=2, judged=1, not_available="SERVICE_FORBIDDEN")
    assert action_verdict(gone, broken=None, raised=None).message == (
        "not tested: not available on this target (SERVICE_FORBIDDEN)"
    )
    nothing = action_verdict(Tally(), broken=None, raised=None)
    assert (nothing.outcome, nothing.message) == ("not_tested", "not tested: no case was generated")
    # an exception that is not a broken contract is ours (or schemathesis's): a tool error naming it
    try:
        {}["missing"]
    except KeyError as exc:
        crashed = action_verdict(judged, broken=None, raised=exc)
    assert crashed.outcome == "error" and crashed.message.startswith("tool error: KeyError: 'missing' (at ")
    group = ExceptionGroup("two", [ValueError("Unsupported type: 'Binary'"), TypeError("x")])
    assert action_verdict(judged, broken=None, raised=group).message.startswith(
        "tool error: ValueError: Unsupported type: 'Binary'"
    )
    coverage = action_verdict(judged, broken=None, raised=None, crash="schemathesis crashed")
    assert (coverage.outcome, coverage.message) == (
        "error",
        "tool error: schemathesis crashed; its other cases ran",
    )
    # a broken contract wins over everything else
    broken = ContractBroken("media.get", ["no_internal_error: media.get answered HTTP 500"], {}, {})
    verdict = action_verdict(judged, broken=broken, raised=KeyError("x"), crash="schemathesis crashed")
    assert (verdict.outcome, verdict.message) == ("failed", "no_internal_error: media.get answered HTTP 500")


def _budget_schema(workaround: bool, profile: str = "ci") -> tuple[schemathesis.BaseSchema, Any]:
    """The reference schema plus :data:`EXTRA_ACTIONS` in schemathesis, the ksentinel way (coverage
    budget, the binary workaround on or off); returns it and its :class:`CoverageBudget`."""
    from ksentinel.contract import schemathesis_support as support
    from ksentinel.schema.xml import parse_schema

    document = to_openapi(parse_schema(extra_actions_xml().encode()), server_url="http://kaltura.invalid")
    chosen = get_profile(profile)
    config = support.schemathesis_config("http://kaltura.invalid", chosen, timeout=5)
    source = support.schemathesis_document(document) if workaround else document
    schema = schemathesis.openapi.from_dict(source, config=config)
    budget = support.CoverageBudget(support.budget_for(chosen))
    budget.install(schema)
    return schema, budget


def _coverage_cases(schema: schemathesis.BaseSchema, subject: str) -> list[schemathesis.Case]:
    op = operation(schema, subject)
    generation = schema.config.generation_for(operation=op, phase="coverage")
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    return list(schema.iter_coverage_cases(op, generation_modes=modes, generation_config=generation))


def test_a_coverage_phase_crash_stays_with_its_operation_and_the_workaround_avoids_it() -> None:
    """Issue 12: schemathesis 4.32.5 crashed on media.bulkUploadAdd's coverage cases, which killed the
    verdict of every action. The crash is now recorded for that one operation; the others are built."""
    from schemathesis import __version__ as schemathesis_version

    schema, budget = _budget_schema(workaround=False)
    assert _coverage_cases(schema, "media.bulkUploadAdd") == []
    label = "POST /api_v3/service/media/action/bulkUploadAdd"
    crash = budget.crashes[label]
    # still needed: once a schemathesis release derives these cases, lift BINARY_WORKAROUND
    assert "ValueError: Unsupported type: 'Binary'" in crash, (
        f"schemathesis {schemathesis_version} no longer crashes here: lift BINARY_WORKAROUND"
    )
    assert crash.startswith(
        f"schemathesis {schemathesis_version} crashed deriving the coverage cases of {label}"
    )
    assert _coverage_cases(schema, "baseEntry.get") and list(budget.crashes) == [label]
    # the clones schemathesis makes of the schema keep the budget
    assert type(schema.clone()).iter_coverage_cases is type(schema).iter_coverage_cases

    fixed, fixed_budget = _budget_schema(workaround=True)
    cases = _coverage_cases(fixed, "media.bulkUploadAdd")
    assert cases and fixed_budget.crashes == {}
    body = fixed.raw_schema["paths"]["/api_v3/service/media/action/bulkUploadAdd"]["post"]["requestBody"]
    parts = body["content"]["multipart/form-data"]["schema"]["properties"]
    assert parts["fileData"] == {"type": "string", "contentMediaType": "application/octet-stream"}
    # ... and schemathesis still sends it as a file part, with a filename
    sent = cases[0].as_transport_kwargs(base_url="http://kaltura.invalid")
    assert ("fileData", "fileData") in [(name, part[0]) for name, part in sent["files"]]


def test_the_coverage_phase_reads_a_bounded_number_of_cases_per_action() -> None:
    """schemathesis derives every coverage case while it builds a test (51,676 for the 22.15.0
    schema's baseEntry.add): the budget stops reading once an action has its share."""
    from ksentinel.contract.schemathesis_support import budget_for

    schema, budget = _budget_schema(workaround=True)
    read: list[int] = []
    original = budget.admits

    def counting(case: schemathesis.Case) -> bool:
        read.append(1)
        return original(case)

    budget.admits = counting  # type: ignore[method-assign]
    kept = _coverage_cases(schema, "baseEntry.add")
    ci = budget_for(get_profile("ci"))
    body = [c for c in kept if c.meta.phase.data.parameter_location.name == "BODY"]
    assert 0 < len(body) <= ci.coverage_cases
    assert len(read) <= 2 * ci.coverage_scan  # positive and negative, each read at most coverage_scan
    modes = {c.meta.generation.mode.value for c in kept}
    assert modes == {"positive", "negative"}


def _raised_in(filename: str, error: BaseException) -> BaseException:
    """``error`` raised from code whose file is ``filename`` (a crash schemathesis cannot be made to
    produce on demand: it comes from a random mutation now and then)."""
    namespace: dict[str, object] = {"error": error}
    try:
        exec(compile("raise error", filename, "exec"), namespace)
    except BaseException as raised:
        return raised
    raise AssertionError("not raised")


def test_an_upstream_generator_that_gives_up_part_way_keeps_the_judged_cases_and_says_so() -> None:
    from schemathesis.core.errors import InvalidSchema

    from ksentinel.contract.fuzz_runner import Tally, action_verdict

    crash = InvalidSchema("Cannot generate an array with 1 demanded elements")
    upstream = _raised_in("/x/site-packages/schemathesis/generation/jsonschema/strategy.py", crash)
    judged = Tally(sent=12, judged=12)
    verdict = action_verdict(judged, broken=None, raised=upstream)
    assert verdict.outcome == "passed", verdict
    assert verdict.cases["judged"] == 12 and verdict.cases["not_tested"] == 1
    assert any("upstream generator stopped" in why for why in verdict.cases["reasons"]), verdict.cases
    # before any case was judged, nothing was tested: a tool error, never a pass
    nothing = action_verdict(Tally(), broken=None, raised=upstream)
    assert nothing.outcome == "error" and "Cannot generate an array" in nothing.message
    # the same exception from our own code is our bug: a tool error whatever was judged
    ours = _raised_in("/x/ksentinel/contract/schemathesis_support.py", InvalidSchema("bad"))
    assert action_verdict(Tally(sent=3, judged=3), broken=None, raised=ours).outcome == "error"
