"""Helpers flows share for entries: tagged creation with clean-up, status checks, polling."""

from __future__ import annotations

import hashlib
import random
import time
from typing import Any

from ksentinel.flows.core import FlowContext

READY, NO_CONTENT = 2, 7
ERROR_STATUSES = frozenset({-2, -1})
ALL_STATUSES = "-2,-1,0,1,2,4,5,6,7"


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


def wait_ready(ctx: FlowContext, entry_id: str) -> dict[str, Any]:
    """Poll ``baseEntry.get`` until READY; fail on an error status or after ``ready_timeout``."""
    deadline = time.monotonic() + ctx.options.ready_timeout
    while True:
        entry = ctx.api.call("baseEntry", "get", entryId=entry_id, nocache=1)
        status = status_of(entry)
        if status == READY:
            return entry
        ctx.check(status not in ERROR_STATUSES, f"entry {entry_id} went to error status {status}")
        ctx.check(
            time.monotonic() < deadline,
            f"entry not READY after {ctx.options.ready_timeout:.0f}s (status {status})",
        )
        time.sleep(ctx.options.poll_interval)


def content(size: int, seed: str) -> bytes:
    """Reproducible generated content (no disk reads)."""
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
