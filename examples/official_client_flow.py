"""The official Kaltura Python client (PyPI ``KalturaApiClient``) against the ksentinel reference platform.

Starts ``ksentinel serve`` in a temporary data dir with freshly generated partner secrets (passed in
``KSENTINEL_REF_PARTNERS``, never printed), then runs one upload flow with ``KalturaClient``:

    session.start (ADMIN) -> uploadToken.add -> uploadToken.upload of a 1 MB file in 4 chunks
    -> baseEntry.addFromUploadedFile -> baseEntry.list (statusEqual=READY) until the entry shows
    -> download of its downloadUrl, sha256 compared -> media.delete -> media.get fails ENTRY_ID_NOT_FOUND

The platform is the realistic one (the default of ``ksentinel serve``): the upload is converted
asynchronously, so the file is real media (ksentinel's 1-second sample, padded to 1 MB with an MP4
``free`` box); lists lag behind writes; the download URL redirects to another host.

One line per step with its duration, then a verdict. Exit status: 0 passed, 1 a step failed, 2 the
platform could not start, 130 interrupted. The platform is stopped on every exit, Ctrl-C included.

    .venv/bin/python examples/official_client_flow.py
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.resources
import io
import os
import secrets
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import requests
from KalturaClient import KalturaClient, KalturaConfiguration
from KalturaClient.exceptions import KalturaClientException, KalturaException
from KalturaClient.Plugins.Core import (
    KalturaBaseEntryFilter,
    KalturaEntryStatus,
    KalturaFilterPager,
    KalturaMediaEntry,
    KalturaMediaType,
    KalturaSessionType,
    KalturaUploadToken,
)

from ksentinel.errors import TargetError
from ksentinel.kaltura.redact import redact, register_secret
from ksentinel.reference.process import ReferenceProcess

PARTNER_ID = 101
FILE_SIZE = 1024 * 1024
CHUNKS = 4
FILE_NAME = "ksentinel-demo.mp4"
TOKEN_PARTIAL, TOKEN_FULL = 1, 2  # KalturaUploadTokenStatus
EXIT_OK, EXIT_FAILED, EXIT_NO_PLATFORM, EXIT_INTERRUPTED = 0, 1, 2, 130

# what a step may fail with: reported in one line, no traceback
EXPECTED_ERRORS = (
    KalturaException,
    KalturaClientException,
    requests.RequestException,
    httpx.HTTPError,
    OSError,
    AssertionError,
)

T = TypeVar("T")


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def describe(exc: BaseException) -> str:
    if isinstance(exc, KalturaException | KalturaClientException):
        text = f"{exc.code}: {exc.message}"
    elif isinstance(exc, AssertionError):
        text = str(exc) or "check failed"
    else:
        text = f"{exc.__class__.__name__}: {exc}"
    return redact(" ".join(str(text).split()))


class StepFailed(Exception):
    """A step failed; already reported."""


class Steps:
    """Runs named steps, printing ``[name] PASSED 0.012s  detail`` or ``[name] FAILED ...``."""

    def __init__(self) -> None:
        self.passed = 0
        self.started = time.perf_counter()

    def run(self, name: str, action: Callable[[], tuple[T, str]]) -> T:
        started = time.perf_counter()
        try:
            value, detail = action()
        except EXPECTED_ERRORS as exc:
            say(f"[{name}] FAILED {time.perf_counter() - started:.3f}s  {describe(exc)}")
            raise StepFailed(name) from None
        say(f"[{name}] PASSED {time.perf_counter() - started:.3f}s  {detail}".rstrip())
        self.passed += 1
        return value


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def drain(stream: Any) -> None:
    """Read the platform's output so that a full pipe never blocks it."""
    try:
        for _ in stream:
            pass
    except (ValueError, OSError):
        return  # closed while stopping


def official_client(url: str) -> KalturaClient:
    config = KalturaConfiguration()
    config.serviceUrl = url
    config.requestTimeout = 30
    return KalturaClient(config)


def playable_media(size: int) -> bytes:
    """ksentinel's 1-second sample video, padded to ``size`` bytes with an MP4 ``free`` box."""
    sample = importlib.resources.files("ksentinel.flows").joinpath("media/ksentinel-1s.mp4").read_bytes()
    pad = os.urandom(max(0, size - len(sample) - 8))
    return sample + struct.pack(">I", 8 + len(pad)) + b"free" + pad


