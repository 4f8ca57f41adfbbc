"""Real Kaltura answers (tests/data/real-answers) against the 22.15.0 schema's response checks.

Every answer there was recorded from a real Kaltura OVP server (origins and licences: SOURCES.md).
The response checks must accept each of them as it is, and must catch a copy with one property of
the wrong type or one property renamed, naming where.

The schema file is read from ``shared/data/`` beside the repository (or ``$KSENTINEL_KALTURA_SCHEMA``);
without it the schema tests are skipped with the reason.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from ksentinel.kaltura.wire import xml_value
from ksentinel.schema.answers import problems, result_schema
from ksentinel.schema.model import Schema
from ksentinel.schema.openapi import to_openapi
from ksentinel.schema.xml import parse_schema
from tests.helpers import real_schema_path
from tests.real_answers import (
    DATA_DIR,
    JSON_FORMAT,
    XML_FORMAT,
    RealAnswer,
    load,
    mutate_rename,
    mutate_type,
    to_har,
)

ANSWERS = load()
IDS = [a.file for a in ANSWERS]
EXCEPTION = "KalturaAPIException"


@cache
def _schema_and_document(path: str) -> tuple[Schema, dict[str, Any]]:
    schema = parse_schema(Path(path).read_bytes())
    return schema, to_openapi(schema, strict=True)


@pytest.fixture(scope="module")
def real(request: pytest.FixtureRequest) -> tuple[Schema, dict[str, Any]]:
    path = real_schema_path()
    return _schema_and_document(str(path))


def _service_id(schema: Schema, name: str) -> str | None:
    """The URL id of a service named as a client calls it (``baseEntry``, ``metadata_metadata``)."""
    for service in schema.services.values():
        if name.lower() in (service.id.lower(), service.name.lower()):
            return service.id
    return None


def _calls(answer: RealAnswer) -> list[tuple[str, str]]:
    if answer.calls is None:
        return [(answer.service, answer.action)]
    return [(c["service"], c["action"]) for c in answer.calls]


def _operation(real: tuple[Schema, dict[str, Any]], service: str, action: str) -> dict[str, Any]:
    schema, document = real
    service_id = _service_id(schema, service)
    assert service_id is not None, f"service {service!r} is not in the schema"
    path = f"/api_v3/service/{service_id}/action/{action}"
    assert path in document["paths"], f"{service}.{action} is not in the schema"
    return document["paths"][path]["post"]


def _decode(answer: RealAnswer) -> Any:
    """The answer's value: JSON as parsed; XML as ``xml_value`` of ``<result>`` (empty = None)."""
    if answer.format == JSON_FORMAT:
        return json.loads(answer.body)
    result = ET.fromstring(answer.body.encode("utf-8")).find("result")
    assert result is not None
    if len(result) == 0 and not (result.text or "").strip():
        return None
    return xml_value(result)


