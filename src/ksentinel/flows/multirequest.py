"""The multirequest flow: back-references between sub-requests resolve."""

from __future__ import annotations

from typing import Any

from ksentinel.errors import KalturaApiError
from ksentinel.flows.core import FlowContext, flow
from ksentinel.flows.entries import NO_CONTENT, forget_later


@flow(
    "multirequest",
    description="baseEntry.add + get/list through {1:result:id} in one multirequest",
    steps=("multirequest.backref",),
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
        ctx.check(results[1].get("id") == entry["id"], "{1:result:id} did not resolve in baseEntry.get")
        listed = [o.get("id") for o in results[2].get("objects") or []]
        ctx.check(listed == [entry["id"]], "{1:result:id} did not resolve inside a filter")
