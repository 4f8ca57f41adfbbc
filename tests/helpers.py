"""Small helpers shared by the tests: raw wire calls, KS, target environments, system programs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from ksentinel.kaltura import ks as ks_lib


def raw_call(
    http: httpx.Client, url: str, service: str, action: str, **params: Any
) -> tuple[httpx.Response, Any]:
    """POST a JSON (format=1) call; returns the response and its decoded body (None if not JSON)."""
    body = {"format": 1, **params}
    response = http.post(f"{url}/api_v3/service/{service}/action/{action}", json=body)
    try:
        decoded = response.json()
    except (json.JSONDecodeError, ValueError):
        decoded = None
    return response, decoded


def admin_ks(
    partner: Any, user: str = "admin", *, version: int = 2, expiry: int = 3600, privileges: str = ""
) -> str:
    return ks_lib.build(partner.admin_secret, partner.id, user, 2, expiry, privileges, version=version)


def user_ks(partner: Any, user: str = "viewer", *, expiry: int = 3600, privileges: str = "") -> str:
    return ks_lib.build(partner.admin_secret, partner.id, user, 0, expiry, privileges)


def is_error(decoded: Any, code: str | None = None) -> bool:
    return (
        isinstance(decoded, dict)
        and decoded.get("objectType") == "KalturaAPIException"
        and (code is None or decoded.get("code") == code)
    )


def upload_entry(
    http: httpx.Client, url: str, ks: str, data: bytes, *, name: str = "clip", filename: str = "clip.mp4"
) -> dict[str, Any]:
    """token add -> upload -> addFromUploadedFile over raw HTTP; returns the new entry."""
    _, token = raw_call(
        http, url, "uploadToken", "add", ks=ks, uploadToken={"objectType": "KalturaUploadToken"}
    )
    assert not is_error(token), token
    response = http.post(
        f"{url}/api_v3/service/uploadtoken/action/upload",
        data={"json": json.dumps({"format": 1, "ks": ks, "uploadTokenId": token["id"]})},
        files={"fileData": (filename, data, "application/octet-stream")},
    )
    assert response.json()["status"] == 2, response.text
    _, entry = raw_call(
        http,
        url,
        "baseEntry",
        "addFromUploadedFile",
        ks=ks,
        uploadTokenId=token["id"],
        entry={"objectType": "KalturaMediaEntry", "name": name, "mediaType": 1, "tags": "ksentinel-test"},
    )
    assert not is_error(entry), entry
    return entry


def system_binary(name: str, package: str) -> str:
    """Path of a system program the test needs; skip without it, fail if KSENTINEL_REQUIRE_SYSTEM_DEPS=1.

    ``.ci/run`` installs the packages of ``.ci/system-packages`` and sets that variable, so in CI a
    missing program is a failure, never a silent skip.
    """
    import os
    import shutil
    from pathlib import Path

    import pytest

    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None)
    if path:
        return path
    reason = f"{name} not found (apt-get install -y {package})"
    if os.environ.get("KSENTINEL_REQUIRE_SYSTEM_DEPS") == "1":
        pytest.fail(f"{reason}; KSENTINEL_REQUIRE_SYSTEM_DEPS=1 requires it")
    pytest.skip(reason)


def target_env(ref: Any, *, admin_secret: str | None = None) -> dict[str, str]:
    return {
        "KSENTINEL_URL": ref.url,
        "KSENTINEL_PARTNER_ID": str(ref.p1.id),
        "KSENTINEL_ADMIN_SECRET": admin_secret or ref.p1.admin_secret,
        "KSENTINEL_PEER_PARTNER_ID": str(ref.p2.id),
        "KSENTINEL_PEER_ADMIN_SECRET": ref.p2.admin_secret,
    }


#: The real Kaltura API schema the tests read (never copied into the project): beside the repository.
REAL_SCHEMA_PATH = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "kaltura-ovp-api-schema-22.15.0.xml"
)


def real_schema_path() -> Path:
    """The real 22.15.0 schema (``$KSENTINEL_KALTURA_SCHEMA`` or ``shared/data/`` beside the repository);
    the calling test is skipped, with the reason, where it is absent."""
    path = Path(os.environ.get("KSENTINEL_KALTURA_SCHEMA") or REAL_SCHEMA_PATH)
    if not path.is_file():
        pytest.skip(f"real Kaltura schema not found at {path} (set KSENTINEL_KALTURA_SCHEMA)")
    return path
