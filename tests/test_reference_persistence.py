"""The reference platform keeps its state across restarts, also after a SIGKILL mid-upload."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from ksentinel.kaltura.api import KalturaApi
from ksentinel.reference.process import ReferenceProcess
from tests.conftest import make_partners, partners_env
from tests.helpers import admin_ks

CHUNK = 256 * 1024
# persistence, not realism: random bytes must convert, the download URL must serve at once
PLAIN = ("--realism", "off")


def wait_ready(api: KalturaApi, entry_id: str, bound: float = 20.0) -> dict:
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        entry = api.call("baseEntry", "get", entryId=entry_id)
        if int(entry["status"]) == 2:
            return entry
        time.sleep(0.1)
    raise AssertionError(f"entry {entry_id} never became READY")


def start_partial_chunk(url: str, ks: str, token_id: str, data: bytes) -> socket.socket:
    """Send the headers and half the body of an upload request, then leave it hanging."""
    boundary = "ksentinelboundary"
    params = json.dumps(
        {
            "format": 1,
            "ks": ks,
            "uploadTokenId": token_id,
            "resume": True,
            "resumeAt": 2 * CHUNK,
            "finalChunk": False,
        }
    )
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="json"\r\n\r\n{params}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="fileData"; filename="clip.mp4"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
    head = (
        f"POST /api_v3/service/uploadtoken/action/upload HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock.sendall(head + body[: len(body) // 2])
    return sock


def test_sigkill_mid_upload_then_resume_at(tmp_path: Path) -> None:
    p1, p2 = make_partners()
    env = {"KSENTINEL_REF_PARTNERS": partners_env(p1, p2)}
    payload = os.urandom(4 * CHUNK + 12345)
    data_dir = tmp_path / "data"
    with ReferenceProcess(data_dir, env=env, ready_after=0.2, extra_args=PLAIN) as server:
        api = KalturaApi(server.url, ks=admin_ks(p1), timeout=10)
        token = api.call(
            "uploadToken", "add", uploadToken={"objectType": "KalturaUploadToken", "fileName": "clip.mp4"}
        )
        api.upload_chunk(token["id"], payload[:CHUNK], resume=False, final_chunk=False)
        api.upload_chunk(
            token["id"], payload[CHUNK : 2 * CHUNK], resume=True, final_chunk=False, resume_at=CHUNK
        )
        hanging = start_partial_chunk(server.url, api.ks or "", token["id"], payload[2 * CHUNK : 3 * CHUNK])
        time.sleep(0.2)
        server.kill()
        hanging.close()
        api.close()

    with (
        ReferenceProcess(data_dir, env=env, ready_after=0.2, extra_args=PLAIN) as server,
        KalturaApi(server.url, ks=admin_ks(p1), timeout=10) as api,
    ):
        after = api.call("uploadToken", "get", uploadTokenId=token["id"])
        assert int(after["status"]) == 1 and int(after["uploadedFileSize"]) == 2 * CHUNK
        finished = api.resume_upload(token["id"], payload, chunk_size=CHUNK)
        assert int(finished["status"]) == 2 and int(finished["uploadedFileSize"]) == len(payload)
        entry = api.call(
            "baseEntry",
            "addFromUploadedFile",
            uploadTokenId=token["id"],
            entry={"objectType": "KalturaMediaEntry", "mediaType": 1},
        )
        ready = wait_ready(api, entry["id"])
        content = httpx.get(ready["downloadUrl"], timeout=10).content
        assert hashlib.sha256(content).hexdigest() == hashlib.sha256(payload).hexdigest()


def test_restart_keeps_partners_entries_and_tokens(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"KSENTINEL_REF_PARTNERS": ""}  # no partners in the environment: generated into partners.json
    with ReferenceProcess(data_dir, env=env) as server:
        assert any("partners.json" in line for line in server.banner)
        partners_file = data_dir / "partners.json"
        assert stat.S_IMODE(partners_file.stat().st_mode) == 0o600
        stored = json.loads(partners_file.read_text())["partners"]
        assert {p["id"] for p in stored} == {101, 102}
        assert not any(p["admin_secret"] in "\n".join(server.banner) for p in stored), (
            "secrets must not be printed"
        )
        secret = stored[0]["admin_secret"]
        with KalturaApi(server.url, partner_id=101, timeout=10) as api:
            api = api.with_ks(api.start_session(secret, "restart"))
            entry = api.call("baseEntry", "add", entry={"objectType": "KalturaBaseEntry", "name": "survivor"})
            token = api.call("uploadToken", "add")
            ks = api.ks
        code = server.stop()
        assert code == 0, ("SIGINT must stop the server cleanly", server.banner)

    with (
        ReferenceProcess(data_dir, env=env) as server,
        KalturaApi(server.url, ks=ks, partner_id=101, timeout=10) as api,
    ):
        assert json.loads((data_dir / "partners.json").read_text())["partners"] == stored
        assert api.call("baseEntry", "get", entryId=entry["id"])["name"] == "survivor"
        assert api.call("uploadToken", "get", uploadTokenId=token["id"])["id"] == token["id"]
        assert api.start_session(secret) != ""


def test_ended_session_stays_ended_after_restart(tmp_path: Path) -> None:
    p1, p2 = make_partners()
    env = {"KSENTINEL_REF_PARTNERS": partners_env(p1, p2)}
    ks = admin_ks(p1)
    with ReferenceProcess(tmp_path, env=env) as server, KalturaApi(server.url, ks=ks, timeout=10) as api:
        api.call("session", "end")
    with ReferenceProcess(tmp_path, env=env) as server, KalturaApi(server.url, ks=ks, timeout=10) as api:
        response = api.call_raw("baseEntry", "count")
        assert response.error is not None and response.error.code == "INVALID_KS"
