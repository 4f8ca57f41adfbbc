"""The upload flow: token, chunked upload, entry from the token, READY, listed, content intact.

The upload is real, playable media (the shipped 1 s sample padded with a per-run ``free`` box to
``options.upload_bytes``; see flows/media/README.md), so a real platform converts it to READY.
Conversion is asynchronous (``wait_ready``), the READY entry shows up in lists only once the search
index has caught up (``wait_listed``), and the download may be redirected to a CDN host
(``KalturaApi.download`` follows it).
"""

from __future__ import annotations

import time

from ksentinel.flows.core import FlowContext, flow
from ksentinel.flows.entries import READY, content, forget_later, sha256, wait_ready
from ksentinel.flows.indexing import listed_ids, wait_listed

STEPS = (
    "upload.token_add",
    "upload.chunk",
    "upload.add_entry",
    "upload.wait_ready",
    "upload.listed",
    "upload.content_match",
    "upload.delete",
)


@flow(
    "upload",
    description="uploadToken.add -> chunked upload -> addFromUploadedFile -> READY -> listed -> same bytes",
    steps=STEPS,
    writes=True,
)
def upload_flow(ctx: FlowContext) -> None:
    options = ctx.options
    data = content(options.upload_bytes, ctx.run_id)
    api = ctx.api
    with ctx.step("upload.token_add"):
        token = api.call(
            "uploadToken",
            "add",
            uploadToken={
                "objectType": "KalturaUploadToken",
                "fileName": f"ksentinel-{ctx.run_id}.mp4",
                "fileSize": len(data),
            },
        )
        ctx.check(isinstance(token, dict) and bool(token.get("id")), "uploadToken.add returned no token id")
        ctx.check(
            str(token.get("status")) == "0",
            f"a new token has status {token.get('status')!r}, expected 0 (PENDING)",
        )
    token_id = token["id"]
    ctx.cleanup.add(
        f"upload token {token_id}", lambda: api.call("uploadToken", "delete", uploadTokenId=token_id)
    )

    chunk_size = max(1, options.chunk_bytes)
    offsets = list(range(0, len(data), chunk_size)) or [0]
    for index, offset in enumerate(offsets):
        chunk = data[offset : offset + chunk_size]
        final = index == len(offsets) - 1
        with ctx.step("upload.chunk"):
            token = api.upload_chunk(
                token_id,
                chunk,
                resume=index > 0,
                final_chunk=final,
                resume_at=offset if index else -1,
                filename=f"ksentinel-{ctx.run_id}.mp4",
            )
            uploaded = int(float(token.get("uploadedFileSize") or 0))
            ctx.check(
                uploaded == offset + len(chunk),
                f"after {offset + len(chunk)} bytes the token reports {uploaded}",
            )
            expected = "2" if final else "1"
            ctx.check(
                str(token.get("status")) == expected,
                f"token status {token.get('status')!r} after {'the final' if final else 'a'} chunk, expected {expected}",
            )

    with ctx.step("upload.add_entry"):
        entry = api.call(
            "baseEntry",
            "addFromUploadedFile",
            uploadTokenId=token_id,
            entry={
                "objectType": "KalturaMediaEntry",
                "mediaType": 1,
                "name": f"ksentinel upload {ctx.run_id}",
                "tags": ctx.tags,
            },
        )
        ctx.check(isinstance(entry, dict) and bool(entry.get("id")), "addFromUploadedFile returned no entry")
    entry_id = entry["id"]
    forget_later(ctx, entry_id)

    with ctx.step("upload.wait_ready"):
        entry = wait_ready(ctx, entry_id)
    ready_seen = time.monotonic()  # get is immediate: the index learns of READY from now on

    with ctx.step("upload.listed"):
        listed = wait_listed(
            ctx,
            lambda: api.call(
                "baseEntry",
                "list",
                filter={"objectType": "KalturaBaseEntryFilter", "idIn": entry_id, "statusEqual": READY},
                nocache=1,
            ),
            lambda answer: entry_id in listed_ids(answer),
            what=f"READY entry {entry_id} not listed",
            since=ready_seen,
            describe=lambda answer: f"ids {listed_ids(answer)}",
        )
        ids = listed_ids(listed)
        ctx.check(ids == [entry_id], f"idIn={entry_id} listed other entries too (got {ids})")

    with ctx.step("upload.content_match"):
        url = entry.get("downloadUrl")
        ctx.check(bool(url), "the READY entry has no downloadUrl")
        stored = api.download(str(url))
        ctx.check(len(stored) == len(data), f"stored content has {len(stored)} bytes, uploaded {len(data)}")
        ctx.check(
            sha256(stored) == sha256(data), "stored content differs from what was uploaded (sha256 mismatch)"
        )

    with ctx.step("upload.delete"):
        api.call("baseEntry", "delete", entryId=entry_id)
