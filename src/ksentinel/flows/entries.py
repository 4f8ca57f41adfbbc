"""Helpers flows share for entries: tagged creation with clean-up, status checks, polling, content."""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import random
import struct
import time
from typing import Any

from ksentinel.flows.core import FlowContext

READY, NO_CONTENT = 2, 7
ERROR_IMPORTING, ERROR_CONVERTING = -2, -1
ERROR_STATUSES = frozenset({ERROR_IMPORTING, ERROR_CONVERTING})
ALL_STATUSES = "-2,-1,0,1,2,4,5,6,7"
#: KalturaEntryStatus names (kaltura-api-v3.md section 5)
STATUS_NAMES = {
    -2: "ERROR_IMPORTING",
    -1: "ERROR_CONVERTING",
    0: "IMPORT",
    1: "PRECONVERT",
    2: "READY",
    3: "DELETED",
    4: "PENDING",
    5: "MODERATE",
    6: "BLOCKED",
    7: "NO_CONTENT",
}
_ERROR_MEANINGS = {
    ERROR_CONVERTING: "the platform could not convert the upload",
    ERROR_IMPORTING: "the platform could not import the upload",
}
#: wait_ready's pause between polls grows from ``poll_interval`` by this factor up to this many seconds
READY_POLL_GROWTH, READY_POLL_MAX = 1.5, 2.0
#: the playable sample every upload starts with (see flows/media/README.md)
SAMPLE_MEDIA = "ksentinel-1s.mp4"
#: the least random padding each upload carries, so that every run's content is unique
MIN_PADDING = 16


def status_of(entry: dict[str, Any]) -> int:
    """Entry status as an int, whether the wire says ``2`` or ``"2"``."""
    try:
        return int(entry.get("status"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return -999


def add_entry(ctx: FlowContext, name: str, **fields: Any) -> dict[str, Any]:
    """``baseEntry.add`` of a tagged entry without content, deleted at clean-up."""
    entry = ctx.api.call(
        "baseEntry", "add", entry={"objectType": "KalturaBaseEntry", "name": name, "tags": ctx.tags, **fields}
    )
    ctx.check(
        isinstance(entry, dict) and bool(entry.get("id")),
        f"baseEntry.add returned no entry id: {entry!r}"[:200],
    )
    forget_later(ctx, entry["id"])
    return entry


def forget_later(ctx: FlowContext, entry_id: str) -> None:
    api = ctx.api
    ctx.cleanup.add(f"entry {entry_id}", lambda: api.call("baseEntry", "delete", entryId=entry_id))


def status_name(entry: dict[str, Any]) -> str:
    """``PRECONVERT (1)``: the entry's status by name and value (plugin values as they came)."""
    raw = entry.get("status") if isinstance(entry, dict) else None
    status = status_of(entry) if isinstance(entry, dict) else -999
    name = STATUS_NAMES.get(status)
    return f"{name} ({status})" if name else repr(raw)


def wait_ready(ctx: FlowContext, entry_id: str) -> dict[str, Any]:
    """Poll ``baseEntry.get`` until READY, at most ``options.ready_timeout`` seconds.

    Conversion is asynchronous (IMPORT/PRECONVERT first; minutes on a busy real platform), so the
    pause grows from ``options.poll_interval`` to :data:`READY_POLL_MAX`. ERROR_CONVERTING (-1) or
    ERROR_IMPORTING (-2) ends the wait at once; a timeout names the last status seen.
    """
    timeout = ctx.options.ready_timeout
    deadline = time.monotonic() + timeout
    interval = max(0.01, ctx.options.poll_interval)
    while True:
        entry = ctx.api.call("baseEntry", "get", entryId=entry_id, nocache=1)
        status = status_of(entry)
        if status == READY:
            return entry
        ctx.check(
            status not in ERROR_STATUSES,
            f"entry {entry_id} ended in {status_name(entry)}: {_ERROR_MEANINGS.get(status, '')}",
        )
        left = deadline - time.monotonic()
        ctx.check(
            left > 0,
            f"entry {entry_id} not READY after {timeout:g} s (ready_timeout); last status {status_name(entry)}",
        )
        ctx.pause(min(interval, left))
        interval = min(READY_POLL_MAX, interval * READY_POLL_GROWTH)


@functools.cache
def sample_media() -> bytes:
    """The tiny playable MP4 the package ships (1 s, 64x64 H.264 + AAC; flows/media/README.md)."""
    return importlib.resources.files("ksentinel.flows").joinpath("media", SAMPLE_MEDIA).read_bytes()


def content(size: int, seed: str) -> bytes:
    """Playable media of at least ``size`` bytes, unique to ``seed`` and the same for the same seed.

    The shipped sample followed by one MP4 ``free`` box of ``seed``-random bytes: players and
    MediaInfo skip ``free`` boxes, so a real platform converts it like the sample, while its sha256
    is the run's own. Never smaller than the sample plus a box of :data:`MIN_PADDING` bytes.
    """
    sample = sample_media()
    padding = max(MIN_PADDING, size - len(sample) - 8)
    pad = random.Random(seed).randbytes(padding)
    return sample + struct.pack(">I", 8 + len(pad)) + b"free" + pad


def random_content(size: int, seed: str) -> bytes:
    """Reproducible random bytes: content a real platform cannot convert (ERROR_CONVERTING)."""
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
