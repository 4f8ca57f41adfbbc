"""The session flow: start, get, end, and a KS that was ended must not work again."""

from __future__ import annotations

from ksentinel.errors import KalturaApiError
from ksentinel.flows.core import FlowContext, flow


@flow(
    "session",
    description="session.start -> session.get -> session.end -> the ended KS is refused",
    steps=("session.start", "session.get", "session.end", "session.reuse_after_end"),
    writes=False,
)
def session_flow(ctx: FlowContext) -> None:
    credentials = ctx.sessions.credentials
    user = f"ksentinel-session-{ctx.run_id}"
    with ctx.step("session.start"):
        ks = ctx.api.with_ks(None).call(
            "session",
            "start",
            secret=credentials.admin_secret,
            userId=user,
            type=2,
            partnerId=credentials.partner_id,
            expiry=600,
        )
        ctx.check(isinstance(ks, str) and len(ks) > 20, "session.start did not return a KS")
    session_api = ctx.api_as(ks)
    with ctx.step("session.get"):
        info = session_api.call("session", "get")
        ctx.check(isinstance(info, dict), "session.get did not return an object")
        ctx.check(
            str(info.get("partnerId")) == str(credentials.partner_id),
            f"session.get partnerId {info.get('partnerId')!r} != {credentials.partner_id}",
        )
        ctx.check(info.get("userId") == user, "session.get returned another user")
        ctx.check(
            str(info.get("sessionType")) == "2", f"session.get sessionType {info.get('sessionType')!r} != 2"
        )
    with ctx.step("session.end"):
        session_api.call("session", "end")
    with ctx.step("session.reuse_after_end"):
        try:
            session_api.call(
                "baseEntry", "count", filter={"objectType": "KalturaBaseEntryFilter", "idEqual": "0_none"}
            )
        except KalturaApiError as exc:
            ctx.check(
                exc.code == "INVALID_KS", f"an ended KS gave {exc.code}, expected INVALID_KS", code=exc.code
            )
        else:
            ctx.check(False, "an ended KS was still accepted")