def flow(steps: Steps, url: str, admin_secret: str, workdir: Path, list_timeout: float) -> None:
    client = official_client(url)
    payload = playable_media(FILE_SIZE)
    source = workdir / FILE_NAME
    source.write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()

    def start_session() -> tuple[str, str]:
        ks = client.session.start(admin_secret, "ksentinel-demo", KalturaSessionType.ADMIN, PARTNER_ID)
        check(isinstance(ks, str) and len(ks) > 20, f"session.start returned {type(ks).__name__}")
        register_secret(ks)
        client.setKs(ks)
        return ks, f"ADMIN session for partner {PARTNER_ID}"

    steps.run("session.start", start_session)

    def add_token() -> tuple[str, str]:
        token = client.uploadToken.add(KalturaUploadToken(fileName=FILE_NAME, fileSize=FILE_SIZE))
        check(token.status.getValue() == 0, f"new token has status {token.status.getValue()}, not PENDING")
        return token.id, f"token {token.id}"

    token_id = steps.run("uploadToken.add", add_token)

    def upload_chunk(index: int, data: bytes) -> tuple[None, str]:
        offset = index * chunk_size
        final = index == CHUNKS - 1
        part = io.BytesIO(data)
        part.name = FILE_NAME  # the client sends a file part only for objects with a name
        token = client.uploadToken.upload(
            token_id, part, resume=index > 0, finalChunk=final, resumeAt=offset if index > 0 else -1
        )
        size = int(token.uploadedFileSize or 0)
        status = token.status.getValue()
        check(size == offset + len(data), f"uploadedFileSize {size}, expected {offset + len(data)}")
        expected = TOKEN_FULL if final else TOKEN_PARTIAL
        check(status == expected, f"token status {status}, expected {expected}")
        return None, f"{index + 1}/{CHUNKS} {len(data)} bytes at {offset}, token status {status}"

    chunk_size = FILE_SIZE // CHUNKS
    with source.open("rb") as handle:
        for index in range(CHUNKS):
            data = handle.read(chunk_size if index < CHUNKS - 1 else FILE_SIZE - index * chunk_size)
            steps.run("upload.chunk", functools.partial(upload_chunk, index, data))

    def add_entry() -> tuple[str, str]:
        entry = KalturaMediaEntry()
        entry.name = "ksentinel official client demo"
        entry.mediaType = KalturaMediaType.VIDEO
        created = client.baseEntry.addFromUploadedFile(entry, token_id)
        check(bool(created.id), "no entry id")
        return created.id, f"entry {created.id}, status {created.status.getValue()}"

    entry_id = steps.run("baseEntry.addFromUploadedFile", add_entry)

    def wait_ready() -> tuple[Any, str]:
        ready = KalturaBaseEntryFilter()
        ready.statusEqual = KalturaEntryStatus.READY
        deadline = time.monotonic() + list_timeout
        polls = 0
        while True:
            polls += 1
            page = client.baseEntry.list(ready, KalturaFilterPager(pageSize=500))
            found = next((item for item in page.objects if item.id == entry_id), None)
            if found is not None:
                return found, f"READY after {polls} list call(s)"
            check(time.monotonic() < deadline, f"not READY in baseEntry.list after {list_timeout:g}s")
            time.sleep(0.2)

    listed = steps.run("baseEntry.list", wait_ready)

    def download() -> tuple[None, str]:
        check(bool(listed.downloadUrl), "the entry has no downloadUrl")
        with httpx.Client(follow_redirects=True, max_redirects=5, timeout=30) as http:
            response = http.get(listed.downloadUrl)
        check(response.status_code == 200, f"HTTP {response.status_code} for the downloadUrl")
        got = hashlib.sha256(response.content).hexdigest()
        check(got == digest, f"sha256 {got[:16]}... differs from the uploaded {digest[:16]}...")
        hops = (
            f" after {len(response.history)} redirect(s) to {response.url.host}" if response.history else ""
        )
        return None, f"{len(response.content)} bytes{hops}, sha256 {digest[:16]}... matches"

    steps.run("download", download)

    def delete() -> tuple[None, str]:
        client.media.delete(entry_id)
        return None, f"entry {entry_id}"

    steps.run("media.delete", delete)

    def get_deleted() -> tuple[None, str]:
        try:
            client.media.get(entry_id)
        except KalturaException as exc:
            check(exc.code == "ENTRY_ID_NOT_FOUND", f"expected ENTRY_ID_NOT_FOUND, got {exc.code}")
            return None, "KalturaException ENTRY_ID_NOT_FOUND as expected"
        raise AssertionError("media.get of the deleted entry succeeded")

    steps.run("media.get", get_deleted)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run an upload/list/download/delete flow with the official Kaltura Python client "
        "against a freshly started ksentinel reference platform.",
        epilog="Exit status: 0 passed, 1 a step failed, 2 the platform could not start, 130 interrupted.",
    )
    parser.add_argument(
        "--ready-after",
        type=float,
        default=2.0,
        help="seconds the platform keeps an uploaded entry converting before READY (default: 2.0)",
    )
    parser.add_argument(
        "--list-timeout",
        type=float,
        default=20.0,
        help="how long to poll baseEntry.list for the READY entry (default: 20)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    admin_secret, user_secret = secrets.token_hex(16), secrets.token_hex(16)
    register_secret(admin_secret)
    register_secret(user_secret)
    steps = Steps()
    with tempfile.TemporaryDirectory(prefix="ksentinel-demo-") as tmp:
        workdir = Path(tmp)
        platform = ReferenceProcess(
            workdir / "reference",
            env={"KSENTINEL_REF_PARTNERS": f"{PARTNER_ID}:{admin_secret}:{user_secret}"},
            ready_after=args.ready_after,
        )
        try:
            started = time.perf_counter()
            try:
                platform.start()
            except TargetError as exc:
                say(f"[platform.start] FAILED {time.perf_counter() - started:.3f}s  {describe(exc)}")
                say("verdict: ERROR, the reference platform could not start")
                return EXIT_NO_PLATFORM
            say(f"[platform.start] PASSED {time.perf_counter() - started:.3f}s  {platform.url}")
            assert platform.proc is not None
            threading.Thread(target=drain, args=(platform.proc.stdout,), daemon=True).start()
            try:
                flow(steps, platform.url, admin_secret, workdir, args.list_timeout)
            except StepFailed as failed:
                say(f"verdict: FAILED at {failed} ({steps.passed} step(s) passed)")
                return EXIT_FAILED
            total = time.perf_counter() - steps.started
            say(f"verdict: PASSED, {steps.passed} steps in {total:.2f}s with the official KalturaClient")
            return EXIT_OK
        except KeyboardInterrupt:
            say("verdict: INTERRUPTED, stopping the platform")
            return EXIT_INTERRUPTED
        finally:
            platform.stop()
            if platform.proc is not None and platform.proc.stdout is not None:
                platform.proc.stdout.close()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        sys.exit(EXIT_INTERRUPTED)
