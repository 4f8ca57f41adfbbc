"""The browse flow: what a catalogue page does, filtered and paged lists and gets of listed entries.

Steps: ``browse.seed`` (a few tagged entries to browse), ``browse.list`` (``baseEntry.list``, first
page, cacheable), ``browse.page`` (the next pages through ``media.list``), ``browse.get``
(``baseEntry.get`` of listed entries, cacheable) and ``browse.list_nocache`` (the first page again
with ``nocache``: the same entries, not from the cache).

Seeding: by default the flow seeds its entries and deletes them at the end of each run, like every
other flow. A driver that runs the flow many times in one context (a Locust user) may set
``ctx.notes[KEEP_SEED] = True``: the entries are then seeded once per context, kept in
``ctx.notes[SEED]`` and reused, and the driver removes them with :func:`release_seed` when the
context ends (they carry the run's tag, so ``ksentinel sweep`` also finds them).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ksentinel.errors import FlowFailure
from ksentinel.flows.core import FlowContext, flow
from ksentinel.flows.entries import NO_CONTENT, READY, forget_later
from ksentinel.flows.indexing import wait_listed
from ksentinel.kaltura.transport import STEP_LABEL

STEPS = ("browse.seed", "browse.list", "browse.page", "browse.get", "browse.list_nocache")
KEEP_SEED = "browse.keep_seed"
SEED = "browse.seed"
SEED_MIN, SEED_MAX = 3, 8
MAX_GETS = 3
_STATUSES = f"{READY},{NO_CONTENT}"


@dataclass
class Seed:
    """The entries one context browses (ids in creation order, names by id)."""

    reference: str
    count: int
    names: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return len(self.names) == self.count

    def __str__(self) -> str:  # what reports show of ctx.notes
        return f"{len(self.names)} entries ({self.reference})"


def _objects(response: Any) -> list[dict[str, Any]]:
    return list(response.get("objects") or []) if isinstance(response, dict) else []


def _total(response: Any) -> str | None:
    total = response.get("totalCount") if isinstance(response, dict) else None
    return None if total is None else str(total)


def _filter(seed: Seed, object_type: str = "KalturaBaseEntryFilter") -> dict[str, Any]:
    return {
        "objectType": object_type,
        "referenceIdEqual": seed.reference,
        "statusIn": _STATUSES,
        "orderBy": "+name",
    }


def _pager(size: int, index: int) -> dict[str, Any]:
    return {"objectType": "KalturaFilterPager", "pageSize": size, "pageIndex": index}


@flow(
    "browse",
    description="filtered + paged baseEntry.list/media.list and baseEntry.get of listed entries, cached and nocache",
    steps=STEPS,
    writes=True,
)
def browse_flow(ctx: FlowContext) -> None:
    keep = bool(ctx.notes.get(KEEP_SEED))
    seed = ctx.notes.get(SEED) if keep else None
    if not isinstance(seed, Seed) or not seed.complete:
        with ctx.step("browse.seed"):
            seed = _seed(ctx, keep)
    try:
        _browse(ctx, seed)
    except FlowFailure:
        if keep:  # a kept seed that no longer browses cleanly is dropped (and re-seeded next run)
            ctx.notes.pop(SEED, None)
            for entry_id in seed.names:
                forget_later(ctx, entry_id)
        raise


def _seed(ctx: FlowContext, keep: bool) -> Seed:
    old = ctx.notes.get(SEED)
    if keep and isinstance(old, Seed):  # an incomplete seed (interrupted run): remove what it has
        for entry_id in old.names:
            forget_later(ctx, entry_id)
    count = max(SEED_MIN, min(ctx.options.list_seed, SEED_MAX))
    seed = Seed(f"ksentinel-browse-{ctx.run_id}-{uuid.uuid4().hex[:8]}", count)
    if keep:
        ctx.notes[SEED] = seed  # before creating: an interrupted seeding is still released
    for index in range(count):
        name = f"ksentinel browse {index:02d}"
        entry = ctx.api.call(
            "baseEntry",
            "add",
            entry={
                "objectType": "KalturaMediaEntry",
                "mediaType": 1,
                "name": name,
                "tags": ctx.tags,
                "referenceId": seed.reference,
            },
        )
        ctx.check(isinstance(entry, dict) and bool(entry.get("id")), "baseEntry.add returned no entry id")
        seed.names[entry["id"]] = name
        if not keep:
            forget_later(ctx, entry["id"])
    _wait_listed(ctx, seed, time.monotonic())
    return seed


def _wait_listed(ctx: FlowContext, seed: Seed, since: float) -> None:
    """The search index lags behind writes: wait (bounded) until every seeded entry is listed."""

    def complete(answer: Any) -> bool:
        ids = {o.get("id") for o in _objects(answer)}
        return _total(answer) == str(seed.count) and ids == set(seed.names)

    wait_listed(
        ctx,
        lambda: ctx.api.call(
            "baseEntry", "list", filter=_filter(seed), pager=_pager(seed.count, 1), nocache=1
        ),
        complete,
        what=f"the {seed.count} seeded entries not all listed",
        since=since,
        describe=lambda answer: f"totalCount {_total(answer)!r}, {len(_objects(answer))} listed",
    )


def _browse(ctx: FlowContext, seed: Seed) -> None:
    api = ctx.api
    page_size = max(1, min(ctx.options.list_page_size, seed.count - 1))
    with ctx.step("browse.list"):
        first = api.call("baseEntry", "list", filter=_filter(seed), pager=_pager(page_size, 1))
        total = first.get("totalCount") if isinstance(first, dict) else None
        ctx.check(str(total) == str(seed.count), f"totalCount {total!r} for {seed.count} seeded entries")
        first_ids = [o.get("id") for o in _objects(first)]
        ctx.check(
            len(first_ids) == page_size, f"first page has {len(first_ids)} entries, pageSize {page_size}"
        )
        ctx.check(set(first_ids) <= set(seed.names), "the filtered list returned entries outside the filter")
    seen = list(first_ids)
    last = -(-seed.count // page_size)
    for index in range(2, last + 1):
        with ctx.step("browse.page"):
            page = api.call(
                "media",
                "list",
                filter=_filter(seed, "KalturaMediaEntryFilter"),
                pager=_pager(page_size, index),
            )
            ids = [o.get("id") for o in _objects(page)]
            ctx.check(bool(ids), f"page {index} of {seed.count} entries is empty")
            ctx.check(not set(ids) & set(seen), f"page {index} repeats entries of earlier pages")
            seen += ids
            if index == last:
                ctx.check(
                    set(seen) == set(seed.names), f"paging returned {len(set(seen))} of {seed.count} entries"
                )
    with ctx.step("browse.get"):
        for entry_id in first_ids[:MAX_GETS]:
            entry = api.call("baseEntry", "get", entryId=entry_id)
            ctx.check(entry.get("id") == entry_id, "baseEntry.get returned another entry")
            ctx.check(
                entry.get("name") == seed.names[entry_id], "baseEntry.get and the list disagree on the name"
            )
    with ctx.step("browse.list_nocache"):
        fresh = api.call_raw("baseEntry", "list", filter=_filter(seed), pager=_pager(page_size, 1), nocache=1)
        ctx.check(not fresh.cache_hit, "a nocache list was served from the cache")
        fresh_ids = [o.get("id") for o in _objects(fresh.unwrap())]
        ctx.check(fresh_ids == first_ids, "the nocache list differs from the cached one (stale cache?)")


def release_seed(ctx: FlowContext) -> list[str]:
    """Delete the entries a context kept (``KEEP_SEED``); returns the errors, never raises them."""
    seed = ctx.notes.pop(SEED, None)
    if not isinstance(seed, Seed):
        return []
    for entry_id in seed.names:
        forget_later(ctx, entry_id)
    label = STEP_LABEL.set("browse.cleanup")
    try:
        return ctx.cleanup.run()
    finally:
        STEP_LABEL.reset(label)
