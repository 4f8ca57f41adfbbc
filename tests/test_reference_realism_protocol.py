"""Realism of the reference platform on the wire: cache markers, the echoed KS, waiting final chunks and
a served schema file (docs/reference-platform.md, "Realism"; kaltura-api-v3.md sections 2, 3, 4, 6, 7).

Each behaviour is checked with its setting on and off, over loopback HTTP.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ksentinel.errors import ConfigError, KalturaApiError
from ksentinel.kaltura import ks as ks_lib
from ksentinel.kaltura.api import KalturaApi
from ksentinel.reference.app import create_app
from ksentinel.reference.platform import Platform, PlatformConfig
from ksentinel.reference.realism import Realism
from ksentinel.reference.server import run_in_thread
from tests.conftest import Reference, make_partners, partners_env, start_reference
from tests.helpers import REAL_SCHEMA_PATH, admin_ks, is_error, raw_call

REAL_SCHEMA = REAL_SCHEMA_PATH
PARTIAL, FULL = 1, 2


def _args(error: dict[str, Any]) -> dict[str, str]:
    args = error.get("args") or {}
    return {a["name"]: a["value"] for a in args} if isinstance(args, list) else dict(args)


def _marker(response: httpx.Response) -> tuple[str, str]:
    """(kind, key) of an ``X-Kaltura`` cache header."""
    parts = response.headers.get("X-Kaltura", "").split(",")
    return parts[0], parts[1] if len(parts) > 1 else ""


@contextlib.contextmanager
def _client(url: str, ks: str) -> Iterator[KalturaApi]:
    api = KalturaApi(url, ks=ks)
    try:
        yield api
    finally:
        api.close()


# --- cache markers -----------------------------------------------------------------------------------


def _hit_kinds(ref: Reference, http: httpx.Client, keys: int) -> dict[str, str]:
    """Miss then hit on ``keys`` distinct uploadToken.get calls; the hit's marker kind per cache key."""
    ks = admin_ks(ref.p1, "markers")
    kinds: dict[str, str] = {}
    for _ in range(keys):
        _, token = raw_call(http, ref.url, "uploadToken", "add", ks=ks)
        assert not is_error(token), token
        miss, _ = raw_call(http, ref.url, "uploadToken", "get", ks=ks, uploadTokenId=token["id"])
        kind, key = _marker(miss)
        assert kind == "cache-key" and key, miss.headers
        for _ in range(2):  # the same key gets the same marker every time
            hit, body = raw_call(http, ref.url, "uploadToken", "get", ks=ks, uploadTokenId=token["id"])
            assert body["id"] == token["id"]
            hit_kind, hit_key = _marker(hit)
            assert hit_key == key and hit.headers["X-Kaltura"] == f"{hit_kind},{key},0"
            assert kinds.setdefault(key, hit_kind) == hit_kind
    return kinds


def test_cache_hits_carry_both_markers_with_realism(tmp_path: Path, http: httpx.Client) -> None:
    with start_reference(tmp_path, realism=Realism()) as ref:
        kinds = _hit_kinds(ref, http, 40)  # a key gets either marker: 40 keys all alike is 2 in 2**40
    assert set(kinds.values()) == {"cached-dispatcher", "cached-with-extra-fields"}, kinds


def test_cache_hits_are_cached_dispatcher_without_the_setting(tmp_path: Path, http: httpx.Client) -> None:
    with start_reference(tmp_path, realism=Realism(cache_extra_fields=False)) as ref:
        kinds = _hit_kinds(ref, http, 16)
    assert set(kinds.values()) == {"cached-dispatcher"}, kinds


# --- INVALID_KS echo ---------------------------------------------------------------------------------


def _refused(ref: Reference) -> list[str]:
    return [
        "this-is-not-a-ks",
        ks_lib.build_v2(ref.p2.admin_secret, ref.p1.id, "forger", 2, 600),  # signed with another secret
        ks_lib.build_v1(ref.p1.user_secret, ref.p1.id, "forger", 0, 600),  # the user secret never signs
        ks_lib.build_v2(ref.p1.admin_secret, 999, "nobody", 2, 600),  # unknown partner
    ]


@pytest.mark.parametrize("fmt", [1, 2])
def test_invalid_ks_echoes_the_refused_ks(tmp_path: Path, http: httpx.Client, fmt: int) -> None:
    with start_reference(tmp_path, realism=Realism.off(echo_invalid_ks=True)) as ref:
        for token in _refused(ref):
            response = http.post(
                f"{ref.url}/api_v3/service/baseentry/action/list", json={"format": fmt, "ks": token}
            )
            if fmt == 1:
                error = response.json()
                assert is_error(error, "INVALID_KS"), error
                assert error["message"] == f'Invalid KS "{token}", Error "-1,INVALID_STR"'
                assert _args(error) == {"KSID": token, "ERR_CODE": "-1", "ERR_DESC": "INVALID_STR"}
            else:
                assert "<code>INVALID_KS</code>" in response.text
                assert f"<name>KSID</name><value>{token}</value>" in response.text


