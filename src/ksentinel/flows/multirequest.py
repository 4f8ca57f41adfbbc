"""The multirequest flow: back-references between sub-requests resolve.

The in-request ``baseEntry.list`` of ``{1:result:id}`` runs right after the add, before a lagging
search index can know the entry, so it may be empty; it must never list another entry. When it is
empty, a bounded wait afterwards (``nocache``) confirms that the entry does get listed.
"""

from __future__ import annotations

import time
from typing import Any

from ksentinel.errors import KalturaApiError
from ksentinel.flows.core import FlowContext, flow
from ksentinel.flows.entries import NO_CONTENT, forget_later
from ksentinel.flows.indexing import listed_ids, wait_listed


@flow(
    "multirequest",
    description="baseEntry.add + get/list through {1:result:id} in one multirequest",
    steps=("multirequest.backref",),
    writes=True,
)
def multirequest_flow(ctx: FlowContext) -> None:
    with ctx.step("multirequest.backref"):
        mr = ctx.api.multirequest()
        added = mr.add(
            "baseEntry",
            "add",
            entry={"objectType": "KalturaBaseEntry", "name": f"ksentinel mr {ctx.run_id}", "tags": ctx.tags},
        )
        mr.add("baseEntry", "get", entryId=added.ref("id"))
        mr.add(
            "baseEntry",
            "list",
            filter={
                "objectType": "KalturaBaseEntryFilter",
                "idIn": added.ref("id"),
                "statusEqual": NO_CONTENT,
            },
        )
        results: list[Any] = mr.execute()
        written = time.monotonic()
        ctx.check(len(results) == 3, f"multirequest returned {len(results)} results for 3 calls")
        entry = results[0]
        if isinstance(entry, dict) and entry.get("id"):
            forget_later(ctx, entry["id"])
        for index, item in enumerate(results, start=1):
            ctx.check(
                not isinstance(item, KalturaApiError),
                f"sub-request {index} failed: {item}",
                code=getattr(item, "code", ""),
            )
        entry_id = entry["id"]
        ctx.check(results[1].get("id") == entry_id, "{1:result:id} did not resolve in baseEntry.get")
        listed = listed_ids(results[2])
        ctx.check(
            listed in ([entry_id], []),  # [] is the search index not knowing the new entry yet
            f"{{1:result:id}} did not resolve inside a filter (idIn listed {listed}, expected [{entry_id}])",
        )
        if not listed:
            wait_listed(
                ctx,
                lambda: ctx.api.call(
                    "baseEntry",
                    "list",
                    filter={
                        "objectType": "KalturaBaseEntryFilter",
                        "idIn": entry_id,
                        "statusEqual": NO_CONTENT,
                    },
                    nocache=1,
                ),
                lambda answer: entry_id in listed_ids(answer),
                what=f"entry {entry_id} (added in a multirequest) not listed",
                since=written,
                describe=lambda answer: f"ids {listed_ids(answer)}",
            )
