"""The reference platform's realism: a lagging search index, asynchronous conversion, redirected downloads.

Each behaviour is shown over loopback HTTP against a platform started with just that behaviour on
(``Realism.off(...)`` plus the one setting), with lags of a few tenths of a second. See
docs/reference-platform.md ("Realism") for what each imitates in kaltura/server.
"""

from __future__ import annotations

import random
import sqlite3
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from ksentinel.errors import KalturaApiError
from ksentinel.kaltura.api import KalturaApi
from ksentinel.reference.realism import Realism
from ksentinel.reference.store import Query, Store
from tests.conftest import Reference, start_reference
from tests.helpers import admin_ks

# KalturaEntryStatus
ERROR_CONVERTING, IMPORT, PRECONVERT, READY, NO_CONTENT = -1, 0, 1, 2, 7
LAG, JITTER = 0.4, 0.5
SLACK = 3.0  # generous: a busy machine answers slowly, the lower bound is the strict one
POLL_LIMIT = 10.0


@pytest.fixture(scope="module")
def sample() -> bytes:
    """The shipped 1 s H.264+AAC sample."""
    return resources.files("ksentinel.flows").joinpath("media/ksentinel-1s.mp4").read_bytes()


def padded(sample: bytes, size: int = 2048) -> bytes:
    """A distinct, still playable copy: the sample plus an MP4 ``free`` box of random bytes."""
    pad = random.randbytes(size)
    return sample + struct.pack(">I", 8 + len(pad)) + b"free" + pad


@pytest.fixture
def platform_with(tmp_path: Path) -> Iterator[Callable[..., Reference]]:
    """``platform_with(realism, **start_reference options)``: a running platform, stopped at teardown."""
    stack: list[Any] = []

    def start(realism: Realism, **options: Any) -> Reference:
        manager = start_reference(tmp_path / f"ref{len(stack)}", realism=realism, **options)
        stack.append(manager)
        return manager.__enter__()

    yield start
    for manager in reversed(stack):
        manager.__exit__(None, None, None)


@pytest.fixture
def clients() -> Iterator[Callable[[Reference], KalturaApi]]:
    made: list[KalturaApi] = []

    def make(ref: Reference) -> KalturaApi:
        client = KalturaApi(ref.url, ks=admin_ks(ref.p1, "realism-admin"))
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def unique() -> str:
    return f"realism-{uuid.uuid4().hex[:12]}"


def by_reference(reference_id: str, **fields: Any) -> dict[str, Any]:
    return {"objectType": "KalturaBaseEntryFilter", "referenceIdEqual": reference_id, **fields}


def poll(check: Callable[[], bool], limit: float = POLL_LIMIT) -> float:
    """Call ``check`` until it holds; returns the monotonic time it first did (fails after ``limit``)."""
    deadline = time.monotonic() + limit
    while True:
        if check():
            return time.monotonic()
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.02)


def upload(api: KalturaApi, data: bytes, filename: str = "clip.mp4") -> dict[str, Any]:
    """uploadToken.add, upload, addFromUploadedFile: the new entry as addFromUploadedFile returned it."""
    token = api.call("uploadToken", "add", uploadToken={"objectType": "KalturaUploadToken"})
    api.upload_file(token["id"], data, filename=filename)
    return api.call(
        "baseEntry",
        "addFromUploadedFile",
        uploadTokenId=token["id"],
        entry={"objectType": "KalturaMediaEntry", "name": "realism clip", "mediaType": 1},
    )


def statuses_until_final(api: KalturaApi, entry_id: str) -> list[int]:
    """The distinct statuses ``get`` shows until the entry leaves PRECONVERT (and IMPORT)."""
    seen: list[int] = []

    def final() -> bool:
        status = int(api.call("baseEntry", "get", entryId=entry_id)["status"])
        if not seen or seen[-1] != status:
            seen.append(status)
        return status not in (IMPORT, PRECONVERT)

    poll(final)
    return seen


# --- search index lag ----------------------------------------------------------------------------------


