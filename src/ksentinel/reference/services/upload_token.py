"""uploadToken.add, upload, get, list and delete, with resumable chunks.

Statuses: PENDING 0 -> PARTIAL_UPLOAD 1 -> FULL_UPLOAD 2 -> CLOSED 3 (content taken by an entry);
DELETED 5. A chunk that starts past the current end of the file is parked and merged once the
bytes before it have arrived.

A final chunk (resume, resumeAt > 0, finalChunk) that arrives before the chunks in front of it waits
for them up to realism ``final_chunk_wait`` seconds, as kaltura/server's ``kUploadTokenMgr::handleResume``
(alpha/apps/kaltura/lib/kUploadTokenMgr.php) polls for ``upload_final_chunk_max_append_time`` (45 s)
until the file is ``resumeAt + chunk`` bytes long, then fails with
``UPLOAD_TOKEN_CANNOT_MATCH_EXPECTED_SIZE``. The wait sleeps without holding any lock, so the app runs
uploads in a worker thread when the wait is on. Chunks of one token take turns through a per-token
lock (:func:`token_lock`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from ksentinel.reference.errors import ApiException
from ksentinel.reference.request import UploadedFile
from ksentinel.reference.services import Call, action

PENDING, PARTIAL_UPLOAD, FULL_UPLOAD, CLOSED, TIMED_OUT, DELETED = 0, 1, 2, 3, 4, 5
TOKEN_ORDERS = {"+createdAt": "created_at ASC, rowid ASC", "-createdAt": "created_at DESC, rowid DESC"}
MAX_PAGE_SIZE = 500
MAX_MATCHES = 10_000  # as sphinx: an offset past it is refused, not computed
WAIT_POLL_SECONDS = 0.05  # how often a waiting final chunk looks for the chunks before it


class _TokenLocks:
    """One lock per upload token, created on demand and dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, list[int]]] = {}

    @contextlib.contextmanager
    def hold(self, token_id: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.setdefault(token_id, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._guard:
                users[0] -= 1
                if users[0] == 0:
                    self._locks.pop(token_id, None)


token_lock = _TokenLocks().hold
"""``with token_lock(token_id):`` keeps other calls from changing that token's file and row meanwhile."""


def token_object(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "objectType": "KalturaUploadToken",
        "id": row["id"],
        "partnerId": row["partner_id"],
        "userId": row["user_id"],
        "status": row["status"],
        "fileName": row["file_name"],
        # BIGINT columns are PHP strings on the wire
        "fileSize": None if row["file_size"] is None else str(int(row["file_size"])),
        "uploadedFileSize": None if row["uploaded_size"] is None else str(int(row["uploaded_size"])),
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        # UploadToken::getAutoFinalize reads memcache: true while the add's flag lives, else false
        "autoFinalize": row["auto_finalize"] == 1,
        "attachedObjectType": row["attached_object_type"],
        "attachedObjectId": row["attached_object_id"],
    }


def load_token(call: Call, token_id: str) -> dict[str, Any]:
    """The caller's token (a USER KS sees only its own), or UPLOAD_TOKEN_NOT_FOUND."""
    row = call.platform.store.get_token(call.caller.partner_id, token_id)
    if (
        row is None
        or row["status"] == DELETED
        or (not call.caller.is_admin and row["user_id"] != call.caller.user_id)
    ):
        raise ApiException("UPLOAD_TOKEN_NOT_FOUND")
    return row


@action("uploadToken", "add", writes=True)
def add(call: Call, uploadToken: dict[str, Any] | None = None) -> dict[str, Any]:
    fields = uploadToken or {}
    auto_finalize = fields.get("autoFinalize")
    file_size = fields.get("fileSize")
    if auto_finalize == 1 and not file_size:
        raise ApiException("UPLOAD_TOKEN_MISSING_FILE_SIZE")
    now = int(time.time())
    row = call.platform.store.insert_token(
        {
            "partner_id": call.caller.partner_id,
            "user_id": call.caller.user_id,
            "status": PENDING,
            "file_name": fields.get("fileName"),
            "file_size": file_size,
            "auto_finalize": auto_finalize,
            "created_at": now,
            "updated_at": now,
        }
    )
    return token_object(row)


def _merge_parked(call: Call, token_id: str, size: int) -> int:
    """Append parked chunks that now start at or before the end of the file."""
    store = call.platform.store
    for _ in range(10_000):
        parked = sorted(store.upload_dir.glob(f"{token_id}.bin.chunk.*"), key=lambda p: int(p.suffix[1:]))
        ready = [p for p in parked if int(p.suffix[1:]) <= size]
        if not ready:
            return size
        for path in ready:
            size = store.write_chunk(token_id, path.read_bytes(), int(path.suffix[1:]), truncate=False)
            path.unlink()
    return size


def _has_parked(call: Call, token_id: str) -> bool:
    return any(call.platform.store.upload_dir.glob(f"{token_id}.bin.chunk.*"))


def _loaded_for_upload(call: Call, token_id: str) -> dict[str, Any]:
    row = load_token(call, token_id)
    if row["status"] not in (PENDING, PARTIAL_UPLOAD):
        raise ApiException("UPLOAD_TOKEN_INVALID_STATUS_FOR_UPLOAD", token_id)
    return row


@action("uploadToken", "upload", writes=True)
def upload(
    call: Call,
    uploadTokenId: str,
    fileData: UploadedFile,
    resume: bool = False,
    finalChunk: bool = True,
    resumeAt: float = -1,
) -> dict[str, Any]:
    received = time.monotonic()
    store = call.platform.store
    data = fileData.data
    offset = int(resumeAt)
    with token_lock(uploadTokenId):
        row = _loaded_for_upload(call, uploadTokenId)
        if not resume:
            size = store.write_chunk(uploadTokenId, data, 0, truncate=True)
        else:
            if row["uploaded_size"] is None and not store.token_path(uploadTokenId).exists():
                raise ApiException("UPLOAD_TOKEN_CANNOT_RESUME")
            current = store.token_file_size(uploadTokenId)
            if offset > current:
                if data or finalChunk:
                    parked = store.upload_dir / f"{uploadTokenId}.bin.chunk.{offset}"
                    parked.write_bytes(data)
                size = current
            else:
                size = store.write_chunk(uploadTokenId, data, None if offset < 0 else offset, truncate=False)
            size = _merge_parked(call, uploadTokenId, size)
        complete = bool(finalChunk)
        if row["auto_finalize"] == 1 and row["file_size"] and size >= int(row["file_size"]):
            complete = True
        wait = call.platform.config.realism.final_chunk_wait
        if not (complete and finalChunk and resume and offset > 0 and wait > 0) or not _has_parked(
            call, uploadTokenId
        ):
            return _finish(call, row, fileData, size, complete)
    # the final chunk came before chunks in front of it: give them until the bound to arrive
    deadline = received + wait
    while time.monotonic() < deadline:
        time.sleep(max(0.0, min(WAIT_POLL_SECONDS, deadline - time.monotonic())))
        with token_lock(uploadTokenId):
            _merge_parked(call, uploadTokenId, store.token_file_size(uploadTokenId))
            if not _has_parked(call, uploadTokenId):
                break
    with token_lock(uploadTokenId):
        row = _loaded_for_upload(call, uploadTokenId)
        size = _merge_parked(call, uploadTokenId, store.token_file_size(uploadTokenId))
        return _finish(call, row, fileData, size, True)


def _finish(call: Call, row: dict[str, Any], sent: UploadedFile, size: int, complete: bool) -> dict[str, Any]:
    """Record the upload's outcome (FULL_UPLOAD or PARTIAL_UPLOAD) and ingest into an attached entry."""
    store = call.platform.store
    token_id = row["id"]
    if complete and _has_parked(call, token_id):
        raise ApiException("UPLOAD_TOKEN_CANNOT_MATCH_EXPECTED_SIZE")
    changes: dict[str, Any] = {
        "uploaded_size": size,
        "status": FULL_UPLOAD if complete else PARTIAL_UPLOAD,
        "updated_at": int(time.time()),
    }
    if not row["file_name"] and sent.filename:
        changes["file_name"] = sent.filename
    row = store.update_token(call.caller.partner_id, token_id, changes) or row
    if complete and row["attached_object_type"] == "entry" and row["attached_object_id"]:
        from ksentinel.reference.services.entries import ingest_token

        ingest_token(call, row["attached_object_id"], row)
        row = store.get_token(call.caller.partner_id, token_id) or row
    return token_object(row)


@action("uploadToken", "get", cacheable=True)
def get(call: Call, uploadTokenId: str) -> dict[str, Any]:
    return token_object(load_token(call, uploadTokenId))


@action("uploadToken", "delete", writes=True)
def delete(call: Call, uploadTokenId: str) -> None:
    load_token(call, uploadTokenId)
    call.platform.store.update_token(
        call.caller.partner_id, uploadTokenId, {"status": DELETED, "updated_at": int(time.time())}
    )
    call.platform.store.drop_token_file(uploadTokenId)


@action("uploadToken", "list", cacheable=True)
def list_(
    call: Call, filter: dict[str, Any] | None = None, pager: dict[str, Any] | None = None
) -> dict[str, Any]:
    filt = filter or {}
    clauses, params = ["partner_id = ?", "status != ?"], [call.caller.partner_id, DELETED]
    if not call.caller.is_admin:
        clauses.append("user_id = ?")
        params.append(call.caller.user_id)
    simple = {
        "idEqual": "id",
        "userIdEqual": "user_id",
        "statusEqual": "status",
        "fileNameEqual": "file_name",
        "fileSizeEqual": "file_size",
    }
    for name, column in simple.items():
        if filt.get(name) is not None:
            clauses.append(f"{column} = ?")
            params.append(filt[name])
    for name, column in (("idIn", "id"), ("statusIn", "status")):
        values = [v for v in str(filt.get(name) or "").split(",") if v.strip()]
        if values:
            clauses.append(f"{column} IN ({', '.join('?' for _ in values)})")
            params.extend(v.strip() for v in values)
    order = TOKEN_ORDERS.get(str(filt.get("orderBy") or ""), "created_at DESC, rowid DESC")
    page_size, page_index = page_of(pager)
    offset = (page_index - 1) * page_size
    if offset >= MAX_MATCHES:
        raise ApiException("QUERY_EXCEEDED_MAX_MATCHES_ALLOWED")
    rows, total = call.platform.store.list_tokens(" AND ".join(clauses), params, order, offset, page_size)
    return {
        "objectType": "KalturaUploadTokenListResponse",
        "objects": [token_object(r) for r in rows],
        "totalCount": total,
    }


def page_of(pager: dict[str, Any] | None) -> tuple[int, int]:
    """(pageSize clamped to 0..500 with 0 meaning the maximum, pageIndex >= 1)."""
    pager = pager or {}
    size = pager.get("pageSize")
    size = 30 if size is None else max(0, min(int(size), MAX_PAGE_SIZE))
    if size == 0:
        size = MAX_PAGE_SIZE
    index = max(1, int(pager.get("pageIndex") or 1))
    return size, index
