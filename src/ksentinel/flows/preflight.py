"""Before a run: is the target reachable, is it a Kaltura API, and does our secret work?

Each failure is a one-line ``TargetError`` so commands can exit 2 with a clear message instead of
failing every check for the same reason.
"""

from __future__ import annotations

from ksentinel.errors import KalturaApiError, TargetError
from ksentinel.flows.sessions import Sessions
from ksentinel.kaltura.api import KalturaApi
from ksentinel.kaltura.transport import TransportError


def preflight(api: KalturaApi, sessions: Sessions) -> None:
    """Raise ``TargetError`` unless ``system.ping`` answers and an admin KS is accepted."""
    where = api.base_url
    try:
        pong = api.with_ks(None).call("system", "ping")
    except TransportError as exc:
        raise TargetError(f"cannot reach {where}: {exc}") from exc
    except KalturaApiError as exc:
        if exc.code.startswith("HTTP_") or exc.code == "KSENTINEL_BAD_RESPONSE":
            raise TargetError(f"{where} does not answer like a Kaltura API ({exc.message})") from exc
        raise TargetError(f"{where}: system.ping failed with {exc.code}") from exc
    if pong not in (True, "1", 1):
        raise TargetError(
            f"{where} does not answer like a Kaltura API (system.ping returned {str(pong)[:40]!r})"
        )
    partner = sessions.credentials.partner_id
    try:
        api.with_ks(sessions.admin()).call(
            "baseEntry", "count", filter={"objectType": "KalturaBaseEntryFilter", "idEqual": "0_preflight"}
        )
    except TransportError as exc:
        raise TargetError(f"cannot reach {where}: {exc}") from exc
    except KalturaApiError as exc:
        if exc.code == "INVALID_KS":
            raise TargetError(
                f"{where} refused our admin KS for partner {partner}: is the admin secret right?"
            ) from exc
        raise TargetError(f"{where}: an admin call for partner {partner} failed with {exc.code}") from exc
