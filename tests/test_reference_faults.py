"""Every fault of the reference platform is observable by a direct API call (one test per fault)."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ksentinel.kaltura import ks as ks_lib
from ksentinel.reference.faults import CATALOGUE
from tests.conftest import Reference, start_reference
from tests.helpers import admin_ks, is_error, raw_call, upload_entry, user_ks

FAULT_CHECKS: dict[str, Callable[[Reference, httpx.Client, bool], None]] = {}


def fault_check(
    name: str,
) -> Callable[
    [Callable[[Reference, httpx.Client, bool], None]], Callable[[Reference, httpx.Client, bool], None]
]:
    """Register a check that must hold with ``faulty=False`` and spot the fault with ``faulty=True``."""

    def register(
        func: Callable[[Reference, httpx.Client, bool], None],
    ) -> Callable[[Reference, httpx.Client, bool], None]:
        FAULT_CHECKS[name] = func
        return func

    return register


@fault_check("schema-drift")
def _schema_drift(ref: Reference, http: httpx.Client, faulty: bool) -> None:
    _, entry = raw_call(
        http,
        ref.url,
        "baseEntry",
        "add",
        ks=admin_ks(ref.p1),
        entry={"objectType": "KalturaBaseEntry", "name": "drift"},
    )
    assert ("updatedAt" not in entry and "updated_at" in entry) is faulty
    assert (not isinstance(entry["createdAt"], int)) is faulty


def _drifted(entry: dict) -> bool:
    return "updatedAt" not in entry and "updated_at" in entry and not isinstance(entry["createdAt"], int)


@fault_check("schema-drift-reads")
def _schema_drift_reads(ref: Reference, http: httpx.Client, faulty: bool) -> None:
    ks = admin_ks(ref.p1)
    new = {"objectType": "KalturaMediaEntry", "name": "drift on reads", "mediaType": 1}
    _, added = raw_call(http, ref.url, "media", "add", ks=ks, entry=new)
    assert not _drifted(added) and isinstance(added["updatedAt"], int), "add answers must stay right"
    _, updated = raw_call(
        http, ref.url, "baseEntry", "update", ks=ks, entryId=added["id"], baseEntry={"name": "renamed"}
    )
    assert not _drifted(updated), "update answers must stay right"
    filters = {"baseEntry": "KalturaBaseEntryFilter", "media": "KalturaMediaEntryFilter"}
    for service, filter_type in filters.items():
        _, got = raw_call(http, ref.url, service, "get", ks=ks, entryId=added["id"])
        assert _drifted(got) is faulty, (service, got)
        query = {"objectType": filter_type, "idEqual": added["id"], "statusEqual": 7}
        _, listed = raw_call(http, ref.url, service, "list", ks=ks, filter=query, nocache=1)
        assert [o["id"] for o in listed["objects"]] == [added["id"]], listed
        assert _drifted(listed["objects"][0]) is faulty, (service, listed)


@fault_check("wrong-error-code")
def _wrong_error_code(ref: Reference, http: httpx.Client, faulty: bool) -> None:
    _, result = raw_call(http, ref.url, "media", "get", ks=admin_ks(ref.p1), entryId="0_missing1")
    assert result["code"] == ("INTERNAL_SERVERL_ERROR" if faulty else "ENTRY_ID_NOT_FOUND")


@fault_check("http-500")
def _http_500(ref: Reference, http: httpx.Client, faulty: bool) -> None:
    statuses = [
        http.get(f"{ref.url}/api_v3/service/system/action/ping", params={"format": 1}).status_code
        for _ in range(10)
    ]
    assert statuses.count(500) == (2 if faulty else 0)


@fault_check("stale-cache")
def _stale_cache(ref: Reference, http: httpx.Client, faulty: bool) -> None:
    ks = admin_ks(ref.p1)
    _, entry = raw_call(
        http, ref.url, "baseEntry", "add", ks=ks, entry={"objectType": "KalturaBaseEntry", "name": "before"}
    )
    raw_call(http, ref.url, "baseEntry", "get", ks=ks, entryId=entry["id"])
    raw_call(
        http,
        ref.url,
        "baseEntry",
        "update",
        ks=ks,
        entryId=entry["id"],
        baseEntry={"objectType": "KalturaBaseEntry", "name": "after"},
    )
    response, fresh = raw_call(http, ref.url, "baseEntry", "get", ks=ks, entryId=entry["id"])
    assert (fresh["name"] == "before") is faulty
    assert response.headers["X-Kaltura"].startswith("cached-dispatcher" if faulty else "cache-key")


@fault_check("cache-leak")
def _cache_leak(ref: Reference, http: httpx.Client, faulty: bool) -> None:
    ks1, ks2 = admin_ks(ref.p1, "same-user"), admin_ks(ref.p2, "same-user")
    _, entry = raw_call(
        http,
        ref.url,
        "baseEntry",
        "add",
        ks=ks1,
        entry={"objectType": "KalturaBaseEntry", "name": "secret of 101"},
    )
    query = {"filter": {"objectType": "KalturaBaseEntryFilter", "statusEqual": 7}}
    _, first = raw_call(http, ref.url, "baseEntry", "list", ks=ks1, **query)
    assert entry["id"] in {o["id"] for o in first["objects"]}
    _, second = raw_call(http, ref.url, "baseEntry", "list", ks=ks2, **query)
    assert (entry["id"] in {o["id"] for o in second.get("objects", [])}) is faulty


@fault_check("cache-user-leak")
def _cache_user_leak(ref: Reference, http: httpx.Client, faulty: bool) -> None:
    alice, bob = user_ks(ref.p1, "alice"), user_ks(ref.p1, "bob")
    _, entry = raw_call(
        http,
        ref.url,
        "baseEntry",
        "add",
        ks=alice,
        entry={"objectType": "KalturaBaseEntry", "name": "alice's"},
    )
    query = {"filter": {"objectType": "KalturaBaseEntryFilter", "statusEqual": 7}}
    _, first = raw_call(http, ref.url, "baseEntry", "list", ks=alice, **query)
    assert entry["id"] in {o["id"] for o in first["objects"]}
    response, second = raw_call(http, ref.url, "baseEntry", "list", ks=bob, **query)
    assert (entry["id"] in {o["id"] for o in second.get("objects", [])}) is faulty
    assert response.headers["X-Kaltura"].startswith("cached-" if faulty else "cache-key")


@fault_check("ks-expiry-ignored")
def _ks_expiry_ignored(ref: Reference, http: httpx.Client, faulty: bool) -> None:
    _, result = raw_call(http, ref.url, "baseEntry", "count", ks=admin_ks(ref.p1, expiry=-60))
    assert is_error(result, "INVALID_KS") is not faulty


@fault_check("ks-signature-ignored")
def _ks_signature_ignored(ref: Reference, http: httpx.Client, faulty: bool) -> None:
    forged = ks_lib.build_v1("an attacker's guess", ref.p1.id, "mallory", 2, 600)
    _, result = raw_call(http, ref.url, "baseEntry", "count", ks=forged)
    assert is_error(result, "INVALID_KS") is not faulty
    sig, info = base64.b64decode(ks_lib.build_v1(ref.p1.admin_secret, ref.p1.id, "user", 0, 600)).split(
        b"|", 1
    )
    escalated = base64.b64encode(sig + b"|" + info.replace(b";0;", b";2;", 1)).decode()
    _, result = raw_call(http, ref.url, "session", "get", ks=escalated)
    assert is_error(result, "INVALID_KS") is not faulty


@fault_check("slow-list")
def _slow_list(ref: Reference, http: httpx.Client, faulty: bool) -> None:
    ks = admin_ks(ref.p1)
    fast = raw_call(http, ref.url, "baseEntry", "get", ks=ks, entryId="0_none0000")[0].elapsed.total_seconds()
    slow = raw_call(http, ref.url, "baseEntry", "list", ks=ks, nocache=1)[0].elapsed.total_seconds()
    assert (slow >= 0.8) is faulty
    assert fast < 0.8


@fault_check("pager-duplicates")
def _pager_duplicates(ref: Reference, http: httpx.Client, faulty: bool) -> None:
    ks = admin_ks(ref.p1)
    for index in range(4):
        raw_call(
            http,
            ref.url,
            "baseEntry",
            "add",
            ks=ks,
            entry={"objectType": "KalturaBaseEntry", "name": f"page {index}", "referenceId": "pager"},
        )
    filt = {"objectType": "KalturaBaseEntryFilter", "statusEqual": 7, "referenceIdEqual": "pager"}
    pages = [
        raw_call(
            http, ref.url, "baseEntry", "list", ks=ks, filter=filt, pager={"pageSize": 2, "pageIndex": i}
        )[1]
        for i in (1, 2)
    ]
    ids = [o["id"] for page in pages for o in page["objects"]]
    assert (len(set(ids)) < len(ids)) is faulty


@fault_check("upload-corrupt")
def _upload_corrupt(ref: Reference, http: httpx.Client, faulty: bool) -> None:
    payload = os.urandom(5000)
    entry = upload_entry(http, ref.url, admin_ks(ref.p1), payload)
    stored = http.get(entry["downloadUrl"]).content
    assert len(stored) == len(payload)
    assert (hashlib.sha256(stored).digest() != hashlib.sha256(payload).digest()) is faulty


def test_every_fault_in_the_catalogue_has_a_check() -> None:
    assert set(FAULT_CHECKS) == set(CATALOGUE)


@pytest.mark.parametrize("fault", sorted(CATALOGUE))
def test_fault_is_observable(fault: str, tmp_path: Path) -> None:
    with start_reference(tmp_path / "faulty", faults=(fault,)) as ref, httpx.Client(timeout=10) as http:
        FAULT_CHECKS[fault](ref, http, True)


@pytest.mark.parametrize("fault", sorted(CATALOGUE))
def test_clean_platform_does_not_show_the_fault(fault: str, fresh_reference: Reference) -> None:
    with httpx.Client(timeout=10) as http:
        FAULT_CHECKS[fault](fresh_reference, http, False)
