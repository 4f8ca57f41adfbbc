"""The official Python client (KalturaApiClient from PyPI, unchanged) against ksentinel serve."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import httpx
import pytest
from KalturaClient import KalturaClient, KalturaConfiguration
from KalturaClient.exceptions import KalturaException
from KalturaClient.Plugins.Core import (
    KalturaBaseEntryFilter,
    KalturaEntryStatus,
    KalturaFilterPager,
    KalturaMediaEntry,
    KalturaMediaType,
    KalturaSessionType,
    KalturaUploadToken,
)

from tests.conftest import Reference


def official_client(url: str) -> KalturaClient:
    config = KalturaConfiguration()
    config.serviceUrl = url
    config.requestTimeout = 30
    return KalturaClient(config)


def test_official_client_upload_list_delete_flow(reference: Reference, tmp_path: Path) -> None:
    client = official_client(reference.url)
    ks = client.session.start(
        reference.p1.admin_secret, "official", KalturaSessionType.ADMIN, reference.p1.id
    )
    client.setKs(ks)
    token = client.uploadToken.add(KalturaUploadToken())
    assert token.status.getValue() == 0
    payload = os.urandom(300_000)
    path = tmp_path / "clip.mp4"
    path.write_bytes(payload)
    with path.open("rb") as handle:
        token = client.uploadToken.upload(token.id, handle)
    assert token.status.getValue() == 2 and int(token.uploadedFileSize) == len(payload)
    entry = KalturaMediaEntry()
    entry.name = "official client flow"
    entry.mediaType = KalturaMediaType.VIDEO
    created = client.baseEntry.addFromUploadedFile(entry, token.id)
    assert created.id.startswith("0_") and len(created.id) == 10

    ready_filter = KalturaBaseEntryFilter()
    ready_filter.statusEqual = KalturaEntryStatus.READY
    deadline = time.monotonic() + 15
    listed = False
    while time.monotonic() < deadline and not listed:
        result = client.baseEntry.list(ready_filter, KalturaFilterPager(pageSize=500))
        listed = any(item.id == created.id for item in result.objects)
        if not listed:
            time.sleep(0.1)
    assert listed, "the uploaded entry never became READY in baseEntry.list"

    fetched = client.media.get(created.id)
    assert fetched.status.getValue() == "2"
    content = httpx.get(fetched.downloadUrl, timeout=10).content
    assert hashlib.sha256(content).hexdigest() == hashlib.sha256(payload).hexdigest()

    client.media.delete(created.id)
    with pytest.raises(KalturaException) as err:
        client.media.get(created.id)
    assert err.value.code == "ENTRY_ID_NOT_FOUND"


def test_official_client_multirequest_with_back_references(reference: Reference) -> None:
    client = official_client(reference.url)
    client.setKs(
        client.session.start(reference.p1.admin_secret, "mr", KalturaSessionType.ADMIN, reference.p1.id)
    )
    client.startMultiRequest()
    token = client.uploadToken.add(KalturaUploadToken(fileName="a.mp4"))
    client.uploadToken.get(token.id)
    client.media.get("0_nothere1")
    client.uploadToken.delete(token.id)
    results = client.doMultiRequest()
    assert len(results) == 4
    added, fetched, missing, deleted = results
    assert fetched.id == added.id and fetched.fileName == "a.mp4"
    assert isinstance(missing, KalturaException) and missing.code == "ENTRY_ID_NOT_FOUND"
    assert deleted in (None, "")  # a void sub-result is an empty <item>; the client gives ""
    with pytest.raises(KalturaException) as err:
        client.uploadToken.get(added.id)
    assert err.value.code == "UPLOAD_TOKEN_NOT_FOUND"


def test_official_client_user_session_with_user_secret(reference: Reference) -> None:
    client = official_client(reference.url)
    ks = client.session.start(reference.p1.user_secret, "someone", KalturaSessionType.USER, reference.p1.id)
    client.setKs(ks)
    assert client.system.ping() is True
    with pytest.raises(KalturaException) as err:
        client.session.get()
    assert err.value.code == "SERVICE_FORBIDDEN"
    with pytest.raises(KalturaException) as err:
        client.session.start(reference.p1.user_secret, "x", KalturaSessionType.ADMIN, reference.p1.id)
    assert err.value.code == "START_SESSION_ERROR"


@pytest.mark.slow
def test_the_examples_official_client_flow_passes_on_the_realistic_platform() -> None:
    """examples/official_client_flow.py starts ``ksentinel serve`` as a user would (realistic by default):
    the official client's upload converts, the list lags, the download redirects to another host."""
    import subprocess
    import sys

    example = Path(__file__).resolve().parents[1] / "examples" / "official_client_flow.py"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KSENTINEL_")}
    proc = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verdict: PASSED" in proc.stdout
    assert "after 1 redirect(s) to localhost" in proc.stdout, proc.stdout
    assert "[baseEntry.list] PASSED" in proc.stdout