def test_invalid_ks_is_masked_without_the_setting(tmp_path: Path, http: httpx.Client) -> None:
    with start_reference(tmp_path, realism=Realism(echo_invalid_ks=False)) as ref:
        for token in _refused(ref):
            _, error = raw_call(http, ref.url, "baseEntry", "list", ks=token)
            assert is_error(error, "INVALID_KS"), error
            assert token not in error["message"] and _args(error)["KSID"] != token
            assert _args(error)["KSID"].startswith("KS*")


def test_stage_two_failures_still_name_the_failure(tmp_path: Path, http: httpx.Client) -> None:
    with start_reference(tmp_path, realism=Realism()) as ref:
        expired = admin_ks(ref.p1, expiry=-5)
        _, error = raw_call(http, ref.url, "baseEntry", "list", ks=expired)
    assert is_error(error, "INVALID_KS") and _args(error)["KSID"] == "EXPIRED", error


# --- a final chunk before the chunks in front of it ---------------------------------------------------


def _send_in_thread(url: str, ks: str, token_id: str, data: bytes, offset: int) -> dict[str, Any]:
    """Send a final chunk from a thread; the dict gets ``token``/``error`` and ``done`` (monotonic)."""
    outcome: dict[str, Any] = {}

    def send() -> None:
        with _client(url, ks) as api:
            try:
                outcome["token"] = api.upload_chunk(
                    token_id, data, resume=True, final_chunk=True, resume_at=offset
                )
            except KalturaApiError as exc:
                outcome["error"] = exc
        outcome["done"] = time.monotonic()

    outcome["thread"] = threading.Thread(target=send, daemon=True)
    outcome["thread"].start()
    return outcome


def test_final_chunk_waits_for_the_middle_chunk(tmp_path: Path) -> None:
    data = os.urandom(3000)
    with start_reference(tmp_path, realism=Realism()) as ref:  # final_chunk_wait: 45 s
        ks = admin_ks(ref.p1, "parallel")
        with _client(ref.url, ks) as api:
            tid = api.call("uploadToken", "add", uploadToken={"objectType": "KalturaUploadToken"})["id"]
            assert api.upload_chunk(tid, data[:1000], resume=False, final_chunk=False)["status"] == PARTIAL
            final = _send_in_thread(ref.url, ks, tid, data[2000:], 2000)
            time.sleep(0.3)
            middle_sent = time.monotonic()
            middle = api.upload_chunk(tid, data[1000:2000], resume=True, final_chunk=False, resume_at=1000)
            final["thread"].join(30)
            assert not final["thread"].is_alive()
            assert "error" not in final, final.get("error")
            assert final["done"] >= middle_sent  # it answered only once the middle chunk was there
            assert middle["status"] == PARTIAL and middle["uploadedFileSize"] == "3000"
            assert final["token"]["status"] == FULL and final["token"]["uploadedFileSize"] == "3000"
            got = api.call("uploadToken", "get", uploadTokenId=tid)
            assert got["status"] == FULL and got["uploadedFileSize"] == "3000"
        assert ref.server.platform.store.token_path(tid).read_bytes() == data


def test_final_chunk_gives_up_after_the_bound(tmp_path: Path) -> None:
    bound = 3.0
    data = os.urandom(3000)
    with start_reference(tmp_path, realism=Realism.off(final_chunk_wait=bound)) as ref:
        ks = admin_ks(ref.p1, "parallel")
        with _client(ref.url, ks) as api:
            tid = api.call("uploadToken", "add")["id"]
            api.upload_chunk(tid, data[:1000], resume=False, final_chunk=False)
            sent = time.monotonic()
            final = _send_in_thread(ref.url, ks, tid, data[2000:], 2000)
            time.sleep(0.2)
            # the waiting chunk does not hold the server: other calls are answered meanwhile
            assert api.call("system", "ping") is True
            assert api.call("uploadToken", "get", uploadTokenId=tid, nocache=1)["uploadedFileSize"] == "1000"
            assert final["thread"].is_alive()
            final["thread"].join(bound + 30)
            assert not final["thread"].is_alive()
        error = final.get("error")
        assert error is not None and error.code == "UPLOAD_TOKEN_CANNOT_MATCH_EXPECTED_SIZE", final
        assert final["done"] - sent >= bound - 0.1


def test_final_chunk_fails_at_once_without_the_wait(tmp_path: Path) -> None:
    data = os.urandom(3000)
    with start_reference(tmp_path, realism=Realism(final_chunk_wait=0.0)) as ref:
        with _client(ref.url, admin_ks(ref.p1, "parallel")) as api:
            tid = api.call("uploadToken", "add")["id"]
            api.upload_chunk(tid, data[:1000], resume=False, final_chunk=False)
            with pytest.raises(KalturaApiError) as raised:
                api.upload_chunk(tid, data[2000:], resume=True, final_chunk=True, resume_at=2000)
            assert raised.value.code == "UPLOAD_TOKEN_CANNOT_MATCH_EXPECTED_SIZE"
            # the parked final chunk is merged when the middle one comes; a retried final then completes
            api.upload_chunk(tid, data[1000:2000], resume=True, final_chunk=False, resume_at=1000)
            done = api.upload_chunk(tid, data[2000:], resume=True, final_chunk=True, resume_at=2000)
            assert done["status"] == FULL and done["uploadedFileSize"] == "3000"
        assert ref.server.platform.store.token_path(tid).read_bytes() == data


