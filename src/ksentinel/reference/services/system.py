"""system.ping."""

from __future__ import annotations

from ksentinel.reference.services import Call, action


@action("system", "ping")
def ping(call: Call) -> bool:
    return True
