"""The schemathesis part of the contract suite: Kaltura checks, safety on a shared partner, and
``pytest contracts/test_schema.py`` against clean and faulty reference platforms."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
    assert case.query["ks"] == "THROWAWAY"


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
    assert auth.refreshes == 1 and case.query["ks"] != stale


def run_schema_suite(
    ref: Reference, tmp: Path, profile: str
) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
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
        ref.url,
        "--ksentinel-partner-id",
        str(ref.p1.id),
        "--ksentinel-profile",
        profile,
        "--ksentinel-results",
        str(results),
        "-q",
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
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(self.path)
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
    assert len(seen) == 2 and "ks=" in seen[0] and "ks=" not in seen[1]