# --- serve --schema FILE -----------------------------------------------------------------------------


@contextlib.contextmanager
def _served(tmp: Path, schema_file: Path | None) -> Iterator[Reference]:
    p1, p2 = make_partners()
    config = PlatformConfig(data_dir=tmp, ready_after=0.2, realism=Realism(), schema_file=schema_file)
    with run_in_thread(config, environ={"KSENTINEL_REF_PARTNERS": partners_env(p1, p2)}) as server:
        yield Reference(server.url, p1, p2, server, tmp)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reference]:
    if not REAL_SCHEMA.exists():
        pytest.skip(f"{REAL_SCHEMA} is not here")
    with _served(tmp_path_factory.mktemp("served"), REAL_SCHEMA) as ref:
        yield ref


def test_api_schema_serves_the_file(served: Reference, http: httpx.Client) -> None:
    response = http.get(f"{served.url}/api_v3/api_schema.php")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/xml")
    assert response.content == REAL_SCHEMA.read_bytes()


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("flavorAsset/action/list", "flavorasset->list"),
        ("category/action/list", "category->list"),
        ("flavorasset/action/LIST", "flavorasset->list"),
        ("metadata_metadata/action/list", "metadata_metadata->list"),
        ("baseentry/action/getContextData", "baseentry->getContextData"),
    ],
)
def test_actions_of_the_file_the_reference_lacks_are_forbidden(
    served: Reference, http: httpx.Client, path: str, label: str
) -> None:
    response = http.post(f"{served.url}/api_v3/service/{path}", json={"format": 1, "ks": admin_ks(served.p1)})
    error = response.json()
    assert is_error(error, "SERVICE_FORBIDDEN"), error
    assert error["message"] == f"The access to service [{label}] is forbidden"
    assert _args(error) == {"SERVICE": label}
    assert response.headers["X-Kaltura"] == "error-SERVICE_FORBIDDEN"


def test_unknown_calls_and_bad_ks_keep_their_errors_with_a_file(
    served: Reference, http: httpx.Client
) -> None:
    ks = admin_ks(served.p1)
    _, error = raw_call(http, served.url, "flavorAsset", "noSuchAction", ks=ks)
    assert is_error(error, "ACTION_DOES_NOT_EXISTS") and "flavorasset" in error["message"], error
    _, error = raw_call(http, served.url, "baseEntry", "noSuchAction", ks=ks)
    assert is_error(error, "ACTION_DOES_NOT_EXISTS"), error
    _, error = raw_call(http, served.url, "noSuchService", "list", ks=ks)
    assert is_error(error, "SERVICE_DOES_NOT_EXISTS"), error
    forged = ks_lib.build_v2(served.p2.admin_secret, served.p1.id, "x", 2, 600)
    _, error = raw_call(http, served.url, "flavorAsset", "list", ks=forged)
    assert is_error(error, "INVALID_KS") and _args(error)["KSID"] == forged, error


def test_implemented_actions_still_work_with_a_file(served: Reference, http: httpx.Client) -> None:
    ks = admin_ks(served.p1)
    _, listed = raw_call(http, served.url, "baseEntry", "list", ks=ks)
    assert listed["objectType"] == "KalturaBaseEntryListResponse" and listed["totalCount"] >= 0, listed
    results = http.post(
        f"{served.url}/api_v3/service/multirequest",
        json={
            "format": 1,
            "ks": ks,
            "1": {"service": "flavorAsset", "action": "list"},
            "2": {"service": "system", "action": "ping"},
        },
    ).json()
    assert is_error(results[0], "SERVICE_FORBIDDEN") and results[1] is True, results


def test_without_a_file_unimplemented_services_do_not_exist(tmp_path: Path, http: httpx.Client) -> None:
    with start_reference(tmp_path) as ref:
        _, error = raw_call(http, ref.url, "flavorAsset", "list", ks=admin_ks(ref.p1))
        schema = http.get(f"{ref.url}/api_v3/api_schema.php").content
    assert is_error(error, "SERVICE_DOES_NOT_EXISTS"), error
    assert b'<service id="flavorasset"' not in schema and b'<service id="baseentry"' in schema


@pytest.mark.parametrize("content", [None, b"<html><body>not a schema</body></html>", b"<xml><services>"])
def test_an_unusable_schema_file_is_a_config_error(tmp_path: Path, content: bytes | None) -> None:
    schema_file = tmp_path / "schema.xml"
    if content is not None:
        schema_file.write_bytes(content)
    p1, p2 = make_partners()
    config = PlatformConfig(data_dir=tmp_path / "data", schema_file=schema_file)
    platform = Platform.open(config, {"KSENTINEL_REF_PARTNERS": partners_env(p1, p2)})
    try:
        with pytest.raises(ConfigError) as raised:
            create_app(platform)
    finally:
        platform.close()
    message = str(raised.value)
    assert str(schema_file) in message and "\n" not in message
