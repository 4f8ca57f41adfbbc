"""baseEntry and media: entries, their content and lists.

An entry with content is PRECONVERT until ``--ready-after`` seconds have passed (standing in for
conversion), then READY, or ERROR_CONVERTING when (realism ``sniff_media``) MediaInfo found no media
stream in what was uploaded; an entry without content stays NO_CONTENT, and one whose upload token is
not complete yet is IMPORT until the last chunk arrives. ``media.*`` only sees media clips; other
entries are ``ENTRY_ID_NOT_FOUND`` there, as on the real server.

list and count run on the search index (``Store.list_entries``), which sees each write after
``realism.index_lag`` seconds (jittered); get is immediate. docs/reference-platform.md cites the
kaltura/server sources.
"""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

from ksentinel.reference.errors import ApiException
from ksentinel.reference.serialize import php_number
from ksentinel.reference.services import Call, action
from ksentinel.reference.services.upload_token import CLOSED, FULL_UPLOAD, load_token, page_of, token_lock
from ksentinel.reference.store import (
    ENTRY_ERROR_CONVERTING,
    ENTRY_IMPORT,
    ENTRY_NO_CONTENT,
    ENTRY_PRECONVERT,
    ENTRY_READY,
    Query,
    index_delay,
)

IMPORT = ENTRY_IMPORT
AUTOMATIC, MEDIA_CLIP = -1, 1
VIDEO, IMAGE, AUDIO = 1, 2, 5
MAX_MATCHES = 10_000  # SphinxCriteria::MAX_MATCHES: an offset past it is refused
# MediaInfo track types that are media content (KDLMediaDataSet::Validate: video, audio or image)
MEDIA_TRACKS = frozenset({"Video", "Audio", "Image"})
_EXTENSIONS = {
    **dict.fromkeys(
        ["mp4", "mov", "avi", "mkv", "flv", "webm", "wmv", "m4v", "mpg", "mpeg", "3gp", "ts", "mxf"], VIDEO
    ),
    **dict.fromkeys(["jpg", "jpeg", "png", "gif", "bmp", "tif", "tiff", "webp"], IMAGE),
    **dict.fromkeys(["mp3", "wav", "aac", "m4a", "ogg", "flac", "wma"], AUDIO),
}
# API property -> column; other writable properties are kept in the row's ``extra`` JSON
COLUMNS = {
    "name": "name",
    "description": "description",
    "tags": "tags",
    "adminTags": "admin_tags",
    "referenceId": "reference_id",
    "partnerData": "partner_data",
    "partnerSortValue": "partner_sort_value",
    "userId": "user_id",
    "creatorId": "creator_id",
    "displayInSearch": "display_in_search",
    "mediaType": "media_type",
    "sourceType": "source_type",
}
ORDERS = {
    "createdAt": "created_at",
    "updatedAt": "updated_at",
    "name": "name",
    "partnerSortValue": "partner_sort_value",
    "mediaType": "media_type",
    "rank": "seq",
    "recent": "created_at",
}


# ---- representation ---------------------------------------------------------------------------------
def download_url(base_url: str, row: dict[str, Any]) -> str:
    pid = row["partner_id"]
    scheme = base_url.split(":", 1)[0]
    return f"{base_url}/p/{pid}/sp/{pid}00/playManifest/entryId/{row['id']}/format/download/protocol/{scheme}/flavorParamIds/0"


def entry_object(row: dict[str, Any], base_url: str) -> dict[str, Any]:
    has_content = row["content_size"] is not None
    obj: dict[str, Any] = {
        **row["extra"],
        "objectType": "KalturaMediaEntry" if row["type"] == MEDIA_CLIP else "KalturaBaseEntry",
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "partnerId": row["partner_id"],
        "userId": row["user_id"],
        "creatorId": row["creator_id"],
        "tags": row["tags"],
        "adminTags": row["admin_tags"],
        "status": row["status"],
        "moderationStatus": row["moderation_status"],
        "moderationCount": 0,
        "type": row["type"],
        "createdAt": row["created_at"],
        "updatedAt": row["updated_at"],
        "rank": 0,
        "totalRank": 0,
        "votes": 0,
        "partnerData": row["partner_data"],
        "downloadUrl": download_url(base_url, row) if has_content else None,
        "searchText": " ".join(
            filter(None, ["_PAR_ONLY_", f"_{row['partner_id']}_", row["name"], row["tags"]])
        ),
        "version": row["version"],
        "referenceId": row["reference_id"],
        "partnerSortValue": row["partner_sort_value"],
        "rootEntryId": row["id"],
        "displayInSearch": row["display_in_search"],
        # custom-data getters with PHP defaults (entry::getOperationAttributes, getBlockAutoTranscript):
        # the real server writes them as [] and false, never null
        "operationAttributes": [],
        "blockAutoTranscript": False,
    }
    if row["type"] == MEDIA_CLIP:
        obj.update(
            {
                "plays": 0,
                "views": 0,
                "width": 0,
                "height": 0,
                "duration": 0,
                "msDuration": 0,
                "mediaType": row["media_type"],
                # entry.source is an INT column and coreToApi passes core values through: a number
                "sourceType": php_number(row["source_type"]),
                "dataUrl": download_url(base_url, row) if has_content else None,
                "flavorParamsIds": "0" if has_content else "",
            }
        )
    return obj