def test_a_new_entry_is_listed_and_counted_only_after_the_index_lag(platform_with, clients) -> None:
    ref = platform_with(Realism.off(index_lag=LAG, index_lag_jitter=JITTER))
    api = clients(ref)
    reference_id = unique()
    filt = by_reference(reference_id, statusEqual=NO_CONTENT)

    started = time.monotonic()
    mr = api.multirequest()  # one request: the server answers all four at (nearly) the same moment
    added = mr.add(
        "baseEntry",
        "add",
        entry={"objectType": "KalturaBaseEntry", "name": "lag", "referenceId": reference_id},
    )
    mr.add("baseEntry", "get", entryId=added.ref("id"))
    mr.add("baseEntry", "list", filter=filt)
    mr.add("baseEntry", "count", filter=filt)
    entry, got, listed, counted = mr.execute()
    written = time.monotonic()
    assert got["id"] == entry["id"], "get is immediate"
    assert int(listed["totalCount"]) == 0 and not listed.get("objects"), "list saw the entry before the lag"
    assert int(counted) == 0, "count saw the entry before the lag"

    cached_hits: list[bool] = []

    def listed_now() -> bool:  # the same (cacheable) call each time: the index change must refresh it
        response = api.call_raw("baseEntry", "list", filter=filt)
        cached_hits.append(response.cache_hit)
        return [o["id"] for o in response.unwrap().get("objects") or []] == [entry["id"]]

    seen = poll(listed_now)
    assert any(cached_hits), "the polls never met the response cache"
    assert int(api.call("baseEntry", "count", filter=filt)) == 1
    assert seen - started >= LAG * (1 - JITTER), "listed sooner than the shortest lag"
    assert seen - written <= LAG * (1 + JITTER) + SLACK, "listed much later than the longest lag"


def test_updates_and_deletes_reach_list_after_the_lag_while_get_is_immediate(platform_with, clients) -> None:
    ref = platform_with(Realism.off(index_lag=LAG, index_lag_jitter=JITTER))
    api = clients(ref)
    reference_id = unique()
    entry = api.call(
        "baseEntry",
        "add",
        entry={"objectType": "KalturaBaseEntry", "name": "before", "referenceId": reference_id},
    )
    everything = by_reference(reference_id, statusEqual=NO_CONTENT)
    poll(lambda: int(api.call("baseEntry", "count", filter=everything)) == 1)

    renamed = {**everything, "nameEqual": "after"}
    mr = api.multirequest()
    mr.add(
        "baseEntry",
        "update",
        entryId=entry["id"],
        baseEntry={"objectType": "KalturaBaseEntry", "name": "after"},
    )
    mr.add("baseEntry", "get", entryId=entry["id"])
    mr.add("baseEntry", "list", filter=renamed)
    mr.add("baseEntry", "list", filter=everything)
    _, got, by_new_name, by_reference_id = mr.execute()
    assert got["name"] == "after"
    assert int(by_new_name["totalCount"]) == 0, "the index matched the new name before the lag"
    # matched on the old snapshot, but the object itself is the live row (ids from the index, rows from the db)
    assert [o["name"] for o in by_reference_id["objects"]] == ["after"]
    poll(lambda: int(api.call("baseEntry", "count", filter=renamed)) == 1)

    mr = api.multirequest()
    mr.add("baseEntry", "delete", entryId=entry["id"])
    mr.add("baseEntry", "get", entryId=entry["id"])
    mr.add("baseEntry", "list", filter=everything)
    mr.add("baseEntry", "count", filter=everything)
    _, missing, listed, counted = mr.execute()
    assert isinstance(missing, KalturaApiError) and missing.code == "ENTRY_ID_NOT_FOUND"
    # the index still has it: counted, but the live row is gone, so it is not in objects
    assert int(listed["totalCount"]) == 1 and not listed.get("objects")
    assert int(counted) == 1
    poll(lambda: int(api.call("baseEntry", "count", filter=everything)) == 0)
    assert int(api.call("baseEntry", "list", filter=everything)["totalCount"]) == 0


def test_with_realism_off_list_is_immediate(platform_with, clients) -> None:
    api = clients(platform_with(Realism.off()))
    reference_id = unique()
    filt = by_reference(reference_id, statusEqual=NO_CONTENT)
    mr = api.multirequest()
    mr.add(
        "baseEntry",
        "add",
        entry={"objectType": "KalturaBaseEntry", "name": "now", "referenceId": reference_id},
    )
    mr.add("baseEntry", "list", filter=filt)
    mr.add("baseEntry", "count", filter=filt)
    entry, listed, counted = mr.execute()
    assert [o["id"] for o in listed["objects"]] == [entry["id"]]
    assert int(counted) == 1