def _is_error(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    return value.get("objectType") == EXCEPTION or ("error" in value and "objectType" not in value)


def _sub_answers(answer: RealAnswer, value: Any) -> list[tuple[int | None, str, str, Any]]:
    """``(index, service, action, value)`` per call; a multirequest answer is one value per call."""
    calls = _calls(answer)
    if answer.calls is None:
        return [(None, *calls[0], value)]
    assert isinstance(value, list) and len(value) == len(calls)
    return [(i, s, a, v) for i, ((s, a), v) in enumerate(zip(calls, value, strict=True))]


def _problems(real: tuple[Schema, dict[str, Any]], service: str, action: str, value: Any) -> list[str]:
    operation = _operation(real, service, action)
    declared = result_schema(operation)
    assert declared is not None, f"{service}.{action} declares no result"
    return problems(value, declared, real[1]["components"]["schemas"])


# ----------------------------------------------------------------------------- 1. the manifest


def test_every_manifest_row_has_its_file_origin_and_licence() -> None:
    rows = json.loads((DATA_DIR / "manifest.json").read_text(encoding="utf-8"))
    assert len(rows) == len(ANSWERS) >= 10
    listed = {row["file"] for row in rows}
    on_disk = {p.name for p in DATA_DIR.iterdir()} - {"manifest.json", "SOURCES.md"}
    assert listed == on_disk
    sources = (DATA_DIR / "SOURCES.md").read_text(encoding="utf-8")
    for answer in ANSWERS:
        assert answer.format in (JSON_FORMAT, XML_FORMAT), answer.file
        assert answer.origin and answer.licence, answer.file
        assert answer.file in sources, f"{answer.file} has no row in SOURCES.md"
        if answer.calls is None:
            assert answer.service != "multirequest", answer.file
        else:
            assert (answer.service, answer.action) == ("multirequest", "null"), answer.file
            assert len(answer.calls) >= 1
        if answer.format == JSON_FORMAT:
            json.loads(answer.body)
        else:
            root = ET.fromstring(answer.body.encode("utf-8"))
            assert answer.body.startswith('<?xml version="1.0" encoding="utf-8"?><xml><result>')
            assert root.tag == "xml" and root.find("result") is not None
            assert root.find("executionTime") is not None


@pytest.mark.parametrize("answer", ANSWERS, ids=IDS)
def test_every_call_exists_in_the_real_schema(
    answer: RealAnswer, real: tuple[Schema, dict[str, Any]]
) -> None:
    for service, action in _calls(answer):
        _operation(real, service, action)


def test_the_har_has_one_entry_per_answer_and_no_ks_in_urls() -> None:
    har = to_har(ANSWERS)
    assert har["log"]["version"] == "1.2"
    entries = har["log"]["entries"]
    assert len(entries) == len(ANSWERS)
    for entry, answer in zip(entries, ANSWERS, strict=True):
        request, response = entry["request"], entry["response"]
        assert request["method"] == "POST"
        assert "?" not in request["url"] and "/ks/" not in request["url"]
        assert request["queryString"] == []
        body = json.loads(request["postData"]["text"])
        assert body["format"] == answer.format
        if answer.calls is None:
            assert request["url"].endswith(f"/api_v3/service/{answer.service}/action/{answer.action}")
        else:
            assert request["url"].endswith("/api_v3/service/multirequest")
            for number, call in enumerate(answer.calls, start=1):
                assert body[str(number)]["service"] == call["service"]
                assert body[str(number)]["action"] == call["action"]
        assert response["status"] == answer.status
        assert response["content"]["text"] == answer.body
        assert response["content"]["size"] == len(answer.body.encode("utf-8"))
    json.dumps(har)


# ----------------------------------------------------------------------------- 2. real answers pass


def _with_results() -> list[RealAnswer]:
    """The answers that carry at least one result (an error answer has nothing for the result checks)."""
    return [a for a in ANSWERS if any(not _is_error(value) for *_, value in _sub_answers(a, _decode(a)))]


@pytest.mark.parametrize("answer", _with_results(), ids=lambda a: a.file)
def test_the_response_checks_accept_the_real_answer(
    answer: RealAnswer, real: tuple[Schema, dict[str, Any]]
) -> None:
    found: list[str] = []
    judged = 0
    for index, service, action, value in _sub_answers(answer, _decode(answer)):
        if _is_error(value):
            continue
        judged += 1
        where = "" if index is None else f"[{index}] {service}.{action} "
        found += [where + p for p in _problems(real, service, action, value)]
    assert judged, "every parametrized answer carries a result"
    assert found == []


# ----------------------------------------------------------------------------- 3. mutations are caught


def _undeclared(real: tuple[Schema, dict[str, Any]], answer: RealAnswer) -> list[int]:
    """Sub-answers whose result class the schema file does not declare (its plugin set lacks it):
    the checks can judge nothing inside them, so the mutations leave them alone."""
    components = real[1]["components"]["schemas"]
    out = []
    for index, _service, _action, value in _sub_answers(answer, _decode(answer)):
        name = value.get("objectType") if isinstance(value, dict) else None
        if index is not None and name and (components.get(name) or {}).get("x-kaltura-undeclared"):
            out.append(index)
    return out


def _mutated_problems(
    real: tuple[Schema, dict[str, Any]], answer: RealAnswer, index: int | None
) -> list[str]:
    value = _decode(answer)
    for sub_index, service, action, sub in _sub_answers(answer, value):
        if sub_index == index:
            return _problems(real, service, action, sub)
    raise AssertionError(f"no sub-answer {index}")


SUCCESSES = [a for a in ANSWERS if "error" not in a.file]


@pytest.mark.parametrize("answer", SUCCESSES, ids=[a.file for a in SUCCESSES])
def test_a_property_of_the_wrong_type_is_caught(
    answer: RealAnswer, real: tuple[Schema, dict[str, Any]]
) -> None:
    try:
        mutation = mutate_type(answer, skip=_undeclared(real, answer))
    except LookupError as error:
        pytest.skip(f"nothing to change outside undeclared classes: {error}")
    assert mutation.answer.body != answer.body
    assert mutation.new in mutation.answer.body
    found = _mutated_problems(real, mutation.answer, mutation.index)
    assert any(p.startswith(mutation.path + ":") for p in found), (mutation.location, found)


@pytest.mark.parametrize("answer", SUCCESSES, ids=[a.file for a in SUCCESSES])
def test_a_renamed_property_is_caught(answer: RealAnswer, real: tuple[Schema, dict[str, Any]]) -> None:
    try:
        mutation = mutate_rename(answer, skip=_undeclared(real, answer))
    except LookupError as error:
        pytest.skip(f"nothing to change outside undeclared classes: {error}")
    assert mutation.answer.body != answer.body
    assert mutation.old not in json.dumps(mutation.path)
    found = _mutated_problems(real, mutation.answer, mutation.index)
    assert any(p.startswith(mutation.path + ":") for p in found), (mutation.location, found)


def test_mutations_change_one_value_and_nothing_else() -> None:
    answer = next(a for a in ANSWERS if a.file.startswith("11-"))
    mutation = mutate_type(answer)
    assert mutation.path == "$.createdAt"
    assert mutation.answer.body.replace(f'"{mutation.new}"', mutation.old) == answer.body
    renamed = mutate_rename(answer)
    assert renamed.path == "$.updated_at"
    assert renamed.answer.body.replace('"updated_at"', '"updatedAt"') == answer.body
    xml = next(a for a in ANSWERS if a.file.startswith("13-"))
    typed = mutate_type(xml)
    assert typed.path == "$.createdAt"
    assert typed.answer.body.replace(typed.new, typed.old) == xml.body
    multi = next(a for a in ANSWERS if a.file.startswith("01-"))
    sub = mutate_type(multi)
    assert (sub.index, sub.path) == (2, "$.flavorAssets[0].createdAt")
    assert sub.location == "$[2].flavorAssets[0].createdAt"