def lag(call: Call) -> float:
    """Seconds before this write reaches the search index (0 with realism ``index_lag`` 0)."""
    realism = call.platform.config.realism
    return index_delay(realism.index_lag, realism.index_lag_jitter)


@lru_cache(maxsize=1)
def _media_info() -> Any:
    from pymediainfo import MediaInfo

    return MediaInfo


def is_media(path: Path) -> bool:
    """Whether MediaInfo finds a video, audio or image stream of a known format in the file.

    kaltura/server runs mediainfo on every source in its ExtractMedia job (batch/batches/ExtractMedia/
    KAsyncExtractMedia.class.php, infra/media/mediaInfoParser/KMediaInfoMediaParser.php); a source with no
    media stream fails KDL validation ("Invalid File - No media content", infra/cdl/kdl/
    KDLMediaDataSet.php) and kBusinessPreConvertDL::decideSourceFlavorConvert sets the entry to
    ERROR_CONVERTING.
    """
    try:
        info = _media_info().parse(str(path))
    except Exception:  # an unreadable file is not media; a missing library must not pass silently
        if not _media_info().can_parse():
            raise
        return False
    return any(track.track_type in MEDIA_TRACKS and track.format for track in info.tracks)


def not_found(call: Call, entry_id: str) -> ApiException:
    if call.platform.has("wrong-error-code"):
        return ApiException("INTERNAL_SERVERL_ERROR")
    return ApiException("ENTRY_ID_NOT_FOUND", entry_id)


def load_entry(call: Call, entry_id: str, *, media_only: bool) -> dict[str, Any]:
    if call.caller.info is None:  # anonymous callers only see Kaltura-network content: none here
        raise not_found(call, entry_id)
    row = call.platform.store.get_entry(call.caller.partner_id, entry_id)
    if row is None or (media_only and row["type"] != MEDIA_CLIP):
        raise not_found(call, entry_id)
    return row


def check_owner(call: Call, row: dict[str, Any]) -> None:
    """USER sessions may change only their own entries (or those their ``edit`` privilege names)."""
    caller = call.caller
    if caller.is_admin or row["user_id"] == caller.user_id or caller.may("edit", row["id"]):
        return
    raise ApiException("INVALID_KS", "", -4, "INVALID_TYPE")


