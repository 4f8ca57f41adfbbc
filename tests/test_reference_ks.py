"""KS validation on the reference platform: what is accepted, what is refused and how."""

from __future__ import annotations

import base64

import httpx
import pytest
from KalturaClient.Client import KalturaClient

from ksentinel.kaltura import ks as ks_lib
from tests.conftest import Reference
from tests.helpers import admin_ks, is_error, raw_call


def session_info(http: httpx.Client, ref: Reference, ks: str) -> dict:
    return raw_call(http, ref.url, "session", "get", ks=ks)[1]


@pytest.mark.parametrize("generator", ["generateSession", "generateSessionV2"])
@pytest.mark.parametrize("session_type", [0, 2])
def test_official_generated_ks_is_accepted(
    reference: Reference, http: httpx.Client, generator: str, session_type: int
) -> None:
    token = getattr(KalturaClient, generator)(
        reference.p1.admin_secret, "gen-user", session_type, reference.p1.id, 600, "list:*"
    ).decode()
    _, listed = raw_call(http, reference.url, "baseEntry", "list", ks=token)
    assert listed["objectType"] == "KalturaBaseEntryListResponse"
    if session_type == 2:
        info = session_info(http, reference, token)
        assert (info["userId"], info["sessionType"], info["partnerId"]) == ("gen-user", 2, 101)


def _tamper(token: str) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[-2] ^= 0x20
    return base64.urlsafe_b64encode(bytes(raw)).decode()


def _v1_with_changed_user(ref: Reference) -> str:
    token = ks_lib.build_v1(ref.p1.admin_secret, ref.p1.id, "alice", 2, 600)
    sig, info = base64.b64decode(token).split(b"|", 1)
    return base64.b64encode(sig + b"|" + info.replace(b"alice", b"mallo")).decode()


@pytest.mark.parametrize(
    ("case", "make", "reason"),
    [
        ("tampered v2", lambda ref: _tamper(admin_ks(ref.p1)), "INVALID_STR"),
        ("tampered v1", _v1_with_changed_user, "INVALID_STR"),
        (
            "wrong secret",
            lambda ref: ks_lib.build_v2("not-the-secret-at-all", ref.p1.id, "x", 2, 600),
            "INVALID_STR",
        ),
        (
            "other partner's secret",
            lambda ref: ks_lib.build_v2(ref.p2.admin_secret, ref.p1.id, "x", 2, 600),
            "INVALID_STR",
        ),
        (
            "unknown partner",
            lambda ref: ks_lib.build_v2(ref.p1.admin_secret, 999, "x", 2, 600),
            "INVALID_STR",
        ),
        (
            "user secret signs",
            lambda ref: ks_lib.build_v1(ref.p1.user_secret, ref.p1.id, "x", 0, 600),
            "INVALID_STR",
        ),
        ("garbage", lambda ref: "this-is-not-a-ks", "INVALID_STR"),
        ("expired v2", lambda ref: admin_ks(ref.p1, expiry=-5), "EXPIRED"),
        ("expired v1", lambda ref: admin_ks(ref.p1, expiry=-5, version=1), "EXPIRED"),
    ],
)
def test_bad_ks_is_refused_with_invalid_ks(
    reference: Reference, http: httpx.Client, case: str, make, reason: str
) -> None:
    token = make(reference)
    _, result = raw_call(http, reference.url, "baseEntry", "list", ks=token)
    assert is_error(result, "INVALID_KS"), (case, result)
    args = (
        {a["name"]: a["value"] for a in result["args"]}
        if isinstance(result["args"], list)
        else result["args"]
    )
    # the server's quirk: every failure reads "-1,INVALID_STR", and KSID names a stage-2 failure
    assert (args["ERR_CODE"], args["ERR_DESC"]) == ("-1", "INVALID_STR")
    assert reason in result["message"]
    assert token not in result["message"], "the server must not echo the KS"


def test_ended_session_is_refused_with_logout(reference: Reference, http: httpx.Client) -> None:
    token = admin_ks(reference.p1, "ender")
    assert raw_call(http, reference.url, "baseEntry", "count", ks=token)[1] >= 0
    _, ended = raw_call(http, reference.url, "session", "end", ks=token)
    assert ended is None
    _, after = raw_call(http, reference.url, "baseEntry", "count", ks=token)
    assert is_error(after, "INVALID_KS") and "LOGOUT" in after["message"]
    assert after["args"]["KSID"] == "LOGOUT"


def test_session_start_wrong_secret(reference: Reference, http: httpx.Client) -> None:
    _, result = raw_call(http, reference.url, "session", "start", secret="wrong", partnerId=101, type=2)
    assert is_error(result, "START_SESSION_ERROR")
    assert "101" in result["message"]
    _, result = raw_call(http, reference.url, "session", "start", secret="wrong", partnerId=5555)
    assert is_error(result, "SERVICE_FORBIDDEN_CONTENT_BLOCKED")
    _, result = raw_call(http, reference.url, "session", "start", secret="wrong")
    assert is_error(result, "START_SESSION_ERROR") and "N/A" in result["message"]


def test_session_start_issues_a_working_ks(reference: Reference, http: httpx.Client) -> None:
    _, token = raw_call(
        http,
        reference.url,
        "session",
        "start",
        secret=reference.p2.admin_secret,
        partnerId=102,
        type=2,
        userId="u2",
        privileges="list:*",
        expiry=120,
    )
    info = ks_lib.verify(token, [reference.p2.admin_secret])
    assert (info.partner_id, info.user_id, info.type, info.privileges) == (102, "u2", 2, "list:*")
    assert session_info(http, reference, token)["partnerId"] == 102


def test_widget_session(reference: Reference, http: httpx.Client) -> None:
    _, widget = raw_call(http, reference.url, "session", "startWidgetSession", widgetId="_101")
    assert widget["objectType"] == "KalturaStartWidgetSessionResponse" and widget["userId"] == "0"
    info = ks_lib.verify(widget["ks"], [reference.p1.admin_secret])
    assert info.has_privilege("widget") and not info.is_admin
    _, bad = raw_call(http, reference.url, "session", "startWidgetSession", widgetId="_99")
    assert is_error(bad, "INVALID_WIDGET_ID")
