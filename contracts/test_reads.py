"""Reads of an entry this run created answer in the declared result type.

The fuzzer (``test_schema.py``) judges every answer against its declared result, but a generated
``get`` names no existing entry and a generated ``list`` filter rarely matches one, so a drift that
shows only when a read returns an entry would pass it. This check creates one media entry (tagged,
deleted at the end), reads it back with ``baseEntry.get``/``list`` and ``media.get``/``list``, and
judges each answer by the fuzzer's own rule, ``response_schema_conformance``, against the target's
own schema (the suite's converted, scoped document): no stricter than the fuzzed answers.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ksentinel.errors import FlowFailure, KalturaApiError, TargetError
from ksentinel.flows import FlowContext
from ksentinel.flows.core import TAG
from ksentinel.flows.indexing import listed_ids, wait_listed
from ksentinel.kaltura.api import ApiResponse, KalturaApi
from ksentinel.pytest_plugin import is_production
from ksentinel.schema import answers as response_schema

RULE = "response_schema_conformance"
FOUND_RULE = "reads.created_entry_found"
READS = (("baseEntry", "get"), ("baseEntry", "list"), ("media", "get"), ("media", "list"))
FILTERS = {"baseEntry": "KalturaBaseEntryFilter", "media": "KalturaMediaEntryFilter"}
NO_CONTENT, VIDEO = 7, 1
MAX_BODY = 2000


@pytest.fixture(scope="module")
def created_entry(
    kaltura_api: KalturaApi, ksentinel_run_id: str, ksentinel_target
) -> Iterator[tuple[dict[str, Any], float]]:
    """A media entry without content (NO_CONTENT), and the ``time.monotonic()`` it was written at."""
    if is_production(ksentinel_target):
        pytest.skip("not run on a production target: it creates an entry (reads only there)")
    entry = kaltura_api.call(
        "media",
        "add",
        entry={
            "objectType": "KalturaMediaEntry",
            "name": "ksentinel reads",
            "mediaType": VIDEO,
            "tags": f"{TAG},{TAG}-{ksentinel_run_id}-reads",
        },
    )
    try:
        yield entry, time.monotonic()
    finally:
        with contextlib.suppress(KalturaApiError, TargetError):
            kaltura_api.call("baseEntry", "delete", entryId=entry["id"])


def _operation(document: dict[str, Any], subject: str) -> dict[str, Any] | None:
    for item in (document.get("paths") or {}).values():
        operation = item.get("post") if isinstance(item, dict) else None
        if isinstance(operation, dict) and operation.get("operationId") == subject:
            return operation
    return None


def _exchange(api: KalturaApi, service: str, action: str, params: dict[str, Any], response: ApiResponse):
    text = response.body.decode("utf-8", "replace")
    request = {"method": "POST", "url": api.url(service, action), "body": json.dumps(params)[:MAX_BODY]}
    answer = {
        "status": response.status,
        "content_type": response.headers.get("content-type", ""),
        "body": text[:MAX_BODY],
    }
    return request, answer


@pytest.mark.parametrize(
    ("service", "action"),
    [pytest.param(s, a, id=f"{s}.{a}", marks=pytest.mark.ksentinel("action", f"{s}.{a}")) for s, a in READS],
)
def test_read_of_a_created_entry_matches_the_declared_result(
    service: str,
    action: str,
    created_entry: tuple[dict[str, Any], float],
    kaltura_api: KalturaApi,
    ksentinel_fuzzer,
    ksentinel_sessions,
    ksentinel_profile,
    ksentinel_record,
) -> None:
    subject = f"{service}.{action}"
    document = ksentinel_fuzzer.schema.raw_schema
    operation = _operation(document, subject)
    if operation is None:
        pytest.skip(f"{subject} is outside the contract scope")
    declared = response_schema.result_schema(operation)
    if declared is None:
        pytest.skip(f"the schema declares no JSON result for {subject}")
    entry, written = created_entry
    entry_id = entry["id"]
    if action == "get":
        params: dict[str, Any] = {"entryId": entry_id, "format": 1}
        response = kaltura_api.call_raw(service, action, **params)
    else:
        params = {
            "filter": {"objectType": FILTERS[service], "idEqual": entry_id, "statusEqual": NO_CONTENT},
            "format": 1,
            "nocache": 1,  # a cached answer from before the write must not keep us waiting
        }
        # list reads a search index that lags behind writes: wait (bounded) until the entry shows
        ctx = FlowContext(kaltura_api, ksentinel_sessions, options=ksentinel_profile.flow_options)
        try:
            with ctx.step(FOUND_RULE):
                response = wait_listed(
                    ctx,
                    lambda: kaltura_api.call_raw(service, action, **params),
                    lambda answer: not answer.ok or entry_id in listed_ids(answer.result),
                    what=f"entry {entry_id} not listed by {subject}",
                    since=written,
                )
        except FlowFailure as exc:
            ksentinel_record(rule=FOUND_RULE)
            pytest.fail(f"{FOUND_RULE}: {exc.reason}", pytrace=False)
    request, answer = _exchange(kaltura_api, service, action, params, response)
    if not response.ok:
        ksentinel_record(rule=FOUND_RULE, request=request, response=answer)
        error = response.error
        pytest.fail(
            f"{FOUND_RULE}: {subject} of the entry this run created answered "
            f"{getattr(error, 'code', None) or f'HTTP {response.status}'}: {error}",
            pytrace=False,
        )
    components = (document.get("components") or {}).get("schemas") or {}
    found = response_schema.problems(json.loads(response.body), declared, components)
    if found:
        ksentinel_record(rule=RULE, request=request, response=answer)
        shown = "; ".join(found[:2])
        more = f" (and {len(found) - 2} more)" if len(found) > 2 else ""
        pytest.fail(f"{RULE}: {subject} result {shown}{more}", pytrace=False)