def _fields_to_columns(fields: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    columns: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "objectType":
            continue
        if name in COLUMNS:
            columns[COLUMNS[name]] = value
        elif name not in ("type", "status", "id"):
            extra[name] = value
    return columns, extra


def type_from_filename(filename: str | None) -> int:
    suffix = PurePosixPath(filename or "").suffix.lower().lstrip(".")
    return _EXTENSIONS.get(suffix, VIDEO)


# ---- creation and content ---------------------------------------------------------------------------
def create_entry(
    call: Call, fields: dict[str, Any], entry_type: int, media_type: int | None
) -> dict[str, Any]:
    now = int(time.time())
    columns, extra = _fields_to_columns(fields)
    caller = call.caller
    user_id = (
        columns.get("user_id") if caller.is_admin and columns.get("user_id") is not None else caller.user_id
    )
    row = {
        **columns,
        "partner_id": caller.partner_id,
        "user_id": user_id or "",
        "creator_id": caller.user_id or user_id or "",
        "name": columns.get("name") or "",
        "status": ENTRY_NO_CONTENT,
        "type": entry_type,
        "media_type": media_type,
        "display_in_search": columns.get("display_in_search", 1),
        "created_at": now,
        "updated_at": now,
        "extra": extra,
    }
    return call.platform.store.insert_entry(row, index_delay=lag(call))


def ingest_token(call: Call, entry_id: str, token: dict[str, Any]) -> dict[str, Any]:
    """Move a FULL token's file into the entry's content and start "converting".

    The upload is judged (MediaInfo) before it is stored, so the ``upload-corrupt`` fault, which
    damages the stored copy, is left to the content hash compare to catch.
    """
    platform = call.platform
    store = platform.store
    source = store.token_path(token["id"])
    media = not platform.config.realism.sniff_media or is_media(source)
    size, digest = store.attach_content(entry_id, source, corrupt=platform.has("upload-corrupt"))
    outcome = ENTRY_READY if media else ENTRY_ERROR_CONVERTING
    ready_after = platform.config.ready_after
    now = time.time()
    changes: dict[str, Any] = {
        "content_size": size,
        "content_sha256": digest,
        "content_name": token["file_name"] or "",
        "status": outcome if ready_after <= 0 else ENTRY_PRECONVERT,
        "convert_to": outcome,
        "ready_at": now + ready_after,
        "updated_at": int(now),
    }
    row = store.update_entry(call.caller.partner_id, entry_id, changes, index_delay=lag(call))
    store.update_token(call.caller.partner_id, token["id"], {"status": CLOSED, "updated_at": int(now)})
    assert row is not None
    return row


def _token_for_entry(call: Call, token_id: str) -> dict[str, Any]:
    try:
        return load_token(call, token_id)
    except ApiException as exc:
        raise ApiException("UPLOAD_TOKEN_NOT_FOUND") from exc


def add_content(
    call: Call, entry_id: str, resource: dict[str, Any] | None, *, media_only: bool
) -> dict[str, Any]:
    row = load_entry(call, entry_id, media_only=media_only)
    check_owner(call, row)
    if row["status"] != ENTRY_NO_CONTENT:
        raise ApiException("ENTRY_ALREADY_WITH_CONTENT")
    if not resource or resource.get("objectType") != "KalturaUploadedFileTokenResource":
        raise ApiException("RESOURCE_TYPE_NOT_SUPPORTED", (resource or {}).get("objectType", ""))
    token_id = str(resource.get("token") or "")
    # the token's last chunk may be landing in a worker thread right now: read and attach it under the
    # token's lock, so the chunk either sees the attachment (and ingests) or we see the FULL token
    with token_lock(token_id):
        token = _token_for_entry(call, token_id)
        store = call.platform.store
        if row["type"] == AUTOMATIC:
            if token["status"] != FULL_UPLOAD:
                raise ApiException("ENTRY_TYPE_NOT_SUPPORTED", AUTOMATIC)
            store.update_entry(
                call.caller.partner_id,
                entry_id,
                {"type": MEDIA_CLIP, "media_type": type_from_filename(token["file_name"])},
                index_delay=lag(call),
            )
        if token["status"] == FULL_UPLOAD:
            row = ingest_token(call, entry_id, token)
        else:
            store.update_token(
                call.caller.partner_id,
                token["id"],
                {
                    "attached_object_type": "entry",
                    "attached_object_id": entry_id,
                    "updated_at": int(time.time()),
                },
            )
            row = (
                store.update_entry(
                    call.caller.partner_id,
                    entry_id,
                    {"status": IMPORT, "updated_at": int(time.time())},
                    index_delay=lag(call),
                )
                or row
            )
    return entry_object(row, call.base_url)


# ---- lists ---------------------------------------------------------------------------------------
def _csv(value: Any) -> list[str]:
    return [v.strip() for v in str(value or "").split(",") if v.strip()]


def compile_filter(call: Call, filt: dict[str, Any] | None, *, media_only: bool) -> Query:
    """SQL for a KalturaBaseEntryFilter / KalturaMediaEntryFilter, with the server's implicit rules."""
    f = filt or {}
    clauses: list[str] = ["partner_id = ?"]
    params: list[Any] = [call.caller.partner_id]

    def add(sql: str, *values: Any) -> None:
        clauses.append(sql)
        params.extend(values)

    def add_in(column: str, values: list[str], negate: bool = False) -> None:
        if values:
            add(f"{column} {'NOT IN' if negate else 'IN'} ({', '.join('?' for _ in values)})", *values)

    if media_only:
        add("type = ?", MEDIA_CLIP)
    for name, column in (
        ("idEqual", "id"),
        ("nameEqual", "name"),
        ("userIdEqual", "user_id"),
        ("referenceIdEqual", "reference_id"),
    ):
        if f.get(name) is not None:
            add(f"{column} = ?", f[name])
    for name, column in (
        ("statusEqual", "status"),
        ("typeEqual", "type"),
        ("mediaTypeEqual", "media_type"),
        ("moderationStatusEqual", "moderation_status"),
    ):
        if f.get(name) is not None:
            add(f"{column} = ?", int(f[name]))
    if f.get("statusNotEqual") is not None:
        add("status != ?", int(f["statusNotEqual"]))
    if f.get("partnerIdEqual") is not None:
        add("partner_id = ?", int(f["partnerIdEqual"]))
    add_in("id", _csv(f.get("idIn")))
    add_in("id", _csv(f.get("idNotIn")), negate=True)
    add_in("user_id", _csv(f.get("userIdIn")))
    add_in("reference_id", _csv(f.get("referenceIdIn")))
    add_in("status", _csv(f.get("statusIn")))
    add_in("status", _csv(f.get("statusNotIn")), negate=True)
    add_in("type", _csv(f.get("typeIn")))
    add_in("media_type", _csv(f.get("mediaTypeIn")))
    for name, column in (("nameLike", "name"), ("tagsLike", "tags"), ("adminTagsLike", "admin_tags")):
        if f.get(name):
            add(f"{column} LIKE ? ESCAPE '\\'", f"%{_like(f[name])}%")
    if f.get("freeText"):
        pattern = f"%{_like(f['freeText'])}%"
        add(
            "(name LIKE ? ESCAPE '\\' OR description LIKE ? ESCAPE '\\' OR tags LIKE ? ESCAPE '\\')",
            pattern,
            pattern,
            pattern,
        )
    for name, column, op in (
        ("createdAtGreaterThanOrEqual", "created_at", ">="),
        ("createdAtLessThanOrEqual", "created_at", "<="),
        ("updatedAtGreaterThanOrEqual", "updated_at", ">="),
        ("updatedAtLessThanOrEqual", "updated_at", "<="),
    ):
        if f.get(name) is not None:
            add(f"{column} {op} ?", _time(int(f[name])))
    has_id = f.get("idEqual") is not None
    status_filters = ("statusEqual", "statusIn", "statusNotEqual", "statusNotIn")
    if not has_id and not any(f.get(k) is not None for k in status_filters):
        add("status = ?", ENTRY_READY)
    id_filters = ("idEqual", "idIn", "referenceIdEqual", "referenceIdIn")
    if not call.caller.is_admin and not call.caller.may("list") and not any(f.get(k) for k in id_filters):
        add("user_id = ?", call.caller.user_id)
    order = "created_at DESC, seq DESC"
    order_by = str(f.get("orderBy") or "")
    for item in _csv(order_by)[:1]:
        direction, name = ("ASC", item[1:]) if item.startswith("+") else ("DESC", item.lstrip("-"))
        if name in ORDERS:
            order = f"{ORDERS[name]} {direction}, seq {direction}"
    return Query(" AND ".join(clauses), tuple(params), order)


def _like(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _time(value: int) -> int:
    """Kaltura treats small absolute values of time fields as relative to now."""
    return value + int(time.time()) if abs(value) <= 315_360_000 else value


def list_entries(
    call: Call, filt: dict[str, Any] | None, pager: dict[str, Any] | None, *, media_only: bool
) -> dict[str, Any]:
    query = compile_filter(call, filt, media_only=media_only)
    page_size, page_index = page_of(pager)
    offset = (page_index - 1) * page_size
    if offset >= MAX_MATCHES:
        raise ApiException("QUERY_EXCEEDED_MAX_MATCHES_ALLOWED")
    if call.platform.has("pager-duplicates") and page_index > 1:
        offset -= 1
    rows, total = call.platform.store.list_entries(query, offset, page_size)
    return {
        "objectType": "KalturaMediaListResponse" if media_only else "KalturaBaseEntryListResponse",
        "objects": [entry_object(r, call.base_url) for r in rows],
        "totalCount": total,
    }


# ---- updates --------------------------------------------------------------------------------------
def update_entry(call: Call, entry_id: str, fields: dict[str, Any], *, media_only: bool) -> dict[str, Any]:
    row = load_entry(call, entry_id, media_only=media_only)
    check_owner(call, row)
    columns, extra = _fields_to_columns(fields)
    if not call.caller.is_admin:
        columns.pop("user_id", None)
    if columns.get("name") is None and "name" in columns:
        columns["name"] = ""
    changes: dict[str, Any] = {**columns, "updated_at": int(time.time())}
    if extra:
        changes["extra"] = {**row["extra"], **extra}
    updated = call.platform.store.update_entry(
        call.caller.partner_id, entry_id, changes, index_delay=lag(call)
    )
    assert updated is not None
    return entry_object(updated, call.base_url)


def delete_entry(call: Call, entry_id: str, *, media_only: bool) -> None:
    row = load_entry(call, entry_id, media_only=media_only)
    check_owner(call, row)
    call.platform.store.delete_entry(call.caller.partner_id, entry_id, index_delay=lag(call))


# ---- baseEntry ------------------------------------------------------------------------------------
@action("baseEntry", "add", writes=True)
def base_add(call: Call, entry: dict[str, Any], type: int | None = None) -> dict[str, Any]:
    entry_type = (
        type
        if type is not None
        else int(entry.get("type", AUTOMATIC) if entry.get("type") is not None else AUTOMATIC)
    )
    media_type = entry.get("mediaType") if entry_type == MEDIA_CLIP else None
    if entry.get("objectType") == "KalturaMediaEntry" and entry_type == AUTOMATIC:
        entry_type = MEDIA_CLIP
    row = create_entry(
        call,
        entry,
        entry_type,
        media_type if media_type is not None else (VIDEO if entry_type == MEDIA_CLIP else None),
    )
    return entry_object(row, call.base_url)


@action("baseEntry", "addContent", writes=True)
def base_add_content(call: Call, entryId: str, resource: dict[str, Any]) -> dict[str, Any]:
    return add_content(call, entryId, resource, media_only=False)


@action("baseEntry", "addFromUploadedFile", writes=True)
def base_add_from_uploaded_file(
    call: Call, entry: dict[str, Any], uploadTokenId: str, type: int | None = None
) -> dict[str, Any]:
    token = _token_for_entry(call, uploadTokenId)
    if token["status"] != FULL_UPLOAD:
        raise ApiException("UPLOAD_TOKEN_INVALID_STATUS_FOR_ADD_ENTRY", uploadTokenId)
    fields = dict(entry)
    if not fields.get("name"):
        fields["name"] = f"{call.caller.partner_id}_{int(time.time())}"
    media_type = fields.get("mediaType") or type_from_filename(token["file_name"])
    row = create_entry(call, fields, MEDIA_CLIP, media_type)
    row = ingest_token(call, row["id"], token)
    return entry_object(row, call.base_url)


@action("baseEntry", "get", cacheable=True)
def base_get(call: Call, entryId: str, version: int = -1) -> dict[str, Any]:
    return entry_object(load_entry(call, entryId, media_only=False), call.base_url)


@action("baseEntry", "list", cacheable=True)
def base_list(
    call: Call, filter: dict[str, Any] | None = None, pager: dict[str, Any] | None = None
) -> dict[str, Any]:
    return list_entries(call, filter, pager, media_only=False)


@action("baseEntry", "count", cacheable=True)
def base_count(call: Call, filter: dict[str, Any] | None = None) -> int:
    return call.platform.store.count_entries(compile_filter(call, filter, media_only=False))


@action("baseEntry", "update", writes=True)
def base_update(call: Call, entryId: str, baseEntry: dict[str, Any]) -> dict[str, Any]:
    return update_entry(call, entryId, baseEntry, media_only=False)


@action("baseEntry", "delete", writes=True)
def base_delete(call: Call, entryId: str) -> None:
    delete_entry(call, entryId, media_only=False)


# ---- media ----------------------------------------------------------------------------------------
@action("media", "add", writes=True)
def media_add(call: Call, entry: dict[str, Any]) -> dict[str, Any]:
    if entry.get("mediaType") is None:
        raise ApiException("PROPERTY_VALIDATION_CANNOT_BE_NULL", "mediaType")
    return entry_object(create_entry(call, entry, MEDIA_CLIP, int(entry["mediaType"])), call.base_url)


@action("media", "addContent", writes=True)
def media_add_content(call: Call, entryId: str, resource: dict[str, Any] | None = None) -> dict[str, Any]:
    return add_content(call, entryId, resource, media_only=True)


@action("media", "get", cacheable=True)
def media_get(call: Call, entryId: str, version: int = -1) -> dict[str, Any]:
    return entry_object(load_entry(call, entryId, media_only=True), call.base_url)


@action("media", "list", cacheable=True)
def media_list(
    call: Call, filter: dict[str, Any] | None = None, pager: dict[str, Any] | None = None
) -> dict[str, Any]:
    return list_entries(call, filter, pager, media_only=True)


@action("media", "count", cacheable=True)
def media_count(call: Call, filter: dict[str, Any] | None = None) -> int:
    return call.platform.store.count_entries(compile_filter(call, filter, media_only=True))


@action("media", "update", writes=True)
def media_update(call: Call, entryId: str, mediaEntry: dict[str, Any]) -> dict[str, Any]:
    return update_entry(call, entryId, mediaEntry, media_only=True)


@action("media", "delete", writes=True)
def media_delete(call: Call, entryId: str) -> None:
    delete_entry(call, entryId, media_only=True)
