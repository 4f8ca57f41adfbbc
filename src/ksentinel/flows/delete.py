"""The delete flow: an entry that was deleted is gone (ENTRY_ID_NOT_FOUND), not half-there."""

from __future__ import annotations

from ksentinel.errors import KalturaApiError
from ksentinel.flows.core import FlowContext, flow
from ksentinel.flows.entries import add_entry


@flow(
    "delete",
    description="baseEntry.add -> baseEntry.delete -> baseEntry.get gives ENTRY_ID_NOT_FOUND",
    steps=("delete.create", "delete.delete", "delete.gone"),
    writes=True,
)
def delete_flow(ctx: FlowContext) -> None:
    with ctx.step("delete.create"):
        entry = add_entry(ctx, f"ksentinel delete {ctx.run_id}")
    with ctx.step("delete.delete"):
        ctx.api.call("baseEntry", "delete", entryId=entry["id"])
    with ctx.step("delete.gone"):
        for service in ("baseEntry", "media"):
            try:
                got = ctx.api.call(service, "get", entryId=entry["id"])
            except KalturaApiError as exc:
                ctx.check(
                    exc.code == "ENTRY_ID_NOT_FOUND",
                    f"{service}.get of a deleted entry gave {exc.code}, expected ENTRY_ID_NOT_FOUND",
                    code=exc.code,
                )
            else:
                ctx.check(
                    False, f"{service}.get still returns the deleted entry (status {got.get('status')!r})"
                )
