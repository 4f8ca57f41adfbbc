"""Before a run: is the target reachable, is it a Kaltura API, and do our partner id and secret work?

Each failure is a one-line ``TargetError`` so commands can exit 2 with a clear message instead of
failing every check for the same reason.

A refused admin KS says only ``INVALID_KS``: a KS is built locally, and the server cannot read one of
an unknown partner any more than one signed with a wrong secret. ``session.start`` with the secret
tells them apart, as a real Kaltura answers it (``api_v3/services/SessionService.php`` and
``alpha/apps/kaltura/lib/kPermissionManager.php`` in kaltura/server):

* an unknown partner id is refused before the action runs: ``kPermissionManager::initPartnerUserObjects``
  finds no active partner for the request's ``partnerId`` and throws ``PARTNER_BLOCKED``, which
  ``KalturaFrontController`` answers as ``SERVICE_FORBIDDEN_CONTENT_BLOCKED`` (also a blocked partner);
* a wrong secret of a known partner: ``kSessionUtils::startKSession`` returns
  ``myPartnerUtils::isValidSecret``'s negative result and ``SessionService::startAction`` throws
  ``START_SESSION_ERROR`` ("Error while starting session for partner [PID]");
* ``INVALID_PARTNER_ID`` is what ``user.loginByLoginId`` and ``partner.get*`` answer for an unknown
  partner; a gateway in front of a Kaltura may answer it for ``session.start`` too.

The same ``SERVICE_FORBIDDEN_CONTENT_BLOCKED`` may already come from ``system.ping``, which carries the
``partnerId`` too. Any other answer does not tell which is wrong: the message then says "partner id
or admin secret".
"""

from __future__ import annotations

import contextlib

from ksentinel.config import Target
from ksentinel.errors import KalturaApiError, KsentinelError, TargetError
from ksentinel.flows.sessions import (
    ADMIN,
    UNKNOWN_PARTNER_CODES,
    WRONG_SECRET_CODES,
    Credentials,
    Sessions,
    credentials_of,
)
from ksentinel.kaltura.api import KalturaApi
from ksentinel.kaltura.transport import TransportError

__all__ = [
    "UNKNOWN_PARTNER_CODES",
    "WRONG_SECRET_CODES",
    "blame",
    "check_target",
    "preflight",
    "unknown_partner",
]


def check_target(target: Target) -> Credentials:
    """Preflight of a resolved target: raises a one-line TargetError when it cannot be tested at all.
    The KS it used is ended right after (``session.end``, the KS in the body)."""
    credentials = credentials_of(target)
    with KalturaApi(target.url, partner_id=target.partner_id, timeout=min(target.timeout, 15.0)) as api:
        sessions = Sessions(credentials, track=True)
        try:
            preflight(api, sessions)
        finally:
            # best effort and brief: a target that hangs past the preflight must not hold the run
            with (
                contextlib.suppress(KsentinelError),
                KalturaApi(
                    target.url, partner_id=target.partner_id, timeout=min(target.timeout, 3.0)
                ) as brief,
            ):
                sessions.end_all(brief)
    return credentials


def preflight(api: KalturaApi, sessions: Sessions) -> None:
    """Raise ``TargetError`` unless ``system.ping`` answers and an admin KS is accepted."""
    where = api.base_url
    partner = sessions.credentials.partner_id
    try:
        pong = api.with_ks(None).call("system", "ping")
    except TransportError as exc:
        raise TargetError(f"cannot reach {where}: {exc}") from exc
    except KalturaApiError as exc:
        if exc.code.startswith("HTTP_") or exc.code == "KSENTINEL_BAD_RESPONSE":
            raise TargetError(f"{where} does not answer like a Kaltura API ({exc.message})") from exc
        if exc.code in UNKNOWN_PARTNER_CODES:
            raise TargetError(
                f"{where} {unknown_partner(partner, f'system.ping answered {exc.code}')}"
            ) from exc
        raise TargetError(f"{where}: system.ping failed with {exc.code}") from exc
    if pong not in (True, "1", 1):
        raise TargetError(
            f"{where} does not answer like a Kaltura API (system.ping returned {str(pong)[:40]!r})"
        )
    try:
        api.with_ks(sessions.admin()).call(
            "baseEntry", "count", filter={"objectType": "KalturaBaseEntryFilter", "idEqual": "0_preflight"}
        )
    except TransportError as exc:
        raise TargetError(f"cannot reach {where}: {exc}") from exc
    except KalturaApiError as exc:
        if exc.code == "INVALID_KS":
            raise TargetError(
                f"{where} refused our admin KS for partner {partner}: {blame(api, sessions)}"
            ) from exc
        raise TargetError(f"{where}: an admin call for partner {partner} failed with {exc.code}") from exc


def unknown_partner(partner: int, evidence: str) -> str:
    return f"does not know partner {partner} or blocks it ({evidence}): is the partner id right?"


def blame(api: KalturaApi, sessions: Sessions) -> str:
    """Which of the partner id and the admin secret is wrong, as far as ``session.start`` tells."""
    credentials = sessions.credentials
    try:
        ks = api.with_ks(None).call(
            "session",
            "start",
            secret=credentials.admin_secret,
            partnerId=credentials.partner_id,
            type=ADMIN,
            userId=f"{sessions.user_prefix}-preflight",
            expiry=60,
        )
    except KalturaApiError as exc:
        started = f"session.start answered {exc.code}"
        if exc.code in UNKNOWN_PARTNER_CODES:
            return f"the target {unknown_partner(credentials.partner_id, started)}"
        if exc.code in WRONG_SECRET_CODES:
            return f"{started} for the configured secret: is the admin secret right?"
        return f"{started}: is the partner id or the admin secret right?"
    except KsentinelError as exc:
        return f"session.start failed too ({exc}): is the partner id or the admin secret right?"
    if isinstance(ks, str) and ks:
        with contextlib.suppress(KsentinelError):
            api.with_ks(ks).call("session", "end")
    return (
        f"session.start accepts the admin secret, but a KS v{credentials.ks_version} signed with it is "
        "refused: is ks_version right, and this machine's clock?"
    )
