"""The cache flow: repeated reads hit, writes make reads fresh, nocache bypasses, nobody shares.

The API's response cache is observed through its ``X-Kaltura`` header (``cached-dispatcher,<key>``
or ``cached-with-extra-fields,<key>`` on a hit, ``cache-key,<key>`` on a cacheable miss; see
:func:`ksentinel.kaltura.api.cache_status`). Lists lag behind writes (the search index), so the
partner step first waits, bounded and with ``nocache``, until our own list shows our entry.
"""

from __future__ import annotations

import time

from ksentinel.flows.core import FlowContext, flow
from ksentinel.flows.entries import NO_CONTENT, add_entry
from ksentinel.flows.indexing import listed_ids, wait_listed

STEPS = (
    "cache.seed",
    "cache.repeat_hit",
    "cache.write_fresh",
    "cache.nocache_bypass",
    "cache.user_isolated",
    "cache.partner_isolated",
)


@flow(
    "cache",
    description="a repeated read is a hit; a write makes it fresh; nocache bypasses; users and partners never share",
    steps=STEPS,
)
def cache_flow(ctx: FlowContext) -> None:
    api = ctx.api
    reference = f"ksentinel-cache-{ctx.run_id}"
    with ctx.step("cache.seed"):
        entry = add_entry(ctx, "ksentinel cache before", referenceId=reference)
    entry_id = entry["id"]

    with ctx.step("cache.repeat_hit"):
        first = api.call_raw("baseEntry", "get", entryId=entry_id)
        second = api.call_raw("baseEntry", "get", entryId=entry_id)
        first.unwrap()
        second.unwrap()
        if ctx.options.require_cache_headers:
            ctx.check(
                first.cache_key is not None or second.cache_key is not None,
                "no X-Kaltura cache header: the response cache cannot be observed",
            )
        ctx.check(not first.cache_hit, "the first read of a new entry was already a cache hit")
        ctx.check(
            second.cache_hit or not ctx.options.require_cache_headers,
            "a repeated read was not served from the cache",
        )
    admin_key = second.cache_key

    with ctx.step("cache.write_fresh"):
        api.call(
            "baseEntry",
            "update",
            entryId=entry_id,
            baseEntry={"objectType": "KalturaBaseEntry", "name": "ksentinel cache after"},
        )
        written = time.monotonic()
        after = api.call_raw("baseEntry", "get", entryId=entry_id)
        name = after.unwrap().get("name")
        ctx.check(
            name == "ksentinel cache after",
            f"a read after an update served the stale name {name!r}"
            + (" from the cache" if after.cache_hit else ""),
        )

    with ctx.step("cache.nocache_bypass"):
        bypass = api.call_raw("baseEntry", "get", entryId=entry_id, nocache=1)
        ctx.check(not bypass.cache_hit, "a nocache read was served from the cache")
        ctx.check(
            bypass.unwrap().get("name") == "ksentinel cache after", "a nocache read returned stale data"
        )

    with ctx.step("cache.user_isolated"):
        viewer = ctx.api_as(ctx.sessions.user(f"ksentinel-viewer-{ctx.run_id}"))
        seen = viewer.call_raw("baseEntry", "get", entryId=entry_id)
        seen.unwrap()
        ctx.check(
            not (seen.cache_hit and seen.cache_key == admin_key),
            "a USER session received the ADMIN session's cached answer",
        )

    peer_ks = ctx.sessions.peer_admin()  # same user id as our admin: only the partner differs
    if peer_ks is None:
        ctx.notes["cache.partner_isolated"] = "skipped: no peer partner configured"
        return
    with ctx.step("cache.partner_isolated"):
        query = {
            "filter": {
                "objectType": "KalturaBaseEntryFilter",
                "referenceIdEqual": reference,
                "statusEqual": NO_CONTENT,
            }
        }
        wait_listed(
            ctx,
            lambda: api.call("baseEntry", "list", nocache=1, **query),
            lambda answer: entry_id in listed_ids(answer),
            what=f"our entry {entry_id} not listed in our own list",
            since=written,
            describe=lambda answer: f"ids {listed_ids(answer)}",
        )
        api.call("baseEntry", "list", **query)  # now that the index shows it: cache our list
        ours = api.call("baseEntry", "list", **query)
        ctx.check(
            entry_id in listed_ids(ours),
            "our own list does not show our entry (a nocache list did: the cache served a stale list)",
        )
        theirs = ctx.api_as(peer_ks).call_raw("baseEntry", "list", **query)
        leaked = entry_id in {o.get("id") for o in (theirs.unwrap().get("objects") or [])}
        ctx.check(not leaked, "another partner received our cached list (the cache key ignores the partner)")