def test_an_offset_of_max_matches_is_refused(platform_with, clients) -> None:
    api = clients(platform_with(Realism.off()))
    last_allowed = api.call(
        "baseEntry", "list", pager={"objectType": "KalturaFilterPager", "pageSize": 500, "pageIndex": 20}
    )
    assert int(last_allowed["totalCount"]) == 0
    with pytest.raises(KalturaApiError) as refused:
        api.call(
            "baseEntry", "list", pager={"objectType": "KalturaFilterPager", "pageSize": 500, "pageIndex": 21}
        )
    assert refused.value.code == "QUERY_EXCEEDED_MAX_MATCHES_ALLOWED"


def test_the_index_queue_survives_a_restart_and_old_data_is_indexed(tmp_path: Path) -> None:
    store = Store(tmp_path / "data")
    now = int(time.time())
    row = {"partner_id": 101, "status": NO_CONTENT, "type": -1, "created_at": now, "updated_at": now}
    store.insert_entry(row, index_delay=60.0)
    everything = Query("partner_id = ?", (101,))
    assert store.count_entries(everything) == 0 and store.pending_index() == 1
    store.close()

    store = Store(tmp_path / "data")
    assert store.count_entries(everything) == 0, "a pending write was indexed early by the restart"
    assert store.apply_index(now=time.time()) == set()
    assert store.apply_index(now=time.time() + 61) == {101}
    assert store.count_entries(everything) == 1 and store.pending_index() == 0
    store.close()

    # a data folder of a version without the index (nor the convert_to column)
    old = tmp_path / "old"
    old.mkdir()
    db = sqlite3.connect(old / "reference.sqlite3")
    db.execute(
        "CREATE TABLE entries (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, partner_id INTEGER "
        "NOT NULL, user_id TEXT NOT NULL DEFAULT '', creator_id TEXT NOT NULL DEFAULT '', name TEXT NOT NULL "
        "DEFAULT '', description TEXT, tags TEXT, admin_tags TEXT, reference_id TEXT, partner_data TEXT, "
        "partner_sort_value INTEGER, status INTEGER NOT NULL, type INTEGER NOT NULL, media_type INTEGER, "
        "source_type TEXT, moderation_status INTEGER NOT NULL DEFAULT 6, display_in_search INTEGER NOT NULL "
        "DEFAULT 1, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, ready_at REAL, version INTEGER "
        "NOT NULL DEFAULT 0, content_size INTEGER, content_sha256 TEXT, content_name TEXT, extra TEXT NOT NULL "
        "DEFAULT '{}', deleted INTEGER NOT NULL DEFAULT 0)"
    )
    db.execute(
        "INSERT INTO entries (id, partner_id, status, type, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        ("0_oldentry", 101, NO_CONTENT, -1, now, now),
    )
    db.commit()
    db.close()
    store = Store(old)
    rows, total = store.list_entries(everything, 0, 10)
    assert total == 1 and [r["id"] for r in rows] == ["0_oldentry"]
    store.close()


# --- asynchronous conversion ---------------------------------------------------------------------------


def test_a_playable_upload_is_preconvert_then_ready(platform_with, clients, sample) -> None:
    api = clients(platform_with(Realism.off(sniff_media=True), ready_after=0.4))
    entry = upload(api, padded(sample))
    assert int(entry["status"]) == PRECONVERT
    assert statuses_until_final(api, entry["id"])[-1] == READY


def test_an_upload_still_in_progress_is_import_then_preconvert_then_ready(
    platform_with, clients, sample
) -> None:
    api = clients(platform_with(Realism.off(sniff_media=True), ready_after=0.4))
    data = padded(sample)
    entry = api.call(
        "media", "add", entry={"objectType": "KalturaMediaEntry", "name": "import", "mediaType": 1}
    )
    token = api.call("uploadToken", "add", uploadToken={"objectType": "KalturaUploadToken"})
    api.upload_chunk(token["id"], data[:1000], resume=False, final_chunk=False)
    attached = api.call(
        "media",
        "addContent",
        entryId=entry["id"],
        resource={"objectType": "KalturaUploadedFileTokenResource", "token": token["id"]},
    )
    assert int(attached["status"]) == IMPORT
    assert int(api.call("baseEntry", "get", entryId=entry["id"])["status"]) == IMPORT
    api.upload_chunk(token["id"], data[1000:], resume=True, final_chunk=True, resume_at=1000)
    assert statuses_until_final(api, entry["id"]) == [PRECONVERT, READY]


