"""session.start, get, end and startWidgetSession.

``session.start`` refuses as kaltura/server does, so that a client can tell a wrong partner id from a
wrong secret:

* an unknown partner: ``SERVICE_FORBIDDEN_CONTENT_BLOCKED``. The real server refuses it before the
  action runs: ``kPermissionManager::initPartnerUserObjects`` (alpha/apps/kaltura/lib/kPermissionManager.php)
  finds no active partner for the request's ``partnerId`` and throws ``kCoreException::PARTNER_BLOCKED``,
  which ``KalturaFrontController::getExceptionObject`` (api_v3/lib) turns into that code;
* a wrong secret of a known partner: ``START_SESSION_ERROR`` with the partner id
  ("Error while starting session for partner [PID]"): ``SessionService::startAction``
  (api_v3/services/SessionService.php) when ``kSessionUtils::startKSession`` returns
  ``myPartnerUtils::isValidSecret``'s negative result;
* no partner id at all: ``START_SESSION_ERROR`` (the dispatcher ignores a ``partnerId`` of 0, and
  ``isValidSecret`` finds no partner for it).
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from ksentinel.kaltura import ks as ks_lib
from ksentinel.reference.errors import ApiException
from ksentinel.reference.services import Call, action
from ksentinel.reference.store import ks_hash

USER, ADMIN = 0, 2


def _secret_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


@action("session", "start")
def start(
    call: Call,
    secret: str,
    userId: str = "",
    type: int = USER,
    partnerId: int | None = None,
    expiry: int = 86400,
    privileges: str | None = None,
) -> str:
    platform = call.platform
    if not partnerId:
        raise ApiException("START_SESSION_ERROR", "N/A")
    partner = platform.partners.get(partnerId)
    if partner is None:
        raise ApiException("SERVICE_FORBIDDEN_CONTENT_BLOCKED")
    admin_ok = any(_secret_matches(secret, s) for s in partner.admin_secrets)
    user_ok = type == USER and _secret_matches(secret, partner.user_secret)
    if not (admin_ok or user_ok):
        raise ApiException("START_SESSION_ERROR", partnerId)
    expiry = partner.max_ks_expiry if expiry is None or expiry <= 0 else min(expiry, partner.max_ks_expiry)
    return ks_lib.build(
        partner.admin_secret,
        partner.id,
        userId or "",
        type,
        expiry,
        privileges or "",
        version=partner.ks_version,
    )


@action("session", "get")
def get(call: Call, session: str | None = None) -> dict[str, Any]:
    caller = call.caller
    if session:
        try:
            envelope = ks_lib.decode(session)
        except ks_lib.KsError as exc:
            raise ApiException("INTERNAL_SERVERL_ERROR") from exc
        if envelope.partner_id != caller.partner_id:
            raise ApiException("PARTNER_ACCESS_FORBIDDEN", envelope.partner_id)
        partner = call.platform.partners[caller.partner_id]
        try:
            info = ks_lib.verify(envelope, partner.admin_secrets)
        except ks_lib.KsError as exc:
            raise ApiException("INTERNAL_SERVERL_ERROR") from exc
    else:
        info = caller.info
    assert info is not None
    return {
        "objectType": "KalturaSessionInfo",
        "partnerId": info.partner_id,
        "userId": info.user_id,
        "expiry": info.valid_until,
        "sessionType": info.type,
        "privileges": info.privileges,
    }


@action("session", "end")
def end(call: Call) -> None:
    caller = call.caller
    if caller.ks and caller.info:
        call.platform.store.end_session(caller.ks, caller.partner_id, caller.info.valid_until)
        call.platform.ended.add(ks_hash(caller.ks))


@action("session", "startWidgetSession")
def start_widget_session(call: Call, widgetId: str, expiry: int = 86400) -> dict[str, Any]:
    partner_id = int(widgetId[1:]) if widgetId.startswith("_") and widgetId[1:].isdigit() else None
    partner = call.platform.partners.get(partner_id) if partner_id is not None else None
    if partner is None:
        raise ApiException("INVALID_WIDGET_ID", widgetId)
    expiry = partner.max_ks_expiry if expiry <= 0 else min(expiry, partner.max_ks_expiry)
    token = ks_lib.build(
        partner.admin_secret, partner.id, "0", USER, expiry, "view:*,widget:1", version=partner.ks_version
    )
    return {
        "objectType": "KalturaStartWidgetSessionResponse",
        "partnerId": partner.id,
        "ks": token,
        "userId": "0",
    }


def now() -> int:
    return int(time.time())