def test_content_that_is_not_media_ends_in_error_converting(platform_with, clients) -> None:
    api = clients(platform_with(Realism.off(sniff_media=True), ready_after=0.4))
    entry = upload(api, random.randbytes(4096))
    assert int(entry["status"]) == PRECONVERT, "the verdict waits for the conversion time"
    assert statuses_until_final(api, entry["id"])[-1] == ERROR_CONVERTING
    failed = api.call(
        "baseEntry", "list", filter={"objectType": "KalturaBaseEntryFilter", "statusEqual": ERROR_CONVERTING}
    )
    assert entry["id"] in [o["id"] for o in failed["objects"]]


def test_without_sniffing_any_content_becomes_ready(platform_with, clients) -> None:
    api = clients(platform_with(Realism.off(), ready_after=0.2))
    entry = upload(api, random.randbytes(4096))
    assert statuses_until_final(api, entry["id"])[-1] == READY


def test_upload_corrupt_is_left_to_the_content_compare(platform_with, clients, sample) -> None:
    """The sniffer judges the upload before the fault damages the stored copy: READY, wrong bytes."""
    ref = platform_with(Realism.off(sniff_media=True), ready_after=0.2, faults=("upload-corrupt",))
    api = clients(ref)
    data = padded(sample)
    entry = upload(api, data)
    assert statuses_until_final(api, entry["id"])[-1] == READY
    stored = httpx.get(entry["downloadUrl"], timeout=10.0)
    assert stored.status_code == 200 and len(stored.content) == len(data) and stored.content != data


def test_the_conversion_status_change_lags_in_list_like_any_write(platform_with, clients, sample) -> None:
    api = clients(
        platform_with(Realism.off(sniff_media=True, index_lag=LAG, index_lag_jitter=JITTER), ready_after=0.2)
    )
    entry = upload(api, padded(sample))
    ready = {"objectType": "KalturaBaseEntryFilter", "idIn": entry["id"], "statusEqual": READY}
    counts_when_ready: list[int] = []

    def got_ready() -> bool:  # get and count in one request: the request that finishes the conversion
        mr = api.multirequest()
        mr.add("baseEntry", "get", entryId=entry["id"])
        mr.add("baseEntry", "count", filter=ready)
        got, counted = mr.execute()
        if int(got["status"]) == READY:
            counts_when_ready.append(int(counted))
        return bool(counts_when_ready)

    poll(got_ready)
    assert counts_when_ready == [0], "the index saw READY as soon as get did"
    poll(lambda: int(api.call("baseEntry", "count", filter=ready)) == 1)


# --- downloads -----------------------------------------------------------------------------------------


def test_download_redirects_to_another_origin_that_serves_the_bytes(platform_with, clients) -> None:
    ref = platform_with(Realism.off(download_redirect=True))
    api = clients(ref)
    data = random.randbytes(5000)
    entry = upload(api, data)
    url = entry["downloadUrl"]
    source = urlsplit(url)
    assert source.hostname == "127.0.0.1"
    with httpx.Client(timeout=10.0, follow_redirects=False) as http:
        first = http.get(url)
        assert first.status_code == 302
        location = urlsplit(first.headers["location"])
        assert (location.hostname, location.port) == ("localhost", source.port)
        assert "/serveFlavor/entryId/" + entry["id"] + "/" in location.path
        assert "ks" not in location.path.lower().split("/") and not location.query
        served = http.get(first.headers["location"])
        assert served.status_code == 200 and served.content == data
        head = http.head(first.headers["location"])
        assert head.status_code == 200 and int(head.headers["content-length"]) == len(data)
        # asked under the other name, the redirect goes back to the address
        back = http.get(url.replace("//127.0.0.1:", "//localhost:", 1))
        assert back.status_code == 302 and urlsplit(back.headers["location"]).hostname == "127.0.0.1"


def test_without_redirect_the_download_url_serves_the_bytes(platform_with, clients) -> None:
    api = clients(platform_with(Realism.off()))
    data = random.randbytes(3000)
    entry = upload(api, data)
    with httpx.Client(timeout=10.0, follow_redirects=False) as http:
        response = http.get(entry["downloadUrl"])
    assert response.status_code == 200 and response.content == data
